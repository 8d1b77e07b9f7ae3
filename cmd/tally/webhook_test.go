package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"tally/model"
	"tally/source/webex"
	"tally/source/webex/cdrhook"
	"tally/source/webex/webextest"
	"tally/storage"
	"tally/storage/local"
)

var webhookSecret = []byte("p1-partner-hub-secret-token")

// webhookSetup is webexSetup with partner P1's calls by the webhook (its
// secret in a file); P2 still polls.
func webhookSetup(t *testing.T) (cfg, data string, f *webextest.Fake) {
	t.Helper()
	cfg, data, f = webexSetup(t, "")
	secret := filepath.Join(t.TempDir(), "p1-webhook-secret")
	os.WriteFile(secret, append(webhookSecret, '\n'), 0o600)
	b := must(os.ReadFile(cfg))
	b = bytes.Replace(b, []byte("{id: P1, name: Partner One}"), []byte("{id: P1, name: Partner One, calls: webhook, webhook_secret_file: "+secret+"}"), 1)
	os.WriteFile(cfg, b, 0o644)
	return cfg, data, f
}

func freeAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }

// receiver starts tally serve --receive-only on addr and waits for /healthz.
func receiver(t *testing.T, cfg, addr string) *exec.Cmd {
	t.Helper()
	cmd := tally(cfg, "serve", "--receive-only", "--listen", addr)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "the receiver's /healthz", 20*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return cmd
}

