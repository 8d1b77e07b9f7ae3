package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tally/model"
	"tally/periods"
	"tally/pq"
	"tally/source"
	"tally/storage/local"
)

// streamingSource yields n customers; every third has a CallStream that
// reads the source's cursor, as the files source's CDR spill does: reading it
// after the source has moved on is an error.
type streamingSource struct {
	n      int
	cursor atomic.Int64 // the customer the source is on
	yields atomic.Int64 // customers handed to fn
	err    error        // returned by Customers after n customers
}

func (s *streamingSource) Name() string { return "streaming" }
func (s *streamingSource) Partners(context.Context, periods.Period) ([]model.Partner, error) {
	return nil, nil
}

func (s *streamingSource) Customers(ctx context.Context, day periods.Period, fn func(*source.CustomerDay) error) error {
	for i := range s.n {
		s.cursor.Store(int64(i))
		cd := &source.CustomerDay{Region: "US", Customer: model.Customer{CustomerID: fmt.Sprintf("c%04d", i)}}
		if i%3 == 0 {
			cd.CallStream = func(yield func(model.CallLeg) error) error {
				if at := s.cursor.Load(); at != int64(i) {
					return fmt.Errorf("customer %d's calls read while the source is on customer %d", i, at)
				}
				return yield(model.CallLeg{LegID: fmt.Sprint(i)})
			}
		}
		s.yields.Add(1)
		if err := fn(cd); err != nil {
			return err
		}
	}
	return s.err
}

func TestSyncPullsCustomersAheadInOrderButACallStreamIsReadBeforeTheSourceMovesOn(t *testing.T) {
	src := &streamingSource{n: 200}
	var got []string
	err := pullAhead(context.Background(), src, periods.Day(time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC)), func(cd *source.CustomerDay) error {
		got = append(got, cd.Customer.CustomerID)
		return cd.EachCall(func(model.CallLeg) error { return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != src.n {
		t.Fatalf("%d customers written, want %d", len(got), src.n)
	}
	for i, id := range got {
		if want := fmt.Sprintf("c%04d", i); id != want {
			t.Fatalf("customer %d written is %s, want %s (the source's order)", i, id, want)
		}
	}
}

func TestAWriteErrorStopsTheSourceAndIsTheSyncsError(t *testing.T) {
	src := &streamingSource{n: 10_000}
	boom := errors.New("disk full")
	written := 0
	err := pullAhead(context.Background(), src, periods.Day(time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC)), func(cd *source.CustomerDay) error {
		if written++; written == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want the write's (%v)", err, boom)
	}
	// At most: the queue's, the one the source was handing over, and one more
	// it may hand over as the queue drains before it sees the cancel.
	if n, most := src.yields.Load(), int64(10+aheadCustomers+2); n > most {
		t.Fatalf("the source yielded %d customers when the write failed at the 10th, want at most %d", n, most)
	}
	if written != 10 {
		t.Fatalf("%d customers written, want none after the failed 10th", written)
	}
}

func TestASourceErrorIsTheSyncsErrorAfterTheCustomersBeforeItAreWritten(t *testing.T) {
	boom := errors.New("api: 503")
	src := &streamingSource{n: 7, err: boom}
	written := 0
	err := pullAhead(context.Background(), src, periods.Day(time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC)), func(*source.CustomerDay) error { written++; return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want the source's (%v)", err, boom)
	}
	if written != 7 {
		t.Fatalf("%d customers written before the source failed, want 7", written)
	}
}

func TestAStreamGivesACustomersRowsOneAtATimeAndFailsWhenTheInputIsNotSortedByCustomer(t *testing.T) {
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(key string, ids ...string) {
		var rows []model.Cluster
		for i, id := range ids {
			rows = append(rows, model.Cluster{ClusterID: fmt.Sprint(i), CustomerID: id})
		}
		var buf bytes.Buffer
		if _, err := pq.WriteAll(&buf, rows); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(ctx, key, &buf); err != nil {
			t.Fatal(err)
		}
	}
	byCustomer := func(c *model.Cluster) string { return c.CustomerID }

	put("sorted/part-0.parquet", "a", "b", "b", "c", "d", "d", "d")
	s, err := openStream(ctx, store, "sorted/part-0.parquet", byCustomer)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var got []string
	if err := s.each("b", func(c *model.Cluster) { got = append(got, c.ClusterID) }); err != nil {
		t.Fatal(err)
	}
	if err := s.each("d", func(c *model.Cluster) { got = append(got, c.ClusterID) }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"1", "2", "4", "5", "6"}; !slices.Equal(got, want) {
		t.Fatalf("rows of b then d = %v, want %v (a and c passed over)", got, want)
	}

	put("unsorted/part-0.parquet", "a", "c", "b", "d")
	u, err := openStream(ctx, store, "unsorted/part-0.parquet", byCustomer)
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	err = u.each("d", func(*model.Cluster) {})
	if err == nil || !strings.Contains(err.Error(), "unsorted/part-0.parquet is not sorted by customer") {
		t.Fatalf("passing over c then b: error %v, want the input named as not sorted by customer", err)
	}
}
