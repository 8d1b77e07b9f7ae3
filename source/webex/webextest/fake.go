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
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tally/source/webex"
)

// Org is a managed customer organisation, visible to its partner's tokens
// (Partner "" is visible to every token).
type Org struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Created     string `json:"created"`
	Partner     string `json:"-"`
	// Raw, when set, is served as the organisation's list item instead.
	Raw json.RawMessage `json:"-"`
}

// Data is what the fake answers for one organisation.
type Data struct {
	Licenses   []webex.License
	People     []webex.Person
	Devices    []webex.Device
	Workspaces []webex.Workspace
	Locations  []webex.Location
	Numbers    []webex.Number
	CDRs       []webex.CDR // served by "End time"... filtered on "Start time"+"Duration"
	// Raw, when set for an endpoint ("/licenses", …, "/cdr_feed"), is served
	// as its items instead, byte for byte (reference-shaped fixtures).
	Raw map[string][]json.RawMessage
}

// Fake is a running fake API.
type Fake struct {
	URL  string
	Orgs []Org
	Data map[string]*Data // org id (as listed) → its answers

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
	FailCalls  string       // every call-history request for this org answers 500
	// CallsRegion, when set, is the region each org's call history lives in
	// (org id → region); a request on /<region>/v1/cdr_feed for another
	// region's org answers 451, as the real feed does.
	CallsRegion map[string]string

	// PartnerOrgs are the partners' own organisations, one per partner a
	// refresh token was minted for. GET /v1/organizations lists them to every
	// partner's token beside its customers — the partner's own org is in its
	// list (organizations/list-organizations lists the organizations the token
	// can see, its own included), and a partner administering another
	// partner's org sees that one too — and GET /v1/people/me answers the
	// token's own (people/get-my-own-details: orgId).
	// The token New mints is of no partner: it sees no partner org. With
	// CrossPartnerOrgs, every partner's token sees every partner's org.
	PartnerOrgs      map[string]Org
	CrossPartnerOrgs bool

	Requests   atomic.Int64 // API requests (not token grants)
	Grants     atomic.Int64 // refresh-token grants
	CallsSoon  atomic.Int64 // call-history requests over the per-token limit (Now)
	CallsFirst atomic.Int64 // initial call-history requests (Now)

	mu        sync.Mutex
	access    map[string]string      // valid access token → its partner
	refresh   map[string]string      // valid refresh token (rotated on use) → its partner
	lastCalls map[string]time.Time   // partner (token) → its last initial call-history request
	pages     map[string][]time.Time // partner (token) → its pagination requests of the last minute
	n         int
	srv       *httptest.Server
	silentCh  chan struct{}
}

// ClientID and ClientSecret are the fake integration's credentials.
const (
	ClientID     = "C0ffee-client"
	ClientSecret = "s3cret-client-secret"
)

// Cleaner is what New needs of a test (testing.TB has it): a place to stop
// the fake when the test ends.
type Cleaner interface{ Cleanup(func()) }

