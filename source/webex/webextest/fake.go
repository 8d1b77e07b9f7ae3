// Package webextest is an in-repo fake of the Webex REST APIs for tests:
// responses shaped like the public reference's examples (developer.webex.com;
// the license example as published in its API reference, List Licenses), and
// misbehaviour on demand — pages of one, 429 with Retry-After, expired tokens,
// 500s, silent responses — with every request counted.
package webextest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// License is one license as the API lists it (fields of the reference's example).
type License struct {
	ID                   string `json:"id"`
	Name                 string `json:"name"`
	TotalUnits           int64  `json:"totalUnits"`
	ConsumedUnits        int64  `json:"consumedUnits"`
	ConsumedByUsers      int64  `json:"consumedByUsers"`
	ConsumedByWorkspaces int64  `json:"consumedByWorkspaces"`
	SubscriptionID       string `json:"subscriptionId"`
	SiteURL              string `json:"siteUrl,omitempty"`
	SiteType             string `json:"siteType,omitempty"`
}

// Org is a managed customer organisation.
type Org struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Created     string `json:"created"`
}

// Fake is a running fake API.
type Fake struct {
	URL      string
	Orgs     []Org
	Licenses map[string][]License // org id → its licenses

	PageSize int // items per page (default 100)

	// Misbehaviour, consumed as requests arrive.
	TooMany    atomic.Int32 // answer this many requests 429 with RetryAfter
	RetryAfter int          // seconds
	// Now is the fake's clock (the tests' fake clock); with LimitUntil, every
	// request before that time answers 429 with the seconds left.
	Now        func() time.Time
	LimitUntil time.Time
	Limited    atomic.Int64 // requests answered 429
	Fail500    atomic.Int32 // answer this many requests 500
	Silent     atomic.Int32 // never answer this many requests (until the client gives up)
	FailOrg    string       // every request for this org answers 500

	Requests atomic.Int64 // API requests (not token grants)
	Grants   atomic.Int64 // refresh-token grants

	mu       sync.Mutex
	access   map[string]bool // valid access tokens
	refresh  map[string]bool // valid refresh tokens (rotated on use)
	n        int
	srv      *httptest.Server
	silentCh chan struct{}
}

// ClientID and ClientSecret are the fake integration's credentials.
const (
	ClientID     = "C0ffee-client"
	ClientSecret = "s3cret-client-secret"
)

// New starts a fake with one valid refresh token, returned.
func New(t testing.TB) (*Fake, string) {
	f := &Fake{Licenses: map[string][]License{}, access: map[string]bool{}, refresh: map[string]bool{}, silentCh: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/access_token", f.token)
	mux.HandleFunc("GET /v1/organizations", func(w http.ResponseWriter, r *http.Request) { f.list(w, r, anyOf(f.Orgs)) })
	mux.HandleFunc("GET /v1/licenses", func(w http.ResponseWriter, r *http.Request) {
		f.list(w, r, anyOf(f.Licenses[r.URL.Query().Get("orgId")]))
	})
	f.srv = httptest.NewServer(mux)
	f.URL = f.srv.URL + "/v1"
	t.Cleanup(func() { close(f.silentCh); f.srv.Close() })
	first := f.newToken(f.refresh)
	return f, first
}

func anyOf[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func (f *Fake) newToken(m map[string]bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	tok := fmt.Sprintf("tok-%d-%x", f.n, f.n*7919)
	m[tok] = true
	return tok
}

// ExpireTokens revokes every access token (the next request answers 401).
func (f *Fake) ExpireTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.access = map[string]bool{}
}

// token is the refresh-token grant: the refresh token is rotated on use.
func (f *Fake) token(w http.ResponseWriter, r *http.Request) {
	f.Grants.Add(1)
	r.ParseForm()
	f.mu.Lock()
	ok := r.Form.Get("grant_type") == "refresh_token" && r.Form.Get("client_id") == ClientID && r.Form.Get("client_secret") == ClientSecret && f.refresh[r.Form.Get("refresh_token")]
	if ok {
		delete(f.refresh, r.Form.Get("refresh_token"))
	}
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"access_token": f.newToken(f.access), "expires_in": 1209600,
		"refresh_token": f.newToken(f.refresh), "refresh_token_expires_in": 7776000, "token_type": "Bearer"})
}

func (f *Fake) fail(w http.ResponseWriter, status int, msg string) {
	n := f.Requests.Load()
	w.Header().Set("Trackingid", fmt.Sprintf("ROUTER_FAKE_%d", n))
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"message": msg, "trackingId": fmt.Sprintf("ROUTER_FAKE_%d", n)})
}

// list serves items a page at a time, with a Link: <…>; rel="next" header.
func (f *Fake) list(w http.ResponseWriter, r *http.Request, items []any) {
	f.Requests.Add(1)
	f.mu.Lock()
	authorized := f.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	f.mu.Unlock()
	switch {
	case !authorized:
		f.fail(w, http.StatusUnauthorized, "The request requires a valid access token set in the Authorization request header.")
		return
	case f.Silent.Add(-1) >= 0:
		select { // a connection that went silent
		case <-r.Context().Done():
		case <-f.silentCh:
		}
		return
	case f.TooMany.Add(-1) >= 0:
		f.Limited.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		f.fail(w, http.StatusTooManyRequests, "Too Many Requests")
		return
	case f.Now != nil && f.Now().Before(f.LimitUntil):
		f.Limited.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(int(f.LimitUntil.Sub(f.Now()).Seconds()+0.999)))
		f.fail(w, http.StatusTooManyRequests, "Too Many Requests")
		return
	case f.Fail500.Add(-1) >= 0, f.FailOrg != "" && r.URL.Query().Get("orgId") == f.FailOrg:
		f.fail(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	size := f.PageSize
	if size <= 0 {
		size = 100
	}
	start, _ := strconv.Atoi(r.URL.Query().Get("start"))
	end := min(start+size, len(items))
	if start > len(items) {
		start = len(items)
	}
	if end < len(items) {
		q := r.URL.Query()
		q.Set("start", strconv.Itoa(end))
		q.Set("max", strconv.Itoa(size))
		w.Header().Set("Link", fmt.Sprintf(`<%s%s?%s>; rel="next"`, f.srv.URL, r.URL.Path, q.Encode()))
	}
	w.Header().Set("Trackingid", fmt.Sprintf("ROUTER_FAKE_%d", f.Requests.Load()))
	json.NewEncoder(w).Encode(map[string]any{"items": items[start:end]})
}
