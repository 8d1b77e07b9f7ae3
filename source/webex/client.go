// Package webex is the client of the public Webex REST APIs that the webex
// source reads a partner's managed customers from: OAuth tokens (refreshed, the
// rotated refresh token kept in the control store), pagination by the Link
// header, 429s honoured with Retry-After across every request, 5xx and
// timeouts retried with backoff and jitter, a deadline per request and a global
// request rate limit. Every failed request's trackingid is in its error.
package webex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"tally/clock"
)

// DefaultBaseURL is the public API host.
const DefaultBaseURL = "https://webexapis.com/v1"

// Tokens gives the client an access token, and forgets one the API refused.
type Tokens interface {
	Token(ctx context.Context) (string, error)
	Invalidate(token string)
}

// Client calls the Webex REST APIs.
type Client struct {
	BaseURL        string
	HTTP           *http.Client
	Tokens         Tokens
	Limit          *rate.Limiter // every request waits its turn (nil: no limit)
	Attempts       int           // per request, for 5xx and timeouts (default 5)
	Backoff        time.Duration // first retry's wait, doubling (default 1 s)
	RequestTimeout time.Duration // one request's deadline (default 30 s)
	Clock          clock.Clock
	Log            zerolog.Logger
	Jitter         func() float64 // [0,1); default rand

	mu          sync.Mutex
	pausedUntil time.Time // a 429's Retry-After pauses every request, not just its own
}

// APIError is a request the API refused or failed, with its trackingid.
type APIError struct {
	Method, Path string
	Status       int
	TrackingID   string
	Message      string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("webex: %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.TrackingID != "" {
		msg += " (trackingid " + e.TrackingID + ")"
	}
	return msg
}

// Retryable reports whether another try may succeed (429, 5xx).
func (e *APIError) Retryable() bool { return e.Status == http.StatusTooManyRequests || e.Status >= 500 }

func (c *Client) attempts() int {
	if c.Attempts > 0 {
		return c.Attempts
	}
	return 5
}

// List calls GET path (relative to BaseURL, with query) and every next page its
// Link header names, passing each of the pages' items to each.
func (c *Client) List(ctx context.Context, path string, query url.Values, each func(json.RawMessage) error) error {
	return c.ListAt(ctx, c.BaseURL, path, query, "items", each)
}

// ListAt is List on another host (the call-history feed's regional host) and
// with another key for the page's array (telephony numbers are "phoneNumbers").
func (c *Client) ListAt(ctx context.Context, base, path string, query url.Values, key string, each func(json.RawMessage) error) error {
	return c.ListPaced(ctx, base, path, query, key, nil, each)
}

// ListPaced is ListAt calling pace before each page (first tells the first
// page from the following ones): an endpoint limited per token beyond the
// client's own rate (the call history).
func (c *Client) ListPaced(ctx context.Context, base, path string, query url.Values, key string, pace func(ctx context.Context, first bool) error, each func(json.RawMessage) error) error {
	next := strings.TrimSuffix(base, "/") + path
	if len(query) > 0 {
		next += "?" + query.Encode()
	}
	for first := true; next != ""; first = false {
		if pace != nil {
			if err := pace(ctx, first); err != nil {
				return err
			}
		}
		body, header, err := c.Get(ctx, next)
		if err != nil {
			return err
		}
		var page map[string]json.RawMessage
		var items []json.RawMessage
		if err := json.Unmarshal(body, &page); err != nil {
			return fmt.Errorf("webex: GET %s%s: not a page of %s (trackingid %s): %w", pathOf(next), orgOf(next), key, header.Get("Trackingid"), err)
		}
		if raw, ok := page[key]; ok {
			if err := json.Unmarshal(raw, &items); err != nil {
				return fmt.Errorf("webex: GET %s%s: %q is not a list (trackingid %s): %w", pathOf(next), orgOf(next), key, header.Get("Trackingid"), err)
			}
		}
		for _, it := range items {
			if err := each(it); err != nil {
				return err
			}
		}
		next = nextLink(header.Get("Link"))
	}
	return nil
}

// OwnOrg is the UUID of the organisation the token's user belongs to (GET
// /v1/people/me, developer.webex.com/docs/api/v1/people/get-my-own-details:
// orgId): for a partner administrator, the partner's own organisation.
func (c *Client) OwnOrg(ctx context.Context) (string, error) {
	url := strings.TrimSuffix(c.BaseURL, "/") + "/people/me"
	body, header, err := c.Get(ctx, url)
	if err != nil {
		return "", err
	}
	var me Person
	if err := json.Unmarshal(body, &me); err != nil || me.OrgID == "" {
		return "", fmt.Errorf("webex: GET /people/me: no orgId in %.200q (trackingid %s)", body, header.Get("Trackingid"))
	}
	return OrgUUID(me.OrgID)
}

