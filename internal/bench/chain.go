package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"tally/clock"
	"tally/internal/benchfig"
	"tally/periods"
)

// JobFigure is one job's run at one scale: its own process's CPU and peak RSS.
type JobFigure struct {
	Customers  int     `json:"customers"`
	Job        string  `json:"job"`
	CPUSeconds float64 `json:"cpu_seconds"`
	WallSecs   float64 `json:"wall_seconds"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	Runs       int     `json:"runs,omitempty"` // the figures are the medians of this many runs
	// TmpPeakMiB is the most temporary disk the process held at once (its
	// open files under TMPDIR, unlinked ones included).
	TmpPeakMiB float64 `json:"tmp_peak_mib,omitempty"`
}

// ChainResult is the daily chain at each scale, with the goals of issue 15.
type ChainResult struct {
	Jobs   []JobFigure      `json:"jobs"`
	Goals  []map[string]any `json:"goals"`
	Day    string           `json:"day"`
	Binary string           `json:"binary"`
}

// chainDay is the day the chain runs (a fixed day, so figures compare): the
// Saturday that ends week chainWeek, whose analytics also need the Saturday
// before it.
const (
	chainDay        = "2026-11-21"
	chainDayBefore  = "2026-11-20"
	chainWeek       = "2026-11-15"
	chainWeekBefore = "2026-11-14"
	chainMonth      = "2026-10" // ended (November has not, on the bench's own clock)
)

// mid is the median of xs.
func mid(xs []float64) float64 {
	xs = slices.Sorted(slices.Values(xs))
	return xs[len(xs)/2]
}

// fillMonth makes every day of month a copy of day (a day outside it): each file under a day=<day> partition is hard-linked under the other
// days' partitions, and day's license-usage ledger record is written for them
// (with their period), so the monthly reports find a complete month.
func fillMonth(data, day, month string) error {
	m, err := periods.Parse(periods.Monthly, month)
	if err != nil {
		return err
	}
	var files []string
	err = filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, "/day="+day+"/") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	rec, err := os.ReadFile(filepath.Join(data, "_runs", "license-usage", day, "0001.json"))
	if err != nil {
		return err
	}
	for _, d := range m.Days() {
		for _, f := range files {
			to := strings.Replace(f, "/day="+day+"/", "/day="+d.ID()+"/", 1)
			if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
				return err
			}
			if err := os.Link(f, to); err != nil {
				return err
			}
		}
		ledger := filepath.Join(data, "_runs", "license-usage", d.ID())
		var r map[string]any
		if err := json.Unmarshal(rec, &r); err != nil {
			return err
		}
		r["period"], r["run_id"] = d.ID(), "license-usage/"+d.ID()+"/0001"
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(ledger, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(ledger, "0001.json"), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// demoSubscriptions are make demo's six subscriptions (one per template).
var demoSubscriptions = [][]string{
	{"demo-flex", "flex-license-usage", "daily"}, {"demo-di", "dedicated-instance-usage-by-cluster", "daily"},
	{"demo-calling", "calling-usage-detail", "daily"}, {"demo-devices", "devices", "daily"}, {"demo-numbers", "phone-numbers", "daily"},
}

// runJob runs tally with args in its own process and reads its rusage.
func runJob(bin, dir string, env []string, args ...string) (cpu, wall, rss float64, err error) {
	cpu, wall, rss, _, err = runJobTmp(bin, dir, env, "", args...)
	return cpu, wall, rss, err
}

// runJobTmp is runJob that also samples, every 100 ms, the temporary disk
// the process holds open under tmp (its TMPDIR; unlinked files included).
// Peak RSS is the child's own VmHWM, sampled every 10 ms until it exits: the
// rusage Maxrss of a child started by this process also counts this
// process's peak (Linux records the old memory map's high-water mark at exec,
// and Go starts children sharing its memory map).
func runJobTmp(bin, dir string, env []string, tmp string, args ...string) (cpu, wall, rss, tmpPeak float64, err error) {
	cmd := exec.Command(bin, append(args, "--log-level", "error")...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	if tmp != "" {
		cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	}
	cmd.Stderr = os.Stderr
	start := clock.Real{}.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("tally %v: %w", args, err)
	}
	done := make(chan struct{})
	type peaks struct {
		hwm float64
		tmp int64
	}
	result := make(chan peaks)
	go func() {
		var p peaks
		for tick := 0; ; tick++ {
			p.hwm = max(p.hwm, vmHWM(cmd.Process.Pid))
			if tmp != "" && tick%10 == 0 {
				p.tmp = max(p.tmp, openUnder(cmd.Process.Pid, tmp))
			}
			select {
			case <-done:
				result <- p
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	p := <-result
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("tally %v: %w", args, err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(), clock.Real{}.Now().Sub(start).Seconds(), p.hwm,
		float64(p.tmp) / (1 << 20), nil
}

// vmHWM is a live process's peak resident set in MiB (/proc/<pid>/status).
func vmHWM(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// openUnder is the bytes of the files pid holds open under dir.
func openUnder(pid int, dir string) int64 {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var n int64
	for _, fd := range fds {
		p := fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dir+"/") {
			if fi, err := os.Stat(p); err == nil {
				n += fi.Size()
			}
		}
	}
	return n
}

// measure runs a job runs times (the later ones with --force) and keeps the
// medians.
func measure(bin, dir string, env []string, job string, n, runs int, args ...string) (JobFigure, error) {
	return measureTmp(bin, dir, env, "", job, n, runs, true, args...)
}

// measureTmp is measure with the temporary disk sampled under tmp ("": not),
// and a run after the first forced only when force is set.
func measureTmp(bin, dir string, env []string, tmp, job string, n, runs int, force bool, args ...string) (JobFigure, error) {
	var cpus, walls, rsss, tmps []float64
	for run := 1; run <= runs; run++ {
		fmt.Fprintf(os.Stderr, "bench chain: %s at %d customers, run %d of %d…\n", job, n, run, runs)
		a := args
		if run > 1 && force {
			a = append(slices.Clone(args), "--force")
		}
		cpu, wall, rss, tmpPeak, err := runJobTmp(bin, dir, env, tmp, a...)
		if err != nil {
			return JobFigure{}, err
		}
		cpus, walls, rsss, tmps = append(cpus, cpu), append(walls, wall), append(rsss, rss), append(tmps, tmpPeak)
	}
	return JobFigure{Customers: n, Job: job, CPUSeconds: mid(cpus), WallSecs: mid(walls), PeakRSSMiB: mid(rsss), Runs: runs, TmpPeakMiB: mid(tmps)}, nil
}

// benchFiles is the files source's column at n customers: the demo day
// exported as a landing zone (measured), shuffled and split in 4 files per
// entity and region as a partner's tools would deliver it (not measured),
// then synced through source.type: files (measured, with its temporary disk).
func benchFiles(bin, dir string, env []string, n, runs int) ([]JobFigure, error) {
	landing, shuffled := filepath.Join(dir, "landing"), filepath.Join(dir, "shuffled")
	var out []JobFigure
	for run := 1; run <= runs; run++ { // each export writes a landing zone of its own
		os.RemoveAll(landing)
		jf, err := measureTmp(bin, dir, env, "", "source export", n, 1, false, "source", "export", "--period", chainDay, "--out", landing)
		if err != nil {
			return nil, err
		}
		out = append(out, jf)
	}
	export := out[0]
	if runs > 1 {
		export.CPUSeconds, export.WallSecs, export.PeakRSSMiB, export.Runs = mid(cpusOf(out)), mid(wallsOf(out)), mid(rssOf(out)), runs
	}
	fmt.Fprintf(os.Stderr, "bench chain: the exported day shuffled and split, 4 files per entity and region (not measured)…\n")
	// In a process of its own: a child's peak RSS counts the memory it shared
	// with the bench's process before exec, so the bench itself stays small.
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	reshape := exec.Command(self, "-reshape", landing+","+shuffled+","+chainDay, "-parts", "4")
	reshape.Stdout, reshape.Stderr = os.Stderr, os.Stderr
	if err := reshape.Run(); err != nil {
		return nil, fmt.Errorf("reshape: %w", err)
	}
	os.RemoveAll(landing)
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	filesEnv := append(slices.Clone(env), "TALLY_STORAGE_PATH="+filepath.Join(dir, "files-data"), "TALLY_SOURCE_TYPE=files", "TALLY_SOURCE_FILES_PATH="+shuffled)
	sync, err := measureTmp(bin, dir, filesEnv, tmp, "sync-clusters (files, shuffled)", n, runs, true, "run", "sync-clusters", "--period", chainDay)
	if err != nil {
		return nil, err
	}
	os.RemoveAll(shuffled)
	os.RemoveAll(filepath.Join(dir, "files-data"))
	return []JobFigure{export, sync}, nil
}

func cpusOf(fs []JobFigure) (out []float64) {
	for _, f := range fs {
		out = append(out, f.CPUSeconds)
	}
	return out
}

func wallsOf(fs []JobFigure) (out []float64) {
	for _, f := range fs {
		out = append(out, f.WallSecs)
	}
	return out
}

func rssOf(fs []JobFigure) (out []float64) {
	for _, f := range fs {
		out = append(out, f.PeakRSSMiB)
	}
	return out
}

// benchChain runs sync-clusters → license-usage → reports-daily (the six demo
// subscriptions but Customer Subscriptions, which is weekly) at each scale,
// each job in its own process, then a backfill with --parallel 1 and 2.
func benchChain(bin string, scales []int) (ChainResult, error) {
	res := ChainResult{Day: chainDay, Binary: bin}
	for _, n := range scales {
		dir, err := os.MkdirTemp("", "tally-bench-chain-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
		env := []string{"TALLY_STORAGE_PATH=" + filepath.Join(dir, "data"), fmt.Sprintf("TALLY_SOURCE_SCALE=%d", n), "TALLY_LOG_FORMAT=json"}
		for _, s := range demoSubscriptions {
			if _, _, _, err := runJob(bin, dir, env, "subscriptions", "add", "--id", s[0], "--partner", "P093374", "--template", s[1], "--cadence", s[2], "--to", "ops@example.com"); err != nil {
				return res, err
			}
		}
		// At 10K (the chain's CPU goal, and the base of the growth goals) each
		// job, analytics and reports-monthly too, runs 3 times (--force) and
		// its medians count: the machine is noisy.
		runs := 1
		if n == 10_000 {
			runs = 3
		}
		for _, job := range []string{"sync-clusters", "license-usage", "reports-daily"} {
			jf, err := measure(bin, dir, env, job, n, runs, "run", job, "--period", chainDay)
			if err != nil {
				return res, err
			}
			res.Jobs = append(res.Jobs, jf)
		}
		if n < 10_000 {
			continue
		}
		// The files source's column: the same day as a partner's landing zone.
		fs, err := benchFiles(bin, dir, env, n, runs)
		if err != nil {
			return res, err
		}
		res.Jobs = append(res.Jobs, fs...)
		// Analytics of the week that ends on chainDay: its other 6 days of usage
		// and the Saturday before are synced first (a backfill, not measured),
		// then analytics runs on its own (--no-deps).
		fmt.Fprintf(os.Stderr, "bench chain: the rest of week %s at %d customers (not measured)…\n", chainWeek, n)
		if _, _, _, err := runJob(bin, dir, env, "backfill", "license-usage", "--from", chainWeek, "--to", chainDayBefore, "--parallel", "2"); err != nil {
			return res, err
		}
		if _, _, _, err := runJob(bin, dir, env, "run", "sync-clusters", "--period", chainWeekBefore); err != nil {
			return res, err
		}
		fmt.Fprintf(os.Stderr, "bench chain: analytics at %d customers…\n", n)
		jf, err := measure(bin, dir, env, "analytics", n, runs, "run", "analytics", "--period", chainWeek, "--no-deps")
		if err != nil {
			return res, err
		}
		res.Jobs = append(res.Jobs, jf)

		// The month's reports read every day of the month: the bench fills the
		// month with the chain day's files and ledger record (hard links, not 30
		// syncs), adds the subscriptions with a monthly cadence and runs
		// reports-monthly on its own.
		fmt.Fprintf(os.Stderr, "bench chain: a month of %d customers (the chain day's files under every day), reports-monthly…\n", n)
		if err := fillMonth(filepath.Join(dir, "data"), chainDay, chainMonth); err != nil {
			return res, err
		}
		for _, s := range demoSubscriptions {
			if _, _, _, err := runJob(bin, dir, env, "subscriptions", "add", "--id", s[0]+"-monthly", "--partner", "P093374", "--template", s[1], "--cadence", "monthly", "--to", "ops@example.com"); err != nil {
				return res, err
			}
		}
		if jf, err = measure(bin, dir, env, "reports-monthly", n, runs, "run", "reports-monthly", "--period", chainMonth, "--no-deps"); err != nil {
			return res, err
		}
		res.Jobs = append(res.Jobs, jf)
	}
	fig := func(n int, job string) *JobFigure {
		for i := range res.Jobs {
			if res.Jobs[i].Customers == n && res.Jobs[i].Job == job {
				return &res.Jobs[i]
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "customers\tjob\tCPU s\twall s\tpeak RSS MiB\ttemp disk MiB\t")
	for _, j := range res.Jobs {
		tmp := "-"
		if j.TmpPeakMiB > 0 {
			tmp = fmt.Sprintf("%.0f", j.TmpPeakMiB)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.1f\t%.1f\t%.0f\t%s\t\n", j.Customers, j.Job, j.CPUSeconds, j.WallSecs, j.PeakRSSMiB, tmp)
	}
	tw.Flush()
	// goal prints a figure beside its target: at most target, or at least it.
	goal := func(name string, value, target float64, unit string, atLeast, pass bool) {
		cmp := "≤"
		if atLeast {
			cmp = "≥"
		}
		fmt.Printf("%s: %.2f%s (target %s %.2f%s) %s\n", name, value, unit, cmp, target, unit, benchfig.Mark(pass))
		res.Goals = append(res.Goals, map[string]any{"goal": name, "value": value, "target": target, "pass": pass})
	}
	largest, ten := scales[len(scales)-1], 10_000
	for _, job := range []string{"sync-clusters", "license-usage", "reports-daily", "analytics", "reports-monthly", "source export", "sync-clusters (files, shuffled)"} {
		big, mid := fig(largest, job), fig(ten, job)
		if big == nil {
			continue
		}
		goal(fmt.Sprintf("%s peak RSS at %d customers", job, largest), big.PeakRSSMiB, 256, " MiB", false, big.PeakRSSMiB <= 256)
		if mid != nil && largest != ten {
			growth := big.PeakRSSMiB/mid.PeakRSSMiB - 1
			goal(fmt.Sprintf("%s peak RSS growth %dK → %dK customers", job, ten/1000, largest/1000), growth*100, 15, "%", false, growth <= 0.15)
		}
	}
	for _, n := range scales {
		if demo, files := fig(n, "sync-clusters"), fig(n, "sync-clusters (files, shuffled)"); demo != nil && files != nil {
			ratio := files.CPUSeconds / demo.CPUSeconds
			goal(fmt.Sprintf("files-source sync CPU ÷ demo-source sync CPU at %dK customers", n/1000), ratio, 1.5, "×", false, ratio <= 1.5)
		}
	}
	if s, u, r := fig(ten, "sync-clusters"), fig(ten, "license-usage"), fig(ten, "reports-daily"); s != nil && u != nil && r != nil {
		total := s.CPUSeconds + u.CPUSeconds + r.CPUSeconds
		goal("daily chain CPU at 10K customers", total, 20, " s", false, total <= 20)
	}

	// Backfill: the same 6 days with --parallel 1 and 2, on fresh storage each,
	// 3 interleaved pairs; the median pair's figures count (the machine is noisy).
	type pair struct{ walls, cpus [2]float64 }
	var pairs []pair
	for run := 1; run <= 3; run++ {
		var p pair
		for i, par := range []string{"1", "2"} {
			dir, err := os.MkdirTemp("", "tally-bench-backfill-")
			if err != nil {
				return res, err
			}
			defer os.RemoveAll(dir)
			env := []string{"TALLY_STORAGE_PATH=" + filepath.Join(dir, "data"), "TALLY_SOURCE_SCALE=2000"}
			fmt.Fprintf(os.Stderr, "bench chain: backfill license-usage of 6 days, --parallel %s, run %d of 3…\n", par, run)
			cpu, wall, _, err := runJob(bin, dir, env, "backfill", "license-usage", "--from", "2026-11-16", "--to", "2026-11-21", "--parallel", par)
			if err != nil {
				return res, err
			}
			p.walls[i], p.cpus[i] = wall, cpu
		}
		pairs = append(pairs, p)
	}
	slices.SortFunc(pairs, func(a, b pair) int { return cmp.Compare(a.walls[0]/a.walls[1], b.walls[0]/b.walls[1]) })
	walls, cpus := pairs[1].walls, pairs[1].cpus
	speedup := walls[0] / walls[1]
	busy := cpus[0] / walls[0]
	fmt.Printf("backfill of 6 days at 2K customers (median of 3 pairs): --parallel 1 %.1f s, --parallel 2 %.1f s wall; --parallel 1 keeps %.2f cores busy\n", walls[0], walls[1], busy)
	goal("backfill --parallel 2 speed-up (or --parallel 1's busy cores)", max(speedup, busy), 1.6, "×", true, speedup >= 1.6 || busy >= 1.6)
	return res, nil
}
