package jobs

import (
	"bytes"
	"context"
	"encoding/csv"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tally/analytics"
	"tally/internal/testservers"
	"tally/mail"
	"tally/model"
	"tally/periods"
	"tally/report"
	"tally/runner"
	"tally/source"
	"tally/storage"
	"tally/storage/local"
	"tally/subscriptions"

	"github.com/xuri/excelize/v2"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// links are plain links for tests.
type links struct{}

func (links) Link(_ context.Context, region, key, _ string) (string, error) {
	return "https://reports.example.com/" + key, nil
}
func (links) Validity() string { return "7 days" }

type reportsEnv struct {
	dir     string
	store   *local.Store
	r       *runner.Runner
	subs    *subscriptions.Store
	catalog *subscriptions.Catalog
	src     source.Source
	partner string
	reports []*Reports // daily, weekly, monthly
}

func newReportsEnv(t *testing.T, src source.Source, sender mail.Sender) *reportsEnv {
	t.Helper()
	dir := t.TempDir()
	store, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if src == nil {
		src = newDemo(t, 0)
	}
	catalog, _ := subscriptions.NewCatalog(nil)
	ledger := &runner.Ledger{Store: store}
	js := []runner.Job{&Sync{Source: src, Ledger: ledger}, &Usage{UnderThreshold: 0.5},
		&WeeklyAnalytics{Ledger: ledger, Thresholds: analytics.DefaultThresholds, LowBelow: 0.5}}
	var reports []*Reports
	for _, c := range []periods.Cadence{periods.Daily, periods.Weekly, periods.Monthly} {
		reports = append(reports, &Reports{Every: c, Catalog: catalog, Sender: sender, From: "tally@example.com", Links: links{},
			UnderThreshold: 0.5, Thresholds: analytics.DefaultThresholds, SendAttempts: 2, SendBackoff: time.Millisecond})
		js = append(js, reports[len(reports)-1])
	}
	r := testRunner(store, time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC), js...)
	partners, _ := src.Partners(context.Background(), testDay)
	return &reportsEnv{dir: dir, store: store, r: r, subs: &subscriptions.Store{S: store}, catalog: catalog, src: src, partner: partners[0].PartnerID, reports: reports}
}

func (e *reportsEnv) add(t *testing.T, s *subscriptions.Subscription) {
	t.Helper()
	if s.PartnerID == "" {
		s.PartnerID = e.partner
	}
	if s.Role == "" {
		s.Role = subscriptions.FullAdmin
	}
	if len(s.Formats) == 0 {
		s.Formats = []string{"csv", "parquet"}
	}
	if len(s.Recipients) == 0 {
		s.Recipients = []string{s.ID + "@example.com"}
	}
	if err := e.catalog.Validate(s); err != nil {
		t.Fatal(err)
	}
	if err := e.subs.Add(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func (e *reportsEnv) run(t *testing.T, job string, p periods.Period, o runner.Options) *runner.Record {
	t.Helper()
	res, err := e.r.Run(context.Background(), job, p, o)
	if err != nil {
		t.Fatalf("%s %s: %v", job, p.ID(), err)
	}
	return res.Record
}

// files lists the report files under reports/ (relative keys).
func (e *reportsEnv) files(t *testing.T, contains string) []string {
	t.Helper()
	objs, err := e.store.List(context.Background(), "reports/")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		if strings.Contains(o.Key, contains) {
			out = append(out, o.Key)
		}
	}
	return out
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs
}

func allTemplates(e *reportsEnv, t *testing.T) {
	for _, tpl := range report.BuiltIns {
		cadence := periods.Daily
		if tpl.Range == report.WeekRange {
			cadence = periods.Weekly
		}
		e.add(t, &subscriptions.Subscription{ID: tpl.Slug, Template: tpl.Slug, Cadence: cadence})
	}
}

func TestGoldenEveryTemplatesCSVHeaderAndFirstRows(t *testing.T) {
	t.Parallel()
	// The demo's default estate, so every Customer Subscriptions table has rows.
	demo, _ := demoSource(200)
	e := newReportsEnv(t, demo, nil)
	allTemplates(e, t)
	e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{})
	e.run(t, ReportsJob(periods.Weekly), testWeek, runner.Options{})
	for _, tpl := range report.BuiltIns {
		for i, part := range tpl.Parts {
			// The first region (US, CA, EU, UAE) that has this file.
			var csvKey string
			for _, region := range model.Regions {
				for _, k := range e.files(t, "region="+region+"/"+tpl.Slug+"/") {
					if csvKey == "" && strings.HasSuffix(k, ".csv") && strings.Contains(k, tpl.Name+part.Suffix+"_") {
						csvKey = k
					}
				}
			}
			if csvKey == "" {
				t.Errorf("%s%s: no CSV in any region", tpl.Name, part.Suffix)
				continue
			}
			recs := readCSV(t, filepath.Join(e.dir, csvKey))
			var headers []string
			for _, c := range part.Columns {
				headers = append(headers, c.Header)
			}
			if !slices.Equal(recs[0], headers) {
				t.Errorf("%s: header %v, want exactly %v", csvKey, recs[0], headers)
			}
			var buf bytes.Buffer
			w := csv.NewWriter(&buf)
			w.WriteAll(recs[:min(4, len(recs))])
			golden := filepath.Join("testdata", "golden", tpl.Slug+strings.ReplaceAll(strings.ToLower(part.Suffix), " ", "")+".csv")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				os.WriteFile(golden, buf.Bytes(), 0o644)
				continue
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./jobs -run Golden -update writes it)", err)
			}
			if buf.String() != string(want) {
				t.Errorf("%s (part %d) differs from %s:\n%s\nwant:\n%s", csvKey, i, golden, buf.String(), want)
			}
		}
	}
}

