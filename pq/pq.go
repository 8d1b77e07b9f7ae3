// Package pq owns how tally writes and reads Parquet: zstd, bounded row groups,
// a fixed created-by so the same rows always give the same bytes, and readers that
// stream a file a batch at a time.
package pq

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"tally/internal/tmpfile"
)

// RowGroupRows bounds a row group. A writer's current row group waits in
// unlinked temporary files (pageSpill), so its size costs disk, not memory;
// readers hold each open file's footer, a few KiB of Go values per column
// per row group, so fewer groups keep a reader flat as files grow: at 32K
// rows, the week's 7 call files of a 100K-customer region held 16 MiB.
const RowGroupRows = 256 * 1024

// PageBytes is each column's page buffer. A sync holds a region's 9 writers
// open, of up to 30 columns: at parquet-go's default 256 KiB (and 36 writers
// open, as sync once had) the buffers alone were over 100 MiB of a
// 10K-customer sync's peak; 128 KiB pages doubled a 10K sync's peak RSS.
const PageBytes = 32 * 1024

// Writer streams rows of T into a Parquet file.
type Writer[T any] struct {
	w    *parquet.GenericWriter[T]
	rows int64
}

// codec is zstd at its fastest level: tally's own tables are written once a
// run and read a few times, and at parquet-go's default level compression was
// a quarter of a sync's CPU.
var codec = &zstd.Codec{Level: zstd.SpeedFastest}

// NewWriter starts a Parquet file of T on out.
func NewWriter[T any](out io.Writer) *Writer[T] {
	opts := []parquet.WriterOption{
		parquet.Compression(codec),
		parquet.MaxRowsPerRowGroup(RowGroupRows),
		parquet.PageBufferSize(PageBytes),
		parquet.ColumnPageBuffers(pageSpill{}),
		parquet.CreatedBy("tally", "1", "-"),
	}
	for _, path := range unbounded(parquet.SchemaOf(new(T))) {
		opts = append(opts, parquet.SkipPageBounds(path...))
	}
	return &Writer[T]{w: parquet.NewGenericWriter[T](out, opts...)}
}

// boundsKey is the one text column whose page and row-group bounds are
// written: tally's tables are sorted by it, so readers can skip row groups.
const boundsKey = "customer_id"

// unbounded lists T's other text columns. Their bounds would only say "all
// of it" (ids are random, names and labels repeat in every group), and the
// writer keeps every page's bounds, full length, until the footer: at 100K
// customers they were 9 MiB of a sync's 25 MiB of live memory.
func unbounded(s *parquet.Schema) [][]string {
	var out [][]string
	for _, path := range s.Columns() {
		leaf, _ := s.Lookup(path...)
		if leaf.Node.Type().Kind() == parquet.ByteArray && path[len(path)-1] != boundsKey {
			out = append(out, path)
		}
	}
	return out
}

// pageSpill is the parquet.BufferPool that keeps a column's compressed pages,
// until their row group is written, in a temporary file removed as soon as it
// is created (a killed run leaves nothing behind) instead of in memory. A
// writer spills at most one row group (the largest of tally's tables, a
// region's devices, is about 10 MiB at 256K rows); a column chunk of less than
// spillAfter bytes never leaves memory.
type pageSpill struct{}

// spillAfter is how much of a column chunk is held (and written at once).
const spillAfter = 8 << 10

func (pageSpill) GetBuffer() io.ReadWriteSeeker { return &spillBuffer{} }

func (pageSpill) PutBuffer(b io.ReadWriteSeeker) {
	if s, ok := b.(*spillBuffer); ok && s.f != nil {
		s.f.Close()
	}
}

// spillBuffer is written once, from the start, then read from the start
// (how parquet-go uses a page buffer): the first spillAfter bytes are held,
// and past that they go to the file a spillAfter at a time; it never holds
// more than spillAfter.
type spillBuffer struct {
	buf []byte // the pending bytes; all of them while f is nil
	r   int    // the read offset in buf while f is nil
	f   *os.File
}

