package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"tally/internal/testservers"
	"tally/source/files"
	s3store "tally/storage/s3"
)

// dataFiles lists the usage and report files under a data dir, relative to it.
func dataFiles(t *testing.T, data string, prefixes ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, prefix := range prefixes {
		filepath.Walk(filepath.Join(data, prefix), func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				rel, _ := filepath.Rel(data, p)
				out[rel] = must(os.ReadFile(p))
			}
			return nil
		})
	}
	return out
}

func TestAnExportedDemoDayReadBackByTheFilesSourceGivesByteIdenticalUsageAndReportsInEveryFormat(t *testing.T) {
	const day = "2026-11-21"
	chain := func(cfg string) {
		t.Helper()
		if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", "flex", "--partner", "P093374", "--template", "flex-license-usage", "--cadence", "daily", "--to", "ops@example.com"); code != 0 {
			t.Fatal(stderr)
		}
		if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", "calling", "--partner", "P093374", "--template", "calling-usage-detail", "--cadence", "daily", "--to", "ops@example.com"); code != 0 {
			t.Fatal(stderr)
		}
		for _, job := range []string{"sync-clusters", "license-usage", "reports-daily"} {
			if code, stdout, stderr := run(t, "--config", cfg, "run", job, "--period", day); code != 0 {
				t.Fatalf("%s: exit %d\n%s%s", job, code, stdout, stderr)
			}
		}
	}
	demoCfg, demoData := writeConfig(t, "")
	chain(demoCfg)
	want := dataFiles(t, demoData, "inventory", "calls", "usage", "reports")
	if len(want) < 20 {
		t.Fatalf("the demo run wrote only %d files", len(want))
	}
	for _, format := range []string{"parquet", "csv", "jsonl"} {
		landing := filepath.Join(t.TempDir(), "landing")
		if code, stdout, stderr := run(t, "--config", demoCfg, "source", "export", "--period", day, "--out", landing, "--format", format); code != 0 || !strings.Contains(stdout, "exported "+day) {
			t.Fatalf("export %s: exit %d\n%s%s", format, code, stdout, stderr)
		}
		cfg, data := writeConfig(t, "")
		os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("source:\n  scale: 20\n"),
			[]byte("source:\n  type: files\n  files:\n    path: "+landing+"\n"), 1), 0o644)
		chain(cfg)
		recs := ledger(t, cfg, "sync-clusters")
		if src, _ := recs[0]["notes"].(map[string]any)["source"].(map[string]any); src == nil || len(src["input_files"].([]any)) < 30 {
			t.Fatalf("%s: the files run's ledger does not list its input files: %v", format, recs[0]["notes"])
		}
		got := dataFiles(t, data, "inventory", "calls", "usage", "reports")
		var diff []string
		for k, b := range want {
			if !bytes.Equal(got[k], b) {
				diff = append(diff, k)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				diff = append(diff, k+" (extra)")
			}
		}
		sort.Strings(diff)
		if len(diff) > 0 {
			t.Errorf("%s: %d of %d files differ from the demo run's: %v", format, len(diff), len(want), diff)
		}
	}
}

func TestAnUndeliveredDayIsWaitingExit0WithNoAlertUntilItsDeadlineThenFails(t *testing.T) {
	landing := t.TempDir()
	cfg, _ := writeConfig(t, "")
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("source:\n  scale: 20\n"),
		[]byte("source:\n  type: files\n  files:\n    path: "+landing+"\n"), 1), 0o644)
	// The in-process clock reads 2026-11-22T00:20Z: 20 minutes after the day ended.
	code, stdout, stderr := run(t, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21")
	if code != 0 || !strings.Contains(stdout, "waiting") {
		t.Fatalf("sync before the deadline: exit %d, want 0 and waiting\n%s%s", code, stdout, stderr)
	}
	if recs := ledger(t, cfg, "sync-clusters"); len(recs) != 1 || recs[0]["status"] != "waiting" {
		t.Fatalf("ledger: %v, want one waiting attempt", recs)
	}
	code, stdout, stderr = run(t, "--config", cfg, "run", "license-usage", "--period", "2026-11-21")
	if code != 0 || !strings.Contains(stdout+stderr, "upstream sync-clusters 2026-11-21 is waiting") {
		t.Fatalf("downstream: exit %d, want 0 and \"upstream … waiting\"\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, "--config", cfg, "plan", "--from", "2026-11-21", "--to", "2026-11-21")
	if !strings.Contains(stdout, "waiting") {
		t.Fatalf("plan does not show the waiting day:\n%s", stdout)
	}
	// Past source.files.ready_deadline the day fails (and alerts, like any failure).
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("    path: "+landing+"\n"), []byte("    path: "+landing+"\n    ready_deadline: 10m\n"), 1), 0o644)
	code, stdout, stderr = run(t, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21")
	if code != exitFailed || !strings.Contains(stdout+stderr, "source.files.ready_deadline") {
		t.Fatalf("after the deadline: exit %d, want 1 naming the deadline\n%s%s", code, stdout, stderr)
	}
}

func TestAChangedDeliveryMakesTheDayAndItsDownstreamStaleAndBackfillStaleRerunsExactlyThose(t *testing.T) {
	demoCfg, _ := writeConfig(t, "")
	landing := filepath.Join(t.TempDir(), "landing")
	for _, d := range []string{"2026-11-20", "2026-11-21"} {
		if code, _, stderr := run(t, "--config", demoCfg, "source", "export", "--period", d, "--out", landing, "--format", "csv"); code != 0 {
			t.Fatal(stderr)
		}
	}
	cfg, _ := writeConfig(t, "")
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("source:\n  scale: 20\n"),
		[]byte("source:\n  type: files\n  files:\n    path: "+landing+"\n"), 1), 0o644)
	if code, stdout, stderr := run(t, "--config", cfg, "backfill", "license-usage", "--from", "2026-11-20", "--to", "2026-11-21"); code != 0 {
		t.Fatalf("backfill: %s%s", stdout, stderr)
	}
	// The partner re-delivers the 21st's devices (one row changed) and its manifest.
	devices := filepath.Join(landing, "devices/region=US/day=2026-11-21/part-0.csv")
	b := must(os.ReadFile(devices))
	os.WriteFile(devices, bytes.Replace(b, []byte("desk-phone"), []byte("analog"), 1), 0o644)
	_, stdout, _ := run(t, "--config", cfg, "plan", "--from", "2026-11-20", "--to", "2026-11-21")
	for _, want := range []string{"changed after the run used it", "upstream sync-clusters 2026-11-21 is stale"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("plan does not say %q:\n%s", want, stdout)
		}
	}
	var staleLines []string
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "stale" {
			staleLines = append(staleLines, f[0])
		}
	}
	if len(staleLines) != 2 || staleLines[0] != "2026-11-21" || staleLines[1] != "2026-11-21" {
		t.Fatalf("plan: want the 21st's sync and usage stale, nothing else (%v):\n%s", staleLines, stdout)
	}
	// The re-delivery's manifest, then backfill --stale re-runs exactly those.
	rewriteManifest(t, landing, "2026-11-21")
	for _, job := range []string{"sync-clusters", "license-usage"} {
		code, stdout, stderr := run(t, "--config", cfg, "backfill", job, "--from", "2026-11-20", "--to", "2026-11-21", "--stale")
		if code != 0 || !strings.Contains(stdout, "1 stale "+job+" periods") || !strings.Contains(stdout, "1 periods: 1 run") {
			t.Fatalf("backfill %s --stale: exit %d\n%s%s", job, code, stdout, stderr)
		}
	}
	_, stdout, _ = run(t, "--config", cfg, "plan", "--from", "2026-11-20", "--to", "2026-11-21")
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "stale" {
			t.Fatalf("still stale after backfill --stale: %q\n%s", line, stdout)
		}
	}
}

