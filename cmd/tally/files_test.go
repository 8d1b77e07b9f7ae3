package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"tally/internal/testservers"
	"tally/model"
	"tally/periods"
	"tally/source/files"
	"tally/source/files/landingtest"
	"tally/storage/local"
	s3store "tally/storage/s3"
)

// dataFiles lists the usage and report files under a data dir, relative to it.
func dataFiles(t *testing.T, data string, prefixes ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, prefix := range prefixes {
		filepath.Walk(filepath.Join(data, prefix), func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				rel, _ := filepath.Rel(data, p)
				out[rel] = must(os.ReadFile(p))
			}
			return nil
		})
	}
	return out
}

func TestAnExportedDemoDayReadBackByTheFilesSourceGivesByteIdenticalUsageAndReportsInEveryFormat(t *testing.T) {
	const day = "2026-11-21"
	chain := func(cfg string) {
		t.Helper()
		if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", "flex", "--partner", "P093374", "--template", "flex-license-usage", "--cadence", "daily", "--to", "ops@example.com"); code != 0 {
			t.Fatal(stderr)
		}
		if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", "calling", "--partner", "P093374", "--template", "calling-usage-detail", "--cadence", "daily", "--to", "ops@example.com"); code != 0 {
			t.Fatal(stderr)
		}
		for _, job := range []string{"sync-clusters", "license-usage", "reports-daily"} {
			if code, stdout, stderr := run(t, "--config", cfg, "run", job, "--period", day); code != 0 {
				t.Fatalf("%s: exit %d\n%s%s", job, code, stdout, stderr)
			}
		}
	}
	demoCfg, demoData := writeConfig(t, "")
	chain(demoCfg)
	want := dataFiles(t, demoData, "inventory", "calls", "usage", "reports")
	if len(want) < 20 {
		t.Fatalf("the demo run wrote only %d files", len(want))
	}
	// The sorted single-file delivery of each format (tally's export), the
	// same rows shuffled into 3 files per entity and region, and gzip CSV.
	for _, format := range []string{"parquet", "csv", "jsonl", "shuffled parquet", "csv.gz", "jsonl.gz"} {
		landing := filepath.Join(t.TempDir(), "landing")
		exported, _, _ := strings.Cut(strings.TrimPrefix(format, "shuffled "), ".")
		if code, stdout, stderr := run(t, "--config", demoCfg, "source", "export", "--period", day, "--out", landing, "--format", exported); code != 0 || !strings.Contains(stdout, "exported "+day) {
			t.Fatalf("export %s: exit %d\n%s%s", format, code, stdout, stderr)
		}
		switch {
		case strings.HasPrefix(format, "shuffled"):
			shuffled := filepath.Join(t.TempDir(), "shuffled")
			reshape(t, landing, shuffled, day, 3)
			landing = shuffled
		case strings.HasSuffix(format, ".gz"):
			p, _ := periods.Parse(periods.Daily, day)
			if err := landingtest.Gzip(landing, p); err != nil {
				t.Fatal(err)
			}
		}
		cfg, data := writeConfig(t, "")
		os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("source:\n  scale: 20\n"),
			[]byte("source:\n  type: files\n  files:\n    path: "+landing+"\n"), 1), 0o644)
		before := tree(landing)
		chain(cfg)
		if after := tree(landing); after != before {
			t.Fatalf("%s: reading the landing zone wrote into it:\nbefore %s\nafter  %s", format, before, after)
		}
		recs := ledger(t, cfg, "sync-clusters")
		src, _ := recs[0]["notes"].(map[string]any)["source"].(map[string]any)
		if src == nil || len(src["input_files"].([]any)) < 30 {
			t.Fatalf("%s: the files run's ledger does not list its input files: %v", format, recs[0]["notes"])
		}
		// tally's export is sorted by customer: checked as it is read, and then
		// not sorted again; shuffled rows are.
		inOrder, _ := src["sort"].(map[string]any)["delivered_in_order"].([]any)
		if sorted := !strings.HasPrefix(format, "shuffled"); sorted != (len(inOrder) == 9) {
			t.Errorf("%s: the entities delivered in order, the ledger says: %v", format, inOrder)
		}
		got := dataFiles(t, data, "inventory", "calls", "usage", "reports")
		var diff []string
		for k, b := range want {
			if !bytes.Equal(got[k], b) {
				diff = append(diff, k)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				diff = append(diff, k+" (extra)")
			}
		}
		sort.Strings(diff)
		if len(diff) > 0 {
			t.Errorf("%s: %d of %d files differ from the demo run's: %v", format, len(diff), len(want), diff)
		}
	}
}

