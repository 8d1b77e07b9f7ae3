package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"tally/runner"
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
			tw.Flush()
			fmt.Fprintf(a.stdout, "%d leftovers older than %s, %d removed\n", found, olderThan, removed)
			return nil
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", 24*time.Hour, "only leftovers at least this old (a running write is younger)")
	cmd.Flags().BoolVar(&apply, "apply", false, "remove them (default: only list)")
	return cmd
}