func TestEveryReportsParquetHasTheSameRowsAsItsCSV(t *testing.T) {
	t.Parallel()
	e := newReportsEnv(t, nil, nil)
	allTemplates(e, t)
	e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{})
	e.run(t, ReportsJob(periods.Weekly), testWeek, runner.Options{})
	checked := 0
	for _, key := range e.files(t, ".parquet") {
		recs := readCSV(t, filepath.Join(e.dir, strings.TrimSuffix(key, ".parquet")+".csv"))
		f, _ := os.Open(filepath.Join(e.dir, key))
		fi, _ := f.Stat()
		names, rows, err := report.ReadParquetText(f, fi.Size())
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		for i, h := range recs[0] {
			if names[i] != report.SnakeCase(h) {
				t.Fatalf("%s: column %d is %q, want %q (snake_case of %q)", key, i, names[i], report.SnakeCase(h), h)
			}
		}
		if len(rows) != len(recs)-1 {
			t.Fatalf("%s: %d Parquet rows, %d CSV rows", key, len(rows), len(recs)-1)
		}
		for r, row := range rows {
			for c, cell := range row {
				a, errA := strconv.ParseFloat(cell, 64)
				b, errB := strconv.ParseFloat(recs[r+1][c], 64)
				if errA == nil && errB == nil && a == b {
					continue // a percentage: 40 in Parquet, 40.0 in CSV
				}
				if report.SafeText(cell) != recs[r+1][c] && cell != recs[r+1][c] {
					t.Fatalf("%s row %d %s: Parquet %q, CSV %q", key, r+1, recs[0][c], cell, recs[r+1][c])
				}
			}
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d Parquet reports checked", checked)
	}
}

// renamed is the demo source with one customer renamed (and optionally created later).
type renamed struct {
	source.Source
	customer string
	name     string
	created  time.Time
}

func (r renamed) Customers(ctx context.Context, day periods.Period, fn func(*source.CustomerDay) error) error {
	return r.Source.Customers(ctx, day, func(cd *source.CustomerDay) error {
		if cd.Customer.CustomerID == r.customer {
			if r.name != "" {
				cd.Customer.CustomerName = r.name
			}
			if !r.created.IsZero() {
				cd.Customer.CreatedAt = r.created
			}
		}
		return fn(cd)
	})
}

// someCustomers are customers of the partner in region, from the demo estate.
func someCustomers(t *testing.T, src source.Source, partner, region string, n int) []string {
	var out []string
	src.Customers(context.Background(), testDay, func(cd *source.CustomerDay) error {
		if cd.Region == region && cd.Customer.PartnerID == partner && len(cd.Devices) > 0 && len(out) < n {
			out = append(out, cd.Customer.CustomerID)
		}
		return nil
	})
	if len(out) < n {
		t.Fatalf("only %d customers of %s in %s", len(out), partner, region)
	}
	return out
}