func (b *spillBuffer) Write(p []byte) (int, error) {
	if len(b.buf)+len(p) > spillAfter {
		if err := b.flush(); err != nil {
			return 0, err
		}
		if len(p) > spillAfter {
			return b.f.Write(p) // a large page goes straight to the file
		}
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *spillBuffer) flush() error {
	if b.f == nil {
		f, err := tmpfile.Create("", "tally-pages-*")
		if err != nil {
			return fmt.Errorf("parquet page buffer: %w", err)
		}
		b.f = f
	}
	if _, err := b.f.Write(b.buf); err != nil {
		return fmt.Errorf("parquet page buffer: %w", err)
	}
	b.buf = b.buf[:0]
	return nil
}

func (b *spillBuffer) Seek(off int64, whence int) (int64, error) {
	if b.f != nil {
		if len(b.buf) > 0 {
			if err := b.flush(); err != nil {
				return 0, err
			}
		}
		return b.f.Seek(off, whence)
	}
	switch whence {
	case io.SeekCurrent:
		off += int64(b.r)
	case io.SeekEnd:
		off += int64(len(b.buf))
	}
	if off < 0 || off > int64(len(b.buf)) {
		return 0, fmt.Errorf("parquet page buffer: seek to %d of %d bytes", off, len(b.buf))
	}
	b.r = int(off)
	return off, nil
}

func (b *spillBuffer) Read(p []byte) (int, error) {
	if b.f != nil {
		return b.f.Read(p)
	}
	if b.r == len(b.buf) {
		return 0, io.EOF
	}
	n := copy(p, b.buf[b.r:])
	b.r += n
	return n, nil
}

// writeBatch bounds the rows handed to parquet-go at once: it buffers a whole
// call's values before it checks whether a page is full, so a customer's
// 50,000 devices written in one call grew every column's buffer (kept in its
// pool) to hold them all, and a sync's memory grew with its largest customer.
const writeBatch = 256

// Write appends rows.
func (w *Writer[T]) Write(rows ...T) error {
	for len(rows) > 0 {
		n, err := w.w.Write(rows[:min(len(rows), writeBatch)])
		w.rows += int64(n)
		if err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// Rows is how many rows were written.
func (w *Writer[T]) Rows() int64 { return w.rows }

// SetMeta sets a key-value pair of the file's footer (before Close).
func (w *Writer[T]) SetMeta(key, value string) { w.w.SetKeyValueMetadata(key, value) }

// Close writes the footer.
func (w *Writer[T]) Close() error { return w.w.Close() }

// WriteAll writes rows as one Parquet file on out and returns the row count.
func WriteAll[T any](out io.Writer, rows []T) (int64, error) {
	w := NewWriter[T](out)
	if err := w.Write(rows...); err != nil {
		return 0, err
	}
	return w.Rows(), w.Close()
}

// Reader streams rows of T out of a Parquet file, a row group at a time.
type Reader[T any] struct {
	file   *parquet.File
	schema *parquet.Schema    // T's
	groups []parquet.RowGroup // the file's
	g      int                // the next row group
	r      *parquet.GenericReader[T]
	buf    []T
	i, n   int
	err    error
}

// NewReader opens a Parquet file of size bytes for reading as T.
func NewReader[T any](ra io.ReaderAt, size int64) (*Reader[T], error) {
	// The page index and bloom filters are for readers that skip pages; tally
	// reads its tables whole, and the index grows with the file.
	f, err := parquet.OpenFile(ra, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return &Reader[T]{file: f, schema: parquet.SchemaOf(new(T)), groups: f.RowGroups(), buf: make([]T, 256)}, nil
}

// Next returns the next row; ok is false at the end or on error (see Err).
func (r *Reader[T]) Next() (row T, ok bool) {
	for r.i == r.n {
		if r.err != nil {
			return row, false
		}
		if r.r == nil {
			if r.g == len(r.groups) {
				r.err = io.EOF
				return row, false
			}
			r.r = parquet.NewGenericRowGroupReader[T](project(r.groups[r.g], r.schema))
			r.g++
		}
		clear(r.buf)
		r.n, r.err = r.r.Read(r.buf)
		r.i = 0
		if errors.Is(r.err, io.EOF) {
			r.err = r.r.Close()
			r.r = nil
		}
	}
	row = r.buf[r.i]
	r.i++
	return row, true
}

// Meta is a key-value pair of the file's footer.
func (r *Reader[T]) Meta(key string) (string, bool) { return r.file.Lookup(key) }

// Err is the first read error (nil at a clean end).
func (r *Reader[T]) Err() error {
	if r.err == nil || errors.Is(r.err, io.EOF) {
		return nil
	}
	return r.err
}

// Close releases the reader.
func (r *Reader[T]) Close() error {
	if r.r == nil {
		return nil
	}
	err := r.r.Close()
	r.r = nil
	return err
}

// projection is a row group seen through a narrower schema: the file's column
// chunks that schema names, in its order. parquet-go reads a file through
// another schema by converting every row (most of a narrow read's CPU); a
// row group whose schema is the reader's is read as it is.
type projection struct {
	parquet.RowGroup
	schema *parquet.Schema
	chunks []parquet.ColumnChunk
}

func (p *projection) Schema() *parquet.Schema             { return p.schema }
func (p *projection) ColumnChunks() []parquet.ColumnChunk { return p.chunks }
func (p *projection) Rows() parquet.Rows                  { return parquet.NewRowGroupRowReader(p) }

// project returns rg through schema when every column of schema is a flat
// column of rg of the same type and repetition; otherwise rg, which parquet-go
// converts (a column missing from an older file reads as its zero value).
func project(rg parquet.RowGroup, schema *parquet.Schema) parquet.RowGroup {
	if parquet.EqualNodes(schema, rg.Schema()) {
		return rg
	}
	chunks := make([]parquet.ColumnChunk, 0, len(schema.Fields()))
	for _, path := range schema.Columns() {
		want, _ := schema.Lookup(path...)
		have, ok := rg.Schema().Lookup(path...)
		if len(path) != 1 || !ok || want.Node.Repeated() || have.Node.Repeated() || want.Node.Optional() != have.Node.Optional() ||
			!parquet.EqualNodes(want.Node, have.Node) {
			return rg
		}
		chunks = append(chunks, rg.ColumnChunks()[have.ColumnIndex])
	}
	return &projection{RowGroup: rg, schema: schema, chunks: chunks}
}

// ReadAll reads every row of a (small) Parquet file.
func ReadAll[T any](ra io.ReaderAt, size int64) ([]T, error) {
	r, err := NewReader[T](ra, size)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []T
	for {
		row, ok := r.Next()
		if !ok {
			break
		}
		out = append(out, row)
	}
	return out, r.Err()
}
