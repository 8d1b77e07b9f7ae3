// Package extsort sorts more records than should be held in memory: runs of a
// bounded size are sorted and spilled to temporary files, then merged.
package extsort

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
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
	return s.err
}

// Spilled is how many runs went to disk.
func (s *Sorter[T]) Spilled() int { return len(s.files) }

func (s *Sorter[T]) spill() error {
	slices.SortStableFunc(s.run, func(a, b T) int { return s.cmp(&a, &b) })
	f, err := os.CreateTemp("", "tally-sort-*")
	if err != nil {
		return fmt.Errorf("sort spill: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return fmt.Errorf("sort spill: %w", err)
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

// Each calls fn with every record in order, then releases the sorter. The
// record is valid only during the call.
func (s *Sorter[T]) Each(fn func(*T) error) error {
	defer s.Close()
	if s.err != nil {
		return s.err
	}
	slices.SortStableFunc(s.run, func(a, b T) int { return s.cmp(&a, &b) })
	// Runs in the order they were added (files, then the one in memory): on
	// a tie, the earlier run's record goes first, so the sort is stable.
	type head struct {
		v   T
		ok  bool
		dec *json.Decoder
		mem []T
	}
	heads := make([]*head, 0, len(s.files)+1)
	next := func(h *head) error {
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
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("sort spill: %w", err)
		}
		return nil
	}
	for _, f := range s.files {
		heads = append(heads, &head{dec: json.NewDecoder(bufio.NewReaderSize(f, 64<<10))})
	}
	heads = append(heads, &head{mem: s.run})
	for _, h := range heads {
		if err := next(h); err != nil {
			return err
		}
	}
	for {
		var best *head
		for _, h := range heads {
			if h.ok && (best == nil || s.cmp(&h.v, &best.v) < 0) {
				best = h
			}
		}
		if best == nil {
			return nil
		}
		if err := fn(&best.v); err != nil {
			return err
		}
		if err := next(best); err != nil {
			return err
		}
	}
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
