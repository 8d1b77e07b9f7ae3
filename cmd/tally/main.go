// Command tally runs tally's jobs: once (tally run), over a range (tally backfill),
// and shows the ledger and plan. It is wiring only: config, flags, logging and
// exit codes; the work is in runner/ and jobs/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"golang.org/x/time/rate"

	"tally/analytics"
	"tally/clock"
	"tally/config"
	"tally/jobs"
	"tally/links"
	"tally/mail"
	"tally/model"
	"tally/periods"
	"tally/runner"
	"tally/source"
	"tally/source/demo"
	"tally/source/files"
	"tally/source/webex"
	"tally/storage"
	"tally/storage/local"
	s3store "tally/storage/s3"
	"tally/subscriptions"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// Exit codes (SPEC §3).
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
	exitHeld   = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRoot(os.Stdout, os.Stderr, clock.Real{}).ExecuteContext(ctx)
	var quiet exitError
	if err != nil && !errors.As(err, &quiet) {
		fmt.Fprintln(os.Stderr, "tally:", err)
	}
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	var code exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	case runner.IsUsage(err), errors.Is(err, storage.ErrMisconfigured):
		return exitUsage
	case errors.Is(err, runner.ErrLeaseHeld):
		return exitHeld
	}
	return exitFailed
}

// exitError is an exit code chosen by a command that already said why.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// app is what every command shares.
type app struct {
	stdout, stderr io.Writer
	clock          clock.Clock
	configPath     string
	asOf           string
	logLevel       string
	cpuProfile     string // --cpu-profile, --mem-profile: for performance work
	memProfile     string
	cpuFile        *os.File
	cfg            *config.Config
	log            zerolog.Logger
}

func newRoot(stdout, stderr io.Writer, clk clock.Clock) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr, clock: clk}
	root := &cobra.Command{
		Use:   "tally",
		Short: "Scheduled batch jobs for partner license usage, analytics and reports",
		Long: `tally syncs a partner's customer clusters, recomputes license usage against what
was ordered, and writes Hive-partitioned Parquet to local disk or S3 — for a day,
week or month at a time, with a ledger, leases and retries so a period is never
run twice at once and never silently missed.

With no config file it runs on the embedded defaults: local storage in
./tally-data and the deterministic demo source.

Exit codes: 0 done (or already complete), 1 failed, 2 usage or config error,
3 another runner holds the lease.`,
		Example: `  tally run license-usage                 # the latest day, running sync-clusters first if needed
  tally backfill license-usage --from 2026-10-01 --to 2026-10-31 --parallel 2
  tally runs license-usage
  tally plan --check`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := a.startProfiles(); err != nil {
				return err
			}
			return a.setup(cmd)
		},
		PersistentPostRunE: func(cmd *cobra.Command, args []string) error { return a.stopProfiles() },
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return runner.Usage(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.configPath, "config", os.Getenv("TALLY_CONFIG"), "config file (default: $TALLY_CONFIG, else the embedded defaults)")
	pf.StringVar(&a.asOf, "as-of", "", `the time "latest" is computed from (RFC 3339 or a date; default: now)`)
	pf.StringVar(&a.logLevel, "log-level", "", "debug, info, warn or error (overrides log.level)")
	pf.StringVar(&a.cpuProfile, "cpu-profile", "", "write a CPU profile of the command to this file (go tool pprof reads it)")
	pf.StringVar(&a.memProfile, "mem-profile", "", "write a heap profile at the command's end to this file")

	root.AddCommand(a.runCmd(), a.backfillCmd(), a.serveCmd(), a.jobsCmd(), a.runsCmd(), a.planCmd(), a.subscriptionsCmd(), a.resendCmd(),
		a.configCmd(), a.gcCmd(), a.sourceCmd(), a.versionCmd())
	return root
}

// readOnlyCommands only read tally's own records: they run without the
// source's secrets.
var readOnlyCommands = map[string]bool{"tally runs": true, "tally plan": true, "tally jobs": true, "tally subscriptions list": true}

