// Package analytics owns the weekly analytics rules of SPEC §7: which customers
// count, customer and subscription statuses, provisioning precedence, low
// assignment, overage, poor call legs and call-queue KPIs.
package analytics

import (
	"math"
	"slices"
	"sort"
	"time"

	"tally/model"
)

// Customer statuses, in the order they are listed.
const (
	StatusTrial            = "trial"
	StatusSubscription     = "subscription"
	StatusExpiringSoon     = "expiring-soon"
	StatusLicenseOverage   = "license-overage"
	StatusNoRecentActivity = "no-recent-activity"
	StatusReadyToSetUp     = "ready-to-set-up"
	StatusSuspended        = "suspended"
	StatusExpired          = "expired"
)

// Provisioning statuses, most important first.
var ProvisioningPrecedence = []string{
	"Provisioning failed",
	"Awaiting provisioning details",
	"Manual provisioning (partner)",
	"Manual provisioning (Cisco)",
	"Provisioning",
	"Provisioned",
}

// Counted reports whether a customer counts in the KPIs: it has Calling
// (calling, ucm-cloud or dedicated-instance) or Meetings. Messaging-only does not.
func Counted(products []string) bool {
	return HasCalling(products) || slices.Contains(products, "meetings")
}

// HasCalling reports whether a customer has a Calling product.
func HasCalling(products []string) bool {
	return slices.Contains(products, "calling") || slices.Contains(products, "ucm-cloud") || slices.Contains(products, "dedicated-instance")
}

// Week is the instant a week's analytics describe: the Sunday 00:00 UTC that
// closes it. "Within N days" counts from it.
type Week struct {
	End model.Date
}

// DaysTo is end_date − week end, in days (negative once it has ended).
func (w Week) DaysTo(end model.Date) int { return int(end - w.End) }

// Within reports 0 ≤ end_date − week end < n days.
func (w Week) Within(end model.Date, n int) bool {
	d := w.DaysTo(end)
	return d >= 0 && d < n
}

// Active reports whether s is a paid subscription in force at the week's end.
func (w Week) Active(s *model.Subscription) bool {
	return !s.IsTrial && s.Status == "active" && w.DaysTo(s.EndDate) >= 0
}

// ActiveTrial reports whether s is a trial still running at the week's end.
func (w Week) ActiveTrial(s *model.Subscription) bool {
	return s.IsTrial && s.Status == "trial" && w.DaysTo(s.EndDate) >= 0
}

// Ended reports whether s ended before the week's end.
func (w Week) Ended(s *model.Subscription) bool { return w.DaysTo(s.EndDate) < 0 }

// SubscriptionStatus is the first status that holds: Cancelled, Suspended, Trial
// expired, Trial expires within 30 days, Trial expires within 60 days, Trial
// active, Expires within 30 days, Expires within 60 days, Active. A paid
// subscription past its end date reads "Expired"; one that auto-renews does not
// expire, so it is never "Expires within".
func (w Week) SubscriptionStatus(s *model.Subscription) string {
	d := w.DaysTo(s.EndDate)
	switch {
	case s.Status == "cancelled":
		return "Cancelled"
	case s.Status == "suspended":
		return "Suspended"
	case s.IsTrial && d < 0:
		return "Trial expired"
	case s.IsTrial && d < 30:
		return "Trial expires within 30 days"
	case s.IsTrial && d < 60:
		return "Trial expires within 60 days"
	case s.IsTrial:
		return "Trial active"
	case d < 0:
		return "Expired"
	case !s.AutoRenew && d < 30:
		return "Expires within 30 days"
	case !s.AutoRenew && d < 60:
		return "Expires within 60 days"
	}
	return "Active"
}

// ProvisioningStatus is the most important of a subscription's per-service
// statuses (unknown values rank last).
func ProvisioningStatus(statuses []string) string {
	best, bestRank := "", len(ProvisioningPrecedence)+1
	for _, s := range statuses {
		rank := slices.Index(ProvisioningPrecedence, s)
		if rank < 0 {
			rank = len(ProvisioningPrecedence)
		}
		if rank < bestRank {
			best, bestRank = s, rank
		}
	}
	return best
}

// CustomerFacts is what customer statuses are decided from.
type CustomerFacts struct {
	Subscriptions []model.Subscription
	Overage       bool       // a subscription consumes more than it was ordered
	LastLogin     *time.Time // last admin login
}

// CustomerStatuses lists every status that holds for a customer, in the listed order.
func (w Week) CustomerStatuses(f CustomerFacts) []string {
	var active, trial, expiringSoon, unprovisioned, suspended, endedPaid bool
	for i := range f.Subscriptions {
		s := &f.Subscriptions[i]
		isActive, isTrial := w.Active(s), w.ActiveTrial(s)
		active = active || isActive
		trial = trial || isTrial
		if (isTrial || (isActive && !s.AutoRenew)) && w.Within(s.EndDate, 30) {
			expiringSoon = true
		}
		if (isActive || isTrial) && ProvisioningStatus(s.ProvisioningStatuses) != "Provisioned" {
			unprovisioned = true
		}
		suspended = suspended || s.Status == "suspended"
		endedPaid = endedPaid || (!s.IsTrial && w.Ended(s))
	}
	var out []string
	add := func(cond bool, status string) {
		if cond {
			out = append(out, status)
		}
	}
	add(trial, StatusTrial)
	add(active, StatusSubscription)
	add(expiringSoon, StatusExpiringSoon)
	add(f.Overage, StatusLicenseOverage)
	weekEnd := w.End.Time()
	add(f.LastLogin == nil || f.LastLogin.Before(weekEnd.AddDate(0, 0, -30)), StatusNoRecentActivity)
	add(unprovisioned, StatusReadyToSetUp)
	add(suspended, StatusSuspended)
	// No active and no trial subscription, and at least one that ended: a
	// trial-only customer is not expired.
	add(!active && !trial && endedPaid, StatusExpired)
	return out
}

