package main

// The call-record reader against DuckDB: the CDR and CMR files of bench -cdr's
// day (CUCM's full field lists), read by DuckDB on one thread with read_csv,
// each CDR's two sides matched to the cluster's devices and joined to their
// CMRs on (callManagerId, callId, leg identifier) into legs, as tally's files
// source does. Tally's figure is the one bench -cdr wrote into the figures
// file; the ratio is printed beside it.

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// cdrLegsSQL makes the legs of the day in dir.
func cdrLegsSQL(dir string) string {
	files := filepath.Join(dir, "cdr", "cluster=CL1")
	return fmt.Sprintf(`
CREATE TABLE devices AS SELECT device_id, location_id, device_type FROM read_csv('%[1]s/devices/*/*/*.csv', header = true, all_varchar = true);
CREATE TABLE legs AS
WITH cdr AS (
  SELECT * FROM read_csv('%[2]s/cdr_*', header = true, all_varchar = true, quote = '"') WHERE cdrRecordType = '1'
), cmr AS (
  SELECT globalCallID_callManagerId AS cm, globalCallID_callId AS call, callIdentifier AS leg,
         jitter::DOUBLE AS jitter, latency::DOUBLE AS latency,
         100 * numberPacketsLost::DOUBLE / nullif(numberPacketsLost::DOUBLE + numberPacketsReceived::DOUBLE, 0) AS loss
  FROM read_csv('%[2]s/cmr_*', header = true, all_varchar = true, quote = '"') WHERE cdrRecordType = '2'
), sides AS (
  SELECT globalCallID_callManagerId AS cm, globalCallID_callId AS call, origLegCallIdentifier AS leg, origDeviceName AS device,
         destDeviceName AS other, dateTimeOrigination::BIGINT AS start, duration::BIGINT AS duration, 'outbound' AS direction FROM cdr
  UNION ALL
  SELECT globalCallID_callManagerId, globalCallID_callId, destLegCallIdentifier, destDeviceName,
         origDeviceName, dateTimeOrigination::BIGINT, duration::BIGINT, 'inbound' FROM cdr
)
SELECT 'CL1:' || s.cm || ':' || s.call || ':' || s.leg AS leg_id, d.location_id, d.device_type, to_timestamp(s.start) AS start_time,
       s.duration, CASE WHEN o.device_id IS NOT NULL THEN 'internal' ELSE s.direction END AS direction, c.jitter, c.latency, c.loss
FROM sides s JOIN devices d ON d.device_id = s.device
LEFT JOIN devices o ON o.device_id = s.other
LEFT JOIN cmr c ON c.cm = s.cm AND c.call = s.call AND c.leg = s.leg;
`, dir, files)
}

func runCDRDuckDB(dir string) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("SET threads = 1; SET preserve_insertion_order = false"); err != nil {
		return err
	}
	if _, err := db.Exec(cdrLegsSQL(dir)); err != nil {
		return err
	}
	var legs int64
	if err := db.QueryRow("SELECT count(*) FROM legs").Scan(&legs); err != nil {
		return err
	}
	fmt.Println(legs)
	return nil
}

// benchCDR times DuckDB turning the day in dir into legs (its median of
// runs), and prints it beside tally's figure for the same day from the
// figures file.
func benchCDR(dir, figures string, runs int) (map[string]any, error) {
	n, err := strconv.ParseInt(filepath.Base(dir), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("-cdr %s: want bench -cdr's directory of a day, named by its record count", dir)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var cpus []float64
	var rss float64
	var legs string
	for r := 1; r <= max(runs, 1); r++ {
		fmt.Fprintf(os.Stderr, "bench duckdb: call records of %s, run %d of %d…\n", dir, r, runs)
		cmd := exec.Command(self, "-child", "duckdb-cdr", "-dir", dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("duckdb-cdr: %w", err)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		cpus = append(cpus, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds())
		rss = max(rss, float64(ru.Maxrss)/1024)
		legs = string(out)
	}
	duck := median(cpus)
	fig := map[string]any{"cdr_records": n, "duckdb_cpu_seconds": duck, "duckdb_peak_rss_mib": rss, "duckdb_legs": legs}
	tallyCPU := tallyCDRFigure(figures, n)
	if tallyCPU > 0 {
		fig["tally_cpu_seconds"] = tallyCPU
		fig["ratio"] = tallyCPU / duck
		fmt.Printf("call records, %d CDRs with their CMRs (real-width files): tally %.1f CPU-s (%.0f records/CPU-s), DuckDB one thread %.1f CPU-s at %.0f MiB: tally ÷ DuckDB %.2f×\n",
			n, tallyCPU, float64(n)/tallyCPU, duck, rss, tallyCPU/duck)
	} else {
		fmt.Printf("call records, %d CDRs: DuckDB one thread %.1f CPU-s at %.0f MiB (no tally figure for this day in %s: run bench -cdr first)\n", n, duck, rss, figures)
	}
	return fig, nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

// tallyCDRFigure is bench -cdr's CPU-seconds for a day of n records.
func tallyCDRFigure(path string, n int64) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var f struct {
		Results []struct {
			Mode       string  `json:"mode"`
			Rows       int64   `json:"rows"`
			CPUSeconds float64 `json:"cpu_seconds"`
		} `json:"results"`
		CDR struct {
			Results []struct {
				Mode       string  `json:"mode"`
				Rows       int64   `json:"rows"`
				CPUSeconds float64 `json:"cpu_seconds"`
			} `json:"results"`
		} `json:"cdr"`
	}
	json.Unmarshal(b, &f)
	for _, r := range append(f.CDR.Results, f.Results...) { // bench -cdr's own key first
		if r.Mode == "cdr" && r.Rows == n {
			return r.CPUSeconds
		}
	}
	return 0
}
