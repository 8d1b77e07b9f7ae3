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
	if auth.Type == "" {
		auth.Type, auth.Anonymous = "none", Operator // a console on loopback
	}
	if auth.SessionTTL == 0 {
		auth.SessionTTL = 12 * time.Hour
	}
	c := &Console{Runner: r, Registry: reg, Stores: stores, Clock: clk, Auth: auth, Key: key, Log: zerolog.Nop(),
		Plan: func(ctx context.Context, view []*runner.Record, now time.Time, back int) ([]plan.JobPlan, error) {
			p, _, err := plan.Compute(ctx, r, reg, view, nil, now, plan.Window{Back: back})
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

var tokens = []Token{{Name: "alice", Role: Operator, Secret: "correct-horse-battery"}, {Name: "bob", Role: Viewer, Secret: "tr0ub4dor-and-three"}}

// login logs in with a token and returns the session cookie.
func (e *env) login(t *testing.T, token string) *http.Cookie {
	t.Helper()
	w := e.post(t, "/login", url.Values{"token": {token}, "next": {"/runs"}})
	cookies := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("login: %d, cookies %+v", w.Code, cookies)
	}
	return cookies[0]
}

func page(r *http.Request) { r.Header.Set("Accept", "text/html,application/xhtml+xml") }

func TestWithoutASessionAPageGoesToLoginAndEverythingElseGets401ButTheRoutesOutsideTheLogin(t *testing.T) {
	e := newEnv(t, Auth{Type: "token", Tokens: tokens})
	if w := e.get(t, "/runs", page); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?next=%2Fruns" {
		t.Fatalf("a page without a session: %d %q, want 303 to /login", w.Code, w.Header().Get("Location"))
	}
	for _, path := range []string{"/runs", "/files/US/reports/region=US/x.csv"} { // not a page a person opened: 401
		if w := e.get(t, path); w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s without a session (no Accept: text/html): %d, want 401", path, w.Code)
		}
	}
	if w := e.get(t, "/files/US/reports/region=US/x.csv", page); w.Code != http.StatusUnauthorized {
		t.Errorf("a download without a session: %d, want 401", w.Code)
	}
	if w := e.post(t, "/logout", url.Values{}); w.Code != http.StatusUnauthorized {
		t.Errorf("a POST without a session: %d, want 401", w.Code)
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if w := e.get(t, path); w.Code != 200 || w.Body.String() != "other "+path {
			t.Errorf("%s is not outside the login: %d", path, w.Code)
		}
	}
	if w := e.get(t, "/static/"); w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), "console.css") {
		t.Errorf("/static/ lists its folder: %d %s", w.Code, w.Body.String())
	}
}

func TestATokenLoginStartsARandomServerSideSessionThatLogoutEnds(t *testing.T) {
	e := newEnv(t, Auth{Type: "token", Tokens: tokens})
	if w := e.post(t, "/login", url.Values{"token": {"wrong"}, "next": {"/reports"}}); w.Code != http.StatusUnauthorized {
		t.Errorf("a wrong token: %d", w.Code)
	}
	w := e.post(t, "/login", url.Values{"token": {"correct-horse-battery"}, "next": {"//evil.example/x"}})
	cookies := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/runs" || len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: %d to %q, cookies %+v (an off-site next is refused)", w.Code, w.Header().Get("Location"), cookies)
	}
	first := cookies[0]
	if second := e.login(t, "correct-horse-battery"); second.Value == first.Value {
		t.Error("two logins with one token got the same cookie: a session must be random, not derived from the token")
	}
	if strings.Contains(first.Value, "correct-horse") {
		t.Fatal("the session cookie holds the token")
	}
	with := func(c *http.Cookie) func(*http.Request) { return func(r *http.Request) { r.AddCookie(c) } }
	if w := e.get(t, "/runs", with(first)); w.Code != 200 || !strings.Contains(w.Body.String(), `id="who"`) || !strings.Contains(w.Body.String(), "alice") {
		t.Fatalf("/runs with the session: %d, or the page does not say who is logged in", w.Code)
	}
	// The session is the control store's, written 0600 under _secrets/.
	sessions, _ := e.c.sessions.List(context.Background())
	if len(sessions) != 2 || sessions[0].Name != "alice" || sessions[0].Role != Operator {
		t.Fatalf("the stored sessions: %+v", sessions)
	}
	for _, forged := range []string{"forged", first.Value + "A", strings.ToUpper(first.Value)} {
		if w := e.get(t, "/runs", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: sessionCookie, Value: forged}) }); w.Code == 200 {
			t.Errorf("a forged session cookie %q was accepted", forged)
		}
	}
	// Logout needs the form's token; then the old cookie gets 401.
	if w := e.post(t, "/logout", url.Values{}, with(first)); w.Code != http.StatusForbidden {
		t.Errorf("a logout without the form's token: %d, want 403", w.Code)
	}
	mine, err := e.c.sessions.Get(context.Background(), first.Value)
	if err != nil {
		t.Fatal(err)
	}
	csrf := e.c.csrf(&Identity{Name: "alice", Role: Operator, Session: mine})
	if w := e.post(t, "/logout", url.Values{"csrf": {csrf}}, with(first)); w.Code != http.StatusSeeOther {
		t.Fatalf("logout: %d", w.Code)
	}
	if w := e.get(t, "/runs", with(first)); w.Code != http.StatusUnauthorized {
		t.Errorf("the logged-out cookie: %d, want 401", w.Code)
	}
}

