package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"tally/clock"
	"tally/storage"
)

// Holder identifies the runner holding a lease.
type Holder struct {
	Host  string `json:"host"`
	PID   int    `json:"pid"`
	RunID string `json:"run_id,omitempty"`
}

// LeaseRecord is the content of _leases/<job>/<period>.json.
type LeaseRecord struct {
	Job       string    `json:"job"`
	Period    string    `json:"period"`
	Holder    Holder    `json:"holder"`
	TakenAt   time.Time `json:"taken_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Released  bool      `json:"released,omitempty"`
	// Token is random per acquisition: it tells this holder's writes from any
	// other's, even the same process's next run.
	Token string `json:"token"`
}

func newToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func leaseKey(job, period string) string { return fmt.Sprintf("_leases/%s/%s.json", job, period) }

// Lease is a held lease. Renew, release and takeover are compare-and-swap on the
// object's ETag, so two runners can never both hold it.
type Lease struct {
	store storage.Store
	clock clock.Clock
	ttl   time.Duration
	key   string

	mu   sync.Mutex
	etag string
	rec  LeaseRecord
	lost error
}

// readLease returns the current lease record and its ETag.
func readLease(ctx context.Context, s storage.Store, key string) (*LeaseRecord, string, error) {
	b, obj, err := storage.ReadAll(ctx, s, key)
	if err != nil {
		return nil, "", err
	}
	var rec LeaseRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, "", fmt.Errorf("lease %s: %w", key, err)
	}
	return &rec, obj.ETag, nil
}

// AcquireLease takes the lease of job+period, or takes it over when its holder let
// it expire or released it. Otherwise it returns a *HeldError (ErrLeaseHeld).
func AcquireLease(ctx context.Context, s storage.Store, clk clock.Clock, job, period string, holder Holder, ttl time.Duration) (*Lease, error) {
	key := leaseKey(job, period)
	now := clk.Now()
	l := &Lease{store: s, clock: clk, ttl: ttl, key: key,
		rec: LeaseRecord{Job: job, Period: period, Holder: holder, TakenAt: now, ExpiresAt: now.Add(ttl), Token: newToken()}}
	data, _ := json.Marshal(l.rec)
	obj, err := s.Create(ctx, key, data)
	if err == nil {
		l.etag = obj.ETag
		return l, nil
	}
	if !errors.Is(err, storage.ErrExists) {
		return nil, fmt.Errorf("lease %s: %w", key, err)
	}
	cur, etag, err := readLease(ctx, s, key)
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", key, err)
	}
	if !cur.Released && now.Before(cur.ExpiresAt) {
		return nil, &HeldError{Key: key, Holder: cur.Holder, ExpiresAt: cur.ExpiresAt}
	}
	obj, err = s.Replace(ctx, key, etag, data)
	if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrNotFound) {
		// Another runner took it over between our read and our swap.
		return nil, &HeldError{Key: key, Holder: cur.Holder, ExpiresAt: cur.ExpiresAt}
	}
	if err != nil {
		return nil, fmt.Errorf("lease %s: takeover: %w", key, err)
	}
	l.etag = obj.ETag
	return l, nil
}

// swap replaces the lease record with next if we still hold it. A failed
// precondition is not taken on trust: a write of ours whose answer was lost (a
// timeout, a retried request) also moves the ETag, so the lease is read back and
// only another holder's token means it was taken over.
func (l *Lease) swap(ctx context.Context, next LeaseRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	data, _ := json.Marshal(next)
	for try := 0; ; try++ {
		obj, err := l.store.Replace(ctx, l.key, l.etag, data)
		if err == nil {
			l.etag, l.rec = obj.ETag, next
			return nil
		}
		if !errors.Is(err, storage.ErrPreconditionFailed) && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("lease %s: %w", l.key, err)
		}
		cur, etag, rerr := readLease(ctx, l.store, l.key)
		switch {
		case errors.Is(rerr, storage.ErrNotFound):
			l.lost = fmt.Errorf("%w: %s was deleted", ErrLeaseLost, l.key)
			return l.lost
		case rerr != nil:
			return fmt.Errorf("lease %s: reading it back after a failed swap: %w", l.key, rerr)
		case cur.Token != l.rec.Token:
			l.lost = takenOver(l.key, cur.Holder)
			return l.lost
		case try > 0:
			return fmt.Errorf("lease %s: our own swap keeps failing its precondition", l.key)
		}
		// Still ours: an earlier write of ours landed unseen. Swap from its version.
		l.etag = etag
	}
}

// takenOver is ErrLeaseLost naming the holder that has the lease now.
func takenOver(key string, h Holder) error {
	return fmt.Errorf("%w: %s was taken over by pid %d on %s (run %s)", ErrLeaseLost, key, h.PID, h.Host, h.RunID)
}

func (l *Lease) token() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Token
}

// Renew pushes the expiry a TTL past now.
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	next := l.rec
	l.mu.Unlock()
	next.ExpiresAt = l.clock.Now().Add(l.ttl)
	return l.swap(ctx, next)
}

// SetRunID records the attempt now running in the holder.
func (l *Lease) SetRunID(ctx context.Context, runID string) error {
	l.mu.Lock()
	next := l.rec
	l.mu.Unlock()
	next.Holder.RunID = runID
	next.ExpiresAt = l.clock.Now().Add(l.ttl)
	return l.swap(ctx, next)
}

// Release marks the lease free (a conditional write, not a delete: some S3
// servers ignore conditions on DeleteObject).
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	next := l.rec
	l.mu.Unlock()
	next.Released = true
	next.ExpiresAt = l.clock.Now()
	return l.swap(ctx, next)
}

// Check confirms the lease is still ours and unexpired: called before every
// publish and ledger write.
func (l *Lease) Check(ctx context.Context) error {
	l.mu.Lock()
	lost, token, exp := l.lost, l.rec.Token, l.rec.ExpiresAt
	l.mu.Unlock()
	if lost != nil {
		return lost
	}
	if !l.clock.Now().Before(exp) {
		return fmt.Errorf("%w: %s expired at %s without renewal", ErrLeaseLost, l.key, exp.Format(time.RFC3339))
	}
	cur, _, err := readLease(ctx, l.store, l.key)
	if err != nil {
		return fmt.Errorf("lease %s: %w", l.key, err)
	}
	if cur.Token != token || cur.Released {
		return takenOver(l.key, cur.Holder)
	}
	return nil
}

// KeepAlive renews the lease every interval until the returned stop is called. If a
// renewal fails (taken over, or storage failing until the lease expires) it cancels
// the returned context with the cause, which stops the run.
func (l *Lease) KeepAlive(ctx context.Context, every time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				err := l.Renew(ctx)
				if err == nil {
					continue
				}
				if errors.Is(err, ErrLeaseLost) {
					cancel(err)
					return
				}
				l.mu.Lock()
				expired := !l.clock.Now().Before(l.rec.ExpiresAt)
				l.mu.Unlock()
				if expired {
					cancel(fmt.Errorf("%w: could not renew before expiry: %v", ErrLeaseLost, err))
					return
				}
			}
		}
	}()
	return ctx, func() {
		close(done)
		wg.Wait()
		cancel(nil)
	}
}

// Leases lists the current lease records (for plan and serve's health).
func Leases(ctx context.Context, s storage.Store) ([]LeaseRecord, error) {
	objs, err := s.List(ctx, "_leases/")
	if err != nil {
		return nil, err
	}
	var out []LeaseRecord
	for _, o := range objs {
		rec, _, err := readLease(ctx, s, o.Key)
		if err != nil {
			continue
		}
		out = append(out, *rec)
	}
	return out, nil
}
