// Command bench measures the report writers (SPEC §10) — or, with -cdr, the
// files source reading a day of CUCM call records (flat memory from 50K to 5M): rows per CPU-second for
// CSV, Parquet (zstd) and both in one pass, and peak RSS, on a 15-column table at
// several sizes. Each case runs in a child process so its CPU time and peak RSS are
// its own; each case runs -runs times (3) and reports the medians, because peak RSS
// varies by a few MiB with GC timing. It prints each figure beside its target and
// writes them to a JSON file.
//
//	go run ./internal/bench -rows 5000000,20000000 -out bench-results.json
package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"tally/clock"
	"tally/internal/benchfig"
	"tally/internal/benchrows"
	"tally/report"
)

// Targets from SPEC §10, and the call-record reader's (issue 24: CDR records
// per CPU-second, each with its CMRs, on real-width files).
var targets = map[string]float64{"csv": 600_000, "parquet": 500_000, "both": 300_000, "cdr": 250_000}

const rssTargetMiB = 100

// Result is one case's figures.
type Result struct {
	Mode          string  `json:"mode"`
	Rows          int64   `json:"rows"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	WallSeconds   float64 `json:"wall_seconds"`
	RowsPerCPUSec float64 `json:"rows_per_cpu_second"`
	Target        float64 `json:"target_rows_per_cpu_second"`
	MeetsTarget   bool    `json:"meets_target"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
	OutputBytes   int64   `json:"output_bytes"`
	Runs          int     `json:"runs"`
}