func TestAFormulaInACustomerNameIsNeutralisedInCSVAndKeptInParquet(t *testing.T) {
	t.Parallel()
	demo := newDemo(t, 0)
	partners, _ := demo.Partners(context.Background(), testDay)
	victim := someCustomers(t, demo, partners[0].PartnerID, "US", 1)[0]
	evil := `=HYPERLINK("http://evil.example/x","Click me")`
	e := newReportsEnv(t, renamed{Source: demo, customer: victim, name: evil}, nil)
	e.add(t, &subscriptions.Subscription{ID: "devices", Template: "devices", Cadence: periods.Daily})
	e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{})
	keys := e.files(t, "region=US/devices/")
	recs := readCSV(t, filepath.Join(e.dir, keys[0]))
	found := false
	for _, r := range recs[1:] {
		if r[2] == victim {
			found = true
			if r[1] != "'"+evil {
				t.Fatalf("CSV customer cell = %q, want the formula neutralised with a ' prefix", r[1])
			}
		}
		for _, cell := range r {
			if strings.HasPrefix(cell, "=") {
				t.Fatalf("a CSV cell starts a formula: %q", cell)
			}
		}
	}
	if !found {
		t.Fatal("the renamed customer is not in the report")
	}
	f, _ := os.Open(filepath.Join(e.dir, strings.TrimSuffix(keys[0], ".csv")+".parquet"))
	defer f.Close()
	fi, _ := f.Stat()
	_, rows, _ := report.ReadParquetText(f, fi.Size())
	for _, r := range rows {
		if r[2] == victim && r[1] != evil {
			t.Fatalf("Parquet customer = %q, want the original text", r[1])
		}
	}
}

func TestASalesAdminSubscriptionReceivesOnlyItsCustomersAndOnlyTheirRegions(t *testing.T) {
	t.Parallel()
	demo := newDemo(t, 0)
	partners, _ := demo.Partners(context.Background(), testDay)
	mine := someCustomers(t, demo, partners[0].PartnerID, "EU", 2)
	e := newReportsEnv(t, demo, nil)
	e.add(t, &subscriptions.Subscription{ID: "rep", Template: "devices", Cadence: periods.Daily, Role: subscriptions.SalesAdmin, Customers: mine})
	e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{})
	keys := e.files(t, ".csv")
	if len(keys) != 1 || !strings.Contains(keys[0], "region=EU/") {
		t.Fatalf("files %v: want one, in EU only (the other regions have none of its customers)", keys)
	}
	seen := map[string]bool{}
	for _, r := range readCSV(t, filepath.Join(e.dir, keys[0]))[1:] {
		seen[r[2]] = true
	}
	if len(seen) != 2 || !seen[mine[0]] || !seen[mine[1]] {
		t.Fatalf("customers in the report: %v, want exactly %v", seen, mine)
	}
}

func TestANewOrganisationAppearsOnlyWhenCreatedAtLeast24HoursBeforeThePeriodsEnd(t *testing.T) {
	t.Parallel()
	demo := newDemo(t, 0)
	partners, _ := demo.Partners(context.Background(), testDay)
	cust := someCustomers(t, demo, partners[0].PartnerID, "US", 1)[0]
	for _, c := range []struct {
		name    string
		created time.Time
		want    bool
	}{
		{"created 12 hours before the end: not yet", testDay.End().Add(-12 * time.Hour), false},
		{"created exactly 24 hours before the end: in", testDay.End().Add(-24 * time.Hour), true},
		{"created 25 hours before the end: in", testDay.End().Add(-25 * time.Hour), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newReportsEnv(t, renamed{Source: demo, customer: cust, created: c.created}, nil)
			e.add(t, &subscriptions.Subscription{ID: "numbers", Template: "phone-numbers", Cadence: periods.Daily})
			e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{})
			found := false
			for _, r := range readCSV(t, filepath.Join(e.dir, e.files(t, "region=US/phone-numbers/")[0]))[1:] {
				found = found || r[2] == cust
			}
			if found != c.want {
				t.Fatalf("customer in the report: %v, want %v", found, c.want)
			}
		})
	}
}

func TestAReportHoldsOnlyItsRegionsCustomersAndAReRunReplacesItsFiles(t *testing.T) {
	t.Parallel()
	e := newReportsEnv(t, nil, nil)
	e.add(t, &subscriptions.Subscription{ID: "calls", Template: "calling-usage-detail", Cadence: periods.Daily})
	e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{})
	home := regionsOf(t, e.src, testDay)
	first := e.files(t, "")
	for _, key := range first {
		if !strings.HasSuffix(key, ".csv") {
			continue
		}
		region := strings.TrimPrefix(strings.Split(key, "/")[1], "region=")
		for _, r := range readCSV(t, filepath.Join(e.dir, key))[1:] {
			if home[r[1]] != region {
				t.Fatalf("%s holds org %s of region %s", key, r[1], home[r[1]])
			}
		}
	}
	e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{Force: true})
	if again := e.files(t, ""); !slices.Equal(first, again) {
		t.Fatalf("a re-run changed the file set:\n%v\n%v", first, again)
	}
}

