package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/spf13/cobra"

	"tally/alert"
	"tally/console"
	"tally/jobs"
	"tally/mail"
	"tally/metrics"
	"tally/periods"
	"tally/plan"
	"tally/runner"
	"tally/serve"
	"tally/source"
	"tally/subscriptions"
)

func (a *app) serveCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run every job on its schedule (UTC), with catch-up, /healthz and /metrics",
		Long: `Run each job at its cron schedule (UTC) through the same runner as tally run:
ledger, lease, upstream periods. On start, missing periods among each job's latest
serve.catch_up ended periods are run, oldest first. A job never runs twice at once
for one period. On SIGTERM no new firing starts; running jobs get serve.grace to
finish, then are cancelled; their leases are released. /healthz answers when the
scheduler loop and storage are alive; /metrics serves Prometheus metrics, the
freshness gauge rebuilt from the ledger on start.`,
		Example: "  tally serve\n  tally serve --listen 127.0.0.1:9090",
		Args:    usageArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, reg, w, err := a.buildAll()
			if err != nil {
				return err
			}
			if listen == "" {
				listen = a.cfg.Serve.Listen
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
			s := &serve.Scheduler{Runner: r, Registry: reg, Clock: a.clock, CatchUp: a.cfg.Serve.CatchUp, Grace: a.cfg.Serve.Grace.D(), Log: a.log,
				Poll: a.cfg.Source.Files.Poll.D(),
				Done: func(job string, res *runner.Result, err error) {
					a.afterRun(context.Background(), r, m, notifier, job, res, err)
					if res == nil {
						return
					}
					scope := job + "/" + res.Period.ID() + "/" // only the finished run's period can have changed
					if claims, err := runner.Claims(context.Background(), w.stores.Control, scope); err == nil {
						m.Unconfirmed(scope, claims)
					}
				}}
			if err := s.Init(); err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return runner.Usagef("serve.listen %q: %v", listen, err)
			}
			con, err := a.console(cmd.Context(), r, reg, w)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: con.Handler(s.Handler(w.stores.Control, promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))),
				ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(ln)
			a.log.Info().Str("listen", ln.Addr().String()).Str("console", consoleURL(ln.Addr())).Msg("serving the console, /healthz and /metrics")
			err = s.Run(cmd.Context())
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(shutdown)
			a.log.Info().Msg("stopped")
			return err
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address for the console, /healthz and /metrics (default serve.listen)")
	return cmd
}

// console is the web console over this app's runner, stores and plan.
func (a *app) console(ctx context.Context, r *runner.Runner, reg *jobs.Registry, w *wiring) (*console.Console, error) {
	src, err := a.openSource()
	if err != nil {
		return nil, err
	}
	detector, _ := src.(source.ChangeDetector) // a files source marks re-delivered days stale
	c := &console.Console{Runner: r, Registry: reg, Stores: w.stores, Links: w.links, Clock: a.clock, Log: a.log,
		Plan: func(ctx context.Context, view []*runner.Record, now time.Time, back int) ([]plan.JobPlan, error) {
			plans, _, err := plan.Compute(ctx, r, reg, view, detector, now, time.Time{}, time.Time{}, back)
			return plans, err
		}}
	switch a.cfg.Serve.Auth.Type {
	case "token":
		c.Auth.Token = a.cfg.Serve.Auth.Token
	case "header":
		c.Auth.UserHeader, c.Auth.TrustedProxies = a.cfg.Serve.Auth.UserHeader, a.cfg.Serve.Auth.Proxies
	}
	c.Auth.Secure = strings.HasPrefix(a.cfg.Serve.PublicURL, "https://")
	// The key is loaded (or made) whether or not public_url is set here: links
	// already sent — by make demo, or before public_url was unset — keep working.
	if c.UnsubscribeKey, err = subscriptions.SigningKey(ctx, w.stores.Control, a.cfg.Serve.UnsubscribeKeyFile); err != nil {
		return nil, err
	}
	return c, c.Init()
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
	if status == runner.StatusFailed && rec != nil && n.Enabled() {
		if nerr := n.RunFailed(ctx, rec); nerr != nil {
			a.log.Error().Err(nerr).Str(runner.LogRunID, rec.RunID).Msg("failure notification")
		} else {
			a.log.Info().Str(runner.LogRunID, rec.RunID).Msg("failure notification sent")
		}
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
