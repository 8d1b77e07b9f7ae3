package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"tally/storage"
)

// Status of an attempt.
type Status string

// Attempt statuses. Abandoned is never written: it is how a running attempt whose
// runner died (its lease is gone) reads back.
const (
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusAbandoned Status = "abandoned"
	// StatusWaiting is an attempt whose input was not delivered yet (before its
	// deadline): not failed, not retried, no alert.
	StatusWaiting Status = "waiting"
)

// Record is one attempt in the ledger: _runs/<job>/<period>/<attempt>.json.
type Record struct {
	RunID     string           `json:"run_id"`
	Job       string           `json:"job"`
	Period    string           `json:"period"`
	Attempt   int              `json:"attempt"`
	Regions   []string         `json:"regions"`
	Trigger   string           `json:"trigger"`
	By        string           `json:"by,omitempty"` // who asked for it, from the console
	Forced    bool             `json:"forced,omitempty"`
	Status    Status           `json:"status"`
	StartedAt time.Time        `json:"started_at"`
	EndedAt   *time.Time       `json:"ended_at,omitempty"`
	Error     string           `json:"error,omitempty"`
	Retryable bool             `json:"retryable,omitempty"`
	Holder    Holder           `json:"holder"`
	Inputs    []Input          `json:"inputs,omitempty"`
	Outputs   []Output         `json:"outputs,omitempty"`
	Rows      map[string]int64 `json:"rows,omitempty"`
	Counts    map[string]int64 `json:"counts,omitempty"`
	Notes     map[string]any   `json:"notes,omitempty"`
	// Partial lists what a succeeded run's outputs lack (customers a source
	// skipped, or a partial upstream): shown as status partial, never as
	// silently complete.
	Partial []string `json:"partial,omitempty"`
	Emails  []Email  `json:"emails,omitempty"`
	// EmailsFailed counts the messages not delivered (their last try failed):
	// the run is complete, its emails are not; tally resend sends them.
	EmailsFailed int `json:"emails_failed,omitempty"`
	// NotEmailed says why a run that would email did not (a late catch-up).
	NotEmailed string `json:"not_emailed,omitempty"`
	Checksum   string `json:"checksum,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`

	// etag is the version of the entry this process last wrote or read: an
	// update is a compare-and-swap on it, so a runner that lost its lease can
	// never overwrite the entry another runner wrote since.
	etag string
}

// Input is an upstream period a run read, with the checksum of that upstream's
// outputs at the time.
type Input struct {
	Job      string `json:"job"`
	Period   string `json:"period"`
	RunID    string `json:"run_id"`
	Checksum string `json:"checksum"`
	Partial  bool   `json:"partial,omitempty"`
	// Trend marks an earlier period of the same job the run read (a week's
	// trends): it is stale once that period's latest attempt is another run.
	Trend bool `json:"trend,omitempty"`
	// gaps are the upstream run's Partial lines, carried into this run's own.
	gaps []string
}

// StatusPartial is how a succeeded run with Partial reads (tally plan, runs,
// the console, report emails); the ledger keeps it succeeded, so nothing re-runs
// it by itself.
const StatusPartial Status = "partial"

// Shown is the status a reader sees: partial for a succeeded run with gaps.
func (r *Record) Shown() Status {
	if r.Status == StatusSucceeded && len(r.Partial) > 0 {
		return StatusPartial
	}
	return r.Status
}

// Email is one send (or failed send) of a run.
type Email struct {
	Subscription string    `json:"subscription"`
	To           []string  `json:"to"`
	Status       string    `json:"status"` // sent or failed (EmailSent, EmailFailed)
	At           time.Time `json:"at"`
	Via          string    `json:"via,omitempty"` // smtp://host:port or outbox
	MessageID    string    `json:"message_id,omitempty"`
	Claim        string    `json:"claim,omitempty"`  // the send's idempotency key (_emails/<claim>.json)
	Resent       bool      `json:"resent,omitempty"` // re-sent an earlier run's unconfirmed claim
	Error        string    `json:"error,omitempty"`
}

// RunID is <job>/<period>/<attempt>.
func RunID(job, period string, attempt int) string {
	return fmt.Sprintf("%s/%s/%04d", job, period, attempt)
}

func ledgerKey(job, period string, attempt int) string {
	return fmt.Sprintf("_runs/%s/%s/%04d.json", job, period, attempt)
}

// Ledger reads and writes attempt records in the control store.
type Ledger struct {
	Store storage.Store
	// cache, when set (Cached), keeps decoded entries by key and ETag.
	cache *recordCache
}

// recordCache keeps decoded ledger entries by key with the ETag they were
// read at: a reader that lists the whole ledger often (the console) decodes
// only what changed. An entry whose ETag differs from the listing is read again.
type recordCache struct {
	mu   sync.Mutex
	recs map[string]*Record
}

// Cached is l reading through a cache of decoded entries, for readers that
// list the ledger again and again. Its records are copies: a reader may change
// a record's Status (View marks abandoned runs) without touching the cache.
func (l *Ledger) Cached() *Ledger {
	return &Ledger{Store: l.Store, cache: &recordCache{recs: map[string]*Record{}}}
}

// ErrEntryChanged means a ledger entry was claimed or changed by another runner:
// the writer lost its lease, and its write did not happen.
var ErrEntryChanged = errors.New("ledger entry changed by another runner")

