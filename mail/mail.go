// Package mail owns how tally sends email: rendering report emails from the
// embedded templates, sending them over SMTP (go-mail) or into an outbox of .eml
// files, and refusing anything that could inject a header.
package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"strings"
	texttemplate "text/template"
	"time"

	gomail "github.com/wneessen/go-mail"

	"tally/storage"
	"tally/templates"
)

// Message is one email.
type Message struct {
	// ID names the message: its idempotency key (<job>/<period>/<subscription>/
	// <group>-g<generation>), the outbox key and, with "/" as ".", the Message-ID.
	ID string
	// Job, Period and Subscription become X-Tally-* headers, so mail rules and
	// audits can key on them.
	Job, Period, Subscription string
	From                      string
	To                        []string
	// Bcc recipients get the message without seeing each other (To is then
	// the sender).
	Bcc     []string
	Subject string
	Text    string
	HTML    string
	Date    time.Time
	// Inline are images the HTML part shows by cid: (charts: mail clients do
	// not render SVG).
	Inline []Inline
	// Unsubscribe, when set, is the one-click unsubscribe URL of the
	// List-Unsubscribe and List-Unsubscribe-Post headers (RFC 8058).
	Unsubscribe string
	// Accepted, when set, runs the moment the message is delivered — the SMTP
	// server's 250 to its DATA, the outbox file created — before anything
	// else is said on the connection: the sender confirms its send claim
	// there, so a failure after it (RSET, QUIT, a dropped connection) can
	// never make the message go twice.
	Accepted func()
}

// Inline is an image of the HTML part, referenced as cid:<CID>.
type Inline struct {
	CID, Name, ContentType string
	Data                   []byte
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m *Message) error
	// Where describes the destination, for the ledger ("smtp://host:port", "outbox").
	Where() string
}

// checkHeaders refuses header values that could inject headers.
func checkHeaders(m *Message) error {
	for _, v := range append(append([]string{m.From, m.Subject, m.ID, m.Job, m.Period, m.Subscription, m.Unsubscribe}, m.To...), m.Bcc...) {
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("mail: header value %q contains a line break", v)
		}
	}
	if m.Unsubscribe != "" && !strings.HasPrefix(m.Unsubscribe, "https://") && !strings.HasPrefix(m.Unsubscribe, "http://") {
		return fmt.Errorf("mail: unsubscribe URL %q is not http(s)", m.Unsubscribe)
	}
	if len(m.To)+len(m.Bcc) == 0 {
		return fmt.Errorf("mail: no recipients")
	}
	return nil
}

