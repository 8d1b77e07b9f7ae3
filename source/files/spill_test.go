package files

import (
	"cmp"
	"math/rand/v2"
	"testing"
)

func TestASpillSortsMoreRecordsThanItsBufferHoldsThroughRunsOnDisk(t *testing.T) {
	s := newSpill[int](t.TempDir(), 100, func(a, b *int) int { return cmp.Compare(*a, *b) })
	want := map[int]int{}
	for i := 0; i < 2500; i++ {
		v := rand.IntN(1000)
		want[v]++
		if err := s.add(v); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.runs) < 24 {
		t.Fatalf("%d runs on disk, want the buffer flushed every 100 records", len(s.runs))
	}
	m, err := s.iter()
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	prev, n := -1, 0
	for {
		v, ok, err := m.next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if v < prev {
			t.Fatalf("%d after %d: not sorted", v, prev)
		}
		prev = v
		want[v]--
		n++
	}
	if n != 2500 {
		t.Fatalf("read %d records back, want 2500", n)
	}
	for v, c := range want {
		if c != 0 {
			t.Fatalf("value %d off by %d", v, c)
		}
	}
	s.remove()
}
