package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tally/jobs"
	"tally/model"
	"tally/pq"
	"tally/runner"
	"tally/source/webex"
	"tally/source/webex/webextest"
	"tally/storage/local"
)

// webexSetup is a fake Webex API with two partners' customers in all four
// regions (P1's customer 0 and P2's customer 1 in each), and a tally config of
// source type webex pointed at it, both partners logged in.
func webexSetup(t *testing.T, extra string) (cfg, data string, f *webextest.Fake) {
	t.Helper()
	f, _ = webextest.New(t)
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	var regions, hosts strings.Builder
	for _, region := range model.Regions {
		for k, partner := range []string{"P1", "P2"} {
			org, d := webextest.Customer(partner, region, k, day)
			f.Add(org, d)
			fmt.Fprintf(&regions, "      %s: %s\n", webextest.OrgUUID(org), region)
		}
		fmt.Fprintf(&hosts, "      %s: %s\n", region, f.CallsHost(region))
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "client-secret")
	os.WriteFile(secret, []byte(webextest.ClientSecret+"\n"), 0o600)
	// The client's retry backoffs sleep on the run's fake clock, advancing it:
	// a lease long enough that they never look like a lost lease.
	data = filepath.Join(dir, "data")
	cfg = filepath.Join(dir, "tally.yaml")
	os.WriteFile(cfg, []byte("storage:\n  type: local\n  path: "+data+"\nrunner:\n  lease_ttl: 10m\n  lease_renew: 1m\n  backoff: 10ms\n  backoff_max: 50ms\nlog:\n  format: json\n"+
		"source:\n  type: webex\n  webex:\n    base_url: "+f.URL+"\n    token_url: "+f.URL+"/access_token\n"+
		"    client_id: "+webextest.ClientID+"\n    client_secret_file: "+secret+"\n    calls_interval: 0s\n    calls_lateness: 10m\n"+
		"    partners:\n      - {id: P1, name: Partner One}\n      - {id: P2, name: Partner Two}\n    regions:\n"+regions.String()+"    calls_hosts:\n"+hosts.String()+extra), 0o644)
	for _, partner := range []string{"P1", "P2"} {
		file := filepath.Join(dir, "refresh-"+partner)
		os.WriteFile(file, []byte(f.RefreshToken(partner)), 0o600)
		if code, stdout, stderr := run(t, "--config", cfg, "source", "webex", "login", "--partner", partner, "--refresh-token-file", file); code != 0 {
			t.Fatalf("login %s: exit %d\n%s%s", partner, code, stdout, stderr)
		}
	}
	return cfg, data, f
}

