package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"tally/jobs"
	"tally/periods"
	"tally/report"
	"tally/runner"
	"tally/subscriptions"
)

// subFlags are the flags that describe a subscription (add and update).
type subFlags struct {
	id, partner, template, cadence, role             string
	customName, base                                 string
	regions, to, customers, formats, columns, filter []string
	ifMissing                                        bool
}

func (f *subFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "", "subscription id (lower-case letters, digits, dashes; default: derived from template, partner and cadence)")
	fl.StringVar(&f.partner, "partner", "", "partner id (required)")
	fl.StringVar(&f.template, "template", "", `built-in template name or slug (e.g. "Flex License Usage", devices), or a custom template from config`)
	fl.StringVar(&f.cadence, "cadence", "", "daily, weekly or monthly")
	fl.StringVar(&f.role, "role", subscriptions.FullAdmin, "recipients' role: full-admin, read-only-admin or sales-admin")
	fl.StringArrayVar(&f.regions, "region", nil, "only these regions (default: every region with data; repeatable)")
	fl.StringArrayVar(&f.to, "to", nil, "recipient e-mail address (repeatable)")
	fl.StringArrayVar(&f.customers, "customer", nil, "a sales admin's assigned customer org id (repeatable)")
	fl.StringArrayVar(&f.formats, "format", []string{"csv", "parquet"}, "csv, parquet, xlsx (repeat for several)")
	fl.StringVar(&f.customName, "custom-name", "", "make a custom template of its own with this name (with --base)")
	fl.StringVar(&f.base, "base", "", "the built-in template a custom template starts from")
	fl.StringArrayVar(&f.columns, "column", nil, "a custom template's columns, by CSV header, in order (repeatable)")
	fl.StringArrayVar(&f.filter, "filter", nil, `a custom template's filter "Column=value" (repeatable; several values of one column are or-ed)`)
}

// list splits repeated flag values on commas. (pflag's StringSlice parses values
// as CSV and silently drops what follows a line break; a recipient with a line
// break must reach validation and be refused instead.)
func list(values []string) []string {
	var out []string
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// apply sets the flags the user gave on s.
func (f *subFlags) apply(cmd *cobra.Command, s *subscriptions.Subscription) error {
	ch := cmd.Flags().Changed
	if ch("partner") {
		s.PartnerID = f.partner
	}
	if ch("template") {
		s.Template, s.Custom = f.template, nil
	}
	if ch("cadence") {
		s.Cadence = periods.Cadence(f.cadence)
	}
	if ch("role") || s.Role == "" {
		s.Role = f.role
	}
	if ch("region") {
		s.Regions = nil
		for _, r := range list(f.regions) {
			s.Regions = append(s.Regions, strings.ToUpper(r))
		}
	}
	if ch("to") {
		s.Recipients = list(f.to)
	}
	if ch("customer") {
		s.Customers = list(f.customers)
	}
	if ch("format") || len(s.Formats) == 0 {
		s.Formats = list(f.formats)
	}
	if ch("custom-name") || ch("base") || ch("column") || ch("filter") {
		if f.customName == "" || f.base == "" {
			return runner.Usagef("a custom template needs --custom-name and --base")
		}
		c := &report.Custom{Name: f.customName, Base: f.base, Columns: f.columns, Filters: map[string][]string{}}
		if len(c.Columns) == 0 {
			c.Columns = nil
		}
		for _, kv := range f.filter {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return runner.Usagef("--filter %q: want Column=value", kv)
			}
			c.Filters[k] = append(c.Filters[k], v)
		}
		s.Custom, s.Template = c, ""
	}
	return nil
}

