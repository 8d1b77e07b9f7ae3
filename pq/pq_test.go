package pq

import (
	"bytes"
	"io"
	"testing"
	"time"
)

type date int32

type row struct {
	ID   string     `parquet:"id"`
	N    int64      `parquet:"n"`
	At   time.Time  `parquet:"at,timestamp(microsecond:utc)"`
	Opt  *string    `parquet:"opt,optional"`
	Tags []string   `parquet:"tags,list"`
	Day  date       `parquet:"day,date"`
	When *time.Time `parquet:"when,optional,timestamp(microsecond:utc)"`
}

func TestRoundTripAndSameRowsGiveSameBytes(t *testing.T) {
	s := "x"
	at := time.Date(2026, 11, 21, 10, 0, 0, 123000, time.UTC)
	rows := make([]row, 150000)
	for i := range rows {
		rows[i] = row{ID: "id", N: int64(i), At: at, Day: 20778, Tags: []string{"a", "b"}}
		if i%2 == 0 {
			rows[i].Opt = &s
			rows[i].When = &at
		}
	}
	var a, b bytes.Buffer
	if n, err := WriteAll(&a, rows); err != nil || n != int64(len(rows)) {
		t.Fatalf("write: %d %v", n, err)
	}
	WriteAll(&b, rows)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same rows gave different bytes")
	}
	got, err := ReadAll[row](bytes.NewReader(a.Bytes()), int64(a.Len()))
	if err != nil || len(got) != len(rows) {
		t.Fatalf("read %d rows, %v", len(got), err)
	}
	if g := got[149998]; g.N != 149998 || *g.Opt != "x" || !g.At.Equal(at) || len(g.Tags) != 2 || !g.When.Equal(at) || g.Day != 20778 {
		t.Fatalf("row 149998 = %+v", g)
	}
	if got[1].Opt != nil || got[1].When != nil {
		t.Fatalf("null did not round-trip: %+v", got[1])
	}
}

// narrow reads some of row's columns, in another order.
type narrow struct {
	When *time.Time `parquet:"when,optional,timestamp(microsecond:utc)"`
	N    int64      `parquet:"n"`
	Opt  *string    `parquet:"opt,optional"`
}

// wider has a column row's files lack.
type wider struct {
	N     int64   `parquet:"n"`
	Extra *string `parquet:"extra,optional"`
}

func TestAReaderOfSomeColumnsReadsThemAcrossRowGroupsWithoutConvertingRows(t *testing.T) {
	s := "x"
	at := time.Date(2026, 11, 21, 10, 0, 0, 123000, time.UTC)
	rows := make([]row, 3*RowGroupRows+5)
	for i := range rows {
		rows[i] = row{ID: "id", N: int64(i), At: at, Tags: []string{"a"}}
		if i%3 == 0 {
			rows[i].Opt, rows[i].When = &s, &at
		}
	}
	var buf bytes.Buffer
	if _, err := WriteAll(&buf, rows); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader[narrow](bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.groups) < 4 {
		t.Fatalf("%d row groups, want the rows across at least 4", len(r.groups))
	}
	if _, ok := project(r.groups[0], r.schema).(*projection); !ok {
		t.Fatal("a narrower schema of the same columns is read by conversion, not as a projection")
	}
	n := 0
	for got, ok := r.Next(); ok; got, ok = r.Next() {
		want := rows[n]
		if got.N != want.N || (got.Opt == nil) != (want.Opt == nil) || (got.When == nil) != (want.When == nil) ||
			(got.When != nil && !got.When.Equal(at)) || (got.Opt != nil && *got.Opt != s) {
			t.Fatalf("row %d = %+v, want n %d opt %v when %v", n, got, want.N, want.Opt, want.When)
		}
		n++
	}
	if err := r.Err(); err != nil || n != len(rows) {
		t.Fatalf("read %d rows (%v), want %d", n, err, len(rows))
	}

	all, err := ReadAll[wider](bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil || len(all) != len(rows) || all[7].N != 7 || all[7].Extra != nil {
		t.Fatalf("a column the file lacks: %d rows, %v", len(all), err)
	}
}

func TestAPageBufferReadsBackWhatWasWrittenHeldOrSpilledToAFile(t *testing.T) {
	for _, size := range []int{0, 100, spillAfter, 5*spillAfter + 7} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		b := pageSpill{}.GetBuffer()
		if _, err := b.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1000+len(rest)%3000)
			if w, err := b.Write(rest[:n]); err != nil || w != n {
				t.Fatalf("write %d: %d %v", n, w, err)
			}
			rest = rest[n:]
		}
		if off, err := b.Seek(0, io.SeekStart); err != nil || off != 0 {
			t.Fatalf("seek: %d %v", off, err)
		}
		got, err := io.ReadAll(b)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes written, %d read back (%v)", size, len(got), err)
		}
		spilled := b.(*spillBuffer).f != nil
		if spilled != (size > spillAfter) {
			t.Fatalf("%d bytes: spilled to a file = %v", size, spilled)
		}
		pageSpill{}.PutBuffer(b)
	}
}
