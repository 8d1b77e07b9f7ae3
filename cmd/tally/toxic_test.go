package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tally/internal/testservers"
	s3store "tally/storage/s3"
)

// throughProxy is a config whose S3 storage goes through a toxiproxy proxy.
func throughProxy(t *testing.T, srv *testservers.S3, proxy *testservers.Proxy, storage, extra string) string {
	t.Helper()
	bucket := randomBucket("toxic-")
	s, _ := s3store.New(context.Background(), s3store.Config{Endpoint: srv.Endpoint, Bucket: bucket, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile, secretFile := filepath.Join(dir, "key"), filepath.Join(dir, "secret")
	os.WriteFile(keyFile, []byte(srv.AccessKey), 0o600)
	os.WriteFile(secretFile, []byte(srv.SecretKey), 0o600)
	cfg := filepath.Join(dir, "tally.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`storage:
  type: s3
  s3:
    endpoint: http://%s
    bucket: %s
    prefix: tally
    path_style: true
    access_key_file: %s
    secret_key_file: %s
%ssource:
  scale: 20
log:
  format: json
%s`, proxy.Listen, bucket, keyFile, secretFile, storage, extra)), 0o644)
	return cfg
}

// lockedBuffer is a bytes.Buffer a child process writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func minioHost(t *testing.T, srv *testservers.S3) string {
	u, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func TestARunWhoseS3ConnectionGoesSilentEndsWithinMaxAttemptsTimesAttemptAndRequestTimeouts(t *testing.T) {
	srv := testservers.NeedS3(t)
	tp := testservers.NeedToxiproxy(t)
	const attemptTimeout, requestTimeout = 4 * time.Second, 2 * time.Second
	for _, when := range []string{"from the start", "mid-run"} {
		proxy := tp.Proxy(t, randomBucket("silent-"), minioHost(t, srv))
		cfg := throughProxy(t, srv, proxy, fmt.Sprintf("  request_timeout: %s\n  idle_timeout: %s\n", requestTimeout, requestTimeout),
			fmt.Sprintf("runner:\n  max_attempts: 1\n  attempt_timeout: %s\n  lease_ttl: 3s\n  lease_renew: 1s\n", attemptTimeout))
		run := tally(cfg, "run", "sync-clusters", "--period", "2026-11-21")
		var stderr lockedBuffer
		run.Stderr = &stderr
		if when == "from the start" {
			proxy.Toxic(t, "silence", "timeout", "downstream", 1, map[string]any{"timeout": 0})
		}
		if err := run.Start(); err != nil {
			t.Fatal(err)
		}
		if when == "mid-run" {
			waitFor(t, "the run to be publishing", 30*time.Second, func() bool { return strings.Contains(stderr.String(), "run started") })
			proxy.Toxic(t, "silence", "timeout", "downstream", 1, map[string]any{"timeout": 0})
		}
		silent := time.Now()
		done := make(chan error, 1)
		go func() { done <- run.Wait() }()
		bound := attemptTimeout + requestTimeout
		select {
		case err := <-done:
			took := time.Since(silent)
			if code := exitOf(err); code != exitFailed {
				t.Errorf("%s: exit %d, want 1\n%s", when, code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "timeout") && !strings.Contains(stderr.String(), "timed out") {
				t.Errorf("%s: the error does not say it timed out:\n%s", when, stderr.String())
			}
			t.Logf("%s: ended %s after the connection went silent (bound %s)", when, took.Round(time.Millisecond), bound)
		case <-time.After(bound + 3*time.Second): // the bound, plus process start and exit
			run.Process.Kill()
			t.Fatalf("%s: still running %s after the connection went silent (bound %s)\n%s", when, bound+3*time.Second, bound, stderr.String())
		}
		proxy.RemoveToxic(t, "silence")
	}
}

func TestConnectionResetsBetweenTallyAndS3NeverProduceAFalseTakenOver(t *testing.T) {
	srv := testservers.NeedS3(t)
	tp := testservers.NeedToxiproxy(t)
	proxy := tp.Proxy(t, randomBucket("resets-"), minioHost(t, srv))
	cfg := throughProxy(t, srv, proxy, "", "runner:\n  lease_ttl: 5s\n  lease_renew: 500ms\n  backoff: 10ms\n  backoff_max: 50ms\n")
	// Responses are cut: the request reached MinIO (a conditional PUT landed),
	// the SDK retries it and gets 412 for its own write.
	proxy.Toxic(t, "resets", "reset_peer", "downstream", 0.3, map[string]any{"timeout": 0})
	rounds := faultRounds(t, 6)
	succeeded := 0
	for i := 0; i < rounds; i++ {
		period := time.Date(2026, 11, 1+i, 0, 0, 0, 0, time.UTC).Format("2006-01-02")
		out, err := tally(cfg, "run", "sync-clusters", "--period", period).CombinedOutput()
		if strings.Contains(string(out), "taken over") {
			t.Fatalf("%s: a false takeover under connection resets:\n%s", period, out)
		}
		if err == nil {
			succeeded++
		}
	}
	if succeeded == 0 {
		t.Fatalf("no run succeeded through 30%% connection resets")
	}
	t.Logf("%d of %d runs succeeded through 30%% connection resets, none reported a takeover", succeeded, rounds)
}
