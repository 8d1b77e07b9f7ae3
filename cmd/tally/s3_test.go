package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"tally/internal/testservers"
	s3store "tally/storage/s3"
)

func TestTheDailyChainAndReportsOnMinIOKeepEachRegionInItsOwnBucket(t *testing.T) {
	srv := testservers.NeedS3(t)
	dir := t.TempDir()
	keyFile, secretFile := filepath.Join(dir, "key"), filepath.Join(dir, "secret")
	os.WriteFile(keyFile, []byte(srv.AccessKey), 0o600)
	os.WriteFile(secretFile, []byte(srv.SecretKey), 0o600)
	b := make([]byte, 4)
	rand.Read(b)
	buckets := map[string]string{"US": "us-" + hex.EncodeToString(b), "EU": "eu-" + hex.EncodeToString(b)}
	stores := map[string]*s3store.Store{}
	for region, bucket := range buckets {
		s, err := s3store.New(context.Background(), s3store.Config{Endpoint: srv.Endpoint, Bucket: bucket, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureBucket(context.Background()); err != nil {
			t.Fatal(err)
		}
		stores[region] = s
	}
	s3region := func(region string) string {
		return fmt.Sprintf("    %s:\n      type: s3\n      s3:\n        endpoint: %s\n        bucket: %s\n        prefix: tally\n        path_style: true\n        access_key_file: %s\n        secret_key_file: %s\n",
			region, srv.Endpoint, buckets[region], keyFile, secretFile)
	}
	cfg := filepath.Join(dir, "tally.yaml")
	os.WriteFile(cfg, []byte("storage:\n  type: local\n  path: "+filepath.Join(dir, "control")+"\n  regions:\n"+s3region("US")+s3region("EU")+
		"    CA:\n      type: local\n      path: "+filepath.Join(dir, "ca")+"\n    UAE:\n      type: local\n      path: "+filepath.Join(dir, "uae")+
		"\nsource:\n  scale: 20\nlog:\n  format: json\n"), 0o644)

	code, stdout, stderr := run(t, "--config", cfg, "config", "check")
	if code != 0 || !strings.Contains(stdout, "region US store: reachable, writable, refuses a second exclusive create") {
		t.Fatalf("config check: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, p := range []string{"P093374", "P122891", "P784427"} { // the demo's partners (seed 1)
		if code, _, stderr := run(t, "--config", cfg, "subscriptions", "add", "--partner", p, "--template", "devices", "--cadence", "daily", "--to", "ops@example.com"); code != 0 {
			t.Fatalf("subscriptions add: %s", stderr)
		}
	}
	code, stdout, stderr = run(t, "--config", cfg, "run", "reports-daily", "--period", "2026-11-21")
	if code != 0 {
		t.Fatalf("reports-daily: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for region, s := range stores {
		objs, err := s.List(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) < 10 {
			t.Fatalf("bucket %s has %d objects: the region's data did not go there", buckets[region], len(objs))
		}
		for _, o := range objs {
			if !strings.Contains(o.Key, "region="+region+"/") {
				t.Fatalf("bucket %s (region %s) holds %s", buckets[region], region, o.Key)
			}
		}
	}
	// The control store got the ledger, never a region's data.
	filepath.Walk(filepath.Join(dir, "control"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.Contains(p, "region=") {
			t.Errorf("control store holds region data: %s", p)
		}
		return nil
	})
	// Emails carry presigned links for the S3 regions.
	emls, _ := filepath.Glob(filepath.Join(dir, "control", "outbox", "reports-daily", "2026-11-21", "*", opsGroup+"-g1.eml"))
	if len(emls) == 0 {
		t.Fatal("no emails in the outbox")
	}
	// A presigned link from a report email downloads the file under its name.
	_, text := textOf(t, emls[0])
	link := regexp.MustCompile(`(http://\S+X-Amz-Signature=\S+)`).FindString(text)
	u, err := url.Parse(link)
	if link == "" || err != nil || !strings.Contains(u.Path, "/region=US/") && !strings.Contains(u.Path, "/region=EU/") {
		t.Fatalf("no presigned link to an S3 region in the email:\n%s", text)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	name := path.Base(u.Path)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "External ID,Customer,") ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="`+name+`"` {
		t.Fatalf("GET the emailed link: %s, Content-Disposition %q, body %.40q", resp.Status, resp.Header.Get("Content-Disposition"), body)
	}
}

func TestTheStaticBinaryTheDockerfileBuildsBuilds(t *testing.T) {
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(t.TempDir(), "tally"), ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
}

func TestARegionWithoutAStoreIsAConfigErrorNotAFallback(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tally.yaml")
	os.WriteFile(cfg, []byte("storage:\n  type: local\n  path: "+dir+"\n  regions:\n    US:\n      type: local\n      path: "+dir+"/us\n"), 0o644)
	code, _, stderr := run(t, "--config", cfg, "config", "check")
	if code != exitUsage || !strings.Contains(stderr, "storage.regions.EU: not configured") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}
