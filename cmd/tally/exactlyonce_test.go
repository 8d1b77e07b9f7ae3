package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/net/html"

	"tally/internal/testservers"
	"tally/jobs"
	"tally/runner"
	s3store "tally/storage/s3"
)

func TestAPeriodThatHasNotEndedIsRefusedWithExit2(t *testing.T) {
	cfg, data := writeConfig(t, "")
	// The in-process clock reads 2026-11-22T00:20:00Z.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "sync-clusters", "--period", "2026-11-22"}, "2026-11-22 ends 2026-11-23T00:00:00Z"},
		{[]string{"run", "sync-clusters", "--period", "2026-11-23"}, "2026-11-23 ends 2026-11-24T00:00:00Z"},
		{[]string{"run", "sync-clusters", "--period", "9999-12-31"}, "has not ended"},
		{[]string{"run", "reports-monthly", "--period", "2026-11"}, "2026-11 ends 2026-12-01T00:00:00Z"},
		{[]string{"run", "sync-clusters", "--period", ""}, "empty period"},
		{[]string{"backfill", "sync-clusters", "--from", "2026-11-20", "--to", "2026-11-22"}, "has not ended"},
		{[]string{"backfill", "sync-clusters", "--from", "2026-11-01", "--to", "2026-11-02", "--shard", "0/2x"}, "bad --shard"},
		{[]string{"backfill", "sync-clusters", "--from", "1900-01-01", "--to", "2026-11-20"}, "runner.max_backfill_periods (1000)"},
	} {
		code, stdout, stderr := run(t, append([]string{"--config", cfg}, c.args...)...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("tally %s: exit %d, want 2 saying %q\n%s%s", strings.Join(c.args, " "), code, c.want, stdout, stderr)
		}
	}
	if runs, _ := filepath.Glob(filepath.Join(data, "_runs", "*", "*", "*.json")); len(runs) != 0 {
		t.Fatalf("refused runs left ledger entries: %v", runs)
	}
}

func TestKubeletServiceLinkVariablesAreIgnoredButAnyOtherUnknownTallyVariableIsRefused(t *testing.T) {
	cfg, _ := writeConfig(t, "")
	for _, c := range []struct {
		env  string
		code int
	}{
		{"TALLY_SERVE_PORT=tcp://10.0.0.1:8080", 0},
		{"TALLY_SERVE_SERVICE_HOST=10.0.0.1", 0},
		{"TALLY_SERVE_SERVICE_PORT_HTTP=8080", 0},
		{"TALLY_SERVE_PORT_8080_TCP_ADDR=10.0.0.1", 0},
		{"TALLY_SERVE_LISTEN=:9999", 0},  // a known key is still parsed
		{"TALLY_SERVE_CATCH_UP=many", 2}, // and still checked
		{"TALLY_SERVE_LISTN=:9999", 2},   // a typo is not a service link
		{"TALLY_STORAGE_BUCKETT=x", 2},   // nor is this
	} {
		cmd := tally(cfg, "jobs")
		cmd.Env = append(cmd.Env, c.env)
		out, err := cmd.CombinedOutput()
		if code := exitOf(err); code != c.code {
			t.Errorf("env %s tally jobs: exit %d, want %d\n%s", c.env, code, c.code, out)
		}
	}
}

// eml is one .eml file read the way a mail client reads it.
type eml struct {
	header     mail.Header
	subject    string
	text, html string
	inline     []inlinePart // non-text parts: the chart
}

type inlinePart struct {
	contentType, contentID string
	data                   []byte
}

// opsGroup is the claim group (and outbox file name) of the scheduled email
// to ops@example.com: each recipient gets a message of its own.
var opsGroup = jobs.RecipientGroup(runner.DefaultGroup, "ops@example.com")

func readEML(t *testing.T, path string) eml {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(must(os.ReadFile(path))))
	if err != nil {
		t.Fatal(err)
	}
	e := eml{header: msg.Header}
	e.subject, _ = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	var walk func(r io.Reader, h textproto.MIMEHeader)
	walk = func(r io.Reader, h textproto.MIMEHeader) {
		mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(r, params["boundary"])
			for {
				p, err := mr.NextPart()
				if err != nil {
					return
				}
				walk(p, p.Header)
			}
		}
		if strings.EqualFold(h.Get("Content-Transfer-Encoding"), "base64") {
			r = base64.NewDecoder(base64.StdEncoding, r)
		}
		b, _ := io.ReadAll(r)
		switch mt {
		case "text/plain":
			e.text = string(b)
		case "text/html":
			e.html = string(b)
		default:
			e.inline = append(e.inline, inlinePart{contentType: mt, contentID: strings.Trim(h.Get("Content-Id"), "<>"), data: b})
		}
	}
	walk(msg.Body, textproto.MIMEHeader(msg.Header))
	return e
}