// Write stores rec: a new entry by exclusive create (two runners can never both
// claim one attempt number), an entry this process read or wrote by a
// compare-and-swap on that version. Either fails with ErrEntryChanged when
// another runner got there first.
func (l *Ledger) Write(ctx context.Context, rec *Record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	key := ledgerKey(rec.Job, rec.Period, rec.Attempt)
	var obj storage.Object
	if rec.etag == "" {
		obj, err = l.Store.Create(ctx, key, b)
	} else {
		obj, err = l.Store.Replace(ctx, key, rec.etag, b)
	}
	switch {
	case errors.Is(err, storage.ErrExists):
		return fmt.Errorf("%w: ledger: %w: attempt %s was claimed by another runner", ErrLeaseLost, ErrEntryChanged, rec.RunID)
	case errors.Is(err, storage.ErrPreconditionFailed), errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("%w: ledger: %w: %s was rewritten since this runner read it", ErrLeaseLost, ErrEntryChanged, rec.RunID)
	case err != nil:
		return fmt.Errorf("ledger: write %s: %w", rec.RunID, err)
	}
	rec.etag = obj.ETag
	return nil
}

// Attempts lists the attempts of job+period, oldest first.
func (l *Ledger) Attempts(ctx context.Context, job, period string) ([]*Record, error) {
	return l.list(ctx, fmt.Sprintf("_runs/%s/%s/", job, period))
}

// Jobs lists every attempt of job (all jobs when job is ""), oldest period first.
func (l *Ledger) All(ctx context.Context, job string) ([]*Record, error) {
	prefix := "_runs/"
	if job != "" {
		prefix += job + "/"
	}
	return l.list(ctx, prefix)
}

func (l *Ledger) list(ctx context.Context, prefix string) ([]*Record, error) {
	var recs []*Record
	var err error
	if l.cache != nil {
		recs, err = l.cache.list(ctx, l.Store, prefix)
	} else {
		recs, err = readJSONs(ctx, l.Store, prefix, "ledger", func(r *Record, etag string) { r.etag = etag })
	}
	if err != nil {
		return nil, err
	}
	sort.SliceStable(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if a.Job != b.Job {
			return a.Job < b.Job
		}
		if a.Period != b.Period {
			return a.Period < b.Period
		}
		return a.Attempt < b.Attempt
	})
	return recs, nil
}

// readJSONs reads every .json object under prefix into a T, remembering its
// ETag (the version a compare-and-swap will expect); what names them in errors.
func readJSONs[T any](ctx context.Context, s storage.Store, prefix, what string, setETag func(*T, string)) ([]*T, error) {
	objs, err := s.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("%s: list %s: %w", what, prefix, err)
	}
	var out []*T
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		b, obj, err := storage.ReadAll(ctx, s, o.Key)
		if errors.Is(err, storage.ErrNotFound) {
			continue // removed while listing
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		v := new(T)
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", what, o.Key, err)
		}
		setETag(v, obj.ETag)
		out = append(out, v)
	}
	return out, nil
}

// list reads the entries under prefix, decoding only those not cached at
// their listed ETag.
func (c *recordCache) list(ctx context.Context, s storage.Store, prefix string) ([]*Record, error) {
	objs, err := s.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("ledger: list %s: %w", prefix, err)
	}
	out := make([]*Record, 0, len(objs))
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		c.mu.Lock()
		rec := c.recs[o.Key]
		c.mu.Unlock()
		if rec == nil || o.ETag == "" || rec.etag != o.ETag {
			b, obj, err := storage.ReadAll(ctx, s, o.Key)
			if errors.Is(err, storage.ErrNotFound) {
				continue // removed while listing
			}
			if err != nil {
				return nil, fmt.Errorf("ledger: %w", err)
			}
			rec = new(Record)
			if err := json.Unmarshal(b, rec); err != nil {
				return nil, fmt.Errorf("ledger: %s: %w", o.Key, err)
			}
			rec.etag = obj.ETag
			c.mu.Lock()
			c.recs[o.Key] = rec
			c.mu.Unlock()
		}
		cp := *rec
		out = append(out, &cp)
	}
	listed := make(map[string]bool, len(objs))
	for _, o := range objs {
		listed[o.Key] = true
	}
	c.mu.Lock()
	for k := range c.recs { // entries removed (ledger gc) leave the cache too
		if strings.HasPrefix(k, prefix) && !listed[k] {
			delete(c.recs, k)
		}
	}
	c.mu.Unlock()
	return out, nil
}

// Latest is the latest attempt of job+period, or nil.
func (l *Ledger) Latest(ctx context.Context, job, period string) (*Record, error) {
	recs, err := l.Attempts(ctx, job, period)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[len(recs)-1], nil
}

// Complete reports whether job+period's latest attempt succeeded, and returns it.
func (l *Ledger) Complete(ctx context.Context, job, period string) (*Record, bool, error) {
	rec, err := l.Latest(ctx, job, period)
	if err != nil || rec == nil {
		return nil, false, err
	}
	return rec, rec.Status == StatusSucceeded, nil
}

// ParseRunID splits <job>/<period>/<attempt>.
func ParseRunID(id string) (job, period string, attempt int, err error) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 {
		return "", "", 0, Usagef("bad run id %q: want <job>/<period>/<attempt>, e.g. license-usage/2026-11-21/0001", id)
	}
	attempt, err = strconv.Atoi(parts[2])
	if err != nil || attempt < 1 {
		return "", "", 0, Usagef("bad run id %q: attempt %q is not a number from 1", id, parts[2])
	}
	return parts[0], parts[1], attempt, nil
}
