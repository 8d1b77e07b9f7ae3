package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"tally/model"
	"tally/periods"
	"tally/runner"
)

// Operators act from the console as they would with the command line: re-run
// a period (forced; some regions; with or without its emails) or backfill a
// range (bounded parallelism). Each is a POST carrying the form's CSRF token,
// shown first as a confirmation page with what would run, then run by the
// serving process through the same runner as tally run, its attempts
// recorded with who asked (trigger console, by <name>).

// maxParallel bounds a console backfill's parallelism.
const maxParallel = 4

// canAct reports whether the request may act, answering 403 when not.
func (c *Console) canAct(w http.ResponseWriter, r *http.Request) bool {
	if c.Act == nil {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("actions run only in tally serve"))
		return false
	}
	if !identityOf(r).Operator() {
		c.fail(w, r, http.StatusForbidden, fmt.Errorf("only an operator may run jobs from the console (you are a viewer)"))
		return false
	}
	return c.checkForm(w, r)
}

// rerun re-runs one period: POST /actions/rerun job, period, region (any
// number; none: all), email, confirm.
func (c *Console) rerun(w http.ResponseWriter, r *http.Request) {
	if !c.canAct(w, r) {
		return
	}
	f := r.PostForm
	name := f.Get("job")
	j, err := c.Runner.Job(name)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	p, err := periods.Parse(j.Cadence(), f.Get("period"))
	if err == nil {
		err = periods.Ended(p, c.Clock.Now())
	}
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	regions := f["region"]
	for _, reg := range regions {
		if !model.ValidRegion(reg) {
			c.fail(w, r, http.StatusBadRequest, fmt.Errorf("region %q: one of %v", reg, model.Regions))
			return
		}
	}
	id := identityOf(r)
	o := runner.Options{Force: true, Regions: regions, Email: f.Get("email") == "on", Trigger: "console", By: id.Name}
	if f.Get("confirm") != "yes" {
		dry := o
		dry.DryRun = true
		res, err := c.Runner.Run(r.Context(), name, p, dry)
		var plan []string
		if res != nil {
			plan = res.Plan
		}
		c.render(w, r, http.StatusOK, "confirm.html", map[string]any{"Title": "Re-run " + name + " " + p.ID(), "Action": "/actions/rerun",
			"What": fmt.Sprintf("Re-run %s for %s", name, p.ID()), "Fields": f, "Plan": plan, "PlanError": err, "Back": runPath(name, p.ID()),
			"Notes": rerunNotes(o)})
		return
	}
	c.Act(func(ctx context.Context) {
		res, err := c.Runner.Run(ctx, name, p, o)
		c.done(name, res, err)
	})
	c.Log.Info().Str("user", id.Name).Str(runner.LogJob, name).Str(runner.LogPeriod, p.ID()).Strs("regions", regions).Bool("email", o.Email).Msg("console: a re-run started")
	http.Redirect(w, r, runPath(name, p.ID())+"?started=1", http.StatusSeeOther)
}

func rerunNotes(o runner.Options) []string {
	notes := []string{"Its outputs are written again (forced), and every period downstream that read them shows stale until it is run again."}
	if len(o.Regions) > 0 {
		notes = append(notes, fmt.Sprintf("Only the outputs of %v.", o.Regions))
	}
	if o.Email {
		notes = append(notes, "Its subscribers are emailed again.")
	} else {
		notes = append(notes, "Nobody is emailed.")
	}
	return notes
}

// backfill runs a range: POST /actions/backfill job, from, to, parallel,
// force, email, confirm.
func (c *Console) backfill(w http.ResponseWriter, r *http.Request) {
	if !c.canAct(w, r) {
		return
	}
	f := r.PostForm
	name := f.Get("job")
	j, err := c.Runner.Job(name)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	from, err1 := periods.Parse(j.Cadence(), f.Get("from"))
	to, err2 := periods.Parse(j.Cadence(), f.Get("to"))
	if err1 != nil || err2 != nil {
		c.fail(w, r, http.StatusBadRequest, fmt.Errorf("from %q, to %q: %s periods of %s", f.Get("from"), f.Get("to"), j.Cadence(), name))
		return
	}
	all, err := periods.Range(from, to)
	if err == nil {
		err = periods.Ended(to, c.Clock.Now())
	}
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	parallel, err := strconv.Atoi(f.Get("parallel"))
	if err != nil || parallel < 1 || parallel > maxParallel {
		c.fail(w, r, http.StatusBadRequest, fmt.Errorf("parallel %q: 1 to %d", f.Get("parallel"), maxParallel))
		return
	}
	id := identityOf(r)
	o := runner.BackfillOptions{Options: runner.Options{Force: f.Get("force") == "on", Email: f.Get("email") == "on", Trigger: "console", By: id.Name}, Parallel: parallel}
	if f.Get("confirm") != "yes" {
		complete := 0
		for _, p := range all {
			if _, done, err := c.Runner.Ledger().Complete(r.Context(), name, p.ID()); err == nil && done {
				complete++
			}
		}
		notes := []string{fmt.Sprintf("%d periods, %d of them complete: %s.", len(all), complete,
			map[bool]string{true: "they are run again too (forced)", false: "they are skipped"}[o.Force]),
			fmt.Sprintf("%d at a time; a period's missing upstream periods are run first.", parallel)}
		if o.Email {
			notes = append(notes, "The periods' subscribers are emailed.")
		} else {
			notes = append(notes, "Nobody is emailed.")
		}
		c.render(w, r, http.StatusOK, "confirm.html", map[string]any{"Title": "Backfill " + name, "Action": "/actions/backfill",
			"What": fmt.Sprintf("Backfill %s from %s to %s", name, from.ID(), to.ID()), "Fields": f, "Back": "/runs?job=" + url.QueryEscape(name), "Notes": notes})
		return
	}
	o.Progress = func(_, _ int, res *runner.Result, err error) { c.done(name, res, err) }
	c.Act(func(ctx context.Context) {
		if _, err := c.Runner.Backfill(ctx, name, from, to, o); err != nil {
			c.Log.Error().Err(err).Str(runner.LogJob, name).Msg("console: a backfill stopped")
		}
	})
	c.Log.Info().Str("user", id.Name).Str(runner.LogJob, name).Str("from", from.ID()).Str("to", to.ID()).Int("parallel", parallel).Msg("console: a backfill started")
	http.Redirect(w, r, "/runs?job="+url.QueryEscape(name)+"&started=1", http.StatusSeeOther)
}

func (c *Console) done(job string, res *runner.Result, err error) {
	if c.Done != nil {
		c.Done(job, res, err)
	}
}

// actionView is what a page needs to offer the actions.
type actionView struct {
	Regions  []string
	Parallel []int
}

func (c *Console) actions(r *http.Request) *actionView {
	if c.Act == nil || !identityOf(r).Operator() {
		return nil
	}
	v := &actionView{Regions: model.Regions}
	for i := 1; i <= maxParallel; i++ {
		v.Parallel = append(v.Parallel, i)
	}
	return v
}

func runPath(job, period string) string {
	return "/runs/" + url.PathEscape(job) + "/" + url.PathEscape(period)
}
