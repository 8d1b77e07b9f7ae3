package files

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// sortThrough adds recs to a sorter of the given budget and reads them back.
func sortThrough(t *testing.T, tmp *tmpSpace, budget int, recs [][]byte) (*sorter, [][]byte) {
	t.Helper()
	s := newSorter(tmp, budget)
	for _, r := range recs {
		if err := s.add(r); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.merged()
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	var out [][]byte
	for {
		r, ok := m.next()
		if !ok {
			break
		}
		out = append(out, slices.Clone(r))
	}
	if m.err != nil {
		t.Fatal(m.err)
	}
	return s, out
}

func TestASorterSortsMoreRecordsThanItsBudgetHoldsThroughRunsMergedInPassesOfBoundedFanIn(t *testing.T) {
	tmp := &tmpSpace{dir: t.TempDir()}
	var recs [][]byte
	for i := 0; i < 60_000; i++ {
		recs = append(recs, fmt.Appendf(nil, "%08d-%d", rand.IntN(1_000_000), i%7))
	}
	// 60,000 records of 10 bytes at 1 KiB a run: about 600 runs, more than
	// fanIn, so they are merged into fewer before they are read.
	_, got := sortThrough(t, tmp, 1<<10, recs)
	want := slices.Clone(recs)
	slices.SortFunc(want, bytes.Compare)
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("read back %d records, not the %d added in order", len(got), len(want))
	}
	// Each pass merges at most fanIn runs into one, just enough of them to
	// leave fanIn: from n runs, ceil((n-fanIn)/(fanIn-1)) passes.
	written := tmp.runs - tmp.passes // the buffers' runs (the others are the passes')
	if written < 550 || tmp.passes != (written-fanIn+fanIn-2)/(fanIn-1) {
		t.Fatalf("%d runs and %d merge passes, want the buffer written about every 100 records and merged %d at a time", tmp.runs, tmp.passes, fanIn)
	}
	if tmp.live != 0 || tmp.peak == 0 {
		t.Fatalf("temporary disk: %d bytes still held after the read (peak %d), want 0", tmp.live, tmp.peak)
	}
}

func TestRecordsThatArriveInOrderAreWrittenAsOneRunWithoutASort(t *testing.T) {
	tmp := &tmpSpace{dir: t.TempDir()}
	var recs [][]byte
	for i := 0; i < 5_000; i++ {
		recs = append(recs, fmt.Appendf(nil, "%08d", i))
	}
	s, got := sortThrough(t, tmp, 1<<10, recs)
	if !slices.EqualFunc(got, recs, bytes.Equal) {
		t.Fatal("records in order did not come back in order")
	}
	if tmp.runs != 1 || !s.inOrder || s.sorted != s.flushes {
		t.Fatalf("%d runs, %d of %d buffers in order: want one run that every buffer extended", tmp.runs, s.sorted, s.flushes)
	}
	// One record out of place: checked, not assumed.
	recs[2500], recs[2501] = recs[2501], recs[2500]
	s, got = sortThrough(t, &tmpSpace{dir: t.TempDir()}, 1<<10, recs)
	if s.inOrder || !slices.IsSortedFunc(got, bytes.Compare) {
		t.Fatal("a delivery with one row out of order was taken for sorted")
	}
}

func TestRunFilesAreUnlinkedAsSoonAsTheyAreCreated(t *testing.T) {
	dir := t.TempDir()
	tmp := &tmpSpace{dir: dir}
	s := newSorter(tmp, 1<<10)
	for i := 0; i < 2_000; i++ {
		if err := s.add(fmt.Appendf(nil, "%08d", rand.IntN(1e8))); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.merged()
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if tmp.runs < 2 || tmp.live == 0 {
		t.Fatalf("%d runs, %d bytes: want runs on disk", tmp.runs, tmp.live)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the runs are visible in the temp directory (%d entries): a killed run would leave them", len(entries))
	}
}
