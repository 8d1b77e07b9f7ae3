package runner

import (
	"errors"
	"fmt"
	"time"

	"tally/storage"
)

// ErrLeaseHeld means another runner holds the lease for the job and period (exit 3).
var ErrLeaseHeld = errors.New("another runner holds the lease")

// ErrLeaseLost means this runner no longer holds its lease; the run stops.
var ErrLeaseLost = errors.New("lease lost")

// HeldError says who holds a lease.
type HeldError struct {
	Key       string
	Holder    Holder
	ExpiresAt time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s: %s (pid %d on %s, run %s) until %s", ErrLeaseHeld, e.Key, e.Holder.PID, e.Holder.Host, e.Holder.RunID, e.ExpiresAt.Format(time.RFC3339))
}

func (e *HeldError) Unwrap() error { return ErrLeaseHeld }

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks an error that retrying cannot fix (bad input, a missing
// upstream with --no-deps): the run fails at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err, or anything it wraps, was marked Permanent or Usage.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p) || IsUsage(err) || errors.Is(err, storage.ErrMisconfigured)
}

type usage struct{ err error }

func (u usage) Error() string { return u.err.Error() }
func (u usage) Unwrap() error { return u.err }

// Usage marks a usage or configuration error (exit 2): unknown job, bad period, bad flags.
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return usage{err}
}

// Usagef is Usage(fmt.Errorf(...)).
func Usagef(format string, args ...any) error { return Usage(fmt.Errorf(format, args...)) }

// IsUsage reports whether err is a usage error.
func IsUsage(err error) bool {
	var u usage
	return errors.As(err, &u)
}

// ErrWaiting means a period's input has not been delivered yet and its deadline
// has not passed: the attempt is recorded "waiting" — not failed, not retried,
// no alert, exit 0 — and a later run picks the period up.
var ErrWaiting = errors.New("waiting for input")

type waiting struct{ err error }

func (w waiting) Error() string   { return w.err.Error() }
func (w waiting) Unwrap() []error { return []error{w.err, ErrWaiting} }

// Waiting marks err as a wait for input (ErrWaiting).
func Waiting(err error) error { return waiting{err} }
