// Package serve owns `tally serve`: the long-running scheduler that fires each job
// at its UTC cron schedule through the same runner as `tally run`, catches up
// missed periods on start, shuts down gracefully, and serves /healthz and /metrics.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"tally/clock"
	"tally/jobs"
	"tally/periods"
	"tally/runner"
	"tally/storage"
)

// Firing is one job due at one time, for one period.
type Firing struct {
	Job    string
	At     time.Time
	Period periods.Period
	// NoEmail, when set, says why this firing's run sends no email (a
	// catch-up of a period whose own firing was long ago).
	NoEmail string
}

// Scheduler runs jobs on their schedules.
type Scheduler struct {
	Runner   *runner.Runner
	Registry *jobs.Registry
	Clock    clock.Clock
	// CatchUp bounds, per job, how many of the latest ended periods are run on
	// start when missing (0: none).
	CatchUp int
	// Grace is how long running jobs may finish after shutdown starts.
	Grace time.Duration
	// Poll is how often periods left "waiting" for their input are tried again
	// (0: only at their schedule).
	Poll time.Duration
	// Done is called after every run (metrics, failure notifications).
	Done func(job string, res *runner.Result, err error)
	Log  zerolog.Logger
	// FirstStart is when this deployment's serve first started (FirstStart).
	// A period caught up is emailed only if its own firing came after it and
	// at most CatchUpEmailWithin before the catch-up: a first start never
	// mails months of reports, a report caught up two days late still goes.
	FirstStart         time.Time
	CatchUpEmailWithin time.Duration

	schedules map[string]cron.Schedule
	mu        sync.Mutex
	running   map[string]bool // job/period in flight in this process
	runCtx    context.Context // the runs' context (cancelled when Grace is over)
	wg        sync.WaitGroup
	alive     atomic.Int64 // unix seconds of the loop's last heartbeat
}

// Act runs an operator's action (a console re-run or backfill) in this
// process as a firing runs: shutdown waits for it (Grace), then cancels it.
func (s *Scheduler) Act(fn func(ctx context.Context)) {
	s.mu.Lock()
	ctx := s.runCtx
	s.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(ctx)
	}()
}

// Init parses every job's schedule (UTC); a bad spec names its job.
func (s *Scheduler) Init() error {
	s.schedules = map[string]cron.Schedule{}
	s.running = map[string]bool{}
	for _, j := range s.Runner.Jobs() {
		spec := s.Registry.Schedule(j.Name())
		sched, err := cron.ParseStandard(spec)
		if err != nil {
			return runner.Usagef("job %s: bad cron schedule %q: %v", j.Name(), spec, err)
		}
		s.schedules[j.Name()] = sched
	}
	return nil
}

// Due lists the firings in (after, upTo], oldest first. A firing runs the job's
// latest ended period as of its time.
func (s *Scheduler) Due(after, upTo time.Time) []Firing {
	var out []Firing
	for _, j := range s.Runner.Jobs() {
		for t := s.schedules[j.Name()].Next(after.UTC()); !t.After(upTo); t = s.schedules[j.Name()].Next(t) {
			out = append(out, Firing{Job: j.Name(), At: t, Period: periods.Latest(j.Cadence(), t)})
		}
	}
	sort.SliceStable(out, func(i, k int) bool { return out[i].At.Before(out[k].At) })
	return out
}