func TestChangingATokenEndsItsSessions(t *testing.T) {
	e := newEnv(t, Auth{Type: "token", Tokens: tokens})
	bob := e.login(t, "tr0ub4dor-and-three")
	e.c.Auth.Tokens = []Token{tokens[0], {Name: "bob", Role: Viewer, Secret: "a-new-token-for-bob"}}
	if w := e.get(t, "/runs", func(r *http.Request) { r.AddCookie(bob) }); w.Code != http.StatusUnauthorized {
		t.Errorf("a session of a changed token: %d, want 401", w.Code)
	}
	if all, _ := e.c.sessions.List(context.Background()); len(all) != 0 {
		t.Errorf("the changed token's session is still stored: %+v", all)
	}
}

func TestLoginIsRateLimitedPerClient(t *testing.T) {
	e := newEnv(t, Auth{Type: "token", Tokens: tokens})
	// Right tokens spend no tries: an operator logging in often is never refused.
	for range 10 {
		if w := e.post(t, "/login", url.Values{"token": {"correct-horse-battery"}}, func(r *http.Request) { r.RemoteAddr = "203.0.113.7:4444" }); w.Code != http.StatusSeeOther {
			t.Fatalf("a right token, logging in again: %d", w.Code)
		}
	}
	codes := map[int]int{}
	for range 30 {
		codes[e.post(t, "/login", url.Values{"token": {"guess"}}, func(r *http.Request) { r.RemoteAddr = "203.0.113.7:4444" }).Code]++
	}
	if codes[http.StatusTooManyRequests] < 20 || codes[http.StatusUnauthorized] > 6 {
		t.Errorf("30 wrong tokens from one client: %v, want most refused with 429", codes)
	}
	if w := e.post(t, "/login", url.Values{"token": {"correct-horse-battery"}}, func(r *http.Request) { r.RemoteAddr = "203.0.113.7:4444" }); w.Code != http.StatusTooManyRequests {
		t.Errorf("the right token from the client refused for wrong ones: %d, want 429 until it waits", w.Code)
	}
	if w := e.post(t, "/login", url.Values{"token": {"correct-horse-battery"}}, func(r *http.Request) { r.RemoteAddr = "198.51.100.1:4444" }); w.Code != http.StatusSeeOther {
		t.Errorf("another client's login: %d", w.Code)
	}
}

func TestAUserHeaderIsTrustedOnlyFromTheConfiguredProxiesWithEachUsersRole(t *testing.T) {
	e := newEnv(t, Auth{Type: "header", UserHeader: "X-Forwarded-User", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Users: map[string]Role{"alice": Operator}, DefaultRole: Viewer})
	from := func(addr, user string) func(*http.Request) {
		return func(r *http.Request) {
			r.RemoteAddr = addr
			if user != "" {
				r.Header.Set("X-Forwarded-User", user)
			}
		}
	}
	if w := e.get(t, "/runs", from("10.1.2.3:5555", "alice")); w.Code != 200 || !strings.Contains(w.Body.String(), "alice · operator") {
		t.Errorf("from the proxy with a user: %d", w.Code)
	}
	if w := e.get(t, "/runs", from("10.1.2.3:5555", "carol")); w.Code != 200 || !strings.Contains(w.Body.String(), "carol · viewer") {
		t.Errorf("a user not listed gets the default role: %d", w.Code)
	}
	if w := e.get(t, "/runs", from("192.168.1.9:5555", "alice")); w.Code != http.StatusUnauthorized {
		t.Errorf("a user header from elsewhere: %d, want 401", w.Code)
	}
	if w := e.get(t, "/runs", from("10.1.2.3:5555", "")); w.Code != http.StatusUnauthorized {
		t.Errorf("from the proxy with no user: %d, want 401", w.Code)
	}
	e.c.Auth.DefaultRole = ""
	if w := e.get(t, "/runs", from("10.1.2.3:5555", "carol")); w.Code != http.StatusUnauthorized {
		t.Errorf("with no default role, a user not listed: %d, want 401", w.Code)
	}
}

