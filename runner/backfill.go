package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"tally/periods"
)

// BackfillOptions shape a backfill.
type BackfillOptions struct {
	Options
	Parallel int
	Shard    int // this worker's index, from 0
	Shards   int // how many workers share the range (1 = all periods)
	// Progress is called after each period, from one goroutine at a time.
	Progress func(done, total int, res *Result, err error)
	// Only, if set, limits the range to these period ids (backfill --stale).
	Only map[string]bool
}

// BackfillSummary counts what a backfill did.
type BackfillSummary struct {
	Periods   []periods.Period
	Succeeded []string
	Skipped   []string
	Failed    map[string]error
	Planned   []string
	Waiting   []string // input not delivered yet (before its deadline)
}

// Complete reports whether every period ended complete.
func (s *BackfillSummary) Complete() bool { return len(s.Failed) == 0 }

// ParseShard reads --shard I/N.
func ParseShard(s string) (i, n int, err error) {
	if s == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n || strings.ContainsAny(s, "+ ") {
		return 0, 0, Usagef("bad --shard %q: want I/N with 0 <= I < N, e.g. 0/4", s)
	}
	return i, n, nil
}

// Backfill runs job for every period in [from, to] of this shard, skipping complete
// ones, at most Parallel at a time. Resuming is running it again: complete periods
// are skipped. Periods that fail do not stop the others.
func (r *Runner) Backfill(ctx context.Context, name string, from, to periods.Period, o BackfillOptions) (*BackfillSummary, error) {
	job, err := r.Job(name)
	if err != nil {
		return nil, err
	}
	if from.Cadence != job.Cadence() {
		return nil, Usagef("%s is a %s job: --from %s is not a %s period", name, job.Cadence(), from.ID(), job.Cadence())
	}
	if err := periods.Ended(to, r.clock.Now()); err != nil {
		return nil, Usage(err)
	}
	all, err := periods.RangeMax(from, to, r.cfg.MaxBackfillPeriods, "runner.max_backfill_periods")
	if err != nil {
		return nil, Usage(err)
	}
	if o.Shards < 1 {
		o.Shards = 1
	}
	if o.Parallel < 1 {
		o.Parallel = 1
	}
	if o.Only != nil {
		var keep []periods.Period
		for _, p := range all {
			if o.Only[p.ID()] {
				keep = append(keep, p)
			}
		}
		all = keep
	}
	sum := &BackfillSummary{Failed: map[string]error{}}
	for i, p := range all {
		if i%o.Shards == o.Shard {
			sum.Periods = append(sum.Periods, p)
		}
	}
	if o.Trigger == "" {
		o.Trigger = "backfill"
	}

	var mu sync.Mutex
	done := 0
	work := make(chan periods.Period)
	var wg sync.WaitGroup
	for w := 0; w < o.Parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				res, err := r.runWhenFree(ctx, name, p, o.Options)
				mu.Lock()
				done++
				switch {
				case err != nil:
					sum.Failed[p.ID()] = err
				case res.Status == StatusSkipped:
					sum.Skipped = append(sum.Skipped, p.ID())
				case res.Status == StatusPlanned:
					sum.Planned = append(sum.Planned, res.Plan...)
				case res.Status == StatusWaiting:
					sum.Waiting = append(sum.Waiting, p.ID())
				default:
					sum.Succeeded = append(sum.Succeeded, p.ID())
				}
				if o.Progress != nil {
					o.Progress(done, len(sum.Periods), res, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, p := range sum.Periods {
		select {
		case work <- p:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("backfill interrupted: %w", err)
	}
	if len(sum.Failed) > 0 {
		return sum, errors.New(fmt.Sprintf("%d of %d periods failed", len(sum.Failed), len(sum.Periods)))
	}
	return sum, nil
}

// runWhenFree runs p; if another runner holds its lease (another backfill, or a
// runner that died and whose lease has not expired yet) it waits up to
// UpstreamWait for the lease to free up or the period to complete.
func (r *Runner) runWhenFree(ctx context.Context, name string, p periods.Period, o Options) (*Result, error) {
	var res *Result
	var runErr error
	if _, err := r.poll(ctx, func() (bool, error) {
		res, runErr = r.Run(ctx, name, p, o)
		return !errors.Is(runErr, ErrLeaseHeld), nil
	}); err != nil {
		return res, err
	}
	return res, runErr
}