func (a *app) subscriptionsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "subscriptions",
		Aliases: []string{"subs"},
		Short:   "Manage report subscriptions (who gets which report, how often)",
		Example: `  tally subscriptions add --partner P093374 --template "Flex License Usage" --cadence daily --to ops@example.com
  tally subscriptions list`,
	}
	var output string
	listCmd := &cobra.Command{
		Use:     "list",
		Short:   "List the subscriptions",
		Example: "  tally subscriptions list\n  tally subscriptions list -o json",
		Args:    usageArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, w, err := a.buildAll()
			if err != nil {
				return err
			}
			subs, err := (&subscriptions.Store{S: w.stores.Control}).List(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if subs == nil {
					subs = []*subscriptions.Subscription{}
				}
				return enc.Encode(subs)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tPARTNER\tTEMPLATE\tCADENCE\tREGIONS\tROLE\tFORMATS\tRECIPIENTS\tSTATE")
			for _, s := range subs {
				tpl := s.Template
				if s.Custom != nil {
					tpl = s.Custom.Name + " (custom " + s.Custom.Base + ")"
				}
				regions := strings.Join(s.Regions, ",")
				if regions == "" {
					regions = "all"
				}
				state := "active"
				if s.Paused {
					state = "paused"
				}
				if n := len(s.Unsubscribed); n > 0 { // who left through an email's link
					last := s.Unsubscribed[n-1]
					state += fmt.Sprintf(" (%d unsubscribed, last %s)", n, last)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.PartnerID, tpl, s.Cadence, regions, s.Role,
					strings.Join(s.Formats, ","), strings.Join(s.Recipients, ","), state)
			}
			return tw.Flush()
		},
	}
	listCmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")

	var add subFlags
	addCmd := &cobra.Command{
		Use:   "add",
		Short: "Add a subscription (validated: partner, template, cadence, regions, recipients, role, formats)",
		Example: `  tally subscriptions add --partner P093374 --template "Flex License Usage" --cadence daily --to ops@example.com
  tally subscriptions add --partner P093374 --template customer-subscriptions --cadence weekly --to cs@example.com --region EU
  tally subscriptions add --partner P093374 --template devices --cadence monthly --role sales-admin \
      --customer 5f0c…-… --to rep@example.com --format csv
  tally subscriptions add --partner P093374 --custom-name "Desk Phones" --base devices \
      --column Customer --column "MAC Address" --filter "Product=Cisco 8845" --cadence weekly --to it@example.com`,
		Args: usageArgs(0, "no arguments (flags describe the subscription)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, w, err := a.buildAll()
			if err != nil {
				return err
			}
			s := &subscriptions.Subscription{ID: add.id}
			if err := add.apply(cmd, s); err != nil {
				return err
			}
			if s.ID == "" {
				s.ID = defaultID(s)
			}
			if err := w.catalog.Validate(s); err != nil {
				return runner.Usage(err)
			}
			store := &subscriptions.Store{S: w.stores.Control}
			if add.ifMissing {
				if _, err := store.Get(cmd.Context(), s.ID); err == nil {
					fmt.Fprintf(a.stdout, "subscription %s exists; left as it is\n", s.ID)
					return nil
				}
			}
			if err := store.Add(cmd.Context(), s); err != nil {
				return runner.Usage(err)
			}
			fmt.Fprintf(a.stdout, "added subscription %s\n", s.ID)
			return nil
		},
	}
	add.bind(addCmd)
	addCmd.Flags().BoolVar(&add.ifMissing, "if-missing", false, "do nothing if a subscription with this id exists")

	var upd subFlags
	updCmd := &cobra.Command{
		Use:     "update ID",
		Short:   "Change a subscription (only the flags given change)",
		Example: "  tally subscriptions update flex-daily --to ops@example.com --to cfo@example.com\n  tally subscriptions update flex-daily --format csv",
		Args:    usageArgs(1, "one subscription id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.changeSub(cmd, args[0], "updated", func(s *subscriptions.Subscription) error { return upd.apply(cmd, s) })
		},
	}
	upd.bind(updCmd)

	remove := &cobra.Command{
		Use:     "remove ID",
		Short:   "Remove a subscription",
		Example: "  tally subscriptions remove flex-daily",
		Args:    usageArgs(1, "one subscription id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, w, err := a.buildAll()
			if err != nil {
				return err
			}
			if err := (&subscriptions.Store{S: w.stores.Control}).Remove(cmd.Context(), args[0]); err != nil {
				return runner.Usage(err)
			}
			fmt.Fprintf(a.stdout, "removed subscription %s\n", args[0])
			return nil
		},
	}
	pause := &cobra.Command{
		Use:     "pause ID",
		Short:   "Pause a subscription: its reports are not produced or sent until resumed",
		Example: "  tally subscriptions pause flex-daily",
		Args:    usageArgs(1, "one subscription id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.changeSub(cmd, args[0], "paused", func(s *subscriptions.Subscription) error { s.Paused = true; return nil })
		},
	}
	resume := &cobra.Command{
		Use:     "resume ID",
		Short:   "Resume a paused subscription",
		Example: "  tally subscriptions resume flex-daily",
		Args:    usageArgs(1, "one subscription id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.changeSub(cmd, args[0], "resumed", func(s *subscriptions.Subscription) error { s.Paused = false; return nil })
		},
	}
	test := &cobra.Command{
		Use:   "test ID",
		Short: "Send the latest period's report to the subscription's recipients now",
		Long: `Produce the subscription's report for the latest complete period of its cadence
(running missing upstream periods first) and email it to its recipients now, with
a subject starting "[test]". A test is a job of its own (test-reports-<cadence>):
its ledger entries are under _runs/test-reports-<cadence>/ and its files under
test/reports/…, so it never counts toward the scheduled run's period, which still
runs and emails every subscription.`,
		Example: "  tally subscriptions test flex-daily\n  tally subscriptions test cs-weekly --as-of 2026-11-22T02:00:00Z",
		Args:    usageArgs(1, "one subscription id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _, w, err := a.buildAll()
			if err != nil {
				return err
			}
			sub, err := (&subscriptions.Store{S: w.stores.Control}).Get(cmd.Context(), args[0])
			if err != nil {
				return runner.Usage(err)
			}
			now, err := a.now()
			if err != nil {
				return err
			}
			// A test run has its own job name, ledger entries and files (test/…): it
			// never makes the scheduled period complete.
			job := w.reports[sub.Cadence].TestOf(sub.ID)
			r = r.With(job)
			res, err := r.Run(cmd.Context(), job.Name(), periods.Latest(sub.Cadence, now), runner.Options{Force: true, Email: true, Trigger: runner.TriggerTest})
			if res != nil {
				a.printResult(cmd.Context(), r, res)
			}
			return err
		},
	}
	cmd.AddCommand(listCmd, addCmd, updCmd, remove, pause, resume, test)
	return cmd
}