// Missed lists, per job, the periods among the CatchUp latest ended ones that are
// not complete, oldest first.
func (s *Scheduler) Missed(ctx context.Context, now time.Time) ([]Firing, error) {
	var out []Firing
	for _, j := range s.Runner.Jobs() {
		p := periods.Latest(j.Cadence(), now)
		for i := 0; i < s.CatchUp; i++ {
			_, done, err := s.Runner.Ledger().Complete(ctx, j.Name(), p.ID())
			if err != nil {
				return nil, err
			}
			if !done {
				f := Firing{Job: j.Name(), At: now, Period: p}
				// Its own firing: the schedule's first time after the period ended.
				due := s.schedules[j.Name()].Next(p.End().Add(-time.Second))
				switch {
				case due.Before(s.FirstStart):
					f.NoEmail = fmt.Sprintf("not emailed: catch-up of a period due %s, before this deployment's first serve start (%s)",
						due.Format(time.RFC3339), s.FirstStart.Format(time.RFC3339))
				case now.Sub(due) > s.CatchUpEmailWithin:
					f.NoEmail = fmt.Sprintf("not emailed: catch-up of a period due %s, more than serve.catch_up_email_within (%s) ago",
						due.Format(time.RFC3339), s.CatchUpEmailWithin)
				}
				out = append(out, f)
			}
			p = p.Prev()
		}
	}
	sort.SliceStable(out, func(i, k int) bool { return out[i].Period.Start.Before(out[k].Period.Start) })
	return out, nil
}

// Waiting lists the periods, among each job's latest max(CatchUp, 3), whose
// latest attempt is waiting for its input (a files delivery not made yet).
func (s *Scheduler) Waiting(ctx context.Context, now time.Time) ([]Firing, error) {
	var out []Firing
	for _, j := range s.Runner.Jobs() {
		p := periods.Latest(j.Cadence(), now)
		for i := 0; i < max(s.CatchUp, 3); i++ {
			rec, err := s.Runner.Ledger().Latest(ctx, j.Name(), p.ID())
			if err != nil {
				return nil, err
			}
			if rec != nil && rec.Status == runner.StatusWaiting {
				out = append(out, Firing{Job: j.Name(), At: now, Period: p})
			}
			p = p.Prev()
		}
	}
	return out, nil
}

// Fire starts a run unless the same job+period is already running here (the
// lease also stops other processes). It reports whether it started one.
func (s *Scheduler) Fire(ctx context.Context, f Firing) bool { return s.start(ctx, f) != nil }

// start is Fire returning a channel closed when the run ends (nil: not started).
func (s *Scheduler) start(ctx context.Context, f Firing) <-chan struct{} {
	key := f.Job + "/" + f.Period.ID()
	s.mu.Lock()
	if s.running[key] {
		s.mu.Unlock()
		s.Log.Info().Str(runner.LogJob, f.Job).Str(runner.LogPeriod, f.Period.ID()).Msg("still running from an earlier firing; not starting another")
		return nil
	}
	s.running[key] = true
	s.mu.Unlock()
	s.wg.Add(1)
	done := make(chan struct{})
	go func() {
		defer s.wg.Done()
		defer close(done)
		defer func() {
			s.mu.Lock()
			delete(s.running, key)
			s.mu.Unlock()
		}()
		res, err := s.Runner.Run(ctx, f.Job, f.Period, runner.Options{Trigger: "serve", Email: f.NoEmail == "", NoEmail: f.NoEmail})
		if s.Done != nil {
			s.Done(f.Job, res, err)
		}
	}()
	return done
}

// catchUp runs missed firings one at a time, oldest period first, until stop is
// done: a report waiting on an upstream this same process is still running would
// otherwise give up after the upstream wait and fail.
func (s *Scheduler) catchUp(stop, runCtx context.Context, missed []Firing) {
	for _, f := range missed {
		if stop.Err() != nil || runCtx.Err() != nil {
			return
		}
		s.Log.Info().Str(runner.LogJob, f.Job).Str(runner.LogPeriod, f.Period.ID()).Msg("catching up a missed period")
		if done := s.start(runCtx, f); done != nil {
			<-done
		}
	}
}

// firstStartKey records when serve first started in this deployment.
const firstStartKey = "_serve/first-start.json"

