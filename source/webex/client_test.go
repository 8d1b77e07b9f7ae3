package webex_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"tally/clock"
	"tally/source/webex"
	"tally/source/webex/webextest"
	"tally/storage/local"
)

// setup is a client of a fake with its first refresh token imported; its clock
// is fake (sleeps return at once, advancing it), its log a buffer.
func setup(t *testing.T) (*webex.Client, *webextest.Fake, *clock.Fake, *bytes.Buffer, *webex.OAuth) {
	t.Helper()
	f, refresh := webextest.New(t)
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := webex.ImportRefreshToken(context.Background(), store, webex.TokenKey("p1"), refresh); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 11, 22, 0, 5, 0, 0, time.UTC))
	var logs bytes.Buffer
	oauth := &webex.OAuth{Key: webex.TokenKey("p1"), TokenURL: f.URL + "/access_token", ClientID: webextest.ClientID, ClientSecret: webextest.ClientSecret, Store: store, Now: clk.Now}
	c := &webex.Client{BaseURL: f.URL, Tokens: oauth, Clock: clk, Log: zerolog.New(zerolog.SyncWriter(&logs)), RequestTimeout: 200 * time.Millisecond,
		Jitter: func() float64 { return 1 }}
	return c, f, clk, &logs, oauth
}

// anotherProcess is the same integration in another process (pod): the same
// token store, nothing held in memory.
func anotherProcess(o *webex.OAuth, now func() time.Time) *webex.OAuth {
	return &webex.OAuth{Key: o.Key, TokenURL: o.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret, Store: o.Store, Now: now}
}

func orgs(n int) []webextest.Org {
	out := make([]webextest.Org, n)
	for i := range out {
		out[i] = webextest.Org{ID: "Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi8" + string(rune('a'+i)), DisplayName: "Customer " + string(rune('A'+i)), Created: "2026-01-01T00:00:00.000Z"}
	}
	return out
}