// defaultID derives a readable, stable id: <template>-<cadence>-<6 hex>.
func defaultID(s *subscriptions.Subscription) string {
	name := s.Template
	if s.Custom != nil {
		name = "custom-" + s.Custom.Name
	}
	slug := strings.ReplaceAll(report.SnakeCase(name), "_", "-")
	if len(slug) > 40 {
		slug = slug[:40]
	}
	sum := sha256.Sum256([]byte(s.PartnerID + "\x00" + strings.Join(s.Recipients, ",") + "\x00" + name))
	return fmt.Sprintf("%s-%s-%x", strings.Trim(slug, "-"), s.Cadence, sum[:3])
}

// changeSub reads, changes, validates and stores a subscription.
func (a *app) changeSub(cmd *cobra.Command, id, verb string, change func(*subscriptions.Subscription) error) error {
	_, _, w, err := a.buildAll()
	if err != nil {
		return err
	}
	store := &subscriptions.Store{S: w.stores.Control}
	s, err := store.Get(cmd.Context(), id)
	if err != nil {
		return runner.Usage(err)
	}
	if err := change(s); err != nil {
		return err
	}
	if err := w.catalog.Validate(s); err != nil {
		return runner.Usage(err)
	}
	if err := store.Put(cmd.Context(), s); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s subscription %s\n", verb, id)
	return nil
}

