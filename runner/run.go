package runner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"tally/clock"
	"tally/model"
	"tally/periods"
	"tally/storage"
)

// Config is the runner's behaviour (SPEC §3 defaults in DefaultConfig).
type Config struct {
	LeaseTTL       time.Duration
	LeaseRenew     time.Duration
	MaxAttempts    int
	Backoff        time.Duration
	BackoffMax     time.Duration
	AttemptTimeout time.Duration
	// UpstreamWait bounds the wait for an upstream period another runner holds.
	UpstreamWait time.Duration
	// MaxBackfillPeriods refuses larger backfill ranges.
	MaxBackfillPeriods int
	// RequestTimeout bounds an attempt's closing ledger write and the lease's
	// release (storage.request_timeout).
	RequestTimeout time.Duration
}

// DefaultConfig is §3's: TTL 60 s renewed every 20 s, 3 attempts, 30 s doubling
// capped at 10 min, 1 h per attempt, upstream waits of 3 TTLs.
func DefaultConfig() Config {
	return Config{LeaseTTL: time.Minute, LeaseRenew: 20 * time.Second, MaxAttempts: 3,
		Backoff: 30 * time.Second, BackoffMax: 10 * time.Minute, AttemptTimeout: time.Hour, UpstreamWait: 3 * time.Minute,
		MaxBackfillPeriods: 1000, RequestTimeout: 30 * time.Second}
}

// Runner runs jobs for periods.
type Runner struct {
	jobs   map[string]Job
	order  []string
	stores storage.Regional
	ledger *Ledger
	clock  clock.Clock
	cfg    Config
	holder Holder
	log    zerolog.Logger
	jitter func() float64
}

// New returns a runner for jobs, writing to stores.
func New(jobs []Job, stores storage.Regional, clk clock.Clock, cfg Config, holder Holder, log zerolog.Logger) *Runner {
	if cfg.MaxBackfillPeriods <= 0 {
		cfg.MaxBackfillPeriods = DefaultConfig().MaxBackfillPeriods
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultConfig().RequestTimeout
	}
	r := &Runner{jobs: map[string]Job{}, stores: stores, ledger: &Ledger{Store: stores.Control},
		clock: clk, cfg: cfg, holder: holder, log: log, jitter: rand.Float64}
	for _, j := range jobs {
		r.jobs[j.Name()] = j
		r.order = append(r.order, j.Name())
	}
	return r
}

// With is a runner that also knows job (a one-off such as a subscription test).
func (r *Runner) With(job Job) *Runner {
	c := *r
	c.jobs = map[string]Job{}
	for k, v := range r.jobs {
		c.jobs[k] = v
	}
	c.jobs[job.Name()] = job
	c.order = append(append([]string(nil), r.order...), job.Name())
	return &c
}

// Jobs lists the jobs in registration order.
func (r *Runner) Jobs() []Job {
	out := make([]Job, len(r.order))
	for i, n := range r.order {
		out[i] = r.jobs[n]
	}
	return out
}

// Job finds a job by name.
func (r *Runner) Job(name string) (Job, error) {
	if j, ok := r.jobs[name]; ok {
		return j, nil
	}
	return nil, Usagef("unknown job %q: the jobs are %s", name, strings.Join(r.order, ", "))
}

// Ledger is the runner's ledger.
func (r *Runner) Ledger() *Ledger { return r.ledger }

// Clock is the runner's clock.
func (r *Runner) Clock() clock.Clock { return r.clock }

// Options change one run.
type Options struct {
	Force   bool     // re-run a complete period
	NoDeps  bool     // fail instead of running missing upstream periods
	DryRun  bool     // print what would run; write nothing, take no lease
	Regions []string // limit a forced re-run to these regions' outputs
	Trigger string   // run, backfill, serve, upstream, test, console
	Email   bool     // send the job's emails (scheduled runs; re-runs only with --email)
	NoEmail string   // why a run that would email does not (a late catch-up): recorded as not_emailed
	By      string   // who asked for the run (a console identity's name; "" from the command line or the schedule)
}

