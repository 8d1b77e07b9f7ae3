package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"tally/jobs"
	"tally/mail"
	"tally/model"
	"tally/periods"
	"tally/plan"
	"tally/runner"
	"tally/source/files"
	"tally/source/webex"
	"tally/storage"
)

func usageArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return runner.Usagef("%s: want %s (see tally %s --help)", cmd.CommandPath(), what, cmd.Name())
		}
		return nil
	}
}

func (a *app) runCmd() *cobra.Command {
	var period string
	var regions []string
	var o runner.Options
	var email bool
	cmd := &cobra.Command{
		Use:   "run JOB",
		Short: "Run one job for one period (for CronJobs and operators)",
		Long: `Run JOB for one period. Complete periods are skipped unless --force; missing
upstream periods are run first unless --no-deps. Exit 0 when the period is
complete, 1 when it failed, 2 on a usage or config error, 3 when another runner
holds the lease for this job and period.`,
		Example: `  tally run license-usage                           # latest day as of now
  tally run sync-clusters --period 2026-11-21 --force
  tally run license-usage --period latest --as-of 2026-11-22T00:15:00Z
  tally run license-usage --period 2026-11-21 --dry-run
  tally run license-usage --period 2026-11-21 --force --region EU`,
		Args: usageArgs(1, "one job name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _, w, err := a.buildAll()
			if err != nil {
				return err
			}
			job, err := r.Job(args[0])
			if err != nil {
				return err
			}
			now, err := a.now()
			if err != nil {
				return err
			}
			p, err := periods.ParseRef(job.Cadence(), period, now)
			if err != nil {
				return runner.Usage(fmt.Errorf("--period: %w", err))
			}
			o.Regions = regions
			// A run emails its subscribers; a forced re-run only with --email.
			o.Email = !o.Force || email
			res, err := r.Run(cmd.Context(), job.Name(), p, o)
			if res != nil {
				a.printResult(cmd.Context(), r, res)
			}
			if !o.DryRun {
				a.pushMetrics(r, job.Name(), res, err, a.notifier(w))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&period, "period", "latest", "period id (2026-11-21, 2026-11-15 for the week starting that Sunday, 2026-10) or latest")
	f.StringSliceVar(&regions, "region", nil, "limit a forced re-run to these regions' outputs (US, CA, EU, UAE; repeatable)")
	f.BoolVar(&o.Force, "force", false, "re-run even if the period is complete")
	f.BoolVar(&o.NoDeps, "no-deps", false, "fail instead of running missing upstream periods")
	f.BoolVar(&o.DryRun, "dry-run", false, "print what would run and be written; write nothing, take no lease")
	f.BoolVar(&email, "email", false, "with --force: email the subscribers again (report jobs)")
	return cmd
}

// printResult prints a short summary of a run: rows per table and region,
// counts, notes, and where the files are.
func (a *app) printResult(ctx context.Context, r *runner.Runner, res *runner.Result) {
	w := a.stdout
	switch res.Status {
	case runner.StatusPlanned:
		fmt.Fprintln(w, "dry run: nothing was written")
		for _, line := range res.Plan {
			fmt.Fprintln(w, "  "+line)
		}
		return
	case runner.StatusHeld:
		return
	}
	rec := res.Record
	if rec == nil {
		return
	}
	// Upstream periods this run had to run first: one line each.
	for _, up := range res.Upstream {
		var rows int64
		for _, o := range up.Outputs {
			rows += o.Rows
		}
		fmt.Fprintf(a.stdout, "ran upstream %s %s: %s (%d rows) [%s, %s]\n", up.Job, up.Period, up.Status, rows, up.RunID, duration(up))
	}
	note := ""
	if res.Status == runner.StatusSkipped {
		note = " (already complete; --force re-runs it)"
	}
	a.printRecord(rec, note)
}

func (a *app) printRecord(rec *runner.Record, note string) {
	w := a.stdout
	rec = asStored(rec)
	fmt.Fprintf(w, "%s %s: %s%s  [%s, %s]\n", rec.Job, rec.Period, rec.Shown(), note, rec.RunID, duration(rec))
	for _, gap := range rec.Partial {
		fmt.Fprintf(w, "  partial: %s\n", gap)
	}
	if rec.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", rec.Error)
	}
	// Report runs list their files per subscription instead (printReports).
	if _, isReport := rec.Notes["reports"]; len(rec.Outputs) > 0 && !isReport {
		rows := map[string]map[string]int64{}
		var tables []string
		for _, o := range rec.Outputs {
			t := runner.TableOf(o.Key)
			if rows[t] == nil {
				rows[t] = map[string]int64{}
				tables = append(tables, t)
			}
			rows[t][o.Region] += o.Rows
		}
		sort.Strings(tables)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "  %-24s\t%s\t\n", "rows", strings.Join(model.Regions, "\t"))
		for _, t := range tables {
			fmt.Fprintf(tw, "  %-24s\t", t)
			for _, reg := range model.Regions {
				if n, ok := rows[t][reg]; ok {
					fmt.Fprintf(tw, "%d\t", n)
				} else {
					fmt.Fprint(tw, "-\t")
				}
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	a.printReports(rec)
	if c, ok := rec.Notes["compliance"].(map[string]any); ok {
		fmt.Fprintf(w, "  compliance (subscription × license type): over %v, under %v, ok %v\n", num(c["over"]), num(c["under"]), num(c["ok"]))
	}
	if kpis, ok := rec.Notes["kpis"].([]any); ok && len(kpis) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "  %-8s\t%-8s\tcustomers\texpiring\trenewing\tlow assignment\tover limit\tcalling users\t\n", "region", "partner")
		for _, k := range kpis {
			m, _ := k.(map[string]any)
			fmt.Fprintf(tw, "  %-8v\t%-8v\t%v\t%v\t%v\t%v\t%v\t%v\t\n", m["region"], m["partner_id"], m["total_customers"], m["approaching_expiration"],
				m["approaching_renewal"], m["low_assignment"], m["over_license_limit"], m["calling_users"])
		}
		tw.Flush()
	}
	if weeks, ok := rec.Notes["missing_trend_weeks"].([]any); ok && len(weeks) > 0 {
		fmt.Fprintf(w, "  trends: %d earlier weeks not published (null in the trends): %v — tally backfill analytics fills them\n", len(weeks), weeks)
	}
	if n := rec.Counts["quarantined"]; n > 0 {
		fmt.Fprintf(w, "  quarantined: %d malformed source rows (see quarantine/)\n", n)
	}
	if nc, ok := rec.Notes["new_clusters"].([]any); ok {
		np, _ := rec.Notes["new_publishers"].([]any)
		fmt.Fprintf(w, "  new since the previous snapshot: %d clusters, %d publisher nodes\n", len(nc), len(np))
	}
	if len(rec.Outputs) > 0 && a.cfg.Storage.Type == "local" {
		root, _ := filepath.Abs(a.cfg.Storage.Path)
		dirs := map[string]bool{}
		var list []string
		for _, o := range rec.Outputs {
			d := strings.SplitN(o.Key, "/region=", 2)[0] + "/"
			if !dirs[d] {
				dirs[d] = true
				list = append(list, d)
			}
		}
		sort.Strings(list)
		fmt.Fprintf(w, "  files: %s/{%s}\n", root, strings.Join(list, ","))
	}
}

// duration is how long an attempt took ("-" while it runs).
func duration(rec *runner.Record) string {
	if rec.EndedAt == nil {
		return "-"
	}
	return rec.EndedAt.Sub(rec.StartedAt).Round(time.Millisecond).String()
}

// asStored is rec as the ledger stores it (notes decoded from JSON), so records
// from this run and from storage print alike.
func asStored(rec *runner.Record) *runner.Record {
	b, err := json.Marshal(rec)
	if err != nil {
		return rec
	}
	var out runner.Record
	if json.Unmarshal(b, &out) != nil {
		return rec
	}
	return &out
}

func num(v any) any {
	if v == nil {
		return 0
	}
	return v
}

func (a *app) backfillCmd() *cobra.Command {
	var from, to, shard string
	var o runner.BackfillOptions
	var email, stale bool
	cmd := &cobra.Command{
		Use:   "backfill JOB --from ID --to ID",
		Short: "Run a job for every period in a range (resumable, sharded, parallel)",
		Long: `Run JOB for every period from --from to --to (inclusive). Complete periods are
skipped unless --force, so a backfill that was interrupted resumes where it
stopped when run again. Missing upstream periods are run first. --shard I/N
takes the periods whose position in the range is I modulo N (for Kubernetes
Indexed Jobs: --shard $(JOB_COMPLETION_INDEX)/N). Exit 0 when every period is
complete, 1 when any failed (the others still ran).`,
		Example: `  tally backfill license-usage --from 2026-10-01 --to 2026-10-31 --parallel 2
  tally backfill sync-clusters --from 2026-11-01 --to 2026-11-20 --shard 0/4
  tally backfill license-usage --from 2026-10-01 --to 2026-10-07 --dry-run
  tally backfill analytics --from 2026-09-06 --to 2026-11-15 --stale`,
		Args: usageArgs(1, "one job name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" || to == "" {
				return runner.Usagef("backfill: --from and --to are required")
			}
			if isTerminal(a.stderr) && a.log.GetLevel() < zerolog.WarnLevel {
				a.log = a.log.Level(zerolog.WarnLevel) // keep the progress bar readable: warnings and errors only
			}
			r, reg, w, err := a.buildAll()
			if err != nil {
				return err
			}
			job, err := r.Job(args[0])
			if err != nil {
				return err
			}
			pf, err := periods.Parse(job.Cadence(), from)
			if err != nil {
				return runner.Usage(fmt.Errorf("--from: %w", err))
			}
			pt, err := periods.Parse(job.Cadence(), to)
			if err != nil {
				return runner.Usage(fmt.Errorf("--to: %w", err))
			}
			if _, err := periods.RangeMax(pf, pt, a.cfg.Runner.MaxBackfillPeriods, "runner.max_backfill_periods"); err != nil {
				return runner.Usage(err)
			}
			if o.Shard, o.Shards, err = runner.ParseShard(shard); err != nil {
				return err
			}
			if o.Parallel < 1 {
				return runner.Usagef("--parallel %d: must be at least 1", o.Parallel)
			}
			o.Progress = a.backfillProgress(job.Name())
			var sum *runner.BackfillSummary
			if stale {
				sum, err = a.backfillStale(cmd.Context(), r, reg, job, pf, pt, o)
			} else {
				sum, err = r.Backfill(cmd.Context(), job.Name(), pf, pt, o)
			}
			if sum != nil {
				a.printBackfill(job.Name(), sum)
			}
			if email && sum != nil && !o.DryRun {
				if derr := a.digest(cmd.Context(), r, w, job.Name(), sum); derr != nil {
					a.log.Error().Err(derr).Msg("backfill digest")
				}
			}
			if err != nil && !runner.IsUsage(err) {
				return exitError(exitFailed)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "first period id (inclusive)")
	f.StringVar(&to, "to", "", "last period id (inclusive)")
	f.IntVar(&o.Parallel, "parallel", 1, "periods run at once")
	f.BoolVar(&o.Force, "force", false, "re-run complete periods too")
	f.BoolVar(&o.DryRun, "dry-run", false, "print what would run; write nothing")
	f.StringVar(&shard, "shard", "", "I/N: run only the periods at positions I mod N (I from 0)")
	f.BoolVar(&email, "email", false, "report jobs: email one digest per subscription listing every period's links")
	f.BoolVar(&stale, "stale", false, "only the periods tally plan shows stale (an input, or an earlier week a week's trends read, changed after they ran), re-run until none is left; analytics weeks one at a time, oldest first")
	return cmd
}

// backfillStale re-runs the periods of the range that tally plan shows stale,
// then looks again: re-running them can leave others stale (a week's trends
// read the weeks before it), so it goes on until none is left. A job whose
// periods read its own earlier ones runs them one at a time, oldest first.
func (a *app) backfillStale(ctx context.Context, r *runner.Runner, reg *jobs.Registry, job runner.Job, from, to periods.Period, o runner.BackfillOptions) (*runner.BackfillSummary, error) {
	if tr, ok := job.(runner.TrendReader); ok && tr.ReadsEarlierPeriods() && o.Parallel > 1 {
		fmt.Fprintf(a.stdout, "%s reads its earlier periods: one at a time, oldest first (not --parallel %d)\n", job.Name(), o.Parallel)
		o.Parallel = 1
	}
	o.Force = true
	all, _ := periods.Range(from, to)
	total := &runner.BackfillSummary{Failed: map[string]error{}}
	for round := 1; ; round++ {
		plans, _, err := a.plan(ctx, r, reg, a.clock.Now(), from.Start, to.End().Add(-time.Nanosecond))
		if err != nil {
			return total, err
		}
		o.Only = map[string]bool{}
		for _, jp := range plans {
			for _, ps := range jp.Periods {
				if jp.Job == job.Name() && ps.State == "stale" && total.Failed[ps.Period] == nil {
					o.Only[ps.Period] = true
				}
			}
		}
		if round == 1 || len(o.Only) > 0 {
			fmt.Fprintf(a.stdout, "%d stale %s periods between %s and %s\n", len(o.Only), job.Name(), from.ID(), to.ID())
		}
		if len(o.Only) == 0 || round > len(all)+1 {
			return total, nil
		}
		if o.DryRun {
			return r.Backfill(ctx, job.Name(), from, to, o)
		}
		sum, err := r.Backfill(ctx, job.Name(), from, to, o)
		if sum != nil {
			total.Periods = append(total.Periods, sum.Periods...)
			total.Succeeded = append(total.Succeeded, sum.Succeeded...)
			total.Skipped = append(total.Skipped, sum.Skipped...)
			total.Planned = append(total.Planned, sum.Planned...)
			total.Waiting = append(total.Waiting, sum.Waiting...)
			for k, v := range sum.Failed {
				total.Failed[k] = v
			}
		}
		if err != nil {
			return total, err
		}
	}
}

// backfillProgress is a progress bar on a terminal, and a log line per period otherwise.
func (a *app) backfillProgress(job string) func(done, total int, res *runner.Result, err error) {
	if !isTerminal(a.stderr) {
		return func(done, total int, res *runner.Result, err error) {
			ev := a.log.Info()
			if err != nil {
				ev = a.log.Error().Err(err)
			}
			status := runner.StatusFailed
			period := ""
			if res != nil {
				status, period = res.Status, res.Period.ID()
			}
			ev.Str(runner.LogJob, job).Str(runner.LogPeriod, period).Str("status", string(status)).Int("done", done).Int("total", total).Msg("backfill progress")
		}
	}
	var bar *progressbar.ProgressBar
	return func(done, total int, res *runner.Result, err error) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(a.stderr), progressbar.OptionSetDescription(job),
				progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
		}
		bar.Set(done)
	}
}

func (a *app) printBackfill(job string, s *runner.BackfillSummary) {
	w := a.stdout
	if len(s.Planned) > 0 {
		fmt.Fprintln(w, "dry run: nothing was written")
		for _, line := range s.Planned {
			fmt.Fprintln(w, "  "+line)
		}
	}
	fmt.Fprintf(w, "backfill %s: %d periods: %d run, %d already complete, %d failed\n",
		job, len(s.Periods), len(s.Succeeded), len(s.Skipped), len(s.Failed))
	var failed []string
	for p := range s.Failed {
		failed = append(failed, p)
	}
	sort.Strings(failed)
	for _, p := range failed {
		fmt.Fprintf(w, "  failed %s: %v\n", p, s.Failed[p])
	}
	if len(failed) > 0 {
		fmt.Fprintln(w, "  run the same command again to retry them; complete periods are skipped")
	}
	if len(s.Waiting) > 0 {
		fmt.Fprintf(w, "  waiting for their delivery: %s (run again once delivered)\n", strings.Join(s.Waiting, ", "))
	}
}

func (a *app) jobsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "jobs",
		Short:   "List the jobs, their schedules and next run times",
		Example: "  tally jobs\n  tally jobs --as-of 2026-11-22T00:00:00Z",
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
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tCADENCE\tSCHEDULE (UTC)\tNEXT RUN\tLATEST PERIOD\tNEEDS")
			for _, j := range r.Jobs() {
				next, err := reg.NextFirings(j.Name(), now, 1)
				if err != nil {
					return runner.Usagef("job %s: schedule %q: %v", j.Name(), reg.Schedule(j.Name()), err)
				}
				p := jobs.LatestPeriod(j, now)
				needs := describeNeeds(j.Needs(p))
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.Name(), j.Cadence(), reg.Schedule(j.Name()), next[0].Format(time.RFC3339), p.ID(), needs)
			}
			return tw.Flush()
		},
	}
}

