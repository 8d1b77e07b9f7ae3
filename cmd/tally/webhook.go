package main

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tally/runner"
	"tally/serve"
	"tally/source/webex/cdrhook"
	"tally/storage"
)

// webhookReceiver is the Webex CDR webhook receiver of the partners whose
// calls come by webhook (nil when none). A partner without its secret token
// is refused: the receiver is never mounted open.
func (a *app) webhookReceiver(stores storage.Regional, reg *prometheus.Registry) (*cdrhook.Receiver, error) {
	if a.cfg.Source.Type != "webex" {
		return nil, nil
	}
	w := a.cfg.Source.Webex
	rv := &cdrhook.Receiver{Partners: map[string]cdrhook.Partner{}, Regions: w.Regions, Stores: stores, MaxBytes: w.WebhookMaxBytes,
		Log: a.log.With().Str("component", "webex-cdr-webhook").Logger()}
	for i, p := range w.Partners {
		if !p.Webhook() {
			continue
		}
		if p.WebhookSecret == "" {
			return nil, runner.Usagef("source.webex.partners[%d] (%s): calls: webhook needs webhook_secret_file, the secret token set in Partner Hub (Organization Settings > Call Detail Records): tally never receives unsigned deliveries", i, p.ID)
		}
		rv.Partners[p.ID] = cdrhook.Partner{ID: p.ID, Secret: []byte(p.WebhookSecret)}
	}
	if len(rv.Partners) == 0 {
		return nil, nil
	}
	rv.Deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_webhook_deliveries_total",
		Help: "Webex CDR webhook deliveries by partner and result (stored, repeat, quarantined, refused, failed)."}, []string{"partner", "result"})
	if reg != nil {
		reg.MustRegister(rv.Deliveries)
	}
	return rv, nil
}

// announce logs each partner's receiver route, to set in Partner Hub.
func (a *app) announce(rv *cdrhook.Receiver) {
	for id := range rv.Partners {
		a.log.Info().Str("partner_id", id).Str("route", "/webhooks/webex/cdr/"+id).Msg("receiving the partner's Webex call records (set this URL in Partner Hub: Organization Settings > Call Detail Records)")
	}
}

// receiveOnly serves the webhook receivers and /healthz only, with no
// schedules: the receiver Deployment beside CronJobs.
func (a *app) receiveOnly(ctx context.Context, listen string) error {
	stores, err := a.openStores()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	rv, err := a.webhookReceiver(stores, reg)
	if err != nil {
		return err
	}
	if rv == nil {
		return runner.Usagef("serve --receive-only: no partner in source.webex.partners has calls: webhook, so there is nothing to receive")
	}
	a.announce(rv)
	mux := http.NewServeMux()
	mux.Handle(cdrhook.Route, rv.Handler())
	mux.Handle("/healthz", serve.StorageHealth(stores.Control))
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return runner.Usagef("serve --receive-only: listen %q: %v", listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	a.log.Info().Str("listen", ln.Addr().String()).Msg("receiving webhooks only (/webhooks/webex/cdr/<partner>, /healthz, /metrics); no schedules")
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(shutdown) // deliveries in flight finish storing before the process ends
	a.log.Info().Msg("stopped")
	return nil
}
