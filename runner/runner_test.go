package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"tally/clock"
	"tally/model"
	"tally/periods"
	"tally/storage"
	"tally/storage/local"
)

// fakeJob writes one file per region and can be told to fail.
type fakeJob struct {
	name    string
	cadence periods.Cadence
	needs   func(periods.Period) []Dep
	calls   atomic.Int32
	fail    func(p periods.Period, call int) error
	block   chan struct{} // if set, Run waits on it (or ctx)
	started chan struct{}
	remove  string // if set, Run removes this key (after block) before it publishes
}

func (j *fakeJob) Name() string             { return j.name }
func (j *fakeJob) Cadence() periods.Cadence { return j.cadence }
func (j *fakeJob) Schedule() string         { return "0 0 * * *" }
func (j *fakeJob) Needs(p periods.Period) []Dep {
	if j.needs == nil {
		return nil
	}
	return j.needs(p)
}
func (j *fakeJob) Writes(p periods.Period, regions []string) []string {
	return []string{"out/" + j.name + "/" + p.ID()}
}
func (j *fakeJob) Run(ctx context.Context, rc *RunContext) error {
	n := int(j.calls.Add(1))
	if j.started != nil {
		j.started <- struct{}{}
	}
	if j.block != nil {
		select {
		case <-j.block:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if j.fail != nil {
		if err := j.fail(rc.Period, n); err != nil {
			return err
		}
	}
	if j.remove != "" {
		if err := rc.Remove(ctx, "", j.remove); err != nil {
			return err
		}
	}
	for _, r := range rc.Regions {
		err := rc.Publish(ctx, r, fmt.Sprintf("out/%s/region=%s/%s.txt", j.name, r, rc.Period.ID()), func(w io.Writer) (int64, error) {
			_, err := io.WriteString(w, j.name+" "+rc.Period.ID()+" "+r)
			return 1, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

var day = periods.Period{Cadence: periods.Daily, Start: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)}

type env struct {
	store storage.Store
	clock *clock.Fake
	cfg   Config
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{LeaseTTL: time.Minute, LeaseRenew: 20 * time.Second, MaxAttempts: 3, Backoff: 30 * time.Second,
		BackoffMax: 10 * time.Minute, AttemptTimeout: time.Hour, UpstreamWait: 3 * time.Minute}
	return &env{store: s, clock: clock.NewFake(time.Date(2026, 11, 22, 0, 5, 0, 0, time.UTC)), cfg: cfg}
}

func (e *env) runner(pid int, jobs ...Job) *Runner {
	r := New(jobs, storage.Single(e.store, model.Regions), e.clock, e.cfg, Holder{Host: "test", PID: pid}, zerolog.Nop())
	r.jitter = func() float64 { return 1 }
	return r
}

func TestCompletePeriodIsSkippedUnlessForced(t *testing.T) {
	e := newEnv(t)
	j := &fakeJob{name: "a", cadence: periods.Daily}
	r := e.runner(1, j)
	ctx := context.Background()
	if res, err := r.Run(ctx, "a", day, Options{}); err != nil || res.Status != StatusSucceeded {
		t.Fatalf("first run: %v %v", res.Status, err)
	}
	if res, err := r.Run(ctx, "a", day, Options{}); err != nil || res.Status != StatusSkipped {
		t.Fatalf("second run: %v %v, want skipped", res.Status, err)
	}
	if res, err := r.Run(ctx, "a", day, Options{Force: true}); err != nil || res.Status != StatusSucceeded || res.Record.Attempt != 2 {
		t.Fatalf("forced run: %+v %v, want attempt 2", res, err)
	}
	if n := j.calls.Load(); n != 2 {
		t.Fatalf("job ran %d times, want 2", n)
	}
}

func TestLedgerRecordsEverythingAndRunIDIsJobPeriodAttempt(t *testing.T) {
	e := newEnv(t)
	r := e.runner(42, &fakeJob{name: "a", cadence: periods.Daily})
	res, err := r.Run(context.Background(), "a", day, Options{Regions: []string{"eu"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := storage.ReadAll(context.Background(), e.store, "_runs/a/2026-11-21/0001.json")
	if err != nil {
		t.Fatalf("ledger file: %v", err)
	}
	for _, want := range []string{`"run_id": "a/2026-11-21/0001"`, `"status": "succeeded"`, `"regions": [`, `"EU"`, `"attempt": 1`, `"started_at"`, `"ended_at"`, `"sha256"`, `"rows": 1`, `"pid": 42`, `"checksum"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("ledger record lacks %s:\n%s", want, b)
		}
	}
	if len(res.Record.Outputs) != 1 || res.Record.Outputs[0].Region != "EU" {
		t.Fatalf("--region EU wrote %+v", res.Record.Outputs)
	}
}

func TestRetryableErrorsAreRetriedWithBackoffPermanentOnesFailAtOnce(t *testing.T) {
	e := newEnv(t)
	flaky := &fakeJob{name: "flaky", cadence: periods.Daily, fail: func(_ periods.Period, n int) error {
		if n < 3 {
			return errors.New("connection reset")
		}
		return nil
	}}
	bad := &fakeJob{name: "bad", cadence: periods.Daily, fail: func(periods.Period, int) error {
		return Permanent(errors.New("malformed input"))
	}}
	always := &fakeJob{name: "always", cadence: periods.Daily, fail: func(periods.Period, int) error { return errors.New("still down") }}
	r := e.runner(1, flaky, bad, always)
	ctx := context.Background()

	start := e.clock.Now()
	res, err := r.Run(ctx, "flaky", day, Options{})
	if err != nil || res.Record.Attempt != 3 {
		t.Fatalf("flaky: %v, attempt %d; want success on attempt 3", err, res.Record.Attempt)
	}
	// Backoff 30 s then 60 s (jitter pinned to the full delay).
	if waited := e.clock.Now().Sub(start); waited != 90*time.Second {
		t.Fatalf("waited %s between attempts, want 30s + 60s", waited)
	}
	recs, _ := r.Ledger().Attempts(ctx, "flaky", day.ID())
	if len(recs) != 3 || recs[0].Status != StatusFailed || !recs[0].Retryable || recs[2].Status != StatusSucceeded {
		t.Fatalf("flaky attempts: %+v", recs)
	}

	if _, err := r.Run(ctx, "bad", day, Options{}); err == nil || bad.calls.Load() != 1 {
		t.Fatalf("permanent error: err %v after %d calls, want a failure after 1", err, bad.calls.Load())
	}
	if _, err := r.Run(ctx, "always", day, Options{}); err == nil || always.calls.Load() != 3 {
		t.Fatalf("always failing: %d calls, want max attempts (3)", always.calls.Load())
	}
}

func TestBackoffDoublesAndIsCapped(t *testing.T) {
	full := func() float64 { return 1 }
	for n, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 6: 10 * time.Minute, 20: 10 * time.Minute} {
		if got := backoff(n, 30*time.Second, 10*time.Minute, full); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
	if got := backoff(1, 30*time.Second, 10*time.Minute, func() float64 { return 0 }); got != 15*time.Second {
		t.Errorf("jitter floor = %s, want half the delay", got)
	}
}

func TestAttemptTimeout(t *testing.T) {
	e := newEnv(t)
	e.cfg.AttemptTimeout = 50 * time.Millisecond
	e.cfg.MaxAttempts = 1
	j := &fakeJob{name: "slow", cadence: periods.Daily, block: make(chan struct{})}
	_, err := e.runner(1, j).Run(context.Background(), "slow", day, Options{})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v, want a timeout", err)
	}
}

func TestUpstreamPeriodsRunFirstOrNoDepsNamesWhatIsMissing(t *testing.T) {
	e := newEnv(t)
	up := &fakeJob{name: "up", cadence: periods.Daily}
	down := &fakeJob{name: "down", cadence: periods.Daily, needs: func(p periods.Period) []Dep { return []Dep{{"up", p}, {"up", p.Prev()}} }}
	r := e.runner(1, up, down)
	ctx := context.Background()

	_, err := r.Run(ctx, "down", day, Options{NoDeps: true})
	if err == nil || !strings.Contains(err.Error(), "upstream up 2026-11-21 is missing") || !IsPermanent(err) {
		t.Fatalf("--no-deps: %v, want a permanent error naming up 2026-11-21", err)
	}
	res, err := r.Run(ctx, "down", day, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if up.calls.Load() != 2 {
		t.Fatalf("upstream ran %d times, want 2 (both days)", up.calls.Load())
	}
	if len(res.Record.Inputs) != 2 || res.Record.Inputs[0].Checksum == "" {
		t.Fatalf("inputs = %+v", res.Record.Inputs)
	}
}

func TestFailedUpstreamFailsTheRunAndTheLedgerSaysWhichDay(t *testing.T) {
	e := newEnv(t)
	up := &fakeJob{name: "up", cadence: periods.Daily, fail: func(p periods.Period, _ int) error {
		if p.ID() == "2026-11-20" {
			return Permanent(errors.New("source broke"))
		}
		return nil
	}}
	down := &fakeJob{name: "down", cadence: periods.Daily, needs: func(p periods.Period) []Dep { return []Dep{{"up", p.Prev()}, {"up", p}} }}
	r := e.runner(1, up, down)
	_, err := r.Run(context.Background(), "down", day, Options{})
	if err == nil {
		t.Fatal("down succeeded with a failed upstream")
	}
	rec, _ := r.Ledger().Latest(context.Background(), "down", day.ID())
	if rec.Status != StatusFailed || !strings.Contains(rec.Error, "upstream up 2026-11-20 failed") || len(rec.Outputs) != 0 {
		t.Fatalf("ledger: status %s error %q outputs %d", rec.Status, rec.Error, len(rec.Outputs))
	}
	if down.calls.Load() != 0 {
		t.Fatal("down computed despite the failed upstream")
	}
}

func TestTwoRunnersRacingForOneJobPeriodExactlyOneRunsTheOtherGetsLeaseHeld(t *testing.T) {
	e := newEnv(t)
	j := &fakeJob{name: "a", cadence: periods.Daily, block: make(chan struct{}), started: make(chan struct{}, 2)}
	r1, r2 := e.runner(1, j), e.runner(2, j)
	ctx := context.Background()
	results := make(chan error, 2)
	for _, r := range []*Runner{r1, r2} {
		go func(r *Runner) {
			_, err := r.Run(ctx, "a", day, Options{})
			results <- err
		}(r)
	}
	<-j.started
	// The loser finds the lease held while the winner is still running.
	first := <-results
	close(j.block)
	second := <-results
	held := 0
	for _, err := range []error{first, second} {
		if errors.Is(err, ErrLeaseHeld) {
			held++
		} else if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if held != 1 || j.calls.Load() != 1 {
		t.Fatalf("held=%d calls=%d, want exactly one runner to run and one to get ErrLeaseHeld", held, j.calls.Load())
	}
}

func TestALeaseWhoseHolderDiedIsTakenOverAfterTheTTLAndItsAttemptShowsAbandoned(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// A runner that died: its lease and a "running" attempt are left behind.
	if _, err := AcquireLease(ctx, e.store, e.clock, "a", day.ID(), Holder{Host: "dead", PID: 9, RunID: "a/2026-11-21/0001"}, e.cfg.LeaseTTL); err != nil {
		t.Fatal(err)
	}
	(&Ledger{Store: e.store}).Write(ctx, &Record{RunID: "a/2026-11-21/0001", Job: "a", Period: day.ID(), Attempt: 1, Status: StatusRunning, StartedAt: e.clock.Now()})

	j := &fakeJob{name: "a", cadence: periods.Daily}
	r := e.runner(2, j)
	if _, err := r.Run(ctx, "a", day, Options{}); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("before the TTL: %v, want ErrLeaseHeld", err)
	}
	e.clock.Advance(e.cfg.LeaseTTL)
	res, err := r.Run(ctx, "a", day, Options{})
	if err != nil || res.Record.Attempt != 2 {
		t.Fatalf("after the TTL: %v (attempt %d), want a takeover and attempt 2", err, res.Record.Attempt)
	}
	recs, _ := r.Ledger().Attempts(ctx, "a", day.ID())
	if recs[0].Status != StatusAbandoned {
		t.Fatalf("dead runner's attempt is %s, want abandoned", recs[0].Status)
	}
	// Released after the run: the next runner takes it at once.
	if _, err := r.Run(ctx, "a", day, Options{Force: true}); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// runPastItsLease runs j (which blocks once started) with one attempt; while
// it waits, another runner takes the lease over (as if j's had expired). It
// returns the run's error.
func (e *env) runPastItsLease(t *testing.T, j *fakeJob) error {
	t.Helper()
	ctx := context.Background()
	e.cfg.MaxAttempts = 1
	r := e.runner(1, j)
	done := make(chan error, 1)
	go func() { _, err := r.Run(ctx, j.name, day, Options{}); done <- err }()
	<-j.started
	e.clock.Advance(2 * e.cfg.LeaseTTL)
	if _, err := AcquireLease(ctx, e.store, e.clock, j.name, day.ID(), Holder{Host: "other", PID: 2}, e.cfg.LeaseTTL); err != nil {
		t.Fatal(err)
	}
	close(j.block)
	return <-done
}

func TestARunnerThatLosesItsLeaseStopsAndPublishesNothingMore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	j := &fakeJob{name: "a", cadence: periods.Daily, block: make(chan struct{}), started: make(chan struct{}, 1)}
	if err := e.runPastItsLease(t, j); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("err = %v, want ErrLeaseLost", err)
	}
	if objs, _ := e.store.List(ctx, "out/"); len(objs) != 0 {
		t.Fatalf("published %d files after losing the lease", len(objs))
	}
}

func TestARunnerThatLosesItsLeaseRemovesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	stale := "out/a/region=US/part-3.parquet" // an earlier run's, past this one's parts
	if _, err := e.store.Put(ctx, stale, strings.NewReader("earlier")); err != nil {
		t.Fatal(err)
	}
	j := &fakeJob{name: "a", cadence: periods.Daily, block: make(chan struct{}), started: make(chan struct{}, 1), remove: stale}
	if err := e.runPastItsLease(t, j); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("err = %v, want ErrLeaseLost", err)
	}
	if _, err := e.store.Stat(ctx, stale); err != nil {
		t.Fatalf("a runner that lost its lease removed %s: %v", stale, err)
	}

	// The same job holding its lease removes it.
	j2 := &fakeJob{name: "b", cadence: periods.Daily, remove: stale}
	if _, err := e.runner(3, j2).Run(ctx, "b", day, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Stat(ctx, stale); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a runner holding its lease did not remove %s: %v", stale, err)
	}
}

func TestLeaseRenewalsAreCompareAndSwap(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	l, err := AcquireLease(ctx, e.store, e.clock, "a", "p", Holder{Host: "h", PID: 1}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(30 * time.Second)
	if err := l.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := readLease(ctx, e.store, leaseKey("a", "p"))
	if want := e.clock.Now().Add(time.Minute); !rec.ExpiresAt.Equal(want) {
		t.Fatalf("expires_at = %s, want %s", rec.ExpiresAt, want)
	}
	e.clock.Advance(2 * time.Minute)
	l2, err := AcquireLease(ctx, e.store, e.clock, "a", "p", Holder{Host: "h2", PID: 2}, time.Minute)
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if err := l.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew after takeover: %v, want ErrLeaseLost", err)
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireLease(ctx, e.store, e.clock, "a", "p", Holder{Host: "h3", PID: 3}, time.Minute); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
}

func TestUpstreamHeldByAnotherRunnerIsWaitedForThenFailsRetryably(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxAttempts = 1
	ctx := context.Background()
	up := &fakeJob{name: "up", cadence: periods.Daily}
	down := &fakeJob{name: "down", cadence: periods.Daily, needs: func(p periods.Period) []Dep { return []Dep{{"up", p}} }}
	if _, err := AcquireLease(ctx, e.store, e.clock, "up", day.ID(), Holder{Host: "other", PID: 7}, time.Hour); err != nil {
		t.Fatal(err)
	}
	_, err := e.runner(1, up, down).Run(ctx, "down", day, Options{})
	if err == nil || errors.Is(err, ErrLeaseHeld) || IsPermanent(err) || !strings.Contains(err.Error(), "held by another runner") {
		t.Fatalf("err = %v, want a retryable wait timeout (not exit 3)", err)
	}
}

func TestBackfillSkipsCompletePeriodsResumesAndShards(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	j := &fakeJob{name: "a", cadence: periods.Daily, fail: func(p periods.Period, _ int) error {
		if p.ID() == "2026-10-05" {
			return Permanent(errors.New("bad day"))
		}
		return nil
	}}
	r := e.runner(1, j)
	from, _ := periods.Parse(periods.Daily, "2026-10-01")
	to, _ := periods.Parse(periods.Daily, "2026-10-10")

	// Shard 1/3 takes positions 1, 4, 7: the 2nd, 5th and 8th; the 5th fails.
	sum, err := r.Backfill(ctx, "a", from, to, BackfillOptions{Parallel: 2, Shard: 1, Shards: 3})
	if err == nil || len(sum.Succeeded) != 2 {
		t.Fatalf("shard: err %v, succeeded %v", err, sum.Succeeded)
	}
	var ids []string
	for _, p := range sum.Periods {
		ids = append(ids, p.ID())
	}
	if got := strings.Join(ids, " "); got != "2026-10-02 2026-10-05 2026-10-08" {
		t.Fatalf("shard 1/3 = %s", got)
	}

	sum, err = r.Backfill(ctx, "a", from, to, BackfillOptions{Parallel: 2})
	if err == nil || len(sum.Failed) != 1 || sum.Failed["2026-10-05"] == nil {
		t.Fatalf("full backfill: err %v failed %v, want only 2026-10-05", err, sum.Failed)
	}
	if len(sum.Skipped) != 2 || len(sum.Succeeded) != 7 {
		t.Fatalf("skipped %v succeeded %v: want the 2 done by the shard skipped and 7 run", sum.Skipped, sum.Succeeded)
	}
	calls := j.calls.Load()
	sum, _ = r.Backfill(ctx, "a", from, to, BackfillOptions{Parallel: 2})
	if len(sum.Skipped) != 9 || j.calls.Load() != calls+1 {
		t.Fatalf("resume: skipped %d, ran %d; want 9 skipped and only the failed day re-run", len(sum.Skipped), j.calls.Load()-calls)
	}
}

func TestDryRunWritesNothingAndTakesNoLease(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	up := &fakeJob{name: "up", cadence: periods.Daily}
	down := &fakeJob{name: "down", cadence: periods.Daily, needs: func(p periods.Period) []Dep { return []Dep{{"up", p}} }}
	res, err := e.runner(1, up, down).Run(ctx, "down", day, Options{DryRun: true})
	if err != nil || res.Status != StatusPlanned {
		t.Fatal(err)
	}
	if got := strings.Join(res.Plan, "|"); !strings.Contains(got, "run up 2026-11-21") || !strings.Contains(got, "run down 2026-11-21") {
		t.Fatalf("plan = %v", res.Plan)
	}
	if objs, _ := e.store.List(ctx, ""); len(objs) != 0 {
		t.Fatalf("dry run wrote %d objects", len(objs))
	}
}

func TestUnknownJobAndWrongCadenceAreUsageErrors(t *testing.T) {
	e := newEnv(t)
	r := e.runner(1, &fakeJob{name: "a", cadence: periods.Daily})
	if _, err := r.Run(context.Background(), "nope", day, Options{}); !IsUsage(err) || !strings.Contains(err.Error(), `unknown job "nope"`) {
		t.Fatalf("unknown job: %v", err)
	}
	week, _ := periods.Parse(periods.Weekly, "2026-11-15")
	if _, err := r.Run(context.Background(), "a", week, Options{}); !IsUsage(err) {
		t.Fatalf("weekly period for a daily job: %v", err)
	}
	if _, err := r.Run(context.Background(), "a", day, Options{Regions: []string{"MARS"}}); !IsUsage(err) {
		t.Fatalf("unknown region: %v", err)
	}
}
