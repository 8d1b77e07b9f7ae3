package alert_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tally/alert"
	"tally/internal/testservers"
	"tally/mail"
	"tally/runner"
)

func TestAFailedRunNotifiesOperatorsByEmailAndWebhook(t *testing.T) {
	mp := testservers.NeedMailpit(t)
	smtp, err := mail.NewSMTP(mail.SMTPConfig{Host: mp.Host, Port: mp.Port, TLS: "none", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan alert.Payload, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p alert.Payload
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &p); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad payload", 400)
			return
		}
		got <- p
	}))
	defer hook.Close()
	ops := "ops-" + strings.ToLower(time.Now().Format("150405.000000")) + "@example.com"
	n := &alert.Notifier{Sender: smtp, From: "tally@example.com", To: []string{ops}, Webhook: hook.URL, Now: time.Now}
	rec := &runner.Record{RunID: "license-usage/2026-11-21/0003", Job: "license-usage", Period: "2026-11-21", Attempt: 3,
		Status: runner.StatusFailed, Error: "upstream sync-clusters 2026-11-21 failed: source export corrupt"}
	if err := n.RunFailed(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p.Event != "run_failed" || p.Job != "license-usage" || p.Period != "2026-11-21" || !strings.Contains(p.Error, "source export corrupt") || p.Record.RunID != rec.RunID {
			t.Fatalf("webhook payload %+v", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the webhook received nothing")
	}
	msgs := mp.WaitFor(t, "to:"+ops, 1)
	if len(msgs) != 1 {
		t.Fatalf("%d failure emails to %s, want 1", len(msgs), ops)
	}
	m := mp.Get(t, msgs[0].ID)
	if m.Subject != "tally: license-usage 2026-11-21 failed" || !strings.Contains(m.Text, "source export corrupt") || !strings.Contains(m.Text, `"run_id": "license-usage/2026-11-21/0003"`) {
		t.Fatalf("failure email %q:\n%s", m.Subject, m.Text)
	}
}

func TestAWebhookThatAnswersAnErrorIsReported(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) }))
	defer hook.Close()
	n := &alert.Notifier{Webhook: hook.URL, Now: time.Now}
	err := n.RunFailed(context.Background(), &runner.Record{RunID: "a/b/0001", Job: "a", Period: "b"})
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v", err)
	}
}
