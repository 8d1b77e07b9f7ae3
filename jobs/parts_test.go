package jobs

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"tally/license"
	"tally/model"
	"tally/runner"
	"tally/storage"
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
