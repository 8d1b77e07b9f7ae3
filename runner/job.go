// Package runner owns how a job runs for a period: the ledger, leases, upstream
// periods, retries, timeouts and atomic publishing, in one pipeline (run.go), plus
// backfills over ranges of periods.
package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"tally/clock"
	"tally/periods"
	"tally/storage"
)

// Log keys every line of a run carries.
const (
	LogJob    = "job"
	LogPeriod = "period"
	LogRunID  = "run_id"
)

// Job computes one period's outputs. It never takes leases, retries or writes the
// ledger: the runner wraps it with those.
type Job interface {
	// Name is the job's stable name (a public contract: it is in storage keys).
	Name() string
	Cadence() periods.Cadence
	// Schedule is the default cron spec (UTC).
	Schedule() string
	// Needs lists the upstream periods that must be complete before p runs.
	Needs(p periods.Period) []Dep
	// Writes describes the outputs for p in regions (for --dry-run and docs).
	Writes(p periods.Period, regions []string) []string
	// Run computes p and publishes through rc.
	Run(ctx context.Context, rc *RunContext) error
}

// Dep is one upstream job+period.
type Dep struct {
	Job    string
	Period periods.Period
}

func (d Dep) String() string { return d.Job + " " + d.Period.ID() }

// TrendReader is a job whose runs read its own earlier periods (a week's
// trends): re-running one makes the later ones stale, so they are re-run one
// at a time, oldest first.
type TrendReader interface {
	ReadsEarlierPeriods() bool
}

// RunContext is what a job gets for one attempt.
type RunContext struct {
	Job     string
	Period  periods.Period
	RunID   string
	Regions []string // the regions in scope (all, or those given by --region)
	Stores  storage.Regional
	Clock   clock.Clock
	Log     zerolog.Logger

	checkLease func(context.Context) error
	mu         sync.Mutex
	outputs    []Output
	counts     map[string]int64
	notes      map[string]any
	partial    []string
	reads      []Input
}

// Publish writes one output atomically into region's store ("" = the control
// store): write streams the content and returns its row count.
func (rc *RunContext) Publish(ctx context.Context, region, key string, write func(io.Writer) (int64, error)) error {
	w, err := rc.Open(ctx, region, key)
	if err != nil {
		return err
	}
	rows, err := write(w)
	if err != nil {
		w.Abort(err)
		return fmt.Errorf("write %s: %w", key, err)
	}
	return w.Commit(rows)
}

// Open starts one output in region's store ("" = the control store). Bytes
// stream to storage as they are written; nothing is visible under key until
// Commit, and Abort (or a failed Commit) leaves nothing. The runner checks it
// still holds the lease first, and on Commit records size, checksum and rows.
func (rc *RunContext) Open(ctx context.Context, region, key string) (*OutputWriter, error) {
	store, err := rc.Store(region)
	if err != nil {
		return nil, err
	}
	if rc.checkLease != nil {
		if err := rc.checkLease(ctx); err != nil {
			return nil, err
		}
	}
	pr, pw := io.Pipe()
	w := &OutputWriter{ctx: ctx, rc: rc, key: key, region: region, pw: pw, hash: sha256.New(), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.obj, w.err = store.Put(ctx, key, io.TeeReader(pr, w.hash))
		pr.CloseWithError(w.err) // unblocks the writer if Put stopped early
	}()
	return w, nil
}

// Store is region's store ("" = the control store); a region without one
// is a Permanent error (configuration, not something a retry mends).
func (rc *RunContext) Store(region string) (storage.Store, error) {
	if region == "" {
		return rc.Stores.Control, nil
	}
	s, err := rc.Stores.For(region)
	if err != nil {
		return nil, Permanent(err)
	}
	return s, nil
}

// Remove deletes key from region's store ("" = the control store) once the
// runner has checked it still holds the lease: how a run drops what an
// earlier run published and it did not (a table's parts past its last).
func (rc *RunContext) Remove(ctx context.Context, region, key string) error {
	store, err := rc.Store(region)
	if err != nil {
		return err
	}
	if rc.checkLease != nil {
		if err := rc.checkLease(ctx); err != nil {
			return err
		}
	}
	if err := store.Delete(ctx, key); err != nil {
		return fmt.Errorf("remove %s: %w", key, err)
	}
	rc.Log.Debug().Str("key", key).Msg("removed (an earlier run's, past this run's outputs)")
	return nil
}