// reshape writes landing's day into out shuffled into parts files per entity
// and region (rows in random order).
func reshape(t *testing.T, landing, out, day string, parts int) {
	t.Helper()
	p, _ := periods.Parse(periods.Daily, day)
	in, err := local.Open(landing)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := local.New(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := landingtest.Shuffle(context.Background(), in, dst, p, parts, 7); err != nil {
		t.Fatal(err)
	}
}

func TestTheDuckDBWrittenDeliveriesGiveTheSameInventoryFilesByteForByte(t *testing.T) {
	// source/files/testdata/duckdb: the demo day at scale 6, rewritten by
	// DuckDB (make.sql): shuffled, UUID ids, DECIMAL and INTEGER counts,
	// TIMESTAMP without a time zone; and as CSV with its columns reversed.
	const day = "2026-11-21"
	sync := func(cfg string) {
		t.Helper()
		if code, stdout, stderr := run(t, "--config", cfg, "run", "sync-clusters", "--period", day); code != 0 {
			t.Fatalf("sync: exit %d\n%s%s", code, stdout, stderr)
		}
	}
	demoCfg, demoData := writeConfig(t, "")
	os.WriteFile(demoCfg, bytes.Replace(must(os.ReadFile(demoCfg)), []byte("scale: 20"), []byte("scale: 6"), 1), 0o644)
	sync(demoCfg)
	want := dataFiles(t, demoData, "inventory", "calls")
	if len(want) < 25 {
		t.Fatalf("the demo run wrote only %d files", len(want))
	}
	for _, delivery := range []string{"parquet", "csv"} {
		landing, _ := filepath.Abs(filepath.Join("..", "..", "source", "files", "testdata", "duckdb", delivery))
		cfg, data := writeConfig(t, "")
		os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("source:\n  scale: 20\n"),
			[]byte("source:\n  type: files\n  files:\n    path: "+landing+"\n"), 1), 0o644)
		sync(cfg)
		got := dataFiles(t, data, "inventory", "calls")
		var diff []string
		for k, b := range want {
			if !bytes.Equal(got[k], b) {
				diff = append(diff, k)
			}
		}
		if len(got) != len(want) || len(diff) > 0 {
			sort.Strings(diff)
			t.Errorf("DuckDB %s: %d files (want %d), differing from the demo run's: %v", delivery, len(got), len(want), diff)
		}
		if q := dataFiles(t, data, "quarantine"); len(q) > 0 {
			t.Errorf("DuckDB %s: rows were quarantined: %v", delivery, keysOf(q))
		}
	}
}

