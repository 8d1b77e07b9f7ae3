package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/rs/zerolog"

	"tally/clock"
	"tally/model"
	"tally/periods"
	"tally/pq"
	"tally/runner"
	"tally/source"
	"tally/source/demo"
	"tally/storage"
	"tally/storage/local"
)

var testDay = periods.Period{Cadence: periods.Daily, Start: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)}

type fixture struct {
	dir   string
	store *local.Store
	src   source.Source
	r     *runner.Runner
}

func setup(t *testing.T, src source.Source) *fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if src == nil {
		src = newDemo(t, 0)
	}
	ledger := &runner.Ledger{Store: store}
	r := testRunner(store, time.Date(2026, 11, 22, 0, 15, 0, 0, time.UTC), &Sync{Source: src, EmptyGuard: true, Ledger: ledger}, &Usage{UnderThreshold: 0.5})
	return &fixture{dir: dir, store: store, src: src, r: r}
}

// testRunner runs jobs on store with one attempt per run and a fake clock at now.
func testRunner(store storage.Store, now time.Time, js ...runner.Job) *runner.Runner {
	cfg := runner.DefaultConfig()
	cfg.MaxAttempts = 1
	return runner.New(js, storage.Single(store, model.Regions), clock.NewFake(now), cfg, runner.Holder{Host: "t", PID: 1}, zerolog.Nop())
}

func demoSource(scale int) (*demo.Generator, error) {
	return demo.New(demo.Options{Seed: 7, Scale: scale})
}

func newDemo(t *testing.T, badRate float64) *demo.Generator {
	g, err := demo.New(demo.Options{Seed: 7, Scale: 40, BadRowRate: badRate})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// checksums maps every data file under dir to its sha256.
func checksums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || strings.Contains(p, "/.") || strings.Contains(p, "/_runs/") || strings.Contains(p, "/_leases/") {
			return nil
		}
		b, _ := os.ReadFile(p)
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	return out
}

