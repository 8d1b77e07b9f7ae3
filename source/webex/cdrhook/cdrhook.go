// Package cdrhook receives the Webex Calling Partner Detailed Call Records
// webhook: it checks each delivery's signature, splits its records by
// organisation into their regions and stores them durably, content-addressed,
// before answering 2xx, for sync-clusters to read.
//
// The webhook (help.webex.com/article/n5zr85e, "Detailed call records webhook
// for Webex Calling in Partner Hub") is set up once per partner org in Partner
// Hub (Organization Settings > Call Detail Records) with an optional secret
// token, which tally requires. It delivers every 5 minutes the records of
// calls that ended 5–10 minutes before, late records in later payloads, in
// "the same format as the existing Detailed Call Records APIs", and may
// repeat records: reportId is the key, the latest reportTime wins.
package cdrhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"tally/source/webex"
	"tally/storage"
)

// Partner is one partner's webhook: its id in the URL and its secret token.
type Partner struct {
	ID     string
	Secret []byte
}

// Receiver stores the deliveries of every partner's webhook.
type Receiver struct {
	Partners map[string]Partner
	// Regions maps an organisation (its UUID) to its region, as the webex
	// source does: records of an organisation with none are counted, never
	// stored.
	Regions map[string]string
	Stores  storage.Regional
	// MaxBytes bounds a delivery's body (default 64 MiB).
	MaxBytes int64
	Log      zerolog.Logger
	// Deliveries counts deliveries by partner and result (stored, repeat,
	// quarantined, refused, failed) when set.
	Deliveries *prometheus.CounterVec
}

// Route is the path the receiver answers on; {partner} is a partner's id.
const Route = "POST /webhooks/webex/cdr/{partner}"

// Signature is what a delivery carries in X-Spark-Signature: the hex HMAC-SHA1
// of the raw body with the webhook's secret, as Webex signs webhook bodies
// (developer.webex.com/docs/receive-and-verify-webhooks: the signature is
// computed over the original request bytes).
func Signature(secret, body []byte) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// Handler serves Route.
func (rv *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(Route, rv.receive)
	return mux
}

// Result is the receiver's answer to one delivery.
type Result struct {
	Stored      int              `json:"stored"`   // objects written now
	Repeated    int              `json:"repeated"` // objects already stored (a redelivery)
	Records     int              `json:"records"`
	Unmapped    map[string]int64 `json:"unmapped_orgs,omitempty"`
	Quarantined bool             `json:"quarantined,omitempty"`
}

func (rv *Receiver) count(partner, result string) {
	if rv.Deliveries != nil {
		rv.Deliveries.WithLabelValues(partner, result).Inc()
	}
}