func TestEmailsGoToTheOutboxOncePerSubscriptionAndAForcedReRunEmailsNobody(t *testing.T) {
	t.Parallel()
	e := newReportsEnv(t, nil, nil)
	e.add(t, &subscriptions.Subscription{ID: "flex", Template: "flex-license-usage", Cadence: periods.Daily})
	e.add(t, &subscriptions.Subscription{ID: "nobody", Template: "flex-license-usage", Cadence: periods.Daily, PartnerID: "P-NO-CUSTOMERS"})
	rec := e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{Email: true})
	if len(rec.Emails) != 2 || rec.Emails[0].Status != "sent" || rec.Emails[0].Via != "outbox" {
		t.Fatalf("emails = %+v", rec.Emails)
	}
	outbox, _ := e.store.List(context.Background(), "outbox/")
	if len(outbox) != 2 {
		t.Fatalf("outbox has %d messages, want 2", len(outbox))
	}
	var noData bool
	for _, o := range outbox {
		b, _, _ := storage.ReadAll(context.Background(), e.store, o.Key)
		noData = noData || strings.Contains(string(b), "no data for 2026-11-21")
	}
	if !noData {
		t.Fatal("the subscription with no rows in any region did not get a no-data email")
	}
	rec = e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{Force: true})
	if len(rec.Emails) != 0 {
		t.Fatalf("a forced re-run without --email sent %d emails", len(rec.Emails))
	}
}