func TestTheWebexSourceRunsTheDailyChainEndToEndForTwoPartnersInAllFourRegions(t *testing.T) {
	cfg, data, f := webexSetup(t, "")
	code, stdout, stderr := run(t, "--config", cfg, "config", "check")
	if code != 0 {
		t.Fatalf("config check: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, o := range f.Orgs {
		if !strings.Contains(stdout, webextest.OrgUUID(o)) || !strings.Contains(stdout, o.DisplayName) {
			t.Errorf("config check does not list customer %s (%s):\n%s", webextest.OrgUUID(o), o.DisplayName, stdout)
		}
	}
	if !strings.Contains(stdout, "partner P1 (Partner One): credentials ok") || !strings.Contains(stdout, "partner P2 (Partner Two): credentials ok") {
		t.Errorf("config check does not confirm both partners' credentials:\n%s", stdout)
	}

	for _, partner := range []string{"P1", "P2"} {
		if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", "flex-"+strings.ToLower(partner), "--partner", partner, "--template", "flex-license-usage", "--cadence", "daily", "--to", "ops@example.com"); code != 0 {
			t.Fatal(stderr)
		}
	}
	code, stdout, stderr = run(t, "--config", cfg, "run", "reports-daily", "--period", "2026-11-21")
	if code != 0 {
		t.Fatalf("the daily chain on the webex source: exit %d\n%s%s", code, stdout, stderr)
	}
	// Each partner's token lists its own org too: a partner, not a customer,
	// so the day is complete, not partial.
	if _, plan, _ := run(t, "--config", cfg, "plan", "--from", "2026-11-21", "--to", "2026-11-21"); strings.Contains(plan, "partial") {
		t.Errorf("the partners' own organisations made the day partial:\n%s", plan)
	}
	for _, tok := range []string{"tok-", webextest.ClientSecret} {
		if strings.Contains(stdout+stderr, tok) {
			t.Fatalf("a token or secret (%s…) is in the output:\n%s%s", tok, stdout, stderr)
		}
	}
	// Per customer, by §6: 3+k Knowledge Worker (the Professional seats), 2
	// Common Area (the workspace's Room Kit and ATA), 1 TelePresence; entitled
	// 10+k and 2 from the licenses' totalUnits.
	for _, region := range model.Regions {
		rows := must2(pqRead[model.CustomerUsage](filepath.Join(data, "usage", "customer", "region="+region, "day=2026-11-21", "part-0.parquet")))
		got := map[string]int64{}
		for _, r := range rows {
			got[r.CustomerID+" "+r.LicenseType+" consumed"] = r.Consumed
			got[r.CustomerID+" "+r.LicenseType+" entitled"] = r.Entitled
		}
		for _, o := range f.Orgs {
			if !strings.Contains(o.DisplayName, " "+region+" ") {
				continue
			}
			k := int64(0)
			if o.Partner == "P2" {
				k = 1
			}
			id := webextest.OrgUUID(o)
			want := map[string]int64{id + " knowledge_worker consumed": 3 + k, id + " knowledge_worker entitled": 10 + k,
				id + " common_area consumed": 2, id + " common_area entitled": 2, id + " telepresence consumed": 1, id + " telepresence entitled": 0}
			for key, n := range want {
				if got[key] != n {
					t.Errorf("region %s: %s = %d, want %d", region, key, got[key], n)
				}
			}
		}
		legs := must2(pqRead[model.CallLeg](filepath.Join(data, "calls", "region="+region, "day=2026-11-21", "part-0.parquet")))
		if want := webextest.DayLegs(0) + webextest.DayLegs(1); len(legs) != want {
			t.Errorf("region %s: %d call legs, want %d (two per licensed person, a queue call and the call crossing midnight, per customer; legs by Start time)", region, len(legs), want)
		}
	}
	var reports []string
	filepath.Walk(filepath.Join(data, "reports"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			reports = append(reports, p)
		}
		return nil
	})
	for _, region := range model.Regions { // both partners' Flex reports, in every region
		n := 0
		for _, r := range reports {
			if strings.Contains(r, "region="+region) {
				n++
			}
		}
		if n < 2 {
			t.Errorf("region %s: %d report files, want each partner's Flex report: %v", region, n, reports)
		}
	}
}