// TriggerTest is a subscriptions test run's trigger.
const TriggerTest = "test"

// Result is what a run did.
type Result struct {
	Job    string
	Period periods.Period
	Status Status // succeeded, failed, or "skipped"/"held"/"planned"
	Record *Record
	Plan   []string // for --dry-run
	// Upstream are the upstream periods this call ran itself (not those found
	// complete, whoever ran them).
	Upstream []*Record
}

// Extra result statuses (never in the ledger).
const (
	StatusSkipped Status = "skipped"
	StatusHeld    Status = "held"
	StatusPlanned Status = "planned"
)

// Run runs job for period p: ledger check → lease → upstream → compute → publish
// → ledger. The error is nil when the period is complete (run now or before).
func (r *Runner) Run(ctx context.Context, name string, p periods.Period, o Options) (*Result, error) {
	job, err := r.Job(name)
	if err != nil {
		return nil, err
	}
	if p.Cadence != job.Cadence() {
		return nil, Usagef("%s is a %s job: %s is not a %s period", name, job.Cadence(), p.ID(), job.Cadence())
	}
	if err := periods.Ended(p, r.clock.Now()); err != nil {
		return nil, Usage(err)
	}
	regions, err := scope(o.Regions)
	if err != nil {
		return nil, err
	}
	if o.Trigger == "" {
		o.Trigger = "run"
	}
	res := &Result{Job: name, Period: p}
	log := r.log.With().Str(LogJob, name).Str(LogPeriod, p.ID()).Logger()

	// 1. Ledger check: a complete period is skipped unless forced.
	if rec, done, err := r.ledger.Complete(ctx, name, p.ID()); err != nil {
		return nil, err
	} else if done && !o.Force {
		log.Info().Str(LogRunID, rec.RunID).Msg("period already complete, skipping (use --force to re-run)")
		res.Status, res.Record = StatusSkipped, rec
		return res, nil
	}
	if o.DryRun {
		return r.plan(ctx, job, p, regions, o, res)
	}

	// 2. Lease, then the ledger again: another runner may have finished meanwhile.
	lease, err := AcquireLease(ctx, r.stores.Control, r.clock, name, p.ID(), r.holder, r.cfg.LeaseTTL)
	if err != nil {
		res.Status = StatusHeld
		return res, err
	}
	// The lease is released within the last attempt's closing budget (below), or
	// its own request timeout: a silent connection never holds a run up.
	closing, closingCancel := context.WithoutCancel(ctx), context.CancelFunc(nil)
	defer func() {
		rctx, cancel := context.WithTimeout(closing, r.cfg.RequestTimeout)
		defer cancel()
		if closingCancel != nil {
			defer closingCancel()
		}
		if err := lease.Release(rctx); err != nil && !errors.Is(err, ErrLeaseLost) {
			log.Warn().Err(err).Msg("releasing lease (it expires by itself)")
		}
	}()
	ctx, stop := lease.KeepAlive(ctx, r.cfg.LeaseRenew)
	defer stop()
	prior, err := r.fenceEarlier(ctx, lease, name, p.ID())
	if err != nil {
		return nil, err
	}
	if n := len(prior); n > 0 && prior[n-1].Status == StatusSucceeded && !o.Force {
		res.Status, res.Record = StatusSkipped, prior[n-1]
		return res, nil
	}
	first := 1
	if n := len(prior); n > 0 {
		first = prior[n-1].Attempt + 1
	}

	// 3–7. Attempts, each: upstream → compute → publish → email → ledger. An
	// attempt gets attempt_timeout for all but its last ledger write, which with
	// the lease's release gets one request_timeout: a run whose connection goes
	// silent ends within max_attempts × (attempt_timeout + request_timeout) plus
	// the backoffs.
	// Emails are claimed per period, not per attempt: a retry or a resumed run
	// never sends a claimed message again, a forced run starts a new generation.
	var claims *claimer
	for attempt := first; ; attempt++ {
		rec := &Record{
			RunID: RunID(name, p.ID(), attempt), Job: name, Period: p.ID(), Attempt: attempt,
			Regions: regions, Trigger: o.Trigger, By: o.By, Forced: o.Force, Status: StatusRunning,
			StartedAt: r.clock.Now(), Holder: r.holder,
		}
		rec.Holder.RunID = rec.RunID
		alog := log.With().Str(LogRunID, rec.RunID).Logger()
		actx, cancel := context.WithTimeoutCause(alog.WithContext(ctx), r.cfg.AttemptTimeout, fmt.Errorf("attempt timed out after %s", r.cfg.AttemptTimeout))
		err := lease.SetRunID(actx, rec.RunID)
		if err == nil {
			err = r.writeRecord(actx, lease, rec)
		}
		if err != nil {
			cancel()
			return res, err
		}
		alog.Info().Int("attempt", attempt).Str("trigger", o.Trigger).Msg("run started")

		rc, err := r.attempt(actx, job, p, regions, o, lease, rec, alog, &res.Upstream)
		if _, notifies := job.(Notifier); err == nil && !o.Email && o.NoEmail != "" && notifies {
			rec.NotEmailed = o.NoEmail
			alog.Info().Msg(o.NoEmail)
		}
		if err == nil && o.Email {
			if claims == nil {
				claims = r.claimer(lease, name, p.ID(), rec.RunID, o.Force)
			}
			r.notify(actx, job, rc, rec, lease, claims, o.Trigger == TriggerTest)
		}
		cancel()

		end := r.clock.Now()
		rec.EndedAt, rec.DurationMS = &end, end.Sub(rec.StartedAt).Milliseconds()
		rec.Status = StatusSucceeded
		switch {
		case errors.Is(err, ErrWaiting):
			rec.Status, rec.Error = StatusWaiting, err.Error()
		case err != nil:
			if cause := context.Cause(ctx); cause != nil && errors.Is(cause, ErrLeaseLost) {
				err = cause
			}
			rec.Status, rec.Error = StatusFailed, err.Error()
			rec.Retryable = !IsPermanent(err) && !errors.Is(err, ErrLeaseLost) && ctx.Err() == nil
		}
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.RequestTimeout)
		werr := r.writeRecord(wctx, lease, rec)
		if werr != nil || err == nil || !rec.Retryable || attempt-first+1 >= r.cfg.MaxAttempts {
			closing, closingCancel = wctx, wcancel // the release shares this budget
		} else {
			wcancel()
		}
		if werr != nil {
			return res, errors.Join(err, werr)
		}
		res.Record = rec
		if rec.Status == StatusWaiting {
			res.Status = StatusWaiting
			alog.Info().Str("reason", rec.Error).Msg("waiting for input: not failed, not retried; a later run picks the period up")
			return res, nil
		}
		if err == nil {
			res.Status = StatusSucceeded
			alog.Info().Int64("duration_ms", rec.DurationMS).Int("outputs", len(rec.Outputs)).Msg("run succeeded")
			return res, nil
		}
		res.Status = StatusFailed
		if !rec.Retryable || attempt-first+1 >= r.cfg.MaxAttempts {
			alog.Error().Err(err).Msg("run failed")
			return res, err
		}
		wait := backoff(attempt-first+1, r.cfg.Backoff, r.cfg.BackoffMax, r.jitter)
		alog.Warn().Err(err).Int64("retry_in_ms", wait.Milliseconds()).Msg("attempt failed, retrying")
		if err := r.clock.Sleep(ctx, wait); err != nil {
			return res, err
		}
	}
}

