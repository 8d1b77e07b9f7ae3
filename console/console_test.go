package console

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"tally/analytics"
	"tally/clock"
	"tally/jobs"
	"tally/model"
	"tally/periods"
	"tally/plan"
	"tally/runner"
	"tally/source/demo"
	"tally/storage"
	"tally/storage/local"
	"tally/subscriptions"
)

var (
	now = time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	day = periods.Containing(periods.Daily, time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))
	key = []byte("0123456789abcdef0123456789abcdef")
)

// env is a console over a local store with the demo's jobs; one day synced.
type env struct {
	c     *Console
	store storage.Store
	h     http.Handler
}

func newEnv(t *testing.T, auth Auth) *env {
	t.Helper()
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src, _ := demo.New(demo.Options{Seed: 7, Scale: 20})
	ledger := &runner.Ledger{Store: store}
	catalog, _ := subscriptions.NewCatalog(nil)
	reg := jobs.NewRegistry(nil, &jobs.Sync{Source: src, Ledger: ledger}, &jobs.Usage{UnderThreshold: 0.5},
		&jobs.WeeklyAnalytics{Ledger: ledger, Thresholds: analytics.DefaultThresholds, LowBelow: 0.5},
		&jobs.Reports{Every: periods.Daily, Catalog: catalog, From: "tally@example.com"})
	clk := clock.NewFake(now)
	cfg := runner.DefaultConfig()
	cfg.MaxAttempts = 1
	stores := storage.Single(store, model.Regions)
	r := runner.New(reg.Jobs(), stores, clk, cfg, runner.Holder{Host: "t", PID: 1}, zerolog.Nop())
	if _, err := r.Run(context.Background(), jobs.SyncClusters, day, runner.Options{}); err != nil {
		t.Fatal(err)
	}
	c := &Console{Runner: r, Registry: reg, Stores: stores, Clock: clk, Auth: auth, UnsubscribeKey: key, Log: zerolog.Nop(),
		Plan: func(ctx context.Context, view []*runner.Record, now time.Time, back int) ([]plan.JobPlan, error) {
			p, _, err := plan.Compute(ctx, r, reg, view, nil, now, time.Time{}, time.Time{}, back)
			return p, err
		}}
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	other := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "other "+r.URL.Path) })
	return &env{c: c, store: store, h: c.Handler(other)}
}

func (e *env) get(t *testing.T, target string, mod ...func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for _, m := range mod {
		m(req)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

func (e *env) post(t *testing.T, target string, form url.Values, mod ...func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, m := range mod {
		m(req)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

func TestEveryPageHasASecurityPolicyWithoutInlineScriptAndNoSniff(t *testing.T) {
	e := newEnv(t, Auth{})
	for _, path := range []string{"/runs", "/runs/sync-clusters/2026-11-21", "/analytics", "/reports", "/runs?status=bogus", "/static/console.css"} {
		w := e.get(t, path)
		csp := w.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", path)
		}
		if body := w.Body.String(); strings.Contains(body, "<script") || strings.Contains(body, " style=\"") {
			t.Errorf("%s: inline script or style in the page", path)
		}
	}
}

func TestTheRunsGridShowsEachJobsPeriodsByStateAndFiltersThem(t *testing.T) {
	e := newEnv(t, Auth{})
	w := e.get(t, "/runs?n=3")
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, `data-job="sync-clusters"`) || !strings.Contains(body, `href="/runs/sync-clusters/2026-11-21" data-period="2026-11-21" data-state="complete"`) ||
		!strings.Contains(body, `data-period="2026-11-20" data-state="missing"`) {
		t.Fatalf("the grid does not show sync-clusters 2026-11-21 complete and 2026-11-20 missing:\n%s", body)
	}
	body = e.get(t, "/runs?n=3&job=license-usage&status=missing").Body.String()
	if strings.Contains(body, `data-job="sync-clusters"`) || !strings.Contains(body, `id="matches"`) || !strings.Contains(body, ">2026-11-21</a>") {
		t.Errorf("filtering by job and status: %s", body)
	}
	run := e.get(t, "/runs/sync-clusters/2026-11-21").Body.String()
	if !strings.Contains(run, "sync-clusters/2026-11-21/0001") || !strings.Contains(run, "inventory/customers/region=US/day=2026-11-21/part-0.parquet") {
		t.Errorf("the run page lacks the record's id or outputs")
	}
}

func TestBadInputIsA400NamingTheParameter(t *testing.T) {
	e := newEnv(t, Auth{})
	for path, want := range map[string]string{
		"/runs?status=bogus":                     "status=",
		"/runs?n=0":                              "n=",
		"/runs?job=sync-everything":              "sync-everything",
		"/runs?period=%3Cscript%3E":              "period=",
		"/runs/sync-clusters/2026-13-45":         "2026-13-45",
		"/analytics?partner=%3Cimg%20src%3Dx%3E": "partner=",
		"/analytics?week=yesterday":              "yesterday",
		"/unsubscribe?t=not-a-token":             "not valid",
	} {
		w := e.get(t, path)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), want) {
			t.Errorf("%s: %d, want 400 naming %q:\n%s", path, w.Code, want, w.Body.String())
		}
		if strings.Contains(w.Body.String(), "<img src=x>") || strings.Contains(w.Body.String(), "<script>") {
			t.Errorf("%s: the input is echoed unescaped", path)
		}
	}
	if w := e.get(t, "/runs/no-such-job/2026-11-21"); w.Code != http.StatusNotFound {
		t.Errorf("an unknown job's page: %d, want 404", w.Code)
	}
}

