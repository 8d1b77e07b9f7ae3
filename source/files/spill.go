package files

// A day is sorted on disk, never held: each entity's rows, and the call
// records' CMRs, sides and legs, go through a sorter of byte records (their
// sort key first, so bytes.Compare orders them). A sorter holds up to its
// budget of records, then writes them as a sorted run: the sort is skipped
// when they already are in order (a delivery sorted by customer, as tally's
// export writes, is checked, not assumed), and a buffer that follows on from
// the previous run extends it instead of starting another. Runs are merged in
// passes of at most fanIn before they are read, so the files open at once and
// the memory of a read stay bounded whatever a day holds. Runs are zstd blocks
// in temporary files unlinked as soon as they are created: a killed run
// leaves nothing behind.

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

const (
	// blockBytes is a run's unit of compression and of reading: a run open
	// for reading holds one block, compressed and not.
	blockBytes = 32 << 10
	// fanIn bounds the runs merged at once (and read at once): more runs are
	// merged into fewer in passes first.
	fanIn = 16
	// readBuffer is each open run's read buffer: a few blocks a read.
	readBuffer = 16 << 10
	// sortBudget is how many bytes of records a sorter holds before it writes
	// a run.
	sortBudget = 16 << 20
)

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(1<<20))
)

// tmpSpace is where a day's runs go, and how much of it they take.
type tmpSpace struct {
	dir string
	mu  sync.Mutex
	// live is the bytes of runs not yet released; peak its most.
	live, peak int64
	runs       int // runs written
	passes     int // merge passes before reading
}

// create is a new run file, already unlinked: it lives while it is open.
func (t *tmpSpace) create() (*os.File, error) {
	f, err := os.CreateTemp(t.dir, "tally-spill-*")
	if err != nil {
		return nil, fmt.Errorf("spill (storage.tmp_dir): %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spill (storage.tmp_dir): %w", err)
	}
	return f, nil
}

func (t *tmpSpace) grow(n int64) {
	t.mu.Lock()
	t.live += n
	t.peak = max(t.peak, t.live)
	t.mu.Unlock()
}

// run is one sorted run on disk.
type run struct {
	f    *os.File
	size int64
}

func (r *run) release(t *tmpSpace) {
	r.f.Close()
	t.grow(-r.size)
}

// runWriter writes records as a run, a compressed block at a time.
type runWriter struct {
	t    *tmpSpace
	f    *os.File
	w    *bufio.Writer
	raw  []byte
	comp []byte
	size int64
}

func newRunWriter(t *tmpSpace) (*runWriter, error) {
	f, err := t.create()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.runs++
	t.mu.Unlock()
	return &runWriter{t: t, f: f, w: bufio.NewWriterSize(f, 64<<10), raw: make([]byte, 0, blockBytes+4096)}, nil
}

func (w *runWriter) add(rec []byte) error {
	w.raw = binary.AppendUvarint(w.raw, uint64(len(rec)))
	w.raw = append(w.raw, rec...)
	if len(w.raw) >= blockBytes {
		return w.block()
	}
	return nil
}

func (w *runWriter) block() error {
	if len(w.raw) == 0 {
		return nil
	}
	w.comp = zenc.EncodeAll(w.raw, w.comp[:0])
	var hdr [2 * binary.MaxVarintLen64]byte
	h := binary.AppendUvarint(hdr[:0], uint64(len(w.raw)))
	h = binary.AppendUvarint(h, uint64(len(w.comp)))
	if _, err := w.w.Write(h); err != nil {
		return fmt.Errorf("spill (storage.tmp_dir): %w", err)
	}
	if _, err := w.w.Write(w.comp); err != nil {
		return fmt.Errorf("spill (storage.tmp_dir): %w", err)
	}
	n := int64(len(h) + len(w.comp))
	w.size += n
	w.t.grow(n)
	w.raw = w.raw[:0]
	return nil
}

func (w *runWriter) finish() (*run, error) {
	if err := w.block(); err != nil {
		w.abort()
		return nil, err
	}
	if err := w.w.Flush(); err != nil {
		w.abort()
		return nil, fmt.Errorf("spill (storage.tmp_dir): %w", err)
	}
	return &run{f: w.f, size: w.size}, nil
}

