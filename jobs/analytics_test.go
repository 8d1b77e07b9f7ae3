package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"tally/analytics"
	"tally/model"
	"tally/periods"
	"tally/pq"
	"tally/runner"
	"tally/source"
	"tally/storage"
	"tally/storage/local"
)

// The week 2026-11-15 (Sunday) to 2026-11-22.
var testWeek, _ = periods.Parse(periods.Weekly, "2026-11-15")

// tinyEstate is a hand-made source whose analytics are known exactly.
type tinyEstate struct {
	failDay string
}

const (
	custA = "aaaaaaaa-0000-4000-8000-000000000001" // calling + meetings, low assignment, renewing, queues
	custB = "bbbbbbbb-0000-4000-8000-000000000002" // messaging only: left out
	custC = "cccccccc-0000-4000-8000-000000000003" // calling, expiring, over its license limit
)

func (tinyEstate) Name() string { return "tiny" }
func (tinyEstate) Partners(context.Context, periods.Period) ([]model.Partner, error) {
	return []model.Partner{{PartnerID: "P1", PartnerName: "Partner One"}}, nil
}

func (e tinyEstate) Customers(ctx context.Context, day periods.Period, fn func(*source.CustomerDay) error) error {
	if day.ID() == e.failDay {
		return errors.New("source export for the day is corrupt")
	}
	weekEnd := testWeek.End()
	created := time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)
	login := day.End().Add(-time.Hour)
	sub := func(cust, id string, autoRenew bool, endIn int, total, assigned, used int64) model.Subscription {
		return model.Subscription{SubscriptionID: id, SubscriberID: "S-" + id, CustomerID: cust, Product: "calling", Status: "active",
			CreatedAt: created, StartDate: model.DateOf(created), EndDate: model.DateOf(weekEnd.AddDate(0, 0, endIn)), AutoRenew: autoRenew,
			OrderID: "O-" + id, LicensesTotal: total, LicensesAssigned: assigned, LicensesUsed7d: used, ProvisioningStatuses: []string{"Provisioned"}}
	}
	order := func(cust, id string, q int64) model.Order {
		return model.Order{OrderID: "O-" + id, CustomerID: cust, PartnerID: "P1", SubscriberID: "S-" + id, LicenseType: model.KnowledgeWorker, Quantity: q}
	}
	user := func(cust, id string) model.User {
		return model.User{UserID: id, CustomerID: cust, Email: "u@" + cust[:4] + ".example.com"}
	}
	device := func(cust, id, user string) model.Device {
		return model.Device{DeviceID: id, CustomerID: cust, UserID: model.Str(user), DeviceType: model.DeskPhone, LocationID: "L1"}
	}
	uA, uC1, uC2 := "aaaaaaaa-1111-4000-8000-000000000001", "cccccccc-1111-4000-8000-000000000001", "cccccccc-1111-4000-8000-000000000002"
	a := &source.CustomerDay{Region: "US",
		Customer:      model.Customer{CustomerID: custA, CustomerName: "Alpha", PartnerID: "P1", ManagedBy: "partner", Products: []string{"calling", "meetings"}, CreatedAt: created, LastAdminLoginAt: &login},
		Subscriptions: []model.Subscription{sub(custA, "A1", true, 20, 10, 2, 1)},
		Orders:        []model.Order{order(custA, "A1", 10)},
		Users:         []model.User{user(custA, uA)},
		Devices:       []model.Device{device(custA, "dA", uA)},
	}
	if day.Start.Weekday() == time.Wednesday {
		at := day.Start.Add(10 * time.Hour)
		leg := func(call string, k int, outcome string, wait int64, jitter float64) model.CallLeg {
			return model.CallLeg{LegID: fmt.Sprintf("%s-%d", call, k), CallID: call, CustomerID: custA, LocationID: "L1", UserID: model.Str(uA),
				DeviceType: model.DeskPhone, StartTime: at, DurationSeconds: 120, Direction: "inbound", AudioJitterMs: jitter,
				AudioLatencyMs: 50, AudioLossPct: 0.1, RoutedVia: model.Str("call-queue"), QueueOutcome: model.Str(outcome), QueueWaitSeconds: &wait}
		}
		a.Calls = []model.CallLeg{leg("c1", 0, "answered", 10, 10), leg("c1", 1, "answered", 10, 200), leg("c2", 0, "abandoned", 30, 10)}
	}
	b := &source.CustomerDay{Region: "US",
		Customer:      model.Customer{CustomerID: custB, CustomerName: "Bravo", PartnerID: "P1", ManagedBy: "partner", Products: []string{"messaging"}, CreatedAt: created, LastAdminLoginAt: &login},
		Subscriptions: []model.Subscription{{SubscriptionID: "B1", SubscriberID: "S-B1", CustomerID: custB, Product: "messaging", Status: "active", CreatedAt: created, StartDate: model.DateOf(created), EndDate: model.DateOf(weekEnd.AddDate(0, 0, 5)), LicensesTotal: 5}},
	}
	c := &source.CustomerDay{Region: "US",
		Customer:      model.Customer{CustomerID: custC, CustomerName: "Charlie", PartnerID: "P1", ManagedBy: "partner", Products: []string{"calling"}, CreatedAt: created, LastAdminLoginAt: &login},
		Subscriptions: []model.Subscription{sub(custC, "C1", false, 10, 1, 1, 1)},
		Orders:        []model.Order{order(custC, "C1", 1)},
		Users:         []model.User{user(custC, uC1), user(custC, uC2)},
		Devices:       []model.Device{device(custC, "dC1", uC1), device(custC, "dC2", uC2)},
	}
	for _, cd := range []*source.CustomerDay{a, b, c} {
		if err := fn(cd); err != nil {
			return err
		}
	}
	return nil
}

