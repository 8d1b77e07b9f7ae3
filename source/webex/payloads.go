package webex

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"iter"
	"sort"
	"strings"
	"time"

	"tally/extsort"
	"tally/model"
	"tally/periods"
	"tally/source"
	"tally/storage"
)

// The Partner Hub Detailed Call Records webhook's records, as the receiver
// (package cdrhook) stores them and sync-clusters reads them: one object per
// delivery, region and day, in the region's own store (residency holds for raw
// records too), named by the SHA-256 of its bytes so a repeated delivery is
// stored once.
//
//	raw/webex-cdr/partner=<P>/day=<YYYY-MM-DD>/<sha256>.jsonl   (region store: one record a line)
//	_webhooks/webex-cdr/partner=<P>/day=<YYYY-MM-DD>/unmapped-<sha256>.json   (control store: {org: records})
//	_webhooks/webex-cdr/partner=<P>/quarantine/<sha256>.json   (control store: a delivery of unknown shape)
//
// The day of a record is the UTC day of its Start time: a day's legs are
// those that started in it, whichever delivery brought them.

// PayloadDays is the prefix of partner's stored records, a folder per day
// (day=<YYYY-MM-DD>/) after it, in each region's store.
func PayloadDays(partner string) string { return "raw/webex-cdr/partner=" + partner + "/day=" }

// PayloadPrefix is where partner's stored records of day are, in each region's store.
func PayloadPrefix(partner string, day periods.Period) string {
	return PayloadDays(partner) + day.ID() + "/"
}

// PayloadKey is the content-addressed key of data, records of partner's day.
func PayloadKey(partner, day string, data []byte) string {
	sum := sha256.Sum256(data)
	return PayloadDays(partner) + day + "/" + hex.EncodeToString(sum[:]) + ".jsonl"
}

// UnmappedPrefix is where the counts of partner's day's records of unmapped
// organisations are, in the control store.
func UnmappedPrefix(partner string, day periods.Period) string {
	return UnmappedDays(partner) + day.ID() + "/"
}

// UnmappedDays is the prefix of partner's unmapped counts, a folder per day
// after it, in the control store.
func UnmappedDays(partner string) string { return "_webhooks/webex-cdr/partner=" + partner + "/day=" }

// UnmappedKey is the key of a delivery's unmapped counts, addressed by the
// records counted.
func UnmappedKey(partner, day string, data []byte) string {
	sum := sha256.Sum256(data)
	return UnmappedDays(partner) + day + "/unmapped-" + hex.EncodeToString(sum[:]) + ".json"
}

// QuarantineKey is where a delivery whose shape is unknown is kept, whole.
func QuarantineKey(partner string, body []byte) string {
	sum := sha256.Sum256(body)
	return "_webhooks/webex-cdr/partner=" + partner + "/quarantine/" + hex.EncodeToString(sum[:]) + ".json"
}

// columns are the Detailed Call History report's column names the source
// reads (help.webex.com/article/nmug598, Calling Detailed Call History
// Report). The APIs and the webhook deliver "the same format"; a record whose
// keys are spelled as JSON fields (reportId, startTime, orgUUID) is read by
// the same names, compared without case, spaces or underscores.
var columns = []string{"Report ID", "Report time", "Correlation ID", "Org UUID", "Site UUID", "Location", "Start time", "Duration",
	"User UUID", "User type", "Client type", "Sub client type", "OS type", "Model", "Call type", "Direction", "Redirect reason",
	"Related reason", "Original reason", "Queue Type", "Answered", "Releasing party", "Ring duration"}

var canonicalColumn = func() map[string]string {
	m := map[string]string{}
	for _, c := range columns {
		m[fold(c)] = c
	}
	return m
}()

var unspaced = strings.NewReplacer(" ", "", "_", "", "-", "")

func fold(k string) string { return strings.ToLower(unspaced.Replace(k)) }

// Canonical is rec with every key the source reads spelled as the report's
// column (reportId → "Report ID"); other keys are kept as they are.
func Canonical(rec CDR) CDR {
	out := make(CDR, len(rec))
	for k, v := range rec {
		if c, ok := canonicalColumn[fold(k)]; ok {
			if _, exact := rec[c]; !exact || c == k {
				out[c] = v
			}
			continue
		}
		out[k] = v
	}
	return out
}

// RecordFacts are what the receiver needs of a record: its organisation (a
// UUID) and the UTC day it started.
func RecordFacts(rec CDR) (org string, day time.Time, err error) {
	s := func(k string) string {
		v, _ := rec[k].(string)
		return strings.TrimSpace(v)
	}
	raw := s("Org UUID")
	if raw == "" {
		raw = s("orgId")
	}
	if raw == "" {
		return "", time.Time{}, fmt.Errorf("call record %q has no Org UUID", s("Report ID"))
	}
	if org, err = OrgUUID(raw); err != nil {
		return "", time.Time{}, err
	}
	start, err := time.Parse(time.RFC3339Nano, s("Start time"))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("call record %q: Start time %q is not a timestamp", s("Report ID"), s("Start time"))
	}
	start = start.UTC()
	return org, time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC), nil
}

// payloadRecord is one stored record on its way through the sort.
type payloadRecord struct {
	Org        string          `json:"o"`
	ReportID   string          `json:"i"`
	ReportTime string          `json:"t"`
	Raw        json.RawMessage `json:"r"`
}

// payloadListing is what a day's stored records were when a run read them:
// ChangedPayloads compares it with the store now.
type payloadListing struct {
	Objects int    `json:"objects"`
	Digest  string `json:"digest"`
}