func (w *runWriter) abort() {
	w.f.Close()
	w.t.grow(-w.size)
}

// runReader reads a run's records back, a block at a time.
type runReader struct {
	r         *bufio.Reader
	comp, raw []byte
	pos       int
	cur       []byte // the current record: valid until next
	err       error
}

func (r *run) open() *runReader {
	return &runReader{r: bufio.NewReaderSize(io.NewSectionReader(r.f, 0, r.size), readBuffer)}
}

// next moves to the next record; false at the end or on an error (err).
func (r *runReader) next() bool {
	if r.pos == len(r.raw) {
		rawLen, err := binary.ReadUvarint(r.r)
		if err == io.EOF {
			return false
		}
		compLen, err2 := binary.ReadUvarint(r.r)
		if err = errors.Join(err, err2); err != nil || rawLen > 1<<30 || compLen > 1<<30 {
			r.err = fmt.Errorf("spill: read a run: %v", err)
			return false
		}
		r.comp = slices.Grow(r.comp[:0], int(compLen))[:compLen]
		if _, err := io.ReadFull(r.r, r.comp); err != nil {
			r.err = fmt.Errorf("spill: read a run: %w", err)
			return false
		}
		if r.raw, err = zdec.DecodeAll(r.comp, slices.Grow(r.raw[:0], int(rawLen))); err != nil {
			r.err = fmt.Errorf("spill: read a run: %w", err)
			return false
		}
		r.pos = 0
	}
	n, k := binary.Uvarint(r.raw[r.pos:])
	if k <= 0 || uint64(len(r.raw)-r.pos-k) < n {
		r.err = errCorrupt
		return false
	}
	r.cur = r.raw[r.pos+k : r.pos+k+int(n)]
	r.pos += k + int(n)
	return true
}

// sorter sorts byte records through runs on disk.
type sorter struct {
	t      *tmpSpace
	budget int
	arena  []byte
	recs   []keyed
	runs   []*run
	open   *runWriter // the last run, still open for a buffer that follows on
	last   []byte     // its last record
	// flushes counts the buffers written, sorted those already in order;
	// inOrder says (once merged) that every buffer was, each following on from
	// the one before: the delivery needed no sort.
	flushes, sorted int
	inOrder         bool
}

func newSorter(t *tmpSpace, budget int) *sorter {
	return &sorter{t: t, budget: budget}
}

func (s *sorter) add(rec []byte) error {
	if len(s.arena)+len(rec) > s.budget && len(s.recs) > 0 {
		if err := s.flush(); err != nil {
			return err
		}
	}
	if s.arena == nil {
		s.arena = make([]byte, 0, s.budget)
	}
	start := len(s.arena)
	s.arena = append(s.arena, rec...)
	s.recs = append(s.recs, keyed{prefix(rec), s.arena[start:len(s.arena):len(s.arena)]})
	return nil
}

// flush writes the buffer as a run, or onto the open run when it follows on.
func (s *sorter) flush() error {
	if len(s.recs) == 0 {
		return nil
	}
	s.flushes++
	if slices.IsSortedFunc(s.recs, compareKeyed) {
		s.sorted++
	} else {
		slices.SortFunc(s.recs, compareKeyed)
	}
	if s.open != nil && bytes.Compare(s.recs[0].rec, s.last) < 0 {
		if err := s.close(); err != nil {
			return err
		}
	}
	if s.open == nil {
		w, err := newRunWriter(s.t)
		if err != nil {
			return err
		}
		s.open = w
	}
	for _, r := range s.recs {
		if err := s.open.add(r.rec); err != nil {
			return err
		}
	}
	s.last = append(s.last[:0], s.recs[len(s.recs)-1].rec...)
	clear(s.recs)
	s.recs, s.arena = s.recs[:0], s.arena[:0]
	return nil
}

// keyed is a buffered record with its first 8 bytes as a number, so most
// comparisons of a sort are one integer comparison.
type keyed struct {
	prefix uint64
	rec    []byte
}