// attempt is one try: upstream periods, then the job computes and publishes.
func (r *Runner) attempt(ctx context.Context, job Job, p periods.Period, regions []string, o Options, lease *Lease, rec *Record, log zerolog.Logger, ran *[]*Record) (*RunContext, error) {
	inputs, err := r.upstream(ctx, job, p, o, ran)
	rec.Inputs = inputs
	if err != nil {
		return nil, err
	}

	rc := &RunContext{Job: job.Name(), Period: p, RunID: rec.RunID, Regions: regions, Stores: r.stores,
		Clock: r.clock, Log: log, checkLease: lease.Check}
	for _, in := range inputs { // an upstream's gaps are this run's too, named as they were
		for _, gap := range in.gaps {
			if !slices.Contains(rc.partial, gap) {
				rc.Partial(gap)
			}
		}
	}
	err = job.Run(ctx, rc)
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	rec.Outputs, rec.Counts, rec.Notes, rec.Partial = rc.outputs, rc.counts, rc.notes, rc.partial
	rec.Inputs = append(rec.Inputs, rc.reads...)
	sort.Slice(rec.Outputs, func(i, j int) bool { return rec.Outputs[i].Key < rec.Outputs[j].Key })
	rec.Rows = map[string]int64{}
	for _, out := range rec.Outputs {
		rec.Rows[TableOf(out.Key)] += out.Rows
	}
	rec.Checksum = outputsChecksum(rec.Outputs)
	// The run's own deadline names itself; a deadline inside the job (one
	// request's, say) keeps its error: the run's context has no cause then.
	if cause := context.Cause(ctx); err != nil && errors.Is(err, context.DeadlineExceeded) && cause != nil {
		return rc, cause
	}
	return rc, err
}

