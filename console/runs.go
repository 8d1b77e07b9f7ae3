package console

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"tally/model"
	"tally/periods"
	"tally/plan"
	"tally/runner"
	"tally/storage"
)

// States a period can be in, as the grid colours them.
var states = []string{"complete", "partial", "missing", "failed", "stale", "waiting", "running", "abandoned", "before-start"}

var periodFilterRE = regexp.MustCompile(`^[0-9A-Za-z-]{0,16}$`)

// cell is one job's period in the grid.
type cell struct {
	Period, State, Detail, RunID string
	Attempts                     int
	Duration                     string
	Rows                         int64 // rows its latest attempt wrote
	Dim                          bool  // filtered out by status
}

type freshness struct {
	Region, Period, Age string
	Late                bool
}

type gridRow struct {
	Job, Cadence, Schedule string
	Next                   []time.Time
	Cells                  []cell
	Axis                   []string // under each cell: its date every few periods, else ""
	Fresh                  []freshness
	Gaps                   int
}

// runs is the grid: a row per job, its last n periods oldest first, coloured
// by state, with attempts, durations, gaps and freshness per region.
func (c *Console) runs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	job, status, period := q.Get("job"), q.Get("status"), q.Get("period")
	n := 30
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 400 {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("n=%q: want a number of periods from 1 to 400", s))
			return
		}
		n = v
	}
	if job != "" {
		if _, err := c.Runner.Job(job); err != nil {
			c.fail(w, r, http.StatusBadRequest, err)
			return
		}
	}
	if status != "" && !slices.Contains(states, status) {
		c.fail(w, r, http.StatusBadRequest, fmt.Errorf("status=%q: want one of %v", status, states))
		return
	}
	if !periodFilterRE.MatchString(period) {
		c.fail(w, r, http.StatusBadRequest, fmt.Errorf("period=%q: want the start of a period id, like 2026-11 or 2026-W4", period))
		return
	}
	now := c.Clock.Now()
	view, err := plan.View(r.Context(), c.ledger, c.Clock, "")
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	plans, err := c.Plan(r.Context(), view, now, n)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	rows, matches := grid(plans, view, c.Runner, now, job, status, period)
	c.render(w, r, http.StatusOK, "runs.html", map[string]any{
		"Rows": rows, "Matches": matches, "Jobs": c.Runner.Jobs(), "States": states,
		"Job": job, "Status": status, "Period": period, "N": n, "Actions": c.actions(r), "Started": q.Get("started") != "",
	})
}

// grid builds the rows (and the cells matching a status filter, newest first).
func grid(plans []plan.JobPlan, view []*runner.Record, rn *runner.Runner, now time.Time, job, status, period string) ([]gridRow, []cell) {
	type key struct{ job, period string }
	attempts := map[key]int{}
	latestOK := map[string]map[string]string{} // job → region → latest succeeded period
	for _, rec := range view {
		attempts[key{rec.Job, rec.Period}]++
		if rec.Status != runner.StatusSucceeded {
			continue
		}
		if latestOK[rec.Job] == nil {
			latestOK[rec.Job] = map[string]string{}
		}
		for _, region := range rec.Regions {
			if rec.Period > latestOK[rec.Job][region] {
				latestOK[rec.Job][region] = rec.Period
			}
		}
	}
	durations := map[string]string{} // run id → duration
	rows := map[string]int64{}       // run id → rows written
	for _, rec := range view {
		for _, n := range rec.Rows {
			rows[rec.RunID] += n
		}
		if rec.DurationMS > 0 {
			durations[rec.RunID] = (time.Duration(rec.DurationMS) * time.Millisecond).Round(time.Millisecond).String()
		} else if rec.EndedAt != nil {
			durations[rec.RunID] = rec.EndedAt.Sub(rec.StartedAt).Round(time.Millisecond).String()
		}
	}
	var out []gridRow
	var matches []cell
	for _, p := range plans {
		if job != "" && p.Job != job {
			continue
		}
		j, err := rn.Job(p.Job)
		if err != nil {
			continue
		}
		row := gridRow{Job: p.Job, Cadence: string(j.Cadence()), Schedule: p.Schedule, Next: p.NextFirings}
		for _, ps := range p.Periods {
			if period != "" && !hasPrefix(ps.Period, period) {
				continue
			}
			c := cell{Period: ps.Period, State: ps.State, Detail: ps.Detail, RunID: ps.RunID,
				Attempts: attempts[key{p.Job, ps.Period}], Duration: durations[ps.RunID], Rows: rows[ps.RunID]}
			if ps.Gap() {
				row.Gaps++
			}
			if status != "" {
				c.Dim = ps.State != status
				if !c.Dim {
					matches = append(matches, withJob(c, p.Job))
				}
			}
			row.Cells = append(row.Cells, c)
		}
		row.Axis = axis(row.Cells, j.Cadence())
		regions := make([]string, 0, len(latestOK[p.Job]))
		for region := range latestOK[p.Job] {
			regions = append(regions, region)
		}
		sort.Strings(regions)
		for _, region := range regions {
			f := freshness{Region: region, Period: latestOK[p.Job][region]}
			if pp, err := periods.Parse(j.Cadence(), f.Period); err == nil {
				age := now.Sub(pp.End())
				f.Age = roundAge(age)
				f.Late = age > 2*pp.End().Sub(pp.Start) // more than a period behind
			}
			row.Fresh = append(row.Fresh, f)
		}
		out = append(out, row)
	}
	sort.SliceStable(matches, func(i, j int) bool { return matches[i].Period > matches[j].Period })
	return out, matches
}

