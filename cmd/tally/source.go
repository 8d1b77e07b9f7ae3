package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"tally/periods"
	"tally/runner"
	"tally/source/files"
	"tally/source/webex"
	"tally/storage/local"
)

func (a *app) sourceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "source",
		Short: "Work with the configured source (export a day as a landing zone)",
	}
	var period, out, format string
	export := &cobra.Command{
		Use:   "export --period DAY --out DIR",
		Short: "Write the configured source's day in the files landing layout, with its manifest",
		Long: `Write one day of the configured source (the demo by default) to DIR in the
landing layout the files source reads — <entity>/region=<R>/day=<D>/part-<n>.<format>
for each entity and region (262,144 rows to a file, sorted by customer_id), then
_ready/day=<D>.json listing every file with its size and sha256 (written last).
The day streams through a customer at a time, so memory stays flat whatever its
size. The demo becomes a template a partner can read, and a files source pointed
at DIR reproduces the demo's outputs byte for byte.`,
		Example: "  tally source export --period 2026-11-21 --out ./landing\n  tally source export --period 2026-11-21 --out ./landing --format csv",
		Args:    usageArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return runner.Usagef("source export: --out DIR is required")
			}
			if !slices.Contains(files.Formats, format) {
				return runner.Usagef("--format %q: %s", format, strings.Join(files.Formats, ", "))
			}
			now, err := a.now()
			if err != nil {
				return err
			}
			p, err := periods.ParseRef(periods.Daily, period, now)
			if err != nil {
				return runner.Usage(fmt.Errorf("--period: %w", err))
			}
			if err := periods.Ended(p, a.clock.Now()); err != nil {
				return runner.Usage(err)
			}
			src, err := a.openSource()
			if err != nil {
				return err
			}
			dst, err := local.New(out)
			if err != nil {
				return runner.Usage(err)
			}
			m, err := files.Export(cmd.Context(), src, p, dst, format)
			if err != nil {
				return err
			}
			var bytes int64
			for _, f := range m.Files {
				bytes += f.Size
			}
			fmt.Fprintf(a.stdout, "exported %s: %d files, %d bytes, manifest %s/%s\n", p.ID(), len(m.Files), bytes, dst.Root(), files.ManifestKey(p))
			return nil
		},
	}
	export.Flags().StringVar(&period, "period", "latest", "the day (YYYY-MM-DD) or latest")
	export.Flags().StringVar(&out, "out", "", "the landing directory to write")
	export.Flags().StringVar(&format, "format", "parquet", "parquet, csv or jsonl")
	cmd.AddCommand(export, a.webexCmd())
	return cmd
}

// webexCmd is the first step of the webex source: store a refresh token.
func (a *app) webexCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "webex", Short: "The Webex source's one-time setup"}
	var file, partner string
	login := &cobra.Command{
		Use:   "login [--partner ID] --refresh-token-file FILE",
		Short: "Store the first Webex refresh token in the control store",
		Long: `Store the first refresh token of your Webex integration or service app (obtained
once by the partner's administrator in the Webex developer portal's
authorization-code flow) in the control store, at _secrets/webex-oauth/<partner>.json.
--partner names one of source.webex.partners (it may be left out when there is
only one). From then on tally refreshes the access token itself,
and keeps each rotated refresh token there by compare-and-swap, so several pods can
refresh at once without losing it. The token is read from a file, never from the
command line or the YAML, and never printed or logged.`,
		Example: "  tally source webex login --partner P1 --refresh-token-file /run/secrets/webex-refresh-token",
		Args:    usageArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return runner.Usagef("source webex login: --refresh-token-file FILE is required")
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return runner.Usagef("--refresh-token-file: %v", err)
			}
			if strings.TrimSpace(string(b)) == "" {
				return runner.Usagef("--refresh-token-file %s is empty", file)
			}
			var ids []string
			for _, p := range a.cfg.Source.Webex.Partners {
				ids = append(ids, p.ID)
			}
			switch {
			case partner == "" && len(ids) == 1:
				partner = ids[0]
			case partner == "":
				return runner.Usagef("source webex login: --partner is required (one of source.webex.partners: %s)", strings.Join(ids, ", "))
			case !slices.Contains(ids, partner):
				return runner.Usagef("source webex login: --partner %q is not in source.webex.partners (%s)", partner, strings.Join(ids, ", "))
			}
			stores, err := a.openStores()
			if err != nil {
				return err
			}
			w := a.cfg.Source.Webex
			oauth := &webex.OAuth{Key: webex.TokenKey(partner), TokenURL: w.TokenURL, ClientID: w.ClientID, ClientSecret: w.ClientSecret,
				Store: stores.Control, Now: a.clock.Now}
			// Refreshed once, at once: a used or revoked token is refused
			// now, with the endpoint's own words, not at the first run.
			if err := oauth.Login(cmd.Context(), string(b)); err != nil {
				var refused *webex.TokenError
				if errors.As(err, &refused) {
					return runner.Usagef("source webex login: partner %s: the refresh token in %s was refused: %v", partner, file, err)
				}
				return err
			}
			fmt.Fprintf(a.stdout, "partner %s's Webex refresh token works; the rotated one is stored in the control store (%s)\n", partner, webex.TokenKey(partner))
			return nil
		},
	}
	login.Flags().StringVar(&file, "refresh-token-file", "", "a file holding the refresh token")
	login.Flags().StringVar(&partner, "partner", "", "the partner (an id in source.webex.partners)")
	cmd.AddCommand(login)
	return cmd
}
