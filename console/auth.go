package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Role is what an identity may do: a viewer reads; an operator also re-runs
// periods and starts backfills.
type Role string

const (
	Viewer   Role = "viewer"
	Operator Role = "operator"
)

// Identity is who a request is from.
type Identity struct {
	Name    string
	Role    Role
	Session *Session // type token: the login
}

// Operator reports whether the identity may act.
func (id *Identity) Operator() bool { return id != nil && id.Role == Operator }

// Token is one named console token.
type Token struct {
	Name   string
	Role   Role
	Secret string
}

// Auth is how the console knows who a request is from.
type Auth struct {
	// Type is none (everyone is Anonymous), token (a login with one of
	// Tokens, then a session) or header (a user name set by an authenticating
	// proxy, trusted only from TrustedProxies, its role from Users or
	// DefaultRole).
	Type string
	// Anonymous is everyone's role with type none; Exposed says the console
	// listens beyond loopback that way (serve.auth.allow_anonymous): a banner
	// on every page says so.
	Anonymous      Role
	Exposed        bool
	Tokens         []Token
	UserHeader     string
	TrustedProxies []netip.Prefix
	Users          map[string]Role
	DefaultRole    Role // "": users not in Users are refused
	// Secure marks the session cookie Secure (the console is behind https).
	Secure     bool
	SessionTTL time.Duration
}

const sessionCookie = "tally_session"

type identityKey struct{}

// identityOf is the request's identity (set by secure).
func identityOf(r *http.Request) *Identity {
	id, _ := r.Context().Value(identityKey{}).(*Identity)
	return id
}

// identify is who r is from, or nil when it is not authenticated.
func (c *Console) identify(r *http.Request) (*Identity, error) {
	a := c.Auth
	switch a.Type {
	case "", "none":
		return &Identity{Name: "anonymous", Role: a.Anonymous}, nil
	case "header":
		u := strings.TrimSpace(r.Header.Get(a.UserHeader))
		if u == "" || !trusted(a.TrustedProxies, r.RemoteAddr) {
			return nil, nil
		}
		role, ok := a.Users[u]
		if !ok {
			role = a.DefaultRole
		}
		if role == "" {
			return nil, nil
		}
		return &Identity{Name: u, Role: role}, nil
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, nil
	}
	sess, err := c.sessions.Get(r.Context(), ck.Value)
	if err != nil || sess == nil {
		if err == ErrNoSession {
			err = nil
		}
		return nil, err
	}
	// A session lasts only while its token does: changed or removed, the
	// token's sessions end.
	for _, t := range a.Tokens {
		if t.Name == sess.Name && fingerprint(t.Secret) == sess.Token {
			return &Identity{Name: sess.Name, Role: t.Role, Session: sess}, nil
		}
	}
	c.sessions.remove(r.Context(), sess.ID)
	return nil, nil
}

func trusted(proxies []netip.Prefix, remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	for _, p := range proxies {
		if p.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

// wantsPage reports whether an unauthenticated request is a page a person
// opened (sent to /login) rather than a download, a form or an API call
// (answered 401).
func wantsPage(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && !strings.HasPrefix(r.URL.Path, "/files/") &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// csrf is the token a form of identity id carries: an HMAC of the identity
// (and its session) with the console's key, so another site cannot forge a
// POST; it changes with every login.
func (c *Console) csrf(id *Identity) string {
	if id == nil {
		return ""
	}
	m := hmac.New(sha256.New, c.Key)
	m.Write([]byte("tally console form\n" + id.Name + "\n"))
	if id.Session != nil {
		m.Write([]byte(id.Session.ID))
	}
	return hex.EncodeToString(m.Sum(nil)[:20])
}

// checkForm refuses a POST without the identity's CSRF token.
func (c *Console) checkForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return false
	}
	want := c.csrf(identityOf(r))
	if want == "" || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(want)) != 1 {
		http.Error(w, "forbidden: the form's token is missing or not this login's (reload the page)", http.StatusForbidden)
		return false
	}
	return true
}

// limiter allows each client a few wrong logins a minute: allow says whether
// it may try, failed spends one try (a right token spends none).
type limiter struct {
	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

func (l *limiter) allow(r *http.Request) bool {
	return l.of(r).Tokens() >= 1
}

func (l *limiter) failed(r *http.Request) {
	l.of(r).Allow()
}

func (l *limiter) of(r *http.Request) *rate.Limiter {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.clients == nil || len(l.clients) > 10_000 {
		l.clients = map[string]*rate.Limiter{}
	}
	lim, ok := l.clients[host]
	if !ok {
		lim = rate.NewLimiter(rate.Every(6*time.Second), 5) // 5 at once, then 10 a minute
		l.clients[host] = lim
	}
	return lim
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login.html", map[string]any{"Next": safeNext(r.URL.Query().Get("next")), "Enabled": c.Auth.Type == "token"})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if c.Auth.Type != "token" || r.ParseForm() != nil {
		http.Error(w, "no token login is configured (serve.auth.type token)", http.StatusBadRequest)
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	log := c.Log.With().Str("remote", r.RemoteAddr).Logger()
	if !c.logins.allow(r) {
		log.Warn().Msg("console: too many wrong logins from one client: refused for a while")
		w.Header().Set("Retry-After", "60")
		c.render(w, r, http.StatusTooManyRequests, "login.html", map[string]any{"Next": next, "Enabled": true, "Error": "Too many wrong tokens: wait a minute."})
		return
	}
	typed := strings.TrimSpace(r.PostForm.Get("token"))
	var match *Token
	for i := range c.Auth.Tokens { // every token compared, in constant time
		if subtle.ConstantTimeCompare([]byte(typed), []byte(c.Auth.Tokens[i].Secret)) == 1 {
			match = &c.Auth.Tokens[i]
		}
	}
	if match == nil {
		c.logins.failed(r)
		log.Warn().Msg("console: a login with a wrong token")
		c.render(w, r, http.StatusUnauthorized, "login.html", map[string]any{"Next": next, "Enabled": true, "Error": "That token is not one of the console's."})
		return
	}
	id, sess, err := c.sessions.Create(r.Context(), match.Name, match.Role, match.Secret, r.RemoteAddr, c.Auth.SessionTTL)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	log.Info().Str("user", match.Name).Str("role", string(match.Role)).Str("session", sess.ID[:12]).Msg("console: logged in")
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: c.Auth.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.Auth.SessionTTL.Seconds())})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the request's session.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if !c.checkForm(w, r) {
		return
	}
	if id := identityOf(r); id != nil && id.Session != nil {
		if err := c.sessions.remove(r.Context(), id.Session.ID); err != nil {
			c.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		c.Log.Info().Str("user", id.Name).Str("session", id.Session.ID[:12]).Msg("console: logged out")
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: c.Auth.Secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/runs"
	}
	return next
}

// withIdentity is r with id in its context.
func withIdentity(r *http.Request, id *Identity) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
}