// New starts a fake with one valid refresh token, returned.
func New(t Cleaner) (*Fake, string) {
	f := &Fake{Data: map[string]*Data{}, PartnerOrgs: map[string]Org{}, access: map[string]string{}, refresh: map[string]string{}, lastCalls: map[string]time.Time{}, pages: map[string][]time.Time{}, silentCh: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/access_token", f.token)
	mux.HandleFunc("GET /v1/organizations", func(w http.ResponseWriter, r *http.Request) {
		partner := f.partnerOf(r)
		var visible []any
		f.mu.Lock()
		for _, p := range sortedKeys(f.PartnerOrgs) {
			if p != "" && (p == partner || f.CrossPartnerOrgs) {
				visible = append(visible, f.PartnerOrgs[p])
			}
		}
		f.mu.Unlock()
		for _, o := range f.Orgs {
			if o.Partner == "" || o.Partner == partner {
				if o.Raw != nil {
					visible = append(visible, o.Raw)
				} else {
					visible = append(visible, o)
				}
			}
		}
		f.list(w, r, "items", visible)
	})
	org := func(key string, items func(*Data) []any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			d := f.Data[r.URL.Query().Get("orgId")]
			var out []any
			if raw, ok := d.raw(strings.TrimPrefix(r.URL.Path, "/v1")); ok {
				out = raw
			} else if d != nil {
				out = items(d)
			}
			f.list(w, r, key, out)
		}
	}
	mux.HandleFunc("GET /v1/people/me", func(w http.ResponseWriter, r *http.Request) {
		partner := f.partnerOf(r)
		f.mu.Lock()
		org := f.PartnerOrgs[partner]
		f.mu.Unlock()
		me := webex.Person{ID: ID("PEOPLE", uuidFor("admin", partner)), Emails: []string{"admin@partner.example.com"},
			DisplayName: "Partner administrator", OrgID: org.ID, Type: "person"}
		f.one(w, r, me)
	})
	mux.HandleFunc("GET /v1/licenses", org("items", func(d *Data) []any { return anyOf(d.Licenses) }))
	mux.HandleFunc("GET /v1/people", org("items", func(d *Data) []any { return anyOf(d.People) }))
	mux.HandleFunc("GET /v1/devices", org("items", func(d *Data) []any { return anyOf(d.Devices) }))
	mux.HandleFunc("GET /v1/workspaces", org("items", func(d *Data) []any { return anyOf(d.Workspaces) }))
	mux.HandleFunc("GET /v1/locations", org("items", func(d *Data) []any { return anyOf(d.Locations) }))
	mux.HandleFunc("GET /v1/telephony/config/numbers", org("phoneNumbers", func(d *Data) []any { return anyOf(d.Numbers) }))
	mux.HandleFunc("GET /{region}/v1/cdr_feed", f.cdrFeed)
	f.srv = httptest.NewServer(mux)
	f.URL = f.srv.URL + "/v1"
	t.Cleanup(func() { close(f.silentCh); f.srv.Close() })
	first := f.RefreshToken("")
	return f, first
}

// CallsHost is the call-history host the fake serves region's organisations on.
func (f *Fake) CallsHost(region string) string { return f.srv.URL + "/" + region + "/v1" }

// RefreshToken mints a refresh token of partner's administrator.
func (f *Fake) RefreshToken(partner string) string {
	f.mu.Lock()
	if _, ok := f.PartnerOrgs[partner]; !ok {
		name := "Partner " + partner + " (partner org)"
		f.PartnerOrgs[partner] = Org{ID: ID("ORGANIZATION", uuidFor("partner-org", partner)), DisplayName: name, Created: "2024-01-02T03:04:05.000Z"}
	}
	f.mu.Unlock()
	return f.newToken(f.refresh, partner)
}

// PartnerOrgUUID is the UUID of partner's own organisation.
func (f *Fake) PartnerOrgUUID(partner string) string { return uuidFor("partner-org", partner) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (f *Fake) partnerOf(r *http.Request) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
}

// authorized reports whether r carries a valid access token.
func (f *Fake) authorized(r *http.Request) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	return ok
}