func TestReportFilesAreServedOnlyFromTheirRegionsReportsPrefix(t *testing.T) {
	e := newEnv(t, Auth{})
	ctx := context.Background()
	file := "reports/region=US/devices/daily/2026-11-21/Devices_abcd1234_2026-11-22.csv"
	e.store.Put(ctx, file, strings.NewReader("External ID,Customer\n,Zürich AG\n"))
	e.store.Put(ctx, "_secrets/unsubscribe-key", strings.NewReader("s3cr3t-key-bytes"))
	w := e.get(t, "/files/US/"+file)
	if w.Code != 200 || w.Body.String() != "External ID,Customer\n,Zürich AG\n" || !strings.Contains(w.Header().Get("Content-Disposition"), `attachment; filename=Devices_abcd1234_2026-11-22.csv`) {
		t.Fatalf("download: %d %q %q", w.Code, w.Header().Get("Content-Disposition"), w.Body.String())
	}
	for _, path := range []string{"/files/US/_secrets/unsubscribe-key", "/files/EU/" + file, "/files/US/reports/region=US/../../_secrets/unsubscribe-key",
		"/files/US/reports%2Fregion=US%2F..%2F..%2F_secrets%2Funsubscribe-key", "/files/US/_runs/sync-clusters/2026-11-21/0001.json", "/files/MARS/" + file} {
		w := e.get(t, path)
		if w.Code == 200 || strings.Contains(w.Body.String(), "s3cr3t-key-bytes") {
			t.Errorf("%s: %d, served outside a region's reports", path, w.Code)
		}
	}
}

func TestATokenLoginSetsASessionCookieAndEveryPageButTheExemptOnesNeedsIt(t *testing.T) {
	e := newEnv(t, Auth{Token: "correct-horse-battery"})
	if w := e.get(t, "/runs"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?next=%2Fruns" {
		t.Fatalf("/runs without a session: %d %q", w.Code, w.Header().Get("Location"))
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if w := e.get(t, path); w.Code != 200 || w.Body.String() != "other "+path {
			t.Errorf("%s is not exempt: %d", path, w.Code)
		}
	}
	if w := e.post(t, "/login", url.Values{"token": {"wrong"}, "next": {"/reports"}}); w.Code != http.StatusUnauthorized {
		t.Errorf("a wrong token: %d", w.Code)
	}
	w := e.post(t, "/login", url.Values{"token": {"correct-horse-battery"}, "next": {"//evil.example/x"}})
	cookies := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/runs" || len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: %d to %q, cookies %+v (an off-site next is refused)", w.Code, w.Header().Get("Location"), cookies)
	}
	if strings.Contains(cookies[0].Value, "correct-horse") {
		t.Fatal("the session cookie holds the token")
	}
	if w := e.get(t, "/runs", func(r *http.Request) { r.AddCookie(cookies[0]) }); w.Code != 200 {
		t.Errorf("/runs with the session: %d", w.Code)
	}
	if w := e.get(t, "/runs", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: sessionCookie, Value: "forged"}) }); w.Code == 200 {
		t.Error("a forged session cookie was accepted")
	}
}

