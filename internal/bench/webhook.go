package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"tally/clock"
	"tally/internal/benchfig"
	"tally/model"
	"tally/source/webex"
	"tally/source/webex/cdrhook"
	"tally/source/webex/webextest"
)

// WebhookFigure is one scale of the webhook benchmark: a day of the Partner
// CDR webhook's deliveries for orgs organisations, posted to tally serve
// --receive-only, then sync-clusters of that day from the stored deliveries.
type WebhookFigure struct {
	Orgs             int     `json:"orgs"`
	Deliveries       int     `json:"deliveries"`
	Records          int     `json:"records"`
	DeliveryMiB      float64 `json:"delivery_mib"`
	ReceiveWallSecs  float64 `json:"receive_wall_seconds"`
	PayloadsPerSec   float64 `json:"payloads_per_second"`
	ReceiverRSSMiB   float64 `json:"receiver_peak_rss_mib"`
	SyncCPUSeconds   float64 `json:"sync_cpu_seconds"`
	SyncWallSecs     float64 `json:"sync_wall_seconds"`
	SyncPeakRSSMiB   float64 `json:"sync_peak_rss_mib"`
	LegsWritten      int64   `json:"legs_written"`
	LegsWanted       int64   `json:"legs_wanted"`
	SyncRSSTargetMiB float64 `json:"sync_rss_target_mib"`
}

// WebhookResult is both scales and the comparison the issue sets: peak RSS
// at the larger within 15% of the smaller, and under 256 MiB.
type WebhookResult struct {
	Machine   string          `json:"machine"`
	Figures   []WebhookFigure `json:"figures"`
	RSSGrowth float64         `json:"sync_rss_growth"`
}

// cleanups is what webextest.New needs of a test: where to stop the fake.
type cleanups []func()

func (c *cleanups) Cleanup(f func()) { *c = append(*c, f) }

// benchPeople is each benchmark organisation's licensed people: 2 calls each
// a day, so about 100 records per organisation.
const benchPeople = 48

func benchWebhook(bin string, scales []int) (WebhookResult, error) {
	res := WebhookResult{Machine: machine()}
	for _, n := range scales {
		f, err := webhookScale(bin, n)
		if err != nil {
			return res, err
		}
		res.Figures = append(res.Figures, f)
	}
	if len(res.Figures) >= 2 {
		small, large := res.Figures[0], res.Figures[len(res.Figures)-1]
		res.RSSGrowth = large.SyncPeakRSSMiB/small.SyncPeakRSSMiB - 1
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "orgs\tdeliveries\trecords\tMiB\treceive s\tpayloads/s\treceiver RSS MiB\tsync CPU s\tsync RSS MiB\ttarget\tlegs\t")
	for _, f := range res.Figures {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.1f\t%.1f\t%.0f\t%.1f\t%.1f\t%.1f\t≤ %.0f %s\t%d of %d %s\t\n", f.Orgs, f.Deliveries, f.Records, f.DeliveryMiB,
			f.ReceiveWallSecs, f.PayloadsPerSec, f.ReceiverRSSMiB, f.SyncCPUSeconds, f.SyncPeakRSSMiB, f.SyncRSSTargetMiB,
			benchfig.Mark(f.SyncPeakRSSMiB <= f.SyncRSSTargetMiB), f.LegsWritten, f.LegsWanted, benchfig.Mark(f.LegsWritten == f.LegsWanted))
	}
	tw.Flush()
	if len(res.Figures) >= 2 {
		fmt.Printf("webhook sync: peak RSS at %d organisations is %+.1f%% of %d (target within 15%%) %s\n",
			res.Figures[len(res.Figures)-1].Orgs, res.RSSGrowth*100, res.Figures[0].Orgs, benchfig.Mark(res.RSSGrowth <= 0.15))
	}
	return res, nil
}