// cdrFeed serves an org's records whose call ended in [startTime, endTime)
// (the window selects by report time, "the time the call finished":
// reports-detailed-call-history/get-detailed-call-history, startTime),
// refusing windows over 12 hours ("Only 12 hours of records can be retrieved
// per request"), and counting requests over the per-token limit.
func (f *Fake) cdrFeed(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	org := q.Get("orgId")
	from, err1 := time.Parse(time.RFC3339Nano, q.Get("startTime"))
	to, err2 := time.Parse(time.RFC3339Nano, q.Get("endTime"))
	if err1 != nil || err2 != nil || !to.After(from) || to.Sub(from) > 12*time.Hour {
		f.Requests.Add(1)
		f.fail(w, http.StatusBadRequest, "startTime and endTime must be timestamps at most 12 hours apart")
		return
	}
	if f.Now != nil {
		// The reference limits the call history per user token, not per
		// organisation: one initial request a minute, with up to 10 more
		// pagination requests (developer.webex.com/docs/api/v1/reports-detailed-call-history
		// and …/reports-live-stream-detailed-call-history, "rate-limited to 1
		// initial request per minute per user token"). A request over either
		// is counted, not refused, so a test can say how many there were.
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		partner := f.partnerOf(r)
		if partner == "" {
			partner = token
		}
		now := f.Now()
		f.mu.Lock()
		if q.Get("start") == "" {
			if last, ok := f.lastCalls[partner]; ok && now.Sub(last) < time.Minute {
				f.CallsSoon.Add(1)
			}
			f.lastCalls[partner] = now
			f.CallsFirst.Add(1)
		} else {
			recent := f.pages[partner][:0]
			for _, t := range f.pages[partner] {
				if now.Sub(t) < time.Minute {
					recent = append(recent, t)
				}
			}
			if len(recent) >= 10 {
				f.CallsSoon.Add(1)
			}
			f.pages[partner] = append(recent, now)
		}
		f.mu.Unlock()
	}
	if want := f.CallsRegion[org]; want != "" && want != r.PathValue("region") {
		f.Requests.Add(1)
		f.fail(w, http.StatusUnavailableForLegalReasons, "the organization's data is in another region")
		return
	}
	if f.FailCalls != "" && org == f.FailCalls {
		f.Requests.Add(1)
		f.fail(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	var items []any
	if d := f.Data[org]; d != nil {
		records := d.CDRs
		raw, isRaw := d.raw("/cdr_feed")
		if isRaw {
			records = make([]webex.CDR, len(raw))
			for i, r := range raw {
				json.Unmarshal(r.(json.RawMessage), &records[i])
			}
		}
		for i, rec := range records {
			start, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(rec["Start time"]))
			dur, _ := strconv.Atoi(fmt.Sprint(rec["Duration"]))
			end := start.Add(time.Duration(dur) * time.Second)
			if !end.Before(from) && end.Before(to) {
				if isRaw {
					items = append(items, raw[i])
				} else {
					items = append(items, rec)
				}
			}
		}
	}
	f.list(w, r, "items", items)
}

// raw is the fixture items of an endpoint, if d has them.
func (d *Data) raw(endpoint string) ([]any, bool) {
	if d == nil || d.Raw[endpoint] == nil {
		return nil, false
	}
	return anyOf(d.Raw[endpoint]), true
}

// FromFixtures reads an organisation and its endpoints' answers from response
// bodies in dir (organizations.json, licenses.json, …, cdr_feed.json, as in
// source/webex/testdata/reference), served as they are.
func FromFixtures(dir string) (Org, *Data, error) {
	items := func(file, key string) ([]json.RawMessage, error) {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return nil, err
		}
		var body map[string][]json.RawMessage
		if err := json.Unmarshal(b, &body); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return body[key], nil
	}
	orgs, err := items("organizations.json", "items")
	if err != nil || len(orgs) != 1 {
		return Org{}, nil, fmt.Errorf("organizations.json: want one organisation (%v)", err)
	}
	var org Org
	json.Unmarshal(orgs[0], &org)
	org.Raw = orgs[0]
	d := &Data{Raw: map[string][]json.RawMessage{}}
	for endpoint, file := range map[string]string{"/licenses": "licenses.json", "/locations": "locations.json", "/people": "people.json",
		"/workspaces": "workspaces.json", "/devices": "devices.json", "/telephony/config/numbers": "numbers.json", "/cdr_feed": "cdr_feed.json"} {
		key := "items"
		if endpoint == "/telephony/config/numbers" {
			key = "phoneNumbers"
		}
		if d.Raw[endpoint], err = items(file, key); err != nil {
			return Org{}, nil, err
		}
	}
	return org, d, nil
}

