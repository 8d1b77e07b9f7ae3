package subscriptions

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"tally/storage"
)

// An unsubscribe token names one recipient of one subscription, signed with
// HMAC-SHA256 (serve.unsubscribe_key_file): base64url("<id>\n<address>") "." base64url(mac).
// It does not expire: a link in an old email still works (RFC 8058 asks that
// it keep working).

// ErrBadToken is an unsubscribe token that is malformed or not signed with the key.
var ErrBadToken = errors.New("unsubscribe link is not valid (altered, or signed with another key)")

// Token signs (subscription, address) with key.
func Token(key []byte, subscription, address string) string {
	payload := subscription + "\n" + strings.ToLower(address)
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(mac(key, payload))
}

func mac(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// ParseToken checks a token's signature and returns what it names.
func ParseToken(key []byte, token string) (subscription, address string, err error) {
	p, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > 1024 {
		return "", "", ErrBadToken
	}
	// Strict: one text per token (no second spelling with other trailing bits).
	payload, err1 := base64.RawURLEncoding.Strict().DecodeString(p)
	got, err2 := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(got, mac(key, string(payload))) {
		return "", "", ErrBadToken
	}
	subscription, address, ok = strings.Cut(string(payload), "\n")
	if !ok || !idRE.MatchString(subscription) || ValidateAddress(address) != nil {
		return "", "", ErrBadToken
	}
	return subscription, address, nil
}

// RemoveRecipient (for Store.Update) removes address from the recipients and
// records it; removing one already gone changes nothing. A subscription left
// with no recipient is paused.
func RemoveRecipient(address string, at time.Time) func(*Subscription) error {
	return func(s *Subscription) error {
		i := slices.IndexFunc(s.Recipients, func(r string) bool { return strings.EqualFold(r, address) })
		if i < 0 {
			return nil
		}
		s.Recipients = slices.Delete(s.Recipients, i, i+1)
		s.Unsubscribed = append(s.Unsubscribed, Unsubscribe{Address: strings.ToLower(address), At: at.UTC()})
		if len(s.Recipients) == 0 {
			s.Paused = true
		}
		return nil
	}
}

// String is how a recorded unsubscribe reads in tally subscriptions list.
func (u Unsubscribe) String() string {
	return fmt.Sprintf("%s (unsubscribed %s)", u.Address, u.At.Format(time.RFC3339))
}

// SigningKeyKey is where a generated unsubscribe key lives in the control store.
const SigningKeyKey = "_secrets/unsubscribe-key"

// SigningKey is the unsubscribe links' HMAC key: the file's contents when file
// is set, else a random key created once in the control store (an exclusive
// create, so two pods starting at once agree on it).
func SigningKey(ctx context.Context, control storage.Store, file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("serve.unsubscribe_key_file: %w", err)
		}
		if b = bytes.TrimSpace(b); len(b) < 16 {
			return nil, fmt.Errorf("serve.unsubscribe_key_file %s: the key is %d bytes: at least 16", file, len(b))
		}
		return b, nil
	}
	b, _, err := storage.ReadAll(ctx, control, SigningKeyKey)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	key = []byte(hex.EncodeToString(key))
	if _, err := control.Create(ctx, SigningKeyKey, key); errors.Is(err, storage.ErrExists) {
		b, _, err := storage.ReadAll(ctx, control, SigningKeyKey)
		return b, err
	} else if err != nil {
		return nil, err
	}
	return key, nil
}
