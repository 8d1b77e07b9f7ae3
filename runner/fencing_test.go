package runner

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"tally/mail"
	"tally/periods"
	"tally/storage"
	"tally/storage/local"
)

func TestTwoRunnersCanNeverClaimTheSameAttemptNumber(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	l := &Ledger{Store: e.store}
	a := &Record{RunID: RunID("a", day.ID(), 1), Job: "a", Period: day.ID(), Attempt: 1, Status: StatusRunning, Holder: Holder{PID: 1}}
	b := &Record{RunID: RunID("a", day.ID(), 1), Job: "a", Period: day.ID(), Attempt: 1, Status: StatusRunning, Holder: Holder{PID: 2}}
	if err := l.Write(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(ctx, b); !errors.Is(err, ErrEntryChanged) || !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("second claim of attempt 0001: %v, want ErrEntryChanged (a lost lease)", err)
	}
	got, _ := l.Latest(ctx, "a", day.ID())
	if got.Holder.PID != 1 {
		t.Fatalf("attempt 0001 belongs to pid %d, want the first claimant", got.Holder.PID)
	}
}

func TestARunnerPausedPastItsLeaseCannotOverwriteTheNewHoldersSucceededRecord(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// Runner 1 starts, then stalls inside its job (SIGSTOP in real life).
	stalled := &fakeJob{name: "a", cadence: periods.Daily, block: make(chan struct{}), started: make(chan struct{}, 1)}
	e.cfg.MaxAttempts = 1
	r1 := e.runner(1, stalled)
	done := make(chan error, 1)
	go func() { _, err := r1.Run(ctx, "a", day, Options{}); done <- err }()
	<-stalled.started
	mine, _ := r1.Ledger().Latest(ctx, "a", day.ID()) // runner 1's record as it wrote it

	// Its lease expires; runner 2 takes over and finishes the period.
	e.clock.Advance(2 * e.cfg.LeaseTTL)
	r2 := e.runner(2, &fakeJob{name: "a", cadence: periods.Daily})
	res, err := r2.Run(ctx, "a", day, Options{})
	if err != nil || res.Record.Attempt != 2 || res.Record.Status != StatusSucceeded {
		t.Fatalf("takeover: %v %+v", err, res)
	}

	// Runner 1 resumes: even a write that skipped every lease check cannot land.
	mine.Status = StatusSucceeded
	if err := r1.Ledger().Write(ctx, mine); !errors.Is(err, ErrEntryChanged) {
		t.Fatalf("stale runner's ledger write: %v, want ErrEntryChanged", err)
	}
	close(stalled.block)
	if err := <-done; !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale runner ended with %v, want ErrLeaseLost", err)
	}
	recs, _ := r2.Ledger().Attempts(ctx, "a", day.ID())
	if len(recs) != 2 || recs[0].Status != StatusAbandoned || recs[1].Status != StatusSucceeded || recs[1].Holder.PID != 2 {
		t.Fatalf("ledger after the stale runner resumed: %+v %+v", recs[0], recs[len(recs)-1])
	}
}

// lostAnswer performs a conditional write but answers "precondition failed", as
// an SDK retry of a PUT whose first answer was lost on a reset connection does.
type lostAnswer struct {
	storage.Store
	once bool
}

func (s *lostAnswer) Replace(ctx context.Context, key, etag string, data []byte) (storage.Object, error) {
	obj, err := s.Store.Replace(ctx, key, etag, data)
	if err == nil && !s.once {
		s.once = true
		return storage.Object{}, storage.ErrPreconditionFailed
	}
	return obj, err
}

