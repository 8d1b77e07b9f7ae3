package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"tally/model"
	"tally/periods"
	"tally/source"
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