func TestEveryDeliveredRowIsWrittenOrQuarantinedAndTheLedgerSaysHowManyOfEach(t *testing.T) {
	const day = "2026-11-21"
	demoCfg, _ := writeConfig(t, "")
	os.WriteFile(demoCfg, bytes.Replace(must(os.ReadFile(demoCfg)), []byte("scale: 20"), []byte("scale: 20\n  bad_row_rate: 0.05"), 1), 0o644)
	landing := filepath.Join(t.TempDir(), "landing")
	if code, _, stderr := run(t, "--config", demoCfg, "source", "export", "--period", day, "--out", landing, "--format", "csv"); code != 0 {
		t.Fatal(stderr)
	}
	// Rows the source itself refuses, beside the demo's malformed ones (which
	// parse, and sync's checks quarantine): a count that is not a number, and a
	// device delivered under another region than its customer's.
	appendLine := func(rel, line string) {
		f, err := os.OpenFile(filepath.Join(landing, rel), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(line + "\n")
		f.Close()
	}
	usCustomer := strings.Split(strings.Split(string(must(os.ReadFile(filepath.Join(landing, "customers/region=US/day="+day+"/part-0.csv")))), "\n")[1], ",")[0]
	appendLine("orders/region=US/day="+day+"/part-0.csv", "O-bad,"+usCustomer+",P093374,S-1,knowledge_worker,lots")
	appendLine("devices/region=EU/day="+day+"/part-0.csv", "dev-x,"+usCustomer+",,,desk-phone,Cisco 8845,AABBCCDDEEFF,1.0,L1,HQ,,")
	p, _ := periods.Parse(periods.Daily, day)
	if err := landingtest.Remanifest(landing, p); err != nil {
		t.Fatal(err)
	}
	cfg, _ := writeConfig(t, "")
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("source:\n  scale: 20\n"),
		[]byte("source:\n  type: files\n  files:\n    path: "+landing+"\n"), 1), 0o644)
	if code, stdout, stderr := run(t, "--config", cfg, "run", "sync-clusters", "--period", day); code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, stdout, stderr)
	}
	rows, _ := ledger(t, cfg, "sync-clusters")[0]["notes"].(map[string]any)["rows"].(map[string]any)
	if len(rows) != 10 {
		t.Fatalf("the ledger's rows note has %d entities, want all 10: %v", len(rows), rows)
	}
	quarantined := 0.0
	for entity, v := range rows {
		r := v.(map[string]any)
		d, w, q := r["delivered"].(float64), r["written"].(float64), r["quarantined"].(float64)
		quarantined += q
		if entity == "partners" {
			if r["note"] == nil || w < 1 {
				t.Errorf("partners: %v, want them written and a note saying they are de-duplicated and written to every region", r)
			}
			continue
		}
		if d == 0 || w+q != d {
			t.Errorf("%s: delivered %v, written %v + quarantined %v = %v", entity, d, w, q, w+q)
		}
	}
	for _, entity := range []string{"orders", "devices"} {
		if rows[entity].(map[string]any)["quarantined"].(float64) < 1 {
			t.Errorf("%s: the source's refused row is not counted as quarantined: %v", entity, rows[entity])
		}
	}
	if quarantined < 10 {
		t.Errorf("only %v rows quarantined: the demo's malformed rows did not reach the check", quarantined)
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestAnUndeliveredDayIsWaitingExit0WithNoAlertUntilItsDeadlineThenFails(t *testing.T) {
	landing := t.TempDir()
	cfg, _ := writeConfig(t, "")
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("source:\n  scale: 20\n"),
		[]byte("source:\n  type: files\n  files:\n    path: "+landing+"\n"), 1), 0o644)
	// The in-process clock reads 2026-11-22T00:20Z: 20 minutes after the day ended.
	code, stdout, stderr := run(t, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21")
	if code != 0 || !strings.Contains(stdout, "waiting") {
		t.Fatalf("sync before the deadline: exit %d, want 0 and waiting\n%s%s", code, stdout, stderr)
	}
	if recs := ledger(t, cfg, "sync-clusters"); len(recs) != 1 || recs[0]["status"] != "waiting" {
		t.Fatalf("ledger: %v, want one waiting attempt", recs)
	}
	code, stdout, stderr = run(t, "--config", cfg, "run", "license-usage", "--period", "2026-11-21")
	if code != 0 || !strings.Contains(stdout+stderr, "upstream sync-clusters 2026-11-21 is waiting") {
		t.Fatalf("downstream: exit %d, want 0 and \"upstream … waiting\"\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, "--config", cfg, "plan", "--from", "2026-11-21", "--to", "2026-11-21")
	if !strings.Contains(stdout, "waiting") {
		t.Fatalf("plan does not show the waiting day:\n%s", stdout)
	}
	// Past source.files.ready_deadline the day fails (and alerts, like any failure).
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("    path: "+landing+"\n"), []byte("    path: "+landing+"\n    ready_deadline: 10m\n"), 1), 0o644)
	code, stdout, stderr = run(t, "--config", cfg, "run", "sync-clusters", "--period", "2026-11-21")
	if code != exitFailed || !strings.Contains(stdout+stderr, "source.files.ready_deadline") {
		t.Fatalf("after the deadline: exit %d, want 1 naming the deadline\n%s%s", code, stdout, stderr)
	}
}

