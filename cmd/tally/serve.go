package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/spf13/cobra"

	"tally/alert"
	"tally/console"
	"tally/jobs"
	"tally/links"
	"tally/mail"
	"tally/metrics"
	"tally/periods"
	"tally/plan"
	"tally/runner"
	"tally/serve"
	"tally/source"
)

func (a *app) serveCmd() *cobra.Command {
	var listen string
	var receiveOnly bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run every job on its schedule (UTC), with catch-up, /healthz and /metrics",
		Long: `Run each job at its cron schedule (UTC) through the same runner as tally run:
ledger, lease, upstream periods. On start, missing periods among each job's latest
serve.catch_up ended periods are run, oldest first. A job never runs twice at once
for one period. On SIGTERM no new firing starts; running jobs get serve.grace to
finish, then are cancelled; their leases are released. /healthz answers when the
scheduler loop and storage are alive; /metrics serves Prometheus metrics, the
freshness gauge rebuilt from the ledger on start.

The web console listens on serve.listen (default 127.0.0.1:8080, this machine
only). Beyond loopback it needs a login (serve.auth: named tokens or a header
from a login proxy, roles viewer and operator) or it exits 2, unless
serve.auth.allow_anonymous. serve.public_listen serves only the routes outside
the login (/healthz, /metrics, /unsubscribe, signed downloads, and
/webhooks/webex/cdr/<partner> for partners whose calls come by webhook) for
probes, Prometheus and a public Ingress.

--receive-only serves the webhook receivers and /healthz only, with no
schedules, on --listen (default serve.public_listen, else serve.listen): the
receiver Deployment beside CronJobs (deploy/kubernetes/webhook-receiver.yaml).`,
		Example: "  tally serve\n  tally serve --listen 127.0.0.1:9090\n  tally serve --receive-only --listen :8081",
		Args:    usageArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if receiveOnly {
				if listen == "" {
					listen = a.cfg.Serve.PublicListen
				}
				if listen == "" {
					listen = a.cfg.Serve.Listen
				}
				return a.receiveOnly(cmd.Context(), listen)
			}
			r, reg, w, err := a.buildAll()
			if err != nil {
				return err
			}
			if listen == "" {
				listen = a.cfg.Serve.Listen
			}
			if err := a.checkListen(listen); err != nil {
				return err
			}
			m := metrics.New()
			recs, err := r.Ledger().All(cmd.Context(), "")
			if err != nil {
				return err
			}
			m.FromLedger(recs, periodEnd(r))
			cadences := map[string]periods.Cadence{}
			for _, j := range r.Jobs() {
				cadences[j.Name()] = j.Cadence()
			}
			m.Expect(cadences, a.clock.Now)
			if claims, err := runner.Claims(cmd.Context(), w.stores.Control, ""); err == nil {
				m.Unconfirmed("", claims)
			}
			notifier := a.notifier(w)
			done := func(job string, res *runner.Result, err error) {
				a.afterRun(context.Background(), r, m, notifier, job, res, err)
				if res == nil {
					return
				}
				scope := job + "/" + res.Period.ID() + "/" // only the finished run's period can have changed
				if claims, err := runner.Claims(context.Background(), w.stores.Control, scope); err == nil {
					m.Unconfirmed(scope, claims)
				}
			}
			for region := range w.stores.Regions {
				if w.links.Kind(region) == links.File {
					a.log.Warn().Str("region", region).Msg("report emails link their files as file:// URLs, which open only on this machine: " +
						"set serve.public_url (links to this server's /files/, signed) or reports.base_url")
					break
				}
			}
			first, err := serve.FirstStart(cmd.Context(), w.stores.Control, a.clock.Now())
			if err != nil {
				return err
			}
			s := &serve.Scheduler{Runner: r, Registry: reg, Clock: a.clock, CatchUp: a.cfg.Serve.CatchUp, Grace: a.cfg.Serve.Grace.D(), Log: a.log,
				Poll: a.cfg.Source.Files.Poll.D(), Done: done, FirstStart: first, CatchUpEmailWithin: a.cfg.Serve.CatchUpEmailWithin.D()}
			if err := s.Init(); err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return runner.Usagef("serve.listen %q: %v", listen, err)
			}
			con, err := a.console(cmd.Context(), r, reg, w, listen)
			if err != nil {
				return err
			}
			con.Act, con.Done = s.Act, done // operators' re-runs and backfills run here, like firings
			if rv, err := a.webhookReceiver(w.stores, m.Registry); err != nil {
				return err
			} else if rv != nil {
				con.Webhooks = rv.Handler()
				a.announce(rv)
			}
			other := s.Handler(w.stores.Control, promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
			srv := &http.Server{Handler: con.Handler(other), ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(ln)
			a.log.Info().Str("listen", ln.Addr().String()).Str("console", consoleURL(ln.Addr())).Str("auth", a.cfg.Serve.Auth.Type).
				Msg("serving the console (and /healthz, /metrics, /unsubscribe)")
			servers := []*http.Server{srv}
			if pl := a.cfg.Serve.PublicListen; pl != "" {
				pln, err := net.Listen("tcp", pl)
				if err != nil {
					srv.Close()
					return runner.Usagef("serve.public_listen %q: %v", pl, err)
				}
				pub := &http.Server{Handler: con.PublicHandler(other), ReadHeaderTimeout: 10 * time.Second}
				go pub.Serve(pln)
				servers = append(servers, pub)
				a.log.Info().Str("public_listen", pln.Addr().String()).Msg("serving the routes outside the console's login (/healthz, /metrics, /unsubscribe, signed downloads, webhooks)")
			}
			err = s.Run(cmd.Context())
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, srv := range servers {
				srv.Shutdown(shutdown)
			}
			a.log.Info().Msg("stopped")
			return err
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address for the console, /healthz and /metrics (default serve.listen)")
	cmd.Flags().BoolVar(&receiveOnly, "receive-only", false, "serve only the webhook receivers and /healthz, no schedules")
	cmd.AddCommand(a.sessionsCmd())
	return cmd
}

// sessionsCmd lists and revokes the console's logins.
func (a *app) sessionsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sessions", Short: "List or revoke the console's logins (serve.auth.type token)",
		Example: "  tally serve sessions list\n  tally serve sessions revoke --name alice"}
	sessions := func() (*console.Sessions, error) {
		stores, err := a.openStores()
		if err != nil {
			return nil, err
		}
		return &console.Sessions{Store: stores.Control, Now: a.clock.Now}, nil
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the console's sessions: id, who, role, since, until, from where",
		Example: "  tally serve sessions list",
		Args:    usageArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := sessions()
			if err != nil {
				return err
			}
			all, err := s.List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tEXPIRES\tFROM")
			for _, sess := range all {
				exp := sess.Expires.Format(time.RFC3339)
				if !a.clock.Now().Before(sess.Expires) {
					exp += " (expired)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sess.ID[:12], sess.Name, sess.Role, sess.Created.Format(time.RFC3339), exp, sess.Remote)
			}
			tw.Flush()
			if len(all) == 0 {
				fmt.Fprintln(a.stdout, "no sessions")
			}
			return nil
		},
	}
	var name string
	var all bool
	revoke := &cobra.Command{
		Use:   "revoke [ID] [--name NAME | --all]",
		Short: "End sessions: one by its id (the first 8 or more characters list shows), a name's, or all",
		Long: `End console sessions at once: the next request with their cookie gets 401 (a
serve process notices within 10 seconds). Changing or removing a token in
serve.auth.tokens ends its sessions too.`,
		Example: "  tally serve sessions revoke 3f2a9c01b7e4\n  tally serve sessions revoke --name alice\n  tally serve sessions revoke --all",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return runner.Usagef("sessions revoke: one session id at a time (or --name / --all)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (name != "" || all) || len(args) > 1 || (name != "" && all) {
				return runner.Usagef("sessions revoke: give one session id, or --name NAME, or --all")
			}
			s, err := sessions()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				sess, err := s.Revoke(cmd.Context(), args[0])
				if err != nil {
					return runner.Usage(err)
				}
				fmt.Fprintf(a.stdout, "revoked %s (%s)\n", sess.ID[:12], sess.Name)
				return nil
			}
			gone, err := s.RevokeName(cmd.Context(), name)
			for _, sess := range gone {
				fmt.Fprintf(a.stdout, "revoked %s (%s)\n", sess.ID[:12], sess.Name)
			}
			if err == nil && len(gone) == 0 {
				fmt.Fprintln(a.stdout, "no sessions to revoke")
			}
			return err
		},
	}
	revoke.Flags().StringVar(&name, "name", "", "revoke every session of this name (a token's name)")
	revoke.Flags().BoolVar(&all, "all", false, "revoke every session")
	cmd.AddCommand(list, revoke)
	return cmd
}

