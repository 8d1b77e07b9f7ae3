package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// tally starts the real binary with a clean environment.
func tally(cfg string, args ...string) *exec.Cmd {
	cmd := exec.Command(tallyBin, append([]string{"--config", cfg}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TALLY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

func exitOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func ledger(t *testing.T, cfg, job string) []map[string]any {
	t.Helper()
	out, err := tally(cfg, "runs", job, "-o", "json").Output()
	if err != nil {
		t.Fatalf("tally runs: %v", err)
	}
	var recs []map[string]any
	if err := json.Unmarshal(out, &recs); err != nil {
		t.Fatalf("runs json: %v\n%s", err, out)
	}
	return recs
}

func TestTwoRunnerProcessesRacingForOneJobPeriodExactlyOneRunsTheOtherExits3(t *testing.T) {
	cfg, data := writeConfig(t, "")
	// A bigger estate, so the first runner is still running when the second starts.
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("scale: 20"), []byte("scale: 1500"), 1), 0o644)
	first := tally(cfg, "run", "sync-clusters", "--period", "2026-11-21")
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	lease := filepath.Join(data, "_leases/sync-clusters/2026-11-21.json")
	waitFor(t, "the first runner's lease", 30*time.Second, func() bool { return exists(lease) })

	second := tally(cfg, "run", "sync-clusters", "--period", "2026-11-21")
	out, err := second.CombinedOutput()
	if code := exitOf(err); code != exitHeld || !strings.Contains(string(out), "another runner holds the lease") {
		t.Fatalf("second runner: exit %d, want 3:\n%s", code, out)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first runner: %v\n%s", err, firstErr.String())
	}
	recs := ledger(t, cfg, "sync-clusters")
	if len(recs) != 1 || recs[0]["status"] != "succeeded" {
		t.Fatalf("ledger has %d attempts (%v), want exactly one, succeeded", len(recs), recs)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestARunnerKilledMidRunLeavesNoHalfFileAndARerunAfterTheTTLCompletes(t *testing.T) {
	cfg, data := writeConfig(t, "")
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("scale: 20"), []byte("scale: 3000"), 1), 0o644)
	victim := tally(cfg, "run", "sync-clusters", "--period", "2026-11-21")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until it is mid-run: every region's outputs are open and streaming
	// into temporary files (36 of them: 9 tables × 4 regions; partners come last).
	waitFor(t, "the runner to be mid-write", 60*time.Second, func() bool {
		entries, _ := os.ReadDir(filepath.Join(data, ".tmp"))
		return len(entries) >= 36
	})
	victim.Process.Signal(syscall.SIGKILL)
	victim.Wait()
	killedAt := time.Now()

	// Nothing half-written was published: every visible data file is whole Parquet.
	filepath.Walk(data, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || strings.Contains(p, "/.") || !strings.HasSuffix(p, ".parquet") {
			return nil
		}
		f, _ := os.Open(p)
		defer f.Close()
		if _, err := parquet.OpenFile(f, fi.Size()); err != nil {
			t.Errorf("published half-file %s: %v", p, err)
		}
		return nil
	})

	// Within the TTL the dead runner's lease still holds.
	if time.Since(killedAt) < time.Second {
		out, err := tally(cfg, "run", "sync-clusters", "--period", "2026-11-21").CombinedOutput()
		if code := exitOf(err); code != exitHeld {
			t.Fatalf("re-run within the TTL: exit %d, want 3\n%s", code, out)
		}
	}
	time.Sleep(time.Until(killedAt.Add(2100 * time.Millisecond)))
	out, err := tally(cfg, "run", "sync-clusters", "--period", "2026-11-21").CombinedOutput()
	if err != nil {
		t.Fatalf("re-run after the TTL: %v\n%s", err, out)
	}
	recs := ledger(t, cfg, "sync-clusters")
	if len(recs) != 2 || recs[0]["status"] != "abandoned" || recs[1]["status"] != "succeeded" {
		t.Fatalf("ledger: %v, want attempt 1 abandoned and attempt 2 succeeded", recs)
	}
	if !exists(filepath.Join(data, "inventory/users/region=US/day=2026-11-21/part-0.parquet")) {
		t.Fatal("the re-run did not publish the snapshot")
	}
}