func TestAChangedDeliveryMakesTheDayAndItsDownstreamStaleAndBackfillStaleRerunsExactlyThose(t *testing.T) {
	demoCfg, _ := writeConfig(t, "")
	landing := filepath.Join(t.TempDir(), "landing")
	for _, d := range []string{"2026-11-20", "2026-11-21"} {
		if code, _, stderr := run(t, "--config", demoCfg, "source", "export", "--period", d, "--out", landing, "--format", "csv"); code != 0 {
			t.Fatal(stderr)
		}
	}
	cfg, _ := writeConfig(t, "")
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("source:\n  scale: 20\n"),
		[]byte("source:\n  type: files\n  files:\n    path: "+landing+"\n"), 1), 0o644)
	if code, stdout, stderr := run(t, "--config", cfg, "backfill", "license-usage", "--from", "2026-11-20", "--to", "2026-11-21"); code != 0 {
		t.Fatalf("backfill: %s%s", stdout, stderr)
	}
	// The partner re-delivers the 21st's devices (one row changed) and its manifest.
	devices := filepath.Join(landing, "devices/region=US/day=2026-11-21/part-0.csv")
	b := must(os.ReadFile(devices))
	os.WriteFile(devices, bytes.Replace(b, []byte("desk-phone"), []byte("analog"), 1), 0o644)
	_, stdout, _ := run(t, "--config", cfg, "plan", "--from", "2026-11-20", "--to", "2026-11-21")
	for _, want := range []string{"changed after the run used it", "upstream sync-clusters 2026-11-21 is stale"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("plan does not say %q:\n%s", want, stdout)
		}
	}
	var staleLines []string
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "stale" {
			staleLines = append(staleLines, f[0])
		}
	}
	if len(staleLines) != 2 || staleLines[0] != "2026-11-21" || staleLines[1] != "2026-11-21" {
		t.Fatalf("plan: want the 21st's sync and usage stale, nothing else (%v):\n%s", staleLines, stdout)
	}
	// The re-delivery's manifest, then backfill --stale re-runs exactly those.
	rewriteManifest(t, landing, "2026-11-21")
	for _, job := range []string{"sync-clusters", "license-usage"} {
		code, stdout, stderr := run(t, "--config", cfg, "backfill", job, "--from", "2026-11-20", "--to", "2026-11-21", "--stale")
		if code != 0 || !strings.Contains(stdout, "1 stale "+job+" periods") || !strings.Contains(stdout, "1 periods: 1 run") {
			t.Fatalf("backfill %s --stale: exit %d\n%s%s", job, code, stdout, stderr)
		}
	}
	_, stdout, _ = run(t, "--config", cfg, "plan", "--from", "2026-11-20", "--to", "2026-11-21")
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "stale" {
			t.Fatalf("still stale after backfill --stale: %q\n%s", line, stdout)
		}
	}
}

// rewriteManifest recomputes a day's manifest from its files, as a partner's
// delivery does after changing them.
func rewriteManifest(t *testing.T, landing, day string) {
	t.Helper()
	path := filepath.Join(landing, "_ready", "day="+day+".json")
	var m files.Manifest
	if err := json.Unmarshal(must(os.ReadFile(path)), &m); err != nil {
		t.Fatal(err)
	}
	for i, f := range m.Files {
		b := must(os.ReadFile(filepath.Join(landing, f.Path)))
		sum := sha256.Sum256(b)
		m.Files[i].Size, m.Files[i].SHA256 = int64(len(b)), hex.EncodeToString(sum[:])
	}
	b, _ := json.Marshal(m)
	os.WriteFile(path, b, 0o644)
}

