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
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// site is a running tally serve, with its login on, over make demo's data.
type site struct {
	url, data, dir string
	bin, config    string
	failed         string            // the day whose sync failed
	tokens         map[string]string // name → token: alice is an operator, victor a viewer
	latest         time.Time         // the Sunday the latest ended week started
}

var (
	siteOnce sync.Once
	shared   *site
	siteErr  string
	cleanup  []func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range cleanup {
		f()
	}
	os.Exit(code)
}

// demoSite is make demo into a temp dir, one failed sync,
// then tally serve with token logins on a free port: one per test run, the
// tests taking turns on it in file order.
func demoSite(t *testing.T) *site {
	t.Helper()
	siteOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tally-browser-")
		if err != nil {
			siteErr = err.Error()
			return
		}
		cleanup = append(cleanup, func() { os.RemoveAll(dir) })
		shared, siteErr = startSite(dir)
	})
	if siteErr != "" {
		t.Fatal(siteErr)
	}
	return shared
}

func startSite(dir string) (*site, string) {
	s := &site{dir: dir, data: filepath.Join(dir, "tally-data"), bin: filepath.Join(dir, "tally"), config: filepath.Join(dir, "tally.yaml"),
		tokens: map[string]string{"alice": "alice-operator-token-0123456789", "victor": "victor-viewer-token-0123456789"}}
	if out, err := exec.Command("go", "build", "-o", s.bin, "tally/cmd/tally").CombinedOutput(); err != nil {
		return nil, fmt.Sprintf("go build: %v\n%s", err, out)
	}
	// The console's address, known before make demo so its emails link there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err.Error()
	}
	listen := l.Addr().String()
	l.Close()
	s.url = "http://" + listen
	// make demo, exactly as a newcomer runs it, into this test's directory.
	demo := exec.Command("make", "-C", filepath.Join("..", ".."), "demo")
	demo.Env = append(os.Environ(), "TALLY_STORAGE_PATH="+s.data, "TALLY_LOG_FORMAT=json", "TALLY_SERVE_PUBLIC_URL="+s.url)
	if out, err := demo.CombinedOutput(); err != nil {
		return nil, fmt.Sprintf("make demo: %v\n%s", err, out)
	}
	now := time.Now().UTC()
	s.latest = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -int(now.Weekday())-7)
	for name, token := range s.tokens {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(token+"\n"), 0o600); err != nil {
			return nil, err.Error()
		}
	}
	cfg := fmt.Sprintf(`storage: {type: local, path: %q}
serve:
  catch_up: 0
  public_url: %q
  auth:
    type: token
    tokens:
      - {name: alice, role: operator, token_file: %q}
      - {name: victor, role: viewer, token_file: %q}
log: {format: json}
`, s.data, s.url, filepath.Join(dir, "alice"), filepath.Join(dir, "victor"))
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		return nil, err.Error()
	}
	s.failed = now.AddDate(0, 0, -120).Format("2006-01-02")
	sync := exec.Command(s.bin, "--config", s.config, "run", "sync-clusters", "--period", s.failed, "--log-level", "error")
	sync.Env = append(os.Environ(), "TALLY_SOURCE_TYPE=files", "TALLY_SOURCE_FILES_PATH="+filepath.Join(dir, "landing"), "TALLY_SOURCE_FILES_READY_DEADLINE=1s", "TALLY_RUNNER_MAX_ATTEMPTS=1")
	os.MkdirAll(filepath.Join(dir, "landing"), 0o755)
	if out, err := sync.CombinedOutput(); err == nil {
		return nil, fmt.Sprintf("the sync of an undelivered day succeeded:\n%s", out)
	}

	cmd := exec.Command(s.bin, "--config", s.config, "serve", "--listen", listen, "--log-level", "info")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return nil, err.Error()
	}
	cleanup = append([]func(){func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }}, cleanup...)
	lines := bufio.NewScanner(stderr)
	started := false
	for lines.Scan() {
		var l struct {
			Console string `json:"console"`
		}
		if json.Unmarshal(lines.Bytes(), &l) == nil && l.Console != "" {
			started = true
			break
		}
	}
	if !started {
		return nil, "tally serve never logged its console URL"
	}
	go io.Copy(io.Discard, stderr)
	return s, ""
}