func main() {
	child := flag.String("child", "", "internal: run one case (csv, parquet, both)")
	rowsFlag := flag.String("rows", "5000000,20000000", "table sizes, comma-separated")
	out := flag.String("out", "bench-results.json", "where to write the figures")
	runs := flag.Int("runs", 3, "runs per case; each figure is the median (peak RSS varies with GC timing)")
	cdr := flag.String("cdr", "", "instead: read call-record days of these many CUCM CDR records (e.g. 50000,5000000) through the files source")
	cdrDir := flag.String("cdr-dir", "", "where -cdr writes (and keeps) each day's CDR and CMR files, under <records>/ (default: a temporary directory)")
	childDir := flag.String("dir", "", "internal: the call-record day a cdr child reads")
	cpuProfile := flag.String("cpu-profile", "", "with -child: write the case's CPU profile to this file (go tool pprof reads it)")
	xlsx := flag.String("xlsx", "", "also: the XLSX writer at these many rows (e.g. 1000000)")
	consoleReqs := flag.Int("console", 0, "also: time this many GET /runs of the console over 6 jobs × 90 periods")
	chain := flag.String("chain", "", "instead: the daily chain at these many customers (e.g. 1000,10000,100000), with the tally binary -tally")
	tallyBin := flag.String("tally", "bin/tally", "the tally binary -chain runs")
	webhook := flag.String("webhook", "", "instead: a day of Webex CDR webhook deliveries for these many organisations (e.g. 100,1000), received by tally serve --receive-only and synced, with the tally binary -tally")
	reshape := flag.String("reshape", "", "instead: IN,OUT,DAY: write landing zone IN's day into OUT with every file's rows shuffled and split in -parts files")
	parts := flag.Int("parts", 4, "files per entity and region -reshape writes")
	flag.Parse()
	if *reshape != "" {
		if err := reshapeLanding(*reshape, *parts); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *webhook != "" {
		var scales []int
		for _, s := range strings.Split(*webhook, ",") {
			n, err := strconv.Atoi(s)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bad -webhook %q\n", s)
				os.Exit(2)
			}
			scales = append(scales, n)
		}
		bin, _ := filepath.Abs(*tallyBin)
		res, err := benchWebhook(bin, scales)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := benchfig.Merge(*out, map[string]any{"webhook": res}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("figures merged into %s\n", *out)
		return
	}
	if *chain != "" {
		var scales []int
		for _, s := range strings.Split(*chain, ",") {
			n, err := strconv.Atoi(s)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bad -chain %q\n", s)
				os.Exit(2)
			}
			scales = append(scales, n)
		}
		bin, _ := filepath.Abs(*tallyBin)
		res, err := benchChain(bin, scales)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := benchfig.Merge(*out, map[string]any{"chain": res}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("figures merged into %s\n", *out)
		return
	}
	if *child != "" {
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err == nil {
				pprof.StartCPUProfile(f)
				defer pprof.StopCPUProfile()
			}
		}
		n, _ := strconv.ParseInt(*rowsFlag, 10, 64)
		write := write
		if *child == "cdr" {
			write = func(string, int64) (int64, error) { return readCDR(*childDir) }
		}
		written, err := write(*child, n)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(written)
		pprof.StopCPUProfile()
		return
	}
	modes := []string{"csv", "parquet", "both"}
	if *cdr != "" {
		modes, *rowsFlag = []string{"cdr"}, *cdr
		if *cdrDir == "" {
			d, err := os.MkdirTemp("", "tally-bench-cdr-")
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				os.Exit(1)
			}
			defer os.RemoveAll(d)
			*cdrDir = d
		}
	}
	var results []Result
	type sized struct {
		rows  string
		modes []string
	}
	sizes := []sized{}
	for _, rs := range strings.Split(*rowsFlag, ",") {
		sizes = append(sizes, sized{rs, modes})
	}
	if *xlsx != "" {
		for _, rs := range strings.Split(*xlsx, ",") {
			sizes = append(sizes, sized{rs, []string{"xlsx"}})
		}
	}
	for _, sz := range sizes {
		n, err := strconv.ParseInt(sz.rows, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bad row count %q\n", sz.rows)
			os.Exit(2)
		}
		for _, mode := range sz.modes {
			dir := ""
			if mode == "cdr" {
				dir = filepath.Join(*cdrDir, sz.rows)
				fmt.Fprintf(os.Stderr, "bench: writing a day of %d CDR records and their CMRs into %s (not measured)…\n", n, dir)
				if err := writeCDRDay(dir, n); err != nil {
					fmt.Fprintln(os.Stderr, "bench:", err)
					os.Exit(1)
				}
			}
			var rs []Result
			for i := range max(*runs, 1) {
				fmt.Fprintf(os.Stderr, "bench: %s, %d rows, run %d of %d…\n", mode, n, i+1, max(*runs, 1))
				r, err := runChild(mode, n, dir)
				if err != nil {
					fmt.Fprintln(os.Stderr, "bench:", err)
					os.Exit(1)
				}
				rs = append(rs, r)
			}
			results = append(results, median(rs))
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "writer\trows\tCPU s\trows/CPU-s\ttarget\tpeak RSS MiB\ttarget\t")
	for _, r := range results {
		if r.Mode == "cdr" { // the target is the largest day's (a small one is mostly the process starting)
			target := "-"
			if r.Rows == largestRows(results, "cdr") {
				target = fmt.Sprintf("≥ %.0f %s", r.Target, benchfig.Mark(r.MeetsTarget))
			}
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t%s\t%.1f\t-\t\n", r.Mode, r.Rows, r.CPUSeconds, r.RowsPerCPUSec, target, r.PeakRSSMiB)
			continue
		}
		if r.Mode == "xlsx" { // no rows/CPU-s target: xlsx is reported
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t-\t%.1f\t-\t\n", r.Mode, r.Rows, r.CPUSeconds, r.RowsPerCPUSec, r.PeakRSSMiB)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t≥ %.0f %s\t%.1f\t≤ %d %s\t\n", r.Mode, r.Rows, r.CPUSeconds, r.RowsPerCPUSec, r.Target, benchfig.Mark(r.MeetsTarget),
			r.PeakRSSMiB, rssTargetMiB, benchfig.Mark(r.PeakRSSMiB <= rssTargetMiB))
	}
	tw.Flush()
	// Flat memory: the largest run's RSS within 10% of the smallest's, per writer.
	flat := map[string]any{}
	for _, mode := range modes {
		var small, large *Result
		for i := range results {
			r := &results[i]
			if r.Mode != mode {
				continue
			}
			if small == nil || r.Rows < small.Rows {
				small = r
			}
			if large == nil || r.Rows > large.Rows {
				large = r
			}
		}
		if small != nil && large != small {
			growth := large.PeakRSSMiB/small.PeakRSSMiB - 1
			fmt.Printf("%s: peak RSS at %d rows is %+.1f%% of %d rows (target within 10%%) %s\n", mode, large.Rows, growth*100, small.Rows, benchfig.Mark(growth <= 0.10))
			flat[mode] = map[string]any{"rss_growth": growth, "meets_target": growth <= 0.10}
		}
	}
	figures := map[string]any{"results": results, "rss_flat": flat, "machine": machine()}
	if *cdr != "" { // beside the writers' figures, not over them
		figures = map[string]any{"cdr": map[string]any{"results": results, "rss_flat": flat, "machine": machine()}}
	}
	if *consoleReqs > 0 {
		fmt.Fprintf(os.Stderr, "bench: console, GET /runs?n=90 %d times…\n", *consoleReqs)
		c, err := benchConsole(*consoleReqs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Printf("console: GET /runs?n=90 over %d jobs × %d periods: median %.1f ms, p90 %.1f ms (target < %.0f ms) %s\n",
			c.Jobs, c.Periods, c.MedianMS, c.P90MS, c.TargetMS, benchfig.Mark(c.MeetsTarget))
		figures["console"] = c
	}
	if err := benchfig.Merge(*out, figures); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("figures merged into %s\n", *out)
}

func largestRows(rs []Result, mode string) int64 {
	var n int64
	for _, r := range rs {
		if r.Mode == mode {
			n = max(n, r.Rows)
		}
	}
	return n
}

// median is the case's median run by CPU time, with the median peak RSS of all runs.
func median(rs []Result) Result {
	mid := func(f func(Result) float64) Result {
		slices.SortFunc(rs, func(a, b Result) int { return cmp.Compare(f(a), f(b)) })
		return rs[len(rs)/2]
	}
	r := mid(func(r Result) float64 { return r.CPUSeconds })
	r.PeakRSSMiB = mid(func(r Result) float64 { return r.PeakRSSMiB }).PeakRSSMiB
	r.Runs = len(rs)
	return r
}

func machine() string {
	host, _ := os.Hostname()
	b, _ := os.ReadFile("/proc/cpuinfo")
	model := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
			break
		}
	}
	return fmt.Sprintf("%s (%s)", host, model)
}