func describeNeeds(deps []runner.Dep) string {
	if len(deps) == 0 {
		return "-"
	}
	byJob := map[string]int{}
	var order []string
	for _, d := range deps {
		if byJob[d.Job] == 0 {
			order = append(order, d.Job)
		}
		byJob[d.Job]++
	}
	var parts []string
	for _, j := range order {
		if byJob[j] == 1 {
			parts = append(parts, j)
		} else {
			parts = append(parts, fmt.Sprintf("%s ×%d", j, byJob[j]))
		}
	}
	return strings.Join(parts, ", ")
}

func (a *app) runsCmd() *cobra.Command {
	var output, period string
	var limit int
	cmd := &cobra.Command{
		Use:   "runs [JOB]",
		Short: "Show the ledger: every attempt with status, duration, rows and errors",
		Long: `Show the ledger (_runs/ in the control store). An attempt left "running" by a
runner that died, whose lease is gone, shows as abandoned.`,
		Example: "  tally runs\n  tally runs license-usage --period 2026-11-21\n  tally runs -o json",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return runner.Usagef("runs: at most one job name")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _, err := a.build()
			if err != nil {
				return err
			}
			job := ""
			if len(args) == 1 {
				if _, err := r.Job(strings.TrimPrefix(args[0], "test-")); err != nil {
					return err
				}
				job = args[0]
			}
			recs, err := a.ledgerView(cmd.Context(), r, job)
			if err != nil {
				return err
			}
			if period != "" {
				var keep []*runner.Record
				for _, rec := range recs {
					if rec.Period == period {
						keep = append(keep, rec)
					}
				}
				recs = keep
			}
			if limit > 0 && len(recs) > limit {
				recs = recs[len(recs)-limit:]
			}
			switch output {
			case "json":
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if recs == nil {
					recs = []*runner.Record{}
				}
				return enc.Encode(recs)
			case "table", "wide", "":
			default:
				return runner.Usagef("-o %q: want table, wide or json", output)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN ID\tSTATUS\tTRIGGER\tSTARTED\tDURATION\tROWS\tERROR")
			for _, rec := range recs {
				var rows int64
				for _, o := range rec.Outputs {
					rows += o.Rows
				}
				dur := duration(rec)
				errText := rec.Error
				if errText == "" && len(rec.Partial) > 0 {
					errText = strings.Join(rec.Partial, "; ")
				}
				if len(errText) > 80 && output != "wide" {
					errText = errText[:77] + "..."
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", rec.RunID, rec.Shown(), rec.Trigger, rec.StartedAt.Format(time.RFC3339), dur, rows, errText)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return a.printUnconfirmed(cmd.Context(), r, job, period)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, wide (errors not cut) or json")
	cmd.Flags().StringVar(&period, "period", "", "only this period id")
	cmd.Flags().IntVar(&limit, "limit", 0, "only the last N attempts (0: all)")
	return cmd
}

// printUnconfirmed lists the email sends not confirmed: failed ones (tally
// resend sends them) and claims whose process stopped before it knew (the
// period's next run sends them).
func (a *app) printUnconfirmed(ctx context.Context, r *runner.Runner, job, period string) error {
	prefix := ""
	if job != "" {
		prefix = job + "/"
		if period != "" {
			prefix += period + "/"
		}
	}
	claims, err := runner.Claims(ctx, r.Ledger().Store, prefix)
	if err != nil {
		return err
	}
	var failed, unknown []*runner.EmailClaim
	for _, c := range runner.Unconfirmed(claims) {
		if c.Status == runner.ClaimFailed {
			failed = append(failed, c)
		} else {
			unknown = append(unknown, c)
		}
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	if len(failed) > 0 {
		fmt.Fprintf(a.stdout, "\n%d email(s) not delivered (refused by the server, or every try failed); fix the cause, then\n`tally resend RUN` sends them again with the same Message-ID:\n", len(failed))
		fmt.Fprintln(tw, "  CLAIM\tRUN\tERROR")
		for _, c := range failed {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Key, c.RunID, c.Error)
		}
		tw.Flush()
	}
	if len(unknown) > 0 {
		fmt.Fprintf(a.stdout, "\n%d email send(s) claimed by a process that stopped before it knew their outcome; the period's\nnext run (its run was not completed) sends them again with the same Message-ID:\n", len(unknown))
		fmt.Fprintln(tw, "  CLAIM\tCLAIMED BY\tCLAIMED AT")
		for _, c := range unknown {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Key, c.RunID, c.ClaimedAt.Format(time.RFC3339))
		}
	}
	return tw.Flush()
}

// ledgerView reads the ledger and shows attempts whose runner died as abandoned.
func (a *app) ledgerView(ctx context.Context, r *runner.Runner, job string) ([]*runner.Record, error) {
	return plan.View(ctx, r.Ledger(), a.clock, job)
}

func (a *app) configCmd() *cobra.Command {
	cfg := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration",
	}
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the config, check storage is writable, print the effective config (secrets redacted)",
		Long: `Validate tally.yaml (or $TALLY_CONFIG) merged with the embedded defaults and
TALLY_* environment overrides; unknown keys are errors. Then check that storage
is reachable and writable and that exclusive create refuses a second writer
(leases depend on it), and that the SMTP server (smtp.host) takes tally's login:
it connects, says EHLO, starts TLS and authenticates as configured, and sends
no mail. Prints the effective config with secrets redacted.

Exit 2 when a setting is wrong (a refused login, a missing bucket, TLS the
server does not offer), naming it; exit 1 when a server could not be reached
in time (a network error: worth trying again).`,
		Example: "  tally config check\n  tally --config tally.yaml config check\n  TALLY_SOURCE_SCALE=1000 tally config check",
		Args:    usageArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, w, err := a.buildAll()
			if err != nil {
				return err
			}
			fmt.Fprint(a.stdout, "# effective config (defaults < file < TALLY_* environment)\n"+a.cfg.Redacted())
			err = eachStore(w.stores, func(name string, s storage.Store) error {
				if err := checkStore(cmd.Context(), s, a.clock.Now()); err != nil {
					if transient(err) {
						return fmt.Errorf("%s store: %w (a network error: exit 1)", name, err)
					}
					return runner.Usagef("%s store: %v", name, err)
				}
				fmt.Fprintf(a.stdout, "# %s store: reachable, writable, refuses a second exclusive create\n", name)
				return nil
			})
			if err != nil {
				return err
			}
			if smtp, ok := w.sender.(*mail.SMTP); ok {
				if err := smtp.Check(cmd.Context()); err != nil {
					return a.smtpRefused(err)
				}
				fmt.Fprintf(a.stdout, "# smtp: %s takes tally's login (EHLO, STARTTLS, AUTH; no mail sent)\n", smtp.Where())
			} else {
				fmt.Fprintln(a.stdout, "# smtp: none configured; emails go to the outbox in the control store")
			}
			if src, err := a.openSource(); err != nil {
				return err
			} else if fs, ok := src.(*files.Source); ok {
				ready, err := fs.Root.List(cmd.Context(), "_ready/")
				if err != nil {
					return runner.Usagef("source.files: the landing zone is not readable: %v", err)
				}
				fmt.Fprintf(a.stdout, "# source.files: landing zone readable, %d day manifests\n", len(ready))
			} else if ws, ok := src.(*webex.Source); ok {
				if err := a.checkWebex(cmd.Context(), ws); err != nil {
					return err
				}
			}
			fmt.Fprintln(a.stdout, "# config ok")
			return nil
		},
	}
	cfg.AddCommand(check)
	return cfg
}

