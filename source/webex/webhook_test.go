package webex_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"tally/model"
	"tally/source/webex"
	"tally/source/webex/cdrhook"
	"tally/source/webex/webextest"
	"tally/storage"
	"tally/storage/local"
)

// webhookSource is newSource with P1's calls by the webhook: its deliveries
// are stored by a receiver into an EU and a control store.
func webhookSource(t *testing.T, n int) (*webex.Source, *webextest.Fake, *cdrhook.Receiver) {
	t.Helper()
	s, f, _, _ := newSource(t, n)
	s.Accounts[0].Webhook = true
	eu, _ := local.New(t.TempDir())
	ctrl, _ := local.New(t.TempDir())
	s.Payloads = storage.Regional{Control: ctrl, Regions: map[string]storage.Store{"EU": eu}}
	rv := &cdrhook.Receiver{Partners: map[string]cdrhook.Partner{"P1": {ID: "P1", Secret: []byte("s")}}, Regions: s.Regions,
		Stores: s.Payloads, Log: zerolog.Nop()}
	return s, f, rv
}

func deliver(t *testing.T, rv *cdrhook.Receiver, bodies ...[]byte) {
	t.Helper()
	for _, b := range bodies {
		if _, err := rv.Store(context.Background(), "P1", b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPushedCallRecordsMakeTheDaysLegsByStartTimeOnceEachWhateverDeliveryBroughtThem(t *testing.T) {
	s, f, rv := webhookSource(t, 3)
	all := f.Deliveries("P1", day.Start.Add(-time.Hour), day.End().Add(time.Hour))
	// Out of order, and every delivery twice (the webhook may repeat records).
	for i := len(all) - 1; i >= 0; i-- {
		deliver(t, rv, all[i])
	}
	deliver(t, rv, all...)
	// A late, corrected record: the same Report ID with a later Report time
	// and a longer Duration. The latest Report time wins.
	org := f.Orgs[0]
	late := webex.CDR{}
	for k, v := range f.Data[org.ID].CDRs[0] {
		late[k] = v
	}
	late["Duration"], late["Report time"] = float64(999), "2026-11-22T01:00:00.000Z"
	b, _ := json.Marshal(map[string]any{"items": []webex.CDR{late}})
	deliver(t, rv, b)

	cds, err := collect(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if f.CallsFirst.Load() != 0 {
		t.Errorf("%d call-history requests: a webhook partner's calls come from the deliveries", f.CallsFirst.Load())
	}
	for k, cd := range cds {
		if want := webextest.DayLegs(k); len(cd.Calls) != want {
			t.Errorf("customer %d: %d legs, want %d", k, len(cd.Calls), want)
		}
		seen := map[string]bool{}
		for _, l := range cd.Calls {
			if seen[l.LegID] {
				t.Errorf("customer %d: leg %s twice", k, l.LegID)
			}
			seen[l.LegID] = true
			if l.StartTime.Before(day.Start) || !l.StartTime.Before(day.End()) {
				t.Errorf("customer %d: leg %s started %s, not on the day", k, l.LegID, l.StartTime)
			}
			if l.LegID == late["Report ID"] && l.DurationSeconds != 999 {
				t.Errorf("the corrected record: duration %d, want 999 (the latest Report time wins)", l.DurationSeconds)
			}
		}
	}
	notes := s.Notes(day)
	var recorded map[string]any
	b, _ = json.Marshal(notes)
	json.Unmarshal(b, &recorded)
	if _, ok := recorded["call_payloads"]; !ok {
		t.Fatalf("the day's notes do not record the deliveries read: %v", notes)
	}
	if why, err := s.Changed(context.Background(), day, recorded); err != nil || why != "" {
		t.Fatalf("nothing arrived since: %q, %v", why, err)
	}
	// A record of the day arrives after the day was synced: the day is stale.
	later := webex.CDR{}
	for k, v := range late {
		later[k] = v
	}
	later["Report ID"], later["Report time"] = "0a0a0a0a-0000-4000-8000-0000000late2", "2026-11-22T03:00:00.000Z"
	b, _ = json.Marshal(map[string]any{"items": []webex.CDR{later}})
	deliver(t, rv, b)
	if why, err := s.Changed(context.Background(), day, recorded); err != nil || !strings.Contains(why, "late records") {
		t.Fatalf("after a late record: %q, %v; want the day stale", why, err)
	}
}

func TestAWebhookDayWaitsForTheCallsLatenessOnly(t *testing.T) {
	s, _, _ := webhookSource(t, 1)
	clk := s.Clock.(interface{ Set(time.Time) })
	clk.Set(day.End().Add(2*time.Hour - time.Second))
	if _, err := collect(t, s); err == nil || !strings.Contains(err.Error(), "calls_lateness") {
		t.Fatalf("before the lateness window ends: %v, want waiting", err)
	}
	clk.Set(day.End().Add(2 * time.Hour))
	if cds, err := collect(t, s); err != nil || len(cds) != 1 || len(cds[0].Calls) != 0 {
		t.Fatalf("at day end + 2h with nothing delivered: %v, %v", cds, err)
	}
}

var _ = model.Regions