func TestBackfillOctoberCompletesSkipsOnTheSecondRunAndResumesAfterAnInterruption(t *testing.T) {
	cfg, data := writeConfig(t, "")
	args := []string{"backfill", "license-usage", "--from", "2026-10-01", "--to", "2026-10-31", "--parallel", "2"}
	out, err := tally(cfg, args...).Output()
	if err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "31 periods: 31 run, 0 already complete, 0 failed") {
		t.Fatalf("first backfill:\n%s", out)
	}
	for _, job := range []string{"sync-clusters", "license-usage"} {
		if n := len(ledger(t, cfg, job)); n != 31 {
			t.Fatalf("%s has %d ledger entries, want 31 (one per day)", job, n)
		}
	}
	out, err = tally(cfg, args...).Output()
	if err != nil || !strings.Contains(string(out), "31 periods: 0 run, 31 already complete, 0 failed") {
		t.Fatalf("second backfill (%v):\n%s", err, out)
	}

	// Interrupted half-way (kill -9), then resumed.
	cfg2, data2 := writeConfig(t, "")
	os.WriteFile(cfg2, bytes.Replace(must(os.ReadFile(cfg2)), []byte("scale: 20"), []byte("scale: 150"), 1), 0o644)
	victim := tally(cfg2, args...)
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	// Periods the ledger says are complete.
	done := func() int {
		n := 0
		files, _ := filepath.Glob(filepath.Join(data2, "_runs/license-usage/*/*.json"))
		for _, f := range files {
			if bytes.Contains(must(os.ReadFile(f)), []byte(`"status": "succeeded"`)) {
				n++
			}
		}
		return n
	}
	waitFor(t, "half the backfill", 120*time.Second, func() bool { return done() >= 12 })
	victim.Process.Signal(syscall.SIGKILL)
	victim.Wait()
	before := done()
	out, err = tally(cfg2, args...).Output()
	if err != nil {
		t.Fatalf("resumed backfill: %v\n%s", err, out)
	}
	var run, skipped, failed int
	line := string(out)[strings.Index(string(out), "31 periods:"):]
	if _, err := fmtSscanf(line, "31 periods: %d run, %d already complete, %d failed", &run, &skipped, &failed); err != nil {
		t.Fatalf("summary %q: %v", line, err)
	}
	if skipped != before || run+skipped != 31 || failed != 0 {
		t.Fatalf("resume: %d run, %d skipped, %d failed; %d were complete before the kill", run, skipped, failed, before)
	}
	_ = data
}

var fmtSscanf = fmt.Sscanf

func TestServeShutsDownGracefullyOnSIGTERMLeavingNoHeldLease(t *testing.T) {
	cfg, data := writeConfig(t, "serve:\n  catch_up: 1\n  grace: 1s\n")
	// Enough work that jobs are running when SIGTERM arrives.
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("scale: 20"), []byte("scale: 400"), 1), 0o644)
	srv := tally(cfg, "serve", "--listen", "127.0.0.1:0")
	var logs bytes.Buffer
	srv.Stderr = &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a job to be running (its lease)", 60*time.Second, func() bool {
		files, _ := filepath.Glob(filepath.Join(data, "_leases", "*", "*.json"))
		return len(files) > 0
	})
	srv.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		srv.Process.Kill()
		t.Fatalf("serve did not stop within the grace period\n%s", logs.String())
	}
	files, _ := filepath.Glob(filepath.Join(data, "_leases", "*", "*.json"))
	for _, f := range files {
		var l struct {
			Released bool `json:"released"`
		}
		json.Unmarshal(must(os.ReadFile(f)), &l)
		if !l.Released {
			t.Errorf("%s is still held after shutdown", f)
		}
	}
	if !strings.Contains(logs.String(), "shutting down") || !strings.Contains(logs.String(), "catching up a missed period") {
		t.Errorf("logs lack the catch-up and shutdown:\n%s", logs.String())
	}
}
