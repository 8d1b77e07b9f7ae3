package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"tally/clock"
)

// tallyBin is a tally binary built once for the process tests.
var tallyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tally-bin-")
	if err != nil {
		panic(err)
	}
	tallyBin = filepath.Join(dir, "tally")
	if out, err := exec.Command("go", "build", "-o", tallyBin, ".").CombinedOutput(); err != nil {
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// writeConfig writes a tally.yaml for a test: storage in a temp dir, a small
// demo estate, a short lease TTL so tests never wait a minute.
func writeConfig(t *testing.T, extra string) (cfgPath, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	dataDir = filepath.Join(dir, "data")
	cfgPath = filepath.Join(dir, "tally.yaml")
	cfg := "storage:\n  type: local\n  path: " + dataDir + "\nsource:\n  scale: 20\nrunner:\n  lease_ttl: 2s\n  lease_renew: 500ms\n  backoff: 10ms\n  backoff_max: 50ms\nlog:\n  format: json\n" + extra
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, dataDir
}

// run runs tally in-process and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runAt(t, time.Date(2026, 11, 22, 0, 20, 0, 0, time.UTC), args...)
}

// runAt is run with the clock at now.
func runAt(t *testing.T, now time.Time, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot(&out, &errOut, clock.NewFake(now))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString(err.Error())
	}
	return exitCode(err), out.String(), errOut.String()
}

