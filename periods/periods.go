// Package periods owns tally's data intervals: daily, weekly (Sunday 00:00 UTC) and
// monthly periods, their ids, arithmetic, the latest ended period as of a time, and
// ranges for backfills.
package periods

import (
	"fmt"
	"strings"
	"time"
)

// Cadence is how long a period lasts.
type Cadence string

// The cadences of §1.
const (
	Daily   Cadence = "daily"
	Weekly  Cadence = "weekly"
	Monthly Cadence = "monthly"
)

// ParseCadence checks a cadence name.
func ParseCadence(s string) (Cadence, error) {
	switch c := Cadence(s); c {
	case Daily, Weekly, Monthly:
		return c, nil
	}
	return "", fmt.Errorf("unknown cadence %q: want daily, weekly or monthly", s)
}

// Period is one data interval [Start, End) in UTC.
type Period struct {
	Cadence Cadence
	Start   time.Time
}

const dayLayout = "2006-01-02"
const monthLayout = "2006-01"

// Day returns the daily period of the UTC date of t.
func Day(t time.Time) Period {
	t = t.UTC()
	return Period{Daily, time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)}
}

// Week returns the weekly period that contains t.
func Week(t time.Time) Period {
	d := Day(t).Start
	return Period{Weekly, d.AddDate(0, 0, -int(d.Weekday()))}
}

// Month returns the monthly period that contains t.
func Month(t time.Time) Period {
	t = t.UTC()
	return Period{Monthly, time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)}
}

// Containing returns the period of cadence c that contains t.
func Containing(c Cadence, t time.Time) Period {
	switch c {
	case Weekly:
		return Week(t)
	case Monthly:
		return Month(t)
	}
	return Day(t)
}

// Parse reads a period id of cadence c: 2026-11-21 (daily), 2026-11-15 or
// week:2026-11-15 (weekly, a Sunday), 2026-10 (monthly).
func Parse(c Cadence, id string) (Period, error) {
	switch c {
	case Daily:
		t, err := time.Parse(dayLayout, id)
		if err != nil {
			return Period{}, fmt.Errorf("bad daily period %q: want a date like 2026-11-21", id)
		}
		return Period{Daily, t}, nil
	case Weekly:
		s := strings.TrimPrefix(id, "week:")
		t, err := time.Parse(dayLayout, s)
		if err != nil {
			return Period{}, fmt.Errorf("bad weekly period %q: want the Sunday it starts, like 2026-11-15 or week:2026-11-15", id)
		}
		if t.Weekday() != time.Sunday {
			return Period{}, fmt.Errorf("%s is a %s: a weekly period starts on a Sunday, and %s is not a Sunday (that week starts %s)", s, t.Weekday(), s, Week(t).ID())
		}
		return Period{Weekly, t}, nil
	case Monthly:
		t, err := time.Parse(monthLayout, id)
		if err != nil {
			return Period{}, fmt.Errorf("bad monthly period %q: want a month like 2026-10", id)
		}
		return Period{Monthly, t}, nil
	}
	return Period{}, fmt.Errorf("unknown cadence %q", c)
}

// ID is the period's id as used in storage keys and on the command line.
func (p Period) ID() string {
	if p.Cadence == Monthly {
		return p.Start.Format(monthLayout)
	}
	return p.Start.Format(dayLayout)
}

func (p Period) String() string { return p.ID() }

// IsZero reports whether p is the zero period.
func (p Period) IsZero() bool { return p.Cadence == "" }

// End is the first instant after the period.
func (p Period) End() time.Time { return p.Next().Start }

// Next is the period right after p.
func (p Period) Next() Period { return p.shift(1) }

// Prev is the period right before p.
func (p Period) Prev() Period { return p.shift(-1) }

func (p Period) shift(n int) Period {
	switch p.Cadence {
	case Weekly:
		return Period{Weekly, p.Start.AddDate(0, 0, 7*n)}
	case Monthly:
		return Period{Monthly, p.Start.AddDate(0, n, 0)}
	}
	return Period{Daily, p.Start.AddDate(0, 0, n)}
}

// Days lists the daily periods inside p, oldest first.
func (p Period) Days() []Period {
	var days []Period
	for d := Day(p.Start); d.Start.Before(p.End()); d = d.Next() {
		days = append(days, d)
	}
	return days
}

// LastDay is the last daily period inside p.
func (p Period) LastDay() Period { return Day(p.End().Add(-time.Nanosecond)) }

// Latest returns the latest period of cadence c that has ended at t.
func Latest(c Cadence, t time.Time) Period {
	return Containing(c, t).Prev()
}

// Range lists every period of cadence c from from to to, inclusive, oldest first.
func Range(from, to Period) ([]Period, error) {
	if from.Cadence != to.Cadence {
		return nil, fmt.Errorf("range mixes %s and %s periods", from.Cadence, to.Cadence)
	}
	if to.Start.Before(from.Start) {
		return nil, fmt.Errorf("--from %s is after --to %s", from.ID(), to.ID())
	}
	var ps []Period
	for p := from; !p.Start.After(to.Start); p = p.Next() {
		ps = append(ps, p)
	}
	return ps, nil
}

// ParseRef reads a CLI period reference: "latest" (the latest ended as of asOf)
// or an id. An empty reference is an error, not "latest": an unset variable in a
// CronJob's command line must not silently pick a period.
func ParseRef(c Cadence, ref string, asOf time.Time) (Period, error) {
	if ref == "latest" {
		return Latest(c, asOf), nil
	}
	if ref == "" {
		return Period{}, fmt.Errorf("empty period: want latest or an id like %s", Latest(c, asOf).ID())
	}
	return Parse(c, ref)
}

// Ended reports an error unless p has ended by now: a period that is still
// running (today, tomorrow, 9999-12-31) has no complete data to run on.
func Ended(p Period, now time.Time) error {
	if p.End().After(now) {
		return fmt.Errorf("period %s has not ended: %s ends %s", p.ID(), p.ID(), p.End().Format(time.RFC3339))
	}
	return nil
}

// RangeMax is Range refusing more than max periods before building them.
func RangeMax(from, to Period, max int, setting string) ([]Period, error) {
	if n := from.Cadence.count(from, to); n > max {
		return nil, fmt.Errorf("--from %s to --to %s is %d %s periods, more than %s (%d)", from.ID(), to.ID(), n, from.Cadence, setting, max)
	}
	return Range(from, to)
}

// count is how many periods [from, to] holds, computed without listing them.
func (c Cadence) count(from, to Period) int {
	if to.Start.Before(from.Start) {
		return 0
	}
	switch c {
	case Daily:
		return int(to.Start.Sub(from.Start).Hours()/24) + 1
	case Weekly:
		return int(to.Start.Sub(from.Start).Hours()/(24*7)) + 1
	}
	return (to.Start.Year()-from.Start.Year())*12 + int(to.Start.Month()-from.Start.Month()) + 1
}