// post delivers body as Webex does, signed; the answer's status (0: no answer).
func post(addr, partner string, body []byte, secret []byte) int {
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/webex/cdr/"+partner, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Spark-Signature", cdrhook.Signature(secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func legsIn(t *testing.T, data, region string) []model.CallLeg {
	t.Helper()
	return must2(pqRead[model.CallLeg](filepath.Join(data, "calls", "region="+region, "day=2026-11-21", "part-0.parquet")))
}

var staleRow = regexp.MustCompile(`2026-11-21\s+stale`)

var webhookDay = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)

func TestAWebhookPartnersDayIsSyncedFromTheStoredDeliveriesAndALateRecordMakesItStale(t *testing.T) {
	cfg, data, f := webhookSetup(t)
	addr := freeAddr(t)
	receiver(t, cfg, addr)
	deliveries := f.Deliveries("P1", webhookDay.Add(-time.Hour), webhookDay.Add(25*time.Hour))
	if len(deliveries) < 5 {
		t.Fatalf("the fake made %d deliveries", len(deliveries))
	}
	for i, body := range deliveries {
		if code := post(addr, "P1", body, webhookSecret); code != 200 {
			t.Fatalf("delivery %d: %d", i, code)
		}
	}
	if code := post(addr, "P1", deliveries[0], []byte("not the secret")); code != http.StatusUnauthorized {
		t.Fatalf("a delivery signed with another secret: %d, want 401", code)
	}
	// An organisation no region maps: counted, not stored.
	stray := "7e7e7e7e-1111-4222-8333-444444444444"
	strayBody, _ := json.Marshal(map[string]any{"items": []map[string]any{{"Report ID": "stray-1", "Org UUID": stray,
		"Start time": "2026-11-21T12:00:00.000Z", "Duration": 30, "Report time": "2026-11-21T12:00:30.000Z"}}})
	if code := post(addr, "P1", strayBody, webhookSecret); code != 200 {
		t.Fatalf("the unmapped organisation's delivery: %d", code)
	}

	if code, stdout, stderr := run(t, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21"); code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, region := range model.Regions {
		if got, want := len(legsIn(t, data, region)), webextest.DayLegs(0)+webextest.DayLegs(1); got != want {
			t.Errorf("region %s: %d legs, want %d (P1's pushed, P2's polled; by Start time)", region, got, want)
		}
	}
	if _, stdout, _ := run(t, "--config", cfg, "runs", "sync-clusters", "-o", "json"); !strings.Contains(stdout, stray) {
		t.Errorf("the ledger does not count the unmapped organisation's records:\n%s", stdout)
	}
	if _, stdout, _ := run(t, "--config", cfg, "plan", "--from", "2026-11-21", "--to", "2026-11-21"); staleRow.MatchString(stdout) || strings.Contains(stdout, "partial") {
		t.Fatalf("right after the sync the day is neither stale nor partial:\n%s", stdout)
	}

	// A late record of one of P1's customers, after the day was synced.
	var p1 webextest.Org
	for _, o := range f.Orgs {
		if o.Partner == "P1" {
			p1 = o
			break
		}
	}
	late := webex.CDR{}
	for k, v := range f.Data[p1.ID].CDRs[0] {
		late[k] = v
	}
	late["Report ID"], late["Report time"] = "0a0a0a0a-0000-4000-8000-00000000late", "2026-11-22T00:19:00.000Z"
	lateBody, _ := json.Marshal(map[string]any{"items": []webex.CDR{late}})
	if code := post(addr, "P1", lateBody, webhookSecret); code != 200 {
		t.Fatalf("the late delivery: %d", code)
	}
	// Days later, past the grace window: the inventory is no longer today's,
	// so the re-run goes through the calls backfill, inventory carried over.
	later := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	if _, stdout, _ := runAt(t, later, "--config", cfg, "plan", "--from", "2026-11-21", "--to", "2026-11-21"); !staleRow.MatchString(stdout) || !strings.Contains(stdout, "late records") {
		t.Fatalf("after a late record the day is stale:\n%s", stdout)
	}
	inventory := must(os.ReadFile(filepath.Join(data, "inventory", "users", "region=EU", "day=2026-11-21", "part-0.parquet")))
	if code, stdout, stderr := runAt(t, later, "--config", cfg, "backfill", "sync-clusters", "--from", "2026-11-21", "--to", "2026-11-21", "--stale"); code != 0 {
		t.Fatalf("backfill --stale: exit %d\n%s%s", code, stdout, stderr)
	}
	if now := must(os.ReadFile(filepath.Join(data, "inventory", "users", "region=EU", "day=2026-11-21", "part-0.parquet"))); !bytes.Equal(now, inventory) {
		t.Errorf("the calls backfill changed the day's inventory")
	}
	if _, stdout, _ := runAt(t, later, "--config", cfg, "plan", "--from", "2026-11-21", "--to", "2026-11-21"); regexp.MustCompile(`sync-clusters.*\n\s+2026-11-21\s+stale`).MatchString(stdout) {
		t.Errorf("after backfill --stale, sync-clusters is still stale:\n%s", stdout)
	}
	total := 0
	for _, region := range model.Regions {
		total += len(legsIn(t, data, region))
	}
	if want := 4*(webextest.DayLegs(0)+webextest.DayLegs(1)) + 1; total != want {
		t.Errorf("%d legs after backfill --stale, want %d (the late one added once)", total, want)
	}
}

func TestServeRefusesToMountAWebhookWithoutItsSecret(t *testing.T) {
	cfg, _, _ := webexSetup(t, "")
	b := must(os.ReadFile(cfg))
	os.WriteFile(cfg, bytes.Replace(b, []byte("{id: P1, name: Partner One}"), []byte("{id: P1, name: Partner One, calls: webhook}"), 1), 0o644)
	out, err := tally(cfg, "serve", "--receive-only", "--listen", freeAddr(t)).CombinedOutput()
	if exitOf(err) != exitUsage || !strings.Contains(string(out), "webhook_secret_file") {
		t.Fatalf("exit %d, want 2 naming webhook_secret_file:\n%s", exitOf(err), out)
	}
}

// Webex delivers again until it gets a 2xx. Killing the receiver with SIGKILL
// at random points of a stream of deliveries, and restarting it, loses no
// record and stores none twice: after every delivery got its 2xx, the day
// has each leg exactly once.
func TestAReceiverKilledWithSIGKILLDuringAStreamOfDeliveriesLosesNoLegAndCountsEachOnce(t *testing.T) {
	cfg, data, f := webhookSetup(t)
	addr := freeAddr(t)
	proc := receiver(t, cfg, addr)
	deliveries := f.Deliveries("P1", webhookDay.Add(-time.Hour), webhookDay.Add(25*time.Hour))
	// Each delivery twice (the webhook may repeat records), and each record
	// once more alone: a long stream of small deliveries.
	stream := append(append([][]byte{}, deliveries...), deliveries...)
	for _, body := range deliveries {
		var page struct{ Items []json.RawMessage }
		json.Unmarshal(body, &page)
		for _, rec := range page.Items {
			stream = append(stream, must(json.Marshal(map[string]any{"items": []json.RawMessage{rec}})))
		}
	}
	rng := rand.New(rand.NewPCG(7, 27))
	rng.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })

	done := make(chan struct{})
	kills := 0
	go func() { // the webhook: every delivery again until a 2xx
		defer close(done)
		for _, body := range stream {
			for post(addr, "P1", body, webhookSecret) != 200 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(time.Duration(5+rng.IntN(40)) * time.Millisecond):
			proc.Process.Signal(syscall.SIGKILL)
			proc.Wait()
			kills++
			proc = receiver(t, cfg, addr)
		}
	}
	if kills < 3 {
		t.Fatalf("only %d kills landed during the stream", kills)
	}
	// Every stored object holds exactly the bytes its name hashes: no torn write.
	store := must2(local.New(data))
	for _, region := range model.Regions {
		objs, _ := store.List(context.Background(), "raw/webex-cdr/")
		for _, o := range objs {
			b, _, err := storage.ReadAll(context.Background(), store, o.Key)
			day := strings.TrimPrefix(strings.Split(o.Key, "/")[3], "day=")
			if err != nil || webex.PayloadKey("P1", day, b) != o.Key {
				t.Fatalf("region %s: %s does not hold the bytes its name hashes (%v)", region, o.Key, err)
			}
		}
	}
	if code, stdout, stderr := run(t, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21"); code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, region := range model.Regions {
		legs := legsIn(t, data, region)
		seen := map[string]int{}
		for _, l := range legs {
			seen[l.LegID]++
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("region %s: leg %s %d times", region, id, n)
			}
		}
		if want := webextest.DayLegs(0) + webextest.DayLegs(1); len(legs) != want {
			t.Errorf("region %s: %d legs after %d kills, want %d", region, len(legs), kills, want)
		}
	}
	t.Logf("%d deliveries (each twice), %d SIGKILLs", len(deliveries), kills)
}

