package files

import (
	"bufio"
	"container/heap"
	"encoding/gob"
	"fmt"
	"io"
	"os"
	"slices"
)

// spill sorts more records than memory should hold: it keeps up to max in a
// buffer, writes each full buffer as a sorted run to a file in dir, and merges
// the runs (and the last buffer) when read. Memory stays about max records
// whatever the count; disk holds each record once.
type spill[T any] struct {
	dir  string
	max  int
	cmp  func(a, b *T) int
	buf  []T
	runs []string
}

func newSpill[T any](dir string, max int, cmp func(a, b *T) int) *spill[T] {
	return &spill[T]{dir: dir, max: max, cmp: cmp}
}

func (s *spill[T]) add(v T) error {
	s.buf = append(s.buf, v)
	if len(s.buf) >= s.max {
		return s.flush()
	}
	return nil
}

// flush writes the buffer as one sorted run.
func (s *spill[T]) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	slices.SortStableFunc(s.buf, func(a, b T) int { return s.cmp(&a, &b) })
	f, err := os.CreateTemp(s.dir, "run-*")
	if err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	w := bufio.NewWriterSize(f, 256*1024)
	enc := gob.NewEncoder(w)
	for i := range s.buf {
		if err := enc.Encode(&s.buf[i]); err != nil {
			f.Close()
			return fmt.Errorf("spill: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("spill: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	s.runs = append(s.runs, f.Name())
	clear(s.buf)
	s.buf = s.buf[:0]
	return nil
}

// fanIn bounds how many runs are merged at once: each open run holds a read
// buffer and a decoder, so merging all of a huge day's runs at once would make
// memory grow with the record count. More runs are merged in passes first.
const fanIn = 16

// iter reads every record in order (a merge of the runs).
func (s *spill[T]) iter() (*merged[T], error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	for len(s.runs) > fanIn {
		if err := s.mergeRuns(fanIn); err != nil {
			return nil, err
		}
	}
	return s.open(s.runs)
}

// mergeRuns merges the first n runs into one new run.
func (s *spill[T]) mergeRuns(n int) error {
	m, err := s.open(s.runs[:n])
	if err != nil {
		return err
	}
	defer m.close()
	f, err := os.CreateTemp(s.dir, "run-*")
	if err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	w := bufio.NewWriterSize(f, 256*1024)
	enc := gob.NewEncoder(w)
	for {
		v, ok, err := m.next()
		if err == nil && ok {
			err = enc.Encode(&v)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("spill: %w", err)
		}
		if !ok {
			break
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("spill: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	for _, r := range s.runs[:n] {
		os.Remove(r)
	}
	s.runs = append(s.runs[n:], f.Name())
	return nil
}

// open merges the given runs.
func (s *spill[T]) open(runs []string) (*merged[T], error) {
	m := &merged[T]{h: runHeapOf[T]{cmp: s.cmp}}
	for _, name := range runs {
		f, err := os.Open(name)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("spill: %w", err)
		}
		r := &run[T]{f: f, dec: gob.NewDecoder(bufio.NewReaderSize(f, 32*1024))}
		m.files = append(m.files, f)
		if ok, err := r.next(); err != nil {
			m.close()
			return nil, err
		} else if ok {
			m.h.runs = append(m.h.runs, r)
		}
	}
	heap.Init(&m.h)
	return m, nil
}

// remove deletes the run files.
func (s *spill[T]) remove() {
	for _, r := range s.runs {
		os.Remove(r)
	}
	s.runs = nil
}

type run[T any] struct {
	f   *os.File
	dec *gob.Decoder
	cur T
}

func (r *run[T]) next() (bool, error) {
	var v T
	if err := r.dec.Decode(&v); err == io.EOF {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("spill: read %s: %w", r.f.Name(), err)
	}
	r.cur = v
	return true, nil
}

// merged is a k-way merge of sorted runs, pulled one record at a time.
type merged[T any] struct {
	h     runHeapOf[T]
	files []*os.File
}

type runHeapOf[T any] struct {
	runs []*run[T]
	cmp  func(a, b *T) int
}

func (h runHeapOf[T]) Len() int           { return len(h.runs) }
func (h runHeapOf[T]) Less(i, j int) bool { return h.cmp(&h.runs[i].cur, &h.runs[j].cur) < 0 }
func (h runHeapOf[T]) Swap(i, j int)      { h.runs[i], h.runs[j] = h.runs[j], h.runs[i] }
func (h *runHeapOf[T]) Push(x any)        { h.runs = append(h.runs, x.(*run[T])) }
func (h *runHeapOf[T]) Pop() any {
	old := h.runs
	x := old[len(old)-1]
	h.runs = old[:len(old)-1]
	return x
}

// peek is the next record without taking it.
func (m *merged[T]) peek() (*T, bool) {
	if len(m.h.runs) == 0 {
		return nil, false
	}
	return &m.h.runs[0].cur, true
}

// next takes the next record.
func (m *merged[T]) next() (T, bool, error) {
	var zero T
	if len(m.h.runs) == 0 {
		return zero, false, nil
	}
	top := m.h.runs[0]
	v := top.cur
	ok, err := top.next()
	if err != nil {
		return zero, false, err
	}
	if ok {
		heap.Fix(&m.h, 0)
	} else {
		heap.Pop(&m.h)
	}
	return v, true, nil
}

func (m *merged[T]) close() {
	for _, f := range m.files {
		f.Close()
	}
}
