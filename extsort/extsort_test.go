package extsort

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

type rec struct {
	Name  string
	N     int
	Added int // the order added, to check stability
	Opt   *int64
}

func byName(a, b *rec) int { return cmp.Compare(a.Name, b.Name) }

func TestRecordsComeBackSortedAndStableWhetherTheyStayInMemoryOrSpill(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, limit := range []int{1 << 20, 1000, 7} {
		var in []rec
		for i := range 5000 {
			v := int64(i)
			in = append(in, rec{Name: string(rune('a' + r.IntN(20))), N: r.IntN(100), Added: i, Opt: &v})
		}
		s := New(limit, byName)
		for _, v := range in {
			if err := s.Add(v); err != nil {
				t.Fatal(err)
			}
		}
		if limit < len(in) && s.Spilled() == 0 {
			t.Fatalf("limit %d: nothing spilled", limit)
		}
		if s.Spilled() > maxRuns {
			t.Fatalf("limit %d: %d run files open, want at most %d (runs are merged into one)", limit, s.Spilled(), maxRuns)
		}
		want := slices.Clone(in)
		slices.SortStableFunc(want, func(a, b rec) int { return byName(&a, &b) })
		var got []rec
		if err := s.Each(func(v *rec) error { got = append(got, *v); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("limit %d: %d records back, want %d", limit, len(got), len(want))
		}
		for i := range got {
			if got[i].Name != want[i].Name || got[i].Added != want[i].Added || *got[i].Opt != *want[i].Opt {
				t.Fatalf("limit %d: record %d = %+v, want %+v (sorted by name, ties in the order added)", limit, i, got[i], want[i])
			}
		}
	}
}
