package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"tally/jobs"
	"tally/model"
	"tally/periods"
	"tally/runner"
	"tally/source/webex"
	"tally/storage"
)

func (a *app) gcCmd() *cobra.Command {
	var olderThan time.Duration
	var apply bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "List (or, with --apply, remove) what crashed writers left behind",
		Long: `A writer killed mid-upload leaves an incomplete S3 multipart upload (invisible,
but billed) or a temporary file in local storage's .tmp directory. tally gc lists
those older than --older-than in the control store and every region's store, and
with --apply aborts the uploads and removes the files. Without --apply it only
lists (a dry run). The bound keeps a write that is still running safe.

With the webex source, call records a webhook delivered (calls: webhook) are
kept source.webex.payload_retention (35 days) after their day; tally gc lists
and, with --apply, removes older ones, only of days sync-clusters completed.

In production, an S3 lifecycle rule with AbortIncompleteMultipartUpload (for
example DaysAfterInitiation: 1) does the same for uploads without a cron job.`,
		Example: "  tally gc\n  tally gc --older-than 6h --apply",
		Args:    usageArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if olderThan <= 0 {
				return runner.Usagef("--older-than %s: must be positive", olderThan)
			}
			stores, err := a.openStores()
			if err != nil {
				return err
			}
			cutoff := a.clock.Now().Add(-olderThan)
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STORE\tKIND\tKEY\tSINCE\tBYTES\tACTION")
			var found, removed int
			err = eachStore(stores, func(name string, s storage.Store) error {
				c, ok := storage.As[storage.Collector](s)
				if !ok {
					return nil
				}
				leftovers, err := c.Leftovers(cmd.Context())
				if err != nil {
					return fmt.Errorf("gc: %s store: %w", name, err)
				}
				for _, l := range leftovers {
					if l.Since.After(cutoff) {
						continue
					}
					found++
					action := "would remove (--apply)"
					if apply {
						if err := c.RemoveLeftover(cmd.Context(), l); err != nil {
							return fmt.Errorf("gc: %s store: %w", name, err)
						}
						action, removed = "removed", removed+1
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", name, l.Kind, l.Key, l.Since.Format(time.RFC3339), l.Size, action)
				}
				return nil
			})
			if err != nil {
				return err
			}
			pf, pr, err := a.gcPayloads(cmd.Context(), stores, tw, apply)
			if err != nil {
				return err
			}
			tw.Flush()
			fmt.Fprintf(a.stdout, "%d leftovers older than %s, %d removed\n", found, olderThan, removed)
			if pf > 0 {
				fmt.Fprintf(a.stdout, "%d stored webhook deliveries past source.webex.payload_retention (%s) of complete days, %d removed\n",
					pf, a.cfg.Source.Webex.PayloadRetention.D(), pr)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", 24*time.Hour, "only leftovers at least this old (a running write is younger)")
	cmd.Flags().BoolVar(&apply, "apply", false, "remove them (default: only list)")
	return cmd
}

// gcPayloads lists (and with apply removes) the stored webhook deliveries of
// days older than source.webex.payload_retention whose sync-clusters run
// completed: a day not yet complete keeps its records, whatever their age.
func (a *app) gcPayloads(ctx context.Context, stores storage.Regional, tw io.Writer, apply bool) (found, removed int, err error) {
	w := a.cfg.Source.Webex
	if a.cfg.Source.Type != "webex" {
		return 0, 0, nil
	}
	ledger := &runner.Ledger{Store: stores.Control}
	cutoff := a.clock.Now().Add(-w.PayloadRetention.D())
	complete := map[string]bool{}
	for _, p := range w.Partners {
		if !p.Webhook() {
			continue
		}
		type place struct {
			name   string
			st     storage.Store
			prefix string
		}
		places := []place{{"control", stores.Control, webex.UnmappedDays(p.ID)}}
		for _, region := range model.Regions {
			if st, ok := stores.Regions[region]; ok {
				places = append(places, place{region, st, webex.PayloadDays(p.ID)})
			}
		}
		for _, pl := range places {
			objs, err := pl.st.List(ctx, pl.prefix)
			if err != nil {
				return found, removed, fmt.Errorf("gc: %s store: %w", pl.name, err)
			}
			for _, o := range objs {
				id, _, _ := strings.Cut(strings.TrimPrefix(o.Key, pl.prefix), "/")
				day, err := periods.Parse(periods.Daily, id)
				if err != nil || !day.End().Before(cutoff) {
					continue
				}
				done, ok := complete[id]
				if !ok {
					_, done, err = ledger.Complete(ctx, jobs.SyncClusters, id)
					if err != nil {
						return found, removed, err
					}
					complete[id] = done
				}
				if !done {
					continue
				}
				found++
				action := "would remove (--apply)"
				if apply {
					if err := pl.st.Delete(ctx, o.Key); err != nil {
						return found, removed, fmt.Errorf("gc: %s store: %w", pl.name, err)
					}
					action, removed = "removed", removed+1
				}
				fmt.Fprintf(tw, "%s\twebhook-delivery\t%s\t%s\t%d\t%s\n", pl.name, o.Key, day.End().Format(time.RFC3339), o.Size, action)
			}
		}
	}
	return found, removed, nil
}
