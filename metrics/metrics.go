// Package metrics owns tally's Prometheus metrics: runs by job and status,
// durations, rows written, emails, and the per-region freshness gauge, which is
// rebuilt from the ledger so it is right after a restart.
package metrics

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"tally/periods"
	"tally/runner"
)

// Metrics are tally's collectors, on their own registry.
type Metrics struct {
	Registry    *prometheus.Registry
	noJob       bool // pushed metrics carry the job as the Pushgateway's grouping key, not a label
	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	rows        *prometheus.CounterVec
	emails      *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	unconfirmed *prometheus.GaugeVec

	mu   sync.Mutex
	open map[string]string // unconfirmed claim key → job
}

// New registers the collectors, labelled by job (for /metrics).
func New() *Metrics { return build(false) }

// NewPush registers the collectors for one job's push to a Pushgateway: the job is
// the push's grouping key (the Pushgateway refuses a job label on the metrics), so
// with honor_labels Prometheus sees the same {job, region} series as /metrics.
func NewPush() *Metrics { return build(true) }

func build(noJob bool) *Metrics {
	labels := func(names ...string) []string {
		if noJob {
			return names
		}
		return append([]string{"job"}, names...)
	}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		noJob:    noJob,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_runs_total",
			Help: "Run attempts by job and final status (succeeded, failed, skipped, held)."}, labels("status")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tally_run_duration_seconds",
			Help: "Duration of run attempts.", Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)}, labels()),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_rows_written_total",
			Help: "Rows written to published outputs."}, labels()),
		emails: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_emails_total",
			Help: "Emails by status (sent, failed)."}, labels("status")),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tally_period_last_success_timestamp_seconds",
			Help: "End of the newest period completed, per job and region: alert when now minus this exceeds the period plus its schedule slack."},
			labels("region")),
	}
	m.unconfirmed = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tally_emails_unconfirmed",
		Help: "Email sends not confirmed: failed (tally resend sends them) or claimed by a process that stopped before it knew (the period's next run sends them), with the same Message-ID."},
		labels())
	m.Registry.MustRegister(m.runs, m.duration, m.rows, m.emails, m.lastSuccess, m.unconfirmed)
	return m
}

// lv is the label values: the job first, unless the job is the push's grouping key.
func (m *Metrics) lv(job string, rest ...string) []string {
	if m.noJob {
		return rest
	}
	return append([]string{job}, rest...)
}

// periodEnd is when a ledger record's period ended (its data is fresh up to then).
type periodEnd func(rec *runner.Record) (time.Time, bool)

// Observe counts a finished run.
func (m *Metrics) Observe(job string, status runner.Status, rec *runner.Record, end periodEnd) {
	m.runs.WithLabelValues(m.lv(job, string(status))...).Inc()
	if rec == nil || status == runner.StatusSkipped {
		return
	}
	if rec.EndedAt != nil {
		m.duration.WithLabelValues(m.lv(job)...).Observe(rec.EndedAt.Sub(rec.StartedAt).Seconds())
	}
	var rows int64
	for _, o := range rec.Outputs {
		rows += o.Rows
	}
	m.rows.WithLabelValues(m.lv(job)...).Add(float64(rows))
	for _, e := range rec.Emails {
		m.emails.WithLabelValues(m.lv(job, e.Status)...).Inc()
	}
	if rec.Status == runner.StatusSucceeded {
		m.fresh(rec, end)
	}
}

func (m *Metrics) fresh(rec *runner.Record, end periodEnd) {
	t, ok := end(rec)
	if !ok {
		return
	}
	for _, region := range rec.Regions {
		g := m.lastSuccess.WithLabelValues(m.lv(rec.Job, region)...)
		// A gauge only moves forward: an old period re-run (a backfill) is not fresher.
		if cur := gaugeValue(g); float64(t.Unix()) > cur {
			g.Set(float64(t.Unix()))
		}
	}
}

// FromLedger sets the freshness gauge from every succeeded attempt in the ledger.
func (m *Metrics) FromLedger(recs []*runner.Record, end periodEnd) {
	for _, rec := range recs {
		if rec.Status == runner.StatusSucceeded {
			m.fresh(rec, end)
		}
	}
}

func gaugeValue(g prometheus.Gauge) float64 {
	var out dto.Metric
	if err := g.Write(&out); err != nil || out.Gauge == nil {
		return 0
	}
	return out.Gauge.GetValue()
}

// expected exports, for every job, when its latest period that should be
// complete by now ended: from the start, so "expected − last success" alerts
// on a job that never succeeded, and never for a region without customers.
type expected struct {
	desc *prometheus.Desc
	jobs map[string]periods.Cadence
	now  func() time.Time
}

func (e *expected) Describe(ch chan<- *prometheus.Desc) { ch <- e.desc }

func (e *expected) Collect(ch chan<- prometheus.Metric) {
	now := e.now()
	for job, c := range e.jobs {
		ch <- prometheus.MustNewConstMetric(e.desc, prometheus.GaugeValue, float64(periods.Latest(c, now).End().Unix()), job)
	}
}

// Expect registers tally_period_expected_timestamp_seconds{job} for jobs (name →
// cadence), computed at each scrape from now.
func (m *Metrics) Expect(jobs map[string]periods.Cadence, now func() time.Time) {
	m.Registry.MustRegister(&expected{
		desc: prometheus.NewDesc("tally_period_expected_timestamp_seconds",
			"End of each job's latest period that should be complete by now: alert on this minus tally_period_last_success_timestamp_seconds.",
			[]string{"job"}, nil),
		jobs: jobs, now: now})
}

// Unconfirmed sets tally_emails_unconfirmed{job}: sends not confirmed,
// failed or claimed by a process that stopped before it knew. claims are every claim
// under scope, a claim key prefix ("" for all, "<job>/<period>/" after a run),
// so a finished run rereads only its own period's claims.
func (m *Metrics) Unconfirmed(scope string, claims []*runner.EmailClaim) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open == nil {
		m.open = map[string]string{}
	}
	for key := range m.open {
		if strings.HasPrefix(key, scope) {
			delete(m.open, key)
		}
	}
	for _, c := range runner.Unconfirmed(claims) {
		m.open[c.Key] = c.Job
	}
	m.unconfirmed.Reset()
	for _, job := range m.open {
		m.unconfirmed.WithLabelValues(m.lv(job)...).Inc()
	}
}