func TestTheFilesSourceReadsALandingZoneInS3LikeOneOnDisk(t *testing.T) {
	srv := testservers.NeedS3(t)
	const day = "2026-11-21"
	demoCfg, demoData := writeConfig(t, "")
	if code, _, stderr := run(t, "--config", demoCfg, "run", "license-usage", "--period", day); code != 0 {
		t.Fatal(stderr)
	}
	local := filepath.Join(t.TempDir(), "landing")
	if code, _, stderr := run(t, "--config", demoCfg, "source", "export", "--period", day, "--out", local, "--format", "jsonl"); code != 0 {
		t.Fatal(stderr)
	}
	bucket := randomBucket("landing-")
	st, err := s3store.New(context.Background(), s3store.Config{Endpoint: srv.Endpoint, Bucket: bucket, Prefix: "partner-x", PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	upload := func(manifest bool) {
		filepath.Walk(local, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() || strings.Contains(p, "/.") || strings.Contains(p, "/_ready/") != manifest {
				return nil
			}
			rel, _ := filepath.Rel(local, p)
			f, _ := os.Open(p)
			defer f.Close()
			if _, err := st.Put(context.Background(), filepath.ToSlash(rel), f); err != nil {
				t.Fatal(err)
			}
			return nil
		})
	}
	upload(false) // the files, but not yet the manifest
	dir := t.TempDir()
	keyFile, secretFile := filepath.Join(dir, "key"), filepath.Join(dir, "secret")
	os.WriteFile(keyFile, []byte(srv.AccessKey), 0o600)
	os.WriteFile(secretFile, []byte(srv.SecretKey), 0o600)
	cfg, data := writeConfig(t, "")
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("source:\n  scale: 20\n"), []byte(fmt.Sprintf(
		"source:\n  type: files\n  files:\n    s3:\n      endpoint: %s\n      bucket: %s\n      prefix: partner-x\n      path_style: true\n      access_key_file: %s\n      secret_key_file: %s\n",
		srv.Endpoint, bucket, keyFile, secretFile)), 1), 0o644)
	if code, stdout, stderr := run(t, "--config", cfg, "run", "license-usage", "--period", day); code != 0 || !strings.Contains(stdout+stderr, "waiting") {
		t.Fatalf("before the manifest: exit %d, want 0 and waiting\n%s%s", code, stdout, stderr)
	}
	upload(true)
	if code, stdout, stderr := run(t, "--config", cfg, "run", "license-usage", "--period", day); code != 0 {
		t.Fatalf("the chain on an S3 landing zone: exit %d\n%s%s", code, stdout, stderr)
	}
	want, got := dataFiles(t, demoData, "usage"), dataFiles(t, data, "usage")
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("%d usage files from S3, %d from the demo", len(got), len(want))
	}
	for k, b := range want {
		if !bytes.Equal(got[k], b) {
			t.Errorf("%s differs from the demo run's", k)
		}
	}
	// A re-delivered object makes the day and its downstream stale, as on disk.
	if _, err := st.Put(context.Background(), "devices/region=US/day="+day+"/part-0.jsonl", strings.NewReader("{}\n")); err != nil {
		t.Fatal(err)
	}
	if _, stdout, _ := run(t, "--config", cfg, "plan", "--from", day, "--to", day); !strings.Contains(stdout, "changed after the run used it") || !strings.Contains(stdout, "upstream sync-clusters "+day+" is stale") {
		t.Fatalf("plan after a changed S3 delivery:\n%s", stdout)
	}
}

