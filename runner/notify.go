package runner

import (
	"context"
	"encoding/json"
	"fmt"

	"tally/periods"
)

// Notifier is a job that emails people about what it published. The runner calls
// it after publishing and before the final ledger write. A failed send never fails
// the run (the outputs are already stored): the record counts it in
// EmailsFailed, the failure alert and metrics say so, and tally resend sends it.
type Notifier interface {
	Notify(ctx context.Context, rc *RunContext, n Notification) error
}

// Notification is what the runner lets a notifier do.
type Notification struct {
	// Claim decides one message before it is sent: the claim to send under
	// (its key names the message and its outbox file), or sent = true when that
	// message was already delivered and must not go again.
	Claim func(ctx context.Context, subscription, group string) (claim *EmailClaim, sent bool, err error)
	// Confirm records that the send under claim was accepted.
	Confirm func(ctx context.Context, claim *EmailClaim, via string) error
	// Fail records that the send under claim failed for good (why).
	Fail func(ctx context.Context, claim *EmailClaim, why string) error
	// Record writes one send (or failed send) to the ledger at once.
	Record func(Email) error
	// Test marks a subscriptions test run: its subjects start with "[test]".
	Test bool
}

// NoteInto decodes a note (from this run, or from a record read back from the
// ledger) into v.
func (rc *RunContext) NoteInto(name string, v any) error {
	rc.mu.Lock()
	note, ok := rc.notes[name]
	rc.mu.Unlock()
	if !ok {
		return fmt.Errorf("run %s has no %s note", rc.RunID, name)
	}
	b, err := json.Marshal(note)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Outputs are the outputs published so far.
func (rc *RunContext) Outputs() []Output {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Output(nil), rc.outputs...)
}

// notify runs the email stage of an attempt that published.
func (r *Runner) notify(ctx context.Context, job Job, rc *RunContext, rec *Record, lease *Lease, cl *claimer, test bool) {
	n, ok := job.(Notifier)
	if !ok {
		return
	}
	note := r.recordOn(ctx, lease, rec, cl)
	note.Test = test
	if err := n.Notify(ctx, rc, note); err != nil {
		rc.Log.Error().Err(err).Msg("emails: the reports are published; tally resend " + rec.RunID + " sends them again")
	}
	rec.EmailsFailed = FailedEmails(rec.Emails)
}

// FailedEmails counts the messages whose last send is failed (a message is
// one claim; a later try that succeeded clears it).
func FailedEmails(emails []Email) int {
	last := map[string]string{}
	for _, e := range emails {
		last[e.Claim] = e.Status
	}
	n := 0
	for _, st := range last {
		if st == EmailFailed {
			n++
		}
	}
	return n
}

func (r *Runner) claimer(lease *Lease, job, period, runID string, fresh bool) *claimer {
	return &claimer{store: r.stores.Control, lease: lease, job: job, period: period, runID: runID, holder: r.holder,
		now: r.clock.Now, fresh: fresh, gens: map[string]int{}}
}

// Resend emails a finished run's reports again to its subscribers.
func (r *Runner) Resend(ctx context.Context, runID string) (*Record, error) {
	jobName, period, attempt, err := ParseRunID(runID)
	if err != nil {
		return nil, err
	}
	job, err := r.Job(jobName)
	if err != nil {
		return nil, err
	}
	n, ok := job.(Notifier)
	if !ok {
		return nil, Usagef("%s sends no email: only report jobs can be resent", jobName)
	}
	p, err := periods.Parse(job.Cadence(), period)
	if err != nil {
		return nil, Usage(err)
	}
	attempts, err := r.ledger.Attempts(ctx, jobName, period)
	if err != nil {
		return nil, err
	}
	var rec *Record
	for _, a := range attempts {
		if a.Attempt == attempt {
			rec = a
		}
	}
	if rec == nil {
		return nil, Usagef("no run %s in the ledger (tally runs %s lists them)", runID, jobName)
	}
	if rec.Status != StatusSucceeded {
		return nil, Usagef("run %s is %s: only a run that published its reports can be resent", runID, rec.Status)
	}
	lease, err := AcquireLease(ctx, r.stores.Control, r.clock, jobName, period, r.holder, r.cfg.LeaseTTL)
	if err != nil {
		return nil, err
	}
	defer lease.Release(context.WithoutCancel(ctx))
	log := r.log.With().Str(LogJob, jobName).Str(LogPeriod, period).Str(LogRunID, runID).Logger()
	rc := &RunContext{Job: jobName, Period: p, RunID: runID, Regions: rec.Regions, Stores: r.stores, Clock: r.clock,
		Log: log, outputs: rec.Outputs, notes: rec.Notes, partial: rec.Partial}
	cl := r.claimer(lease, jobName, period, runID, true)
	err = n.Notify(log.WithContext(ctx), rc, r.recordOn(ctx, lease, rec, cl))
	rec.EmailsFailed = FailedEmails(rec.Emails)
	if werr := r.writeRecord(ctx, lease, rec); werr != nil && err == nil {
		err = werr
	}
	return rec, err
}

// Digest lets a notifier send one message per subscription covering several runs
// (a backfill with --email); the sends are recorded on the newest run's ledger entry.
func (r *Runner) Digest(ctx context.Context, name string, recs []*Record, send func(context.Context, *RunContext, Notification) error) error {
	if len(recs) == 0 {
		return nil
	}
	last := recs[0]
	for _, rec := range recs {
		if rec.Period > last.Period {
			last = rec
		}
	}
	lease, err := AcquireLease(ctx, r.stores.Control, r.clock, name, last.Period, r.holder, r.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	defer lease.Release(context.WithoutCancel(ctx))
	log := r.log.With().Str(LogJob, name).Str(LogPeriod, last.Period).Str(LogRunID, last.RunID).Logger()
	rc := &RunContext{Job: name, RunID: last.RunID, Stores: r.stores, Clock: r.clock, Log: log}
	cl := r.claimer(lease, name, last.Period, last.RunID, true)
	return send(log.WithContext(ctx), rc, r.recordOn(ctx, lease, last, cl))
}

// recordOn is a Notification whose sends are claimed by cl and appended to
// rec's ledger entry at once.
func (r *Runner) recordOn(ctx context.Context, lease *Lease, rec *Record, cl *claimer) Notification {
	return Notification{
		Claim: func(ctx context.Context, sub, group string) (*EmailClaim, bool, error) {
			cl.runID = rec.RunID
			return cl.claim(ctx, sub, group)
		},
		Confirm: cl.confirm,
		Fail:    cl.fail,
		Record: func(e Email) error {
			rec.Emails = append(rec.Emails, e)
			return r.writeRecord(ctx, lease, rec)
		},
	}
}
