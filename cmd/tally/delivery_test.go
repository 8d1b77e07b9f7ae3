package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tally/internal/testservers"
	"tally/jobs"
	"tally/runner"
)

// acceptingServer is an SMTP server that accepts every message and then, as
// servers and networks do, drops the connection instead of waiting for RSET
// or QUIT. before runs just before it answers 250 to a message's DATA, after
// just after: a test stops and kills tally there, between the server's
// acceptance and tally's confirmation of its claim.
type acceptingServer struct {
	ln            net.Listener
	mu            sync.Mutex
	got           map[string]int // Message-ID → copies received
	before, after func()
}

func startAcceptingServer(t *testing.T) *acceptingServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &acceptingServer{ln: ln, got: map[string]int{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

func (s *acceptingServer) addr() (string, int) {
	a := s.ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func (s *acceptingServer) copies() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.got {
		out[k] = v
	}
	return out
}

func (s *acceptingServer) serve(conn net.Conn) {
	defer conn.Close()
	tp := textproto.NewConn(conn)
	tp.PrintfLine("220 accepting.test ESMTP")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
		switch verb {
		case "EHLO":
			tp.PrintfLine("250-accepting.test")
			tp.PrintfLine("250 8BITMIME")
		case "HELO", "MAIL", "RCPT", "RSET", "NOOP":
			tp.PrintfLine("250 OK")
		case "DATA":
			tp.PrintfLine("354 go ahead")
			body, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			id := ""
			hdr, err := textproto.NewReader(bufio.NewReader(strings.NewReader(string(body)))).ReadMIMEHeader()
			if err == nil {
				id = strings.Trim(hdr.Get("Message-Id"), "<>")
			}
			s.mu.Lock()
			s.got[id]++
			before, after := s.before, s.after
			s.mu.Unlock()
			if before != nil {
				before()
			}
			tp.PrintfLine("250 2.0.0 queued")
			if after != nil {
				after()
			}
			return // accepted; the connection drops before RSET or QUIT
		case "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("502 not implemented")
		}
	}
}

// deliverySetup is a config sending through host:port without TLS, and two
// daily subscriptions of P093374.
func deliverySetup(t *testing.T, host string, port int, extra string) (cfg, data string) {
	t.Helper()
	cfg, data = writeConfig(t, fmt.Sprintf("smtp:\n  host: %s\n  port: %d\n  tls: none\n  backoff: 10ms\n%s", host, port, extra))
	for _, id := range []string{"flex", "devices"} {
		tpl := map[string]string{"flex": "flex-license-usage", "devices": "devices"}[id]
		if out, err := tally(cfg, "subscriptions", "add", "--id", id, "--partner", "P093374", "--template", tpl, "--cadence", "daily", "--to", id+"@example.com").CombinedOutput(); err != nil {
			t.Fatalf("subscriptions add: %v\n%s", err, out)
		}
	}
	return cfg, data
}

func TestAnEmailTheServerAcceptedIsDeliveredOnceWhenTheConnectionDropsBeforeRSETOrQUIT(t *testing.T) {
	srv := startAcceptingServer(t)
	host, port := srv.addr()
	cfg, _ := deliverySetup(t, host, port, "")
	out, err := tally(cfg, "run", "reports-daily", "--period", "2026-11-21").CombinedOutput()
	if err != nil {
		t.Fatalf("reports-daily: %v\n%s", err, out)
	}
	got := srv.copies()
	if len(got) != 2 {
		t.Fatalf("the server received %v, want the two subscriptions' messages", got)
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times, want once: the server had accepted it", id, n)
		}
	}
	recs := ledgerOf(t, cfg, "reports-daily", "2026-11-21")
	rec := recs[len(recs)-1]
	emails, _ := rec["emails"].([]any)
	for _, e := range emails {
		if st := e.(map[string]any)["status"]; st != "sent" {
			t.Errorf("the ledger says %v for a message the server accepted", e)
		}
	}
	if len(emails) != 2 || rec["emails_failed"] != nil {
		t.Errorf("ledger emails %v, emails_failed %v: want two sent", emails, rec["emails_failed"])
	}
	if out, _ := tally(cfg, "runs", "reports-daily").CombinedOutput(); strings.Contains(string(out), "not delivered") || strings.Contains(string(out), "claimed by a process") {
		t.Errorf("tally runs reports unconfirmed sends:\n%s", out)
	}
}

