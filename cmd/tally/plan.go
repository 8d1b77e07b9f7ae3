package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"tally/jobs"
	"tally/plan"
	"tally/runner"
	"tally/source"
)

func (a *app) planCmd() *cobra.Command {
	var from, to, output string
	var check bool
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show each job's next firings and every missing, failed or stale period",
		Long: `For each job, list the periods that ended between --from and --to (default: the
last 7 days, 4 weeks or 3 months as of --as-of) with their state — complete,
missing, failed, stale (an upstream was re-run after it, or an earlier week its
trends read was published again), running, abandoned or before-start — and the
next firings of its schedule. A period that ended before runner.start_date
(default: the day of the ledger's first run) and never ran is before-start, not
a gap. --check exits 1 when any period is missing, failed or stale, so an
operator or a CI step sees gaps before a backfill.`,
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

// plan is plan.Compute on this app's ledger view and source.
func (a *app) plan(ctx context.Context, r *runner.Runner, reg *jobs.Registry, now, from, to time.Time) ([]plan.JobPlan, int, error) {
	view, err := plan.View(ctx, r.Ledger(), a.clock, "")
	if err != nil {
		return nil, 0, err
	}
	src, err := a.openSource()
	if err != nil {
		return nil, 0, err
	}
	detector, _ := src.(source.ChangeDetector)
	start, err := plan.Start(a.cfg.Runner.StartDate, view, now)
	if err != nil {
		return nil, 0, err
	}
	return plan.Compute(ctx, r, reg, view, detector, now, plan.Window{From: from, To: to, Start: start})
}
