// Package extsort sorts more records than should be held in memory: runs of a
// bounded size are sorted and spilled to temporary files, then merged.
package extsort

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"tally/internal/tmpfile"
)

// Sorter sorts records of T (as JSON encodes them: exported fields; gob would
// turn a pointer to zero into nil) by cmp, holding at most limit of
// them in memory: each full run is sorted and written to a temporary file,
// removed as soon as it is created (a killed run leaves nothing behind), and
// the runs are merged as the records are read back. Records that compare
// equal keep the order they were added in.
type Sorter[T any] struct {
	cmp   func(a, b *T) int
	limit int
	run   []T
	files []*os.File
	err   error
}

// New returns a sorter that holds at most limit records in memory.
func New[T any](limit int, cmp func(a, b *T) int) *Sorter[T] {
	return &Sorter[T]{cmp: cmp, limit: max(limit, 1)}
}

// Add adds a record.
func (s *Sorter[T]) Add(v T) error {
	if s.err != nil {
		return s.err
	}
	s.run = append(s.run, v)
	if len(s.run) == s.limit {
		s.err = s.spill()
	}
	if s.err == nil && len(s.files) == maxRuns {
		s.err = s.compact()
	}
	return s.err
}

// maxRuns bounds the open run files (and the merge's heads): when as many
// runs have spilled, they are merged into one.
const maxRuns = 64

// Spilled is how many runs went to disk.
func (s *Sorter[T]) Spilled() int { return len(s.files) }

func (s *Sorter[T]) spill() error {
	slices.SortStableFunc(s.run, func(a, b T) int { return s.cmp(&a, &b) })
	f, err := tempFile()
	if err != nil {
		return err
	}
	s.files = append(s.files, f)
	w := bufio.NewWriterSize(f, 64<<10)
	enc := json.NewEncoder(w)
	for i := range s.run {
		if err := enc.Encode(&s.run[i]); err != nil {
			return fmt.Errorf("sort spill: %w", err)
		}
	}
	clear(s.run)
	s.run = s.run[:0]
	if err := w.Flush(); err != nil {
		return fmt.Errorf("sort spill: %w", err)
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

// compact merges the spilled runs into one run file, which takes their place
// (first, so ties still go to the records added earlier).
func (s *Sorter[T]) compact() error {
	f, err := tempFile()
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	enc := json.NewEncoder(w)
	err = s.merge(s.files, nil, func(v *T) error { return enc.Encode(v) })
	for _, old := range s.files {
		old.Close()
	}
	s.files = []*os.File{f}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return fmt.Errorf("sort spill: %w", err)
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

// tempFile is a temporary file removed as soon as it is created.
func tempFile() (*os.File, error) {
	f, err := tmpfile.Create("", "tally-sort-*")
	if err != nil {
		return nil, fmt.Errorf("sort spill: %w", err)
	}
	return f, nil
}

// Each calls fn with every record in order, then releases the sorter. The
// record is valid only during the call. The runs are merged through a heap,
// each read back a record at a time (a JSON decoder buffers a few KiB), so
// the merge holds one record per run, not a run.
func (s *Sorter[T]) Each(fn func(*T) error) error {
	defer s.Close()
	if s.err != nil {
		return s.err
	}
	slices.SortStableFunc(s.run, func(a, b T) int { return s.cmp(&a, &b) })
	return s.merge(s.files, s.run, fn)
}

// merge calls fn with the records of the run files, then of mem (sorted), in
// order. Runs are taken in the order they were added (files, then the one in
// memory): on a tie, the earlier run's record goes first, so the sort is
// stable.
func (s *Sorter[T]) merge(files []*os.File, mem []T, fn func(*T) error) error {
	m := &runHeap[T]{cmp: s.cmp}
	for i, f := range files {
		m.heads = append(m.heads, &head[T]{run: i, dec: json.NewDecoder(f)})
	}
	m.heads = append(m.heads, &head[T]{run: len(files), mem: mem})
	live := m.heads[:0]
	for _, h := range m.heads {
		if err := h.next(); err != nil {
			return err
		}
		if h.ok {
			live = append(live, h)
		}
	}
	m.heads = live
	heap.Init(m)
	for m.Len() > 0 {
		best := m.heads[0]
		if err := fn(&best.v); err != nil {
			return err
		}
		if err := best.next(); err != nil {
			return err
		}
		if best.ok {
			heap.Fix(m, 0)
		} else {
			heap.Pop(m)
		}
	}
	return nil
}

// head is a run's next record.
type head[T any] struct {
	v   T
	ok  bool
	run int // the order the run was added in
	dec *json.Decoder
	mem []T
}

func (h *head[T]) next() error {
	var zero T
	h.v = zero
	if h.dec == nil {
		h.ok = len(h.mem) > 0
		if h.ok {
			h.v, h.mem = h.mem[0], h.mem[1:]
		}
		return nil
	}
	err := h.dec.Decode(&h.v)
	h.ok = err == nil
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("sort spill: %w", err)
	}
	return nil
}

// runHeap is a heap of runs' heads, by record then by run (container/heap).
type runHeap[T any] struct {
	cmp   func(a, b *T) int
	heads []*head[T]
}

func (m *runHeap[T]) Len() int { return len(m.heads) }
func (m *runHeap[T]) Less(i, j int) bool {
	a, b := m.heads[i], m.heads[j]
	return cmp.Or(m.cmp(&a.v, &b.v), cmp.Compare(a.run, b.run)) < 0
}
func (m *runHeap[T]) Swap(i, j int) { m.heads[i], m.heads[j] = m.heads[j], m.heads[i] }
func (m *runHeap[T]) Push(x any)    { m.heads = append(m.heads, x.(*head[T])) }
func (m *runHeap[T]) Pop() any {
	h := m.heads[len(m.heads)-1]
	m.heads = m.heads[:len(m.heads)-1]
	return h
}

// Close releases the sorter's files (Each does it too).
func (s *Sorter[T]) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	s.files, s.run = nil, nil
	return errors.Join(errs...)
}