// FirstStart is when serve first started against this control store: read,
// or recorded now (exclusive create: two processes starting at once agree).
func FirstStart(ctx context.Context, control storage.Store, now time.Time) (time.Time, error) {
	var rec struct {
		At time.Time `json:"at"`
	}
	b, _ := json.Marshal(struct {
		At time.Time `json:"at"`
	}{now.UTC()})
	if _, err := control.Create(ctx, firstStartKey, b); err == nil {
		return now.UTC(), nil
	} else if !errors.Is(err, storage.ErrExists) {
		return time.Time{}, fmt.Errorf("serve: record the first start (%s): %w", firstStartKey, err)
	}
	rc, _, err := control.Get(ctx, firstStartKey)
	if err != nil {
		return time.Time{}, fmt.Errorf("serve: read the first start (%s): %w", firstStartKey, err)
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(&rec); err != nil || rec.At.IsZero() {
		return time.Time{}, fmt.Errorf("serve: %s is not a first start record: %v", firstStartKey, err)
	}
	return rec.At, nil
}

// Wait blocks until every started run has finished.
func (s *Scheduler) Wait() { s.wg.Wait() }

// Run catches up, then fires jobs on schedule until ctx is done; then it stops
// taking firings and gives running jobs Grace to finish before cancelling them
// (their leases are released either way).
func (s *Scheduler) Run(ctx context.Context) error {
	if s.schedules == nil {
		if err := s.Init(); err != nil {
			return err
		}
	}
	runCtx, cancelRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRuns()
	s.mu.Lock()
	s.runCtx = runCtx
	s.mu.Unlock()
	now := s.Clock.Now()
	missed, err := s.Missed(ctx, now)
	if err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.catchUp(ctx, runCtx, missed)
	}()
	last, polled := now, now
	for ctx.Err() == nil {
		if s.Poll > 0 && !s.Clock.Now().Before(polled.Add(s.Poll)) {
			polled = s.Clock.Now()
			waiting, err := s.Waiting(ctx, polled)
			if err != nil {
				s.Log.Warn().Err(err).Msg("checking waiting periods")
			}
			for _, f := range waiting {
				s.Log.Info().Str(runner.LogJob, f.Job).Str(runner.LogPeriod, f.Period.ID()).Msg("trying a waiting period again")
				s.Fire(runCtx, f)
			}
		}
		s.alive.Store(s.Clock.Now().Unix())
		next := s.nextAfter(last)
		wait := min(next.Sub(s.Clock.Now()), 30*time.Second) // heartbeat at least every 30 s
		if wait > 0 {
			if err := s.Clock.Sleep(ctx, wait); err != nil {
				break
			}
			if s.Clock.Now().Before(next) {
				continue
			}
		}
		upTo := s.Clock.Now()
		for _, f := range s.Due(last, upTo) {
			s.Fire(runCtx, f)
		}
		last = upTo
	}
	s.Log.Info().Int64("grace_ms", s.Grace.Milliseconds()).Msg("shutting down: no new firings; waiting for running jobs")
	done := make(chan struct{})
	go func() { s.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.Grace):
		s.Log.Warn().Msg("grace period over: cancelling running jobs")
		cancelRuns()
		<-done
	}
	return nil
}

func (s *Scheduler) nextAfter(t time.Time) time.Time {
	var next time.Time
	for _, sched := range s.schedules {
		if n := sched.Next(t.UTC()); next.IsZero() || n.Before(next) {
			next = n
		}
	}
	return next
}

// Handler serves /healthz (the scheduler loop is alive and storage answers) and
// /metrics.
func (s *Scheduler) Handler(control storage.Store, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if age := s.Clock.Now().Unix() - s.alive.Load(); age > 120 {
			http.Error(w, fmt.Sprintf("scheduler loop silent for %ds", age), http.StatusServiceUnavailable)
			return
		}
		StorageHealth(control).ServeHTTP(w, r)
	})
	mux.Handle("/metrics", metrics)
	return mux
}

// StorageHealth answers /healthz by listing the control store's leases
// within 5 s: ok, or 503 naming the storage error.
func StorageHealth(control storage.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if _, err := control.List(ctx, "_leases/"); err != nil {
			http.Error(w, "storage: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}
}