// The one window in which a message can go twice: killed after the server's
// 250 to DATA and before the claim's confirmation (one storage write). The
// process is stopped before the 250 is written and killed after, so the kill
// always lands in that window.
func TestAKillBetweenTheServersAcceptanceAndTheClaimsConfirmationSendsThatMessageOnceMoreWithTheSameMessageID(t *testing.T) {
	srv := startAcceptingServer(t)
	host, port := srv.addr()
	cfg, _ := deliverySetup(t, host, port, "")
	victim := tally(cfg, "run", "reports-daily", "--period", "2026-11-21")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	srv.mu.Lock()
	srv.before = func() { once.Do(func() { victim.Process.Signal(syscall.SIGSTOP) }) }
	srv.after = func() { victim.Process.Signal(syscall.SIGKILL) }
	srv.mu.Unlock()
	victim.Wait()
	srv.mu.Lock()
	srv.before, srv.after = nil, nil
	srv.mu.Unlock()
	first := srv.copies()
	if len(first) != 1 {
		t.Fatalf("before the kill the server accepted %v, want one message", first)
	}
	if out, err := rerun(cfg, "2026-11-21"); err != nil {
		t.Fatalf("the re-run: %v\n%s", err, out)
	}
	got := srv.copies()
	if len(got) != 2 {
		t.Fatalf("after the re-run the server has %v, want the two subscriptions' messages", got)
	}
	for id, n := range got {
		want := 1
		if first[id] == 1 {
			want = 2 // the documented duplicate, under the same Message-ID
		}
		if n != want {
			t.Errorf("%s delivered %d times, want %d", id, n, want)
		}
	}
	recs := ledgerOf(t, cfg, "reports-daily", "2026-11-21")
	if last := recs[len(recs)-1]; last["status"] != "succeeded" || last["emails_failed"] != nil {
		t.Errorf("the re-run's record: %v", last)
	}
}

func TestAPermanentRefusalLeavesTheRunCompleteWithItsEmailsFailedAndTallyResendSendsThem(t *testing.T) {
	mp := testservers.NeedSMTPLogin(t)
	cfg, _ := deliverySetup(t, mp.Host, mp.Port, fmt.Sprintf("  username: %s\n", mp.User))
	wrong := tally(cfg, "run", "reports-daily", "--period", "2026-11-21")
	wrong.Env = append(wrong.Env, "TALLY_SMTP_PASSWORD=not-the-password")
	out, err := wrong.CombinedOutput()
	if err != nil {
		t.Fatalf("a run whose emails are refused: %v, want exit 0 (its files are published)\n%s", err, out)
	}
	recs := ledgerOf(t, cfg, "reports-daily", "2026-11-21")
	rec := recs[len(recs)-1]
	emails, _ := rec["emails"].([]any)
	if rec["status"] != "succeeded" || rec["emails_failed"] != float64(2) || len(emails) != 2 {
		t.Fatalf("the ledger: status %v, emails_failed %v, %d sends (want succeeded, 2 failed, each tried once: a refusal is not retried)", rec["status"], rec["emails_failed"], len(emails))
	}
	runs, _ := tally(cfg, "runs", "reports-daily").CombinedOutput()
	if !strings.Contains(string(runs), "2 email(s) not delivered") || !strings.Contains(string(runs), "tally resend") || !strings.Contains(string(runs), "535") {
		t.Errorf("tally runs does not say the emails failed and how to send them:\n%s", runs)
	}
	runID := rec["run_id"].(string)
	resend := tally(cfg, "resend", runID)
	resend.Env = append(resend.Env, "TALLY_SMTP_PASSWORD="+mp.Password)
	if out, err := resend.CombinedOutput(); err != nil {
		t.Fatalf("tally resend %s: %v\n%s", runID, err, out)
	}
	recs = ledgerOf(t, cfg, "reports-daily", "2026-11-21")
	rec = recs[len(recs)-1]
	if rec["emails_failed"] != nil {
		t.Errorf("after tally resend: emails_failed %v", rec["emails_failed"])
	}
	runs, _ = tally(cfg, "runs", "reports-daily").CombinedOutput()
	if strings.Contains(string(runs), "not delivered") {
		t.Errorf("tally runs after the resend:\n%s", runs)
	}
}

