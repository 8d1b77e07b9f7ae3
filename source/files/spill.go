package files

// A day is sorted on disk, never held: each entity's rows, and the call
// records' CMRs, sides and legs, go through a sorter of byte records (their
// sort key first, so bytes.Compare orders them). A sorter holds up to its
// budget of records, then writes them as a sorted run: the sort is skipped
// when they already are in order (a delivery sorted by customer, as tally's
// export writes, is checked, not assumed), and a buffer that follows on from
// the previous run extends it instead of starting another. Runs are merged in
// passes of at most fanIn before they are read, so the files open at once and
// the memory of a read stay bounded whatever a day holds. Runs are blocks
// compressed with S2 (klauspost/compress; zstd at its fastest level cost a
// 100K-customer day 12 CPU-s more, 1.57× the demo source's sync against the
// 1.5× goal, for 38% less temporary disk), in temporary files unlinked as soon
// as they are created: a killed run leaves nothing behind.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"

	"tally/internal/tmpfile"
)

const (
	// blockBytes is a run's unit of compression and of reading: a run open
	// for reading holds one block, compressed and not (about 46 KiB in all
	// with its read buffer).
	blockBytes = 8 << 10
	// fanIn bounds the runs merged at once (and read at once): more runs are
	// merged into fewer first. A 100K-customer day's largest entity is about
	// 70 runs, so it is read without a merge pass.
	fanIn = 128
	// readBuffer is each open run's read buffer.
	readBuffer = 16 << 10
	// sortBudget is how many bytes of records a sorter holds before it writes
	// a run. The buffer is live memory, which Go's collector lets the heap
	// grow to twice over: at 64 MiB a 100K day's sync peaked at 263 MiB.
	sortBudget = 16 << 20
)

// tmpSpace is where a day's runs go, and how much of it they take.
type tmpSpace struct {
	dir string
	mu  sync.Mutex
	// live is the bytes of runs not yet released; peak its most.
	live, peak int64
	runs       int    // runs written
	passes     int    // merge passes before reading
	arena      []byte // a sort buffer a finished sorter left for the next
}