// rewriteManifest recomputes a day's manifest from its files, as a partner's
// delivery does after changing them.
func rewriteManifest(t *testing.T, landing, day string) {
	t.Helper()
	path := filepath.Join(landing, "_ready", "day="+day+".json")
	var m files.Manifest
	if err := json.Unmarshal(must(os.ReadFile(path)), &m); err != nil {
		t.Fatal(err)
	}
	for i, f := range m.Files {
		b := must(os.ReadFile(filepath.Join(landing, f.Path)))
		sum := sha256.Sum256(b)
		m.Files[i].Size, m.Files[i].SHA256 = int64(len(b)), hex.EncodeToString(sum[:])
	}
	b, _ := json.Marshal(m)
	os.WriteFile(path, b, 0o644)
}

func TestTheFilesSourceReadsALandingZoneInS3LikeOneOnDisk(t *testing.T) {
	srv := testservers.NeedS3(t)
	const day = "2026-11-21"
	demoCfg, demoData := writeConfig(t, "")
	if code, _, stderr := run(t, "--config", demoCfg, "run", "license-usage", "--period", day); code != 0 {
		t.Fatal(stderr)
	}
	local := filepath.Join(t.TempDir(), "landing")
	if code, _, stderr := run(t, "--config", demoCfg, "source", "export", "--period", day, "--out", local, "--format", "jsonl"); code != 0 {
		t.Fatal(stderr)
	}
	bucket := randomBucket("landing-")
	st, err := s3store.New(context.Background(), s3store.Config{Endpoint: srv.Endpoint, Bucket: bucket, Prefix: "partner-x", PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(local, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || strings.Contains(p, "/.") {
			return nil
		}
		rel, _ := filepath.Rel(local, p)
		f, _ := os.Open(p)
		defer f.Close()
		if _, err := st.Put(context.Background(), filepath.ToSlash(rel), f); err != nil {
			t.Fatal(err)
		}
		return nil
	})
	dir := t.TempDir()
	keyFile, secretFile := filepath.Join(dir, "key"), filepath.Join(dir, "secret")
	os.WriteFile(keyFile, []byte(srv.AccessKey), 0o600)
	os.WriteFile(secretFile, []byte(srv.SecretKey), 0o600)
	cfg, data := writeConfig(t, "")
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("source:\n  scale: 20\n"), []byte(fmt.Sprintf(
		"source:\n  type: files\n  files:\n    s3:\n      endpoint: %s\n      bucket: %s\n      prefix: partner-x\n      path_style: true\n      access_key_file: %s\n      secret_key_file: %s\n",
		srv.Endpoint, bucket, keyFile, secretFile)), 1), 0o644)
	if code, stdout, stderr := run(t, "--config", cfg, "run", "license-usage", "--period", day); code != 0 {
		t.Fatalf("the chain on an S3 landing zone: exit %d\n%s%s", code, stdout, stderr)
	}
	want, got := dataFiles(t, demoData, "usage"), dataFiles(t, data, "usage")
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("%d usage files from S3, %d from the demo", len(got), len(want))
	}
	for k, b := range want {
		if !bytes.Equal(got[k], b) {
			t.Errorf("%s differs from the demo run's", k)
		}
	}
}