// upstream makes sure every period job needs is complete, running missing ones
// (or failing with --no-deps), and returns them as the run's inputs.
func (r *Runner) upstream(ctx context.Context, job Job, p periods.Period, o Options, ran *[]*Record) ([]Input, error) {
	var inputs []Input
	for _, d := range job.Needs(p) {
		rec, done, err := r.ledger.Complete(ctx, d.Job, d.Period.ID())
		if err != nil {
			return inputs, err
		}
		if !done {
			if o.NoDeps {
				return inputs, Permanent(fmt.Errorf("upstream %s is missing (run it first, or drop --no-deps)", d))
			}
			zerolog.Ctx(ctx).Info().Str("upstream", d.String()).Msg("running missing upstream period")
			res, err := r.Run(ctx, d.Job, d.Period, Options{Trigger: "upstream", By: o.By})
			switch {
			case errors.Is(err, ErrLeaseHeld):
				if rec, err = r.waitFor(ctx, d); err != nil {
					return inputs, err
				}
			case err != nil:
				// The upstream already retried on its own; retrying here would repeat that.
				return inputs, Permanent(fmt.Errorf("upstream %s failed: %w", d, err))
			case res.Status == StatusWaiting:
				return inputs, Waiting(fmt.Errorf("upstream %s is waiting: %s", d, res.Record.Error))
			default:
				rec = res.Record
				if res.Status == StatusSucceeded {
					*ran = append(*ran, append(res.Upstream, rec)...)
				}
			}
		}
		inputs = append(inputs, Input{Job: d.Job, Period: d.Period.ID(), RunID: rec.RunID, Checksum: rec.Checksum, Partial: len(rec.Partial) > 0, gaps: rec.Partial})
	}
	return inputs, nil
}

// waitFor waits for an upstream period another runner is running, up to
// UpstreamWait; then the run fails retryably.
func (r *Runner) waitFor(ctx context.Context, d Dep) (*Record, error) {
	var rec *Record
	done, err := r.poll(ctx, func() (done bool, err error) {
		rec, done, err = r.ledger.Complete(ctx, d.Job, d.Period.ID())
		return done, err
	})
	if err != nil {
		return nil, err
	}
	if !done {
		return nil, fmt.Errorf("upstream %s is held by another runner and did not complete within %s", d, r.cfg.UpstreamWait)
	}
	return rec, nil
}