var linkNext = regexp.MustCompile(`<([^>]+)>\s*;\s*rel="?next"?`)

// nextLink reads the rel="next" URL of a Link header ("" when none).
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		if m := linkNext.FindStringSubmatch(part); m != nil {
			return m[1]
		}
	}
	return ""
}

// orgOf is " (org <orgId>)" for a request about one organisation.
func orgOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Query().Get("orgId") == "" {
		return ""
	}
	return " (org " + u.Query().Get("orgId") + ")"
}

func pathOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Path
}

// Get performs one GET with the client's retries and returns the body.
func (c *Client) Get(ctx context.Context, rawURL string) ([]byte, http.Header, error) {
	refreshed := false
	var last error
	for try := 1; ; try++ {
		if err := c.wait(ctx); err != nil {
			return nil, nil, err
		}
		body, header, err := c.once(ctx, rawURL)
		if err == nil {
			return body, header, nil
		}
		last = err
		var api *APIError
		var refused *TokenError
		switch {
		case errors.As(err, &refused) || errors.Is(err, ErrNoToken):
			return nil, nil, err // only a new refresh token helps: no retry
		case errors.As(err, &api) && api.Status == http.StatusUnauthorized && !refreshed:
			refreshed = true // the token expired or was revoked: refresh once and retry
			c.Log.Warn().Str("trackingid", api.TrackingID).Str("path", api.Path).Msg("webex: 401, refreshing the access token")
			continue
		case errors.As(err, &api) && api.Status == http.StatusTooManyRequests:
			wait := retryAfter(header)
			c.Log.Warn().Str("trackingid", api.TrackingID).Str("path", api.Path).Int64("retry_after_ms", wait.Milliseconds()).Msg("webex: 429, pausing every request")
			c.pause(wait)
			if try < 3*c.attempts() { // a rate limit is waited out, within reason
				continue
			}
		case ctx.Err() != nil:
			return nil, nil, err
		case (errors.As(err, &api) && api.Retryable()) || !errors.As(err, &api):
			c.Log.Warn().Err(err).Int("try", try).Msg("webex: request failed")
			if try < c.attempts() {
				if err := c.Clock.Sleep(ctx, c.backoff(try)); err != nil {
					return nil, nil, err
				}
				continue
			}
		}
		return nil, nil, last
	}
}

// once is a single request under its deadline.
func (c *Client) once(ctx context.Context, rawURL string) ([]byte, http.Header, error) {
	timeout := c.RequestTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	token, err := c.Tokens.Token(ctx)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// A transport error names the URL, never the token (it is in a header).
		return nil, nil, fmt.Errorf("webex: GET %s%s: %w", pathOf(rawURL), orgOf(rawURL), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, resp.Header, fmt.Errorf("webex: GET %s: %w", pathOf(rawURL), err)
	}
	if resp.StatusCode >= 300 {
		if resp.StatusCode == http.StatusUnauthorized {
			c.Tokens.Invalidate(token)
		}
		var msg struct {
			Message string `json:"message"`
		}
		json.Unmarshal(body, &msg)
		return nil, resp.Header, &APIError{Method: http.MethodGet, Path: pathOf(rawURL) + orgOf(rawURL), Status: resp.StatusCode,
			TrackingID: resp.Header.Get("Trackingid"), Message: msg.Message}
	}
	return body, resp.Header, nil
}

// wait blocks for a 429's pause and the rate limit. A request already
// waiting when another 429 extends the pause waits on to the latest deadline.
func (c *Client) wait(ctx context.Context) error {
	for {
		c.mu.Lock()
		until := c.pausedUntil
		c.mu.Unlock()
		d := until.Sub(c.Clock.Now())
		if d <= 0 {
			break
		}
		if err := c.Clock.Sleep(ctx, d); err != nil {
			return err
		}
	}
	if c.Limit != nil {
		return c.Limit.Wait(ctx)
	}
	return nil
}

func (c *Client) pause(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until := c.Clock.Now().Add(d); until.After(c.pausedUntil) {
		c.pausedUntil = until
	}
}

// retryAfter reads Retry-After in seconds (default 60 s, the API's usual).
func retryAfter(h http.Header) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return time.Minute
}

// backoff is the wait before retry n: doubling from Backoff, with jitter in [d/2, d].
func (c *Client) backoff(n int) time.Duration {
	d := c.Backoff
	if d <= 0 {
		d = time.Second
	}
	for i := 1; i < n; i++ {
		d *= 2
	}
	j := c.Jitter
	if j == nil {
		j = rand.Float64
	}
	return d/2 + time.Duration(j()*float64(d/2))
}