func (m *Message) build() (*gomail.Msg, error) {
	if err := checkHeaders(m); err != nil {
		return nil, err
	}
	msg := gomail.NewMsg()
	if err := msg.From(m.From); err != nil {
		return nil, fmt.Errorf("mail: from %q: %w", m.From, err)
	}
	to := m.To
	if len(to) == 0 { // Bcc only: the message is addressed to its sender
		to = []string{m.From}
	}
	if err := msg.To(to...); err != nil {
		return nil, fmt.Errorf("mail: to %v: %w", to, err)
	}
	if len(m.Bcc) > 0 {
		if err := msg.Bcc(m.Bcc...); err != nil {
			return nil, fmt.Errorf("mail: bcc %v: %w", m.Bcc, err)
		}
	}
	if m.Unsubscribe != "" {
		msg.SetGenHeader(gomail.HeaderListUnsubscribe, "<"+m.Unsubscribe+">")
		msg.SetGenHeader(gomail.HeaderListUnsubscribePost, "List-Unsubscribe=One-Click")
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(MessageID(m.ID))
	for _, h := range []struct{ name, v string }{{"X-Tally-Job", m.Job}, {"X-Tally-Period", m.Period}, {"X-Tally-Subscription", m.Subscription}} {
		if h.v != "" {
			msg.SetGenHeader(gomail.Header(h.name), h.v)
		}
	}
	msg.SetDateWithValue(m.Date)
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	for _, in := range m.Inline {
		if err := msg.EmbedReader(in.Name, bytes.NewReader(in.Data), gomail.WithFileContentID(in.CID),
			gomail.WithFileContentType(gomail.ContentType(in.ContentType))); err != nil {
			return nil, fmt.Errorf("mail: inline %s: %w", in.Name, err)
		}
	}
	return msg, nil
}

// EML renders a message as an RFC 5322 .eml file.
func EML(m *Message) ([]byte, error) {
	msg, err := m.build()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := msg.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// MessageID is a message id as a Message-ID (without the angle brackets).
func MessageID(id string) string { return strings.ReplaceAll(id, "/", ".") + "@tally" }

// Outbox writes messages as outbox/<id>.eml in a store (when no SMTP server is
// configured), by exclusive create: a message id is delivered at most once.
type Outbox struct {
	Store storage.Store
}

// Send stores m.
func (o *Outbox) Send(ctx context.Context, m *Message) error {
	b, err := EML(m)
	if err != nil {
		return err
	}
	_, err = o.Store.Create(ctx, OutboxKey(m.ID), b)
	if errors.Is(err, storage.ErrExists) {
		err = nil // delivered before: the same message, the same file
	}
	if err == nil && m.Accepted != nil {
		m.Accepted()
	}
	return err
}

// OutboxKey is where a message goes in the outbox.
func OutboxKey(id string) string { return "outbox/" + id + ".eml" }

// Where is "outbox".
func (o *Outbox) Where() string { return "outbox" }

// ReportEmail is what a report email (or a backfill digest) says.
type ReportEmail struct {
	Title        string
	Subscription string
	PartnerID    string
	Cadence      string
	LinkValidity string
	Digest       bool
	Periods      []PeriodLinks
	// Headline, when set, is the partner's week at a glance above the links.
	Headline *Headline
	// UnsubscribeURL is the recipient's own unsubscribe link ("": none).
	UnsubscribeURL string
}

// Headline is a partner's analytics of a week: KPIs per region, the tables'
// counts, the top over-entitled customers and the 8-week trend chart (an
// inline PNG, its numbers also as a table and in the text part).
type Headline struct {
	Week     string
	KPIs     []string   // column headers
	KPIRows  [][]string // region, then a value per KPI
	Counts   []KV       // per-table counts
	TopOver  [][]string // customer, subscription, region, overage
	ChartCID string     // "": no chart
	ChartAlt string
	// ChartWidth and ChartHeight are the chart's size in the message (CSS
	// pixels, at most the message's 600).
	ChartWidth, ChartHeight int
	Trend                   []string   // headers: week, then a series each
	TrendRows               [][]string // a week each, oldest first
}

// KV is a labelled value.
type KV struct{ Label, Value string }

// PeriodLinks are one period's files.
type PeriodLinks struct {
	Period  string
	NoData  bool
	Summary []string
	// Partial lists what the period's data lacks (customers a source skipped):
	// the email says so above the links, never a silently complete report.
	Partial []string
	Regions []RegionLinks
}

// RegionLinks are one region's files of a period.
type RegionLinks struct {
	Region string
	Rows   int64
	Files  []FileLink
}

// FileLink is one link.
type FileLink struct {
	Name, URL string
}

// Href is URL for an HTML href. html/template replaces a file:// URL with
// "#ZgotmplZ" (it trusts only http, https and mailto), which made every link of
// an email on local storage dead; tally makes these URLs itself, so a file,
// http or https URL is marked safe, and anything else stays refused.
func (f FileLink) Href() htmltemplate.URL {
	u, err := url.Parse(f.URL)
	if err != nil {
		return "#invalid-link"
	}
	switch u.Scheme {
	case "file", "http", "https":
		return htmltemplate.URL(u.String())
	}
	return "#invalid-link"
}

// Render fills the report templates.
func Render(e *ReportEmail) (text, html string, err error) {
	tt, err := texttemplate.New("report.txt.tmpl").Funcs(texttemplate.FuncMap{"add": func(a, b int) int { return a + b }, "join": strings.Join}).
		ParseFS(templates.FS, "email/report.txt.tmpl")
	if err != nil {
		return "", "", err
	}
	ht, err := htmltemplate.ParseFS(templates.FS, "email/report.html.tmpl")
	if err != nil {
		return "", "", err
	}
	var tb, hb bytes.Buffer
	if err := tt.Execute(&tb, e); err != nil {
		return "", "", err
	}
	if err := ht.Execute(&hb, e); err != nil {
		return "", "", err
	}
	return tb.String(), hb.String(), nil
}