// hrefs are every link of an HTML document, as a browser parses it.
func hrefs(t *testing.T, doc string) []string {
	t.Helper()
	root, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var visit func(n *html.Node)
	visit = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "a" {
			for _, a := range n.Attr {
				if a.Key == "href" {
					out = append(out, a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			visit(c)
		}
	}
	visit(root)
	return out
}

func TestEveryLinkOfAnEmailOnLocalStorageWorksInTheHTMLPartAndTheTextPart(t *testing.T) {
	cfg, data := writeConfig(t, "")
	if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", "flex", "--partner", "P093374", "--template", "flex-license-usage", "--cadence", "daily", "--to", "ops@example.com"); code != 0 {
		t.Fatal(stderr)
	}
	if code, stdout, stderr := run(t, "--config", cfg, "run", "reports-daily", "--period", "2026-11-21"); code != 0 {
		t.Fatalf("run: %s%s", stdout, stderr)
	}
	path := filepath.Join(data, "outbox", "reports-daily", "2026-11-21", "flex", opsGroup+"-g1.eml")
	e := readEML(t, path)
	links := hrefs(t, e.html)
	if len(links) == 0 {
		t.Fatalf("the HTML part has no links:\n%s", e.html)
	}
	for _, h := range links {
		u, err := url.Parse(h)
		if err != nil || u.Scheme != "file" {
			t.Fatalf("href %q is not a working file:// link", h)
		}
		if _, err := os.Stat(u.Path); err != nil {
			t.Errorf("href %q: %v", h, err)
		}
		if !strings.Contains(e.text, h) {
			t.Errorf("the text part lacks the HTML part's link %s", h)
		}
	}
	for h, want := range map[string]string{"X-Tally-Job": "reports-daily", "X-Tally-Period": "2026-11-21", "X-Tally-Subscription": "flex",
		"Message-Id": "<reports-daily.2026-11-21.flex." + opsGroup + "-g1@tally>"} {
		if got := e.header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
}

func TestASubscriptionTestNeverTakesOverTheScheduledPeriodAndSaysTestInItsSubject(t *testing.T) {
	cfg, data := writeConfig(t, "")
	for _, id := range []string{"devices-a", "devices-b"} {
		if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--id", id, "--partner", "P093374", "--template", "devices", "--cadence", "daily", "--to", "ops@example.com"); code != 0 {
			t.Fatal(stderr)
		}
	}
	// A test between 00:00 and 01:00 UTC: the latest period is the one the
	// scheduled 01:00 run is about to do.
	if code, stdout, stderr := run(t, "--config", cfg, "subscriptions", "test", "devices-a"); code != 0 {
		t.Fatalf("subscriptions test: %s%s", stdout, stderr)
	}
	tests, _ := filepath.Glob(filepath.Join(data, "outbox", "test-reports-daily", "2026-11-21", "*", "*.eml"))
	if len(tests) != 1 || !strings.HasPrefix(readEML(t, tests[0]).subject, "[test] ") {
		t.Fatalf("test emails %v: want one, its subject starting [test]", tests)
	}
	if files, _ := filepath.Glob(filepath.Join(data, "test", "reports", "region=*", "devices", "daily", "2026-11-21", "*.csv")); len(files) == 0 {
		t.Fatal("the test's files are not under test/reports/")
	}
	code, stdout, stderr := run(t, "--config", cfg, "run", "reports-daily", "--period", "2026-11-21")
	if code != 0 || strings.Contains(stdout, "already complete") {
		t.Fatalf("the scheduled run after a test: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, id := range []string{"devices-a", "devices-b"} {
		e := readEML(t, filepath.Join(data, "outbox", "reports-daily", "2026-11-21", id, opsGroup+"-g1.eml"))
		if strings.HasPrefix(e.subject, "[test]") {
			t.Errorf("%s's scheduled email is marked as a test", id)
		}
	}
}

func TestAFreshServeExportsTheExpectedPeriodOfEveryJob(t *testing.T) {
	cfg, _ := writeConfig(t, "serve:\n  catch_up: 0\n")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	srv := tally(cfg, "serve", "--listen", addr)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Wait()
	defer srv.Process.Signal(os.Interrupt)
	var body string
	waitFor(t, "/metrics", 20*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	for _, job := range []string{"sync-clusters", "license-usage", "analytics", "reports-daily", "reports-weekly", "reports-monthly"} {
		if !strings.Contains(body, fmt.Sprintf(`tally_period_expected_timestamp_seconds{job="%s"}`, job)) {
			t.Errorf("no expected-period series for %s on a fresh ledger:\n%s", job, body)
		}
	}
}

func s3Config(t *testing.T, srv *testservers.S3, bucket, key, secret string) string {
	dir := t.TempDir()
	keyFile, secretFile := filepath.Join(dir, "key"), filepath.Join(dir, "secret")
	os.WriteFile(keyFile, []byte(key), 0o600)
	os.WriteFile(secretFile, []byte(secret), 0o600)
	cfg := filepath.Join(dir, "tally.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("storage:\n  type: s3\n  request_timeout: 10s\n  s3:\n    endpoint: %s\n    bucket: %s\n    prefix: tally\n    path_style: true\n    access_key_file: %s\n    secret_key_file: %s\nsource:\n  scale: 5\nlog:\n  format: json\n",
		srv.Endpoint, bucket, keyFile, secretFile)), 0o644)
	return cfg
}

func randomBucket(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func TestAMissingBucketAndRefusedCredentialsAreConfigErrorsExit2NamingTheSetting(t *testing.T) {
	srv := testservers.NeedS3(t)
	bucket := randomBucket("exists-")
	s, err := s3store.New(context.Background(), s3store.Config{Endpoint: srv.Endpoint, Bucket: bucket, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, cfg, want string
	}{
		{"missing bucket", s3Config(t, srv, randomBucket("missing-"), srv.AccessKey, srv.SecretKey), "storage.s3.bucket"},
		{"wrong secret", s3Config(t, srv, bucket, srv.AccessKey, "not-the-secret"), "refused the credentials"},
		{"unknown key", s3Config(t, srv, bucket, "nobody", srv.SecretKey), "refused the credentials"},
	} {
		out, err := tally(c.cfg, "run", "sync-clusters", "--period", "2026-11-21").CombinedOutput()
		if code := exitOf(err); code != exitUsage || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: exit %d, want 2 naming %q\n%s", c.name, code, c.want, out)
		}
	}
}

func TestGCListsThenAbortsAnOrphanedUploadAndRemovesAnAbandonedTempFile(t *testing.T) {
	srv := testservers.NeedS3(t)
	bucket := randomBucket("gc-")
	s, _ := s3store.New(context.Background(), s3store.Config{Endpoint: srv.Endpoint, Bucket: bucket, Prefix: "tally", PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: 5 << 20})
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A multipart upload whose writer was killed: started, a part up, never
	// completed nor aborted.
	orphanUpload(t, srv, bucket, "tally/reports/orphan.parquet")
	cfg := s3Config(t, srv, bucket, srv.AccessKey, srv.SecretKey)
	// The real binary: the upload's age is by the real clock.
	out, err := tally(cfg, "gc", "--older-than", "1ms").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "orphan.parquet") || !strings.Contains(string(out), "would remove") {
		t.Fatalf("gc (dry run): %v\n%s", err, out)
	}
	// The size is what aborting frees: the one 1 KiB part uploaded.
	if !regexp.MustCompile(`orphan\.parquet\s+\S+\s+1024\s`).Match(out) {
		t.Errorf("gc shows no size for the upload (its part is 1024 bytes):\n%s", out)
	}
	if n, _ := s.PendingUploads(context.Background()); n == 0 {
		t.Fatal("the dry run aborted the upload")
	}
	if out, err := tally(cfg, "gc", "--older-than", "1ms", "--apply").CombinedOutput(); err != nil || !strings.Contains(string(out), "1 removed") {
		t.Fatalf("gc --apply: %v\n%s", err, out)
	}
	if n, _ := s.PendingUploads(context.Background()); n != 0 {
		t.Fatalf("%d uploads left after gc --apply", n)
	}

	// Local storage: a temp file a killed writer left in .tmp.
	lcfg, data := writeConfig(t, "")
	run(t, "--config", lcfg, "jobs")
	os.MkdirAll(filepath.Join(data, ".tmp"), 0o755)
	os.WriteFile(filepath.Join(data, ".tmp", "put-deadbeef"), []byte("half a file"), 0o644)
	old := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	os.Chtimes(filepath.Join(data, ".tmp", "put-deadbeef"), old, old)
	if code, stdout, _ := run(t, "--config", lcfg, "gc", "--apply"); code != 0 || !strings.Contains(stdout, "put-deadbeef") {
		t.Fatalf("gc on local storage:\n%s", stdout)
	}
	if exists(filepath.Join(data, ".tmp", "put-deadbeef")) {
		t.Fatal("the temp file is still there")
	}
}

// orphanUpload starts a multipart upload and uploads one part, as a killed
// writer leaves it.
func orphanUpload(t *testing.T, srv *testservers.S3, bucket, key string) {
	t.Helper()
	ctx := context.Background()
	c := awss3.New(awss3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, "")})
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: &bucket, Key: &key, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(make([]byte, 1024))}); err != nil {
		t.Fatal(err)
	}
}

func TestARunPrintsRanUpstreamOnlyForUpstreamPeriodsItRanItself(t *testing.T) {
	cfg, _ := writeConfig(t, "")
	code, stdout, stderr := run(t, "--config", cfg, "run", "license-usage", "--period", "2026-11-21")
	if code != 0 || !strings.Contains(stdout, "ran upstream sync-clusters 2026-11-21: succeeded") {
		t.Fatalf("first run: exit %d\n%s%s", code, stdout, stderr)
	}
	// The upstream ran in the earlier process: a forced re-run did not run it.
	code, stdout, stderr = run(t, "--config", cfg, "run", "license-usage", "--period", "2026-11-21", "--force")
	if code != 0 || strings.Contains(stdout, "ran upstream") {
		t.Fatalf("forced re-run claims to have run an upstream: exit %d\n%s%s", code, stdout, stderr)
	}
}