// create is a new run file, already unlinked: it lives while it is open.
func (t *tmpSpace) create() (*os.File, error) {
	f, err := tmpfile.Create(t.dir, "tally-spill-*")
	if err != nil {
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
	w.comp = s2.Encode(w.comp[:cap(w.comp)], w.raw)
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
	pre       uint64 // cur's first 8 bytes
	done      bool   // no record is left (or err)
	err       error
}

func (r *run) open() *runReader {
	return &runReader{r: bufio.NewReaderSize(io.NewSectionReader(r.f, 0, r.size), readBuffer)}
}

// advance moves to the next record, or sets done.
func (r *runReader) advance() {
	if r.next() {
		r.pre = prefix(r.cur)
	} else {
		r.done, r.cur = true, nil
	}
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
		if r.raw, err = s2.Decode(slices.Grow(r.raw[:0], int(rawLen))[:rawLen], r.comp); err != nil {
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
	disordered      bool // the buffer is out of order (sorted when written)
}

func newSorter(t *tmpSpace, budget int) *sorter {
	return &sorter{t: t, budget: budget}
}

func (s *sorter) add(rec []byte) error {
	full := len(s.arena)+len(rec) > s.budget
	// A large buffer that was in order until this record is written as it is
	// (a delivery of sorted parts, call legs joined a cluster at a time).
	if n := len(s.recs); n > 0 && !s.disordered && !full && len(s.arena) >= s.budget/8 && bytes.Compare(rec, s.recs[n-1].of(s.arena)) < 0 {
		full = true
	}
	if full && len(s.recs) > 0 {
		if err := s.flush(); err != nil {
			return err
		}
	}
	if s.arena == nil {
		s.t.mu.Lock()
		s.arena, s.t.arena = s.t.arena, nil
		s.t.mu.Unlock()
		if cap(s.arena) < s.budget {
			s.arena = make([]byte, 0, s.budget)
		}
	}
	if n := len(s.recs); n > 0 && !s.disordered && len(s.arena) < s.budget/8 && bytes.Compare(rec, s.recs[n-1].of(s.arena)) < 0 {
		s.disordered = true
	}
	s.recs = append(s.recs, keyed{prefix(rec), uint32(len(s.arena)), uint32(len(rec))})
	s.arena = append(s.arena, rec...)
	return nil
}

// flush writes the buffer as a run, or onto the open run when it follows on.
func (s *sorter) flush() error {
	if len(s.recs) == 0 {
		return nil
	}
	s.flushes++
	cmp := func(a, b keyed) int {
		if a.prefix != b.prefix {
			if a.prefix < b.prefix {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.of(s.arena)[min(8, a.len):], b.of(s.arena)[min(8, b.len):]) // the first 8 are equal
	}
	if slices.IsSortedFunc(s.recs, cmp) {
		s.sorted++
	} else {
		slices.SortFunc(s.recs, cmp)
	}
	if s.open != nil && bytes.Compare(s.recs[0].of(s.arena), s.last) < 0 {
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
		if err := s.open.add(r.of(s.arena)); err != nil {
			return err
		}
	}
	s.last = append(s.last[:0], s.recs[len(s.recs)-1].of(s.arena)...)
	clear(s.recs)
	s.recs, s.arena, s.disordered = s.recs[:0], s.arena[:0], false
	return nil
}

// keyed is a buffered record (its place in the arena) with its first 8
// bytes as a number, so most comparisons of a sort are one integer comparison.
type keyed struct {
	prefix   uint64
	off, len uint32
}

func (k keyed) of(arena []byte) []byte { return arena[k.off : k.off+k.len] }

func prefix(rec []byte) uint64 {
	var b [8]byte
	copy(b[:], rec)
	return binary.BigEndian.Uint64(b[:])
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

// merged flushes what is buffered and returns every record in order. Past
// fanIn runs, the smallest are merged first, just enough of them to leave
// fanIn (so a few runs too many cost a merge of a few, not of all). The
// sorter is done with.
func (s *sorter) merged() (*merger, error) {
	if err := s.flush(); err != nil {
		s.discard()
		return nil, err
	}
	if err := s.close(); err != nil {
		s.discard()
		return nil, err
	}
	s.giveBack()
	runs := s.runs
	s.runs = nil
	s.inOrder = s.flushes > 0 && s.sorted == s.flushes && len(runs) == 1
	for len(runs) > fanIn {
		slices.SortStableFunc(runs, func(a, b *run) int { return int(a.size - b.size) })
		k := min(fanIn, len(runs)-fanIn+1)
		m := newMerger(s.t, runs[:k])
		w, err := newRunWriter(s.t)
		if err != nil {
			m.close()
			releaseAll(s.t, runs[k:])
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
			releaseAll(s.t, runs[k:])
			return nil, err
		}
		runs = append(runs[k:], r)
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
	s.runs = nil
	s.giveBack()
}

// giveBack leaves the sort buffer to the next sorter.
func (s *sorter) giveBack() {
	s.t.mu.Lock()
	if s.arena != nil {
		s.t.arena = s.arena[:0]
	}
	s.t.mu.Unlock()
	s.arena, s.recs = nil, nil
}

func releaseAll(t *tmpSpace, runs []*run) {
	for _, r := range runs {
		r.release(t)
	}
}

// merger reads several runs as one sorted stream, a record at a time,
// through a loser tree: each record taken costs one comparison per level, and
// most comparisons are of the records' first 8 bytes as integers.
type merger struct {
	t       *tmpSpace
	runs    []*run
	readers []*runReader
	tree    []int // tree[0]: the reader whose record is next; tree[1:]: the losers of each match
	pending bool  // tree[0]'s record was taken: it moves on at the next call
	err     error
}

func newMerger(t *tmpSpace, runs []*run) *merger {
	m := &merger{t: t, runs: runs}
	for _, r := range runs {
		rr := r.open()
		rr.advance()
		if rr.err != nil {
			m.err = rr.err
		}
		m.readers = append(m.readers, rr)
	}
	if len(m.readers) > 0 {
		m.tree = make([]int, len(m.readers))
		m.tree[0] = m.build(1)
	}
	return m
}

// build plays the matches under node (leaves: len(readers) on) and returns
// the winner, keeping each match's loser.
func (m *merger) build(node int) int {
	k := len(m.readers)
	if node >= k {
		return node - k
	}
	l, r := m.build(2*node), m.build(2*node+1)
	if m.before(r, l) {
		m.tree[node] = l
		return r
	}
	m.tree[node] = r
	return l
}

// before reports whether reader a's record comes before reader b's (an
// exhausted reader's comes last).
func (m *merger) before(a, b int) bool {
	ra, rb := m.readers[a], m.readers[b]
	switch {
	case ra.done:
		return false
	case rb.done:
		return true
	case ra.pre != rb.pre:
		return ra.pre < rb.pre
	case len(ra.cur) < 8 || len(rb.cur) < 8:
		return bytes.Compare(ra.cur, rb.cur) < 0
	}
	return bytes.Compare(ra.cur[8:], rb.cur[8:]) < 0
}

func (m *merger) advance() {
	if !m.pending {
		return
	}
	m.pending = false
	w := m.tree[0]
	r := m.readers[w]
	r.advance()
	if r.err != nil && m.err == nil {
		m.err = r.err
	}
	for node := (w + len(m.readers)) / 2; node >= 1; node /= 2 {
		if m.before(m.tree[node], w) {
			m.tree[node], w = w, m.tree[node]
		}
	}
	m.tree[0] = w
}

// peek is the next record without taking it: valid until next or peek.
func (m *merger) peek() ([]byte, bool) {
	m.advance()
	if m.err != nil || len(m.readers) == 0 || m.readers[m.tree[0]].done {
		return nil, false
	}
	return m.readers[m.tree[0]].cur, true
}

// next takes the next record: valid until next or peek. At the end, or on an
// error (m.err), ok is false.
func (m *merger) next() ([]byte, bool) {
	rec, ok := m.peek()
	m.pending = ok
	return rec, ok
}

// close releases the runs (their disk space with them).
func (m *merger) close() {
	releaseAll(m.t, m.runs)
	m.runs, m.readers, m.tree = nil, nil, nil
}
