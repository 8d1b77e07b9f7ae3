package demo

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"tally/model"
	"tally/periods"
	"tally/source"
)

func collect(t *testing.T, g *Generator, day periods.Period) []*source.CustomerDay {
	t.Helper()
	var out []*source.CustomerDay
	if err := g.Customers(context.Background(), day, func(cd *source.CustomerDay) error {
		out = append(out, cd)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func gen(t *testing.T, scale int, bad float64) *Generator {
	g, err := New(Options{Seed: 3, Scale: scale, BadRowRate: bad})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

var d1 = periods.Day(time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))

func TestTheEstateIsAPureFunctionOfSeedAndDay(t *testing.T) {
	a := collect(t, gen(t, 60, 0), d1)
	// A fresh generator that first generates other days must give the same day.
	g := gen(t, 60, 0)
	collect(t, g, d1.Next())
	collect(t, g, periods.Day(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)))
	b := collect(t, g, d1)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same (seed, day) gave different estates")
	}
	other, _ := New(Options{Seed: 4, Scale: 60})
	if reflect.DeepEqual(a, collect(t, other, d1)) {
		t.Fatal("a different seed gave the same estate")
	}
}

func TestTheEstateEvolvesDayByDay(t *testing.T) {
	g := gen(t, 200, 0)
	count := func(day periods.Period) (customers, devices, users int, subs map[string]string) {
		subs = map[string]string{}
		for _, cd := range collect(t, g, day) {
			customers++
			devices += len(cd.Devices)
			users += len(cd.Users)
			for _, s := range cd.Subscriptions {
				subs[s.SubscriberID] = s.EndDate.String()
			}
		}
		return
	}
	c1, dv1, u1, s1 := count(periods.Day(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)))
	c2, dv2, u2, s2 := count(periods.Day(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)))
	if c2 <= c1 {
		t.Errorf("no new customers between February and November: %d → %d", c1, c2)
	}
	if dv1 == dv2 || u1 == u2 {
		t.Errorf("devices/users did not change: %d→%d, %d→%d", dv1, dv2, u1, u2)
	}
	renewed, gone := 0, 0
	for id, end := range s1 {
		if e2, ok := s2[id]; !ok {
			gone++
		} else if e2 != end {
			renewed++
		}
	}
	if renewed == 0 || gone == 0 {
		t.Errorf("subscriptions neither renewed (%d) nor expired (%d) over nine months", renewed, gone)
	}
}

func TestTheEstateHasTheRealisticShapes(t *testing.T) {
	days := collect(t, gen(t, 200, 0), d1)
	regions := map[string]int{}
	var maxDevices, shared, tp, trials, autoRenew, expiringSoon, poor, queued, di12, legs, users, devices int
	for _, cd := range days {
		regions[cd.Region]++
		users += len(cd.Users)
		devices += len(cd.Devices)
		perUser := map[string]int{}
		for _, d := range cd.Devices {
			if d.UserID == nil {
				shared++
			} else {
				perUser[*d.UserID]++
			}
			if d.DeviceType == model.TelePresenceType {
				tp++
			}
		}
		for _, n := range perUser {
			maxDevices = max(maxDevices, n)
		}
		for _, s := range cd.Subscriptions {
			if s.IsTrial {
				trials++
			}
			if s.AutoRenew {
				autoRenew++
			}
			if days := s.EndDate.Time().Sub(d1.Start).Hours() / 24; days >= 0 && days < 60 {
				expiringSoon++
			}
		}
		clusters := map[string]bool{}
		for _, s := range cd.Servers {
			if s.Role == "publisher" && strings.HasPrefix(s.Version, "12.") {
				clusters[s.ClusterID] = true
			}
		}
		di12 += len(clusters)
		for _, l := range cd.Calls {
			legs++
			if l.AudioJitterMs > 150 || l.AudioLatencyMs > 400 || l.AudioLossPct > 5 || (l.VideoJitterMs != nil && *l.VideoJitterMs > 150) {
				poor++
			}
			if l.QueueOutcome != nil {
				queued++
			}
		}
	}
	n := len(days)
	for _, r := range model.Regions {
		if regions[r] == 0 {
			t.Errorf("no customers in region %s", r)
		}
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{fmt.Sprintf("about 40 users per customer (%d)", users/n), users/n >= 25 && users/n <= 55},
		{fmt.Sprintf("about 60 devices per customer (%d)", devices/n), devices/n >= 40 && devices/n <= 80},
		{fmt.Sprintf("users with up to 14 devices (max %d)", maxDevices), maxDevices >= 11 && maxDevices <= 14},
		{fmt.Sprintf("shared devices (%d)", shared), shared > 0},
		{fmt.Sprintf("TelePresence devices (%d)", tp), tp > 0},
		{fmt.Sprintf("trials (%d)", trials), trials > 0},
		{fmt.Sprintf("auto-renewing subscriptions (%d)", autoRenew), autoRenew > 0},
		{fmt.Sprintf("subscriptions expiring within 60 days (%d)", expiringSoon), expiringSoon > 0},
		{fmt.Sprintf("DI clusters with 12.x publishers (%d)", di12), di12 > 0},
		{fmt.Sprintf("a realistic share of poor legs (%d of %d)", poor, legs), poor > legs/50 && poor < legs/8},
		{fmt.Sprintf("call-queue outcomes (%d)", queued), queued > 0},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("the demo estate lacks %s", c.what)
		}
	}
}

func TestEveryRowIsValidWithoutBadRowsAndSomeAreMalformedWithThem(t *testing.T) {
	countBad := func(g *Generator) int {
		bad := 0
		for _, cd := range collect(t, g, d1) {
			rows := []model.Validator{&cd.Customer}
			for i := range cd.Users {
				rows = append(rows, &cd.Users[i])
			}
			for i := range cd.Devices {
				rows = append(rows, &cd.Devices[i])
			}
			for i := range cd.Numbers {
				rows = append(rows, &cd.Numbers[i])
			}
			for i := range cd.Calls {
				rows = append(rows, &cd.Calls[i])
			}
			for i := range cd.Subscriptions {
				rows = append(rows, &cd.Subscriptions[i])
			}
			for i := range cd.Orders {
				rows = append(rows, &cd.Orders[i])
			}
			for _, r := range rows {
				if r.Validate() != nil {
					bad++
				}
			}
		}
		return bad
	}
	if n := countBad(gen(t, 60, 0)); n != 0 {
		t.Fatalf("bad_row_rate 0 gave %d malformed rows", n)
	}
	if n := countBad(gen(t, 60, 0.01)); n == 0 {
		t.Fatal("bad_row_rate 0.01 gave no malformed rows")
	}
}

func TestScaleAndBadRowRateAreValidated(t *testing.T) {
	if _, err := New(Options{Scale: 0}); err == nil {
		t.Error("scale 0 accepted")
	}
	if _, err := New(Options{Scale: 10, BadRowRate: 1.5}); err == nil {
		t.Error("bad_row_rate 1.5 accepted")
	}
}