func (rv *Receiver) receive(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("partner")
	p, ok := rv.Partners[id]
	if !ok || len(p.Secret) == 0 {
		http.Error(w, "no webhook for this partner", http.StatusNotFound)
		return
	}
	limit := rv.MaxBytes
	if limit <= 0 {
		limit = 64 << 20
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		rv.count(id, "refused")
		http.Error(w, fmt.Sprintf("delivery over %d bytes", limit), http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "reading the delivery: "+err.Error(), http.StatusBadRequest)
		return
	}
	got := strings.ToLower(strings.TrimSpace(r.Header.Get("X-Spark-Signature")))
	if !hmac.Equal([]byte(got), []byte(Signature(p.Secret, body))) {
		rv.count(id, "refused")
		rv.Log.Warn().Str("partner_id", id).Str("remote", r.RemoteAddr).Msg("webex cdr webhook: a delivery with a wrong or missing X-Spark-Signature was refused; nothing stored")
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	res, err := rv.Store(r.Context(), id, body)
	if err != nil {
		rv.count(id, "failed")
		rv.Log.Error().Err(err).Str("partner_id", id).Msg("webex cdr webhook: a delivery could not be stored; answering 503 so Webex delivers it again")
		http.Error(w, "storage unavailable, deliver again", http.StatusServiceUnavailable)
		return
	}
	switch {
	case res.Quarantined:
		rv.count(id, "quarantined")
	case res.Stored == 0 && res.Repeated > 0:
		rv.count(id, "repeat")
	default:
		rv.count(id, "stored")
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// Records are a delivery's records: a list, or an object whose "items" is
// one (the API's page shape). Anything else is an unknown shape.
func Records(body []byte) ([]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	var list []json.RawMessage
	switch {
	case len(body) > 0 && body[0] == '[':
		if err := json.Unmarshal(body, &list); err != nil {
			return nil, err
		}
	case len(body) > 0 && body[0] == '{':
		var page map[string]json.RawMessage
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, err
		}
		items, ok := page["items"]
		if !ok {
			return nil, fmt.Errorf("an object without \"items\"")
		}
		if err := json.Unmarshal(items, &list); err != nil {
			return nil, fmt.Errorf("\"items\" is not a list: %w", err)
		}
	default:
		return nil, fmt.Errorf("neither a list nor an object")
	}
	for i, raw := range list {
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
			return nil, fmt.Errorf("record %d is not an object", i)
		}
	}
	return list, nil
}

// Store splits a delivery's records by region and day and writes each part
// to its region's store by exclusive create under its content's hash: a
// repeated delivery stores nothing new. An error (a store down) means the
// delivery must come again; the parts already written are whole objects, and
// the redelivery finds them stored. A delivery of unknown shape, or with a
// record that names no organisation or Start time, is kept whole in the
// control store's quarantine, never dropped.
func (rv *Receiver) Store(ctx context.Context, partner string, body []byte) (Result, error) {
	var res Result
	list, err := Records(body)
	if err == nil {
		res, err = rv.split(ctx, partner, list)
	}
	if err != nil {
		var bad badRecords
		if !errors.As(err, &bad) && list != nil {
			return res, err // a storage error: Webex delivers again
		}
		key := webex.QuarantineKey(partner, body)
		if _, cerr := rv.Stores.Control.Create(ctx, key, body); cerr != nil && !errors.Is(cerr, storage.ErrExists) {
			return res, cerr
		}
		rv.Log.Warn().Str("partner_id", partner).Str("key", key).Str("reason", err.Error()).Msg("webex cdr webhook: a delivery of unknown shape was quarantined whole")
		return Result{Quarantined: true}, nil
	}
	return res, nil
}

type badRecords struct{ error }

func (rv *Receiver) split(ctx context.Context, partner string, list []json.RawMessage) (Result, error) {
	res := Result{Records: len(list)}
	parts := map[string]*bytes.Buffer{}       // region + " " + day → records, a line each
	unmapped := map[string]map[string]int64{} // day → org → records
	unmappedRaw := map[string]*bytes.Buffer{} // day → those records, for the counts' key
	for i, raw := range list {
		var rec webex.CDR
		if err := json.Unmarshal(raw, &rec); err != nil {
			return res, badRecords{fmt.Errorf("record %d: %w", i, err)}
		}
		org, day, err := webex.RecordFacts(webex.Canonical(rec))
		if err != nil {
			return res, badRecords{fmt.Errorf("record %d: %w", i, err)}
		}
		d := day.Format("2006-01-02")
		region, ok := rv.Regions[org]
		if !ok {
			if unmapped[d] == nil {
				unmapped[d] = map[string]int64{}
			}
			unmapped[d][org]++
			if unmappedRaw[d] == nil {
				unmappedRaw[d] = &bytes.Buffer{}
			}
			unmappedRaw[d].Write(raw)
			continue
		}
		k := region + " " + d
		if parts[k] == nil {
			parts[k] = &bytes.Buffer{}
		}
		if err := json.Compact(parts[k], raw); err != nil {
			return res, badRecords{fmt.Errorf("record %d: %w", i, err)}
		}
		parts[k].WriteByte('\n')
	}
	keys := make([]string, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		region, day, _ := strings.Cut(k, " ")
		st, err := rv.Stores.For(region)
		if err != nil {
			return res, err
		}
		data := parts[k].Bytes()
		key := webex.PayloadKey(partner, day, data)
		switch _, err := st.Create(ctx, key, data); {
		case errors.Is(err, storage.ErrExists):
			res.Repeated++
		case err != nil:
			return res, fmt.Errorf("store %s in region %s: %w", key, region, err)
		default:
			res.Stored++
		}
	}
	for day, orgs := range unmapped {
		// Named by the records counted: a redelivery counts them once, another
		// delivery with the same counts is counted again.
		b, _ := json.Marshal(orgs)
		if _, err := rv.Stores.Control.Create(ctx, webex.UnmappedKey(partner, day, unmappedRaw[day].Bytes()), b); err != nil && !errors.Is(err, storage.ErrExists) {
			return res, fmt.Errorf("count unmapped organisations: %w", err)
		}
		for org, n := range orgs {
			if res.Unmapped == nil {
				res.Unmapped = map[string]int64{}
			}
			res.Unmapped[org] += n
		}
	}
	if len(res.Unmapped) > 0 {
		rv.Log.Warn().Str("partner_id", partner).Interface("orgs", res.Unmapped).
			Msg("webex cdr webhook: records of organisations with no region were counted, not stored: add them to source.webex.regions")
	}
	return res, nil
}
