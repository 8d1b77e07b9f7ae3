package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"

	"tally/model"
	"tally/periods"
	"tally/source"
	"tally/storage/local"
)

var testDay = periods.Period{Cadence: periods.Daily, Start: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)}

const custUS = "11111111-1111-4111-8111-111111111111"
const custEU = "22222222-2222-4222-8222-222222222222"

// landing writes files (path → content) and, unless noManifest, a manifest
// listing them; it returns a source over them whose clock reads now.
func landing(t *testing.T, files map[string]string, noManifest bool, now time.Time) *Source {
	t.Helper()
	dir := t.TempDir()
	m := Manifest{Day: testDay.ID()}
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte(content), 0o644)
		sum := sha256.Sum256([]byte(content))
		m.Files = append(m.Files, ManifestFile{Path: p, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])})
	}
	if !noManifest {
		b, _ := json.Marshal(m)
		os.MkdirAll(filepath.Join(dir, "_ready"), 0o755)
		os.WriteFile(filepath.Join(dir, "_ready", "day="+testDay.ID()+".json"), b, 0o644)
	}
	st, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &Source{Root: st, ReadyDeadline: 12 * time.Hour, MaxCallLength: 12 * time.Hour, Now: func() time.Time { return now }}
}

const customersCSV = "\ufeffcustomer_id,customer_name,partner_id,external_id,managed_by,products,tags,created_at,last_admin_login_at,extra_col\n" +
	custUS + ",Acme,P1,,partner,\"[\"\"calling\"\"]\",,2026-01-02T03:04:05Z,1763000000,x\n"

func dayIn(t *testing.T, s *Source) ([]*source.CustomerDay, error) {
	var out []*source.CustomerDay
	if _, err := s.Partners(context.Background(), testDay); err != nil {
		return nil, err
	}
	err := s.Customers(context.Background(), testDay, func(cd *source.CustomerDay) error {
		// Read a streamed customer's calls while it is yielded, as sync does.
		var calls []model.CallLeg
		if err := cd.EachCall(func(l model.CallLeg) error { calls = append(calls, l); return nil }); err != nil {
			return err
		}
		cd.Calls, cd.CallStream = calls, nil
		out = append(out, cd)
		return nil
	})
	return out, err
}

func TestADayWithoutItsManifestIsWaitingUntilTheDeadlineThenFails(t *testing.T) {
	files := map[string]string{"customers/region=US/day=2026-11-21/c.csv": customersCSV}
	before := landing(t, files, true, testDay.End().Add(11*time.Hour))
	if _, err := dayIn(t, before); !errors.Is(err, source.ErrWaiting) || source.IsPermanent(err) {
		t.Fatalf("before the deadline: %v, want waiting", err)
	}
	after := landing(t, files, true, testDay.End().Add(13*time.Hour))
	if _, err := dayIn(t, after); errors.Is(err, source.ErrWaiting) || !source.IsPermanent(err) || !strings.Contains(err.Error(), "ready_deadline") {
		t.Fatalf("after the deadline: %v, want a failure naming source.files.ready_deadline", err)
	}
}

func TestCSVWithABOMJSONListsEpochSecondsAndNullsParsesAndExtraColumnsAreNoted(t *testing.T) {
	s := landing(t, map[string]string{"customers/region=US/day=2026-11-21/c.csv": customersCSV}, false, testDay.End())
	cds, err := dayIn(t, s)
	if err != nil || len(cds) != 1 {
		t.Fatalf("%v, %d customers", err, len(cds))
	}
	c := cds[0].Customer
	if c.CustomerID != custUS || c.ExternalID != nil || len(c.Products) != 1 || c.Products[0] != "calling" ||
		c.LastAdminLoginAt == nil || c.LastAdminLoginAt.Unix() != 1763000000 || c.CreatedAt.Year() != 2026 {
		t.Fatalf("parsed %+v", c)
	}
	extra, _ := s.Notes(testDay)["extra_columns"].(map[string][]string)
	if len(extra["customers/region=US/day=2026-11-21/c.csv"]) != 1 {
		t.Fatalf("extra columns not noted: %v", s.Notes(testDay))
	}
}