func TestReportsAreSentOverRealSMTPWithBothPartsAndOneLinkPerRegionWithRows(t *testing.T) {
	t.Parallel()
	mp := testservers.NeedMailpit(t)
	smtp, err := mail.NewSMTP(mail.SMTPConfig{Host: mp.Host, Port: mp.Port, TLS: "none", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	demo := newDemo(t, 0)
	partners, _ := demo.Partners(context.Background(), testDay)
	eu := someCustomers(t, demo, partners[0].PartnerID, "EU", 1)
	e := newReportsEnv(t, demo, smtp)
	stamp := strings.ToLower(time.Now().Format("150405.000000"))
	to := "flex-" + stamp + "@example.com"
	e.add(t, &subscriptions.Subscription{ID: "flex", Template: "flex-license-usage", Cadence: periods.Daily, Recipients: []string{to}})
	euOnly := "rep-" + stamp + "@example.com"
	e.add(t, &subscriptions.Subscription{ID: "rep", Template: "devices", Cadence: periods.Daily, Role: subscriptions.SalesAdmin,
		Customers: eu, Recipients: []string{euOnly}})
	rec := e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{Email: true})
	for _, em := range rec.Emails {
		if em.Status != "sent" || !strings.HasPrefix(em.Via, "smtp://") {
			t.Fatalf("ledger email %+v", em)
		}
	}

	msgs := mp.WaitFor(t, "to:"+to, 1)
	if len(msgs) != 1 {
		t.Fatalf("Mailpit has %d messages to %s, want 1", len(msgs), to)
	}
	m := mp.Get(t, msgs[0].ID)
	if m.Subject != "tally: Flex License Usage — daily report for 2026-11-21" {
		t.Fatalf("subject %q", m.Subject)
	}
	if m.Text == "" || m.HTML == "" {
		t.Fatal("the email lacks its plain-text or HTML part")
	}
	for _, region := range model.Regions {
		link := "https://reports.example.com/reports/region=" + region + "/flex-license-usage/daily/2026-11-21/"
		if n := strings.Count(m.Text, link); n != 2 { // CSV and Parquet
			t.Errorf("text part has %d links for %s, want 2 (CSV and Parquet)", n, region)
		}
		if !strings.Contains(m.HTML, link) {
			t.Errorf("HTML part lacks the %s links", region)
		}
	}
	if !strings.Contains(m.Text, "rows in 4 region(s)") {
		t.Errorf("no summary in:\n%s", m.Text)
	}

	msgs = mp.WaitFor(t, "to:"+euOnly, 1)
	if len(msgs) != 1 {
		t.Fatalf("sales admin got %d messages", len(msgs))
	}
	m = mp.Get(t, msgs[0].ID)
	for _, region := range []string{"US", "CA", "UAE"} {
		if strings.Contains(m.Text, "region="+region+"/") {
			t.Errorf("a link to %s, which has no rows for this subscription", region)
		}
	}
	if !strings.Contains(m.Text, "region=EU/devices/") {
		t.Errorf("no EU link:\n%s", m.Text)
	}
}

func TestSMTPDownTheReportIsStillPublishedTheLedgerShowsTheFailureAndResendDelivers(t *testing.T) {
	t.Parallel()
	mp := testservers.NeedMailpit(t)
	down, _ := mail.NewSMTP(mail.SMTPConfig{Host: "127.0.0.1", Port: closedPort(t), TLS: "none", Timeout: time.Second})
	e := newReportsEnv(t, nil, down)
	to := "resend-" + strings.ToLower(time.Now().Format("150405.000000")) + "@example.com"
	e.add(t, &subscriptions.Subscription{ID: "flex", Template: "flex-license-usage", Cadence: periods.Daily, Recipients: []string{to}})
	rec := e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{Email: true})
	if rec.Status != runner.StatusSucceeded || len(e.files(t, "flex-license-usage")) == 0 {
		t.Fatalf("the run %s and published %d files: a failed send must not fail or lose the report", rec.Status, len(e.files(t, "flex")))
	}
	if len(rec.Emails) != 2 || rec.Emails[0].Status != "failed" || rec.Emails[0].Error == "" {
		t.Fatalf("ledger emails %+v: want both tries recorded as failed", rec.Emails)
	}

	// Mailpit is back: resend with a working sender.
	up, _ := mail.NewSMTP(mail.SMTPConfig{Host: mp.Host, Port: mp.Port, TLS: "none", Timeout: 5 * time.Second})
	for _, j := range e.r.Jobs() {
		if rj, ok := j.(*Reports); ok {
			rj.Sender = up
		}
	}
	after, err := e.r.Resend(context.Background(), rec.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if last := after.Emails[len(after.Emails)-1]; last.Status != "sent" {
		t.Fatalf("resend: %+v", last)
	}
	if msgs := mp.WaitFor(t, "to:"+to, 1); len(msgs) != 1 {
		t.Fatalf("Mailpit has %d messages after resend, want 1", len(msgs))
	}
	stored, _ := e.r.Ledger().Latest(context.Background(), ReportsJob(periods.Daily), testDay.ID())
	if len(stored.Emails) != 3 {
		t.Fatalf("the ledger holds %d sends, want the 2 failures and the resend", len(stored.Emails))
	}
}

func closedPort(t *testing.T) int {
	l, err := (&netListener{}).listen()
	if err != nil {
		t.Fatal(err)
	}
	port := l.port
	l.close()
	return port
}

func TestARecipientWithANewlineIsRefusedNeverAHeader(t *testing.T) {
	t.Parallel()
	catalog, _ := subscriptions.NewCatalog(nil)
	s := &subscriptions.Subscription{ID: "x", PartnerID: "P1", Template: "devices", Cadence: periods.Daily, Role: subscriptions.FullAdmin,
		Formats: []string{"csv"}, Recipients: []string{"ops@example.com\r\nBcc: victim@example.com"}}
	if err := catalog.Validate(s); err == nil || !strings.Contains(err.Error(), "line break") {
		t.Fatalf("validate: %v", err)
	}
	// Even a tampered stored subscription never reaches a header.
	m := &mail.Message{ID: "r/1", From: "tally@example.com", To: s.Recipients, Subject: "x", Date: time.Now()}
	if _, err := mail.EML(m); err == nil || !strings.Contains(err.Error(), "line break") {
		t.Fatalf("EML with an injected header: %v", err)
	}
	m.To, m.Subject = []string{"ops@example.com"}, "hi\r\nBcc: victim@example.com"
	if _, err := mail.EML(m); err == nil {
		t.Fatal("a subject with a line break was accepted")
	}
}

// --format xlsx for every template: each workbook opens, its header is the
// CSV's, its rows are the CSV's, and ids, MACs and phone numbers are text
// cells while numbers are numbers.
// everyTemplateXLSX writes every built-in template as CSV and XLSX (the demo
// at 200 customers) and returns the env and the XLSX keys.
func everyTemplateXLSX(t *testing.T) (*reportsEnv, []string) {
	demo, _ := demoSource(200)
	e := newReportsEnv(t, demo, nil)
	for _, tpl := range report.BuiltIns {
		cadence := periods.Daily
		if tpl.Range == report.WeekRange {
			cadence = periods.Weekly
		}
		e.add(t, &subscriptions.Subscription{ID: tpl.Slug, Template: tpl.Slug, Cadence: cadence, Formats: []string{"csv", "xlsx"}})
	}
	e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{})
	e.run(t, ReportsJob(periods.Weekly), testWeek, runner.Options{})
	return e, e.files(t, ".xlsx")
}

