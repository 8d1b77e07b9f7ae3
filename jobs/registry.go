package jobs

import (
	"time"

	"github.com/robfig/cron/v3"

	"tally/periods"
	"tally/runner"
)

// Registry is the set of jobs with their effective schedules.
type Registry struct {
	jobs      []runner.Job
	schedules map[string]string
}

// NewRegistry registers jobs; overrides replace default schedules by job name.
func NewRegistry(overrides map[string]string, js ...runner.Job) *Registry {
	r := &Registry{jobs: js, schedules: map[string]string{}}
	for _, j := range js {
		r.schedules[j.Name()] = j.Schedule()
		if s, ok := overrides[j.Name()]; ok && s != "" {
			r.schedules[j.Name()] = s
		}
	}
	return r
}

// Jobs lists the registered jobs.
func (r *Registry) Jobs() []runner.Job { return r.jobs }

// Schedule is job's effective cron spec (UTC).
func (r *Registry) Schedule(job string) string { return r.schedules[job] }

// NextFirings lists job's next n firings after t (UTC).
func (r *Registry) NextFirings(job string, t time.Time, n int) ([]time.Time, error) {
	sched, err := cron.ParseStandard(r.schedules[job])
	if err != nil {
		return nil, err
	}
	var out []time.Time
	t = t.UTC()
	for i := 0; i < n; i++ {
		t = sched.Next(t)
		out = append(out, t)
	}
	return out, nil
}

// LatestPeriod is the period a firing at t runs: the latest ended as of t.
func LatestPeriod(j runner.Job, t time.Time) periods.Period {
	return periods.Latest(j.Cadence(), t)
}