func TestServeReceivesTheWebhookOnItsPublicListenerOutsideTheConsolesLogin(t *testing.T) {
	cfg, data, f := webhookSetup(t)
	console, public := freeAddr(t), freeAddr(t)
	token := filepath.Join(t.TempDir(), "console-token")
	os.WriteFile(token, []byte("a-console-token-nobody-sends-here"), 0o600)
	b := must(os.ReadFile(cfg))
	b = append(b, []byte("serve:\n  listen: "+console+"\n  public_listen: "+public+"\n  catch_up: 0\n  auth:\n    type: token\n    token_file: "+token+"\n")...)
	os.WriteFile(cfg, b, 0o644)
	cmd := tally(cfg, "serve")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + public + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve's public /healthz does not answer (%v):\n%s", err, logs.String())
		}
	}
	body := f.Deliveries("P1", webhookDay, webhookDay.Add(24*time.Hour))[0]
	if code := post(public, "P1", body, webhookSecret); code != 200 {
		t.Fatalf("a signed delivery on the public listener: %d\n%s", code, logs.String())
	}
	if code := post(public, "P1", body, []byte("wrong")); code != http.StatusUnauthorized {
		t.Fatalf("a delivery signed with another secret: %d, want 401", code)
	}
	if stored, _ := filepath.Glob(filepath.Join(data, "raw", "webex-cdr", "partner=P1", "day=*", "*.jsonl")); len(stored) == 0 {
		t.Fatalf("nothing stored from the delivery")
	}
}

func TestGCRemovesStoredDeliveriesPastTheirRetentionOnlyOfCompleteDays(t *testing.T) {
	cfg, data, f := webhookSetup(t)
	store := must2(local.New(data))
	rv := &cdrhook.Receiver{Partners: map[string]cdrhook.Partner{"P1": {ID: "P1", Secret: webhookSecret}}, Regions: map[string]string{},
		Stores: storage.Single(store, model.Regions)}
	for _, o := range f.Orgs {
		rv.Regions[webextest.OrgUUID(o)] = strings.Fields(o.DisplayName)[1]
	}
	for _, body := range f.Deliveries("P1", webhookDay.Add(-time.Hour), webhookDay.Add(25*time.Hour)) {
		if _, err := rv.Store(context.Background(), "P1", body); err != nil {
			t.Fatal(err)
		}
	}
	count := func(day string) int {
		objs, _ := store.List(context.Background(), webex.PayloadDays("P1")+day+"/")
		return len(objs)
	}
	if count("2026-11-20") == 0 || count("2026-11-21") == 0 {
		t.Fatalf("the deliveries hold records of the 20th (a call that started before midnight) and the 21st")
	}
	if code, stdout, stderr := run(t, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21"); code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, stdout, stderr)
	}
	inside := time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC) // 29 days on: inside the 35 days
	if code, stdout, _ := runAt(t, inside, "--config", cfg, "gc", "--apply"); code != 0 || count("2026-11-21") == 0 {
		t.Fatalf("gc inside the retention removed the 21st's deliveries:\n%s", stdout)
	}
	past := time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC)
	code, stdout, stderr := runAt(t, past, "--config", cfg, "gc")
	if code != 0 || !strings.Contains(stdout, "would remove") || count("2026-11-21") == 0 {
		t.Fatalf("gc without --apply lists, removes nothing: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runAt(t, past, "--config", cfg, "gc", "--apply"); code != 0 || !strings.Contains(stdout, "webhook-delivery") {
		t.Fatalf("gc --apply: exit %d\n%s%s", code, stdout, stderr)
	}
	if n := count("2026-11-21"); n != 0 {
		t.Errorf("%d deliveries of the complete 21st left past the retention", n)
	}
	if count("2026-11-20") == 0 {
		t.Errorf("the 20th was never synced: its deliveries must stay, whatever their age")
	}
}
