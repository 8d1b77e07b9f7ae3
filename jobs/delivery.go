package jobs

// Report email delivery: one message per subscription (or recipient) of a
// run, each claimed before it is sent and confirmed the moment the server
// accepts it (runner/emails.go), so a message is sent once.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"tally/mail"
	"tally/periods"
	"tally/runner"
	"tally/subscriptions"
)

// Notify sends one email per subscription of the run: links per region and a
// summary, or a "no data" email when no region had rows.
func (j *Reports) Notify(ctx context.Context, rc *runner.RunContext, n runner.Notification) error {
	var reports map[string]*SubscriptionReport
	if err := rc.NoteInto("reports", &reports); err != nil {
		return err
	}
	store := &subscriptions.Store{S: rc.Stores.Control}
	ids := make([]string, 0, len(reports))
	for id := range reports {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var errs []error
	for _, id := range ids {
		sr := reports[id]
		if sr.Error != "" {
			continue
		}
		sub, err := store.Get(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pl, err := j.periodLinks(ctx, rc.Period, sr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pl.Partial = runner.GapsFor(rc.Gaps(), sub.PartnerID)
		e := &mail.ReportEmail{Subscription: id, PartnerID: sub.PartnerID, Cadence: string(sub.Cadence), LinkValidity: j.Links.Validity(),
			Periods: []mail.PeriodLinks{pl}}
		e.Title = fmt.Sprintf("%s — %s report for %s", sr.Template, sub.Cadence, rc.Period.ID())
		if pl.NoData {
			e.Title = fmt.Sprintf("%s — no data for %s", sr.Template, rc.Period.ID())
		}
		if len(pl.Partial) > 0 {
			e.Title += " (partial)"
		}
		var inline []mail.Inline
		if _, regions := RowsByRegion(sr.Files); headlineTemplates[sr.Template] && len(regions) > 0 {
			if e.Headline, inline, err = Headline(ctx, rc.Stores, regions, sub.PartnerID, rc.Period); err != nil {
				// The links are what the email is for: it goes without its headline.
				rc.Log.Warn().Err(err).Str("subscription", id).Msg("the week at a glance could not be read; the email goes without it")
				e.Headline, inline = nil, nil
			}
		}
		if err := j.send(ctx, rc, n, sub, runner.DefaultGroup, rc.Period.ID(), e, inline); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (j *Reports) periodLinks(ctx context.Context, p periods.Period, sr *SubscriptionReport) (mail.PeriodLinks, error) {
	pl := mail.PeriodLinks{Period: p.ID(), Summary: sr.Summary, NoData: len(sr.Files) == 0}
	index := map[string]int{} // region → its place in pl.Regions
	for _, f := range sr.Files {
		i, ok := index[f.Region]
		if !ok {
			i = len(pl.Regions)
			index[f.Region] = i
			pl.Regions = append(pl.Regions, mail.RegionLinks{Region: f.Region})
		}
		url, err := j.Links.Link(ctx, f.Region, f.Key, f.Name)
		if err != nil {
			return pl, fmt.Errorf("link to %s: %w", f.Key, err)
		}
		pl.Regions[i].Files = append(pl.Regions[i].Files, mail.FileLink{Name: f.Name, URL: url})
	}
	rows, _ := RowsByRegion(sr.Files)
	for i := range pl.Regions {
		pl.Regions[i].Rows = rows[pl.Regions[i].Region]
	}
	return pl, nil
}

// RecipientGroup is the claim group of one recipient's message within group:
// "to-<address as a key segment>-<6 hex of its hash>" for the scheduled email,
// "<group>-to-…" otherwise. It names the outbox file and the Message-ID.
func RecipientGroup(group, address string) string {
	a := strings.ToLower(address)
	slug := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '-'
	}, strings.ReplaceAll(a, "@", "-at-"))
	if len(slug) > 60 {
		slug = slug[:60]
	}
	sum := sha256.Sum256([]byte(a))
	g := fmt.Sprintf("to-%s-%x", slug, sum[:3])
	if group != runner.DefaultGroup {
		g = group + "-" + g
	}
	return g
}

// send delivers a report email: one message per recipient (each with its own
// unsubscribe link), or one with every recipient in Bcc.
func (j *Reports) send(ctx context.Context, rc *runner.RunContext, n runner.Notification, sub *subscriptions.Subscription, group, period string, e *mail.ReportEmail, inline []mail.Inline) error {
	for _, to := range sub.Recipients {
		if err := subscriptions.ValidateAddress(to); err != nil {
			return fmt.Errorf("subscription %s: %w", sub.ID, err)
		}
	}
	if j.Recipients == "bcc" {
		return j.deliver(ctx, rc, n, sub, group, period, e, inline, sub.Recipients, true)
	}
	var errs []error
	for _, to := range sub.Recipients {
		if err := j.deliver(ctx, rc, n, sub, RecipientGroup(group, to), period, e, inline, []string{to}, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deliver claims, renders and sends one message. The claim is confirmed the
// moment the server accepts the message (mail.Message.Accepted), before the
// connection is closed, so an error after acceptance is a warning and never a
// second send. A temporary failure is tried again (up to SendAttempts); a
// permanent one (a 5xx, a refused login) is not, and marks the claim failed:
// the run stays complete, its emails_failed counts it, and tally resend sends
// it again under the same Message-ID. A message already delivered (its claim
// confirmed) is not sent again; one claimed but never confirmed (the process
// died) goes again under the same Message-ID.
func (j *Reports) deliver(ctx context.Context, rc *runner.RunContext, n runner.Notification, sub *subscriptions.Subscription, group, period string, e *mail.ReportEmail, inline []mail.Inline, to []string, bcc bool) error {
	claim, sent, err := n.Claim(ctx, sub.ID, group)
	if err != nil {
		return fmt.Errorf("subscription %s: %w", sub.ID, err)
	}
	if sent {
		rc.Log.Info().Str("subscription", sub.ID).Str("claim", claim.Key).Msg("email already sent, not sending again")
		return nil
	}
	msgE := *e
	if len(to) == 1 && !bcc && j.PublicURL != "" && j.UnsubscribeKey != nil {
		key, err := j.UnsubscribeKey(ctx)
		if err != nil {
			return fmt.Errorf("subscription %s: unsubscribe key: %w", sub.ID, err)
		}
		msgE.UnsubscribeURL = strings.TrimSuffix(j.PublicURL, "/") + "/unsubscribe?t=" + subscriptions.Token(key, sub.ID, to[0])
	}
	text, html, err := mail.Render(&msgE)
	if err != nil {
		return err
	}
	sender := j.Sender
	if sender == nil {
		sender = &mail.Outbox{Store: rc.Stores.Control}
	}
	subject := "tally: " + e.Title
	if n.Test {
		subject = "[test] " + subject
	}
	m := &mail.Message{ID: claim.Key, Job: rc.Job, Period: period, Subscription: sub.ID, From: j.From,
		Subject: subject, Text: text, HTML: html, Date: rc.Clock.Now(), Inline: inline, Unsubscribe: msgE.UnsubscribeURL}
	if bcc {
		m.Bcc = to
	} else {
		m.To = to
	}
	log := rc.Log.With().Str("subscription", sub.ID).Strs("to", to).Str("via", sender.Where()).Str("message_id", mail.MessageID(m.ID)).Logger()
	attempts := max(j.SendAttempts, 1)
	var last error
	for i := 1; i <= attempts; i++ {
		var accepted bool
		var confirmErr error
		m.Accepted = func() { accepted, confirmErr = true, n.Confirm(ctx, claim, sender.Where()) }
		last = sender.Send(ctx, m)
		rec := runner.Email{Subscription: sub.ID, To: to, Status: runner.EmailSent, At: rc.Clock.Now(), Via: sender.Where(),
			MessageID: mail.MessageID(m.ID), Claim: claim.Key, Resent: claim.Resumed}
		if accepted {
			if last != nil {
				log.Warn().Err(last).Msg("email delivered; the connection failed after the server accepted it (not sent again)")
			}
		} else {
			rec.Status, rec.Error = runner.EmailFailed, last.Error()
			if mail.Permanent(last) || i == attempts {
				if err := n.Fail(ctx, claim, last.Error()); err != nil {
					log.Warn().Err(err).Msg("the failed send's claim could not be marked failed")
				}
			}
		}
		if err := n.Record(rec); err != nil {
			return err
		}
		if accepted {
			if confirmErr != nil {
				return fmt.Errorf("subscription %s: email delivered, but its claim was not confirmed (the next run of the period sends it again): %w", sub.ID, confirmErr)
			}
			log.Info().Msg("email sent")
			return nil
		}
		log.Warn().Err(last).Int("try", i).Bool("permanent", mail.Permanent(last)).Msg("email failed")
		if mail.Permanent(last) {
			break
		}
		if i < attempts {
			if err := rc.Clock.Sleep(ctx, j.SendBackoff*time.Duration(1<<(i-1))); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("subscription %s: email to %s not delivered: %w", sub.ID, strings.Join(to, ", "), last)
}

// Digest sends one email per subscription listing every period's links of a
// backfill (tally backfill --email).
func (j *Reports) Digest(ctx context.Context, rc *runner.RunContext, n runner.Notification, recs []*runner.Record) error {
	type entry struct {
		p       periods.Period
		sr      *SubscriptionReport
		partial []string
	}
	bySub := map[string][]entry{}
	for _, rec := range recs {
		if rec.Status != runner.StatusSucceeded {
			continue
		}
		p, err := periods.Parse(j.Every, rec.Period)
		if err != nil {
			return err
		}
		reports, ok := ReportsOf(rec)
		if !ok {
			continue
		}
		for id, sr := range reports {
			if sr.Error == "" {
				bySub[id] = append(bySub[id], entry{p, sr, rec.Partial})
			}
		}
	}
	store := &subscriptions.Store{S: rc.Stores.Control}
	ids := make([]string, 0, len(bySub))
	for id := range bySub {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var errs []error
	for _, id := range ids {
		sub, err := store.Get(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		entries := bySub[id]
		sort.Slice(entries, func(a, b int) bool { return entries[a].p.Start.Before(entries[b].p.Start) })
		e := &mail.ReportEmail{Subscription: id, PartnerID: sub.PartnerID, Cadence: string(sub.Cadence), LinkValidity: j.Links.Validity(), Digest: true}
		for _, en := range entries {
			pl, err := j.periodLinks(ctx, en.p, en.sr)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			pl.Partial = runner.GapsFor(en.partial, sub.PartnerID)
			e.Periods = append(e.Periods, pl)
		}
		e.Title = fmt.Sprintf("%s — backfill of %d %s periods, %s to %s", entries[0].sr.Template, len(entries), sub.Cadence, entries[0].p.ID(), entries[len(entries)-1].p.ID())
		period := entries[0].p.ID() + ".." + entries[len(entries)-1].p.ID()
		if err := j.send(ctx, rc, n, sub, "digest", period, e, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