func TestAMalformedRowAndARowUnderAnotherRegionAreRejectedWithFileLineAndReasonNeverKept(t *testing.T) {
	devices := "device_id,customer_id,device_type,product,mac,firmware,location_id,location_name\n" +
		"d1," + custUS + ",desk-phone,Cisco 8845,AABBCCDDEEFF,1.0,L1,HQ\n"
	euDevices := "{\"device_id\":\"d2\",\"customer_id\":\"" + custUS + "\",\"device_type\":\"desk-phone\",\"product\":\"x\",\"mac\":\"m\",\"firmware\":\"f\",\"location_id\":\"l\",\"location_name\":\"n\"}\n" +
		"{\"device_id\":\"d3\",\"customer_id\":\"" + custUS + "\",\"device_type\":\"desk-phone\",\"product\":5}\n" +
		"not json\n"
	subs := "subscription_id,subscriber_id,customer_id,product,is_trial,status,created_at,start_date,end_date,auto_renew,order_id,licenses_total,licenses_assigned,licenses_used_7d\n" +
		"S1,SUB1," + custUS + ",calling,false,active,2026-01-01T00:00:00Z,2026-01-01,2027-01-01,true,O1,ten,1,1\n"
	s := landing(t, map[string]string{
		"customers/region=US/day=2026-11-21/c.csv":     customersCSV,
		"devices/region=US/day=2026-11-21/d.csv":       devices,
		"devices/region=EU/day=2026-11-21/d.jsonl":     euDevices,
		"subscriptions/region=US/day=2026-11-21/s.csv": subs,
	}, false, testDay.End())
	cds, err := dayIn(t, s)
	if err != nil {
		t.Fatal(err)
	}
	var rejected []source.Rejected
	var devicesKept int
	for _, cd := range cds {
		rejected = append(rejected, cd.Rejected...)
		devicesKept += len(cd.Devices)
		if len(cd.Subscriptions) != 0 {
			t.Errorf("a subscription with licenses_total \"ten\" was kept")
		}
	}
	if devicesKept != 1 {
		t.Errorf("%d devices kept, want only d1", devicesKept)
	}
	reasons := map[string]bool{}
	for _, r := range rejected {
		for _, want := range []string{"licenses_total", "is not in US", "is in US", "not a string", "not a JSON object"} {
			if strings.Contains(r.Reason, want) {
				reasons[want] = true
			}
		}
		if r.Entity == "" {
			t.Errorf("rejected row without its entity: %+v", r)
		}
	}
	for _, want := range []string{"licenses_total", "is in US", "not a string", "not a JSON object"} {
		if !reasons[want] {
			t.Errorf("no rejected row says %q: %+v", want, rejected)
		}
	}
	for _, r := range rejected {
		if strings.Contains(r.Reason, "not a JSON object") && (r.File != "devices/region=EU/day=2026-11-21/d.jsonl" || r.Line != 3) {
			t.Errorf("the unparseable line is reported at %s:%d, want d.jsonl:3", r.File, r.Line)
		}
	}
}

func TestBadDeliveriesFailTheDayWithAClearMessage(t *testing.T) {
	good := map[string]string{"customers/region=US/day=2026-11-21/c.csv": customersCSV}
	cases := map[string]struct {
		files  map[string]string
		tamper func(dir string)
		want   string
	}{
		"missing required column": {files: map[string]string{"customers/region=US/day=2026-11-21/c.csv": "customer_id,customer_name\n" + custUS + ",Acme\n"},
			want: "missing required column partner_id (string)"},
		"broken quote": {files: map[string]string{"customers/region=US/day=2026-11-21/c.csv": customersCSV + custEU + ",\"Acme,P1\n"},
			want: "line 3"},
		"a line over the limit": {files: map[string]string{"devices/region=US/day=2026-11-21/d.jsonl": "{\"x\":\"" + strings.Repeat("a", MaxLine+10) + "\"}\n"},
			want: "longer than 16 MiB"},
		"checksum mismatch": {files: good, tamper: func(dir string) {
			os.WriteFile(filepath.Join(dir, "customers/region=US/day=2026-11-21/c.csv"), []byte(strings.ToUpper(customersCSV)), 0o644)
		}, want: "a partial or changed delivery is not ingested"},
		"a path leaving the landing root": {files: good, tamper: func(dir string) {
			m := `{"day":"2026-11-21","files":[{"path":"../../etc/passwd","size":1,"sha256":"x"}]}`
			os.WriteFile(filepath.Join(dir, "_ready", "day=2026-11-21.json"), []byte(m), 0o644)
		}, want: "not a clean relative path inside the landing root"},
	}
	for name, c := range cases {
		s := landing(t, c.files, false, testDay.End())
		if c.tamper != nil {
			c.tamper(s.Root.(*local.Store).Root())
		}
		_, err := dayIn(t, s)
		if err == nil || !source.IsPermanent(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a failure saying %q", name, err, c.want)
		}
	}
}