func (a *app) setup(cmd *cobra.Command) error {
	load := config.Load
	receiver, _ := cmd.Flags().GetBool("receive-only") // the receiver calls no Webex API
	if readOnlyCommands[cmd.CommandPath()] || receiver {
		load = config.LoadReadOnly
	}
	cfg, err := load(a.configPath, os.Environ())
	if err != nil {
		return err
	}
	if a.logLevel != "" {
		cfg.Log.Level = a.logLevel
	}
	a.cfg = cfg
	if cfg.Storage.TmpDir != "" {
		// Every spill (Parquet row groups being written, report sorts, XLSX,
		// call records) goes to os.TempDir, which follows TMPDIR.
		if err := os.Setenv("TMPDIR", cfg.Storage.TmpDir); err != nil {
			return err
		}
	}
	level, err := zerolog.ParseLevel(cfg.Log.Level)
	if err != nil {
		return runner.Usagef("log level %q: want debug, info, warn or error", cfg.Log.Level)
	}
	var w io.Writer = a.stderr
	if cfg.Log.Format == "console" || (cfg.Log.Format == "auto" && isTerminal(a.stderr)) {
		w = zerolog.ConsoleWriter{Out: a.stderr, TimeFormat: time.TimeOnly}
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	a.log = zerolog.New(w).Level(level).With().Timestamp().Logger()
	for _, k := range cfg.IgnoredEnv {
		a.log.Debug().Str("variable", k).Msg("ignoring a Kubernetes service-link variable (set enableServiceLinks: false on the pod to drop it)")
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// now is --as-of, or the clock.
func (a *app) now() (time.Time, error) {
	if a.asOf == "" {
		return a.clock.Now(), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, a.asOf); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, runner.Usagef("--as-of %q: want a time like 2026-11-22T00:05:00Z or a date", a.asOf)
}

// build wires storage, the source, the jobs and the runner from the config.
func (a *app) build() (*runner.Runner, *jobs.Registry, error) {
	r, reg, _, err := a.buildAll()
	return r, reg, err
}

// wiring is what build made, for the commands that need more than the runner.
type wiring struct {
	links   *links.Maker
	key     func(ctx context.Context) ([]byte, error) // the signing key (links, unsubscribe, forms)
	sender  mail.Sender                               // nil: the outbox
	stores  storage.Regional
	catalog *subscriptions.Catalog
	reports map[periods.Cadence]*jobs.Reports
}

func (a *app) buildAll() (*runner.Runner, *jobs.Registry, *wiring, error) {
	stores, err := a.openStores()
	if err != nil {
		return nil, nil, nil, err
	}

	src, err := a.openSource()
	if err != nil {
		return nil, nil, nil, err
	}
	catalog, err := subscriptions.NewCatalog(a.cfg.Reports.Templates)
	if err != nil {
		return nil, nil, nil, runner.Usage(err)
	}
	var sender mail.Sender
	if a.cfg.SMTP.Host != "" {
		smtp, err := mail.NewSMTP(mail.SMTPConfig{Host: a.cfg.SMTP.Host, Port: a.cfg.SMTP.Port, TLS: a.cfg.SMTP.TLS,
			Username: a.cfg.SMTP.Username, Password: a.cfg.SMTP.Password, Timeout: a.cfg.SMTP.Timeout.D()})
		if err != nil {
			return nil, nil, nil, runner.Usage(err)
		}
		sender = smtp
	}
	thresholds := analytics.Thresholds{JitterMs: a.cfg.Analytics.PoorJitterMs, LatencyMs: a.cfg.Analytics.PoorLatencyMs, LossPct: a.cfg.Analytics.PoorLossPct}
	// The signing key is read once, when the first link or message needs it,
	// not for every recipient.
	var keyMu sync.Mutex
	var key []byte
	signingKey := func(ctx context.Context) ([]byte, error) {
		keyMu.Lock()
		defer keyMu.Unlock()
		if key == nil {
			k, err := subscriptions.SigningKey(ctx, stores.Control, a.cfg.Serve.SigningKeyFile)
			if err != nil {
				return nil, err
			}
			key = k
		}
		return key, nil
	}
	w := &wiring{sender: sender, stores: stores, catalog: catalog, reports: map[periods.Cadence]*jobs.Reports{}, key: signingKey,
		links: &links.Maker{Stores: stores, BaseURL: a.cfg.Reports.BaseURL, PublicURL: a.cfg.Serve.PublicURL, Key: signingKey,
			Expiry: a.cfg.Reports.LinkExpiry.D(), Now: a.clock.Now}}
	for _, c := range []periods.Cadence{periods.Daily, periods.Weekly, periods.Monthly} {
		w.reports[c] = &jobs.Reports{Every: c, Catalog: catalog, Sender: sender, From: a.cfg.SMTP.From,
			Links: w.links, UnderThreshold: a.cfg.License.UnderThreshold,
			Thresholds: thresholds, SendAttempts: a.cfg.SMTP.Attempts, SendBackoff: a.cfg.SMTP.Backoff.D(),
			Recipients: a.cfg.Reports.Recipients, PublicURL: a.cfg.Serve.PublicURL, CSVBOM: a.cfg.Reports.CSVBOM, TmpDir: a.cfg.Storage.TmpDir,
			UnsubscribeKey: signingKey}
	}
	ledger := &runner.Ledger{Store: stores.Control}
	reg := jobs.NewRegistry(a.cfg.Schedules(),
		&jobs.Sync{Source: src, EmptyGuard: a.cfg.Source.EmptyGuard, Ledger: ledger, Grace: a.cfg.Source.Grace.D()},
		&jobs.Usage{UnderThreshold: a.cfg.License.UnderThreshold},
		&jobs.WeeklyAnalytics{Ledger: ledger, LowBelow: a.cfg.Analytics.LowAssignmentBelow, Thresholds: thresholds},
		w.reports[periods.Daily], w.reports[periods.Weekly], w.reports[periods.Monthly],
	)
	host, _ := os.Hostname()
	r := runner.New(reg.Jobs(), stores, a.clock, a.cfg.RunnerConfig(), runner.Holder{Host: host, PID: os.Getpid()}, a.log)
	return r, reg, w, nil
}

// openSource is the configured source.
func (a *app) openSource() (source.Source, error) {
	switch a.cfg.Source.Type {
	case "files":
		return a.openFiles()
	case "webex":
		return a.openWebex()
	}
	src, err := demo.New(demo.Options{Seed: a.cfg.Source.Seed, Scale: a.cfg.Source.Scale, BadRowRate: a.cfg.Source.BadRowRate})
	if err != nil {
		return nil, runner.Usage(err)
	}
	return src, nil
}

// openFiles is the files landing zone (source.files).
func (a *app) openFiles() (*files.Source, error) {
	f := a.cfg.Source.Files
	var root storage.Store
	var err error
	if f.Path != "" {
		// Read only: nothing is created in a partner's landing zone.
		if root, err = local.Open(f.Path); err != nil {
			return nil, runner.Usagef("source.files.path: %v", err)
		}
	} else if root, err = openStore(config.StoreConfig{Type: "s3", S3: f.S3}); err != nil {
		return nil, fmt.Errorf("source.files.s3: %w", err)
	}
	return &files.Source{Root: storage.WithTimeouts(root, a.cfg.Timeouts()), ReadyDeadline: f.ReadyDeadline.D(), MaxCallLength: f.MaxCallLength.D(),
		TmpDir: a.cfg.Storage.TmpDir, Now: a.clock.Now}, nil
}

// openWebex is the webex source: one client per partner (its own token),
// sharing one request rate limit; with source.files, the landing zone adds what
// the API lacks.
func (a *app) openWebex() (*webex.Source, error) {
	w := a.cfg.Source.Webex
	stores, err := a.openStores()
	if err != nil {
		return nil, err
	}
	limit := rate.NewLimiter(rate.Limit(w.RequestsPerSecond), max(1, int(w.RequestsPerSecond)))
	hc := &http.Client{Transport: http.DefaultTransport}
	src := &webex.Source{Regions: w.Regions, CallsHosts: w.CallsHosts, Parallel: w.Parallel, CallsParallel: w.CallsParallel,
		CallsInterval: w.CallsInterval.D(), CallsLateness: w.CallsLateness.D(), SkipFailedCustomers: w.SkipFailedCustomers,
		Payloads: stores, Clock: a.clock, Log: a.log}
	for _, p := range w.Partners {
		oauth := &webex.OAuth{Key: webex.TokenKey(p.ID), TokenURL: w.TokenURL, ClientID: w.ClientID, ClientSecret: w.ClientSecret,
			Store: stores.Control, HTTP: hc, Now: a.clock.Now}
		client := &webex.Client{BaseURL: w.BaseURL, HTTP: hc, Tokens: oauth, Limit: limit, RequestTimeout: w.RequestTimeout.D(),
			Clock: a.clock, Log: a.log.With().Str("partner_id", p.ID).Logger()}
		src.Accounts = append(src.Accounts, webex.Account{Partner: model.Partner{PartnerID: p.ID, PartnerName: p.Name}, Client: client, Webhook: p.Webhook()})
	}
	if a.cfg.Source.Files.HasFiles() {
		if src.Files, err = a.openFiles(); err != nil {
			return nil, err
		}
		src.Files.Roster = src.FilesRoster
	}
	return src, nil
}

// eachStore calls fn once per distinct store: the control store, then each
// region's (a store several share is visited once, under its first name).
func eachStore(stores storage.Regional, fn func(name string, s storage.Store) error) error {
	seen := map[storage.Store]bool{}
	visit := func(name string, s storage.Store) error {
		if seen[s] {
			return nil
		}
		seen[s] = true
		return fn(name, s)
	}
	if err := visit("control", stores.Control); err != nil {
		return err
	}
	for _, r := range model.Regions {
		if err := visit("region "+r, stores.Regions[r]); err != nil {
			return err
		}
	}
	return nil
}

// openStores opens the control store and each region's, every call bounded by
// storage.request_timeout and every stream by storage.idle_timeout.
func (a *app) openStores() (storage.Regional, error) {
	openStore := func(sc config.StoreConfig) (storage.Store, error) {
		s, err := openStore(sc)
		if err != nil {
			return nil, err
		}
		return storage.WithTimeouts(s, a.cfg.Timeouts()), nil
	}
	control, err := openStore(a.cfg.Storage.StoreConfig)
	if err != nil {
		return storage.Regional{}, fmt.Errorf("storage: %w", err)
	}
	if len(a.cfg.Storage.Regions) == 0 {
		return storage.Single(control, model.Regions), nil
	}
	stores := storage.Regional{Control: control, Regions: map[string]storage.Store{}}
	for _, r := range model.Regions {
		s, err := openStore(a.cfg.Storage.Regions[r])
		if err != nil {
			return storage.Regional{}, fmt.Errorf("storage.regions.%s: %w", r, err)
		}
		stores.Regions[r] = s
	}
	return stores, nil
}

func openStore(sc config.StoreConfig) (storage.Store, error) {
	switch sc.Type {
	case "local":
		return local.New(sc.Path)
	case "s3":
		var key, secret string
		for _, f := range []struct {
			path string
			dst  *string
		}{{sc.S3.AccessKeyFile, &key}, {sc.S3.SecretKeyFile, &secret}} {
			if f.path == "" {
				continue
			}
			b, err := os.ReadFile(f.path)
			if err != nil {
				return nil, runner.Usagef("s3 credentials: %v", err)
			}
			if *f.dst = strings.TrimSpace(string(b)); *f.dst == "" {
				return nil, runner.Usagef("s3 credentials: %s is empty", f.path)
			}
		}
		if (sc.S3.AccessKeyFile == "") != (sc.S3.SecretKeyFile == "") {
			return nil, runner.Usagef("s3 credentials: set both s3.access_key_file and s3.secret_key_file, or neither (the AWS credential chain)")
		}
		return s3store.New(context.Background(), s3store.Config{Endpoint: sc.S3.Endpoint, Region: sc.S3.Region, Bucket: sc.S3.Bucket,
			Prefix: sc.S3.Prefix, PathStyle: sc.S3.PathStyle, AccessKey: key, SecretKey: secret, PublicEndpoint: sc.S3.PublicEndpoint,
			LinkExpiry: sc.S3.LinkExpiry.D(), PartSize: sc.S3.PartSize})
	}
	return nil, runner.Usagef("storage type %q: local or s3", sc.Type)
}

// startProfiles starts the CPU profile of --cpu-profile.
func (a *app) startProfiles() error {
	if a.cpuProfile == "" {
		return nil
	}
	f, err := os.Create(a.cpuProfile)
	if err != nil {
		return runner.Usagef("--cpu-profile: %v", err)
	}
	a.cpuFile = f
	return pprof.StartCPUProfile(f)
}

// stopProfiles ends the CPU profile and writes the heap profile.
func (a *app) stopProfiles() error {
	if a.cpuFile != nil {
		pprof.StopCPUProfile()
		a.cpuFile.Close()
	}
	if a.memProfile == "" {
		return nil
	}
	f, err := os.Create(a.memProfile)
	if err != nil {
		return runner.Usagef("--mem-profile: %v", err)
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}
