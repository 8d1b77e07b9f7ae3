package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"tally/analytics"
	"tally/clock"
	"tally/console"
	"tally/jobs"
	"tally/model"
	"tally/periods"
	"tally/plan"
	"tally/runner"
	"tally/source/demo"
	"tally/storage"
	"tally/storage/local"
	"tally/subscriptions"
)

// ConsoleResult is the runs page's render time.
type ConsoleResult struct {
	Jobs, Periods int
	Requests      int
	MedianMS      float64 `json:"median_ms"`
	P90MS         float64 `json:"p90_ms"`
	TargetMS      float64 `json:"target_ms"`
	MeetsTarget   bool    `json:"meets_target"`
}

const consoleTargetMS = 100

// benchConsole fills a ledger with the six jobs' last 90 periods (outputs and
// emails like real runs'), then times GET /runs?n=90: the whole request, the
// ledger read from local disk, the plan and the HTML.
func benchConsole(requests int) (ConsoleResult, error) {
	dir, err := os.MkdirTemp("", "tally-bench-console-")
	if err != nil {
		return ConsoleResult{}, err
	}
	defer os.RemoveAll(dir)
	store, err := local.New(dir)
	if err != nil {
		return ConsoleResult{}, err
	}
	ctx := context.Background()
	src, _ := demo.New(demo.Options{Seed: 1, Scale: 20})
	ledger := &runner.Ledger{Store: store}
	catalog, _ := subscriptions.NewCatalog(nil)
	js := []runner.Job{&jobs.Sync{Source: src, Ledger: ledger}, &jobs.Usage{UnderThreshold: 0.5},
		&jobs.WeeklyAnalytics{Ledger: ledger, Thresholds: analytics.DefaultThresholds, LowBelow: 0.5}}
	for _, c := range []periods.Cadence{periods.Daily, periods.Weekly, periods.Monthly} {
		js = append(js, &jobs.Reports{Every: c, Catalog: catalog})
	}
	reg := jobs.NewRegistry(nil, js...)
	now := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	clk := clock.NewFake(now)
	stores := storage.Single(store, model.Regions)
	r := runner.New(reg.Jobs(), stores, clk, runner.DefaultConfig(), runner.Holder{Host: "bench", PID: 1}, zerolog.Nop())
	const back = 90
	for _, j := range r.Jobs() {
		p := periods.Latest(j.Cadence(), now)
		for i := 0; i < back; i++ {
			ended := p.End().Add(time.Hour)
			rec := &runner.Record{RunID: runner.RunID(j.Name(), p.ID(), 1), Job: j.Name(), Period: p.ID(), Attempt: 1, Regions: model.Regions,
				Trigger: "schedule", Status: runner.StatusSucceeded, StartedAt: p.End(), EndedAt: &ended, DurationMS: 3_600_000, Checksum: "c"}
			if i%17 == 5 {
				rec.Status, rec.Error = runner.StatusFailed, "source files: day was not delivered"
			}
			for _, region := range model.Regions {
				for k := 0; k < 10; k++ {
					rec.Outputs = append(rec.Outputs, runner.Output{Key: fmt.Sprintf("table%d/region=%s/day=%s/part-0.parquet", k, region, p.ID()), Region: region, Bytes: 123456, Rows: 1000, SHA256: "x"})
				}
			}
			if err := ledger.Write(ctx, rec); err != nil {
				return ConsoleResult{}, err
			}
			p = p.Prev()
		}
	}
	c := &console.Console{Runner: r, Registry: reg, Stores: stores, Clock: clk, Log: zerolog.Nop(),
		Plan: func(ctx context.Context, view []*runner.Record, now time.Time, back int) ([]plan.JobPlan, error) {
			p, _, err := plan.Compute(ctx, r, reg, view, nil, now, plan.Window{Back: back})
			return p, err
		}}
	if err := c.Init(); err != nil {
		return ConsoleResult{}, err
	}
	h := c.Handler(http.NotFoundHandler())
	var times []float64
	for i := 0; i < requests+3; i++ {
		w := httptest.NewRecorder()
		start := clock.Real{}.Now()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/runs?n=90", nil))
		el := clock.Real{}.Now().Sub(start)
		if w.Code != 200 {
			return ConsoleResult{}, fmt.Errorf("GET /runs: %d %s", w.Code, w.Body.String())
		}
		if i >= 3 { // the first requests warm the caches
			times = append(times, float64(el.Microseconds())/1000)
		}
	}
	slices.Sort(times)
	res := ConsoleResult{Jobs: len(r.Jobs()), Periods: back, Requests: requests, MedianMS: times[len(times)/2], P90MS: times[len(times)*9/10], TargetMS: consoleTargetMS}
	res.MeetsTarget = res.MedianMS < consoleTargetMS
	return res, nil
}
