// Package plan owns what `tally plan` and the console show of each job's
// recent periods: complete, partial, missing, failed, stale (an upstream
// changed after it), waiting, running, abandoned, or before-start (ended before
// tally was expected to run, never a gap), with the next firings.
package plan

import (
	"context"
	"fmt"
	"strings"
	"time"

	"tally/clock"
	"tally/jobs"
	"tally/periods"
	"tally/runner"
	"tally/source"
)

// PeriodState is one job+period as plan sees it.
type PeriodState struct {
	Job    string `json:"job"`
	Period string `json:"period"`
	State  string `json:"state"` // complete, partial, missing, failed, stale, waiting, running, abandoned, before-start
	RunID  string `json:"run_id,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Gap reports whether the state needs an operator (a backfill or a look).
func (s PeriodState) Gap() bool {
	return s.State == "missing" || s.State == "failed" || s.State == "stale" || s.State == "abandoned"
}

// JobPlan is one job's schedule, next firings and periods.
type JobPlan struct {
	Job         string        `json:"job"`
	Schedule    string        `json:"schedule"`
	NextFirings []time.Time   `json:"next_firings"`
	Periods     []PeriodState `json:"periods"`
}

// View is the ledger's records of job ("" all) as readers see them: a running
// attempt whose lease is released or expired reads abandoned.
func View(ctx context.Context, ledger *runner.Ledger, clk clock.Clock, job string) ([]*runner.Record, error) {
	recs, err := ledger.All(ctx, job)
	if err != nil {
		return nil, err
	}
	leases, err := runner.Leases(ctx, ledger.Store)
	if err != nil {
		return nil, err
	}
	now := clk.Now()
	live := map[string]bool{}
	for _, l := range leases {
		if !l.Released && now.Before(l.ExpiresAt) {
			live[l.Holder.RunID] = true
		}
	}
	for _, rec := range recs {
		if rec.Status == runner.StatusRunning && !live[rec.RunID] {
			rec.Status = runner.StatusAbandoned
		}
	}
	return recs, nil
}

// Window is which periods Compute lists: those that ended between From and To
// (From zero: Back periods, or a few by cadence when Back is 0). A period
// with no run that ended by Start reads before-start, not missing.
type Window struct {
	From, To, Start time.Time
	Back            int
}

// Start is when tally is expected to have started running: the configured
// date (runner.start_date, YYYY-MM-DD), else the day of the ledger's first
// run, else now (nothing has run: nothing is owed yet).
func Start(configured string, view []*runner.Record, now time.Time) (time.Time, error) {
	if configured != "" {
		t, err := time.Parse(time.DateOnly, configured)
		if err != nil {
			return time.Time{}, fmt.Errorf("runner.start_date %q: want a date like 2026-01-01", configured)
		}
		return t, nil
	}
	first := now
	for _, rec := range view {
		if rec.StartedAt.Before(first) {
			first = rec.StartedAt
		}
	}
	return first.UTC().Truncate(24 * time.Hour), nil
}

// Compute lists, per job, the periods of the window with their state, and
// counts the gaps (missing, failed, stale, abandoned). view is the ledger as
// readers see it (running attempts whose lease is gone read abandoned, see
// View); detector, when the source can tell, marks synced days whose delivery
// changed since as stale.
func Compute(ctx context.Context, r *runner.Runner, reg *jobs.Registry, view []*runner.Record, detector source.ChangeDetector, now time.Time, w Window) ([]JobPlan, int, error) {
	from, to, back := w.From, w.To, w.Back
	latest := map[string]*runner.Record{} // job/period → latest attempt
	for _, rec := range view {
		latest[rec.Job+"/"+rec.Period] = rec
	}
	var plans []JobPlan
	gaps := 0
	// stale: job/period → why, for inputs that changed after a run used them (a
	// files source's delivered day) and for everything downstream of those.
	stale := map[string]string{}
	for _, j := range r.Jobs() {
		// The last period that ended by the end of --to (and by now).
		last := periods.Latest(j.Cadence(), now)
		if !to.IsZero() {
			if byTo := periods.Latest(j.Cadence(), to.AddDate(0, 0, 1)); byTo.Start.Before(last.Start) {
				last = byTo
			}
		}
		first := last
		if from.IsZero() {
			n := back - 1
			if back <= 0 {
				n = map[periods.Cadence]int{periods.Daily: 6, periods.Weekly: 7, periods.Monthly: 2}[j.Cadence()]
			}
			for i := 0; i < n; i++ {
				first = first.Prev()
			}
		} else {
			first = periods.Containing(j.Cadence(), from)
		}
		next, err := reg.NextFirings(j.Name(), now, 3)
		if err != nil {
			return nil, 0, runner.Usagef("job %s: schedule %q: %v", j.Name(), reg.Schedule(j.Name()), err)
		}
		jp := JobPlan{Job: j.Name(), Schedule: reg.Schedule(j.Name()), NextFirings: next, Periods: []PeriodState{}}
		ps, _ := periods.Range(first, last)
		for _, p := range ps {
			st := PeriodState{Job: j.Name(), Period: p.ID(), State: "missing"}
			rec := latest[j.Name()+"/"+p.ID()]
			if rec == nil && !w.Start.IsZero() && !p.End().After(w.Start) {
				st.State, st.Detail = "before-start", "ended before "+w.Start.Format(time.DateOnly)+", when tally started (runner.start_date)"
			}
			if rec != nil {
				st.RunID = rec.RunID
				switch rec.Status {
				case runner.StatusSucceeded:
					st.State = "complete"
					if len(rec.Partial) > 0 {
						st.State, st.Detail = "partial", strings.Join(rec.Partial, "; ")
					}
					// Earlier periods its trends lacked: published since, they make it
					// stale; still missing, they are its detail.
					var lacked []string
					if weeks, ok := rec.Notes["missing_trend_weeks"].([]any); ok {
						for _, w := range weeks {
							id, _ := w.(string)
							if up := latest[j.Name()+"/"+id]; up != nil && up.Status == runner.StatusSucceeded {
								stale[j.Name()+"/"+p.ID()] = fmt.Sprintf("week %s, missing from its trends when it ran, is published now (%s)", id, up.RunID)
							} else {
								lacked = append(lacked, id)
							}
						}
					}
					if len(lacked) > 0 {
						st.Detail = fmt.Sprintf("trends lack %d earlier weeks: %v", len(lacked), lacked)
					}
					if notes, ok := rec.Notes["source"].(map[string]any); ok && detector != nil && j.Name() == jobs.SyncClusters {
						why, err := detector.Changed(ctx, p, notes)
						if err != nil {
							return nil, 0, err
						}
						if why != "" {
							stale[j.Name()+"/"+p.ID()] = why
						}
					}
					for _, in := range rec.Inputs {
						if _, ok := stale[in.Job+"/"+in.Period]; ok {
							stale[j.Name()+"/"+p.ID()] = fmt.Sprintf("upstream %s %s is stale", in.Job, in.Period)
							break
						}
					}
					if why, ok := stale[j.Name()+"/"+p.ID()]; ok {
						st.State, st.Detail = "stale", why
						break
					}
					for _, in := range rec.Inputs {
						up := latest[in.Job+"/"+in.Period]
						if up == nil || up.Status != runner.StatusSucceeded {
							continue
						}
						switch {
						case in.Trend && up.RunID != in.RunID:
							st.State, st.Detail = "stale", fmt.Sprintf("%s %s, read for its trends, was published again (%s)", in.Job, in.Period, up.RunID)
						case !in.Trend && up.Checksum != in.Checksum:
							st.State, st.Detail = "stale", fmt.Sprintf("upstream %s %s was re-run after it (%s)", in.Job, in.Period, up.RunID)
						default:
							continue
						}
						stale[j.Name()+"/"+p.ID()] = st.Detail
						break
					}
				case runner.StatusFailed:
					st.State, st.Detail = "failed", rec.Error
				case runner.StatusWaiting:
					st.State, st.Detail = "waiting", rec.Error
				default:
					st.State = string(rec.Status)
				}
			}
			if st.Gap() {
				gaps++
			}
			jp.Periods = append(jp.Periods, st)
		}
		plans = append(plans, jp)
	}
	return plans, gaps, nil
}