// Overage of a subscription: Σ over license types of max(0, consumed − entitled).
func Overage(rows []model.SubscriptionUsage) int64 {
	var n int64
	for _, r := range rows {
		n += max(0, r.Consumed-r.Entitled)
	}
	return n
}

// LowAssignmentCutoff is the nearest-rank 25th percentile of the ratios: the
// value at rank ⌈0.25·n⌉ of the sorted ratios.
func LowAssignmentCutoff(ratios []float64) float64 {
	if len(ratios) == 0 {
		return math.Inf(-1)
	}
	s := append([]float64(nil), ratios...)
	sort.Float64s(s)
	rank := int(math.Ceil(0.25 * float64(len(s))))
	return s[max(rank, 1)-1]
}

// IsLow: in the bottom quartile (inclusive) and below the maximum (default 0.5).
func IsLow(ratio, cutoff, below float64) bool { return ratio <= cutoff && ratio < below }

// Ratio is a/b, nil when b is 0.
func Ratio(a, b int64) *float64 {
	if b == 0 {
		return nil
	}
	r := float64(a) / float64(b)
	return &r
}

// MonthsBetween counts whole calendar months from a to b.
func MonthsBetween(a, b time.Time) int64 {
	m := int64(b.Year()-a.Year())*12 + int64(b.Month()-a.Month())
	if b.Day() < a.Day() {
		m--
	}
	return m
}

// Thresholds decide a poor leg: jitter, latency or packet loss above them on the
// audio or the video stream.
type Thresholds struct {
	JitterMs  float64
	LatencyMs float64
	LossPct   float64
}

// DefaultThresholds are jitter > 150 ms, latency > 400 ms, loss > 5%.
var DefaultThresholds = Thresholds{JitterMs: 150, LatencyMs: 400, LossPct: 5}

// Poor reports whether a leg is of poor quality.
func (t Thresholds) Poor(l *Leg) bool {
	if l.AudioJitterMs > t.JitterMs || l.AudioLatencyMs > t.LatencyMs || l.AudioLossPct > t.LossPct {
		return true
	}
	gt := func(v *float64, limit float64) bool { return v != nil && *v > limit }
	return gt(l.VideoJitterMs, t.JitterMs) || gt(l.VideoLatencyMs, t.LatencyMs) || gt(l.VideoLossPct, t.LossPct)
}

// Leg is the columns of a calls/ row that call quality, the weekly analytics
// and the Calling Usage report use: a narrow read leaves the leg id, start
// time and direction on disk.
type Leg struct {
	CallID           string   `parquet:"call_id"`
	CustomerID       string   `parquet:"customer_id"`
	LocationID       string   `parquet:"location_id"`
	UserID           *string  `parquet:"user_id,optional"`
	DeviceType       string   `parquet:"device_type"`
	DurationSeconds  int64    `parquet:"duration_seconds"`
	IsVideo          bool     `parquet:"is_video"`
	AudioJitterMs    float64  `parquet:"audio_jitter_ms"`
	AudioLatencyMs   float64  `parquet:"audio_latency_ms"`
	AudioLossPct     float64  `parquet:"audio_loss_pct"`
	VideoJitterMs    *float64 `parquet:"video_jitter_ms,optional"`
	VideoLatencyMs   *float64 `parquet:"video_latency_ms,optional"`
	VideoLossPct     *float64 `parquet:"video_loss_pct,optional"`
	RoutedVia        *string  `parquet:"routed_via,optional"`
	QueueOutcome     *string  `parquet:"queue_outcome,optional"`
	QueueWaitSeconds *int64   `parquet:"queue_wait_seconds,optional"`
}

// Queue accumulates call-queue outcomes, one per queued call.
type Queue struct {
	Calls, Answered, Abandoned, TimedOut, Overflowed, Forwarded int64
	answerWait, abandonWait                                     int64
}

// Add counts one queued call.
func (q *Queue) Add(outcome string, waitSeconds int64) {
	q.Calls++
	switch outcome {
	case "answered":
		q.Answered++
		q.answerWait += waitSeconds
	case "abandoned":
		q.Abandoned++
		q.abandonWait += waitSeconds
	case "timed-out":
		q.TimedOut++
	case "overflowed":
		q.Overflowed++
	case "forwarded":
		q.Forwarded++
	}
}

// AvgAnswerSeconds is the average wait of answered calls.
func (q *Queue) AvgAnswerSeconds() *float64 { return Ratio(q.answerWait, q.Answered) }

// AvgAbandonWaitSeconds is the average wait before a caller abandoned.
func (q *Queue) AvgAbandonWaitSeconds() *float64 { return Ratio(q.abandonWait, q.Abandoned) }

// AbandonRate is abandoned ÷ queued calls.
func (q *Queue) AbandonRate() *float64 { return Ratio(q.Abandoned, q.Calls) }
