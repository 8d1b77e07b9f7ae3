package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Timeouts bounds every call to a store: a control call (Stat, List, Create,
// Replace, Delete, URL, opening a Get) must finish within Request, and a data
// stream (Put's upload, a Get's body) fails only when no byte moved for Idle, so a
// large upload that keeps progressing is never cut.
type Timeouts struct {
	Request time.Duration
	Idle    time.Duration
}

// WithTimeouts wraps s so that a silent connection can never hang a caller.
func WithTimeouts(s Store, t Timeouts) Store {
	if t.Request <= 0 && t.Idle <= 0 {
		return s
	}
	return &timed{Store: s, t: t}
}

// Unwrapper is a store that wraps another (for optional interfaces such as presigning).
type Unwrapper interface{ Unwrap() Store }

// As finds the first store in s's wrapping chain that implements T.
func As[T any](s Store) (T, bool) {
	for s != nil {
		if v, ok := s.(T); ok {
			return v, true
		}
		u, ok := s.(Unwrapper)
		if !ok {
			break
		}
		s = u.Unwrap()
	}
	var zero T
	return zero, false
}

type timed struct {
	Store
	t Timeouts
}

func (s *timed) Unwrap() Store { return s.Store }

// ErrTimeout is the cause of a store call cut by its deadline or idle timeout.
type ErrTimeout struct {
	Op, Key string
	After   time.Duration
	Idle    bool
}

func (e *ErrTimeout) Error() string {
	if e.Idle {
		return fmt.Sprintf("storage: %s %s: no byte moved for %s (storage.idle_timeout)", e.Op, e.Key, e.After)
	}
	return fmt.Sprintf("storage: %s %s: no answer within %s (storage.request_timeout)", e.Op, e.Key, e.After)
}

func (s *timed) call(ctx context.Context, op, key string) (context.Context, context.CancelFunc) {
	if s.t.Request <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, s.t.Request, &ErrTimeout{Op: op, Key: key, After: s.t.Request})
}

// cause prefers the timeout's own message to a bare "context deadline exceeded".
func cause(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if c := context.Cause(ctx); c != nil {
		if te, ok := c.(*ErrTimeout); ok {
			return fmt.Errorf("%w (%v)", te, err)
		}
	}
	return err
}

func (s *timed) Stat(ctx context.Context, key string) (Object, error) {
	ctx, cancel := s.call(ctx, "stat", key)
	defer cancel()
	o, err := s.Store.Stat(ctx, key)
	return o, cause(ctx, err)
}

func (s *timed) List(ctx context.Context, prefix string) ([]Object, error) {
	ctx, cancel := s.call(ctx, "list", prefix)
	defer cancel()
	o, err := s.Store.List(ctx, prefix)
	return o, cause(ctx, err)
}

func (s *timed) Delete(ctx context.Context, key string) error {
	ctx, cancel := s.call(ctx, "delete", key)
	defer cancel()
	return cause(ctx, s.Store.Delete(ctx, key))
}

func (s *timed) Create(ctx context.Context, key string, data []byte) (Object, error) {
	ctx, cancel := s.call(ctx, "create", key)
	defer cancel()
	o, err := s.Store.Create(ctx, key, data)
	return o, cause(ctx, err)
}

func (s *timed) Replace(ctx context.Context, key, etag string, data []byte) (Object, error) {
	ctx, cancel := s.call(ctx, "replace", key)
	defer cancel()
	o, err := s.Store.Replace(ctx, key, etag, data)
	return o, cause(ctx, err)
}

func (s *timed) URL(ctx context.Context, key string) (string, error) {
	ctx, cancel := s.call(ctx, "link", key)
	defer cancel()
	u, err := s.Store.URL(ctx, key)
	return u, cause(ctx, err)
}