// tally runs the site's binary on its config.
func (s *site) tally(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(s.bin, append([]string{"--config", s.config, "--log-level", "error"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tally %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// week is the Sunday n weeks before the latest ended week.
func (s *site) week(n int) string { return s.latest.AddDate(0, 0, -7*n).Format("2006-01-02") }

// login logs the browser in with name's token.
func (s *site) login(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	open(t, ctx, s.url+"/login", "input[name=token]")
	if err := chromedp.Do(ctx, chromedp.SendKeys(`input[name=token]`, s.tokens[name]), chromedp.Submit(`input[name=token]`),
		chromedp.WaitVisible(`.who`)); err != nil {
		t.Fatalf("log in as %s: %v", name, err)
	}
	if who := eval[string](t, ctx, `document.querySelector('.who').textContent`); !strings.Contains(who, name) {
		t.Fatalf("logged in as %s, the page says %q", name, who)
	}
}

// client is an HTTP client that does not follow redirects.
var client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 30 * time.Second}

// session logs in over HTTP and returns the session cookie.
func (s *site) session(t *testing.T, name string) *http.Cookie {
	t.Helper()
	resp, err := client.PostForm(s.url+"/login", url.Values{"token": {s.tokens[name]}, "next": {"/runs"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Value != "" {
			return c
		}
	}
	t.Fatalf("log in as %s: %d, no cookie", name, resp.StatusCode)
	return nil
}

// fetch GETs path with the cookie (nil: none), as a browser asks for a page.
func (s *site) fetch(t *testing.T, path string, cookie *http.Cookie) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
	req.Header.Set("Accept", "text/html")
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// browser starts chromium-headless-shell; missing, the test fails in CI
// (make test installs it) and is skipped elsewhere with how to install it.
func browser(t *testing.T, width int) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium-headless-shell")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium-headless-shell is missing: make test installs it (apt-get install chromium-headless-shell)")
		}
		t.Skip("chromium-headless-shell is missing: make test installs it (apt-get install chromium-headless-shell)")
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.Flag("headless", "shell"), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("no-zygote", true), chromedp.Flag("single-process", true), chromedp.WindowSize(width, 1000)}
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
	ctx := browser(t, 1400)
	s := demoSite(t)
	s.login(t, ctx, "alice")

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
	// published weeks' (make demo's 8, two series in the license chart).
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
	name := eval[string](t, ctx, `document.querySelector('select[name=partner] option:checked').textContent`)
	weeks := eval[int](t, ctx, `8 - (document.querySelector('.warn') ? document.querySelector('.warn').textContent.split(',').length : 0)`)
	for id, perWeek := range map[string]int{"chart-licenses": 2, "chart-calling-users": 1, "chart-quality": 1} {
		drawn := eval[int](t, ctx, fmt.Sprintf(`document.querySelectorAll('#%s circle.point').length`, id))
		if drawn != perWeek*weeks {
			t.Errorf("%s: %d points drawn, want %d (%d published weeks × %d series)", id, drawn, perWeek*weeks, weeks, perWeek)
		}
	}
	if weeks != 8 {
		t.Errorf("%d weeks published in the chart window, want make demo's 8", weeks)
	}
	if gaps := eval[int](t, ctx, `document.querySelector('#chart-licenses path').getAttribute('d').split('M').length - 1`); gaps != 1 {
		t.Errorf("the license line has %d segments, want 1 (8 consecutive weeks)", gaps)
	}
	screenshot(t, ctx, "analytics")
	other := eval[string](t, ctx, `document.querySelector('nav.regions a:not([aria-current])').textContent`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`nav.regions a:not([aria-current])`)), chromedp.WaitVisible(chromedp.CSS("#chart-licenses"))); err != nil {
		t.Fatal(err)
	}
	if now := eval[string](t, ctx, `document.querySelector('#heading').textContent`); now != name+" in "+other || now == region {
		t.Errorf("switching region from %q to %s shows %q", region, other, now)
	}
	screenshot(t, ctx, "analytics-"+other)

	// A download link returns the stored file byte for byte.
	open(t, ctx, s.url+"/reports", "#subscriptions")
	href := eval[string](t, ctx, `document.querySelector('a.download').href`)
	screenshot(t, ctx, "reports")
	u, _ := url.Parse(href)
	req, _ := http.NewRequest(http.MethodGet, href, nil)
	req.AddCookie(s.session(t, "victor")) // a viewer downloads too
	resp, err := client.Do(req)
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
