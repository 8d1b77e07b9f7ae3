package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"tally/storage"
)

// A console login is a session: a random id in the browser's cookie, and in
// the control store a record under the id's SHA-256 (storage.SecretsPrefix:
// written 0600 on local storage), so a copy of the store does not hold a
// usable cookie. It ends at its expiry, at logout, when revoked (tally serve
// sessions revoke), or when its token is changed or removed.

// ErrNoSession is a cookie that names no live session.
var ErrNoSession = errors.New("no such session (logged out, expired or revoked)")

// Session is one login.
type Session struct {
	ID      string    `json:"-"` // the SHA-256 of the cookie's id, hex: the record's name
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	Token   string    `json:"token"` // the fingerprint of the token it logged in with
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Remote  string    `json:"remote,omitempty"`
}

// sessionsPrefix is where sessions live in the control store.
const sessionsPrefix = storage.SecretsPrefix + "sessions/"

// Sessions keeps the console's sessions in the control store. Each is read
// from storage at most every sessionCache, so a revocation by another process
// takes effect within that.
type Sessions struct {
	Store storage.Store
	Now   func() time.Time

	mu    sync.Mutex
	cache map[string]cachedSession
}

type cachedSession struct {
	s    *Session
	read time.Time
}

const sessionCache = 10 * time.Second

// fingerprint names a token without holding it (a session records which
// token it logged in with: changing the token ends its sessions).
func fingerprint(token string) string {
	sum := sha256.Sum256([]byte("tally console token\n" + token))
	return hex.EncodeToString(sum[:16])
}

func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// Create starts a session and returns the cookie's value.
func (s *Sessions) Create(ctx context.Context, name string, role Role, token, remote string, ttl time.Duration) (string, *Session, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, err
	}
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.Now().UTC()
	sess := &Session{ID: hashID(id), Name: name, Role: role, Token: fingerprint(token), Created: now, Expires: now.Add(ttl), Remote: remote}
	b, _ := json.Marshal(sess)
	if _, err := s.Store.Create(ctx, sessionsPrefix+sess.ID+".json", b); err != nil {
		return "", nil, fmt.Errorf("console: store the session: %w", err)
	}
	return id, sess, nil
}

// Get is the live session a cookie's value names.
func (s *Sessions) Get(ctx context.Context, cookie string) (*Session, error) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(cookie)
	if err != nil || len(raw) != 32 {
		return nil, ErrNoSession
	}
	id := hashID(cookie)
	now := s.Now()
	s.mu.Lock()
	c, ok := s.cache[id]
	s.mu.Unlock()
	if !ok || now.Sub(c.read) > sessionCache {
		sess, err := s.read(ctx, id)
		if err != nil && !errors.Is(err, ErrNoSession) {
			return nil, err
		}
		c = cachedSession{s: sess, read: now}
		s.mu.Lock()
		if s.cache == nil || len(s.cache) > 10_000 {
			s.cache = map[string]cachedSession{}
		}
		s.cache[id] = c
		s.mu.Unlock()
	}
	if c.s == nil || !now.Before(c.s.Expires) {
		return nil, ErrNoSession
	}
	return c.s, nil
}

func (s *Sessions) read(ctx context.Context, id string) (*Session, error) {
	b, _, err := storage.ReadAll(ctx, s.Store, sessionsPrefix+id+".json")
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("console: read the session: %w", err)
	}
	var sess Session
	if err := json.Unmarshal(b, &sess); err != nil {
		return nil, fmt.Errorf("console: session %s: %w", id[:12], err)
	}
	sess.ID = id
	return &sess, nil
}

// Revoke ends the session whose id starts with prefix (at least 8 hex digits;
// tally serve sessions list shows 12).
func (s *Sessions) Revoke(ctx context.Context, prefix string) (*Session, error) {
	if len(prefix) < 8 {
		return nil, fmt.Errorf("session %q: give at least 8 characters of its id", prefix)
	}
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var found *Session
	for i := range all {
		if strings.HasPrefix(all[i].ID, prefix) {
			if found != nil {
				return nil, fmt.Errorf("session %q: more than one session's id starts so: give more of it", prefix)
			}
			found = &all[i]
		}
	}
	if found == nil {
		return nil, fmt.Errorf("session %q: %w", prefix, ErrNoSession)
	}
	return found, s.remove(ctx, found.ID)
}

// RevokeName ends every session of an identity (all of them when name is "").
func (s *Sessions) RevokeName(ctx context.Context, name string) ([]Session, error) {
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var gone []Session
	for _, sess := range all {
		if name == "" || sess.Name == name {
			if err := s.remove(ctx, sess.ID); err != nil {
				return gone, err
			}
			gone = append(gone, sess)
		}
	}
	return gone, nil
}

func (s *Sessions) remove(ctx context.Context, id string) error {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
	if err := s.Store.Delete(ctx, sessionsPrefix+id+".json"); err != nil {
		return fmt.Errorf("console: revoke the session: %w", err)
	}
	return nil
}

// List is every stored session (expired ones included until revoked or swept),
// oldest first.
func (s *Sessions) List(ctx context.Context) ([]Session, error) {
	objs, err := s.Store.List(ctx, sessionsPrefix)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	var out []Session
	for _, o := range objs {
		id := strings.TrimSuffix(strings.TrimPrefix(o.Key, sessionsPrefix), ".json")
		sess, err := s.read(ctx, id)
		if errors.Is(err, ErrNoSession) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *sess)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Sweep removes the expired sessions.
func (s *Sessions) Sweep(ctx context.Context) (int, error) {
	all, err := s.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, sess := range all {
		if !s.Now().Before(sess.Expires) {
			if err := s.remove(ctx, sess.ID); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