func TestADedicatedInstanceDayFromCSVJSONLinesAndCUCMCallRecordsGivesItsLegsQualityAndCallingUsageDetail(t *testing.T) {
	const cust = "11111111-1111-4111-8111-111111111111"
	at := func(s string) int64 { t, _ := time.Parse(time.RFC3339, s); return t.Unix() }
	cdr := func(call, origLeg, destLeg int, start string, duration int, orig, dest string) string {
		return fmt.Sprintf("1,1,%d,%d,%d,%d,\"%s\",\"%s\",%d\n", call, origLeg, at(start), destLeg, orig, dest, duration)
	}
	cdrHead := "\"cdrRecordType\",\"globalCallID_callManagerId\",\"globalCallID_callId\",\"origLegCallIdentifier\",\"dateTimeOrigination\",\"destLegIdentifier\",\"origDeviceName\",\"destDeviceName\",\"duration\"\nINTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,VARCHAR(129),VARCHAR(129),INTEGER\n"
	cmrHead := "\"cdrRecordType\",\"globalCallID_callManagerId\",\"globalCallID_callId\",\"callIdentifier\",\"numberPacketsReceived\",\"numberPacketsLost\",\"jitter\",\"latency\",\"deviceName\"\nINTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,VARCHAR(129)\n"
	landing := t.TempDir()
	put := func(p, content string) {
		full := filepath.Join(landing, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte(content), 0o644)
	}
	d := "day=2026-11-21"
	put("partners/region=US/"+d+"/p.csv", "partner_id,partner_name\nP1,Partner One\n")
	put("customers/region=US/"+d+"/c.csv", "customer_id,customer_name,partner_id,managed_by,products,created_at\n"+cust+",Acme,P1,partner,\"[\"\"dedicated-instance\"\",\"\"calling\"\"]\",2026-01-02T00:00:00Z\n")
	put("clusters/region=US/"+d+"/c.jsonl", `{"cluster_id":"CL1","customer_id":"`+cust+`","fqdn":"cucm.acme.example","version":"14.0"}`+"\n")
	put("servers/region=US/"+d+"/s.jsonl", `{"server_id":"CL1-pub","cluster_id":"CL1","customer_id":"`+cust+`","host":"cucm1.acme.example","role":"publisher","version":"14.0"}`+"\n")
	put("users/region=US/"+d+"/u.jsonl", `{"user_id":"22222222-2222-4222-8222-222222222222","customer_id":"`+cust+`","cluster_id":"CL1","email":"alice@acme.example","has_dn":true,"has_snr":false,"has_extension_mobility":false,"has_voicemail":true,"has_mobile_client":false,"has_directory_profile":false}`+"\n")
	put("devices/region=US/"+d+"/d.csv", "device_id,customer_id,cluster_id,user_id,device_type,product,mac,firmware,location_id,location_name\n"+
		"SEPAABBCCDDEEFF,"+cust+",CL1,22222222-2222-4222-8222-222222222222,desk-phone,Cisco 8845,AABBCCDDEEFF,1,L1,HQ\n"+
		"CSFALICE,"+cust+",CL1,22222222-2222-4222-8222-222222222222,soft-client,Jabber,,1,L1,HQ\n"+
		"branch-phone,"+cust+",CL1,,desk-phone,Cisco 7841,001122334455,1,L2,Branch\n"+
		"broken-phone,"+cust+",CL1,,desk-phone,x,nonsense-mac,1,L2,Branch,one too many\n")
	rewriteManifestOf(t, landing, "2026-11-21")
	put("cdr/cluster=CL1/cdr_StandAloneCluster_01_202611211000_1", cdrHead+
		cdr(100, 11, 12, "2026-11-21T09:00:00Z", 120, "SEPAABBCCDDEEFF", "CSFALICE")+ // internal, two legs
		cdr(101, 13, 14, "2026-11-21T10:00:00Z", 60, "SEP001122334455", "SIPTrunk-PSTN")+ // outbound; a trunk side is not a leg
		cdr(102, 15, 16, "2026-11-21T11:00:00Z", 30, "SEPFFFFFFFFFFFF", "SIPTrunk-PSTN")+ // an unknown device
		"1,1,\"unterminated\n") // a malformed line
	put("cdr/cluster=CL1/cdr_StandAloneCluster_01_202611211000_2", cdrHead+cdr(100, 11, 12, "2026-11-21T09:00:00Z", 120, "SEPAABBCCDDEEFF", "CSFALICE")) // re-delivered
	put("cdr/cluster=CL1/cdr_StandAloneCluster_01_202611220015_3", cdrHead+cdr(103, 17, 18, "2026-11-21T23:50:00Z", 1500, "CSFALICE", "SIPTrunk-PSTN"))  // across midnight
	put("cdr/cluster=CL1/cmr_StandAloneCluster_01_202611211000_1", cmrHead+
		"2,1,100,11,990,10,200,0,\"SEPAABBCCDDEEFF\"\n"+ // jitter 200 ms: poor (§7: > 150)
		"2,1,100,12,1000,0,10,40,\"CSFALICE\"\n"+
		"2,1,999,99,1000,0,10,40,\"CSFALICE\"\n") // a CMR without its CDR
	put("cdr/cluster=CLX/cdr_CLX_01_202611211000_1", cdrHead+cdr(1, 1, 2, "2026-11-21T09:00:00Z", 10, "SEP000000000000", "x")) // an unknown cluster

	cfg, data := writeConfig(t, "")
	os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("source:\n  scale: 20\n"),
		[]byte("source:\n  type: files\n  empty_guard: false\n  files:\n    path: "+landing+"\n"), 1), 0o644)
	if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", "calling", "--partner", "P1", "--template", "calling-usage-detail", "--cadence", "daily", "--to", "voice@example.com"); code != 0 {
		t.Fatal(stderr)
	}
	if code, stdout, stderr := run(t, "--config", cfg, "run", "reports-daily", "--period", "2026-11-21"); code != 0 {
		t.Fatalf("the chain: exit %d\n%s%s", code, stdout, stderr)
	}
	legs, err := pqRead[model.CallLeg](filepath.Join(data, "calls/region=US/day=2026-11-21/part-0.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	poor := 0
	for _, l := range legs {
		if l.AudioJitterMs > 150 || l.AudioLatencyMs > 400 || l.AudioLossPct > 5 {
			poor++
		}
	}
	if len(legs) != 4 || poor != 1 {
		t.Fatalf("%d legs (%d poor), want 4 legs of calls 100, 101 and 103, one poor", len(legs), poor)
	}
	// Quarantine: the device row with a field too many, the unknown device, the
	// malformed line and the CMR without a CDR (the unknown cluster has no
	// region: the ledger lists it).
	var quarantined int
	for _, f := range must2(filepath.Glob(filepath.Join(data, "quarantine/*/region=US/day=2026-11-21/*"))) {
		quarantined += bytes.Count(must(os.ReadFile(f)), []byte("\n"))
	}
	if quarantined != 4 {
		t.Errorf("quarantined %d rows, want exactly the 4 bad ones", quarantined)
	}
	recs := ledger(t, cfg, "sync-clusters")
	notes := fmt.Sprint(recs[0]["notes"])
	if !strings.Contains(notes, "CLX is not in the day's clusters inventory") {
		t.Errorf("the unknown cluster's record is not in the ledger: %s", notes)
	}
	csvs := must2(filepath.Glob(filepath.Join(data, "reports/region=US/calling-usage-detail/daily/2026-11-21/*.csv")))
	if len(csvs) != 1 {
		t.Fatalf("calling usage detail files: %v", csvs)
	}
	text := string(must(os.ReadFile(csvs[0])))
	// Per location: L1 has calls 100 (two legs, one poor) and 103; L2 has call 101.
	for _, want := range []string{"Acme," + cust + ",L1,2,3,1,", "Acme," + cust + ",L2,1,1,0,"} {
		if !strings.Contains(text, want) {
			t.Errorf("Calling Usage Detail lacks %q:\n%s", want, text)
		}
	}
}

func must2[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// rewriteManifestOf writes a day's manifest listing every file under the day's
// partitions, as a delivery does last.
func rewriteManifestOf(t *testing.T, landing, day string) {
	t.Helper()
	m := files.Manifest{Day: day}
	filepath.Walk(landing, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(landing, p)
		if err != nil || fi.IsDir() || !strings.Contains(rel, "/day="+day+"/") {
			return nil
		}
		b := must(os.ReadFile(p))
		sum := sha256.Sum256(b)
		m.Files = append(m.Files, files.ManifestFile{Path: filepath.ToSlash(rel), Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])})
		return nil
	})
	b, _ := json.Marshal(m)
	os.MkdirAll(filepath.Join(landing, "_ready"), 0o755)
	os.WriteFile(filepath.Join(landing, "_ready", "day="+day+".json"), b, 0o644)
}