// console is the web console over this app's runner, stores and plan.
func (a *app) console(ctx context.Context, r *runner.Runner, reg *jobs.Registry, w *wiring, listen string) (*console.Console, error) {
	src, err := a.openSource()
	if err != nil {
		return nil, err
	}
	detector, _ := src.(source.ChangeDetector) // a files source marks re-delivered days stale
	c := &console.Console{Runner: r, Registry: reg, Stores: w.stores, Links: w.links, Clock: a.clock, Log: a.log,
		Plan: func(ctx context.Context, view []*runner.Record, now time.Time, back int) ([]plan.JobPlan, error) {
			start, err := plan.Start(a.cfg.Runner.StartDate, view, now)
			if err != nil {
				return nil, err
			}
			plans, _, err := plan.Compute(ctx, r, reg, view, detector, now, plan.Window{Start: start, Back: back})
			return plans, err
		}}
	c.Auth = a.consoleAuth(listen)
	c.MetricsLogin = a.cfg.Serve.MetricsLogin
	// The key is loaded (or made) whether or not public_url is set here: links
	// already sent — by make demo, or before public_url was unset — keep working.
	if c.Key, err = w.key(ctx); err != nil {
		return nil, err
	}
	return c, c.Init()
}

// consoleAuth is serve.auth as the console takes it, for a console on listen.
func (a *app) consoleAuth(listen string) console.Auth {
	ac := a.cfg.Serve.Auth
	auth := console.Auth{Type: ac.Type, UserHeader: ac.UserHeader, TrustedProxies: ac.Proxies, DefaultRole: console.Role(ac.DefaultRole),
		Secure: strings.HasPrefix(a.cfg.Serve.PublicURL, "https://"), SessionTTL: ac.SessionTTL.D(), Users: map[string]console.Role{}}
	for _, t := range ac.Tokens {
		auth.Tokens = append(auth.Tokens, console.Token{Name: t.Name, Role: console.Role(t.Role), Secret: t.Token})
	}
	for u, role := range ac.Users {
		auth.Users[u] = console.Role(role)
	}
	// With no login, a console on loopback is its machine's user's (an
	// operator); one reachable from the network is for looking at (viewers).
	auth.Anonymous = console.Operator
	if !loopback(listen) {
		auth.Anonymous, auth.Exposed = console.Viewer, true
	}
	return auth
}

