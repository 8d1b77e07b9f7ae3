// Package console owns tally's web console on the serve port: the runs grid and
// run pages, the analytics pages with their charts, the reports and their
// downloads, and the unsubscribe route of report emails. Server-rendered HTML
// from embedded templates and assets; read-only except unsubscribe.
package console

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"tally/clock"
	"tally/jobs"
	"tally/links"
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
	// MetricsLogin puts /metrics behind the login (serve.metrics_login).
	MetricsLogin bool
	// Act runs an operator's action (a re-run, a backfill) in the serving
	// process, and Done hears each of its runs end (metrics, failure
	// alerts), as a scheduled run's; nil Act: the console offers none.
	Act  func(func(ctx context.Context))
	Done func(job string, res *runner.Result, err error)
	// Key signs unsubscribe links and the console's forms (nil: the
	// unsubscribe route refuses every link).
	Key []byte
	Log zerolog.Logger
	// Webhooks receives pushed deliveries (POST /webhooks/…, the Webex CDR
	// webhook): a route outside the login that authenticates itself (each
	// delivery is signed). Nil: none mounted.
	Webhooks http.Handler

	tmpl     *template.Template
	ledger   *runner.Ledger // the runner's, read through a cache of decoded entries
	sessions *Sessions
	logins   limiter
}

// Init parses the embedded templates.
func (c *Console) Init() error {
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return fmt.Errorf("console templates: %w", err)
	}
	c.tmpl = t
	c.ledger = c.Runner.Ledger().Cached()
	c.sessions = &Sessions{Store: c.Stores.Control, Now: c.Clock.Now}
	return nil
}

// Handler serves the console. The routes outside its login (/healthz,
// /metrics unless MetricsLogin, /unsubscribe, /login, assets) are also what
// PublicHandler serves; every other route needs an identity: a page opened
// without one goes to /login, anything else (downloads, forms) gets 401.
// other serves what the console does not (/healthz, /metrics).
func (c *Console) Handler(other http.Handler) http.Handler {
	mux := http.NewServeMux()
	c.public(mux, other)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/runs", http.StatusSeeOther) })
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.logout)
	mux.HandleFunc("GET /runs", c.runs)
	mux.HandleFunc("GET /runs/{job}/{period}", c.run)
	mux.HandleFunc("GET /analytics", c.analytics)
	mux.HandleFunc("GET /reports", c.reports)
	mux.HandleFunc("POST /actions/rerun", c.rerun)
	mux.HandleFunc("POST /actions/backfill", c.backfill)
	if c.MetricsLogin {
		mux.Handle("/metrics", other)
	}
	return c.secure(mux, false)
}

// PublicHandler serves only the routes outside the console's login, for
// serve.public_listen (what a Service or an Ingress exposes).
func (c *Console) PublicHandler(other http.Handler) http.Handler {
	mux := http.NewServeMux()
	c.public(mux, other)
	return c.secure(mux, true)
}

// public adds the routes outside the login.
func (c *Console) public(mux *http.ServeMux, other http.Handler) {
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(filesOnly{static})))
	mux.HandleFunc("GET /unsubscribe", c.unsubscribePage)
	mux.HandleFunc("POST /unsubscribe", c.unsubscribe)
	mux.HandleFunc("GET /files/{region}/{key...}", c.file) // signed links only, unless logged in
	mux.Handle("/healthz", other)
	if c.Webhooks != nil {
		mux.Handle("POST /webhooks/", c.Webhooks)
	}
	if !c.MetricsLogin {
		mux.Handle("/metrics", other)
	}
}

// exempt requests need no login: the public routes, and a download whose
// link is signed (the handler checks the signature).
func (c *Console) exempt(r *http.Request) bool {
	path := r.URL.Path
	return path == "/healthz" || (path == "/metrics" && !c.MetricsLogin) || path == "/unsubscribe" || path == "/login" || strings.HasPrefix(path, "/static/") ||
		strings.HasPrefix(path, "/files/") && links.IsSigned(r.URL.Query()) ||
		strings.HasPrefix(path, "/webhooks/") && c.Webhooks != nil
}

// filesOnly serves the files of an FS, never a listing of its folders.
type filesOnly struct{ fsys fs.FS }

func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := file.Stat(); err != nil || st.IsDir() {
		file.Close()
		return nil, fs.ErrNotExist
	}
	return file, nil
}

// secure sets the security headers on every answer and, but on the routes
// outside the login, asks who the request is from (public: all of them are).
func (c *Console) secure(next http.Handler, public bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if public || c.exempt(r) {
			next.ServeHTTP(w, r)
			return
		}
		id, err := c.identify(r)
		if err != nil {
			c.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		if id == nil {
			switch {
			case c.Auth.Type == "header":
				http.Error(w, "unauthorized: the console trusts "+c.Auth.UserHeader+" only from its configured proxies, for the users serve.auth names", http.StatusUnauthorized)
			case wantsPage(r):
				http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			default:
				w.Header().Set("WWW-Authenticate", `Cookie realm="tally console", form-action="/login"`)
				http.Error(w, "unauthorized: log in on /login first", http.StatusUnauthorized)
			}
			return
		}
		next.ServeHTTP(w, withIdentity(r, id))
	})
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
	id := identityOf(r)
	data["Identity"] = id
	data["CSRF"] = c.csrf(id)
	data["Banner"] = c.Auth.Exposed
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
