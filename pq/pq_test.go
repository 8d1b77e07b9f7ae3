package pq

import (
	"bytes"
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
