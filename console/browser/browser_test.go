// Package browser tests the console in a real browser: Debian's
// chromium-headless-shell driven through chromedp, on the demo's data, the
// way an operator sees it. Screenshots of each page are saved as artefacts
// ($TALLY_TEST_ARTEFACTS, or test-artefacts/browser at the repository root).
package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// site is a running tally serve on demo data.
type site struct {
	url, data string
	failed    string // the day whose sync failed
}

// tally builds the binary once per test run.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tally")
	out, err := exec.Command("go", "build", "-o", bin, "tally/cmd/tally").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// demoSite runs the demo's chain (3 weeks of analytics, every report), one
// failed sync, then tally serve on a free port.
func demoSite(t *testing.T) *site {
	t.Helper()
	bin := build(t)
	dir := t.TempDir()
	s := &site{data: filepath.Join(dir, "tally-data")}
	env := append(os.Environ(), "TALLY_STORAGE_PATH="+s.data, "TALLY_SOURCE_SCALE=20", "TALLY_SERVE_CATCH_UP=0", "TALLY_LOG_FORMAT=json",
		"TALLY_SERVE_PUBLIC_URL=http://127.0.0.1/")
	tally := func(extra []string, args ...string) ([]byte, error) {
		cmd := exec.Command(bin, append(args, "--log-level", "error")...)
		cmd.Dir, cmd.Env = dir, append(append([]string{}, env...), extra...)
		return cmd.CombinedOutput()
	}
	must := func(args ...string) {
		if out, err := tally(nil, args...); err != nil {
			t.Fatalf("tally %v: %v\n%s", args, err, out)
		}
	}
	for _, sub := range [][]string{{"demo-flex", "flex-license-usage", "daily"}, {"demo-cs", "customer-subscriptions", "weekly"}, {"demo-devices", "devices", "daily"}} {
		must("subscriptions", "add", "--id", sub[0], "--partner", "P093374", "--template", sub[1], "--cadence", sub[2], "--to", "ops@example.com")
	}
	must("run", "reports-daily")
	must("run", "reports-weekly")
	now := time.Now().UTC()
	lastWeek := now.AddDate(0, 0, -int(now.Weekday())-7) // the Sunday the latest ended week started
	must("backfill", "analytics", "--from", lastWeek.AddDate(0, 0, -14).Format("2006-01-02"), "--to", lastWeek.AddDate(0, 0, -7).Format("2006-01-02"), "--parallel", "2")
	s.failed = now.AddDate(0, 0, -120).Format("2006-01-02")
	if out, err := tally([]string{"TALLY_SOURCE_TYPE=files", "TALLY_SOURCE_FILES_PATH=" + t.TempDir(), "TALLY_SOURCE_FILES_READY_DEADLINE=1s", "TALLY_RUNNER_MAX_ATTEMPTS=1"},
		"run", "sync-clusters", "--period", s.failed); err == nil {
		t.Fatalf("the sync of an undelivered day succeeded:\n%s", out)
	}

	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--log-level", "info")
	cmd.Dir, cmd.Env = dir, env
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		var l struct {
			Console string `json:"console"`
		}
		if json.Unmarshal(lines.Bytes(), &l) == nil && l.Console != "" {
			s.url = strings.TrimSuffix(l.Console, "/")
			break
		}
	}
	if s.url == "" {
		t.Fatal("tally serve never logged its console URL")
	}
	go io.Copy(io.Discard, stderr)
	return s
}

// browser starts chromium-headless-shell; missing, the test fails in CI
// (make test installs it) and is skipped elsewhere with how to install it.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium-headless-shell")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium-headless-shell is missing: make test installs it (apt-get install chromium-headless-shell)")
		}
		t.Skip("chromium-headless-shell is missing: make test installs it (apt-get install chromium-headless-shell)")
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.Flag("headless", "shell"), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("no-zygote", true), chromedp.Flag("single-process", true), chromedp.WindowSize(1400, 1000)}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel3)
	return ctx
}

// screenshot saves the page as an artefact.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("TALLY_TEST_ARTEFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "test-artefacts", "browser")
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

func open(t *testing.T, ctx context.Context, u, ready string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS(ready))); err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
}

