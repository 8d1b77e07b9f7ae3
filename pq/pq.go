// Package pq owns how tally writes and reads Parquet: zstd, bounded row groups,
// a fixed created-by so the same rows always give the same bytes, and readers that
// stream a file a batch at a time.
package pq

import (
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// RowGroupRows bounds a row group, so a writer's memory does not grow with the
// file: each open writer holds its current row group's pages, and a sync keeps
// 36 open (9 tables in 4 regions). At 128K rows the big tables' groups filled
// only past 10K customers, so a sync's peak still grew with the estate.
const RowGroupRows = 32 * 1024

// PageBytes is each column's page buffer. A sync holds 36 writers open (9
// tables in 4 regions) of up to 30 columns: at parquet-go's default 256 KiB
// the buffers alone were over 100 MiB of a 10K-customer sync's peak.
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
	return &Writer[T]{w: parquet.NewGenericWriter[T](out,
		parquet.Compression(codec),
		parquet.MaxRowsPerRowGroup(RowGroupRows),
		parquet.PageBufferSize(PageBytes),
		parquet.CreatedBy("tally", "1", "-"),
	)}
}

// Write appends rows.
func (w *Writer[T]) Write(rows ...T) error {
	n, err := w.w.Write(rows)
	w.rows += int64(n)
	return err
}

// Rows is how many rows were written.
func (w *Writer[T]) Rows() int64 { return w.rows }

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

// Reader streams rows of T out of a Parquet file.
type Reader[T any] struct {
	r    *parquet.GenericReader[T]
	buf  []T
	i, n int
	err  error
}

// NewReader opens a Parquet file of size bytes for reading as T.
func NewReader[T any](ra io.ReaderAt, size int64) (*Reader[T], error) {
	// The page index and bloom filters are for readers that skip pages; tally
	// reads its tables whole, and the index grows with the file.
	f, err := parquet.OpenFile(ra, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return &Reader[T]{r: parquet.NewGenericReader[T](f), buf: make([]T, 256)}, nil
}

// Next returns the next row; ok is false at the end or on error (see Err).
func (r *Reader[T]) Next() (row T, ok bool) {
	if r.i == r.n {
		if r.err != nil {
			return row, false
		}
		clear(r.buf)
		r.n, r.err = r.r.Read(r.buf)
		r.i = 0
		if r.n == 0 {
			return row, false
		}
	}
	row = r.buf[r.i]
	r.i++
	return row, true
}

// Err is the first read error (nil at a clean end).
func (r *Reader[T]) Err() error {
	if r.err == nil || errors.Is(r.err, io.EOF) {
		return nil
	}
	return r.err
}

// Close releases the reader.
func (r *Reader[T]) Close() error { return r.r.Close() }

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
