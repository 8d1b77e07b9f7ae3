package main

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// textOf reads an .eml from the outbox: its decoded subject and its text/plain part.
func textOf(t *testing.T, path string) (subject, text string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(must(os.ReadFile(path))))
	if err != nil {
		t.Fatal(err)
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	part, err := multipart.NewReader(msg.Body, boundary(t, msg.Header.Get("Content-Type"))).NextPart()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(part) // NextPart undoes the quoted-printable encoding
	return subject, string(b)
}

func boundary(t *testing.T, contentType string) string {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatal(err)
	}
	return params["boundary"]
}

func TestABackfillEmailsOnlyWithEmailAndThenOneDigestPerSubscriptionListingEveryPeriod(t *testing.T) {
	cfg, data := writeConfig(t, "")
	for _, p := range []string{"P093374", "P122891"} { // two of the demo's partners (seed 1)
		if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", "devices-"+strings.ToLower(p), "--partner", p, "--template", "devices", "--cadence", "daily", "--to", "ops@example.com"); code != 0 {
			t.Fatalf("subscriptions add: %s", stderr)
		}
	}
	outbox := func() []string {
		emls, _ := filepath.Glob(filepath.Join(data, "outbox", "reports-daily", "*", "*", "*.eml"))
		return emls
	}
	args := []string{"--config", cfg, "backfill", "reports-daily", "--from", "2026-11-18", "--to", "2026-11-20"}
	if code, stdout, stderr := run(t, args...); code != 0 || !strings.Contains(stdout, "3 periods: 3 run, 0 already complete, 0 failed") {
		t.Fatalf("backfill: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if emls := outbox(); len(emls) != 0 {
		t.Fatalf("a backfill without --email sent %d emails: %v", len(emls), emls)
	}

	// --email on the already-complete periods: nothing re-runs, one digest each.
	code, stdout, stderr := run(t, append(args, "--email")...)
	if code != 0 || !strings.Contains(stdout, "3 periods: 0 run, 3 already complete, 0 failed") {
		t.Fatalf("backfill --email: exit %d\n%s\n%s", code, stdout, stderr)
	}
	emls := outbox()
	if len(emls) != 2 {
		t.Fatalf("backfill --email sent %d emails, want one digest per subscription (2): %v", len(emls), emls)
	}
	for _, eml := range emls {
		if !strings.Contains(eml, filepath.Join("reports-daily", "2026-11-20")) {
			t.Errorf("digest %s is not recorded on the newest period's run", eml)
		}
		subject, text := textOf(t, eml)
		if !strings.Contains(subject, "backfill of 3 daily periods, 2026-11-18 to 2026-11-20") {
			t.Errorf("digest subject %q", subject)
		}
		for _, day := range []string{"2026-11-18", "2026-11-19", "2026-11-20"} {
			if !strings.Contains(text, "== "+day+" ==") || !strings.Contains(text, "/devices/daily/"+day+"/") {
				t.Errorf("digest %s lacks period %s or its links:\n%s", eml, day, text)
			}
		}
	}
	// The digest's sends are in the ledger of the newest period, none elsewhere.
	code, stdout, _ = run(t, "--config", cfg, "runs", "reports-daily", "-o", "json")
	if code != 0 || strings.Count(stdout, `"subscription":`) != 2 {
		t.Fatalf("runs -o json: exit %d, want the two digest sends recorded\n%s", code, stdout)
	}
}
