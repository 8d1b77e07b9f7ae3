package periods

import (
	"testing"
	"time"
)

// Period ids come from the command line, CronJob args and storage keys.
func FuzzPeriodIDsParseToThemselvesOrAnErrorNeverAPanic(f *testing.F) {
	for _, s := range []string{"2026-11-21", "2026-11-15", "week:2026-11-15", "2026-10", "latest", "", "9999-12-31", "2026-02-30", "2026-13", "0000-01-01", "2026-11-21T00:00:00Z", " 2026-11-21"} {
		f.Add(s)
	}
	asOf := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, id string) {
		for _, c := range []Cadence{Daily, Weekly, Monthly} {
			p, err := Parse(c, id)
			if err != nil {
				continue
			}
			if p.Cadence != c || !p.End().After(p.Start) {
				t.Fatalf("Parse(%s, %q) = %+v: not a %s period", c, id, p, c)
			}
			back, err := Parse(c, p.ID())
			if err != nil || back != p {
				t.Fatalf("Parse(%s, %q).ID() = %q does not parse back to itself (%v)", c, id, p.ID(), err)
			}
			if _, err := ParseRef(c, id, asOf); err != nil {
				t.Fatalf("ParseRef refuses %q that Parse accepts: %v", id, err)
			}
			// A range to the latest ended period is bounded before it is built.
			if ps, err := RangeMax(p, Latest(c, asOf), 50, "max"); err == nil && len(ps) > 50 {
				t.Fatalf("RangeMax built %d periods over its bound", len(ps))
			}
		}
	})
}