func TestBadInputGetsAClearMessageAndExit2(t *testing.T) {
	cfg, _ := writeConfig(t, "")
	badKey := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(badKey, []byte("source:\n  scale: 20\n  colour: blue\n"), 0o644)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown job", []string{"--config", cfg, "run", "sync-everything"}, `unknown job "sync-everything": the jobs are sync-clusters, license-usage, analytics, reports-daily, reports-weekly, reports-monthly`},
		{"bad period", []string{"--config", cfg, "run", "license-usage", "--period", "2026-13-45"}, `bad daily period "2026-13-45"`},
		{"a month as a day", []string{"--config", cfg, "run", "license-usage", "--period", "2026-10"}, `bad daily period "2026-10"`},
		{"bad config key", []string{"--config", badKey, "run", "license-usage"}, `line 3: unknown key "colour" in source`},
		{"--from after --to", []string{"--config", cfg, "backfill", "license-usage", "--from", "2026-10-31", "--to", "2026-10-01"}, "--from 2026-10-31 is after --to 2026-10-01"},
		{"backfill without --to", []string{"--config", cfg, "backfill", "license-usage", "--from", "2026-10-01"}, "--from and --to are required"},
		{"bad shard", []string{"--config", cfg, "backfill", "license-usage", "--from", "2026-10-01", "--to", "2026-10-02", "--shard", "4/4"}, `bad --shard "4/4"`},
		{"unknown region", []string{"--config", cfg, "run", "license-usage", "--region", "MARS"}, `unknown region "MARS"`},
		{"unknown flag", []string{"--config", cfg, "run", "license-usage", "--frobnicate"}, "unknown flag: --frobnicate"},
		{"no job", []string{"--config", cfg, "run"}, "want one job name"},
		{"missing config file", []string{"--config", "/nonexistent/tally.yaml", "jobs"}, "no such file"},
		{"bad as-of", []string{"--config", cfg, "--as-of", "soon", "run", "license-usage"}, `--as-of "soon"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", code, stderr, tc.want)
			}
		})
	}
}

func TestUnknownEnvironmentSettingIsAnError(t *testing.T) {
	cfg, _ := writeConfig(t, "")
	t.Setenv("TALLY_SOURCE_SCAEL", "10")
	code, _, stderr := run(t, "--config", cfg, "config", "check")
	if code != exitUsage || !strings.Contains(stderr, "TALLY_SOURCE_SCAEL is not a tally setting") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestConfigCheckPrintsTheEffectiveConfigWithEnvOverrides(t *testing.T) {
	cfg, _ := writeConfig(t, "")
	t.Setenv("TALLY_SOURCE_SCALE", "77")
	t.Setenv("TALLY_RUNNER_LEASE_TTL", "90s")
	code, stdout, stderr := run(t, "--config", cfg, "config", "check")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"scale: 77", "lease_ttl: 1m30s", "config ok"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("config check output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestEveryCommandHasHelpWithAnExample(t *testing.T) {
	root := newRoot(&bytes.Buffer{}, &bytes.Buffer{}, clock.Real{})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && c.Example == "" {
			t.Errorf("%s has no example in --help", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			if sub.Name() != "help" && sub.Name() != "completion" {
				walk(sub)
			}
		}
	}
	walk(root)
}

func TestRunPrintsASummaryAndTheLedgerShowsIt(t *testing.T) {
	cfg, data := writeConfig(t, "")
	code, stdout, stderr := run(t, "--config", cfg, "run", "license-usage", "--as-of", "2026-11-22T00:20:00Z")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"ran upstream sync-clusters 2026-11-21: succeeded", "license-usage 2026-11-21: succeeded", "usage/subscription", "compliance", data} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, `"run_id":"license-usage/2026-11-21/0001"`) || !strings.Contains(stderr, `"job":"license-usage"`) || !strings.Contains(stderr, `"period":"2026-11-21"`) {
		t.Errorf("log lines are not tagged with job, period and run_id:\n%s", stderr)
	}
	code, stdout, _ = run(t, "--config", cfg, "runs", "-o", "json")
	if code != 0 || !strings.Contains(stdout, `"run_id": "sync-clusters/2026-11-21/0001"`) {
		t.Fatalf("runs -o json: exit %d\n%s", code, stdout)
	}
}

func TestPeriodsThatEndedBeforeRunnerStartDateAreNotGapsInPlanCheckDefaultTheLedgersFirstRun(t *testing.T) {
	cfg, _ := writeConfig(t, "")
	if code, _, stderr := run(t, "--config", cfg, "run", "license-usage"); code != 0 {
		t.Fatal(stderr)
	}
	// No start date: the day of the ledger's first run (2026-11-22).
	code, stdout, _ := run(t, "--config", cfg, "plan", "--check")
	flat := strings.Join(strings.Fields(stdout), " ")
	if code != 0 || !strings.Contains(flat, "2026-11-21 complete") || !strings.Contains(flat, "2026-11-20 before-start ended before 2026-11-22") {
		t.Fatalf("plan --check on a fresh install: exit %d (want 0: the days before its first run are not gaps)\n%s", code, stdout)
	}
	// A start date before it: the days between are owed.
	t.Setenv("TALLY_RUNNER_START_DATE", "2026-11-18")
	code, stdout, _ = run(t, "--config", cfg, "plan", "--check")
	flat = strings.Join(strings.Fields(stdout), " ")
	if code != exitFailed || !strings.Contains(flat, "2026-11-20 missing") || !strings.Contains(flat, "2026-11-18 missing") || !strings.Contains(flat, "2026-11-17 before-start") {
		t.Fatalf("plan --check with runner.start_date 2026-11-18: exit %d (want 1: 18–20 are missing)\n%s", code, stdout)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	cfg, data := writeConfig(t, "")
	code, stdout, stderr := run(t, "--config", cfg, "run", "license-usage", "--period", "2026-11-21", "--dry-run")
	if code != 0 || !strings.Contains(stdout, "run sync-clusters 2026-11-21") || !strings.Contains(stdout, "write usage/subscription/region=EU/day=2026-11-21/part-0.parquet") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if entries, _ := os.ReadDir(data); len(entries) > 2 { // .tmp and .locks only
		t.Fatalf("dry run wrote %v", entries)
	}
}

func TestAnalyticsLatestAsOfSundayRunsTheWeekThatJustEndedAndItsUpstreamDays(t *testing.T) {
	cfg, data := writeConfig(t, "")
	code, stdout, stderr := run(t, "--config", cfg, "run", "analytics", "--period", "latest", "--as-of", "2026-11-22T00:05:00Z")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "analytics 2026-11-15: succeeded") {
		t.Fatalf("did not run the week 2026-11-15:\n%s", stdout)
	}
	for _, day := range []string{"2026-11-15", "2026-11-21"} {
		if !strings.Contains(stdout, "ran upstream license-usage "+day) {
			t.Errorf("upstream license-usage %s not run:\n%s", day, stdout)
		}
	}
	if !strings.Contains(stdout, "ran upstream sync-clusters 2026-11-14") {
		t.Errorf("the Saturday before (weekly change) was not synced:\n%s", stdout)
	}
	if !exists(filepath.Join(data, "analytics/kpis/region=EU/week=2026-11-15/part-0.parquet")) {
		t.Fatal("no analytics/kpis for EU")
	}
}

func TestAnalyticsForATuesdayIsNotASundayExit2(t *testing.T) {
	cfg, _ := writeConfig(t, "")
	code, _, stderr := run(t, "--config", cfg, "run", "analytics", "--period", "2026-11-17")
	if code != exitUsage || !strings.Contains(stderr, "2026-11-17 is a Tuesday: a weekly period starts on a Sunday") || !strings.Contains(stderr, "not a Sunday") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestSubscriptionsLifecycleAndRefusals(t *testing.T) {
	cfg, _ := writeConfig(t, "")
	ok := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := run(t, append([]string{"--config", cfg}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		return stdout
	}
	refused := func(want string, args ...string) {
		t.Helper()
		code, _, stderr := run(t, append([]string{"--config", cfg}, args...)...)
		if code != exitUsage || !strings.Contains(stderr, want) {
			t.Fatalf("%v: exit %d, stderr %q; want exit 2 and %q", args, code, stderr, want)
		}
	}
	ok("subscriptions", "add", "--id", "flex", "--partner", "P1", "--template", "Flex License Usage", "--cadence", "daily", "--to", "ops@example.com")
	refused("already exists", "subscriptions", "add", "--id", "flex", "--partner", "P1", "--template", "flex-license-usage", "--cadence", "daily", "--to", "ops@example.com")
	refused("a read-only admin may not subscribe to a custom template", "subscriptions", "add", "--partner", "P1", "--role", "read-only-admin",
		"--custom-name", "Desk Phones", "--base", "devices", "--column", "Customer", "--cadence", "weekly", "--to", "ro@example.com")
	refused("contains a line break", "subscriptions", "add", "--partner", "P1", "--template", "devices", "--cadence", "daily", "--to", "a@example.com\nBcc: x@example.com")
	refused(`unknown template "Sales Funnel"`, "subscriptions", "add", "--partner", "P1", "--template", "Sales Funnel", "--cadence", "daily", "--to", "a@example.com")
	refused(`has no column "Colour"`, "subscriptions", "add", "--partner", "P1", "--custom-name", "Phones", "--base", "devices", "--column", "Colour", "--cadence", "daily", "--to", "a@example.com")
	refused("covers a week, so its subscriptions are weekly", "subscriptions", "add", "--partner", "P1", "--template", "customer-subscriptions", "--cadence", "daily", "--to", "a@example.com")
	refused("a sales admin receives only assigned customers", "subscriptions", "add", "--partner", "P1", "--template", "devices", "--cadence", "daily", "--role", "sales-admin", "--to", "a@example.com")
	refused("partner: required", "subscriptions", "add", "--template", "devices", "--cadence", "daily", "--to", "a@example.com")
	refused(`region "MARS"`, "subscriptions", "add", "--partner", "P1", "--template", "devices", "--cadence", "daily", "--to", "a@example.com", "--region", "MARS")
	refused(`format "ods"`, "subscriptions", "add", "--partner", "P1", "--template", "devices", "--cadence", "daily", "--to", "a@example.com", "--format", "ods")

	ok("subscriptions", "pause", "flex")
	if out := ok("subscriptions", "list"); !strings.Contains(out, "paused") {
		t.Fatalf("list after pause:\n%s", out)
	}
	ok("subscriptions", "resume", "flex")
	ok("subscriptions", "update", "flex", "--to", "ops@example.com", "--to", "cfo@example.com", "--format", "csv")
	out := ok("subscriptions", "list", "-o", "json")
	if !strings.Contains(out, "cfo@example.com") || !strings.Contains(out, `"formats": [`+"\n"+`      "csv"`+"\n    ]") || strings.Contains(out, `"paused": true`) {
		t.Fatalf("list -o json after update:\n%s", out)
	}
	ok("subscriptions", "remove", "flex")
	refused("no such subscription", "subscriptions", "remove", "flex")
}

func TestResendOfAJobThatSendsNoEmailIsAUsageError(t *testing.T) {
	cfg, _ := writeConfig(t, "")
	code, _, stderr := run(t, "--config", cfg, "resend", "license-usage/2026-11-21/0001")
	if code != exitUsage || !strings.Contains(stderr, "sends no email") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, _, stderr = run(t, "--config", cfg, "resend", "reports-daily/2026-11-21/0001")
	if code != exitUsage || !strings.Contains(stderr, "no run reports-daily/2026-11-21/0001") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestAPasswordInTheConfigFileIsRefused(t *testing.T) {
	cfg, _ := writeConfig(t, "smtp:\n  host: mail.example.com\n  password: hunter2\n")
	code, _, stderr := run(t, "--config", cfg, "config", "check")
	if code != exitUsage || !strings.Contains(stderr, "secrets are never read from the config file") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// Nothing listens on port 1: config check's SMTP probe fails as a network
	// error (exit 1) after the effective config, password redacted, is printed.
	cfg, _ = writeConfig(t, "smtp:\n  host: 127.0.0.1:1\n")
	t.Setenv("TALLY_SMTP_PASSWORD", "hunter2")
	code, stdout, stderr := run(t, "--config", cfg, "config", "check")
	if code != exitFailed || strings.Contains(stdout+stderr, "hunter2") || !strings.Contains(stdout, "password: <redacted>") {
		t.Fatalf("exit %d: the password must be redacted:\n%s\n%s", code, stdout, stderr)
	}
}

func TestAFailedRunPostsItsFailureToTheWebhook(t *testing.T) {
	got := make(chan string, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
	}))
	defer hook.Close()
	cfg, _ := writeConfig(t, "alerts:\n  webhook: "+hook.URL+"\n")
	code, _, stderr := run(t, "--config", cfg, "run", "license-usage", "--period", "2026-11-21", "--no-deps")
	if code != exitFailed {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	select {
	case body := <-got:
		if !strings.Contains(body, `"event":"run_failed"`) || !strings.Contains(body, "upstream sync-clusters 2026-11-21 is missing") {
			t.Fatalf("webhook payload: %s", body)
		}
	default:
		t.Fatal("no failure notification reached the webhook")
	}
}

func TestAOneShotRunPushesItsMetricsToThePushgateway(t *testing.T) {
	type pushed struct{ method, path, body string }
	got := make(chan pushed, 4)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- pushed{r.Method, r.URL.Path, string(b)}
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()
	cfg, _ := writeConfig(t, "metrics:\n  pushgateway: "+gw.URL+"\n")
	if code, _, stderr := run(t, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21"); code != 0 {
		t.Fatalf("run: %s", stderr)
	}
	select {
	case p := <-got:
		if p.method != http.MethodPut || p.path != "/metrics/job/sync-clusters" {
			t.Fatalf("pushed %s %s", p.method, p.path)
		}
		// The body is protobuf-delimited; the metric names are plain bytes in it.
		for _, name := range []string{"tally_runs_total", "tally_period_last_success_timestamp_seconds", "tally_rows_written_total"} {
			if !strings.Contains(p.body, name) {
				t.Errorf("the push lacks %s", name)
			}
		}
	default:
		t.Fatal("nothing was pushed")
	}
}