// OutputWriter is an output being streamed to storage.
type OutputWriter struct {
	ctx         context.Context
	rc          *RunContext
	key, region string
	pw          *io.PipeWriter
	hash        hash.Hash
	done        chan struct{}
	obj         storage.Object
	err         error
}

// Write streams p to storage.
func (w *OutputWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }

// Commit publishes the output and records it with its row count.
func (w *OutputWriter) Commit(rows int64) error {
	if w.rc.checkLease != nil {
		if err := w.rc.checkLease(w.ctx); err != nil {
			w.Abort(err)
			return err
		}
	}
	w.pw.Close()
	<-w.done
	if w.err != nil {
		return fmt.Errorf("publish %s: %w", w.key, w.err)
	}
	rc := w.rc
	rc.mu.Lock()
	rc.outputs = append(rc.outputs, Output{Key: w.key, Region: w.region, Bytes: w.obj.Size, SHA256: hex.EncodeToString(w.hash.Sum(nil)), Rows: rows})
	rc.mu.Unlock()
	rc.Log.Debug().Str("key", w.key).Int64("rows", rows).Int64("bytes", w.obj.Size).Msg("published")
	return nil
}

// Abort drops the output: nothing appears under its key.
func (w *OutputWriter) Abort(cause error) {
	if cause == nil {
		cause = errors.New("aborted")
	}
	w.pw.CloseWithError(cause)
	<-w.done
}

// Count adds n to a named counter in the ledger (e.g. "quarantined").
func (rc *RunContext) Count(name string, n int64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.counts == nil {
		rc.counts = map[string]int64{}
	}
	rc.counts[name] += n
}

// ReadEarlier records an earlier period of the job that the run read (a
// week's trends read the weeks before): once that period is published again,
// this one is stale (tally plan).
func (rc *RunContext) ReadEarlier(rec *Record) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.reads = append(rc.reads, Input{Job: rec.Job, Period: rec.Period, RunID: rec.RunID, Checksum: rec.Checksum, Trend: true})
}

// Note records a fact about the run in the ledger (e.g. new clusters).
func (rc *RunContext) Note(name string, v any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.notes == nil {
		rc.notes = map[string]any{}
	}
	rc.notes[name] = v
}

// Partial records what the run's outputs lack (its status reads partial).
func (rc *RunContext) Partial(what string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.partial = append(rc.partial, what)
}

// PartnerGap is a Partial line about one partner's data (a customer of its
// skipped, say): GapsFor shows it to that partner only.
func PartnerGap(partner, what string) string {
	if partner == "" {
		return what
	}
	return "[partner " + partner + "] " + what
}

// GapsFor are the gaps a partner's email may name: every gap of no partner,
// and the partner's own (PartnerGap), without their marker.
func GapsFor(gaps []string, partner string) []string {
	var out []string
	own := "[partner " + partner + "] "
	for _, g := range gaps {
		switch {
		case strings.HasPrefix(g, own):
			out = append(out, strings.TrimPrefix(g, own))
		case !strings.HasPrefix(g, "[partner "):
			out = append(out, g)
		}
	}
	return out
}

// Gaps are the run's Partial lines so far (a report email names them).
func (rc *RunContext) Gaps() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.partial...)
}

// Output is one published file, as the ledger records it.
type Output struct {
	Key    string `json:"key"`
	Region string `json:"region,omitempty"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	Rows   int64  `json:"rows"`
}

// outputsChecksum identifies a run's outputs, so downstream runs can tell when an
// upstream was re-run with different results after them.
func outputsChecksum(outs []Output) string {
	sorted := append([]Output(nil), outs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
	h := sha256.New()
	for _, o := range sorted {
		fmt.Fprintf(h, "%s %s\n", o.Key, o.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// backoff is the wait before retry n (n >= 1): base doubling, capped, with jitter
// in [d/2, d] so runners that failed together do not retry together.
func backoff(n int, base, max time.Duration, jitter func() float64) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d/2 + time.Duration(jitter()*float64(d/2))
}
