package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"tally/license"
	"tally/model"
	"tally/pq"
	"tally/runner"
	"tally/storage"
	"tally/storage/local"
)

// usageTables reads every usage grain and the users snapshot of every region.
func usageTables(t *testing.T, s storage.Store) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, r := range model.Regions {
		out["users "+r] = readRows[license.User](t, s, InventoryKey("users", r, testDay))
		out["license "+r] = readRows[model.LicenseUse](t, s, UsageKey("license", r, testDay))
		out["cluster "+r] = readRows[model.ClusterUsage](t, s, UsageKey("cluster", r, testDay))
		out["subscription "+r] = readRows[model.SubscriptionUsage](t, s, UsageKey("subscription", r, testDay))
		out["customer "+r] = readRows[model.CustomerUsage](t, s, UsageKey("customer", r, testDay))
	}
	return out
}

func exists(t *testing.T, s storage.Store, key string) bool {
	t.Helper()
	_, err := s.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// Not parallel: it sets partRows, which parallel tests read after it.
func TestATableOfMoreRowsThanAPartIsWrittenAsNumberedPartsThatReadersReadWholeAndARerunRemovesItsStaleParts(t *testing.T) {
	ctx := context.Background()
	whole := setup(t, nil)
	if _, err := whole.r.Run(ctx, LicenseUsage, testDay, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	want := usageTables(t, whole.store)

	defer func(n int64) { partRows = n }(partRows)
	partRows = 50
	parted := setup(t, nil)
	if _, err := parted.r.Run(ctx, LicenseUsage, testDay, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	users := InventoryKey("users", "US", testDay)
	last := 0
	for exists(t, parted.store, PartKey(users, last+1)) {
		last++
	}
	n := len(want["users US"].([]license.User))
	if wantLast := (n+49)/50 - 1; last != wantLast || wantLast < 2 {
		t.Fatalf("US users (%d rows) in parts 0…%d, want 0…%d at 50 rows a part", n, last, wantLast)
	}
	if got := usageTables(t, parted.store); !reflect.DeepEqual(got, want) {
		t.Fatal("the usage computed from tables written in parts of 50 rows differs from the usage computed from whole tables")
	}

	// A part past the last, left by an earlier run whose removal of it never
	// ran, is not read: the last part's footer says how many there are.
	first, _, err := storage.ReadAll(ctx, parted.store, users)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parted.store.Put(ctx, PartKey(users, last+1), bytes.NewReader(first)); err != nil {
		t.Fatal(err)
	}
	if got := readRows[license.User](t, parted.store, users); !reflect.DeepEqual(got, want["users US"]) {
		t.Fatalf("with a stale part %d past the last, US users read as %d rows, want %d", last+1, len(got), len(want["users US"].([]license.User)))
	}
	rec, err := parted.r.Ledger().Latest(ctx, SyncClusters, testDay.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Rows["inventory/users"]; got != int64(len(want["users US"].([]license.User))+len(want["users CA"].([]license.User))+len(want["users EU"].([]license.User))+len(want["users UAE"].([]license.User))) {
		t.Fatalf("the ledger counts %d users over the parts", got)
	}
	partsRecorded := 0
	for _, o := range rec.Outputs {
		if runner.TableOf(o.Key) == "inventory/users" && o.Region == "US" {
			partsRecorded++
		}
	}
	if partsRecorded != last+1 {
		t.Fatalf("the ledger records %d parts of US users, %d were written", partsRecorded, last+1)
	}

	// The same day re-run with whole tables: one part each, the others gone.
	partRows = 1 << 20
	for _, job := range []string{SyncClusters, LicenseUsage} {
		if _, err := parted.r.Run(ctx, job, testDay, runner.Options{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	if !exists(t, parted.store, users) || exists(t, parted.store, PartKey(users, 1)) || exists(t, parted.store, PartKey(users, last)) {
		t.Fatalf("after a re-run in one part, parts 1…%d of %s should be gone and part 0 there", last, users)
	}
	if got := usageTables(t, parted.store); !reflect.DeepEqual(got, want) {
		t.Fatal("after the re-run in whole tables, the usage differs")
	}
	if got, want := checksums(t, parted.dir), checksums(t, whole.dir); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the re-run in whole tables, the files differ from a run that never wrote parts: %d files against %d", len(got), len(want))
	}
}

func TestPartKeyNamesTheNthPartBesideTheFirst(t *testing.T) {
	t.Parallel()
	key := InventoryKey("users", "US", testDay)
	for n, want := range map[int]string{0: key, 12: "inventory/users/region=US/day=2026-11-21/part-12.parquet"} {
		if got := PartKey(key, n); got != want {
			t.Errorf("PartKey(%q, %d) = %q, want %q", key, n, got, want)
		}
		if got, ok := partOf(want); !ok || got != n {
			t.Errorf("partOf(%q) = %d, %v", want, got, ok)
		}
	}
	for _, name := range []string{"x/part-.parquet", "x/part-01.parquet", "x/part--1.parquet", "x/part-1.jsonl", "x/apart-1.parquet"} {
		if _, ok := partOf(name); ok {
			t.Errorf("partOf(%q) is a part", name)
		}
	}
}

// putParts writes rows as parts of n rows under key's folder.
func putParts(t *testing.T, s storage.Store, key string, rows []model.SubscriptionUsage, n int) {
	t.Helper()
	for i := 0; i*n < len(rows); i++ {
		var buf bytes.Buffer
		if _, err := pq.WriteAll(&buf, rows[i*n:min(len(rows), (i+1)*n)]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(context.Background(), PartKey(key, i), &buf); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAPartPublishedAgainWhileItsTableIsReadFailsTheReadInsteadOfMixingTwoRuns(t *testing.T) {
	t.Parallel()
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := UsageKey("subscription", "US", testDay)
	rows := make([]model.SubscriptionUsage, 30)
	for i := range rows {
		rows[i] = model.SubscriptionUsage{CustomerID: fmt.Sprintf("c%04d", i), SubscriptionID: "s", LicenseType: model.KnowledgeWorker}
	}
	putParts(t, store, key, rows, 10)
	if got := readRows[model.SubscriptionUsage](t, store, key); !reflect.DeepEqual(got, rows) {
		t.Fatalf("3 parts read back as %d rows, not the 30 written in order", len(got))
	}

	in, err := openInput[model.SubscriptionUsage](context.Background(), store, key)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for range 10 {
		if _, ok := in.Next(); !ok {
			t.Fatalf("part 0 ended early: %v", in.Err())
		}
	}
	again := slices.Clone(rows)
	again[12].Consumed = 7 // a re-run with other results publishes part 1 again
	putParts(t, store, key, again, 10)
	if row, ok := in.Next(); ok || in.Err() == nil || !strings.Contains(in.Err().Error(), "changed while") {
		t.Fatalf("after part 1 was published again mid-read, Next gave %+v, %v, err %v; want a failed read", row, ok, in.Err())
	}
}
