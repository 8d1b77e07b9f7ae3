package runner

import (
	"context"
	"encoding/json"
	"fmt"

	"tally/periods"
)

// Notifier is a job that emails people about what it published. The runner calls
// it after publishing and before the final ledger write; a failed send never fails
// the run (the outputs are already stored).
type Notifier interface {
	Notify(ctx context.Context, rc *RunContext, n Notification) error
}

// Notification is what the runner lets a notifier do.
type Notification struct {
	// Sent reports whether a subscription's email for this period was already
	// accepted by an earlier try of this run (a retried or resumed run skips it).
	Sent func(subscription string) bool
	// Record writes one send (or failed send) to the ledger at once.
	Record func(Email) error
	// Seq numbers the messages of the run (for outbox keys and Message-IDs).
	Seq func() int
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
func (r *Runner) notify(ctx context.Context, job Job, rc *RunContext, rec *Record, lease *Lease, earlier []*Record) {
	n, ok := job.(Notifier)
	if !ok {
		return
	}
	sent := map[string]bool{}
	for _, e := range earlierEmails(earlier) {
		if e.Status == "sent" {
			sent[e.Subscription] = true
		}
	}
	note := r.recordOn(ctx, lease, rec, len(earlierEmails(earlier)), func(e Email) {
		if e.Status == "sent" {
			sent[e.Subscription] = true
		}
	})
	note.Sent = func(sub string) bool { return sent[sub] }
	if err := n.Notify(ctx, rc, note); err != nil {
		rc.Log.Error().Err(err).Msg("emails: the reports are published; tally resend " + rec.RunID + " sends them again")
	}
}

// earlierEmails are the sends of the attempts since the period last succeeded:
// a retried or resumed run must not send them twice; a forced re-run after a
// success starts afresh.
func earlierEmails(attempts []*Record) []Email {
	var out []Email
	for _, a := range attempts {
		if a.Status == StatusSucceeded {
			out = nil
			continue
		}
		out = append(out, a.Emails...)
	}
	return out
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
		Log: log, outputs: rec.Outputs, notes: rec.Notes}
	return rec, n.Notify(log.WithContext(ctx), rc, r.recordOn(ctx, lease, rec, len(rec.Emails), nil))
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
	return send(log.WithContext(ctx), rc, r.recordOn(ctx, lease, last, len(last.Emails), nil))
}

// recordOn is a Notification whose sends are appended to rec's ledger entry at
// once; it numbers messages after the seq already sent and sends everything.
func (r *Runner) recordOn(ctx context.Context, lease *Lease, rec *Record, seq int, onRecord func(Email)) Notification {
	return Notification{
		Sent: func(string) bool { return false },
		Record: func(e Email) error {
			rec.Emails = append(rec.Emails, e)
			if onRecord != nil {
				onRecord(e)
			}
			return r.writeRecord(ctx, lease, rec)
		},
		Seq: func() int { seq++; return seq },
	}
}