func (a *app) resendCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resend RUN",
		Short: "Email a report run's links again (e.g. after the SMTP server was down)",
		Long: `Send the emails of a finished report run again, to its subscriptions' current
recipients, with links to the files that run published. Each send is recorded
in that run's ledger entry.`,
		Example: "  tally resend reports-daily/2026-11-21/0001\n  tally runs reports-daily   # find the run id",
		Args:    usageArgs(1, "one run id (<job>/<period>/<attempt>)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _, err := a.build()
			if err != nil {
				return err
			}
			before := 0
			if job, period, _, perr := runner.ParseRunID(args[0]); perr == nil {
				if recs, _ := r.Ledger().Attempts(cmd.Context(), job, period); len(recs) > 0 {
					for _, rec := range recs {
						if rec.RunID == args[0] {
							before = len(rec.Emails)
						}
					}
				}
			}
			rec, err := r.Resend(cmd.Context(), args[0])
			if rec != nil {
				a.printEmails(rec.Emails[min(before, len(rec.Emails)):])
			}
			return err
		},
	}
}

func (a *app) printEmails(emails []runner.Email) {
	for _, e := range emails {
		line := fmt.Sprintf("  email %s: %s to %s via %s", e.Subscription, e.Status, strings.Join(e.To, ", "), e.Via)
		if e.Error != "" {
			line += ": " + e.Error
		}
		fmt.Fprintln(a.stdout, line)
	}
}

// printReports lists a report run's files and emails.
func (a *app) printReports(rec *runner.Record) {
	reports, ok := jobs.ReportsOf(rec)
	if !ok {
		return
	}
	ids := make([]string, 0, len(reports))
	for id := range reports {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	root, _ := filepath.Abs(a.cfg.Storage.Path)
	for _, id := range ids {
		sr := reports[id]
		switch {
		case sr.Error != "":
			fmt.Fprintf(a.stdout, "  subscription %s: skipped: %s\n", id, sr.Error)
		case len(sr.Files) == 0:
			fmt.Fprintf(a.stdout, "  subscription %s (%s): no rows in any region\n", id, sr.Template)
		default:
			// One line per subscription: where its files are, and rows per region.
			rows, regions := jobs.RowsByRegion(sr.Files)
			var parts []string
			for _, r := range regions {
				parts = append(parts, fmt.Sprintf("%s %d", r, rows[r]))
			}
			dir := filepath.Dir(strings.Replace(sr.Files[0].Key, "region="+sr.Files[0].Region, "region=*", 1))
			if a.cfg.Storage.Type == "local" {
				dir = filepath.Join(root, dir)
			}
			fmt.Fprintf(a.stdout, "  %s (%s): %s/  rows: %s\n", id, sr.Template, dir, strings.Join(parts, ", "))
		}
	}
	a.printEmails(rec.Emails)
}

// digest emails one digest per subscription after a report backfill with --email.
func (a *app) digest(ctx context.Context, r *runner.Runner, w *wiring, job string, sum *runner.BackfillSummary) error {
	var rj *jobs.Reports
	for _, j := range w.reports {
		if j.Name() == job {
			rj = j
		}
	}
	if rj == nil {
		return runner.Usagef("--email: %s sends no email (only report jobs do)", job)
	}
	var recs []*runner.Record
	for _, p := range sum.Periods {
		if rec, done, err := r.Ledger().Complete(ctx, job, p.ID()); err == nil && done {
			recs = append(recs, rec)
		}
	}
	if len(recs) == 0 {
		return errors.New("--email: no complete period to send a digest of")
	}
	last := recs[len(recs)-1] // the periods are in order; the digest's sends are recorded on the newest
	before := len(last.Emails)
	err := r.Digest(ctx, job, recs, func(ctx context.Context, rc *runner.RunContext, n runner.Notification) error {
		return rj.Digest(ctx, rc, n, recs)
	})
	a.printEmails(last.Emails[min(before, len(last.Emails)):])
	return err
}