func TestAWebexCustomerThatKeepsFailingFailsTheDayOrWithSkipFailedCustomersTheDayIsPartial(t *testing.T) {
	cfg, data, f := webexSetup(t, "    skip_failed_customers: true\n")
	f.FailCalls = f.Orgs[3].ID // a P2 customer
	// Each partner's token also sees both partners' own orgs: partners, not
	// customers, so they never make the day partial.
	f.CrossPartnerOrgs = true
	if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", "flex", "--partner", "P2", "--template", "flex-license-usage", "--cadence", "daily", "--to", "ops@example.com"); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", "flex-p1", "--partner", "P1", "--template", "flex-license-usage", "--cadence", "daily", "--to", "p1-ops@example.com"); code != 0 {
		t.Fatal(stderr)
	}
	code, stdout, stderr := run(t, "--config", cfg, "run", "reports-daily", "--period", "2026-11-21")
	if code != 0 {
		t.Fatalf("with skip_failed_customers the day succeeds partial: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, "--config", cfg, "plan", "--from", "2026-11-21", "--to", "2026-11-21")
	if code != 0 || !strings.Contains(stdout, "partial") {
		t.Fatalf("tally plan does not show the period partial:\n%s", stdout)
	}
	code, stdout, _ = run(t, "--config", cfg, "runs", "sync-clusters")
	if !strings.Contains(stdout, webextest.OrgUUID(f.Orgs[3])) {
		t.Fatalf("tally runs does not name the skipped customer:\n%s", stdout)
	}
	// The report email says partial in its subject and in both parts, naming the customer.
	e := readEML(t, filepath.Join(data, "outbox", "reports-daily", "2026-11-21", "flex", opsGroup+"-g1.eml"))
	if !strings.Contains(e.subject, "(partial)") {
		t.Errorf("the report email's subject does not say partial: %q", e.subject)
	}
	for part, body := range map[string]string{"text": e.text, "html": e.html} {
		if !strings.Contains(body, "Partial") && !strings.Contains(body, "PARTIAL") || !strings.Contains(body, webextest.OrgUUID(f.Orgs[3])) {
			t.Errorf("the report email's %s part does not say partial naming the skipped customer:\n%s", part, body)
		}
	}

	// Partner P1's email names nothing of P2's: no skipped customer, no partner
	// org, no "(partial)" (none of P1's customers was skipped).
	p1 := readEML(t, filepath.Join(data, "outbox", "reports-daily", "2026-11-21", "flex-p1", jobs.RecipientGroup(runner.DefaultGroup, "p1-ops@example.com")+"-g1.eml"))
	for _, leak := range []string{webextest.OrgUUID(f.Orgs[3]), f.Orgs[3].DisplayName, "Partner Two", f.PartnerOrgUUID("P2"), "(partial)"} {
		if strings.Contains(p1.subject+p1.text+p1.html, leak) {
			t.Errorf("partner P1's report email contains %q, of partner P2's day:\n%s\n%s", leak, p1.subject, p1.text)
		}
	}
	code, stdout, _ = run(t, "--config", cfg, "runs", "sync-clusters")
	for _, partner := range []string{"P1", "P2"} {
		if strings.Contains(stdout, f.PartnerOrgUUID(partner)) {
			t.Errorf("partner %s's own organisation is listed as a skipped customer:\n%s", partner, stdout)
		}
	}

	cfg2, _, f2 := webexSetup(t, "")
	f2.FailCalls = f2.Orgs[3].ID
	if code, stdout, stderr := run(t, "--config", cfg2, "run", "sync-clusters", "--period", "2026-11-21"); code == 0 || !strings.Contains(stdout+stderr, webextest.OrgUUID(f2.Orgs[3])) {
		t.Fatalf("without skip_failed_customers one failing customer fails the day naming it: exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestWebexConfigCheckWithoutCredentialsExits2NamingTheSettings(t *testing.T) {
	cfg, _ := writeConfig(t, "")
	t.Setenv("TALLY_SOURCE_TYPE", "webex")
	code, _, stderr := run(t, "--config", cfg, "config", "check")
	if code != exitUsage {
		t.Fatalf("exit %d, want 2\n%s", code, stderr)
	}
	for _, setting := range []string{"source.webex.client_id", "TALLY_SOURCE_WEBEX_CLIENT_ID", "source.webex.client_secret_file", "TALLY_SOURCE_WEBEX_CLIENT_SECRET", "source.webex.partners"} {
		if !strings.Contains(stderr, setting) {
			t.Errorf("the error does not name %s:\n%s", setting, stderr)
		}
	}
}

func TestAWebexDayPastTheGraceWindowIsRefusedWithExit2PointingToTheFilesSource(t *testing.T) {
	cfg, _, _ := webexSetup(t, "")
	code, stdout, stderr := run(t, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-19")
	if code != exitUsage || !strings.Contains(stdout+stderr, "use the files source or an export for past days") {
		t.Fatalf("exit %d, want 2 with a clear message\n%s%s", code, stdout, stderr)
	}
}

func TestAWebexDayPastTheGraceWindowCanHaveItsCallsBackfilledInsideTheRetention(t *testing.T) {
	cfg, data, f := webexSetup(t, "")
	if code, stdout, stderr := run(t, "--config", cfg, "run", "license-usage", "--period", "2026-11-21"); code != 0 {
		t.Fatalf("sync and license-usage: exit %d\n%s%s", code, stdout, stderr)
	}
	inventory := map[string][]byte{}
	filepath.Walk(filepath.Join(data, "inventory"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.Contains(p, "day=2026-11-21") {
			inventory[p] = must(os.ReadFile(p))
		}
		return nil
	})
	// Since the day: a call of the 21st reached the feed late, and a person
	// left (today's inventory, which the backfill must not take).
	o := f.Orgs[0]
	d := f.Data[o.ID]
	late := webex.CDR{}
	for k, v := range d.CDRs[0] {
		late[k] = v
	}
	late["Report ID"], late["Correlation ID"] = "0a0a0a0a-0000-4000-8000-00000000late", "0a0a0a0a-0000-4000-8000-0000000call2"
	d.CDRs = append(d.CDRs, late)
	d.People = d.People[1:]
	region := model.Regions[0]
	before := len(must2(pqRead[model.CallLeg](filepath.Join(data, "calls", "region="+region, "day=2026-11-21", "part-0.parquet"))))

	later := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC) // past source.grace, inside the 30 days
	if code, stdout, stderr := runAt(t, later, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21", "--force"); code != 0 {
		t.Fatalf("calls backfill: exit %d\n%s%s", code, stdout, stderr)
	}
	after := len(must2(pqRead[model.CallLeg](filepath.Join(data, "calls", "region="+region, "day=2026-11-21", "part-0.parquet"))))
	if after != before+1 {
		t.Errorf("region %s: %d call legs after the backfill, want %d (the late call added)", region, after, before+1)
	}
	for p, b := range inventory {
		if now := must(os.ReadFile(p)); !bytes.Equal(now, b) {
			t.Errorf("%s changed: a calls backfill carries the day's inventory over byte for byte", p)
		}
	}
	if _, stdout, _ := runAt(t, later, "--config", cfg, "plan", "--from", "2026-11-21", "--to", "2026-11-21"); !strings.Contains(stdout, "stale") {
		t.Errorf("after a calls backfill, tally plan does not show license-usage stale:\n%s", stdout)
	}
	code, stdout, stderr := runAt(t, later, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-20")
	if code != exitUsage || !strings.Contains(stdout+stderr, "was never synced") {
		t.Errorf("a day never synced, past grace: exit %d, want 2 saying its inventory was never synced\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runAt(t, time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC), "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21", "--force")
	if code != exitUsage || !strings.Contains(stdout+stderr, "use the files source or an export for past days") {
		t.Errorf("a day past the call history's 30 days: exit %d, want 2\n%s%s", code, stdout, stderr)
	}
}

func TestWebexLoginRefreshesOnceAtOnceStoresTheRotatedTokenPrivatelyAndNeverPrintsIt(t *testing.T) {
	cfg, data, f := webexSetup(t, "")
	tokenFile := filepath.Join(t.TempDir(), "refresh")
	first := f.RefreshToken("P2")
	os.WriteFile(tokenFile, []byte(first+"\n"), 0o600)
	grants := f.Grants.Load()
	code, stdout, stderr := run(t, "--config", cfg, "source", "webex", "login", "--partner", "P2", "--refresh-token-file", tokenFile)
	if code != 0 || strings.Contains(stdout+stderr, first) {
		t.Fatalf("login: exit %d (the token must never be printed)\n%s%s", code, stdout, stderr)
	}
	if n := f.Grants.Load() - grants; n != 1 {
		t.Errorf("login made %d refresh-token grants, want exactly one", n)
	}
	path := filepath.Join(data, "_secrets", "webex-oauth", "P2.json")
	b := must(os.ReadFile(path))
	if strings.Contains(string(b), first) || !strings.Contains(string(b), `"refresh_token":"tok-`) {
		t.Fatalf("stored %s: want the rotated refresh token, not the used one", b)
	}
	// Token files hold the access token: private (0600, in a 0700 folder).
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		if fi := must2(os.Stat(p)); fi.Mode().Perm() != want {
			t.Errorf("%s is mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	// The same (now used) refresh token again: refused at once with the
	// endpoint's own message, exit 2, nothing stored over the working one.
	grants = f.Grants.Load()
	code, stdout, stderr = run(t, "--config", cfg, "source", "webex", "login", "--partner", "P2", "--refresh-token-file", tokenFile)
	if code != exitUsage || !strings.Contains(stderr, "invalid_grant") || !strings.Contains(stderr, "expired, revoked, malformed, or invalid") || strings.Contains(stdout+stderr, first) {
		t.Fatalf("login with a used refresh token: exit %d, want 2 with the endpoint's message\n%s%s", code, stdout, stderr)
	}
	if n := f.Grants.Load() - grants; n != 1 {
		t.Errorf("a refused login made %d grants, want one (no retries)", n)
	}
	if now := must(os.ReadFile(path)); !bytes.Equal(now, b) {
		t.Errorf("a refused login replaced the stored token")
	}
	if code, _, stderr := run(t, "--config", cfg, "source", "webex", "login", "--refresh-token-file", tokenFile); code != exitUsage || !strings.Contains(stderr, "--partner") {
		t.Fatalf("login with two partners and no --partner: exit %d, want 2 naming the flag\n%s", code, stderr)
	}
	if code, _, stderr := run(t, "--config", cfg, "source", "webex", "login", "--partner", "P2"); code != exitUsage || !strings.Contains(stderr, "--refresh-token-file") {
		t.Fatalf("login without a file: exit %d, want 2 naming the flag\n%s", code, stderr)
	}
}

func TestWebexConfigCheckBeforeLoginOrWithARefusedTokenFailsFastNamingTheLoginCommand(t *testing.T) {
	cfg, data, f := webexSetup(t, "")
	os.Remove(filepath.Join(data, "_secrets", "webex-oauth", "P2.json")) // P2 never logged in
	start := time.Now()
	code, stdout, stderr := run(t, "--config", cfg, "config", "check")
	if code != exitUsage || !strings.Contains(stdout+stderr, "tally source webex login") {
		t.Fatalf("config check before login: exit %d, want 2 naming the login command\n%s%s", code, stdout, stderr)
	}
	// A refresh token used elsewhere (invalid_grant, 400): no retries either.
	webexSetupToken(t, cfg, data, "P2", "tok-used-elsewhere")
	grants := f.Grants.Load()
	code, stdout, stderr = run(t, "--config", cfg, "config", "check")
	if code != exitUsage || !strings.Contains(stdout+stderr, "tally source webex login") || !strings.Contains(stdout+stderr, "invalid_grant") {
		t.Fatalf("config check with a refused token: exit %d, want 2\n%s%s", code, stdout, stderr)
	}
	if n := f.Grants.Load() - grants; n > 1 {
		t.Errorf("config check tried the refused refresh token %d times", n)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the two checks took %s: a refusal is not retried", took)
	}
}

// webexSetupToken stores a refresh token as it is, as an earlier login did.
func webexSetupToken(t *testing.T, cfg, data, partner, token string) {
	t.Helper()
	store := must2(local.New(data))
	if err := webex.ImportRefreshToken(context.Background(), store, webex.TokenKey(partner), token); err != nil {
		t.Fatal(err)
	}
}

func TestReadOnlyCommandsRunWithoutTheWebexClientSecret(t *testing.T) {
	cfg, _, _ := webexSetup(t, "")
	if code, stdout, stderr := run(t, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21"); code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, stdout, stderr)
	}
	b := must(os.ReadFile(cfg))
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "client_secret_file:", "client_secret_file_was:", 1)), 0o644)
	cut := strings.Replace(string(b), "    client_secret_file: ", "    # no client secret: ", 1)
	os.WriteFile(cfg, []byte(cut), 0o644)
	for _, args := range [][]string{{"runs", "sync-clusters"}, {"plan", "--from", "2026-11-21", "--to", "2026-11-21"}, {"jobs"}, {"subscriptions", "list"}} {
		if code, stdout, stderr := run(t, append([]string{"--config", cfg}, args...)...); code != 0 {
			t.Errorf("tally %s without the client secret: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
		}
	}
	if code, _, stderr := run(t, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21", "--force"); code != exitUsage || !strings.Contains(stderr, "source.webex.client_secret") {
		t.Errorf("a sync without the client secret: exit %d, want 2 naming it\n%s", code, stderr)
	}
}

func TestASilentWebexAPIFailsTheDayNamingTheEndpointNeverAFormattingVerb(t *testing.T) {
	cfg, _, f := webexSetup(t, "    request_timeout: 100ms\n")
	f.Silent.Store(1 << 20) // every request goes unanswered
	code, stdout, stderr := run(t, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21")
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	_, runs, _ := run(t, "--config", cfg, "runs", "sync-clusters")
	for where, out := range map[string]string{"the run's output": stdout + stderr, "tally runs": runs} {
		if strings.Contains(out, "%!") {
			t.Errorf("%s holds a formatting verb:\n%s", where, out)
		}
		if !strings.Contains(out, "/organizations") && !strings.Contains(out, "/people/me") {
			t.Errorf("%s does not name the endpoint that went silent:\n%s", where, out)
		}
	}
}

func pqRead[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, _ := f.Stat()
	return pq.ReadAll[T](f, fi.Size())
}