func TestRunningAJobTwiceWithForceGivesByteIdenticalFiles(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := context.Background()
	if _, err := f.r.Run(ctx, LicenseUsage, testDay, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	first := checksums(t, f.dir)
	if len(first) < 40 {
		t.Fatalf("only %d files written", len(first))
	}
	for _, job := range []string{SyncClusters, LicenseUsage} {
		if _, err := f.r.Run(ctx, job, testDay, runner.Options{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	second := checksums(t, f.dir)
	for k, v := range first {
		if second[k] != v {
			t.Errorf("%s changed on a forced re-run", k)
		}
	}
	if len(first) != len(second) {
		t.Errorf("%d files before, %d after", len(first), len(second))
	}
}

// regionsOf asks the source which region each customer lives in.
func regionsOf(t *testing.T, src source.Source, day periods.Period) map[string]string {
	m := map[string]string{}
	src.Customers(context.Background(), day, func(cd *source.CustomerDay) error {
		m[cd.Customer.CustomerID] = cd.Region
		return nil
	})
	return m
}

func readRows[T any](t *testing.T, s storage.Store, key string) []T {
	t.Helper()
	rows, err := readAll[T](context.Background(), s, key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return rows
}

func TestDataResidencyARegionsRowsOnlyUnderItsOwnRegionPartition(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	if _, err := f.r.Run(context.Background(), LicenseUsage, testDay, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	home := regionsOf(t, f.src, testDay)
	seen := map[string]int{}
	check := func(region, key, customer string) {
		seen[region]++
		if home[customer] != region {
			t.Fatalf("%s holds customer %s of region %q", key, customer, home[customer])
		}
	}
	for _, region := range model.Regions {
		for _, c := range readRows[model.Customer](t, f.store, InventoryKey("customers", region, testDay)) {
			check(region, "customers", c.CustomerID)
		}
		for _, d := range readRows[model.Device](t, f.store, InventoryKey("devices", region, testDay)) {
			check(region, "devices", d.CustomerID)
		}
		for _, l := range readRows[model.CallLeg](t, f.store, CallsKey(region, testDay)) {
			check(region, "calls", l.CustomerID)
		}
		for _, u := range readRows[model.LicenseUse](t, f.store, UsageKey("license", region, testDay)) {
			check(region, "usage/license", u.CustomerID)
		}
		for _, u := range readRows[model.SubscriptionUsage](t, f.store, UsageKey("subscription", region, testDay)) {
			check(region, "usage/subscription", u.CustomerID)
		}
	}
	for _, region := range model.Regions {
		if seen[region] == 0 {
			t.Errorf("region %s has no rows: the test would prove nothing", region)
		}
	}
}

func columns(t *testing.T, path string) []string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fi, _ := fh.Stat()
	pf, err := parquet.OpenFile(fh, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range pf.Schema().Fields() {
		names = append(names, f.Name())
	}
	return names
}

// The §5 "Data contract": minimum columns, exact names.
var dataContract = map[string]string{
	"inventory/partners":      "partner_id, partner_name",
	"inventory/customers":     "customer_id, customer_name, partner_id, external_id, managed_by, products, created_at, last_admin_login_at",
	"inventory/subscriptions": "subscription_id, subscriber_id, customer_id, product, is_trial, status, start_date, end_date, auto_renew, licenses_total, licenses_assigned, licenses_used_7d, provisioning_statuses",
	"inventory/orders":        "order_id, customer_id, partner_id, subscriber_id, license_type, quantity",
	"inventory/clusters":      "cluster_id, customer_id, fqdn, version",
	"inventory/servers":       "server_id, cluster_id, host, role, version",
	"inventory/users":         "user_id, customer_id, cluster_id, email, has_extension_mobility, has_mobile_client, has_directory_profile",
	"inventory/devices":       "device_id, customer_id, cluster_id, user_id, device_type, product, mac, firmware, location_id, location_name, phone_number, extension",
	"inventory/numbers":       "number, extension, customer_id, location_id, location_name, country, pstn_connection, is_active, user_type, number_type, user_id, user_uuid",
	"usage/license":           "customer_id, subscriber_id, cluster_id, entity_type, entity_id, license_type",
	"usage/subscription":      "subscription_id, subscriber_id, customer_id, license_type, entitled, consumed, compliance",
	"usage/cluster":           "cluster_id, fqdn, publisher, customer_id, knowledge_worker, common_area, telepresence",
	"usage/customer":          "customer_id, license_type, entitled, consumed",
	"calls":                   "leg_id, call_id, customer_id, location_id, user_id, device_type, start_time, duration_seconds, direction, is_video, audio_jitter_ms, audio_latency_ms, audio_loss_pct, video_jitter_ms, video_latency_ms, video_loss_pct, routed_via, queue_outcome, queue_wait_seconds",
}

func TestEveryTableHasTheDataContractColumnsInSnakeCaseAndNoPartitionColumns(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	if _, err := f.r.Run(context.Background(), LicenseUsage, testDay, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	for table, want := range dataContract {
		key := strings.Replace(InventoryKey("x", "EU", testDay), "inventory/x", table, 1)
		cols := columns(t, filepath.Join(f.dir, key))
		for _, c := range strings.Split(want, ", ") {
			if !slices.Contains(cols, c) {
				t.Errorf("%s lacks column %s (has %v)", table, c, cols)
			}
		}
		for _, c := range cols {
			if c == "region" || c == "day" || c == "week" {
				t.Errorf("%s has partition column %s inside the file", table, c)
			}
			if c != strings.ToLower(c) || strings.ContainsAny(c, " -") {
				t.Errorf("%s column %q is not snake_case", table, c)
			}
		}
	}
}

func TestMalformedSourceRowsAreQuarantinedWithTheirReasonNeverDropped(t *testing.T) {
	t.Parallel()
	src := newDemo(t, 0.02)
	f := setup(t, src)
	res, err := f.r.Run(context.Background(), SyncClusters, testDay, runner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Every source row is either written or quarantined.
	fromSource := map[string]int64{}
	src.Customers(context.Background(), testDay, func(cd *source.CustomerDay) error {
		fromSource["devices"] += int64(len(cd.Devices))
		fromSource["users"] += int64(len(cd.Users))
		fromSource["calls"] += int64(len(cd.Calls))
		fromSource["numbers"] += int64(len(cd.Numbers))
		return nil
	})
	rec := res.Record
	if rec.Counts["quarantined"] == 0 {
		t.Fatal("bad_row_rate 0.02 quarantined nothing")
	}
	for entity, n := range fromSource {
		table := "inventory/" + entity
		if entity == "calls" {
			table = "calls"
		}
		if got := rec.Rows[table] + rec.Counts["quarantined/"+entity]; got != n {
			t.Errorf("%s: %d written + %d quarantined = %d, source had %d", entity, rec.Rows[table], rec.Counts["quarantined/"+entity], got, n)
		}
	}
	// The quarantine file says why.
	b, err := os.ReadFile(filepath.Join(f.dir, QuarantineKey("devices", "US", testDay)))
	if err != nil {
		t.Fatal(err)
	}
	var line struct {
		Reason string         `json:"reason"`
		Row    map[string]any `json:"row"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(string(b), "\n", 2)[0]), &line); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line.Reason, "device_type") || line.Row["device_id"] == nil {
		t.Fatalf("quarantine line = %+v", line)
	}
}

func TestUsageTotalsAgreeAcrossGrains(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	if _, err := f.r.Run(context.Background(), LicenseUsage, testDay, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, region := range model.Regions {
		perLicense := map[string]int64{}
		for _, u := range readRows[model.LicenseUse](t, f.store, UsageKey("license", region, testDay)) {
			perLicense[u.LicenseType]++
		}
		perCustomer := map[string]int64{}
		for _, u := range readRows[model.CustomerUsage](t, f.store, UsageKey("customer", region, testDay)) {
			perCustomer[u.LicenseType] += u.Consumed
		}
		if fmt.Sprint(perLicense) != fmt.Sprint(perCustomer) {
			t.Errorf("%s: usage/license %v vs usage/customer %v", region, perLicense, perCustomer)
		}
		subs := readRows[model.SubscriptionUsage](t, f.store, UsageKey("subscription", region, testDay))
		if len(subs)%3 != 0 {
			t.Errorf("%s: %d subscription rows: every calling subscription has one per license type", region, len(subs))
		}
	}
}

// dropDevices is a source whose export lost every device on one day.
type dropDevices struct {
	source.Source
	day string
}

func (d dropDevices) Customers(ctx context.Context, day periods.Period, fn func(*source.CustomerDay) error) error {
	return d.Source.Customers(ctx, day, func(cd *source.CustomerDay) error {
		if day.ID() == d.day {
			cd.Devices = nil
		}
		return fn(cd)
	})
}

func TestADayWithZeroRowsForAnEntityThatHadRowsTheDayBeforeIsAnError(t *testing.T) {
	t.Parallel()
	f := setup(t, dropDevices{Source: newDemo(t, 0), day: testDay.ID()})
	ctx := context.Background()
	if _, err := f.r.Run(ctx, SyncClusters, testDay.Prev(), runner.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err := f.r.Run(ctx, SyncClusters, testDay, runner.Options{})
	if err == nil || !strings.Contains(err.Error(), "no inventory/devices rows") {
		t.Fatalf("err = %v, want the empty guard to refuse", err)
	}
	if _, err := f.store.Stat(ctx, InventoryKey("users", "US", testDay)); err == nil {
		t.Fatal("the refused day published files")
	}
}

// lastRegionFirst is a source that breaks the contract: it yields the last
// region's customers first.
type lastRegionFirst struct{ source.Source }

func (l lastRegionFirst) Customers(ctx context.Context, day periods.Period, fn func(*source.CustomerDay) error) error {
	var held []*source.CustomerDay
	last := model.Regions[len(model.Regions)-1]
	err := l.Source.Customers(ctx, day, func(cd *source.CustomerDay) error {
		if cd.Region == last {
			return fn(cd)
		}
		held = append(held, cd)
		return nil
	})
	for _, cd := range held {
		if err == nil {
			err = fn(cd)
		}
	}
	return err
}

// SPEC §2 (sources yield customers ordered by region, then customer_id): sync
// finishes a region's files when the source moves on, so a source that comes
// back to an earlier region fails the day, naming the rule, and publishes nothing.
func TestASourceThatYieldsCustomersOutOfRegionOrderFailsTheDayAndPublishesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, lastRegionFirst{newDemo(t, 0)})
	_, err := f.r.Run(context.Background(), SyncClusters, testDay, runner.Options{})
	if err == nil || !strings.Contains(err.Error(), "ordered by region") || !runner.IsPermanent(err) {
		t.Fatalf("err = %v, want a permanent error naming the ordering rule", err)
	}
	for _, region := range model.Regions {
		if _, err := f.store.Stat(context.Background(), InventoryKey("users", region, testDay)); err == nil {
			t.Fatalf("region %s: the failed day published files", region)
		}
	}
}

func TestSyncNotesClustersAndPublishersNewSinceThePreviousSnapshot(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := context.Background()
	// Far apart, so the estate has grown new clusters in between.
	old := periods.Day(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if _, err := f.r.Run(ctx, SyncClusters, old, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	res, err := f.r.Run(ctx, SyncClusters, old.Next(), runner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Record.Notes["new_clusters"]; !ok {
		t.Fatalf("notes = %v, want new_clusters", res.Record.Notes)
	}
	first, _ := f.r.Ledger().Latest(ctx, SyncClusters, old.ID())
	if first.Notes["new_since_previous"] == nil {
		t.Fatalf("the first snapshot should say it had nothing to compare with: %v", first.Notes)
	}
}

func TestAnInputWhoseFirstPageCannotBeReadIsAnErrorNotAnEmptyTable(t *testing.T) {
	t.Parallel()
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]model.SubscriptionUsage, 1000)
	for i := range rows {
		rows[i] = model.SubscriptionUsage{CustomerID: fmt.Sprintf("c%04d", i), SubscriptionID: "s", LicenseType: model.KnowledgeWorker}
	}
	var buf bytes.Buffer
	if _, err := pq.WriteAll(&buf, rows); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	for i := 4; i < 64; i++ {
		b[i] ^= 0xff // the first page's header, after the magic; the footer stays whole
	}
	key := "usage/subscription/region=US/day=2026-11-21/part-0.parquet"
	if _, err := store.Put(context.Background(), key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	s, err := openStream(context.Background(), store, key, func(u *model.SubscriptionUsage) string { return u.CustomerID })
	if err == nil {
		k, ok := s.peek()
		s.close()
		t.Fatalf("a stream over a file whose first page is corrupt opened (next customer %q, %v): a merge would take it for an empty input", k, ok)
	}
	if !strings.Contains(err.Error(), key) {
		t.Fatalf("error %q does not name the input", err)
	}
}