// tree lists every path under dir with its size (to see that nothing changed).
func tree(dir string) string {
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			out = append(out, fmt.Sprintf("%s:%d", p, fi.Size()))
		}
		return nil
	})
	return strings.Join(out, " ")
}

// spillFiles are the files pid holds open in dir (deleted ones included).
func spillFiles(pid int, dir string) int {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}

func TestAFilesSourceSyncKilledMidSpillLeavesNoTempFileAndTheNextRunWritesTheSameOutputs(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc to see the spill files a process holds")
	}
	const day = "2026-11-21"
	demoCfg, _ := writeConfig(t, "")
	os.WriteFile(demoCfg, bytes.Replace(must(os.ReadFile(demoCfg)), []byte("scale: 20"), []byte("scale: 1500"), 1), 0o644)
	exported := filepath.Join(t.TempDir(), "exported")
	if code, _, stderr := run(t, "--config", demoCfg, "source", "export", "--period", day, "--out", exported); code != 0 {
		t.Fatal(stderr)
	}
	landing := filepath.Join(t.TempDir(), "landing")
	reshape(t, exported, landing, day, 4) // shuffled: every entity is sorted on disk
	filesConfig := func() (cfg, data, tmp string) {
		cfg, data = writeConfig(t, "")
		tmp = t.TempDir()
		os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("storage:\n"), []byte("storage:\n  tmp_dir: "+tmp+"\n"), 1), 0o644)
		os.WriteFile(cfg, bytes.Replace(must(os.ReadFile(cfg)), []byte("source:\n  scale: 20\n"),
			[]byte("source:\n  type: files\n  files:\n    path: "+landing+"\n"), 1), 0o644)
		return cfg, data, tmp
	}
	cleanCfg, cleanData, _ := filesConfig()
	if out, err := tally(cleanCfg, "run", "sync-clusters", "--period", day).CombinedOutput(); err != nil {
		t.Fatalf("the uninterrupted run: %v\n%s", err, out)
	}
	want := dataFiles(t, cleanData, "inventory", "calls")

	cfg, data, tmp := filesConfig()
	for round := 0; round < 3; round++ {
		if round > 0 {
			time.Sleep(2500 * time.Millisecond) // the killed runner's lease (runner.lease_ttl 2s) expires
		}
		cmd := tally(cfg, "run", "sync-clusters", "--period", day, "--force")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		defer func() {
			if t.Failed() {
				t.Logf("round %d's output:\n%s", round, stderr.String())
			}
		}()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it once it holds sorted runs on disk (a few, then more each round).
		waitFor(t, "the sync's spill files", 60*time.Second, func() bool { return spillFiles(cmd.Process.Pid, tmp) > 1+round })
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if left, _ := os.ReadDir(tmp); len(left) > 0 {
			t.Fatalf("round %d: the killed sync left %d files in storage.tmp_dir: %v", round, len(left), left[0].Name())
		}
	}
	// The next run (once the dead runner's lease has expired) succeeds with
	// the same outputs.
	var out []byte
	var err error
	waitFor(t, "the next run to take over the dead runner's lease", 30*time.Second, func() bool {
		out, err = tally(cfg, "run", "sync-clusters", "--period", day, "--force").CombinedOutput()
		return exitOf(err) != exitHeld
	})
	if err != nil {
		t.Fatalf("the next run: %v\n%s", err, out)
	}
	got := dataFiles(t, data, "inventory", "calls")
	if len(got) != len(want) {
		t.Fatalf("the next run wrote %d files, the uninterrupted one %d", len(got), len(want))
	}
	for k, b := range want {
		if !bytes.Equal(got[k], b) {
			t.Errorf("%s differs from the uninterrupted run's", k)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Fatalf("the successful run left %d files in storage.tmp_dir", len(left))
	}
}
