// Package console owns tally's web console on the serve port: the runs grid and
// run pages, the analytics pages with their charts, the reports and their
// downloads, and the unsubscribe route of report emails. Server-rendered HTML
// from embedded templates and assets; read-only except unsubscribe.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"tally/clock"
	"tally/jobs"
	"tally/plan"
	"tally/runner"
	"tally/storage"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console serves the pages. Plan, Links and the stores come from the wiring.
type Console struct {
	Runner   *runner.Runner
	Registry *jobs.Registry
	Stores   storage.Regional
	// Plan is what tally plan shows of the ledger view, over the last back
	// periods of each job.
	Plan  func(ctx context.Context, view []*runner.Record, now time.Time, back int) ([]plan.JobPlan, error)
	Links jobs.Linker
	Clock clock.Clock
	Auth  Auth
	// UnsubscribeKey signs unsubscribe links (nil: the route refuses every link).
	UnsubscribeKey []byte
	Log            zerolog.Logger

	tmpl   *template.Template
	ledger *runner.Ledger // the runner's, read through a cache of decoded entries
}

// Auth is the console's optional authentication.
type Auth struct {
	// Token, when set, is the shared secret a user types once on /login; a
	// session cookie (an HMAC of it) is then set.
	Token string
	// UserHeader, with TrustedProxies, trusts a user name set by an
	// authenticating proxy (oauth2-proxy's X-Forwarded-User, …) only when the
	// request comes from one of those addresses.
	UserHeader     string
	TrustedProxies []netip.Prefix
	// Secure marks the session cookie Secure (the console is behind https).
	Secure bool
}

// Enabled reports whether any authentication is configured.
func (a Auth) Enabled() bool { return a.Token != "" || a.UserHeader != "" }

const sessionCookie = "tally_session"

func (a Auth) session() string {
	m := hmac.New(sha256.New, []byte(a.Token))
	m.Write([]byte("tally console session v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// user is who the request is from, or "" when it is not authenticated.
func (a Auth) user(r *http.Request) string {
	if !a.Enabled() {
		return "anonymous"
	}
	if a.UserHeader != "" {
		if u := strings.TrimSpace(r.Header.Get(a.UserHeader)); u != "" && a.trusted(r.RemoteAddr) {
			return u
		}
	}
	if a.Token != "" {
		if c, err := r.Cookie(sessionCookie); err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(a.session())) == 1 {
			return "token"
		}
	}
	return ""
}

func (a Auth) trusted(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	for _, p := range a.TrustedProxies {
		if p.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

// Init parses the embedded templates.
func (c *Console) Init() error {
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return fmt.Errorf("console templates: %w", err)
	}
	c.tmpl = t
	c.ledger = c.Runner.Ledger().Cached()
	return nil
}

// Handler serves the console; exempt paths (/healthz, /metrics, /unsubscribe,
// assets, login) skip authentication. other serves what the console does not
// (/healthz, /metrics).
func (c *Console) Handler(other http.Handler) http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/runs", http.StatusSeeOther) })
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("GET /runs", c.runs)
	mux.HandleFunc("GET /runs/{job}/{period}", c.run)
	mux.HandleFunc("GET /analytics", c.analytics)
	mux.HandleFunc("GET /reports", c.reports)
	mux.HandleFunc("GET /files/{region}/{key...}", c.file)
	mux.HandleFunc("GET /unsubscribe", c.unsubscribePage)
	mux.HandleFunc("POST /unsubscribe", c.unsubscribe)
	mux.Handle("/healthz", other)
	mux.Handle("/metrics", other)
	return c.secure(mux)
}

// exempt paths need no login.
func exempt(path string) bool {
	return path == "/healthz" || path == "/metrics" || path == "/unsubscribe" || path == "/login" || strings.HasPrefix(path, "/static/")
}

// secure sets the security headers on every answer and asks for a login where
// one is configured.
func (c *Console) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if !exempt(r.URL.Path) && c.Auth.user(r) == "" {
			if c.Auth.Token == "" { // header auth only: the proxy should have sent a user
				http.Error(w, "unauthorized: the console trusts "+c.Auth.UserHeader+" only from its configured proxies", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login.html", map[string]any{"Next": safeNext(r.URL.Query().Get("next")), "Enabled": c.Auth.Token != ""})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if c.Auth.Token == "" || r.ParseForm() != nil {
		http.Error(w, "no token login is configured (serve.auth.token_file)", http.StatusBadRequest)
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(r.PostForm.Get("token"))), []byte(c.Auth.Token)) != 1 {
		c.Log.Warn().Str("remote", r.RemoteAddr).Msg("console: a login with a wrong token")
		c.render(w, r, http.StatusUnauthorized, "login.html", map[string]any{"Next": next, "Enabled": true, "Error": "That token is not the console's."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: c.Auth.session(), Path: "/", HttpOnly: true, Secure: c.Auth.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int((30 * 24 * time.Hour).Seconds())})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/runs"
	}
	return next
}

// render executes a page template into a buffer first, so a template error is
// a clean 500 rather than half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, data map[string]any) {
	var b strings.Builder
	data["Page"] = strings.TrimSuffix(name, ".html")
	if _, ok := data["Title"]; !ok {
		data["Title"] = titles[data["Page"].(string)]
	}
	data["Now"] = c.Clock.Now().UTC()
	data["Auth"] = c.Auth.Enabled()
	if err := c.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		c.Log.Error().Err(err).Str("page", name).Msg("console: rendering failed")
		http.Error(w, "internal error rendering "+name, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprint(w, b.String())
}

// fail shows an error page: 400 for bad input, 404 for what does not exist.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status >= 500 {
		c.Log.Error().Err(err).Str("path", r.URL.Path).Msg("console: request failed")
	}
	c.render(w, r, status, "error.html", map[string]any{"Status": status, "Title": http.StatusText(status), "Error": err.Error()})
}

var titles = map[string]string{"runs": "Runs", "analytics": "Analytics", "reports": "Reports", "login": "Log in",
	"unsubscribe": "Unsubscribe", "unsubscribed": "Unsubscribed"}