func TestXLSXWorksForEveryTemplateWithTheCSVsHeaderRowsAndTypedCells(t *testing.T) {
	t.Parallel()
	e, keys := everyTemplateXLSX(t)
	seen := map[string]bool{}
	for _, key := range keys {
		f, err := excelize.OpenFile(filepath.Join(e.dir, key))
		if err != nil {
			t.Fatalf("%s does not open: %v", key, err)
		}
		sheets := f.GetSheetList()
		rows, _ := f.GetRows(sheets[0])
		recs := readCSV(t, filepath.Join(e.dir, strings.TrimSuffix(key, ".xlsx")+".csv"))
		if strings.Join(rows[0], "|") != strings.Join(recs[0], "|") || len(rows) != len(recs) {
			t.Errorf("%s: header %v and %d rows; the CSV has %v and %d", key, rows[0], len(rows), recs[0], len(recs))
		}
		for c, h := range recs[0] {
			cell, _ := excelize.CoordinatesToCellName(c+1, 2)
			typ, _ := f.GetCellType(sheets[0], cell)
			v, _ := f.GetCellValue(sheets[0], cell)
			switch {
			case v == "":
			case h == "MAC Address" || h == "Phone Number" || h == "Extension" || strings.HasSuffix(h, "ID") || strings.HasSuffix(h, "UUID") || h == "Customer Name":
				if typ != excelize.CellTypeInlineString {
					t.Errorf("%s %s (%q) is a %v cell, want text", key, h, v, typ)
				}
			case h == "Entitled" || h == "Total Licenses" || h == "Call Minutes" || strings.HasSuffix(h, "Percent"):
				if typ != excelize.CellTypeUnset {
					t.Errorf("%s %s (%q) is a %v cell, want a number", key, h, v, typ)
				}
			}
		}
		f.Close()
		for _, tpl := range report.BuiltIns {
			if strings.Contains(key, "/"+tpl.Slug+"/") {
				seen[tpl.Slug] = true
			}
		}
	}
	for _, tpl := range report.BuiltIns {
		if !seen[tpl.Slug] {
			t.Errorf("no XLSX for %s", tpl.Name)
		}
	}
}

func TestReportsSortedByCustomerNameAreByteIdenticalWhenTheirSortSpillsToDisk(t *testing.T) {
	t.Parallel()
	slugs := []string{"flex-license-usage", "calling-usage-detail"}
	run := func(sortRun int) map[string][]byte {
		e := newReportsEnv(t, nil, nil)
		for _, r := range e.reports {
			r.SortRun = sortRun
		}
		for _, slug := range slugs {
			e.add(t, &subscriptions.Subscription{ID: slug, Template: slug, Cadence: periods.Daily, Formats: []string{"csv", "parquet", "xlsx"}})
		}
		e.run(t, ReportsJob(periods.Daily), testDay, runner.Options{})
		out := map[string][]byte{}
		for _, k := range e.files(t, "") {
			b, err := os.ReadFile(filepath.Join(e.dir, k))
			if err != nil {
				t.Fatal(err)
			}
			out[k] = b
		}
		return out
	}
	inMemory, spilled := run(0), run(3)
	for _, slug := range slugs {
		var csvRows int
		for k, b := range inMemory {
			if strings.Contains(k, "/"+slug+"/") && strings.HasSuffix(k, ".csv") {
				csvRows += bytes.Count(b, []byte("\n")) - 1
			}
		}
		if csvRows <= 3 {
			t.Fatalf("%s: %d rows, too few for runs of 3 to spill", slug, csvRows)
		}
	}
	if len(inMemory) == 0 || len(inMemory) != len(spilled) {
		t.Fatalf("%d report files sorted in memory, %d with the sort spilled", len(inMemory), len(spilled))
	}
	for k, b := range inMemory {
		if !bytes.Equal(b, spilled[k]) {
			t.Errorf("%s differs when its sort spills runs of 3 rows", k)
		}
	}
}