func runChild(mode string, n int64, dir string) (Result, error) {
	self, err := os.Executable()
	if err != nil {
		return Result{}, err
	}
	cmd := exec.Command(self, "-child", mode, "-rows", strconv.FormatInt(n, 10), "-dir", dir)
	cmd.Stderr = os.Stderr
	start := clock.Real{}.Now() // the bench measures real time
	outb, err := cmd.Output()
	wall := clock.Real{}.Now().Sub(start)
	if err != nil {
		return Result{}, fmt.Errorf("%s %d: %w", mode, n, err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	written, _ := strconv.ParseInt(strings.TrimSpace(string(outb)), 10, 64)
	r := Result{Mode: mode, Rows: n, CPUSeconds: cpu, WallSeconds: wall.Seconds(), RowsPerCPUSec: float64(n) / cpu,
		Target: targets[mode], PeakRSSMiB: float64(ru.Maxrss) / 1024, OutputBytes: written}
	r.MeetsTarget = r.RowsPerCPUSec >= r.Target
	return r, nil
}

// counter is an io.Writer that counts bytes: the writers' work is measured, not the disk's.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// write streams n generated rows through the chosen writer(s).
func write(mode string, n int64) (int64, error) {
	var csvOut, pqOut io.Writer
	var c1, c2 counter
	if mode == "csv" || mode == "both" {
		csvOut = &c1
	}
	if mode == "parquet" || mode == "both" {
		pqOut = &c2
	}
	var xlsxOut io.Writer
	var c3 counter
	if mode == "xlsx" {
		xlsxOut = &c3
	}
	w, err := report.New(benchrows.Columns, report.Outputs{CSV: csvOut, Parquet: pqOut, XLSX: xlsxOut, Sheet: "Bench", TmpDir: os.TempDir()})
	if err != nil {
		return 0, err
	}
	if err := benchrows.Generate(n, w.Write); err != nil {
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return c1.n + c2.n + c3.n, nil
}