func anyOf[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func (f *Fake) newToken(m map[string]string, partner string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	tok := fmt.Sprintf("tok-%d-%x", f.n, f.n*7919)
	m[tok] = partner
	return tok
}

// ExpireTokens revokes every access token (the next request answers 401).
func (f *Fake) ExpireTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.access = map[string]string{}
}

// token is the refresh-token grant: the refresh token is rotated on use.
func (f *Fake) token(w http.ResponseWriter, r *http.Request) {
	f.Grants.Add(1)
	r.ParseForm()
	f.mu.Lock()
	partner, valid := f.refresh[r.Form.Get("refresh_token")]
	ok := r.Form.Get("grant_type") == "refresh_token" && r.Form.Get("client_id") == ClientID && r.Form.Get("client_secret") == ClientSecret && valid
	if ok {
		delete(f.refresh, r.Form.Get("refresh_token"))
	}
	f.mu.Unlock()
	if !ok {
		// An error response of the token endpoint (RFC 6749 §5.2: error,
		// error_description), with the trackingid every Webex answer has.
		w.Header().Set("Trackingid", fmt.Sprintf("ROUTER_FAKE_GRANT_%d", f.Grants.Load()))
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant",
			"error_description": "The refresh token provided is expired, revoked, malformed, or invalid."})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"access_token": f.newToken(f.access, partner), "expires_in": 1209600,
		"refresh_token": f.newToken(f.refresh, partner), "refresh_token_expires_in": 7776000, "token_type": "Bearer"})
}

func (f *Fake) fail(w http.ResponseWriter, status int, msg string) {
	n := f.Requests.Load()
	w.Header().Set("Trackingid", fmt.Sprintf("ROUTER_FAKE_%d", n))
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"message": msg, "trackingId": fmt.Sprintf("ROUTER_FAKE_%d", n)})
}

// one serves a single object (GET /v1/people/me) under the same checks as list.
func (f *Fake) one(w http.ResponseWriter, r *http.Request, v any) {
	f.Requests.Add(1)
	if !f.authorized(r) {
		f.fail(w, http.StatusUnauthorized, "The request requires a valid access token set in the Authorization request header.")
		return
	}
	w.Header().Set("Trackingid", fmt.Sprintf("ROUTER_FAKE_%d", f.Requests.Load()))
	json.NewEncoder(w).Encode(v)
}

// list serves items a page at a time, with a Link: <…>; rel="next" header.
func (f *Fake) list(w http.ResponseWriter, r *http.Request, key string, items []any) {
	f.Requests.Add(1)
	switch {
	case !f.authorized(r):
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
	if items == nil {
		items = []any{}
	}
	json.NewEncoder(w).Encode(map[string]any{key: items[start:end]})
}

// Deliveries are partner's customers' call records as the Partner Hub
// Detailed Call Records webhook would deliver them between from and to
// (help.webex.com/article/n5zr85e): every 5 minutes a payload with the records
// of calls that ended 10 to 5 minutes before, in the format of the Detailed
// Call Records APIs (an "items" list of records with the report's column
// names). A payload with no records is not sent.
func (f *Fake) Deliveries(partner string, from, to time.Time) [][]byte {
	buckets := map[time.Time][]webex.CDR{}
	for _, o := range f.Orgs {
		if o.Partner != partner || f.Data[o.ID] == nil {
			continue
		}
		for _, rec := range f.Data[o.ID].CDRs {
			start, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(rec["Start time"]))
			dur, _ := strconv.Atoi(fmt.Sprint(rec["Duration"]))
			end := start.Add(time.Duration(dur) * time.Second)
			at := end.Truncate(5 * time.Minute).Add(10 * time.Minute) // ended in [t, t+5m): the t+10m payload
			if !at.Before(from) && at.Before(to) {
				buckets[at] = append(buckets[at], rec)
			}
		}
	}
	var times []time.Time
	for t := range buckets {
		times = append(times, t)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	out := make([][]byte, 0, len(times))
	for _, t := range times {
		b, _ := json.Marshal(map[string]any{"items": buckets[t]})
		out = append(out, b)
	}
	return out
}