// poll calls try until it reports done (or fails), a tenth of a lease TTL apart,
// for at most UpstreamWait; done is false when that time ran out.
func (r *Runner) poll(ctx context.Context, try func() (bool, error)) (bool, error) {
	deadline := r.clock.Now().Add(r.cfg.UpstreamWait)
	every := max(r.cfg.LeaseTTL/10, 50*time.Millisecond)
	for {
		done, err := try()
		if done || err != nil {
			return done, err
		}
		if !r.clock.Now().Before(deadline) {
			return false, nil
		}
		if err := r.clock.Sleep(ctx, every); err != nil {
			return false, err
		}
	}
}

// fenceEarlier reads job+period's attempts and marks those left "running" as
// abandoned: we hold the lease now, so nobody may be running them. The mark is a
// compare-and-swap on the version read, so a runner paused past its lease can no
// longer write its own record afterwards; if it wrote between our read and our
// swap, the attempts are read again.
func (r *Runner) fenceEarlier(ctx context.Context, lease *Lease, job, period string) ([]*Record, error) {
	for try := 0; ; try++ {
		prior, err := r.ledger.Attempts(ctx, job, period)
		if err != nil {
			return nil, err
		}
		changed := false
		for _, rec := range prior {
			if rec.Status != StatusRunning {
				continue
			}
			rec.Status = StatusAbandoned
			rec.Error = "runner died or stalled: its lease expired and was taken over"
			err := r.writeRecord(ctx, lease, rec)
			if errors.Is(err, ErrEntryChanged) && try < 3 {
				changed = true
				break
			}
			if err != nil {
				return nil, err
			}
		}
		if !changed {
			return prior, nil
		}
	}
}

func (r *Runner) writeRecord(ctx context.Context, lease *Lease, rec *Record) error {
	if err := lease.Check(ctx); err != nil {
		return err
	}
	return r.ledger.Write(ctx, rec)
}

// plan is --dry-run: what would run and be written, with no lease and no writes.
func (r *Runner) plan(ctx context.Context, job Job, p periods.Period, regions []string, o Options, res *Result) (*Result, error) {
	res.Status = StatusPlanned
	for _, d := range job.Needs(p) {
		if _, done, err := r.ledger.Complete(ctx, d.Job, d.Period.ID()); err != nil {
			return nil, err
		} else if done {
			continue
		}
		if o.NoDeps {
			return res, Permanent(fmt.Errorf("upstream %s is missing (run it first, or drop --no-deps)", d))
		}
		sub, err := r.Run(ctx, d.Job, d.Period, Options{DryRun: true, Trigger: "upstream"})
		if err != nil {
			return res, err
		}
		res.Plan = append(res.Plan, sub.Plan...)
	}
	res.Plan = append(res.Plan, fmt.Sprintf("run %s %s", job.Name(), p.ID()))
	for _, w := range job.Writes(p, regions) {
		res.Plan = append(res.Plan, "  write "+w)
	}
	return res, nil
}

// scope validates --region values (none = every region).
func scope(regions []string) ([]string, error) {
	if len(regions) == 0 {
		return append([]string(nil), model.Regions...), nil
	}
	var out []string
	for _, r := range model.Regions {
		for _, want := range regions {
			if strings.EqualFold(want, r) && !contains(out, r) {
				out = append(out, r)
			}
		}
	}
	for _, want := range regions {
		if !contains(model.Regions, strings.ToUpper(want)) {
			return nil, Usagef("unknown region %q: the regions are %s", want, strings.Join(model.Regions, ", "))
		}
	}
	return out, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TableOf turns an output key into its table: inventory/users/region=US/... → inventory/users.
func TableOf(key string) string {
	parts := strings.Split(key, "/")
	var out []string
	for _, p := range parts[:len(parts)-1] {
		if strings.Contains(p, "=") {
			break
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return parts[0]
	}
	return strings.Join(out, "/")
}