// putFile delivers one more file into a test landing zone (the source itself
// only reads).
func putFile(t *testing.T, s *Source, key, content string) {
	t.Helper()
	full := filepath.Join(s.Root.(*local.Store).Root(), filepath.FromSlash(key))
	os.MkdirAll(filepath.Dir(full), 0o755)
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestADecimalWithAScaleIntoAnIntegerColumnFailsTheDayNamingFileColumnAndType(t *testing.T) {
	// DuckDB wrote it (testdata/duckdb/make.sql): licenses_total DECIMAL(10,2).
	b, err := os.ReadFile("testdata/duckdb/decimal-scale-2.parquet")
	if err != nil {
		t.Fatal(err)
	}
	const key = "subscriptions/region=US/day=2026-11-21/from-duckdb.parquet"
	s := landing(t, map[string]string{"customers/region=US/day=2026-11-21/c.csv": customersCSV, key: string(b)}, false, testDay.End())
	_, err = dayIn(t, s)
	if err == nil || !source.IsPermanent(err) {
		t.Fatalf("%v, want the day refused", err)
	}
	for _, want := range []string{key, "column licenses_total", "DECIMAL(10,2)", "want integer", "CAST"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q: %v", want, err)
		}
	}
}

func TestTimestampsAreReadAsRFC3339EpochSecondsOrTheTextDuckDBAndPandasWriteWithoutAZoneAsUTC(t *testing.T) {
	want := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC).UnixMicro()
	for _, s := range []string{"2026-01-02T03:04:05.123456Z", "2026-01-02 03:04:05.123456", "2026-01-02 03:04:05.123456+00",
		"2026-01-02 03:04:05.123456+00:00", "2026-01-02T03:04:05.123456", "2026-01-02T04:04:05.123456+01:00"} {
		if got, err := parseTime(s); err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", s, time.UnixMicro(got).UTC(), err, time.UnixMicro(want).UTC())
		}
	}
	if got, err := parseTime("1767323045"); err != nil || got != 1767323045_000_000 {
		t.Errorf("epoch seconds: %d, %v", got, err)
	}
	if _, err := parseTime("yesterday"); err == nil {
		t.Error("\"yesterday\" was taken for a timestamp")
	}
}

func TestParquetTimestampsInMillisecondsAndSparksINT96AreReadAsUTCMicroseconds(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	type millis struct {
		CustomerID   string    `parquet:"customer_id"`
		CustomerName string    `parquet:"customer_name"`
		PartnerID    string    `parquet:"partner_id"`
		ManagedBy    string    `parquet:"managed_by"`
		CreatedAt    time.Time `parquet:"created_at,timestamp(millisecond)"`
	}
	type int96 struct {
		CustomerID   string           `parquet:"customer_id"`
		CustomerName string           `parquet:"customer_name"`
		PartnerID    string           `parquet:"partner_id"`
		ManagedBy    string           `parquet:"managed_by"`
		CreatedAt    deprecated.Int96 `parquet:"created_at"`
	}
	day := created.Unix()/86400 + 2440588
	nanos := uint64(created.Sub(time.Unix(created.Unix()/86400*86400, 0)))
	for name, rows := range map[string]any{
		"millis": []millis{{custUS, "Acme", "P1", "partner", created}},
		"int96":  []int96{{custUS, "Acme", "P1", "partner", deprecated.Int96{uint32(nanos), uint32(nanos >> 32), uint32(day)}}},
	} {
		var buf bytes.Buffer
		var err error
		switch r := rows.(type) {
		case []millis:
			err = parquet.Write(&buf, r)
		case []int96:
			err = parquet.Write(&buf, r)
		}
		if err != nil {
			t.Fatal(err)
		}
		s := landing(t, map[string]string{"customers/region=US/day=2026-11-21/c.parquet": buf.String()}, false, testDay.End())
		cds, err := dayIn(t, s)
		if err != nil || len(cds) != 1 {
			t.Fatalf("%s: %v, %d customers", name, err, len(cds))
		}
		if got := cds[0].Customer.CreatedAt; !got.Equal(created) || got.Location() != time.UTC {
			t.Errorf("%s: created_at %v, want %v", name, got, created)
		}
	}
}
