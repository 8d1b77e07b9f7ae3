package serve

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"tally/clock"
	"tally/jobs"
	"tally/metrics"
	"tally/model"
	"tally/periods"
	"tally/runner"
	"tally/storage"
	"tally/storage/local"
)

// fakeJob publishes one file per region; it can block.
type fakeJob struct {
	name     string
	cadence  periods.Cadence
	schedule string
	block    chan struct{}
	calls    atomic.Int32
}

func (j *fakeJob) Name() string                             { return j.name }
func (j *fakeJob) Cadence() periods.Cadence                 { return j.cadence }
func (j *fakeJob) Schedule() string                         { return j.schedule }
func (j *fakeJob) Needs(periods.Period) []runner.Dep        { return nil }
func (j *fakeJob) Writes(periods.Period, []string) []string { return nil }
func (j *fakeJob) Run(ctx context.Context, rc *runner.RunContext) error {
	j.calls.Add(1)
	if j.block != nil {
		select {
		case <-j.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, r := range rc.Regions {
		if err := rc.Publish(ctx, r, fmt.Sprintf("out/%s/region=%s/%s", j.name, r, rc.Period.ID()), func(w io.Writer) (int64, error) {
			_, err := io.WriteString(w, "x")
			return 1, err
		}); err != nil {
			return err
		}
	}
	return nil
}

func scheduler(t *testing.T, now time.Time, catchUp int, js ...runner.Job) (*Scheduler, storage.Store) {
	t.Helper()
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(now)
	r := runner.New(js, storage.Single(store, model.Regions), clk, runner.DefaultConfig(), runner.Holder{Host: "t", PID: 1}, zerolog.Nop())
	s := &Scheduler{Runner: r, Registry: jobs.NewRegistry(nil, js...), Clock: clk, CatchUp: catchUp, Grace: time.Second, Log: zerolog.Nop()}
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	return s, store
}

func ts(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }

func TestServeFiresEachJobAtItsUTCScheduleSundayMidnightForAnalytics(t *testing.T) {
	real := []runner.Job{&jobs.Sync{}, &jobs.Usage{}, &jobs.WeeklyAnalytics{}, &jobs.Reports{Every: periods.Daily},
		&jobs.Reports{Every: periods.Weekly}, &jobs.Reports{Every: periods.Monthly}}
	s, _ := scheduler(t, ts("2026-11-21T23:00:00Z"), 0, real...)
	var got []string
	for _, f := range s.Due(ts("2026-11-21T23:00:00Z"), ts("2026-11-22T00:30:00Z")) {
		got = append(got, fmt.Sprintf("%s@%s→%s", f.Job, f.At.Format("Mon 15:04"), f.Period.ID()))
	}
	want := "sync-clusters@Sun 00:00→2026-11-21 analytics@Sun 00:00→2026-11-15 license-usage@Sun 00:15→2026-11-21"
	if strings.Join(got, " ") != want {
		t.Fatalf("firings:\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	var weekly []string
	for _, f := range s.Due(ts("2026-11-22T00:30:00Z"), ts("2026-12-01T02:00:00Z")) {
		if f.Job == "reports-weekly" || f.Job == "reports-monthly" || f.Job == "analytics" {
			weekly = append(weekly, fmt.Sprintf("%s@%s→%s", f.Job, f.At.Format("2006-01-02T15:04"), f.Period.ID()))
		}
	}
	if got := strings.Join(weekly, " "); got != "reports-weekly@2026-11-22T01:00→2026-11-15 analytics@2026-11-29T00:00→2026-11-22 reports-weekly@2026-11-29T01:00→2026-11-22 reports-monthly@2026-12-01T01:00→2026-11" {
		t.Fatalf("weekly and monthly firings: %s", got)
	}
}

func TestABadScheduleIsAStartupErrorNamingTheJob(t *testing.T) {
	j := &fakeJob{name: "nightly", cadence: periods.Daily, schedule: "0 25 * * *"}
	r := runner.New([]runner.Job{j}, storage.Single(nil, model.Regions), clock.Real{}, runner.DefaultConfig(), runner.Holder{}, zerolog.Nop())
	s := &Scheduler{Runner: r, Registry: jobs.NewRegistry(nil, j)}
	if err := s.Init(); err == nil || !strings.Contains(err.Error(), `job nightly: bad cron schedule "0 25 * * *"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestCatchUpRunsExactlyTheMissedPeriodsWithinTheBoundOldestFirst(t *testing.T) {
	j := &fakeJob{name: "daily", cadence: periods.Daily, schedule: "0 0 * * *"}
	s, _ := scheduler(t, ts("2026-11-22T00:20:00Z"), 3, j)
	ctx := context.Background()
	// Before the downtime: complete up to 2026-11-18; 2026-11-20 ran too.
	for _, d := range []string{"2026-11-17", "2026-11-18", "2026-11-20"} {
		p, _ := periods.Parse(periods.Daily, d)
		if _, err := s.Runner.Run(ctx, "daily", p, runner.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	missed, err := s.Missed(ctx, s.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range missed {
		got = append(got, f.Period.ID())
	}
	// The bound is the 3 latest ended days (19, 20, 21); 20 is complete.
	if strings.Join(got, " ") != "2026-11-19 2026-11-21" {
		t.Fatalf("catch-up periods %v, want 2026-11-19 2026-11-21 (oldest first, within the bound)", got)
	}
	for _, f := range missed {
		s.Fire(ctx, f)
	}
	s.Wait()
	if n := j.calls.Load(); n != 5 {
		t.Fatalf("job ran %d times, want 3 before + 2 caught up", n)
	}
}

func TestNeverASecondRunOfAJobPeriodThatIsStillRunning(t *testing.T) {
	j := &fakeJob{name: "daily", cadence: periods.Daily, schedule: "0 0 * * *", block: make(chan struct{})}
	s, _ := scheduler(t, ts("2026-11-22T00:00:00Z"), 0, j)
	f := s.Due(ts("2026-11-21T23:00:00Z"), ts("2026-11-22T00:00:00Z"))[0]
	if !s.Fire(context.Background(), f) {
		t.Fatal("the first firing did not start")
	}
	if s.Fire(context.Background(), f) {
		t.Fatal("a second run of the same job and period started while the first runs")
	}
	close(j.block)
	s.Wait()
	if n := j.calls.Load(); n != 1 {
		t.Fatalf("job ran %d times", n)
	}
}

func TestMetricsShowTheFreshnessGaugeAfterARun(t *testing.T) {
	j := &fakeJob{name: "daily", cadence: periods.Daily, schedule: "0 0 * * *"}
	s, store := scheduler(t, ts("2026-11-22T00:00:00Z"), 0, j)
	m := metrics.New()
	end := func(rec *runner.Record) (time.Time, bool) {
		p, err := periods.Parse(periods.Daily, rec.Period)
		return p.End(), err == nil
	}
	s.Done = func(job string, res *runner.Result, err error) { m.Observe(job, res.Status, res.Record, end) }
	s.Fire(context.Background(), s.Due(ts("2026-11-21T23:00:00Z"), ts("2026-11-22T00:00:00Z"))[0])
	s.Wait()
	srv := httptest.NewServer(s.Handler(store, promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The end of the period 2026-11-21, as Prometheus' text format writes it.
	end21 := strconv.FormatFloat(float64(ts("2026-11-22T00:00:00Z").Unix()), 'g', -1, 64)
	for _, want := range []string{`tally_period_last_success_timestamp_seconds{job="daily",region="EU"} ` + end21, `tally_runs_total{job="daily",status="succeeded"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("metrics lack %s:\n%s", want, body)
		}
	}
	// A fresh process rebuilds it from the ledger.
	recs, _ := s.Runner.Ledger().All(context.Background(), "")
	m2 := metrics.New()
	m2.FromLedger(recs, end)
	srv2 := httptest.NewServer(promhttp.HandlerFor(m2.Registry, promhttp.HandlerOpts{}))
	defer srv2.Close()
	resp, _ = srv2.Client().Get(srv2.URL)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `tally_period_last_success_timestamp_seconds{job="daily",region="US"} `+end21) {
		t.Fatalf("after a restart the gauge is not rebuilt from the ledger:\n%s", body)
	}
}

func TestCatchUpRunsMissedPeriodsOneAtATimeSoNoneWaitsOnItsOwnProcesssUpstream(t *testing.T) {
	up := &fakeJob{name: "analytics", cadence: periods.Weekly, schedule: "0 0 * * 0", block: make(chan struct{})}
	down := &fakeJob{name: "reports-weekly", cadence: periods.Weekly, schedule: "0 1 * * 0"}
	s, _ := scheduler(t, ts("2026-11-22T02:00:00Z"), 1, up, down)
	missed, err := s.Missed(context.Background(), s.Clock.Now())
	if err != nil || len(missed) != 2 {
		t.Fatalf("missed = %v, %v", missed, err)
	}
	done := make(chan struct{})
	go func() { s.catchUp(context.Background(), context.Background(), missed); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for up.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if down.calls.Load() != 0 {
		t.Fatal("the second missed firing started while the first was still running")
	}
	close(up.block)
	<-done
	if up.calls.Load() != 1 || down.calls.Load() != 1 {
		t.Fatalf("calls: %d, %d; want each once", up.calls.Load(), down.calls.Load())
	}
}

// waitingJob reports its input not delivered until delivered is set.
type waitingJob struct {
	fakeJob
	delivered atomic.Bool
}

func (j *waitingJob) Run(ctx context.Context, rc *runner.RunContext) error {
	if !j.delivered.Load() {
		j.calls.Add(1)
		return runner.Waiting(fmt.Errorf("no manifest yet"))
	}
	return j.fakeJob.Run(ctx, rc)
}

func TestAPeriodWaitingForItsDeliveryIsFoundAgainSoAPollCanRunIt(t *testing.T) {
	j := &waitingJob{fakeJob: fakeJob{name: "sync", cadence: periods.Daily, schedule: "0 0 * * *"}}
	s, _ := scheduler(t, ts("2026-11-22T00:05:00Z"), 1, j)
	f := s.Due(ts("2026-11-21T23:00:00Z"), ts("2026-11-22T00:00:00Z"))[0]
	res, err := s.Runner.Run(context.Background(), f.Job, f.Period, runner.Options{})
	if err != nil || res.Status != runner.StatusWaiting {
		t.Fatalf("first run: %v %v, want waiting and no error", res.Status, err)
	}
	waiting, err := s.Waiting(context.Background(), ts("2026-11-22T00:15:00Z"))
	if err != nil || len(waiting) != 1 || waiting[0].Period.ID() != "2026-11-21" {
		t.Fatalf("waiting = %v, %v; want the 21st", waiting, err)
	}
	j.delivered.Store(true)
	s.Fire(context.Background(), waiting[0])
	s.Wait()
	if rec, _ := s.Runner.Ledger().Latest(context.Background(), "sync", "2026-11-21"); rec == nil || rec.Status != runner.StatusSucceeded {
		t.Fatalf("after the delivery: %+v", rec)
	}
	if waiting, _ := s.Waiting(context.Background(), ts("2026-11-22T00:25:00Z")); len(waiting) != 0 {
		t.Fatalf("still waiting: %v", waiting)
	}
}
