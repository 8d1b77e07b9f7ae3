package webex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"tally/storage"
)

// TokenKey is where a partner's OAuth tokens live in the control store: never
// in the YAML, never logged.
func TokenKey(partner string) string { return "_secrets/webex-oauth/" + partner + ".json" }

// stored is the token record. Webex rotates the refresh token on refresh, so
// the newest one must never be lost: it is replaced by compare-and-swap only.
type stored struct {
	RefreshToken string    `json:"refresh_token"`
	AccessToken  string    `json:"access_token,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitempty"`
}

// OAuth gives access tokens of an integration or service app, refreshing them
// with the refresh-token grant before they expire and after a 401.
type OAuth struct {
	Key          string // TokenKey(partner)
	TokenURL     string // e.g. https://webexapis.com/v1/access_token
	ClientID     string
	ClientSecret string
	Store        storage.Store // the control store
	HTTP         *http.Client
	Now          func() time.Time
	// Early is how long before expiry a token is refreshed (default 5 min).
	Early time.Duration

	mu      sync.Mutex
	current stored
	revoked string // the token the API last refused: never used again
}

var _ Tokens = (*OAuth)(nil)

// ErrNoToken means no refresh token was stored yet: run the documented first step.
var ErrNoToken = errors.New("no Webex refresh token stored: import one with tally source webex login --partner ID --refresh-token-file FILE")

// TokenError is a refresh the token endpoint refused (4xx): no retry can fix
// it, a new refresh token (tally source webex login) can.
type TokenError struct {
	URL, Status, Code, Message, TrackingID string
	invalidGrant                           bool
}

// Unwrap is errInvalidGrant for an invalid_grant: the refresh token was used
// (by another process, when it rotated it) or revoked.
func (e *TokenError) Unwrap() error {
	if e.invalidGrant {
		return errInvalidGrant
	}
	return nil
}

