package main

// The files source's DuckDB-written fixtures (source/files/testdata/duckdb):
// a demo day exported by tally, then rewritten by DuckDB the way a partner's
// data team would deliver it — rows shuffled, ids as UUID, counts as DECIMAL
// or INTEGER, timestamps without a time zone, and a CSV copy with its columns
// in another order. The queries are in make.sql beside them.
//
//	cd bench/duckdb && go run . -fixtures ../../source/files/testdata/duckdb -tally ../../bin/tally

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// fixtureDay and fixtureScale are the demo day the fixtures hold (the files
// source's test reproduces it with the demo source and compares).
const (
	fixtureDay   = "2026-11-21"
	fixtureScale = "6"
)

func writeFixtures(dir, tally string) error {
	work, err := os.MkdirTemp("", "tally-fixtures-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	export := exec.Command(tally, "source", "export", "--period", fixtureDay, "--out", filepath.Join(work, "landing"), "--log-level", "warn")
	export.Env = append(os.Environ(), "TALLY_SOURCE_SCALE="+fixtureScale, "TALLY_STORAGE_PATH="+filepath.Join(work, "data"))
	export.Stderr = os.Stderr
	if err := export.Run(); err != nil {
		return fmt.Errorf("tally source export: %w", err)
	}
	script, err := os.ReadFile(filepath.Join(dir, "make.sql"))
	if err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	for _, sub := range []string{"parquet", "csv"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	sqlText := strings.NewReplacer("{landing}", filepath.Join(work, "landing"), "{out}", dir, "{day}", fixtureDay).Replace(string(script))
	for _, stmt := range strings.Split(sqlText, ";\n") {
		if strings.TrimSpace(stripComments(stmt)) == "" {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			return fmt.Errorf("duckdb: %w\n%s", err, stmt)
		}
	}
	for _, sub := range []string{"parquet", "csv"} {
		if err := writeLandingManifest(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	return nil
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// writeLandingManifest lists every file DuckDB wrote, with its size and
// sha256, in the day's manifest.
func writeLandingManifest(root string) error {
	type file struct {
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	var files []file
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		sum := sha256.Sum256(b)
		files = append(files, file{Path: filepath.ToSlash(rel), Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])})
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	b, _ := json.MarshalIndent(map[string]any{"day": fixtureDay, "files": files}, "", "  ")
	if err := os.MkdirAll(filepath.Join(root, "_ready"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, "_ready", "day="+fixtureDay+".json"), append(b, '\n'), 0o644)
}