func names(t *testing.T, c *webex.Client) []string {
	t.Helper()
	var out []string
	err := c.List(context.Background(), "/organizations", nil, func(raw json.RawMessage) error {
		var o webextest.Org
		if err := json.Unmarshal(raw, &o); err != nil {
			return err
		}
		out = append(out, o.DisplayName)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPagesFollowTheLinkHeaderToTheLastPage(t *testing.T) {
	c, f, _, _, _ := setup(t)
	f.Orgs, f.PageSize = orgs(5), 1
	if got := names(t, c); len(got) != 5 || got[4] != "Customer E" {
		t.Fatalf("listed %v, want 5 organisations", got)
	}
	if n := f.Requests.Load(); n != 5 {
		t.Fatalf("%d requests for 5 pages of one", n)
	}
}

func TestA429PausesEveryRequestForItsRetryAfterWithNoRequestStorm(t *testing.T) {
	c, f, clk, _, _ := setup(t)
	f.Orgs, f.PageSize = orgs(3), 1
	f.Now, f.LimitUntil = clk.Now, clk.Now().Add(7*time.Second) // rate-limited for 7 s
	start := clk.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 { // four callers at once: one pause holds all of them
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.List(context.Background(), "/organizations", nil, func(json.RawMessage) error { return nil })
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// At most each caller's first request meets the limit; nobody retries into it.
	if n := f.Limited.Load(); n > 4 {
		t.Fatalf("%d requests answered 429: the client retried into the rate limit", n)
	}
	if n := f.Requests.Load(); n != 4*3+f.Limited.Load() {
		t.Fatalf("%d requests, want %d", n, 4*3+f.Limited.Load())
	}
	if waited := clk.Now().Sub(start); waited < 7*time.Second {
		t.Fatalf("waited %s in all, less than the Retry-After of 7 s", waited)
	}
}

func Test5xxAreRetriedWithBackoffAndAFailureKeepsItsTrackingID(t *testing.T) {
	c, f, clk, _, _ := setup(t)
	f.Orgs = orgs(2)
	f.Fail500.Store(2)
	start := clk.Now()
	if got := names(t, c); len(got) != 2 {
		t.Fatalf("after two 500s: %v", got)
	}
	if waited := clk.Now().Sub(start); waited != 3*time.Second { // 1 s, then 2 s (jitter 1)
		t.Fatalf("backed off %s, want 1 s + 2 s", waited)
	}
	f.FailOrg = "org-x"
	err := c.List(context.Background(), "/licenses", map[string][]string{"orgId": {"org-x"}}, func(json.RawMessage) error { return nil })
	var api *webex.APIError
	if !errors.As(err, &api) || api.Status != 500 || !strings.Contains(err.Error(), "trackingid ROUTER_FAKE_") {
		t.Fatalf("a request that keeps failing: %v, want a 500 naming its trackingid", err)
	}
}

func TestAnExpiredTokenIsRefreshedOnceAndTheRotatedRefreshTokenKept(t *testing.T) {
	c, f, _, logs, oauth := setup(t)
	f.Orgs = orgs(1)
	names(t, c)
	first := f.Grants.Load()
	f.ExpireTokens()
	if got := names(t, c); len(got) != 1 {
		t.Fatalf("after the token expired: %v", got)
	}
	if f.Grants.Load() != first+1 {
		t.Fatalf("%d refresh grants after a 401, want one more", f.Grants.Load()-first)
	}
	// A second process (another pod) with the same store refreshes with the
	// rotated refresh token, not the one used up.
	other := anotherProcess(oauth, oauth.Now)
	f.ExpireTokens()
	oauth.Invalidate(mustToken(t, oauth))
	if _, err := oauth.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	other.Invalidate("none")
	if _, err := other.Token(context.Background()); err != nil {
		t.Fatalf("the second process: %v (the rotated refresh token was lost)", err)
	}
	if strings.Contains(logs.String(), "tok-") {
		t.Fatalf("a token in the log:\n%s", logs.String())
	}
}

func mustToken(t *testing.T, o *webex.OAuth) string {
	tok, err := o.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTwoProcessesRefreshingAtOnceBothGetAValidTokenAndTheNewestRefreshTokenIsKept(t *testing.T) {
	c, f, _, _, oauth := setup(t)
	f.Orgs = orgs(1)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := anotherProcess(oauth, oauth.Now)
			cl := &webex.Client{BaseURL: c.BaseURL, Tokens: p, Clock: c.Clock, Log: c.Log, RequestTimeout: c.RequestTimeout, Jitter: c.Jitter}
			if err := cl.List(context.Background(), "/organizations", nil, func(json.RawMessage) error { return nil }); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a process lost the race for the refresh token: %v", err)
	}
	// The refresh token in the store still works: one more process can refresh.
	f.ExpireTokens()
	p := anotherProcess(oauth, func() time.Time { return oauth.Now().Add(30 * 24 * time.Hour) })
	if _, err := p.Token(context.Background()); err != nil {
		t.Fatalf("the stored refresh token no longer works: %v", err)
	}
}

func TestASilentResponseEndsAtTheRequestDeadlineAndIsRetried(t *testing.T) {
	c, f, _, _, _ := setup(t)
	f.Orgs = orgs(1)
	f.Silent.Store(1)
	start := time.Now()
	if got := names(t, c); len(got) != 1 {
		t.Fatalf("after a silent response: %v", got)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %s: the 200 ms request deadline did not cut the silent response", took)
	}
}

func TestNoStoredRefreshTokenSaysHowToGetOne(t *testing.T) {
	store, _ := local.New(t.TempDir())
	o := &webex.OAuth{Key: webex.TokenKey("p1"), TokenURL: "http://127.0.0.1:1/none", Store: store, Now: time.Now}
	if _, err := o.Token(context.Background()); !errors.Is(err, webex.ErrNoToken) || !strings.Contains(err.Error(), "tally source webex login") {
		t.Fatalf("%v", err)
	}
}