func TestConfigCheckProvesTheSMTPLoginARefusedOneIsExit2NamingTheSettingAnUnreachableServerExit1(t *testing.T) {
	mp := testservers.NeedSMTPLogin(t)
	cfg, _ := writeConfig(t, fmt.Sprintf("smtp:\n  host: %s\n  port: %d\n  tls: none\n  username: %s\n", mp.Host, mp.Port, mp.User))
	check := func(password string) (int, string) {
		cmd := tally(cfg, "config", "check")
		cmd.Env = append(cmd.Env, "TALLY_SMTP_PASSWORD="+password)
		out, err := cmd.CombinedOutput()
		return exitOf(err), string(out)
	}
	if code, out := check(mp.Password); code != 0 || !strings.Contains(out, "takes tally's login") {
		t.Fatalf("config check with the right password: exit %d\n%s", code, out)
	}
	if code, out := check("not-the-password"); code != exitUsage || !strings.Contains(out, "smtp.username and the password") {
		t.Errorf("config check with a wrong password: exit %d, want 2 naming smtp.username and the password\n%s", code, out)
	}
	// Nothing listens there: a network error, worth trying again.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().(*net.TCPAddr).Port
	l.Close()
	os.WriteFile(cfg, []byte(strings.Replace(string(must(os.ReadFile(cfg))), fmt.Sprintf("port: %d", mp.Port), fmt.Sprintf("port: %d", dead), 1)), 0o644)
	if code, out := check(mp.Password); code != exitFailed {
		t.Errorf("config check with nothing listening: exit %d, want 1\n%s", code, out)
	}
}

// Random kills while reports-daily sends through an SMTP server 30 ms away
// (toxiproxy in front of Mailpit): every message arrives, never more than
// twice and a second copy only under the same Message-ID. How many kills
// landed in the one window that duplicates (after the server's 250, before
// the claim's confirmation) is reported, not asserted.
func TestRandomKillsWithThirtyMillisecondsToTheSMTPServerDeliverEveryMessageAndDuplicatesOnlyUnderOneMessageID(t *testing.T) {
	mp := testservers.NeedMailpit(t)
	proxy := testservers.NeedToxiproxy(t).Proxy(t, fmt.Sprintf("smtp-latency-%d", rand.Int64()), fmt.Sprintf("%s:%d", mp.Host, mp.Port))
	proxy.Toxic(t, "latency", "latency", "downstream", 1, map[string]any{"latency": 30})
	host, port, _ := net.SplitHostPort(proxy.Listen)
	rounds := faultRounds(t, 40)
	cfg, _, domain, days := faultSetup(t, fmt.Sprintf("smtp:\n  host: %s\n  port: %s\n  tls: none\n", host, port), rounds)
	duplicates, messages := 0, 0
	defer func() {
		t.Logf("%d kills with 30 ms to the SMTP server: %d of %d messages arrived twice (same Message-ID)", rounds, duplicates, messages)
	}()
	for i, period := range days {
		round := fmt.Sprintf("kill %d (%s)", i+1, period)
		victim := tally(cfg, "run", "reports-daily", "--period", period)
		if err := victim.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(300+rand.IntN(2200)) * time.Millisecond)
		victim.Process.Signal(syscall.SIGKILL)
		victim.Wait()
		if out, err := rerun(cfg, period); err != nil {
			t.Fatalf("%s: the re-run: %v\n%s", round, err, out)
		}
		for _, s := range faultSubscriptions {
			want := fmt.Sprintf("reports-daily.%s.%s.%s-g1@tally", period, s.id, jobs.RecipientGroup(runner.DefaultGroup, s.id+"@"+domain))
			n := 0
			for _, m := range mp.WaitFor(t, "to:"+s.id+"@"+domain+" subject:"+period, 1) {
				if !strings.Contains(m.Subject, period) {
					continue
				}
				if m.MessageID != want {
					t.Errorf("%s: %s got Message-ID %q, want %q", round, s.id, m.MessageID, want)
				}
				n++
			}
			messages++
			if n == 2 {
				duplicates++
			}
			if n < 1 || n > 2 {
				t.Errorf("%s: %s received %d messages for %s, want 1 (or 2 with one Message-ID)", round, s.id, n, period)
			}
		}
	}
}