func (e *TokenError) Error() string {
	msg := fmt.Sprintf("webex: refresh the access token at %s: %s", e.URL, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.TrackingID != "" {
		msg += " (trackingid " + e.TrackingID + ")"
	}
	return msg + "; store a new refresh token with tally source webex login"
}

// Login checks a first refresh token by refreshing with it at once, then
// stores the rotated refresh token and the access token (the login step). A
// token the endpoint refuses (already used, revoked) is a *TokenError and
// nothing is stored.
func (o *OAuth) Login(ctx context.Context, refresh string) error {
	fresh, err := o.refresh(ctx, strings.TrimSpace(refresh))
	if err != nil {
		return err
	}
	b, _ := json.Marshal(fresh)
	if err := putToken(ctx, o.Store, o.Key, b); err != nil {
		return err
	}
	o.mu.Lock()
	o.current = fresh
	o.mu.Unlock()
	return nil
}

// ImportRefreshToken stores a first refresh token as it is, unchecked.
func ImportRefreshToken(ctx context.Context, s storage.Store, key, refresh string) error {
	b, _ := json.Marshal(stored{RefreshToken: strings.TrimSpace(refresh)})
	return putToken(ctx, s, key, b)
}

func putToken(ctx context.Context, s storage.Store, key string, b []byte) error {
	_, err := s.Create(ctx, key, b)
	if errors.Is(err, storage.ErrExists) {
		_, obj, rerr := storage.ReadAll(ctx, s, key)
		if rerr != nil {
			return rerr
		}
		_, err = s.Replace(ctx, key, obj.ETag, b)
	}
	return err
}

func (o *OAuth) early() time.Duration {
	if o.Early > 0 {
		return o.Early
	}
	return 5 * time.Minute
}

func (o *OAuth) valid(t stored) bool {
	return t.AccessToken != "" && o.Now().Add(o.early()).Before(t.ExpiresAt)
}

// Token is a valid access token: the one held, one another process stored, or
// a fresh one from the refresh-token grant.
func (o *OAuth) Token(ctx context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.valid(o.current) {
		return o.current.AccessToken, nil
	}
	var refused string // the stored refresh token the endpoint refused
	var refusal error
	for try := 0; try < refreshTries; try++ {
		if try > 0 {
			// Another process rotated the refresh token: give it the moment
			// it needs to store the new one before reading again.
			select {
			case <-time.After(min(25*time.Millisecond<<(try-1), time.Second)):
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		b, obj, err := storage.ReadAll(ctx, o.Store, o.Key)
		if errors.Is(err, storage.ErrNotFound) {
			return "", fmt.Errorf("%w (%s)", ErrNoToken, o.Key)
		}
		if err != nil {
			return "", fmt.Errorf("webex: token store: %w", err)
		}
		var st stored
		if err := json.Unmarshal(b, &st); err != nil {
			return "", fmt.Errorf("webex: token store %s: %w", o.Key, err)
		}
		if o.valid(st) && st.AccessToken != o.revoked {
			o.current = st // another process refreshed
			return st.AccessToken, nil
		}
		if st.RefreshToken == refused {
			if try >= 3 {
				// Still the refused token ~175 ms later: no other process
				// is rotating it; it was used elsewhere or revoked.
				return "", refusal
			}
			continue
		}
		fresh, err := o.refresh(ctx, st.RefreshToken)
		if errors.Is(err, errInvalidGrant) {
			refused, refusal = st.RefreshToken, err
			if try == refreshTries-1 || ctx.Err() != nil {
				return "", err
			}
			continue // rotated by another process meanwhile: read it again
		}
		if err != nil {
			return "", err
		}
		nb, _ := json.Marshal(fresh)
		if _, err := o.Store.Replace(ctx, o.Key, obj.ETag, nb); errors.Is(err, storage.ErrPreconditionFailed) {
			continue // another process stored its refresh first: use theirs
		} else if err != nil {
			return "", fmt.Errorf("webex: token store: %w", err)
		}
		o.current = fresh
		return fresh.AccessToken, nil
	}
	return "", errors.New("webex: could not refresh the access token: the refresh token kept changing under us")
}

// refreshTries bounds the refreshes one Token call tries while other processes
// keep rotating the refresh token under it (about 4 s of waiting in all).
const refreshTries = 8

// Invalidate forgets token (the API answered 401 to it).
func (o *OAuth) Invalidate(token string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.revoked = token
	if o.current.AccessToken == token {
		o.current.AccessToken, o.current.ExpiresAt = "", time.Time{}
	}
}

var errInvalidGrant = errors.New("invalid_grant")

func (o *OAuth) refresh(ctx context.Context, refresh string) (stored, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {o.ClientID}, "client_secret": {o.ClientSecret}, "refresh_token": {refresh}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return stored{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hc := o.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return stored{}, fmt.Errorf("webex: refresh the access token at %s: %w", o.TokenURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tok struct {
		AccessToken      string `json:"access_token"`
		ExpiresIn        int64  `json:"expires_in"`
		RefreshToken     string `json:"refresh_token"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		Message          string `json:"message"`
	}
	json.Unmarshal(body, &tok)
	if resp.StatusCode >= 300 || tok.AccessToken == "" {
		// The error code and the endpoint's message, never the rest of the
		// body (it may echo the form's secrets).
		msg := tok.ErrorDescription
		if msg == "" {
			msg = tok.Message
		}
		te := &TokenError{URL: o.TokenURL, Status: resp.Status, Code: tok.Error, Message: msg, TrackingID: resp.Header.Get("Trackingid")}
		if tok.Error == "invalid_grant" || resp.StatusCode >= 400 && resp.StatusCode < 500 {
			te.invalidGrant = tok.Error == "invalid_grant"
			return stored{}, te
		}
		return stored{}, fmt.Errorf("webex: refresh the access token at %s: %s (%s, trackingid %s)", o.TokenURL, resp.Status, tok.Error, resp.Header.Get("Trackingid"))
	}
	st := stored{AccessToken: tok.AccessToken, ExpiresAt: o.Now().Add(time.Duration(tok.ExpiresIn) * time.Second), RefreshToken: tok.RefreshToken}
	if st.RefreshToken == "" {
		st.RefreshToken = refresh // not rotated
	}
	return st, nil
}