func prefix(rec []byte) uint64 {
	var b [8]byte
	copy(b[:], rec)
	return binary.BigEndian.Uint64(b[:])
}

func compareKeyed(a, b keyed) int {
	if a.prefix != b.prefix {
		if a.prefix < b.prefix {
			return -1
		}
		return 1
	}
	return bytes.Compare(a.rec, b.rec)
}

// close finishes the open run.
func (s *sorter) close() error {
	if s.open == nil {
		return nil
	}
	r, err := s.open.finish()
	s.open = nil
	if err != nil {
		return err
	}
	s.runs = append(s.runs, r)
	return nil
}

// merged flushes what is buffered and returns every record in order, the runs
// merged first in passes of fanIn. The sorter is done with.
func (s *sorter) merged() (*merger, error) {
	if err := s.flush(); err != nil {
		s.discard()
		return nil, err
	}
	if err := s.close(); err != nil {
		s.discard()
		return nil, err
	}
	s.arena, s.recs = nil, nil
	runs := s.runs
	s.runs = nil
	s.inOrder = s.flushes > 0 && s.sorted == s.flushes && len(runs) == 1
	for len(runs) > fanIn {
		m := newMerger(s.t, runs[:fanIn])
		w, err := newRunWriter(s.t)
		if err != nil {
			m.close()
			releaseAll(s.t, runs[fanIn:])
			return nil, err
		}
		for err == nil {
			rec, ok := m.next()
			if !ok {
				err = m.err
				break
			}
			err = w.add(rec)
		}
		m.close()
		var r *run
		if err == nil {
			r, err = w.finish()
		} else {
			w.abort()
		}
		if err != nil {
			releaseAll(s.t, runs[fanIn:])
			return nil, err
		}
		runs = append(runs[fanIn:], r)
		s.t.mu.Lock()
		s.t.passes++
		s.t.mu.Unlock()
	}
	return newMerger(s.t, runs), nil
}

// discard lets the sorter's runs go.
func (s *sorter) discard() {
	if s.open != nil {
		s.open.abort()
		s.open = nil
	}
	releaseAll(s.t, s.runs)
	s.runs, s.arena, s.recs = nil, nil, nil
}

func releaseAll(t *tmpSpace, runs []*run) {
	for _, r := range runs {
		r.release(t)
	}
}

// merger reads several runs as one sorted stream, a record at a time.
type merger struct {
	t       *tmpSpace
	runs    []*run
	h       readerHeap
	pending *runReader // the reader whose record next returned: moved on at the next call
	err     error
}

func newMerger(t *tmpSpace, runs []*run) *merger {
	m := &merger{t: t, runs: runs}
	for _, r := range runs {
		rr := r.open()
		if rr.next() {
			m.h = append(m.h, rr)
		} else if rr.err != nil {
			m.err = rr.err
		}
	}
	heap.Init(&m.h)
	return m
}

func (m *merger) advance() {
	if m.pending == nil {
		return
	}
	r := m.pending
	m.pending = nil
	if r.next() {
		heap.Fix(&m.h, 0)
		return
	}
	if r.err != nil && m.err == nil {
		m.err = r.err
	}
	heap.Pop(&m.h)
}

// peek is the next record without taking it: valid until next or peek.
func (m *merger) peek() ([]byte, bool) {
	m.advance()
	if m.err != nil || len(m.h) == 0 {
		return nil, false
	}
	return m.h[0].cur, true
}

// next takes the next record: valid until next or peek. At the end, or on an
// error (m.err), ok is false.
func (m *merger) next() ([]byte, bool) {
	rec, ok := m.peek()
	if ok {
		m.pending = m.h[0]
	}
	return rec, ok
}

// close releases the runs (their disk space with them).
func (m *merger) close() {
	releaseAll(m.t, m.runs)
	m.runs, m.h = nil, nil
}

type readerHeap []*runReader

func (h readerHeap) Len() int           { return len(h) }
func (h readerHeap) Less(i, j int) bool { return bytes.Compare(h[i].cur, h[j].cur) < 0 }
func (h readerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *readerHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *readerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
