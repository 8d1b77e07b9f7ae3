package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"tally/jobs"
	"tally/periods"
	"tally/runner"
	"tally/source"
)

// periodState is one job+period as plan sees it.
type periodState struct {
	Job    string `json:"job"`
	Period string `json:"period"`
	State  string `json:"state"` // complete, missing, failed, stale, running, abandoned
	RunID  string `json:"run_id,omitempty"`
	Detail string `json:"detail,omitempty"`
}

type jobPlan struct {
	Job         string        `json:"job"`
	Schedule    string        `json:"schedule"`
	NextFirings []time.Time   `json:"next_firings"`
	Periods     []periodState `json:"periods"`
}

func (a *app) planCmd() *cobra.Command {
	var from, to, output string
	var check bool
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show each job's next firings and every missing, failed or stale period",
		Long: `For each job, list the periods that ended between --from and --to (default: the
last 7 days, 4 weeks or 3 months as of --as-of) with their state — complete,
missing, failed, stale (an upstream was re-run after it), running or abandoned —
and the next firings of its schedule. --check exits 1 when any period is
missing, failed or stale, so an operator or a CI step sees gaps before a
backfill.`,
		Example: "  tally plan\n  tally plan --from 2026-10-01 --to 2026-10-31 --check\n  tally plan -o json",
		Args:    usageArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, reg, err := a.build()
			if err != nil {
				return err
			}
			now, err := a.now()
			if err != nil {
				return err
			}
			var fromT, toT time.Time
			if from != "" {
				if fromT, err = time.Parse("2006-01-02", from); err != nil {
					return runner.Usagef("--from %q: want a date like 2026-10-01", from)
				}
			}
			if to != "" {
				if toT, err = time.Parse("2006-01-02", to); err != nil {
					return runner.Usagef("--to %q: want a date like 2026-10-31", to)
				}
			}
			if from != "" && to != "" && toT.Before(fromT) {
				return runner.Usagef("--from %s is after --to %s", from, to)
			}
			plans, gaps, err := a.plan(cmd.Context(), r, reg, now, fromT, toT)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(plans); err != nil {
					return err
				}
			case "table", "":
				tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
				for _, p := range plans {
					next := ""
					for i, t := range p.NextFirings {
						if i > 0 {
							next += ", "
						}
						next += t.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t(%s)\tnext: %s\n", p.Job, p.Schedule, next)
					for _, ps := range p.Periods {
						fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", ps.Period, ps.State, ps.RunID, ps.Detail)
					}
				}
				tw.Flush()
				fmt.Fprintf(a.stdout, "%d periods missing, failed or stale\n", gaps)
			default:
				return runner.Usagef("-o %q: want table or json", output)
			}
			if check && gaps > 0 {
				return exitError(exitFailed)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "first date to cover (default: a few periods back from --as-of)")
	f.StringVar(&to, "to", "", "last date to cover (default: --as-of)")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	f.BoolVar(&check, "check", false, "exit 1 when any period is missing, failed or stale")
	return cmd
}

func (a *app) plan(ctx context.Context, r *runner.Runner, reg *jobs.Registry, now, from, to time.Time) ([]jobPlan, int, error) {
	view, err := a.ledgerView(ctx, r, "")
	if err != nil {
		return nil, 0, err
	}
	latest := map[string]*runner.Record{} // job/period → latest attempt
	for _, rec := range view {
		latest[rec.Job+"/"+rec.Period] = rec
	}
	var plans []jobPlan
	gaps := 0
	// stale: job/period → why, for inputs that changed after a run used them (a
	// files source's delivered day) and for everything downstream of those.
	stale := map[string]string{}
	src, err := a.openSource()
	if err != nil {
		return nil, 0, err
	}
	detector, _ := src.(source.ChangeDetector)
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
			back := map[periods.Cadence]int{periods.Daily: 6, periods.Weekly: 7, periods.Monthly: 2}[j.Cadence()]
			for i := 0; i < back; i++ {
				first = first.Prev()
			}
		} else {
			first = periods.Containing(j.Cadence(), from)
		}
		next, err := reg.NextFirings(j.Name(), now, 3)
		if err != nil {
			return nil, 0, runner.Usagef("job %s: schedule %q: %v", j.Name(), reg.Schedule(j.Name()), err)
		}
		jp := jobPlan{Job: j.Name(), Schedule: reg.Schedule(j.Name()), NextFirings: next, Periods: []periodState{}}
		ps, _ := periods.Range(first, last)
		for _, p := range ps {
			st := periodState{Job: j.Name(), Period: p.ID(), State: "missing"}
			if rec := latest[j.Name()+"/"+p.ID()]; rec != nil {
				st.RunID = rec.RunID
				switch rec.Status {
				case runner.StatusSucceeded:
					st.State = "complete"
					if len(rec.Partial) > 0 {
						st.State, st.Detail = "partial", strings.Join(rec.Partial, "; ")
					}
					if weeks, ok := rec.Notes["missing_trend_weeks"].([]any); ok && len(weeks) > 0 {
						st.Detail = fmt.Sprintf("trends lack %d earlier weeks: %v", len(weeks), weeks)
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
						if up := latest[in.Job+"/"+in.Period]; up != nil && up.Status == runner.StatusSucceeded && up.Checksum != in.Checksum {
							st.State, st.Detail = "stale", fmt.Sprintf("upstream %s %s was re-run after it (%s)", in.Job, in.Period, up.RunID)
							stale[j.Name()+"/"+p.ID()] = st.Detail
							break
						}
					}
				case runner.StatusFailed:
					st.State, st.Detail = "failed", rec.Error
				case runner.StatusWaiting:
					st.State, st.Detail = "waiting", rec.Error
				default:
					st.State = string(rec.Status)
				}
			}
			if st.State == "missing" || st.State == "failed" || st.State == "stale" || st.State == "abandoned" {
				gaps++
			}
			jp.Periods = append(jp.Periods, st)
		}
		plans = append(plans, jp)
	}
	return plans, gaps, nil
}