func TestALeaseRenewalWhoseAnswerWasLostIsNotAFalseTakeoverAndARealOneNamesTheHolder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := &lostAnswer{Store: e.store}
	l, err := AcquireLease(ctx, s, e.clock, "a", "p", Holder{Host: "h", PID: 1}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(20 * time.Second)
	if err := l.Renew(ctx); err != nil {
		t.Fatalf("renew whose write landed but answered 412: %v, want success", err)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatalf("check after that renew: %v", err)
	}
	e.clock.Advance(2 * time.Minute)
	if _, err := AcquireLease(ctx, e.store, e.clock, "a", "p", Holder{Host: "other", PID: 2, RunID: "a/p/0002"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	err = l.Renew(ctx)
	if !errors.Is(err, ErrLeaseLost) || !strings.Contains(err.Error(), "pid 2 on other") {
		t.Fatalf("renew after a real takeover: %v, want ErrLeaseLost naming pid 2 on other", err)
	}
}

func TestAnEmailClaimedButNeverConfirmedIsResentUnderItsKeyAndAConfirmedOneNeverAgain(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.runner(1)
	lease, err := AcquireLease(ctx, e.store, e.clock, "reports-daily", day.ID(), r.holder, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// A run claims, then dies before confirming.
	c1 := r.claimer(lease, "reports-daily", day.ID(), "reports-daily/2026-11-21/0001", false)
	first, sent, err := c1.claim(ctx, "flex", DefaultGroup)
	if err != nil || sent || first.Key != "reports-daily/2026-11-21/flex/all-g1" {
		t.Fatalf("first claim: %v sent=%v %+v", err, sent, first)
	}
	// The next run re-sends the same key (so the same Message-ID), then confirms.
	c2 := r.claimer(lease, "reports-daily", day.ID(), "reports-daily/2026-11-21/0002", false)
	again, sent, err := c2.claim(ctx, "flex", DefaultGroup)
	if err != nil || sent || again.Key != first.Key || !again.Resumed {
		t.Fatalf("unconfirmed claim: %v sent=%v %+v, want it resumed under %s", err, sent, again, first.Key)
	}
	if err := c2.confirm(ctx, again, "outbox"); err != nil {
		t.Fatal(err)
	}
	if all, _ := Claims(ctx, e.store, ""); len(Unconfirmed(all)) != 0 {
		t.Fatalf("unconfirmed after the confirm: %+v", Unconfirmed(all))
	}
	// Confirmed: a scheduled run never sends it again…
	c3 := r.claimer(lease, "reports-daily", day.ID(), "reports-daily/2026-11-21/0003", false)
	if _, sent, err := c3.claim(ctx, "flex", DefaultGroup); err != nil || !sent {
		t.Fatalf("confirmed claim: sent=%v %v, want sent", sent, err)
	}
	// …a forced --email run (or resend) starts generation 2 on purpose, once.
	c4 := r.claimer(lease, "reports-daily", day.ID(), "reports-daily/2026-11-21/0004", true)
	g2, sent, err := c4.claim(ctx, "flex", DefaultGroup)
	if err != nil || sent || g2.Generation != 2 || mail.MessageID(g2.Key) != "reports-daily.2026-11-21.flex.all-g2@tally" {
		t.Fatalf("fresh generation: %v sent=%v %+v", err, sent, g2)
	}
	c4.confirm(ctx, g2, "outbox")
	if _, sent, _ := c4.claim(ctx, "flex", DefaultGroup); !sent {
		t.Fatal("a retried attempt of the forced run would send generation 2 again")
	}
}

func TestAnEmailClaimCannotBeMadeByARunnerThatLostItsLease(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.runner(1)
	lease, _ := AcquireLease(ctx, e.store, e.clock, "reports-daily", day.ID(), r.holder, time.Minute)
	e.clock.Advance(2 * time.Minute)
	if _, err := AcquireLease(ctx, e.store, e.clock, "reports-daily", day.ID(), Holder{Host: "other", PID: 2}, time.Minute); err != nil {
		t.Fatal(err)
	}
	c := r.claimer(lease, "reports-daily", day.ID(), "reports-daily/2026-11-21/0001", false)
	if _, _, err := c.claim(ctx, "flex", DefaultGroup); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("claim after losing the lease: %v, want ErrLeaseLost", err)
	}
	if all, _ := Claims(ctx, e.store, ""); len(all) != 0 {
		t.Fatalf("a stale runner claimed %d sends", len(all))
	}
}

func TestACachedLedgerReadsAnEntryAgainOnceItChangedAndItsRecordsAreCopies(t *testing.T) {
	ctx := context.Background()
	store, _ := local.New(t.TempDir())
	l := &Ledger{Store: store}
	rec := &Record{RunID: RunID("sync-clusters", "2026-11-21", 1), Job: "sync-clusters", Period: "2026-11-21", Attempt: 1, Status: StatusRunning}
	if err := l.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
	c := l.Cached()
	first, _ := c.All(ctx, "")
	first[0].Status = StatusAbandoned // a reader's change stays its own
	if again, _ := c.All(ctx, ""); again[0].Status != StatusRunning {
		t.Fatalf("a reader's change reached the cache: %s", again[0].Status)
	}
	rec.Status = StatusSucceeded
	if err := l.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if now, _ := c.All(ctx, ""); len(now) != 1 || now[0].Status != StatusSucceeded {
		t.Fatalf("the cached ledger still reads %+v after the entry changed", now)
	}
	store.Delete(ctx, ledgerKey("sync-clusters", "2026-11-21", 1))
	if now, _ := c.All(ctx, ""); len(now) != 0 {
		t.Fatal("a removed entry is still read")
	}
}
