// Command duckdb compares tally's report writers with DuckDB on the same rows
// (SPEC §10, issue 15): tally writing the benchmark table as Parquet (zstd),
// CSV and both in one pass, against DuckDB's COPY … TO (FORMAT parquet,
// COMPRESSION zstd), COPY … TO (FORMAT csv) and the two COPYs, one thread each.
// Every case runs in a child process (its CPU time is its own), interleaved,
// -runs times; the medians' ratios are printed beside their targets and
// merged into bench-results.json under "duckdb". It is its own Go module, so
// tally stays pure Go (CGO_ENABLED=0) and make test needs no cgo.
//
//	cd bench/duckdb && go run . -rows 2000000 -out ../../bench-results.json
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"tally/clock"
	"tally/internal/benchfig"
	"tally/internal/benchrows"
	"tally/report"
)

var modes = []string{"tally-parquet", "duckdb-parquet", "tally-csv", "duckdb-csv", "tally-both", "duckdb-both"}

// Case is one mode's median run.
type Case struct {
	Mode       string  `json:"mode"`
	Rows       int64   `json:"rows"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Bytes      int64   `json:"bytes"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
}

// Ratio is a figure against its target.
type Ratio struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target float64 `json:"target"`
	Pass   bool    `json:"pass"`
}

