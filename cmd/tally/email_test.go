package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"tally/jobs"
	"tally/model"
	"tally/runner"
	"tally/storage/local"
	"tally/subscriptions"
)

// The weekly Customer Subscriptions email of the demo: its headline (KPI
// table, counts, top overage), the 8-week chart as an inline PNG referenced
// by cid:, its numbers as a table, and the recipient's unsubscribe header.
func TestTheWeeklyEmailCarriesTheKPITableAnInlinePNGChartAndListUnsubscribe(t *testing.T) {
	cfg, data := writeConfig(t, "serve:\n  public_url: https://tally.example.com/\n")
	if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", "cs", "--partner", "P093374", "--template", "customer-subscriptions",
		"--cadence", "weekly", "--to", "ops@example.com", "--to", "am@example.com"); code != 0 {
		t.Fatal(stderr)
	}
	if code, stdout, stderr := run(t, "--config", cfg, "run", "reports-weekly", "--period", "2026-11-15"); code != 0 {
		t.Fatalf("reports-weekly: exit %d\n%s%s", code, stdout, stderr)
	}
	dir := filepath.Join(data, "outbox", "reports-weekly", "2026-11-15", "cs")
	e := readEML(t, filepath.Join(dir, opsGroup+"-g1.eml"))
	am := readEML(t, filepath.Join(dir, jobs.RecipientGroup(runner.DefaultGroup, "am@example.com")+"-g1.eml"))
	if e.header.Get("To") != "<ops@example.com>" || am.header.Get("To") != "<am@example.com>" {
		t.Errorf("each recipient gets a message of their own: To %q and %q", e.header.Get("To"), am.header.Get("To"))
	}

	// One-click unsubscribe (RFC 8058) to this recipient's own signed link.
	lu := e.header.Get("List-Unsubscribe")
	if e.header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" || !strings.HasPrefix(lu, "<https://tally.example.com/unsubscribe?t=") {
		t.Fatalf("List-Unsubscribe %q, List-Unsubscribe-Post %q", lu, e.header.Get("List-Unsubscribe-Post"))
	}
	u, _ := url.Parse(strings.Trim(lu, "<>"))
	store, _ := local.New(data)
	key, err := subscriptions.SigningKey(context.Background(), store, "")
	if err != nil {
		t.Fatal(err)
	}
	if sub, addr, err := subscriptions.ParseToken(key, u.Query().Get("t")); err != nil || sub != "cs" || addr != "ops@example.com" {
		t.Errorf("the unsubscribe token names %q %q (%v), want cs and ops@example.com", sub, addr, err)
	}
	if !strings.Contains(e.html, `href="https://tally.example.com/unsubscribe?t=`) || !strings.Contains(e.text, "Unsubscribe: https://tally.example.com/unsubscribe?t=") {
		t.Error("the body has no unsubscribe link")
	}

	// The KPI table and the chart, in HTML and text.
	if !strings.Contains(e.html, `id="kpis"`) || !strings.Contains(e.html, "<th align=\"right\">Customers</th>") || !strings.Contains(e.text, "at a glance") {
		t.Error("no KPI table")
	}
	if len(e.inline) != 1 || e.inline[0].contentType != "image/png" || e.inline[0].contentID != jobs.ChartCID || !strings.Contains(e.html, `src="cid:`+jobs.ChartCID+`"`) {
		t.Fatalf("inline parts %v: want one image/png whose Content-ID the HTML's cid: references", len(e.inline))
	}
	if _, err := png.Decode(bytes.NewReader(e.inline[0].data)); err != nil {
		t.Fatalf("the chart is not a PNG: %v", err)
	}

	// The chart's points are the analytics table's: Σ assigned ÷ Σ total of
	// the partner's active and trial subscriptions, per region and week.
	cells := regexp.MustCompile(`<td align="right">([^<]*)</td>`)
	trend := e.html[strings.Index(e.html, `id="trend"`):]
	trend = trend[:strings.Index(trend, "</table>")]
	headers := regexp.MustCompile(`<th align="right">([^<]*)</th>`).FindAllStringSubmatch(trend, -1)
	checked := 0
	for _, row := range strings.Split(trend, "</tr>") {
		tds := cells.FindAllStringSubmatch(row, -1)
		if len(tds) < 2 || tds[0][1] != "2026-11-15" {
			continue
		}
		for i := 1; i < len(tds); i++ {
			region, what, _ := strings.Cut(headers[i][1], " ")
			if what != "assigned %" {
				continue
			}
			subs := must2(pqRead[model.SubscriptionStatus](filepath.Join(data, "analytics", "subscription_status", "region="+region, "week=2026-11-15", "part-0.parquet")))
			var total, assigned int64
			for _, s := range subs {
				if s.PartnerID == "P093374" && s.Status != "Cancelled" && s.Status != "Suspended" && s.Status != "Trial expired" {
					total, assigned = total+s.LicensesTotal, assigned+s.LicensesAssigned
				}
			}
			want := strconv.FormatFloat(float64(assigned)/float64(total)*100, 'f', 1, 64)
			if tds[i][1] != want {
				t.Errorf("region %s week 2026-11-15: the chart's assigned point is %s%%, the analytics table gives %s%%", region, tds[i][1], want)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatalf("no chart point for week 2026-11-15 checked:\n%s", trend)
	}
}

func TestWithoutAPublicURLNoUnsubscribeHeaderOrLinkIsSentAndBccIsOneMessage(t *testing.T) {
	cfg, data := writeConfig(t, "reports:\n  recipients: bcc\n")
	if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", "flex", "--partner", "P093374", "--template", "flex-license-usage",
		"--cadence", "daily", "--to", "ops@example.com", "--to", "cfo@example.com"); code != 0 {
		t.Fatal(stderr)
	}
	if code, stdout, stderr := run(t, "--config", cfg, "run", "reports-daily", "--period", "2026-11-21"); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	e := readEML(t, filepath.Join(data, "outbox", "reports-daily", "2026-11-21", "flex", runner.DefaultGroup+"-g1.eml"))
	if e.header.Get("List-Unsubscribe") != "" || strings.Contains(e.html+e.text, "unsubscribe") {
		t.Error("an unsubscribe header or link without serve.public_url")
	}
	if e.header.Get("Bcc") != "" || e.header.Get("To") != "<tally@example.com>" {
		t.Errorf("bcc: To %q, Bcc %q: the recipients must not see each other", e.header.Get("To"), e.header.Get("Bcc"))
	}
	var rec runner.Record
	if err := json.Unmarshal(must(os.ReadFile(filepath.Join(data, "_runs", "reports-daily", "2026-11-21", "0001.json"))), &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Emails) != 1 || strings.Join(rec.Emails[0].To, ",") != "ops@example.com,cfo@example.com" {
		t.Errorf("the ledger's emails %+v, want one message to both recipients", rec.Emails)
	}
}