func TestAUserHeaderIsTrustedOnlyFromTheConfiguredProxies(t *testing.T) {
	e := newEnv(t, Auth{UserHeader: "X-Forwarded-User", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	from := func(addr, user string) func(*http.Request) {
		return func(r *http.Request) {
			r.RemoteAddr = addr
			if user != "" {
				r.Header.Set("X-Forwarded-User", user)
			}
		}
	}
	if w := e.get(t, "/runs", from("10.1.2.3:5555", "alice")); w.Code != 200 {
		t.Errorf("from the proxy with a user: %d", w.Code)
	}
	if w := e.get(t, "/runs", from("192.168.1.9:5555", "alice")); w.Code != http.StatusUnauthorized {
		t.Errorf("a user header from elsewhere: %d, want 401", w.Code)
	}
	if w := e.get(t, "/runs", from("10.1.2.3:5555", "")); w.Code != http.StatusUnauthorized {
		t.Errorf("from the proxy with no user: %d, want 401", w.Code)
	}
}

func TestUnsubscribeRemovesThatOneRecipientFromThatOneSubscriptionAndAGetChangesNothing(t *testing.T) {
	e := newEnv(t, Auth{Token: "correct-horse-battery"}) // unsubscribe needs no login
	ctx := context.Background()
	subs := &subscriptions.Store{S: e.store}
	for _, s := range []*subscriptions.Subscription{
		{ID: "flex", PartnerID: "P1", Template: "flex-license-usage", Cadence: periods.Daily, Recipients: []string{"x@example.com", "y@example.com"}, Role: subscriptions.FullAdmin, Formats: []string{"csv"}},
		{ID: "devices", PartnerID: "P1", Template: "devices", Cadence: periods.Daily, Recipients: []string{"x@example.com"}, Role: subscriptions.FullAdmin, Formats: []string{"csv"}},
	} {
		if err := subs.Add(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	token := subscriptions.Token(key, "flex", "x@example.com")
	if w := e.get(t, "/unsubscribe?t="+url.QueryEscape(token)); w.Code != 200 || !strings.Contains(w.Body.String(), `id="confirm"`) {
		t.Fatalf("the confirmation page: %d", w.Code)
	}
	if s, _ := subs.Get(ctx, "flex"); len(s.Recipients) != 2 {
		t.Fatal("a GET unsubscribed (mail scanners follow links)")
	}
	// RFC 8058 one-click: a POST to the header's URL with List-Unsubscribe=One-Click.
	if w := e.post(t, "/unsubscribe?t="+url.QueryEscape(token), url.Values{"List-Unsubscribe": {"One-Click"}}); w.Code != 200 {
		t.Fatalf("one-click POST: %d %s", w.Code, w.Body.String())
	}
	flex, _ := subs.Get(ctx, "flex")
	dev, _ := subs.Get(ctx, "devices")
	if strings.Join(flex.Recipients, ",") != "y@example.com" || len(flex.Unsubscribed) != 1 || flex.Unsubscribed[0].Address != "x@example.com" || !flex.Unsubscribed[0].At.Equal(now) {
		t.Errorf("flex after unsubscribing x: %+v", flex)
	}
	if strings.Join(dev.Recipients, ",") != "x@example.com" {
		t.Errorf("another subscription of x changed: %+v", dev)
	}
	tampered := subscriptions.Token(key, "devices", "x@example.com")
	tampered = tampered[:len(tampered)-2] + "AA"
	if w := e.post(t, "/unsubscribe", url.Values{"t": {tampered}}); w.Code != http.StatusBadRequest {
		t.Errorf("a tampered token: %d, want 400", w.Code)
	}
	if s, _ := subs.Get(ctx, "devices"); len(s.Recipients) != 1 {
		t.Error("a tampered token unsubscribed")
	}
}
