package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
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