// loopback reports whether a listen address is reachable only from this
// machine (":8080", all interfaces, is not).
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkListen refuses a console without a login on an address beyond
// loopback, unless serve.auth.allow_anonymous says it is meant to be open.
func (a *app) checkListen(listen string) error {
	ac := a.cfg.Serve.Auth
	if ac.Type != "none" || loopback(listen) {
		return nil
	}
	if !ac.AllowAnonymous {
		return runner.Usagef("serve: the console would listen on %s, reachable from the network, with serve.auth.type none: "+
			"anyone could read every customer's data. Set serve.auth (type token with tokens, or type header behind a login proxy), "+
			"listen on 127.0.0.1, or set serve.auth.allow_anonymous: true if it is meant to be open (read-only)", listen)
	}
	a.log.Warn().Str("listen", listen).Msg("the console has no login and listens beyond loopback (serve.auth.allow_anonymous): anyone who reaches it can read it")
	return nil
}

// consoleURL is the console's address as a URL a person on this machine opens.
func consoleURL(addr net.Addr) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// periodEnd tells when a record's period ended (for the freshness gauge).
func periodEnd(r *runner.Runner) func(rec *runner.Record) (time.Time, bool) {
	return func(rec *runner.Record) (time.Time, bool) {
		j, err := r.Job(rec.Job)
		if err != nil {
			return time.Time{}, false
		}
		p, err := periods.Parse(j.Cadence(), rec.Period)
		if err != nil {
			return time.Time{}, false
		}
		return p.End(), true
	}
}

// notifier is the configured failure notifications.
func (a *app) notifier(w *wiring) *alert.Notifier {
	n := &alert.Notifier{From: a.cfg.SMTP.From, To: a.cfg.Alerts.Email, Webhook: a.cfg.Alerts.Webhook, Now: a.clock.Now}
	if len(n.To) > 0 {
		// Like report emails: over SMTP when configured, otherwise into the outbox.
		n.Sender = w.sender
		if n.Sender == nil {
			n.Sender = &mail.Outbox{Store: w.stores.Control}
		}
	}
	return n
}

// afterRun records a finished run in the metrics and tells operators when it failed.
func (a *app) afterRun(ctx context.Context, r *runner.Runner, m *metrics.Metrics, n *alert.Notifier, job string, res *runner.Result, err error) {
	status := runner.StatusFailed
	var rec *runner.Record
	if res != nil {
		status, rec = res.Status, res.Record
	}
	if errors.Is(err, runner.ErrLeaseHeld) {
		status = runner.StatusHeld
	}
	if m != nil {
		m.Observe(job, status, rec, periodEnd(r))
	}
	if rec == nil || !n.Enabled() {
		return
	}
	var nerr error
	switch {
	case status == runner.StatusFailed:
		nerr = n.RunFailed(ctx, rec)
	case rec.EmailsFailed > 0:
		nerr = n.EmailsFailed(ctx, rec)
	default:
		return
	}
	if nerr != nil {
		a.log.Error().Err(nerr).Str(runner.LogRunID, rec.RunID).Msg("failure notification")
	} else {
		a.log.Info().Str(runner.LogRunID, rec.RunID).Msg("failure notification sent")
	}
}

// pushMetrics pushes a one-shot run's metrics to the Pushgateway, if configured.
func (a *app) pushMetrics(r *runner.Runner, job string, res *runner.Result, err error, n *alert.Notifier) {
	var m *metrics.Metrics
	if a.cfg.Metrics.Pushgateway != "" {
		m = metrics.NewPush()
	}
	a.afterRun(context.Background(), r, m, n, job, res, err)
	if m == nil {
		return
	}
	if perr := push.New(a.cfg.Metrics.Pushgateway, job).Gatherer(m.Registry).Push(); perr != nil {
		a.log.Warn().Err(perr).Msgf("pushing metrics to %s", a.cfg.Metrics.Pushgateway)
	}
}