func analyticsFixture(t *testing.T, src source.Source) (*runner.Runner, storage.Store) {
	t.Helper()
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ledger := &runner.Ledger{Store: store}
	r := testRunner(store, time.Date(2026, 11, 22, 0, 5, 0, 0, time.UTC), &Sync{Source: src, Ledger: ledger}, &Usage{UnderThreshold: 0.5},
		&WeeklyAnalytics{Ledger: ledger, Thresholds: analytics.DefaultThresholds, LowBelow: 0.5})
	return r, store
}

func TestWeeklyAnalyticsOfAKnownEstate(t *testing.T) {
	t.Parallel()
	r, store := analyticsFixture(t, tinyEstate{})
	if _, err := r.Run(context.Background(), Analytics, testWeek, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	kpis := readRows[model.KPIs](t, store, AnalyticsKey("kpis", "US", testWeek))
	if len(kpis) != 1 {
		t.Fatalf("kpis rows = %d", len(kpis))
	}
	k := kpis[0]
	got := fmt.Sprintf("total %d expiring %d renewing %d low %d over %d overage %d calling users %d",
		k.TotalCustomers, k.ApproachingExpiration, k.ApproachingRenewal, k.LowAssignment, k.OverLicenseLimit, k.OverageLicenses, k.CallingUsers)
	// Bravo is Messaging-only: left out. Alpha renews in 20 days, assigns 2 of 10
	// (bottom quartile of {0.2, 1.0} and below 50%: low). Charlie expires in 10 days
	// and consumes 2 Knowledge Worker licenses of 1 ordered: over by 1.
	if want := "total 2 expiring 1 renewing 1 low 1 over 1 overage 1 calling users 1"; got != want {
		t.Fatalf("KPIs: %s\nwant  %s", got, want)
	}

	statuses := map[string][]string{}
	for _, s := range readRows[model.CustomerStatus](t, store, AnalyticsKey("customer_status", "US", testWeek)) {
		statuses[s.CustomerID] = append(statuses[s.CustomerID], s.Status)
	}
	if _, ok := statuses[custB]; ok {
		t.Errorf("the Messaging-only customer has statuses: %v", statuses[custB])
	}
	if got := strings.Join(statuses[custC], " "); got != "subscription expiring-soon license-overage" {
		t.Errorf("Charlie's statuses = %q", got)
	}

	queues := readRows[model.CallQueues](t, store, AnalyticsKey("call_queues", "US", testWeek))
	if len(queues) != 1 || queues[0].Calls != 2 || queues[0].Answered != 1 || queues[0].Abandoned != 1 ||
		*queues[0].AvgAnswerSeconds != 10 || *queues[0].AvgAbandonWaitSeconds != 30 || *queues[0].AbandonRate != 0.5 {
		t.Fatalf("call queues = %+v", queues)
	}
	quality := readRows[model.CallQuality](t, store, AnalyticsKey("call_quality", "US", testWeek))
	if len(quality) != 1 || quality[0].Legs != 3 || quality[0].PoorLegs != 1 || quality[0].EndpointType != model.DeskPhone {
		t.Fatalf("call quality = %+v", quality)
	}
	usage := readRows[model.CallingUsage](t, store, AnalyticsKey("calling_usage", "US", testWeek))
	if len(usage) != 2 || usage[0].CustomerID != custA || usage[0].Calls != 2 || usage[0].Legs != 3 || usage[0].Minutes != 4 {
		t.Fatalf("calling usage = %+v", usage)
	}
	if n := len(usage[0].CallsTrend); n != 8 || usage[0].CallsTrend[0] != nil || *usage[0].CallsTrend[7] != 2 {
		t.Fatalf("calls trend = %d values, want 8 with null for unpublished weeks and this week last", n)
	}
	exp := readRows[model.Expiring](t, store, AnalyticsKey("expiring", "US", testWeek))
	if len(exp) != 1 || exp[0].CustomerID != custC || exp[0].DaysTo != 10 || len(exp[0].Usage3Months) != 13 {
		t.Fatalf("expiring = %+v", exp)
	}
	low := readRows[model.LowAssignment](t, store, AnalyticsKey("low_assignment", "US", testWeek))
	if len(low) != 1 || low[0].CustomerID != custA || low[0].Assigned != 2 || *low[0].AssignedPct != 0.2 || *low[0].WeeklyAssignmentChange != 0 {
		t.Fatalf("low assignment = %+v", low)
	}
	over := readRows[model.Overage](t, store, AnalyticsKey("overage", "US", testWeek))
	if len(over) != 1 || over[0].CustomerID != custC || over[0].Overage != 1 {
		t.Fatalf("overage = %+v", over)
	}
}

func TestAnAnalyticsRunNeverStartsOtherWeeksAndTrendsReadPublishedWeeks(t *testing.T) {
	t.Parallel()
	r, store := analyticsFixture(t, tinyEstate{})
	ctx := context.Background()
	prev := testWeek.Prev()
	if _, err := r.Run(ctx, Analytics, prev, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(ctx, Analytics, testWeek, runner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := r.Ledger().All(ctx, Analytics)
	if len(all) != 2 {
		t.Fatalf("analytics ledger has %d entries, want only the two weeks asked for", len(all))
	}
	missing := fmt.Sprint(res.Record.Notes["missing_trend_weeks"])
	if strings.Contains(missing, prev.ID()) || !strings.Contains(missing, prev.Prev().ID()) {
		t.Fatalf("missing trend weeks = %s: want %s published and %s missing", missing, prev.ID(), prev.Prev().ID())
	}
	usage := readRows[model.CallingUsage](t, store, AnalyticsKey("calling_usage", "US", testWeek))
	trend := usage[0].CallsTrend
	if trend[5] != nil || trend[6] == nil || *trend[6] != 2 || *trend[7] != 2 {
		t.Fatalf("trend = %v: want null for unpublished weeks, last week's value read back, this week last", trend)
	}
}

func TestAWeekWhoseUpstreamDayFailedIsNotPublishedAndTheLedgerSaysWhichDay(t *testing.T) {
	t.Parallel()
	r, store := analyticsFixture(t, tinyEstate{failDay: "2026-11-18"})
	ctx := context.Background()
	_, err := r.Run(ctx, Analytics, testWeek, runner.Options{})
	if err == nil {
		t.Fatal("analytics succeeded with a failed upstream day")
	}
	rec, _ := r.Ledger().Latest(ctx, Analytics, testWeek.ID())
	if rec.Status != runner.StatusFailed || !strings.Contains(rec.Error, "upstream license-usage 2026-11-18 failed") {
		t.Fatalf("ledger: %s %q", rec.Status, rec.Error)
	}
	if objs, _ := store.List(ctx, "analytics/"); len(objs) != 0 {
		t.Fatalf("the week was published: %d files", len(objs))
	}
}

func TestAnalyticsIsByteIdenticalOnAForcedRerun(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := context.Background()
	f.r = testRunner(f.store, time.Date(2026, 11, 22, 0, 5, 0, 0, time.UTC), &Sync{Source: f.src, Ledger: f.r.Ledger()}, &Usage{UnderThreshold: 0.5},
		&WeeklyAnalytics{Ledger: f.r.Ledger(), Thresholds: analytics.DefaultThresholds, LowBelow: 0.5})
	if _, err := f.r.Run(ctx, Analytics, testWeek, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	before := checksums(t, f.dir)
	if _, err := f.r.Run(ctx, Analytics, testWeek, runner.Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	after := checksums(t, f.dir)
	n := 0
	for k, v := range before {
		if strings.HasPrefix(k, "analytics/") {
			n++
			if after[k] != v {
				t.Errorf("%s changed on a forced re-run", k)
			}
		}
	}
	if n != len(AnalyticsTables)*len(model.Regions) {
		t.Fatalf("%d analytics files, want %d", n, len(AnalyticsTables)*len(model.Regions))
	}
}

// reverseTable rewrites a table with its rows in reverse order (as an earlier
// tally, which grouped rows by partner, could have left them).
func reverseTable[T any](t *testing.T, store storage.Store, key string) {
	t.Helper()
	rows := readRows[T](t, store, key)
	slices.Reverse(rows)
	var buf bytes.Buffer
	if _, err := pq.WriteAll(&buf, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(context.Background(), key, &buf); err != nil {
		t.Fatal(err)
	}
}

func TestTrendsReadAnEarlierWeekWhoseRowsAreNotSortedByCustomer(t *testing.T) {
	t.Parallel()
	r, store := analyticsFixture(t, tinyEstate{})
	ctx := context.Background()
	prev := testWeek.Prev()
	if _, err := r.Run(ctx, Analytics, prev, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(ctx, Analytics, testWeek, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		exp := readRows[model.Expiring](t, store, AnalyticsKey("expiring", "US", testWeek))
		usage := readRows[model.CallingUsage](t, store, AnalyticsKey("calling_usage", "US", testWeek))
		quality := readRows[model.CallQuality](t, store, AnalyticsKey("call_quality", "US", testWeek))
		if len(exp) != 1 || exp[0].Usage3Months[11] == nil || len(usage) != 2 || usage[0].CallsTrend[6] == nil || len(quality) != 1 || quality[0].PoorPctTrend[6] == nil {
			t.Fatalf("last week's trend values are missing: expiring %+v, usage %+v, quality %+v", exp, usage, quality)
		}
		return fmt.Sprint(*exp[0].Usage3Months[11], " ", *usage[0].CallsTrend[6], " ", *usage[1].CallsTrend[6], " ", *quality[0].PoorPctTrend[6])
	}
	sorted := read()
	reverseTable[model.SubscriptionStatus](t, store, AnalyticsKey("subscription_status", "US", prev))
	reverseTable[model.CallingUsage](t, store, AnalyticsKey("calling_usage", "US", prev))
	reverseTable[model.CallQuality](t, store, AnalyticsKey("call_quality", "US", prev))
	if _, err := r.Run(ctx, Analytics, testWeek, runner.Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != sorted {
		t.Fatalf("trend values with last week's rows in another order = %s, want %s", got, sorted)
	}
}

// sharedSubscriber is tinyEstate with Alpha's subscription under the same
// subscriber id as Charlie's, which is over its license limit.
type sharedSubscriber struct{ tinyEstate }

func (e sharedSubscriber) Customers(ctx context.Context, day periods.Period, fn func(*source.CustomerDay) error) error {
	return e.tinyEstate.Customers(ctx, day, func(cd *source.CustomerDay) error {
		if cd.Customer.CustomerID == custA {
			for i := range cd.Subscriptions {
				cd.Subscriptions[i].SubscriberID = "S-C1"
			}
			for i := range cd.Orders {
				cd.Orders[i].SubscriberID = "S-C1"
			}
		}
		return fn(cd)
	})
}

func TestOverageCountsOnlyTheCustomersOwnSubscriptionsWhenASubscriberIDIsShared(t *testing.T) {
	t.Parallel()
	r, store := analyticsFixture(t, sharedSubscriber{})
	if _, err := r.Run(context.Background(), Analytics, testWeek, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	over := readRows[model.Overage](t, store, AnalyticsKey("overage", "US", testWeek))
	if len(over) != 1 || over[0].CustomerID != custC || over[0].Overage != 1 {
		t.Fatalf("overage = %+v, want only Charlie's subscription, over by 1", over)
	}
}