func TestTheConsoleInABrowserShowsRunsAFailedRunsErrorChartsAndDownloads(t *testing.T) {
	ctx := browser(t)
	s := demoSite(t)

	// The grid shows the demo's runs.
	open(t, ctx, s.url+"/runs", "#grid")
	if n := eval[int](t, ctx, `document.querySelectorAll('#grid tr[data-job="sync-clusters"] a.cell[data-state="complete"]').length`); n < 1 {
		t.Errorf("the grid shows %d complete sync-clusters periods", n)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#grid tr[data-job]').length`); n != 6 {
		t.Errorf("the grid has %d job rows, want 6", n)
	}
	screenshot(t, ctx, "runs")

	// A failed run's page shows its error.
	open(t, ctx, s.url+"/runs/sync-clusters/"+s.failed, "#attempt-1")
	if status := eval[string](t, ctx, `document.querySelector('#status-1').textContent`); status != "failed" {
		t.Errorf("the failed run's status reads %q", status)
	}
	if msg := eval[string](t, ctx, `document.querySelector('.run-error pre').textContent`); !strings.Contains(msg, "was not delivered: no manifest") {
		t.Errorf("the failed run's page shows %q, not its error", msg)
	}
	screenshot(t, ctx, "run-failed")

	// The analytics of one partner and region: the charts' points are the
	// published weeks' (3 of the 8 weeks, two series in the license chart).
	open(t, ctx, s.url+"/analytics", "#selector")
	partners := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('select[name=partner] option')).map(o => o.value)`)
	partner := ""
	for _, p := range partners { // one with data in several regions, to switch between them
		open(t, ctx, s.url+"/analytics?partner="+url.QueryEscape(p), "#chart-licenses")
		if eval[int](t, ctx, `document.querySelectorAll('nav.regions a').length`) > 1 {
			partner = p
			break
		}
	}
	if partner == "" {
		t.Fatalf("no partner of %v has analytics in two regions", partners)
	}
	region := eval[string](t, ctx, `document.querySelector('#heading').textContent`)
	weeks := eval[int](t, ctx, `8 - (document.querySelector('.warn') ? document.querySelector('.warn').textContent.split(',').length : 0)`)
	for id, perWeek := range map[string]int{"chart-licenses": 2, "chart-calling-users": 1, "chart-quality": 1} {
		drawn := eval[int](t, ctx, fmt.Sprintf(`document.querySelectorAll('#%s circle.point').length`, id))
		if drawn != perWeek*weeks {
			t.Errorf("%s: %d points drawn, want %d (%d published weeks × %d series)", id, drawn, perWeek*weeks, weeks, perWeek)
		}
	}
	if weeks != 3 {
		t.Errorf("%d weeks published in the chart window, want 3", weeks)
	}
	if gaps := eval[int](t, ctx, `document.querySelector('#chart-licenses path').getAttribute('d').split('M').length - 1`); gaps != 1 {
		t.Errorf("the license line has %d segments, want 1 (3 consecutive weeks)", gaps)
	}
	screenshot(t, ctx, "analytics")
	other := eval[string](t, ctx, `document.querySelector('nav.regions a:not([aria-current])').textContent`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`nav.regions a:not([aria-current])`)), chromedp.WaitVisible(chromedp.CSS("#chart-licenses"))); err != nil {
		t.Fatal(err)
	}
	if now := eval[string](t, ctx, `document.querySelector('#heading').textContent`); now != partner+" in "+other || now == region {
		t.Errorf("switching region from %q to %s shows %q", region, other, now)
	}
	screenshot(t, ctx, "analytics-"+other)

	// A download link returns the stored file byte for byte.
	open(t, ctx, s.url+"/reports", "#subscriptions")
	href := eval[string](t, ctx, `document.querySelector('a.download').href`)
	screenshot(t, ctx, "reports")
	u, _ := url.Parse(href)
	resp, err := http.Get(href)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, key, _ := strings.Cut(strings.TrimPrefix(u.Path, "/files/"), "/")
	want, err := os.ReadFile(filepath.Join(s.data, filepath.FromSlash(key)))
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Errorf("download %s: %d, %d bytes; the stored file has %d (%v)", href, resp.StatusCode, len(got), len(want), err)
	}
}