// axis labels the grid's cells with their dates, every week of days, every
// 4 weeks, every quarter of months, from the oldest.
func axis(cells []cell, c periods.Cadence) []string {
	every, layout := 7, "Jan 2"
	switch c {
	case periods.Weekly:
		every = 4
	case periods.Monthly:
		every, layout = 3, "Jan 2006"
	}
	labels := make([]string, len(cells))
	for i, cl := range cells {
		if i%every != 0 {
			continue
		}
		if p, err := periods.Parse(c, cl.Period); err == nil {
			labels[i] = p.Start.Format(layout)
		}
	}
	return labels
}

func withJob(c cell, job string) cell {
	c.Detail = job + ": " + c.Detail
	if c.RunID == "" {
		c.RunID = job + "/" + c.Period
	}
	return c
}

func hasPrefix(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }

// roundAge is an age as "3h", "2d 4h".
func roundAge(d time.Duration) string {
	if d < 0 {
		return "0m"
	}
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

// run is one job period: every attempt's ledger record, its outputs to
// download, the upstream runs it read and the downstream runs that read it,
// and (for an operator) a re-run.
func (c *Console) run(w http.ResponseWriter, r *http.Request) {
	jobName, id := r.PathValue("job"), r.PathValue("period")
	j, err := c.Runner.Job(jobName)
	if err != nil {
		c.fail(w, r, http.StatusNotFound, err)
		return
	}
	p, err := periods.Parse(j.Cadence(), id)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	view, err := plan.View(r.Context(), c.ledger, c.Clock, "")
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	var attempts []*runner.Record
	latest := map[string]*runner.Record{} // job/period → latest attempt
	for _, rec := range view {
		latest[rec.Job+"/"+rec.Period] = rec
		if rec.Job == jobName && rec.Period == p.ID() {
			attempts = append(attempts, rec)
		}
	}
	sort.Slice(attempts, func(a, b int) bool { return attempts[a].Attempt > attempts[b].Attempt })
	// Downstream: the latest attempts of the periods that read this one.
	var downstream []*runner.Record
	for _, rec := range latest {
		for _, in := range rec.Inputs {
			if in.Job == jobName && in.Period == p.ID() {
				downstream = append(downstream, rec)
				break
			}
		}
	}
	sort.Slice(downstream, func(a, b int) bool {
		if downstream[a].Job != downstream[b].Job {
			return downstream[a].Job < downstream[b].Job
		}
		return downstream[a].Period < downstream[b].Period
	})
	ended := periods.Ended(p, c.Clock.Now()) == nil
	c.render(w, r, http.StatusOK, "run.html", map[string]any{"Title": jobName + " " + p.ID(), "Job": jobName, "Period": p.ID(), "Start": p.Start, "End": p.End(),
		"Attempts": attempts, "Downstream": downstream, "Actions": map[bool]*actionView{true: c.actions(r)}[ended], "Started": r.URL.Query().Get("started") != ""})
}

// download is where a run's output is downloaded from the console ("": it
// is not a region's data file).
func download(o runner.Output) string {
	if !servable(o.Region, o.Key) {
		return ""
	}
	return "/files/" + url.PathEscape(o.Region) + "/" + (&url.URL{Path: o.Key}).EscapedPath()
}

// servable reports whether key is one of region's data files, which the
// console serves: its tables, quarantine and reports, never the ledger,
// leases, the outbox or secrets.
func servable(region, key string) bool {
	if !model.ValidRegion(region) || storage.ValidateKey(key) != nil {
		return false
	}
	if strings.HasPrefix(key, "reports/region="+region+"/") {
		return true
	}
	for _, prefix := range []string{"inventory/", "calls/", "usage/", "analytics/", "quarantine/"} {
		if strings.HasPrefix(key, prefix) && strings.Contains(key, "/region="+region+"/") {
			return true
		}
	}
	return false
}
