package cdrhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"tally/source/webex"
	"tally/source/webex/cdrhook"
	"tally/storage"
	"tally/storage/local"
)

const (
	orgEU  = "4b1c6a52-8f0e-4d7a-9a35-61f0c2d8e901"
	orgUS  = "0a0b0c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
	orgOff = "9f9f9f9f-0000-4000-8000-00000000dead" // no region
)

var secret = []byte("partner-one-webhook-secret")

// flaky fails every Create while down is set (a store that went away).
type flaky struct {
	storage.Store
	down atomic.Bool
}

func (f *flaky) Create(ctx context.Context, key string, data []byte) (storage.Object, error) {
	if f.down.Load() {
		return storage.Object{}, errors.New("connection refused")
	}
	return f.Store.Create(ctx, key, data)
}

type setup struct {
	srv          *httptest.Server
	eu, us, ctrl storage.Store
	usFlaky      *flaky
}

func newReceiver(t *testing.T) *setup {
	t.Helper()
	mk := func() storage.Store {
		s, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := &setup{eu: mk(), ctrl: mk()}
	s.usFlaky = &flaky{Store: mk()}
	s.us = s.usFlaky
	rv := &cdrhook.Receiver{Partners: map[string]cdrhook.Partner{"P1": {ID: "P1", Secret: secret}},
		Regions: map[string]string{orgEU: "EU", orgUS: "US"},
		Stores:  storage.Regional{Control: s.ctrl, Regions: map[string]storage.Store{"EU": s.eu, "US": s.us}}, Log: zerolog.Nop()}
	s.srv = httptest.NewServer(rv.Handler())
	t.Cleanup(s.srv.Close)
	return s
}

// record is a Detailed Call History record as the webhook delivers it ("the
// same format as the existing Detailed Call Records APIs": the report's
// column names).
func record(org, id, start, reportTime string) map[string]any {
	return map[string]any{"Report ID": id, "Correlation ID": "call-" + id, "Org UUID": org, "Start time": start, "Duration": 60,
		"Direction": "ORIGINATING", "Client type": "WXC_DEVICE", "Model": "Cisco 8845", "Report time": reportTime, "Site UUID": "5e0f2b11-7c4d-4a8e-8b6f-0d9c1a2b3c41"}
}

func (s *setup) deliver(t *testing.T, partner string, body []byte, sig string) (int, cdrhook.Result) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/webhooks/webex/cdr/"+partner, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("X-Spark-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res cdrhook.Result
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &res)
	return resp.StatusCode, res
}

func payload(recs ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"items": recs})
	return b
}