func TestAnAnonymousConsoleOnTheNetworkSaysSoOnEveryPage(t *testing.T) {
	e := newEnv(t, Auth{Type: "none", Anonymous: Viewer, Exposed: true})
	for _, path := range []string{"/runs", "/analytics", "/reports"} {
		if body := e.get(t, path).Body.String(); !strings.Contains(body, `id="anonymous-banner"`) {
			t.Errorf("%s has no banner", path)
		}
	}
}

func TestUnsubscribeRemovesThatOneRecipientFromThatOneSubscriptionAndAGetChangesNothing(t *testing.T) {
	e := newEnv(t, Auth{Type: "token", Tokens: tokens}) // unsubscribe needs no login
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

func TestAnOperatorReRunsAPeriodAfterConfirmingAndTheLedgerSaysWhoAViewerGets403(t *testing.T) {
	e := newEnv(t, Auth{Type: "token", Tokens: tokens})
	e.c.Act = func(fn func(context.Context)) { fn(context.Background()) } // as tally serve runs it, but now
	var ran []string
	e.c.Done = func(job string, res *runner.Result, err error) { ran = append(ran, job) }
	alice, bob := e.login(t, "correct-horse-battery"), e.login(t, "tr0ub4dor-and-three")
	as := func(c *http.Cookie) func(*http.Request) { return func(r *http.Request) { r.AddCookie(c) } }
	ctx := context.Background()
	csrfOf := func(c *http.Cookie, name string, role Role) string {
		s, err := e.c.sessions.Get(ctx, c.Value)
		if err != nil {
			t.Fatal(err)
		}
		return e.c.csrf(&Identity{Name: name, Role: role, Session: s})
	}

	if body := e.get(t, "/runs/sync-clusters/2026-11-21", as(bob)).Body.String(); strings.Contains(body, `id="rerun"`) {
		t.Error("a viewer is offered the re-run")
	}
	form := url.Values{"job": {"sync-clusters"}, "period": {"2026-11-21"}, "region": {"US"}, "csrf": {csrfOf(bob, "bob", Viewer)}, "confirm": {"yes"}}
	if w := e.post(t, "/actions/rerun", form, as(bob)); w.Code != http.StatusForbidden {
		t.Errorf("a viewer's re-run: %d, want 403", w.Code)
	}
	if !strings.Contains(e.get(t, "/runs/sync-clusters/2026-11-21", as(alice)).Body.String(), `id="rerun"`) {
		t.Fatal("an operator is not offered the re-run")
	}
	form.Set("csrf", "")
	if w := e.post(t, "/actions/rerun", form, as(alice)); w.Code != http.StatusForbidden {
		t.Errorf("a re-run without the form's token: %d, want 403", w.Code)
	}
	form.Set("csrf", csrfOf(alice, "alice", Operator))
	form.Del("confirm")
	w := e.post(t, "/actions/rerun", form, as(alice))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `id="confirm"`) || !strings.Contains(w.Body.String(), "inventory/customers/region=US/day=2026-11-21") {
		t.Fatalf("the confirmation page: %d, or it does not show what would be written:\n%s", w.Code, w.Body.String())
	}
	if attempts, _ := e.c.Runner.Ledger().Attempts(ctx, "sync-clusters", "2026-11-21"); len(attempts) != 1 {
		t.Fatalf("the confirmation page ran something: %d attempts", len(attempts))
	}
	form.Set("confirm", "yes")
	if w := e.post(t, "/actions/rerun", form, as(alice)); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/runs/sync-clusters/2026-11-21?started=1" {
		t.Fatalf("the confirmed re-run: %d %q", w.Code, w.Header().Get("Location"))
	}
	attempts, _ := e.c.Runner.Ledger().Attempts(ctx, "sync-clusters", "2026-11-21")
	last := attempts[len(attempts)-1]
	if len(attempts) != 2 || last.By != "alice" || last.Trigger != "console" || !last.Forced || strings.Join(last.Regions, ",") != "US" || last.Status != runner.StatusSucceeded {
		t.Fatalf("the ledger after the re-run: %d attempts, the last %+v", len(attempts), last)
	}
	if strings.Join(ran, ",") != "sync-clusters" {
		t.Errorf("metrics and alerts heard of %v", ran)
	}
	page := e.get(t, "/runs/sync-clusters/2026-11-21", as(alice)).Body.String()
	if !strings.Contains(page, `console (forced) by <strong class="by">alice</strong>`) || !strings.Contains(page, `class="download" href="/files/US/inventory/customers/region=US/day=2026-11-21/part-0.parquet"`) {
		t.Errorf("the run page does not say who re-ran it, or link its outputs")
	}
	if w := e.get(t, "/files/US/inventory/customers/region=US/day=2026-11-21/part-0.parquet", as(alice)); w.Code != 200 || !strings.HasPrefix(w.Body.String(), "PAR1") {
		t.Errorf("an output's download: %d", w.Code)
	}
}
