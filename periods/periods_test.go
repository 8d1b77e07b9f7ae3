package periods

import (
	"strings"
	"testing"
	"time"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestLatestEnded(t *testing.T) {
	cases := []struct {
		name string
		c    Cadence
		asOf string
		want string
	}{
		{"daily latest is the day before T's date", Daily, "2026-11-22T00:05:00Z", "2026-11-21"},
		{"daily at midnight is the day before", Daily, "2026-11-22T00:00:00Z", "2026-11-21"},
		{"weekly latest ended at the last Sunday 00:00 <= T", Weekly, "2026-11-22T00:05:00Z", "2026-11-15"},
		{"weekly exactly at Sunday 00:00 is the week that just ended", Weekly, "2026-11-22T00:00:00Z", "2026-11-15"},
		{"weekly on a Saturday is the week before", Weekly, "2026-11-21T23:59:59Z", "2026-11-08"},
		{"monthly latest is the month before T's month", Monthly, "2026-11-01T00:00:00Z", "2026-10"},
		{"monthly across a year", Monthly, "2027-01-15T12:00:00Z", "2026-12"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Latest(tc.c, ts(tc.asOf)).ID(); got != tc.want {
				t.Fatalf("Latest(%s, %s) = %s, want %s", tc.c, tc.asOf, got, tc.want)
			}
		})
	}
}

func TestParseAndFormat(t *testing.T) {
	good := []struct {
		c        Cadence
		id, want string
	}{
		{Daily, "2026-11-21", "2026-11-21"},
		{Weekly, "2026-11-15", "2026-11-15"},
		{Weekly, "week:2026-11-15", "2026-11-15"},
		{Monthly, "2026-10", "2026-10"},
	}
	for _, g := range good {
		p, err := Parse(g.c, g.id)
		if err != nil {
			t.Fatalf("Parse(%s, %s): %v", g.c, g.id, err)
		}
		if p.ID() != g.want {
			t.Fatalf("Parse(%s, %s).ID() = %s", g.c, g.id, p.ID())
		}
	}
	bad := []struct {
		name  string
		c     Cadence
		id    string
		wants string
	}{
		{"a Tuesday as a week names the weekday and says a week starts on a Sunday", Weekly, "2026-11-17", "2026-11-17 is a Tuesday: a weekly period starts on a Sunday"},
		{"not a date", Daily, "yesterday", "bad daily period"},
		{"impossible date", Daily, "2026-02-30", "bad daily period"},
		{"a day as a month", Monthly, "2026-10-01", "bad monthly period"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			_, err := Parse(b.c, b.id)
			if err == nil || !strings.Contains(err.Error(), b.wants) {
				t.Fatalf("Parse(%s, %s) error = %v, want it to contain %q", b.c, b.id, err, b.wants)
			}
		})
	}
}

func TestWeeklyPeriodIsSundayToSundayUTC(t *testing.T) {
	p, _ := Parse(Weekly, "2026-11-15")
	if !p.Start.Equal(ts("2026-11-15T00:00:00Z")) || !p.End().Equal(ts("2026-11-22T00:00:00Z")) {
		t.Fatalf("week 2026-11-15 = [%s, %s)", p.Start, p.End())
	}
	days := p.Days()
	if len(days) != 7 || days[0].ID() != "2026-11-15" || days[6].ID() != "2026-11-21" {
		t.Fatalf("days of week = %v", days)
	}
	if p.LastDay().ID() != "2026-11-21" || p.Prev().ID() != "2026-11-08" || p.Next().ID() != "2026-11-22" {
		t.Fatalf("last day %s prev %s next %s", p.LastDay(), p.Prev(), p.Next())
	}
}

func TestMonthlyDays(t *testing.T) {
	p, _ := Parse(Monthly, "2026-02")
	if n := len(p.Days()); n != 28 {
		t.Fatalf("February 2026 has %d days, want 28", n)
	}
	if p.LastDay().ID() != "2026-02-28" || p.Next().ID() != "2026-03" {
		t.Fatalf("last day %s next %s", p.LastDay(), p.Next())
	}
}

func TestRangeInclusiveAndFromAfterTo(t *testing.T) {
	from, _ := Parse(Daily, "2026-10-01")
	to, _ := Parse(Daily, "2026-10-31")
	ps, err := Range(from, to)
	if err != nil || len(ps) != 31 || ps[30].ID() != "2026-10-31" {
		t.Fatalf("Range = %d periods, err %v", len(ps), err)
	}
	if _, err := Range(to, from); err == nil || !strings.Contains(err.Error(), "--from 2026-10-31 is after --to 2026-10-01") {
		t.Fatalf("--from after --to error = %v", err)
	}
}