func objects(t *testing.T, st storage.Store, prefix string) []storage.Object {
	t.Helper()
	objs, err := st.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestADeliveryIsSplitByOrganisationIntoItsRegionsStoreAndByTheDayItsCallsStarted(t *testing.T) {
	s := newReceiver(t)
	body := payload(
		record(orgEU, "r1", "2026-11-21T23:58:00.000Z", "2026-11-22T00:03:00.000Z"), // crosses midnight: the 21st's
		record(orgEU, "r2", "2026-11-22T00:01:00.000Z", "2026-11-22T00:02:00.000Z"),
		record(orgUS, "r3", "2026-11-21T23:00:00.000Z", "2026-11-21T23:01:00.000Z"),
	)
	code, res := s.deliver(t, "P1", body, cdrhook.Signature(secret, body))
	if code != http.StatusOK || res.Stored != 3 || res.Records != 3 {
		t.Fatalf("answer %d %+v, want 200 and three objects stored", code, res)
	}
	for _, c := range []struct {
		st   storage.Store
		day  string
		want int
	}{{s.eu, "2026-11-21", 1}, {s.eu, "2026-11-22", 1}, {s.us, "2026-11-21", 1}} {
		if n := len(objects(t, c.st, "raw/webex-cdr/partner=P1/day="+c.day+"/")); n != c.want {
			t.Errorf("%d objects for %s, want %d", n, c.day, c.want)
		}
	}
	// Residency: nothing of the EU organisation in the US store, or the reverse.
	for _, o := range objects(t, s.us, "raw/") {
		b, _, _ := storage.ReadAll(context.Background(), s.us, o.Key)
		if strings.Contains(string(b), orgEU) {
			t.Errorf("the US store holds an EU organisation's record: %s", o.Key)
		}
	}
}

func TestARepeatedDeliveryIsStoredOnce(t *testing.T) {
	s := newReceiver(t)
	body := payload(record(orgEU, "r1", "2026-11-21T10:00:00.000Z", "2026-11-21T10:01:00.000Z"))
	for i := 0; i < 3; i++ {
		if code, _ := s.deliver(t, "P1", body, cdrhook.Signature(secret, body)); code != http.StatusOK {
			t.Fatalf("delivery %d: %d", i, code)
		}
	}
	if n := len(objects(t, s.eu, "raw/")); n != 1 {
		t.Fatalf("%d objects after three identical deliveries, want 1", n)
	}
}

func TestADeliveryWithABadOrMissingSecretIs401AndStoresNothing(t *testing.T) {
	s := newReceiver(t)
	body := payload(record(orgEU, "r1", "2026-11-21T10:00:00.000Z", "2026-11-21T10:01:00.000Z"))
	for name, sig := range map[string]string{"missing": "", "wrong secret": cdrhook.Signature([]byte("guess"), body),
		"another body's": cdrhook.Signature(secret, []byte("{}")), "not hex": "zz"} {
		if code, _ := s.deliver(t, "P1", body, sig); code != http.StatusUnauthorized {
			t.Errorf("%s signature: %d, want 401", name, code)
		}
	}
	if code, _ := s.deliver(t, "P9", body, cdrhook.Signature(secret, body)); code != http.StatusNotFound {
		t.Errorf("a partner with no receiver: %d, want 404", code)
	}
	if n := len(objects(t, s.eu, "")) + len(objects(t, s.ctrl, "")); n != 0 {
		t.Fatalf("%d objects stored from refused deliveries", n)
	}
}

func TestAStorageFailureMidReceiveIs5xxNothingHalfStoredAndTheRedeliveryIsStoredOnce(t *testing.T) {
	s := newReceiver(t)
	body := payload(
		record(orgEU, "r1", "2026-11-21T10:00:00.000Z", "2026-11-21T10:01:00.000Z"),
		record(orgUS, "r2", "2026-11-21T11:00:00.000Z", "2026-11-21T11:01:00.000Z"),
	)
	s.usFlaky.down.Store(true) // EU is written first (regions in order), then US fails
	if code, _ := s.deliver(t, "P1", body, cdrhook.Signature(secret, body)); code < 500 {
		t.Fatalf("with the US store down: %d, want 5xx so Webex delivers again", code)
	}
	if n := len(objects(t, s.us, "")); n != 0 {
		t.Fatalf("%d objects in the store that failed", n)
	}
	for _, o := range objects(t, s.eu, "raw/") { // what was written is whole
		b, _, _ := storage.ReadAll(context.Background(), s.eu, o.Key)
		if webex.PayloadKey("P1", "2026-11-21", b) != o.Key {
			t.Errorf("%s does not hold the bytes its name hashes: a half-stored part", o.Key)
		}
	}
	s.usFlaky.down.Store(false)
	code, res := s.deliver(t, "P1", body, cdrhook.Signature(secret, body))
	if code != http.StatusOK || res.Stored != 1 || res.Repeated != 1 {
		t.Fatalf("the redelivery: %d %+v, want the US part stored and the EU part found stored", code, res)
	}
	if n := len(objects(t, s.eu, "raw/")) + len(objects(t, s.us, "raw/")); n != 2 {
		t.Fatalf("%d objects after the redelivery, want 2", n)
	}
}

func TestRecordsOfAnOrganisationWithNoRegionAreCountedNotStored(t *testing.T) {
	s := newReceiver(t)
	body := payload(record(orgOff, "r1", "2026-11-21T10:00:00.000Z", "2026-11-21T10:01:00.000Z"),
		record(orgOff, "r2", "2026-11-21T10:05:00.000Z", "2026-11-21T10:06:00.000Z"))
	code, res := s.deliver(t, "P1", body, cdrhook.Signature(secret, body))
	if code != http.StatusOK || res.Unmapped[orgOff] != 2 || res.Stored != 0 {
		t.Fatalf("%d %+v, want 2 records of %s counted", code, res, orgOff)
	}
	if n := len(objects(t, s.eu, "")) + len(objects(t, s.us, "")); n != 0 {
		t.Fatalf("an unmapped organisation's records were stored in a region (%d objects)", n)
	}
	counts := objects(t, s.ctrl, "_webhooks/webex-cdr/partner=P1/day=2026-11-21/")
	if len(counts) != 1 {
		t.Fatalf("%d count objects, want 1", len(counts))
	}
	b, _, _ := storage.ReadAll(context.Background(), s.ctrl, counts[0].Key)
	if string(b) != fmt.Sprintf(`{"%s":2}`, orgOff) {
		t.Fatalf("counted %s", b)
	}
}

func TestADeliveryOfUnknownShapeIsQuarantinedWholeNeverDropped(t *testing.T) {
	s := newReceiver(t)
	for _, body := range [][]byte{[]byte(`{"records":[{"Report ID":"x"}]}`), []byte(`"text"`),
		payload(map[string]any{"Report ID": "no-org", "Start time": "2026-11-21T10:00:00Z"})} {
		code, res := s.deliver(t, "P1", body, cdrhook.Signature(secret, body))
		if code != http.StatusOK || !res.Quarantined {
			t.Errorf("%s: %d %+v, want 200, quarantined", body, code, res)
		}
		b, _, err := storage.ReadAll(context.Background(), s.ctrl, webex.QuarantineKey("P1", body))
		if err != nil || !bytes.Equal(b, body) {
			t.Errorf("%s: not kept whole in quarantine (%v)", body, err)
		}
	}
	// A bare list and the API's field names are shapes the reference allows.
	body, _ := json.Marshal([]map[string]any{{"reportId": "r9", "orgUUID": orgEU, "startTime": "2026-11-21T10:00:00.000Z", "reportTime": "2026-11-21T10:01:00.000Z"}})
	if code, res := s.deliver(t, "P1", body, cdrhook.Signature(secret, body)); code != http.StatusOK || res.Stored != 1 {
		t.Fatalf("a list of records with JSON field names: %d %+v", code, res)
	}
}

func TestADeliveryOverTheSizeLimitIs413(t *testing.T) {
	s := newReceiver(t)
	rv := &cdrhook.Receiver{Partners: map[string]cdrhook.Partner{"P1": {ID: "P1", Secret: secret}}, MaxBytes: 100, Log: zerolog.Nop(),
		Stores: storage.Regional{Control: s.ctrl}}
	srv := httptest.NewServer(rv.Handler())
	defer srv.Close()
	body := bytes.Repeat([]byte("x"), 200)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/webex/cdr/P1", bytes.NewReader(body))
	req.Header.Set("X-Spark-Signature", cdrhook.Signature(secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d, want 413", resp.StatusCode)
	}
}