// smtpRefused is config check's verdict on an SMTP check that failed: a
// refusal names the settings behind it (exit 2); a network error is exit 1.
func (a *app) smtpRefused(err error) error {
	if !mail.Permanent(err) {
		return fmt.Errorf("smtp.host %s:%d: %w (a network error: exit 1)", a.cfg.SMTP.Host, a.cfg.SMTP.Port, err)
	}
	setting := "smtp.host, smtp.port and smtp.tls"
	var tp *textproto.Error
	switch {
	case errors.As(err, &tp) && (tp.Code == 535 || tp.Code == 534 || tp.Code == 530):
		setting = "smtp.username and the password (TALLY_SMTP_PASSWORD or smtp.password_file)"
	case strings.Contains(err.Error(), "AUTH"):
		setting = "smtp.username (the server offers no login of that kind) or smtp.tls"
	case strings.Contains(err.Error(), "STARTTLS"), strings.Contains(err.Error(), "certificate"):
		setting = "smtp.tls"
	}
	return runner.Usagef("smtp: %s refused tally: %v; check %s", a.cfg.SMTP.Host, err, setting)
}

// transient reports whether err is a network error or timeout (exit 1: worth
// trying again), not a setting.
func transient(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}

// checkWebex proves each partner's credentials work by listing the customers
// its token can see, with the region each one's rows go to.
func (a *app) checkWebex(ctx context.Context, ws *webex.Source) error {
	day := periods.Containing(periods.Daily, a.clock.Now())
	r, err := ws.Roster(ctx, day)
	if err != nil {
		return runner.Usagef("source.webex: %v", err)
	}
	for _, acc := range ws.Accounts {
		fmt.Fprintf(a.stdout, "# source.webex: partner %s (%s): credentials ok\n", acc.Partner.PartnerID, acc.Partner.PartnerName)
	}
	if _, err := a.webhookReceiver(ws.Payloads, nil); err != nil {
		return err
	}
	for _, p := range a.cfg.Source.Webex.Partners {
		if !p.Webhook() {
			fmt.Fprintf(a.stdout, "# source.webex: partner %s: calls by polling the call history (1 initial request a minute per token)\n", p.ID)
			continue
		}
		base := a.cfg.Serve.PublicURL
		if base == "" {
			base = "https://<serve.public_url>"
		}
		fmt.Fprintf(a.stdout, "# source.webex: partner %s: calls by webhook (%s feed): set %s/webhooks/webex/cdr/%s and its secret token in Partner Hub (Organization Settings > Call Detail Records)\n",
			p.ID, p.Feed, strings.TrimSuffix(base, "/"), p.ID)
	}
	for _, m := range r.Members() {
		fmt.Fprintf(a.stdout, "#   %s  %-3s  %s  %s\n", m.Partner, m.Region, m.Customer.CustomerID, m.Customer.CustomerName)
	}
	for _, sk := range ws.Skipped(day) {
		fmt.Fprintf(a.stdout, "#   SKIPPED  %s  %s: %s\n", sk.Customer, sk.Name, sk.Reason)
	}
	return nil
}

// checkStore proves a store is writable and that exclusive create refuses a
// second writer.
func checkStore(ctx context.Context, s storage.Store, now time.Time) error {
	key := fmt.Sprintf("_check/%d.txt", now.UnixNano())
	defer s.Delete(context.WithoutCancel(ctx), key)
	if _, err := s.Create(ctx, key, []byte("tally config check\n")); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if _, err := s.Create(ctx, key, []byte("second\n")); !errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("a second exclusive create of %s was not refused (%v): leases would not be safe", key, err)
	}
	return nil
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print tally's version",
		Example: "  tally version",
		Args:    usageArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(a.stdout, "tally %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