func main() {
	child := flag.String("child", "", "internal: run one case")
	dir := flag.String("dir", "", "internal: where a child writes")
	rows := flag.Int64("rows", 2_000_000, "rows of the benchmark table")
	runs := flag.Int("runs", 3, "interleaved runs per case; each figure is the median")
	out := flag.String("out", "bench-results.json", "the figures file to merge into")
	usage := flag.Int("usage", 0, "also compare license-usage with DuckDB SQL on a demo estate of this many customers (0: skip)")
	tallyBin := flag.String("tally", "bin/tally", "the tally binary the license-usage comparison runs")
	data := flag.String("data", "", "internal: the storage a duckdb-usage child reads")
	fixtures := flag.String("fixtures", "", "instead: write the files source's DuckDB fixtures into this directory (its make.sql)")
	cdr := flag.String("cdr", "", "also: turn bench -cdr's day in this directory into legs with DuckDB and print the ratio to tally's figure")
	templates := flag.Int64("templates", 0, "also: every template's Parquet of this many rows against DuckDB's zstd rewrite of it (0: skip)")
	flag.Parse()
	if *templates > 0 && *rows == 0 {
		work, err := os.MkdirTemp("", "tally-bench-templates-")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(work)
		sizes, err := benchTemplates(*templates, work)
		if err != nil {
			fail(err)
		}
		printTemplates(sizes)
		if err := benchfig.Merge(*out, map[string]any{"template_parquet": sizes}); err != nil {
			fail(err)
		}
		return
	}
	if *child == "duckdb-cdr" {
		if err := runCDRDuckDB(*dir); err != nil {
			fail(err)
		}
		return
	}
	if *cdr != "" && *rows == 0 {
		fig, err := benchCDR(*cdr, *out, *runs)
		if err != nil {
			fail(err)
		}
		if err := benchfig.Merge(*out, map[string]any{"duckdb_cdr": fig}); err != nil {
			fail(err)
		}
		return
	}
	if *fixtures != "" {
		if err := writeFixtures(*fixtures, *tallyBin); err != nil {
			fail(err)
		}
		return
	}
	if *child == "duckdb-usage" {
		if err := runUsageDuckDB(*data, *dir); err != nil {
			fail(err)
		}
		return
	}
	if *child != "" {
		if err := runCase(*child, *rows, *dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	work, err := os.MkdirTemp("", "tally-bench-duckdb-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(work)
	all := map[string][]Case{}
	for r := 1; r <= max(*runs, 1); r++ {
		for _, m := range modes {
			fmt.Fprintf(os.Stderr, "bench duckdb: %s, %d rows, run %d of %d…\n", m, *rows, r, *runs)
			c, err := child2(m, *rows, filepath.Join(work, m))
			if err != nil {
				fail(err)
			}
			all[m] = append(all[m], c)
		}
	}
	med := map[string]Case{}
	for m, cs := range all {
		slices.SortFunc(cs, func(a, b Case) int { return int((a.CPUSeconds - b.CPUSeconds) * 1e6) })
		med[m] = cs[len(cs)/2]
	}
	same, err := sameRows(filepath.Join(work, "tally-parquet", "out.parquet"), *rows)
	if err != nil {
		fail(err)
	}
	ratio := func(name string, a, b float64, target float64) Ratio {
		return Ratio{Name: name, Value: a / b, Target: target, Pass: a/b <= target}
	}
	ratios := []Ratio{
		ratio("report Parquet CPU, tally ÷ DuckDB (one core)", med["tally-parquet"].CPUSeconds, med["duckdb-parquet"].CPUSeconds, 1.0),
		ratio("report Parquet file size, tally ÷ DuckDB", float64(med["tally-parquet"].Bytes), float64(med["duckdb-parquet"].Bytes), 1.0),
		ratio("CSV + Parquet in one pass CPU, tally ÷ DuckDB's two COPYs", med["tally-both"].CPUSeconds, med["duckdb-both"].CPUSeconds, 0.8),
		ratio("CSV CPU, tally ÷ DuckDB", med["tally-csv"].CPUSeconds, med["duckdb-csv"].CPUSeconds, 1.0),
	}
	var usageFig map[string]any
	var usageSame string
	if *usage > 0 {
		tallyCPU, duckCPU, same, err := benchUsage(*tallyBin, *usage, *runs, work)
		if err != nil {
			fail(err)
		}
		ratios = append(ratios, ratio(fmt.Sprintf("license-usage CPU at %dK customers, tally ÷ DuckDB SQL (one thread)", *usage/1000), tallyCPU, duckCPU, 1.0))
		usageSame = same
		usageFig = map[string]any{"customers": *usage, "tally_cpu_seconds": tallyCPU, "duckdb_cpu_seconds": duckCPU, "same_rows": same == ""}
		fmt.Printf("license-usage at %d customers: tally %.2f CPU-s, DuckDB SQL %.2f CPU-s\n", *usage, tallyCPU, duckCPU)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\trows\tCPU s\tbytes\tpeak RSS MiB\t")
	for _, m := range modes {
		c := med[m]
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%d\t%.1f\t\n", m, c.Rows, c.CPUSeconds, c.Bytes, c.PeakRSSMiB)
	}
	tw.Flush()
	for _, r := range ratios {
		fmt.Printf("%s: %.2f× (target ≤ %.1f×) %s\n", r.Name, r.Value, r.Target, benchfig.Mark(r.Pass))
	}
	fmt.Printf("DuckDB reads tally's Parquet as the same rows and types as its own query: %s\n", benchfig.Mark(same == ""))
	if same != "" {
		fmt.Println("  " + same)
	}
	if usageFig != nil {
		fmt.Printf("DuckDB's SQL computes the same four usage tables as tally's license-usage: %s\n", benchfig.Mark(usageSame == ""))
		if usageSame != "" {
			fmt.Println("  " + usageSame)
		}
	}
	duck := map[string]any{"cases": med, "ratios": ratios, "same_rows": same == "", "license_usage": usageFig, "measured": clock.Real{}.Now().UTC().Format(time.RFC3339)}
	set := map[string]any{"duckdb": duck}
	if *cdr != "" {
		fig, err := benchCDR(*cdr, *out, 1)
		if err != nil {
			fail(err)
		}
		set["duckdb_cdr"] = fig
	}
	if *templates > 0 {
		sizes, err := benchTemplates(*templates, work)
		if err != nil {
			fail(err)
		}
		printTemplates(sizes)
		set["template_parquet"] = sizes
	}
	if err := benchfig.Merge(*out, set); err != nil {
		fail(err)
	}
	fmt.Printf("figures merged into %s\n", *out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench duckdb:", err)
	os.Exit(1)
}

// child2 runs one case in a child process and reads its rusage.
func child2(mode string, rows int64, dir string) (Case, error) {
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Case{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return Case{}, err
	}
	cmd := exec.Command(self, "-child", mode, "-rows", strconv.FormatInt(rows, 10), "-dir", dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return Case{}, fmt.Errorf("%s: %w", mode, err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	c := Case{Mode: mode, Rows: rows, CPUSeconds: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(), PeakRSSMiB: float64(ru.Maxrss) / 1024}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			c.Bytes += fi.Size()
		}
	}
	return c, nil
}

// runCase writes the table one way into dir.
func runCase(mode string, rows int64, dir string) error {
	if engine, format, _ := strings.Cut(mode, "-"); engine == "duckdb" {
		db, err := sql.Open("duckdb", "")
		if err != nil {
			return err
		}
		defer db.Close()
		if _, err := db.Exec("SET threads = 1; SET preserve_insertion_order = true"); err != nil {
			return err
		}
		q := benchrows.SQL(rows)
		if format == "parquet" || format == "both" {
			if _, err := db.Exec(fmt.Sprintf("COPY (%s) TO '%s' (FORMAT parquet, COMPRESSION zstd)", q, filepath.Join(dir, "out.parquet"))); err != nil {
				return err
			}
		}
		if format == "csv" || format == "both" {
			if _, err := db.Exec(fmt.Sprintf("COPY (%s) TO '%s' (FORMAT csv, HEADER)", q, filepath.Join(dir, "out.csv"))); err != nil {
				return err
			}
		}
		return nil
	}
	var o report.Outputs
	var files []*os.File
	open := func(name string) (*os.File, error) {
		f, err := os.Create(filepath.Join(dir, name))
		files = append(files, f)
		return f, err
	}
	var err error
	if mode == "tally-parquet" || mode == "tally-both" {
		if o.Parquet, err = open("out.parquet"); err != nil {
			return err
		}
	}
	if mode == "tally-csv" || mode == "tally-both" {
		if o.CSV, err = open("out.csv"); err != nil {
			return err
		}
	}
	w, err := report.New(benchrows.Columns, o)
	if err != nil {
		return err
	}
	if err := benchrows.Generate(rows, w.Write); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	for _, f := range files {
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// sameRows has DuckDB read tally's Parquet and compare it, row for row and
// type for type, with its own query of the same table: "" when they agree.
func sameRows(path string, rows int64) (string, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return "", err
	}
	defer db.Close()
	typesOf := func(q string) (string, error) {
		r, err := db.Query("DESCRIBE " + q)
		if err != nil {
			return "", err
		}
		defer r.Close()
		cols, _ := r.Columns()
		var out []string
		for r.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			r.Scan(ptrs...)
			out = append(out, fmt.Sprint(vals[0], " ", vals[1]))
		}
		return strings.Join(out, ", "), r.Err()
	}
	tallyTypes, err := typesOf(fmt.Sprintf("SELECT * FROM '%s'", path))
	if err != nil {
		return "", err
	}
	wantTypes, err := typesOf(benchrows.SQL(rows))
	if err != nil {
		return "", err
	}
	if tallyTypes != wantTypes {
		return "types differ: tally " + tallyTypes + "; DuckDB " + wantTypes, nil
	}
	var diff int64
	q := fmt.Sprintf("SELECT count(*) FROM ((SELECT * FROM '%s' EXCEPT ALL (%s)) UNION ALL ((%s) EXCEPT ALL SELECT * FROM '%s'))", path, benchrows.SQL(rows), benchrows.SQL(rows), path)
	if err := db.QueryRow(q).Scan(&diff); err != nil {
		return "", err
	}
	if diff != 0 {
		return fmt.Sprintf("%d rows differ", diff), nil
	}
	return "", nil
}
