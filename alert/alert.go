// Package alert owns failure notifications: a run that failed after its retries,
// or a complete run whose report emails were not delivered, emails the
// operators and/or posts to a webhook with job, period, error and the ledger
// entry — never a silent failure.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strings"
	"time"

	"tally/mail"
	"tally/runner"
)

// Notifier sends failure notifications.
type Notifier struct {
	Sender  mail.Sender // nil: no email
	From    string
	To      []string // operators
	Webhook string   // "": no webhook
	Client  *http.Client
	Now     func() time.Time
}

// Enabled reports whether any notification is configured.
func (n *Notifier) Enabled() bool {
	return n != nil && ((n.Sender != nil && len(n.To) > 0) || n.Webhook != "")
}

// Payload is what the webhook receives.
type Payload struct {
	Event  string         `json:"event"` // run_failed or emails_failed
	Job    string         `json:"job"`
	Period string         `json:"period"`
	RunID  string         `json:"run_id"`
	Error  string         `json:"error"`
	Record *runner.Record `json:"record"`
}

// RunFailed notifies about a failed run.
func (n *Notifier) RunFailed(ctx context.Context, rec *runner.Record) error {
	if !n.Enabled() || rec == nil {
		return nil
	}
	return n.send(ctx, rec, "run_failed", fmt.Sprintf("tally: %s %s failed", rec.Job, rec.Period),
		fmt.Sprintf("%s for period %s failed after attempt %d.\n\nError: %s", rec.Job, rec.Period, rec.Attempt, rec.Error), rec.Error)
}

// EmailsFailed notifies about a complete run whose report emails were not all
// delivered: which, why, and the command that sends them.
func (n *Notifier) EmailsFailed(ctx context.Context, rec *runner.Record) error {
	if !n.Enabled() || rec == nil || rec.EmailsFailed == 0 {
		return nil
	}
	last := map[string]runner.Email{}
	var order []string
	for _, e := range rec.Emails {
		if _, ok := last[e.Claim]; !ok {
			order = append(order, e.Claim)
		}
		last[e.Claim] = e
	}
	var lines, errs []string
	for _, c := range order {
		if e := last[c]; e.Status == runner.EmailFailed {
			lines = append(lines, fmt.Sprintf("- %s to %v: %s", e.Subscription, e.To, e.Error))
			errs = append(errs, e.Error)
		}
	}
	text := fmt.Sprintf("%s for period %s is complete and its files are published, but %d report email(s) were not delivered:\n%s\n\n"+
		"Fix the cause, then send them with: tally resend %s", rec.Job, rec.Period, rec.EmailsFailed, strings.Join(lines, "\n"), rec.RunID)
	return n.send(ctx, rec, "emails_failed", fmt.Sprintf("tally: %d report email(s) of %s %s not delivered", rec.EmailsFailed, rec.Job, rec.Period),
		text, strings.Join(errs, "; "))
}

// send emails the operators and posts the webhook.
func (n *Notifier) send(ctx context.Context, rec *runner.Record, event, subject, what, errText string) error {
	var errs []error
	entry, _ := json.MarshalIndent(rec, "", "  ")
	if n.Sender != nil && len(n.To) > 0 {
		text := fmt.Sprintf("%s\n\nLedger entry (%s):\n%s\n", what, rec.RunID, entry)
		m := &mail.Message{ID: "alert/" + event + "/" + rec.RunID, From: n.From, To: n.To, Subject: subject, Text: text,
			HTML: "<pre>" + html.EscapeString(text) + "</pre>", Date: n.Now()}
		if err := n.Sender.Send(ctx, m); err != nil {
			errs = append(errs, fmt.Errorf("failure email: %w", err))
		}
	}
	if n.Webhook != "" {
		body, _ := json.Marshal(Payload{Event: event, Job: rec.Job, Period: rec.Period, RunID: rec.RunID, Error: errText, Record: rec})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.Webhook, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			client := n.Client
			if client == nil {
				client = &http.Client{Timeout: 10 * time.Second}
			}
			var resp *http.Response
			if resp, err = client.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					err = fmt.Errorf("%s answered %s", n.Webhook, resp.Status)
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("failure webhook: %w", err))
		}
	}
	return errors.Join(errs...)
}