func listingOf(objs []storage.Object) payloadListing {
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	sort.Strings(keys)
	sum := sha256.Sum256([]byte(strings.Join(keys, "\n")))
	return payloadListing{Objects: len(objs), Digest: hex.EncodeToString(sum[:8])}
}

// payloadDay reads partner's stored records of day in one region's store:
// de-duplicated by Report ID (the latest Report time wins, as the help
// article says), each organisation's legs in turn, in organisation order.
type payloadDay struct {
	sorter  *extsort.Sorter[payloadRecord]
	listing payloadListing
	records int64 // stored, before de-duplication
	err     error // the sort's, once orgs has run
}

// sortRun bounds the records a payload sort holds in memory (~1 KiB each).
const sortRun = 1 << 10

func readPayloads(ctx context.Context, st storage.Store, partner string, day periods.Period) (*payloadDay, error) {
	objs, err := st.List(ctx, PayloadPrefix(partner, day))
	if err != nil {
		return nil, fmt.Errorf("stored call records of partner %s, %s: %w", partner, day.ID(), err)
	}
	pd := &payloadDay{listing: listingOf(objs), sorter: extsort.New(sortRun, func(a, b *payloadRecord) int {
		if c := strings.Compare(a.Org, b.Org); c != 0 {
			return c
		}
		if c := strings.Compare(a.ReportID, b.ReportID); c != 0 {
			return c
		}
		return strings.Compare(b.ReportTime, a.ReportTime) // latest first
	})}
	for _, o := range objs {
		if err := pd.add(ctx, st, o.Key); err != nil {
			pd.sorter.Close()
			return nil, err
		}
	}
	return pd, nil
}

func (pd *payloadDay) add(ctx context.Context, st storage.Store, key string) error {
	rc, _, err := st.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("stored call records %s: %w", key, err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var rec CDR
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("stored call records %s line %d: %w", key, line, err)
		}
		rec = Canonical(rec)
		org, _, err := RecordFacts(rec)
		if err != nil {
			return fmt.Errorf("stored call records %s line %d: %w", key, line, err)
		}
		id, _ := rec["Report ID"].(string)
		rt, _ := rec["Report time"].(string)
		pd.records++
		if err := pd.sorter.Add(payloadRecord{Org: org, ReportID: id, ReportTime: rt, Raw: append(json.RawMessage(nil), raw...)}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("stored call records %s: %w", key, err)
	}
	return nil
}

// orgs yields each organisation's de-duplicated records, in organisation order.
func (pd *payloadDay) orgs() iter.Seq2[string, []CDR] {
	return func(yield func(string, []CDR) bool) {
		var org, lastID string
		var recs []CDR
		stop := false
		err := pd.sorter.Each(func(r *payloadRecord) error {
			if stop {
				return nil
			}
			if r.Org != org && org != "" {
				if !yield(org, recs) {
					stop = true
					return nil
				}
				recs, lastID = nil, ""
			}
			org = r.Org
			if r.ReportID == lastID && r.ReportID != "" {
				return nil // an older report of the same record
			}
			lastID = r.ReportID
			var rec CDR
			if err := json.Unmarshal(r.Raw, &rec); err != nil {
				return err
			}
			recs = append(recs, Canonical(rec))
			return nil
		})
		if err != nil {
			pd.err = err
			return
		}
		if !stop && org != "" {
			yield(org, recs)
		}
	}
}

// legsOf maps an organisation's records to the day's legs: a record is the
// day's when its Start time is in the day. Records it cannot map are rejected.
func legsOf(recs []CDR, customerID string, day periods.Period, file string) (legs []model.CallLeg, rejected []source.Rejected) {
	for _, rec := range recs {
		leg, err := CallLegOf(rec, customerID)
		if err != nil {
			rejected = append(rejected, source.Rejected{Entity: "calls", File: file, Reason: err.Error(), Row: rec})
			continue
		}
		if leg.StartTime.Before(day.Start) || !leg.StartTime.Before(day.End()) {
			continue
		}
		legs = append(legs, leg)
	}
	sortCalls(legs)
	return legs, rejected
}

// payloadCursor hands out one partner's stored records of a day in one
// region, organisation by organisation, as the roster asks for them in
// customer_id order. Organisations it passes over are no customer of the
// roster's (counted, never yielded).
type payloadCursor struct {
	pd     *payloadDay
	next   func() (string, []CDR, bool)
	stop   func()
	org    string
	recs   []CDR
	done   bool
	passed map[string]int // organisation → records, of orgs not asked for
}

func newCursor(pd *payloadDay) *payloadCursor {
	next, stop := iter.Pull2(pd.orgs())
	return &payloadCursor{pd: pd, next: next, stop: stop, passed: map[string]int{}}
}

// advance moves to the next organisation, counting the one it leaves unasked.
func (c *payloadCursor) advance() {
	if c.org != "" {
		c.passed[c.org] += len(c.recs)
	}
	var ok bool
	if c.org, c.recs, ok = c.next(); !ok {
		c.done, c.org, c.recs = true, "", nil
	}
}

// take is org's records (nil when none were stored).
func (c *payloadCursor) take(org string) ([]CDR, error) {
	for !c.done && (c.org == "" || c.org < org) {
		c.advance()
	}
	if c.pd.err != nil {
		return nil, c.pd.err
	}
	if c.org != org {
		return nil, nil
	}
	recs := c.recs
	c.org, c.recs = "", nil
	return recs, nil
}

// close counts what was never asked for and releases the sort.
func (c *payloadCursor) close() {
	for !c.done {
		c.advance()
	}
	c.stop()
	c.pd.sorter.Close()
}
