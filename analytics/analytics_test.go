package analytics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"tally/model"
)

// The week 2026-11-15 ends Sunday 2026-11-22 00:00 UTC.
var week = Week{End: model.DateOf(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))}

func endsIn(days int) model.Date { return week.End + model.Date(days) }

func paid(status string, autoRenew bool, days int) model.Subscription {
	return model.Subscription{Status: status, AutoRenew: autoRenew, EndDate: endsIn(days), ProvisioningStatuses: []string{"Provisioned"}}
}

func trial(days int) model.Subscription {
	return model.Subscription{Status: "trial", IsTrial: true, EndDate: endsIn(days), ProvisioningStatuses: []string{"Provisioned"}}
}

func TestSubscriptionStatusFirstThatHoldsAtThe30And60DayEdges(t *testing.T) {
	cases := []struct {
		name string
		sub  model.Subscription
		want string
	}{
		{"Cancelled first, even when ending soon", paid("cancelled", false, 3), "Cancelled"},
		{"Suspended", paid("suspended", false, 100), "Suspended"},
		{"Trial expired: ended before the week's end", trial(-1), "Trial expired"},
		{"Trial expires within 30 days: ends at the week's end (0 days)", trial(0), "Trial expires within 30 days"},
		{"Trial expires within 30 days: 29 days", trial(29), "Trial expires within 30 days"},
		{"Trial expires within 60 days: exactly 30 days", trial(30), "Trial expires within 60 days"},
		{"Trial expires within 60 days: 59 days", trial(59), "Trial expires within 60 days"},
		{"Trial active: exactly 60 days", trial(60), "Trial active"},
		{"Expires within 30 days: 0 days", paid("active", false, 0), "Expires within 30 days"},
		{"Expires within 30 days: 29 days", paid("active", false, 29), "Expires within 30 days"},
		{"Expires within 60 days: exactly 30 days", paid("active", false, 30), "Expires within 60 days"},
		{"Expires within 60 days: 59 days", paid("active", false, 59), "Expires within 60 days"},
		{"Active: exactly 60 days", paid("active", false, 60), "Active"},
		{"Active: an auto-renewing subscription does not expire", paid("active", true, 10), "Active"},
		{"Expired: a paid subscription past its end", paid("active", false, -5), "Expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := week.SubscriptionStatus(&tc.sub); got != tc.want {
				t.Fatalf("status = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProvisioningStatusOfSeveralServicesIsTheMostImportant(t *testing.T) {
	all := ProvisioningPrecedence
	for i, want := range all {
		t.Run(want+" wins over everything after it", func(t *testing.T) {
			// Every status from this one on, in reverse order.
			var statuses []string
			for j := len(all) - 1; j >= i; j-- {
				statuses = append(statuses, all[j])
			}
			if got := ProvisioningStatus(statuses); got != want {
				t.Fatalf("ProvisioningStatus(%v) = %q, want %q", statuses, got, want)
			}
		})
	}
	if got := ProvisioningStatus([]string{"Provisioned", "Provisioning failed", "Provisioning"}); got != "Provisioning failed" {
		t.Fatalf("Provisioning failed > Provisioning > Provisioned: got %q", got)
	}
}

func TestCustomerStatusesSeveralMayHoldAtOnce(t *testing.T) {
	recent := week.End.Time().AddDate(0, 0, -3)
	stale := week.End.Time().AddDate(0, 0, -31)
	unprovisioned := paid("active", true, 200)
	unprovisioned.ProvisioningStatuses = []string{"Provisioned", "Awaiting provisioning details"}
	cases := []struct {
		name string
		f    CustomerFacts
		want string
	}{
		{"subscription (active)", CustomerFacts{Subscriptions: []model.Subscription{paid("active", true, 200)}, LastLogin: &recent}, "subscription"},
		{"trial", CustomerFacts{Subscriptions: []model.Subscription{trial(45)}, LastLogin: &recent}, "trial"},
		{"expiring-soon: a subscription ends within 30 days", CustomerFacts{Subscriptions: []model.Subscription{paid("active", false, 10)}, LastLogin: &recent}, "subscription expiring-soon"},
		{"expiring-soon: a trial ends within 30 days", CustomerFacts{Subscriptions: []model.Subscription{trial(5)}, LastLogin: &recent}, "trial expiring-soon"},
		{"license-overage", CustomerFacts{Subscriptions: []model.Subscription{paid("active", true, 200)}, Overage: true, LastLogin: &recent}, "subscription license-overage"},
		{"no-recent-activity: no admin login for 30 days", CustomerFacts{Subscriptions: []model.Subscription{paid("active", true, 200)}, LastLogin: &stale}, "subscription no-recent-activity"},
		{"no-recent-activity: never logged in", CustomerFacts{Subscriptions: []model.Subscription{paid("active", true, 200)}}, "subscription no-recent-activity"},
		{"ready-to-set-up: an order not yet provisioned", CustomerFacts{Subscriptions: []model.Subscription{unprovisioned}, LastLogin: &recent}, "subscription ready-to-set-up"},
		{"suspended", CustomerFacts{Subscriptions: []model.Subscription{paid("suspended", true, 200)}, LastLogin: &recent}, "suspended"},
		{"expired: no active subscription and one that ended", CustomerFacts{Subscriptions: []model.Subscription{paid("active", false, -10)}, LastLogin: &recent}, "expired"},
		{"a trial-only customer is not expired", CustomerFacts{Subscriptions: []model.Subscription{trial(-10)}, LastLogin: &recent}, ""},
		{"an ended subscription beside an active one is not expired", CustomerFacts{Subscriptions: []model.Subscription{paid("active", false, -10), paid("active", true, 100)}, LastLogin: &recent}, "subscription"},
		{"several at once: trial, subscription, expiring-soon, license-overage, no-recent-activity, suspended",
			CustomerFacts{Subscriptions: []model.Subscription{trial(3), paid("active", false, 20), paid("suspended", true, 300)}, Overage: true, LastLogin: &stale},
			"trial subscription expiring-soon license-overage no-recent-activity suspended"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(week.CustomerStatuses(tc.f), " "); got != tc.want {
				t.Fatalf("statuses = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCountedCustomersHaveCallingOrMeetingsAMessagingOnlyCustomerIsLeftOut(t *testing.T) {
	cases := map[string]bool{
		"calling":                     true,
		"ucm-cloud":                   true,
		"dedicated-instance":          true,
		"meetings messaging":          true,
		"messaging":                   false,
		"":                            false,
		"calling meetings messaging":  true,
		"dedicated-instance meetings": true,
	}
	for products, want := range cases {
		if got := Counted(strings.Fields(products)); got != want {
			t.Errorf("Counted(%q) = %v, want %v", products, got, want)
		}
	}
}

func TestLowAssignmentIsTheBottomQuartileNearestRankInclusiveAndBelow50Percent(t *testing.T) {
	ratios := []float64{0.9, 0.2, 0.45, 0.8, 0.3, 0.7, 0.6, 0.55} // n=8: rank ⌈2⌉ = 2nd smallest = 0.3
	cutoff := LowAssignmentCutoff(ratios)
	if cutoff != 0.3 {
		t.Fatalf("cutoff = %v, want 0.3 (the 2nd of 8 sorted)", cutoff)
	}
	cases := []struct {
		name  string
		ratio float64
		want  bool
	}{
		{"below the cutoff is low", 0.2, true},
		{"at the cutoff is low (inclusive)", 0.3, true},
		{"above the cutoff is not low", 0.45, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsLow(tc.ratio, cutoff, 0.5); got != tc.want {
				t.Fatalf("IsLow(%v) = %v, want %v", tc.ratio, got, tc.want)
			}
		})
	}
	// Bottom quartile but not below 50%: a partner whose customers all assign well.
	high := []float64{0.6, 0.7, 0.8, 0.9}
	if c := LowAssignmentCutoff(high); IsLow(0.6, c, 0.5) {
		t.Fatal("0.6 is in the bottom quartile but not below 50%: not low")
	}
	if c := LowAssignmentCutoff(high); !IsLow(0.6, c, 0.65) {
		t.Fatal("with a configured maximum of 65%, 0.6 is low")
	}
	// n=5: rank ⌈1.25⌉ = 2.
	if c := LowAssignmentCutoff([]float64{0.1, 0.2, 0.3, 0.4, 0.5}); c != 0.2 {
		t.Fatalf("n=5 cutoff = %v, want 0.2", c)
	}
}

func TestOverageIsTheSumOverLicenseTypesOfConsumedBeyondEntitled(t *testing.T) {
	rows := []model.SubscriptionUsage{
		{LicenseType: model.KnowledgeWorker, Entitled: 10, Consumed: 13},
		{LicenseType: model.CommonArea, Entitled: 5, Consumed: 2},
		{LicenseType: model.TelePresence, Entitled: 0, Consumed: 1},
	}
	if got := Overage(rows); got != 4 {
		t.Fatalf("overage = %d, want 3 + 0 + 1 = 4 (under-use elsewhere does not offset)", got)
	}
}

func TestPoorLegs(t *testing.T) {
	good := func() Leg {
		return Leg{AudioJitterMs: 10, AudioLatencyMs: 80, AudioLossPct: 0.2}
	}
	v := func(x float64) *float64 { return &x }
	withVideo := func(j, l, p float64) Leg {
		leg := good()
		leg.IsVideo, leg.VideoJitterMs, leg.VideoLatencyMs, leg.VideoLossPct = true, v(j), v(l), v(p)
		return leg
	}
	cases := []struct {
		name string
		leg  func() Leg
		want bool
	}{
		{"a good leg is not poor", good, false},
		{"poor by jitter alone (> 150 ms)", func() Leg { l := good(); l.AudioJitterMs = 150.1; return l }, true},
		{"jitter of exactly 150 ms is not poor", func() Leg { l := good(); l.AudioJitterMs = 150; return l }, false},
		{"poor by latency alone (> 400 ms)", func() Leg { l := good(); l.AudioLatencyMs = 401; return l }, true},
		{"poor by loss alone (> 5%)", func() Leg { l := good(); l.AudioLossPct = 5.5; return l }, true},
		{"poor on the video stream only (jitter)", func() Leg { return withVideo(200, 80, 0.1) }, true},
		{"poor on the video stream only (latency)", func() Leg { return withVideo(10, 450, 0.1) }, true},
		{"poor on the video stream only (loss)", func() Leg { return withVideo(10, 80, 7) }, true},
		{"a good video stream is not poor", func() Leg { return withVideo(10, 80, 0.1) }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leg := tc.leg()
			if got := DefaultThresholds.Poor(&leg); got != tc.want {
				t.Fatalf("Poor = %v, want %v", got, tc.want)
			}
		})
	}
	strict := Thresholds{JitterMs: 30, LatencyMs: 400, LossPct: 5}
	leg := good()
	leg.AudioJitterMs = 40
	if !strict.Poor(&leg) {
		t.Fatal("a configured jitter threshold of 30 ms makes 40 ms poor")
	}
}

func TestCallQueueKPIs(t *testing.T) {
	var q Queue
	for _, c := range []struct {
		outcome string
		wait    int64
	}{{"answered", 10}, {"answered", 30}, {"abandoned", 60}, {"abandoned", 20}, {"timed-out", 120}, {"overflowed", 90}, {"forwarded", 5}, {"answered", 20}} {
		q.Add(c.outcome, c.wait)
	}
	got := fmt.Sprintf("calls %d answered %d abandoned %d avg answer %.1f avg abandon wait %.1f abandon rate %.3f",
		q.Calls, q.Answered, q.Abandoned, *q.AvgAnswerSeconds(), *q.AvgAbandonWaitSeconds(), *q.AbandonRate())
	want := "calls 8 answered 3 abandoned 2 avg answer 20.0 avg abandon wait 40.0 abandon rate 0.250"
	if got != want {
		t.Fatalf("%s\nwant %s", got, want)
	}
	var empty Queue
	if empty.AvgAnswerSeconds() != nil || empty.AbandonRate() != nil {
		t.Fatal("no queued calls: averages are null, not zero")
	}
}

func TestMonthsBetween(t *testing.T) {
	d := func(s string) time.Time { t, _ := time.Parse("2006-01-02", s); return t }
	for _, c := range []struct {
		a, b string
		want int64
	}{{"2026-01-15", "2026-11-22", 10}, {"2026-01-25", "2026-11-22", 9}, {"2026-11-22", "2027-11-22", 12}, {"2026-11-22", "2026-11-01", -1}} {
		if got := MonthsBetween(d(c.a), d(c.b)); got != c.want {
			t.Errorf("MonthsBetween(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