// webhookScale runs one scale: a fake Webex API holding n organisations of
// partner P1 (n/4 per region), the day's deliveries made by the fake and
// posted to a receiver process, then sync-clusters in its own process.
func webhookScale(bin string, n int) (WebhookFigure, error) {
	fig := WebhookFigure{Orgs: n, SyncRSSTargetMiB: 256}
	var done cleanups
	defer func() {
		for _, c := range done {
			c()
		}
	}()
	fake, _ := webextest.New(&done)
	// The day before yesterday (UTC): ended, its calls complete, inside the
	// grace window the config below sets.
	now := clock.Real{}.Now()
	day := time.Date(now.Year(), now.Month(), now.Day()-2, 0, 0, 0, 0, time.UTC)
	var regions strings.Builder
	for i := 0; i < n; i++ {
		region := model.Regions[i%len(model.Regions)]
		org, d := webextest.Sized("P1", region, i, benchPeople, day)
		spread(d.CDRs, i, day)
		fake.Add(org, d)
		fmt.Fprintf(&regions, "      %s: %s\n", webextest.OrgUUID(org), region)
		fig.LegsWanted += int64(2*benchPeople + 2) // the people's calls, the queue call, the one crossing midnight
	}
	deliveries := fake.Deliveries("P1", day.Add(-time.Hour), day.Add(26*time.Hour))
	fig.Deliveries = len(deliveries)
	var bytesTotal int
	for _, d := range deliveries {
		bytesTotal += len(d)
		fig.Records += bytes.Count(d, []byte(`"Report ID"`))
	}
	fig.DeliveryMiB = float64(bytesTotal) / (1 << 20)

	dir, err := os.MkdirTemp("", "tally-bench-webhook-")
	if err != nil {
		return fig, err
	}
	if os.Getenv("BENCH_KEEP") == "" {
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "bench webhook: keeping %s\n", dir)
	}
	secret := []byte("bench-webhook-secret")
	os.WriteFile(filepath.Join(dir, "secret"), secret, 0o600)
	os.WriteFile(filepath.Join(dir, "client-secret"), []byte(webextest.ClientSecret), 0o600)
	cfg := filepath.Join(dir, "tally.yaml")
	os.WriteFile(cfg, []byte("storage:\n  type: local\n  path: "+filepath.Join(dir, "data")+"\nlog:\n  format: json\n"+
		"source:\n  type: webex\n  grace: 72h\n  webex:\n    base_url: "+fake.URL+"\n    token_url: "+fake.URL+"/access_token\n"+
		"    client_id: "+webextest.ClientID+"\n    client_secret_file: "+filepath.Join(dir, "client-secret")+"\n"+
		"    requests_per_second: 2000\n    parallel: 8\n    calls_lateness: 10m\n"+
		"    partners:\n      - {id: P1, name: Partner One, calls: webhook, webhook_secret_file: "+filepath.Join(dir, "secret")+"}\n"+
		"    regions:\n"+regions.String()), 0o644)
	env := []string{"TALLY_CONFIG=" + cfg}

	// Receive: the deliveries posted one after another, as Webex sends them.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fig, err
	}
	addr := ln.Addr().String()
	ln.Close()
	recv := exec.Command(bin, "serve", "--receive-only", "--listen", addr, "--log-level", "error")
	recv.Env = append(os.Environ(), env...)
	recv.Stderr = os.Stderr
	if err := recv.Start(); err != nil {
		return fig, err
	}
	deadline := clock.Real{}.Now().Add(30 * time.Second)
	for ; ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if (clock.Real{}).Now().After(deadline) {
			recv.Process.Kill()
			return fig, fmt.Errorf("the receiver did not start")
		}
	}
	fmt.Fprintf(os.Stderr, "bench webhook: %d organisations, posting %d deliveries (%.1f MiB)…\n", n, len(deliveries), fig.DeliveryMiB)
	client := &http.Client{Timeout: time.Minute}
	start := clock.Real{}.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(deliveries))
	work := make(chan []byte)
	for w := 0; w < 4; w++ { // a few deliveries in flight, as retries and late payloads overlap
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range work {
				req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/webex/cdr/P1", bytes.NewReader(body))
				req.Header.Set("X-Spark-Signature", cdrhook.Signature(secret, body))
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("a delivery: %s", resp.Status)
				}
			}
		}()
	}
	for _, d := range deliveries {
		work <- d
	}
	close(work)
	wg.Wait()
	fig.ReceiveWallSecs = clock.Real{}.Now().Sub(start).Seconds()
	fig.PayloadsPerSec = float64(len(deliveries)) / fig.ReceiveWallSecs
	fig.ReceiverRSSMiB = vmHWM(recv.Process.Pid)
	recv.Process.Signal(syscall.SIGTERM)
	recv.Wait()
	select {
	case err := <-errs:
		return fig, err
	default:
	}

	// Sync: login, then the day from the stored deliveries (inventory from
	// the fake API), in its own process (runJob: the peak RSS is its own, not
	// this process's, which holds the fake's estate).
	tok := filepath.Join(dir, "refresh")
	os.WriteFile(tok, []byte(fake.RefreshToken("P1")), 0o600)
	if _, _, _, err := runJob(bin, dir, env, "source", "webex", "login", "--partner", "P1", "--refresh-token-file", tok); err != nil {
		return fig, err
	}
	fmt.Fprintf(os.Stderr, "bench webhook: %d organisations, sync-clusters from the stored deliveries…\n", n)
	args := []string{"run", "sync-clusters", "--period", day.Format("2006-01-02")}
	if p := os.Getenv("BENCH_MEM_PROFILE"); p != "" {
		args = append(args, "--mem-profile", p)
	}
	var cpus, walls, rsss []float64
	for run := 1; run <= 3; run++ { // the medians of 3 (peak RSS varies with GC timing)
		a := args
		if run > 1 {
			a = append(slices.Clone(args), "--force")
		}
		cpu, wall, rss, err := runJob(bin, dir, env, a...)
		if err != nil {
			return fig, err
		}
		cpus, walls, rsss = append(cpus, cpu), append(walls, wall), append(rsss, rss)
	}
	fig.SyncCPUSeconds, fig.SyncWallSecs, fig.SyncPeakRSSMiB = mid(cpus), mid(walls), mid(rsss)
	out, err := exec.Command(bin, "--config", cfg, "runs", "sync-clusters", "-o", "json").Output()
	if err != nil {
		return fig, err
	}
	if i := bytes.Index(out, []byte(`"calls":`)); i >= 0 {
		rest := out[i+len(`"calls":`):]
		end := bytes.IndexAny(rest, ",}")
		fig.LegsWritten, _ = strconv.ParseInt(strings.TrimSpace(string(rest[:end])), 10, 64)
	}
	return fig, nil
}

// spread moves the people's calls across the whole day (the fake puts them
// in two morning and afternoon bursts), so the webhook has a payload every 5
// minutes as on a real day; the calls at the day's edges stay where they are.
func spread(recs []webex.CDR, org int, day time.Time) {
	for j, rec := range recs {
		start, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(rec["Start time"]))
		if start.Before(day.Add(time.Hour)) || start.After(day.Add(23*time.Hour)) {
			continue
		}
		secs := (org*7919 + j*104729) % (22 * 3600)
		start = day.Add(time.Hour + time.Duration(secs)*time.Second)
		rec["Start time"] = start.Format("2006-01-02T15:04:05.000Z")
		dur, _ := rec["Duration"].(float64)
		rec["Report time"] = start.Add(time.Duration(dur) * time.Second).Format("2006-01-02T15:04:05.000Z")
	}
}
