package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestAConsoleWithoutALoginBeyondLoopbackIsRefusedExit2UnlessAllowAnonymous(t *testing.T) {
	cfg, _ := writeConfig(t, "")
	code, _, stderr := run(t, "--config", cfg, "serve", "--listen", "0.0.0.0:0")
	if code != exitUsage || !strings.Contains(stderr, "serve.auth") || !strings.Contains(stderr, "allow_anonymous") {
		t.Fatalf("serve on 0.0.0.0 with no login: exit %d, want 2 naming serve.auth and allow_anonymous:\n%s", code, stderr)
	}
	// Allowed, it starts, says so in its log and on every page.
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("log:\n"), []byte("serve:\n  catch_up: 0\n  auth:\n    allow_anonymous: true\nlog:\n"), 1), 0o644)
	srv := tally(cfg, "serve", "--listen", "0.0.0.0:0")
	var out lockedBuffer
	srv.Stderr = &out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	waitFor(t, "serve's console address", 30*time.Second, func() bool { return strings.Contains(out.String(), `"console":"http://`) })
	if !strings.Contains(out.String(), "allow_anonymous") {
		t.Errorf("no warning in the log:\n%s", out.String())
	}
	addr := strings.Split(strings.Split(out.String(), `"console":"`)[1], `"`)[0]
	resp, err := http.Get(addr + "runs")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(body.String(), `id="anonymous-banner"`) {
		t.Errorf("the open console: %d, banner %v", resp.StatusCode, strings.Contains(body.String(), "anonymous-banner"))
	}
}

func TestServeSessionsListsAndRevokesTheConsolesLogins(t *testing.T) {
	cfg, data := writeConfig(t, "")
	tokenFile := filepath.Join(t.TempDir(), "alice")
	os.WriteFile(tokenFile, []byte("correct-horse-battery-staple\n"), 0o600)
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("log:\n"),
		[]byte("serve:\n  auth:\n    type: token\n    tokens: [{name: alice, role: operator, token_file: "+tokenFile+"}]\nlog:\n"), 1), 0o644)
	// Two sessions, as two logins would store them.
	for _, id := range []string{"3f2a9c01b7e4aa11", "9b0c4d2e5f6a7b8c"} {
		os.MkdirAll(filepath.Join(data, "_secrets", "sessions"), 0o700)
		os.WriteFile(filepath.Join(data, "_secrets", "sessions", id+strings.Repeat("0", 48)+".json"),
			[]byte(`{"name":"alice","role":"operator","token":"x","created":"2026-11-22T00:00:00Z","expires":"2026-11-23T00:00:00Z"}`), 0o600)
	}
	code, stdout, stderr := run(t, "--config", cfg, "serve", "sessions", "list")
	if code != 0 || !strings.Contains(stdout, "3f2a9c01b7e4") || !strings.Contains(stdout, "alice") {
		t.Fatalf("sessions list: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ := run(t, "--config", cfg, "serve", "sessions", "revoke", "3f2a9c01"); code != 0 || !strings.Contains(stdout, "revoked 3f2a9c01b7e4") {
		t.Fatalf("revoke by id: exit %d %s", code, stdout)
	}
	if code, _, stderr := run(t, "--config", cfg, "serve", "sessions", "revoke", "3f"); code != exitUsage || !strings.Contains(stderr, "at least 8") {
		t.Errorf("a too short id: exit %d %s", code, stderr)
	}
	if code, stdout, _ := run(t, "--config", cfg, "serve", "sessions", "revoke", "--all"); code != 0 || !strings.Contains(stdout, "revoked 9b0c4d2e5f6a") {
		t.Fatalf("revoke --all: exit %d %s", code, stdout)
	}
	if _, stdout, _ := run(t, "--config", cfg, "serve", "sessions", "list"); !strings.Contains(stdout, "no sessions") {
		t.Errorf("after revoking all: %s", stdout)
	}
}

func TestReRunningAnEarlierWeekMakesTheLaterWeeksThatReadItStaleAndBackfillStaleClearsThemOldestFirst(t *testing.T) {
	cfg, _ := writeConfig(t, "")
	// Three weeks of analytics, oldest first: each week's trends read the ones before.
	if code, stdout, stderr := run(t, "--config", cfg, "backfill", "analytics", "--from", "2026-11-01", "--to", "2026-11-15"); code != 0 {
		t.Fatalf("backfill: exit %d\n%s%s", code, stdout, stderr)
	}
	planOf := func() string {
		_, stdout, _ := run(t, "--config", cfg, "plan", "--from", "2026-11-01", "--to", "2026-11-21")
		return stdout
	}
	staleLine := regexp.MustCompile(`(?m)^\s+\S+\s+stale\s`)
	p := planOf()
	if staleLine.MatchString(p) {
		t.Fatalf("the weeks computed oldest first are not all fresh:\n%s", p)
	}
	for _, line := range strings.Split(p, "\n") {
		if strings.Contains(line, "analytics/2026-11-15/0001") && (strings.Contains(line, "2026-11-01") || strings.Contains(line, "2026-11-08")) {
			t.Fatalf("the latest week's trends lack a week computed before it:\n%s", line)
		}
	}
	// An operator re-runs the first week: the two after it read its old tables.
	if code, _, stderr := run(t, "--config", cfg, "run", "analytics", "--period", "2026-11-01", "--force"); code != 0 {
		t.Fatal(stderr)
	}
	p = planOf()
	for _, want := range []string{"2026-11-08     stale", "analytics 2026-11-01, read for its trends, was published again", "2026-11-15     stale"} {
		if !strings.Contains(p, want) {
			t.Errorf("plan does not say %q:\n%s", want, p)
		}
	}
	if code, _, _ := run(t, "--config", cfg, "plan", "--from", "2026-11-01", "--to", "2026-11-21", "--check"); code != exitFailed {
		t.Errorf("plan --check with stale weeks: exit %d, want 1", code)
	}
	code, stdout, stderr := run(t, "--config", cfg, "backfill", "analytics", "--from", "2026-11-01", "--to", "2026-11-15", "--stale", "--parallel", "2")
	if code != 0 || !strings.Contains(stdout, "2 stale analytics periods") || !strings.Contains(stdout, "one at a time, oldest first") {
		t.Fatalf("backfill --stale: exit %d\n%s%s", code, stdout, stderr)
	}
	if p := planOf(); staleLine.MatchString(p) {
		t.Errorf("after backfill --stale:\n%s", p)
	}
	recs := ledger(t, cfg, "analytics")
	byWeek := map[string][]string{}
	for _, r := range recs {
		byWeek[r["period"].(string)] = append(byWeek[r["period"].(string)], r["started_at"].(string))
	}
	if len(byWeek["2026-11-08"]) != 2 || len(byWeek["2026-11-15"]) != 2 || byWeek["2026-11-08"][1] > byWeek["2026-11-15"][1] {
		t.Errorf("the stale weeks were not each re-run once, oldest first: %v", byWeek)
	}
}
