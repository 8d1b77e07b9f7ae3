package browser

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The tests of issue 25, in the order they share the demo site: the grid
// before anything is re-run, then security, then the re-run that makes weeks
// stale and the backfill that clears them.

func TestThirtyPeriodsFitOnOneLineAt1280PxWithDatesAndNoGapsBeforeTheStartDate(t *testing.T) {
	ctx := browser(t, 1280)
	s := demoSite(t)
	s.login(t, ctx, "alice")
	open(t, ctx, s.url+"/runs", "#grid")
	screenshot(t, ctx, "runs-1280")
	type row struct {
		Job    string
		Cells  int
		Tops   int
		Labels []string
		Gaps   string
		Right  float64
	}
	rows := eval[[]row](t, ctx, `Array.from(document.querySelectorAll('#grid tr[data-job]')).map(tr => ({
		Job: tr.dataset.job,
		Cells: tr.querySelectorAll('.cell').length,
		Tops: new Set(Array.from(tr.querySelectorAll('.cell')).map(c => Math.round(c.getBoundingClientRect().top))).size,
		Labels: Array.from(tr.querySelectorAll('.axis span')).map(s => s.textContent).filter(x => x),
		Gaps: tr.querySelector('td.num').textContent,
		Right: Math.max(...Array.from(tr.querySelectorAll('.cell')).map(c => c.getBoundingClientRect().right)),
	}))`)
	width := eval[float64](t, ctx, `document.querySelector('.grid-wrap').getBoundingClientRect().right`)
	for _, r := range rows {
		if r.Cells != 30 || r.Tops != 1 {
			t.Errorf("%s: %d cells on %d lines at 1280 px, want 30 on one", r.Job, r.Cells, r.Tops)
		}
		if len(r.Labels) < 3 {
			t.Errorf("%s: the period axis labels %v, want a date every few periods", r.Job, r.Labels)
		}
		if r.Gaps != "0" {
			t.Errorf("%s: %s gaps on make demo's fresh install (periods before its first run are not gaps)", r.Job, r.Gaps)
		}
		if r.Right > width+1 {
			t.Errorf("%s: its cells end at %.0f px, beyond the grid's %.0f", r.Job, r.Right, width)
		}
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#grid .cell[data-state="before-start"]').length`); n == 0 {
		t.Error("no period shows before-start: the demo's fresh ledger starts today")
	}
	// A cell's hover says its state, attempts, duration and rows.
	title := eval[string](t, ctx, `document.querySelector('#grid tr[data-job="license-usage"] .cell[data-state="complete"]').title`)
	if !regexp.MustCompile(`complete · 1 attempt · took \S+ · \d+ rows`).MatchString(title) {
		t.Errorf("a complete cell's hover reads %q, want its state, attempts, duration and rows", title)
	}
	if code := exec.Command(s.bin, "--config", s.config, "plan", "--check").Run(); code != nil {
		t.Errorf("tally plan --check on make demo's fresh install: %v (periods before its first run are not gaps)", code)
	}
}

