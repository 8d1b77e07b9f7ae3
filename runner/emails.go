package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"tally/storage"
)

// An email send is made idempotent by a claim: before sending, the runner
// creates _emails/<job>/<period>/<subscription>/<group>-g<generation>.json
// exclusively; the message's Message-ID and outbox file are named by that key,
// and the claim is confirmed once the send is accepted. A claim never confirmed
// (the process died between the two) is sent again by the next run with the same
// Message-ID, so a mail client shows one message; nothing else ever sends a key
// twice. A new generation is started only on purpose: --force --email, tally
// resend, a backfill digest.

// Claim states.
const (
	ClaimPending = "claimed" // claimed, the send not (yet) confirmed
	ClaimSent    = "sent"
	ClaimFailed  = "failed" // the server refused it, or every try failed: tally resend sends it again
)

// Email statuses in the ledger.
const (
	EmailSent   = "sent"
	EmailFailed = "failed"
)

// DefaultGroup is the recipient group of a message to all of a subscription's
// recipients at once.
const DefaultGroup = "all"

// EmailClaim is one send's claim.
type EmailClaim struct {
	Key          string     `json:"key"` // <job>/<period>/<subscription>/<group>-g<generation>
	Job          string     `json:"job"`
	Period       string     `json:"period"`
	Subscription string     `json:"subscription"`
	Group        string     `json:"group"`
	Generation   int        `json:"generation"`
	RunID        string     `json:"run_id"` // the run that claimed it
	Holder       Holder     `json:"holder"`
	Token        string     `json:"token"` // the claiming lease's token
	ClaimedAt    time.Time  `json:"claimed_at"`
	Status       string     `json:"status"`
	SentAt       *time.Time `json:"sent_at,omitempty"`
	SentBy       string     `json:"sent_by,omitempty"` // the run that confirmed it
	Via          string     `json:"via,omitempty"`
	Error        string     `json:"error,omitempty"` // why it failed (status failed)

	// Resumed is set when this run re-sends a claim an earlier run left unconfirmed.
	Resumed bool `json:"-"`
	etag    string
}

// claimPath is where a claim lives in the control store.
func claimPath(key string) string { return "_emails/" + key + ".json" }

// Claims lists the email claims under _emails/<prefix> (prefix "" for all, or
// "<job>/", "<job>/<period>/"), oldest key first.
func Claims(ctx context.Context, s storage.Store, prefix string) ([]*EmailClaim, error) {
	return readJSONs(ctx, s, "_emails/"+prefix, "email claims", func(c *EmailClaim, etag string) { c.etag = etag })
}

// Unconfirmed are the claims whose send was never confirmed: failed, or
// claimed by a process that died before it knew.
func Unconfirmed(claims []*EmailClaim) []*EmailClaim {
	var out []*EmailClaim
	for _, c := range claims {
		if c.Status != ClaimSent {
			out = append(out, c)
		}
	}
	return out
}

// claimer claims sends for one job+period under one lease.
type claimer struct {
	store  storage.Store
	lease  *Lease
	job    string
	period string
	runID  string
	holder Holder
	now    func() time.Time
	// fresh starts a new generation per subscription (forced --email, resend,
	// digest); gens remembers it, so a retried attempt reuses it.
	fresh bool
	gens  map[string]int
}

// claim decides what to do for one subscription's message: send under a new
// claim, re-send an unconfirmed one, or nothing (sent is true: already done).
func (c *claimer) claim(ctx context.Context, sub, group string) (claim *EmailClaim, sent bool, err error) {
	if err := c.lease.Check(ctx); err != nil {
		return nil, false, err
	}
	existing, err := Claims(ctx, c.store, fmt.Sprintf("%s/%s/%s/", c.job, c.period, sub))
	if err != nil {
		return nil, false, err
	}
	var newest *EmailClaim
	for _, e := range existing {
		if e.Group == group && (newest == nil || e.Generation > newest.Generation) {
			newest = e
		}
	}
	gen, mine := 1, sub+"/"+group
	switch {
	case newest != nil && newest.Status != ClaimSent:
		// Claimed, never confirmed (its process died before it knew), or failed:
		// sent again under the same Message-ID.
		newest.Resumed = true
		c.gens[mine] = newest.Generation
		return newest, false, nil
	case c.gens[mine] != 0:
		if newest != nil && newest.Generation == c.gens[mine] {
			return newest, true, nil
		}
		gen = c.gens[mine]
	case newest != nil && !c.fresh:
		return newest, true, nil
	case newest != nil:
		gen = newest.Generation + 1
	}
	cl := &EmailClaim{Key: fmt.Sprintf("%s/%s/%s/%s-g%d", c.job, c.period, sub, group, gen), Job: c.job, Period: c.period,
		Subscription: sub, Group: group, Generation: gen, RunID: c.runID, Holder: c.holder, Token: c.lease.token(),
		ClaimedAt: c.now(), Status: ClaimPending}
	b, _ := json.MarshalIndent(cl, "", "  ")
	obj, err := c.store.Create(ctx, claimPath(cl.Key), b)
	if errors.Is(err, storage.ErrExists) {
		return nil, false, fmt.Errorf("%w: email %s was claimed by another runner", ErrLeaseLost, cl.Key)
	}
	if err != nil {
		return nil, false, fmt.Errorf("email claim %s: %w", cl.Key, err)
	}
	cl.etag = obj.ETag
	c.gens[mine] = gen
	return cl, false, nil
}

// confirm records that cl's send was accepted (a compare-and-swap on the claim).
func (c *claimer) confirm(ctx context.Context, cl *EmailClaim, via string) error {
	now := c.now()
	next := *cl
	next.Status, next.SentAt, next.SentBy, next.Via, next.Error = ClaimSent, &now, c.runID, via, ""
	return c.replace(ctx, cl, &next, "confirm")
}

// fail records that cl's send failed for good (a refusal, or every try).
func (c *claimer) fail(ctx context.Context, cl *EmailClaim, why string) error {
	next := *cl
	next.Status, next.Error = ClaimFailed, why
	return c.replace(ctx, cl, &next, "mark failed")
}

func (c *claimer) replace(ctx context.Context, cl, next *EmailClaim, what string) error {
	b, _ := json.MarshalIndent(next, "", "  ")
	obj, err := c.store.Replace(ctx, claimPath(cl.Key), cl.etag, b)
	if err != nil {
		return fmt.Errorf("email claim %s: %s: %w", cl.Key, what, err)
	}
	resumed := cl.Resumed
	*cl = *next
	cl.etag, cl.Resumed = obj.ETag, resumed
	return nil
}