// Get must answer within Request; then its body may take as long as it keeps moving.
func (s *timed) Get(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := newWatchdog(cancel, s.t.Request, &ErrTimeout{Op: "get", Key: key, After: s.t.Request})
	rc, obj, err := s.Store.Get(ctx, key)
	if err != nil {
		w.stop()
		err = cause(ctx, err)
		cancel(nil)
		return nil, obj, err
	}
	if _, ok := rc.(io.ReaderAt); ok {
		// A local file: no network to go silent, and a Parquet reader may hold it
		// open for long between reads.
		w.stop()
		return &closeCancel{ReadCloser: rc, cancel: cancel}, obj, nil
	}
	w.reset(s.t.Idle, &ErrTimeout{Op: "get", Key: key, After: s.t.Idle, Idle: true})
	return &idleReader{r: rc, ctx: ctx, w: w, close: func() error { w.stop(); err := rc.Close(); cancel(nil); return err }}, obj, nil
}

// OpenFile opens a ranged reader where the store reads ranges (S3): each range
// read must answer within Request; the time a reader spends between reads
// does not count.
func (s *timed) OpenFile(ctx context.Context, key string, _ time.Duration) (File, error) {
	o, ok := s.Store.(FileOpener)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	f, err := o.OpenFile(ctx, key, s.t.Request)
	return f, cause(ctx, err)
}

// closeCancel releases the call's context on Close; it stays an io.ReaderAt.
type closeCancel struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (c *closeCancel) ReadAt(p []byte, off int64) (int, error) {
	return c.ReadCloser.(io.ReaderAt).ReadAt(p, off)
}

func (c *closeCancel) Close() error { err := c.ReadCloser.Close(); c.cancel(nil); return err }

// Put fails when the store spent Idle without taking a byte from r: time spent
// waiting for the producer to write does not count (a job may fill one of many
// open outputs only at its end), time spent on the network does.
func (s *timed) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := newWatchdog(cancel, s.t.Idle, &ErrTimeout{Op: "put", Key: key, After: s.t.Idle, Idle: true})
	defer w.stop()
	o, err := s.Store.Put(ctx, key, &idleReader{r: r, ctx: ctx, w: w, producer: true})
	return o, cause(ctx, err)
}

// watchdog cancels a context with a cause when it is not reset in time.
type watchdog struct {
	mu      sync.Mutex
	timer   *time.Timer
	every   time.Duration
	cause   error
	cancel  context.CancelCauseFunc
	stopped bool
}

func newWatchdog(cancel context.CancelCauseFunc, after time.Duration, cause error) *watchdog {
	w := &watchdog{cancel: cancel}
	w.reset(after, cause)
	return w
}

// reset restarts the countdown (after <= 0: no countdown).
func (w *watchdog) reset(after time.Duration, cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.every, w.cause = after, cause
	if after > 0 && !w.stopped {
		w.timer = time.AfterFunc(after, func() { w.cancel(cause) })
	}
}

func (w *watchdog) kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil && !w.stopped {
		w.timer.Reset(w.every)
	}
}

// pause stops the countdown until kick.
func (w *watchdog) pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

// idleReader kicks the watchdog on every read that moved bytes. Reading from a
// producer (Put's source) pauses the countdown while the read blocks.
type idleReader struct {
	r        io.Reader
	ctx      context.Context
	w        *watchdog
	producer bool
	close    func() error
}

func (r *idleReader) Read(p []byte) (int, error) {
	if r.producer {
		r.w.pause()
		defer r.w.kick()
	}
	n, err := r.r.Read(p)
	if n > 0 && !r.producer {
		r.w.kick()
	}
	if err != nil && err != io.EOF {
		err = cause(r.ctx, err)
	}
	return n, err
}

func (r *idleReader) Close() error {
	if r.close != nil {
		return r.close()
	}
	return nil
}

// Leftovers passes through to a store that has them, within the request deadline.
func (s *timed) Leftovers(ctx context.Context) ([]Leftover, error) {
	c, ok := As[Collector](s.Store)
	if !ok {
		return nil, nil
	}
	ctx, cancel := s.call(ctx, "list leftovers", "")
	defer cancel()
	l, err := c.Leftovers(ctx)
	return l, cause(ctx, err)
}

// RemoveLeftover passes through to a store that has leftovers.
func (s *timed) RemoveLeftover(ctx context.Context, l Leftover) error {
	c, ok := As[Collector](s.Store)
	if !ok {
		return fmt.Errorf("storage: this store has no leftovers")
	}
	ctx, cancel := s.call(ctx, "remove leftover", l.Key)
	defer cancel()
	return cause(ctx, c.RemoveLeftover(ctx, l))
}