func TestTheAnalyticsPageNamesCustomersAndPartnersWithNoBareUUIDInATableCellAndItsCountsAgree(t *testing.T) {
	ctx := browser(t, 1400)
	s := demoSite(t)
	s.login(t, ctx, "victor")
	open(t, ctx, s.url+"/analytics", "#selector")
	partners := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('select[name=partner] option')).map(o => o.value + '|' + o.textContent)`)
	uuid := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	pct := regexp.MustCompile(`%`)
	onePct := regexp.MustCompile(`^(\d+\.\d%)( – \d+\.\d%)?$`)
	for _, p := range partners {
		id, name, _ := strings.Cut(p, "|")
		if uuid.MatchString(name) || name == id {
			t.Errorf("the partner picker shows %q for %s, not its name", name, id)
		}
		open(t, ctx, s.url+"/analytics?partner="+url.QueryEscape(id), "#kpis")
		screenshot(t, ctx, "analytics-names")
		cells := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('table.list td, .kpis .v, #heading')).map(td => td.textContent)`)
		for _, c := range cells {
			if uuid.MatchString(c) {
				t.Errorf("partner %s: a cell reads %q, a bare id", name, c)
			}
			if pct.MatchString(c) && !onePct.MatchString(c) {
				t.Errorf("partner %s: %q is not a percentage with one decimal", name, c)
			}
		}
		// Each card that links a table counts that table's customers (or users).
		type card struct{ Href, Value, Caption string }
		cards := eval[[]card](t, ctx, `Array.from(document.querySelectorAll('#kpis a')).map(a => ({Href: a.getAttribute('href'), Value: a.querySelector('.v').textContent,
			Caption: document.querySelector(a.getAttribute('href') + ' .caption').textContent}))`)
		if len(cards) < 5 {
			t.Fatalf("partner %s: %d cards link their tables", name, len(cards))
		}
		for _, c := range cards {
			want := regexp.MustCompile(`of ` + c.Value + ` customers?$`)
			if c.Href == "#calling_users" {
				want = regexp.MustCompile(`^` + c.Value + ` users? `)
			}
			if !want.MatchString(c.Caption) {
				t.Errorf("partner %s: the card %s says %s, its table %q", name, c.Href, c.Value, c.Caption)
			}
		}
		// The overage table: a row per license type over its entitlement.
		type over struct{ Entitled, Consumed, Overage int }
		rows := eval[[]over](t, ctx, `Array.from(document.querySelectorAll('#overage tbody tr')).filter(tr => tr.cells.length > 1).map(tr => {
			const h = Array.from(document.querySelectorAll('#overage thead th')).map(th => th.textContent);
			const v = n => parseInt(tr.cells[h.indexOf(n)].textContent);
			return {Entitled: v('Entitled'), Consumed: v('Consumed'), Overage: v('Overage')};
		})`)
		for _, r := range rows {
			if r.Overage != r.Consumed-r.Entitled || r.Overage <= 0 {
				t.Errorf("partner %s: an overage row has entitled %d, consumed %d and overage %d", name, r.Entitled, r.Consumed, r.Overage)
			}
		}
		// Repeated cards: a label appears once per strip.
		dups := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('ul.kpis')).flatMap(ul => {
			const ls = Array.from(ul.querySelectorAll('.l')).map(l => l.textContent.toLowerCase());
			return ls.filter((l, i) => ls.indexOf(l) !== i);
		})`)
		if len(dups) > 0 {
			t.Errorf("partner %s: cards repeated %v", name, dups)
		}
	}
	// The week picker: the previous published week, and back.
	week := eval[string](t, ctx, `document.querySelector('select#week option:checked').textContent`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#prev-week`)), chromedp.WaitVisible(chromedp.CSS(`#next-week`))); err != nil {
		t.Fatal(err)
	}
	prev := eval[string](t, ctx, `document.querySelector('select#week option:checked').textContent`)
	if want := s.week(1); week != s.week(0) || prev != want {
		t.Errorf("the picker showed %s then, previous, %s; want %s then %s", week, prev, s.week(0), want)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('select#week option').length`); n != 8 {
		t.Errorf("the week picker lists %d published weeks, want make demo's 8", n)
	}
}

func TestAConsoleWithoutALoginBeyondLoopbackIsRefusedExit2(t *testing.T) {
	s := demoSite(t)
	cmd := exec.Command(s.bin, "serve", "--listen", "0.0.0.0:0")
	cmd.Env = append(os.Environ(), "TALLY_STORAGE_PATH="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "allow_anonymous") {
		t.Fatalf("tally serve --listen 0.0.0.0:0 with no login: %v, want exit 2 naming serve.auth.allow_anonymous\n%s", err, out)
	}
}

func TestASymlinkUnderReportsAnswers404AndARegularFile200(t *testing.T) {
	s := demoSite(t)
	cookie := s.session(t, "alice")
	files, _ := filepath.Glob(filepath.Join(s.data, "reports", "region=US", "*", "*", "*", "*.csv"))
	if len(files) == 0 {
		t.Fatal("make demo wrote no US report")
	}
	key, _ := filepath.Rel(s.data, files[0])
	link := filepath.Join(filepath.Dir(files[0]), "passwd.csv")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	linkKey, _ := filepath.Rel(s.data, link)
	path := func(key string) string { return "/files/US/" + (&url.URL{Path: filepath.ToSlash(key)}).EscapedPath() }
	if code, _ := s.fetch(t, path(key), cookie); code != http.StatusOK {
		t.Errorf("a report file: %d, want 200", code)
	}
	if code, body := s.fetch(t, path(linkKey), cookie); code != http.StatusNotFound || strings.Contains(body, "root:") {
		t.Errorf("a symlink to /etc/passwd under reports/: %d, want 404", code)
	}
}

func TestAfterLogoutTheOldCookieGets401(t *testing.T) {
	ctx := browser(t, 1400)
	s := demoSite(t)
	s.login(t, ctx, "alice")
	cookies, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
		return res.Cookies, err
	})
	if err != nil || len(cookies) != 1 {
		t.Fatalf("the browser's cookies after login: %v, %v", cookies, err)
	}
	old := &http.Cookie{Name: cookies[0].Name, Value: cookies[0].Value}
	if code, _ := s.fetch(t, "/runs", old); code != http.StatusOK {
		t.Fatalf("the session cookie before logout: %d", code)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`input[name=token]`))); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/runs", nil)
	req.Header.Set("Accept", "application/json")
	req.AddCookie(old)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the old cookie after logout: %d, want 401", resp.StatusCode)
	}
	if code, _ := s.fetch(t, "/runs", old); code != http.StatusSeeOther {
		t.Errorf("a page with the old cookie after logout: %d, want 303 to /login", code)
	}
}

func TestAViewerSeesNoActionsAndGets403(t *testing.T) {
	s := demoSite(t)
	cookie := s.session(t, "victor")
	code, page := s.fetch(t, "/runs/analytics/"+s.week(1), cookie)
	if code != http.StatusOK || strings.Contains(page, `id="rerun"`) {
		t.Fatalf("a viewer's run page: %d, with a re-run form: %v", code, strings.Contains(page, `id="rerun"`))
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no CSRF token on the viewer's page (its logout form)")
	}
	for _, action := range []string{"/actions/rerun", "/actions/backfill"} {
		req, _ := http.NewRequest(http.MethodPost, s.url+action, strings.NewReader(url.Values{"csrf": {csrf[1]}, "job": {"analytics"}, "period": {s.week(1)},
			"from": {s.week(2)}, "to": {s.week(1)}, "parallel": {"1"}, "confirm": {"yes"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(cookie)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("a viewer's POST %s: %d, want 403", action, resp.StatusCode)
		}
	}
}

func TestTheDemosWeeklyReportTrendHasEveryDemoWeek(t *testing.T) {
	s := demoSite(t)
	files, _ := filepath.Glob(filepath.Join(s.data, "reports", "region=*", "customer-subscriptions", "weekly", s.week(0), "*.csv"))
	rows := 0
	for _, f := range files {
		if !strings.Contains(f, "Expiring") && !strings.Contains(f, "Renewing") {
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(fh).ReadAll()
		fh.Close()
		if err != nil || len(recs) == 0 {
			t.Fatalf("%s: %v", f, err)
		}
		col := -1
		for i, h := range recs[0] {
			if strings.TrimPrefix(h, "\ufeff") == "Usage Over the Last 3 Months (%)" {
				col = i
			}
		}
		for _, r := range recs[1:] {
			values := strings.Split(r[col], ";")
			published := 0
			for _, v := range values[len(values)-8:] {
				if v != "" {
					published++
				}
			}
			if len(values) != 13 || published != 8 {
				t.Errorf("%s: %q: the last 3 months hold %d of make demo's 8 weeks", filepath.Base(f), r[col], published)
			}
			rows++
		}
	}
	if rows == 0 {
		t.Fatalf("make demo's weekly report for %s has no expiring or renewing rows (%d files)", s.week(0), len(files))
	}
}

// ledger is the site's ledger records of job and period.
func (s *site) ledger(t *testing.T, job, period string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	if err := json.Unmarshal([]byte(s.tally(t, "runs", job, "--period", period, "-o", "json")), &recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestAnOperatorReRunsAnEarlierWeekFromTheConsoleTheLaterWeekGoesStaleAndBackfillStaleClearsIt(t *testing.T) {
	ctx := browser(t, 1400)
	s := demoSite(t)
	s.login(t, ctx, "alice")
	earlier, latest := s.week(1), s.week(0)
	open(t, ctx, s.url+"/runs/analytics/"+earlier, "#rerun-button")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#rerun-button`)), chromedp.WaitVisible(chromedp.CSS(`#confirm-button`))); err != nil {
		t.Fatal(err)
	}
	if plan := eval[string](t, ctx, `document.querySelector('#plan') ? document.querySelector('#plan').textContent : ''`); !strings.Contains(plan, "analytics") {
		t.Errorf("the confirmation page's dry run: %q", plan)
	}
	screenshot(t, ctx, "rerun-confirm")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#confirm-button`)), chromedp.WaitVisible(chromedp.CSS(`#attempt-1`))); err != nil {
		t.Fatal(err)
	}
	// The serving process runs it: the run page shows the second attempt.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		open(t, ctx, s.url+"/runs/analytics/"+earlier, "#attempt-1")
		if eval[string](t, ctx, `document.querySelector('#status-2') ? document.querySelector('#status-2').textContent : ''`) == "succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the console's re-run never succeeded")
		}
		time.Sleep(300 * time.Millisecond)
	}
	if by := eval[string](t, ctx, `document.querySelector('#trigger-2').textContent`); !strings.Contains(by, "console") || !strings.Contains(by, "by alice") {
		t.Errorf("the run page says %q, want the console and alice", by)
	}
	screenshot(t, ctx, "rerun-done")
	recs := s.ledger(t, "analytics", earlier)
	if len(recs) != 2 || recs[1]["by"] != "alice" || recs[1]["trigger"] != "console" || recs[1]["status"] != "succeeded" {
		t.Errorf("the ledger of analytics %s: %v, want a second attempt by alice from the console", earlier, recs)
	}
	// The grid: the new attempt, and the later week that read the old one stale.
	open(t, ctx, s.url+"/runs?job=analytics", "#grid")
	cell := func(period string) (string, string) {
		v := eval[[]string](t, ctx, fmt.Sprintf(`(c => [c.dataset.state, c.title])(document.querySelector('#grid .cell[data-period="%s"]'))`, period))
		return v[0], v[1]
	}
	if state, title := cell(earlier); state != "complete" || !strings.Contains(title, "2 attempts") {
		t.Errorf("the grid's %s: %s, %q; want complete after 2 attempts", earlier, state, title)
	}
	if state, title := cell(latest); state != "stale" || !strings.Contains(title, "read for its trends, was published again") {
		t.Errorf("the grid's %s: %s, %q; want stale (it read %s's old tables)", latest, state, title, earlier)
	}
	screenshot(t, ctx, "stale")
	out := s.tally(t, "backfill", "analytics", "--from", s.week(7), "--to", latest, "--stale")
	if !strings.Contains(out, "1 stale analytics periods") {
		t.Errorf("backfill --stale: %s", out)
	}
	open(t, ctx, s.url+"/runs?job=analytics", "#grid")
	if state, _ := cell(latest); state != "complete" {
		t.Errorf("after backfill --stale the grid's %s is %s", latest, state)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#grid .cell[data-state="stale"]').length`); n != 0 {
		t.Errorf("%d stale cells after backfill --stale", n)
	}
}
