package s3_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tally/clock"
	"tally/internal/testservers"
	"tally/runner"
	"tally/storage"
	"tally/storage/s3"
	"tally/storage/storagetest"
)

// newBucket makes a store on a fresh bucket of the test MinIO.
func newBucket(t *testing.T, mod func(*s3.Config)) *s3.Store {
	t.Helper()
	srv := testservers.NeedS3(t)
	b := make([]byte, 6)
	rand.Read(b)
	cfg := s3.Config{Endpoint: srv.Endpoint, Bucket: "t-" + hex.EncodeToString(b), Prefix: "tally", PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: 5 << 20}
	if mod != nil {
		mod(&cfg)
	}
	s, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3StoreAgainstMinIO(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return newBucket(t, nil) })
}

// pattern is a reader of n bytes generated on the fly (nothing buffered here).
type pattern struct{ n, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func TestAFileFarLargerThanThePartSizeUploadsWithBoundedMemory(t *testing.T) {
	s := newBucket(t, nil)
	const size = 200 << 20 // 40 parts of 5 MiB
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	obj, err := s.Put(context.Background(), "big/file.bin", &pattern{n: size})
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != size {
		t.Fatalf("uploaded %d bytes, want %d", obj.Size, size)
	}
	if p := peak.Load(); p > 64<<20 {
		t.Fatalf("heap in use peaked at %d MiB uploading %d MiB: the upload is buffered, not streamed", p>>20, size>>20)
	}
	t.Logf("200 MiB upload, heap in use peaked at %d MiB", peak.Load()>>20)
}

func TestAnUploadKilledHalfWayLeavesNoObjectAndNoParts(t *testing.T) {
	s := newBucket(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelAt{r: &pattern{n: 100 << 20}, at: 30 << 20, cancel: cancel}
	if _, err := s.Put(ctx, "half/file.bin", r); err == nil {
		t.Fatal("a cancelled upload succeeded")
	}
	if _, err := s.Stat(context.Background(), "half/file.bin"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("stat after a killed upload: %v, want ErrNotFound", err)
	}
	if n, err := s.PendingUploads(context.Background()); err != nil || n != 0 {
		t.Fatalf("%d multipart uploads left pending (%v): a failed upload must be aborted", n, err)
	}
}

type cancelAt struct {
	r      io.Reader
	read   int64
	at     int64
	cancel func()
}

func (c *cancelAt) Read(b []byte) (int, error) {
	if c.read >= c.at {
		c.cancel()
	}
	n, err := c.r.Read(b)
	c.read += int64(n)
	return n, err
}

func TestAPresignedLinkDownloadsTheFileUnderItsNameAndExpires(t *testing.T) {
	s := newBucket(t, nil)
	ctx := context.Background()
	key := "reports/region=EU/devices/daily/2026-11-21/Devices_abcdefgh_2026-11-22.csv"
	if _, err := s.Put(ctx, key, strings.NewReader("External ID,Customer\r\n")); err != nil {
		t.Fatal(err)
	}
	link, err := s.Link(ctx, key, "Devices_abcdefgh_2026-11-22.csv", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(link) // a plain HTTP client, like a recipient's browser
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "External ID,Customer\r\n" {
		t.Fatalf("GET %s: %s %q", link, resp.Status, body)
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="Devices_abcdefgh_2026-11-22.csv"` {
		t.Fatalf("Content-Disposition = %q", cd)
	}
	time.Sleep(3 * time.Second)
	resp, err = http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an expired link answered %s, want 403", resp.Status)
	}
	if s.Expiry() != s3.MaxLinkExpiry {
		t.Fatalf("default link expiry %s, want 7 days", s.Expiry())
	}
}

func TestLinksAreSignedForThePublicEndpoint(t *testing.T) {
	s := newBucket(t, func(c *s3.Config) { c.PublicEndpoint = "https://files.example.com" })
	link, err := s.URL(context.Background(), "a/b.csv")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, "https://files.example.com/") || !strings.Contains(link, "X-Amz-Signature=") {
		t.Fatalf("link %s: want a signed link on the public endpoint", link)
	}
}

func TestRacingRunnersAgainstMinIOExactlyOneWinsTheLeaseAndTakeoverAfterTheTTLWorks(t *testing.T) {
	s := newBucket(t, nil)
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 11, 22, 0, 5, 0, 0, time.UTC))
	const n = 6
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			_, err := runner.AcquireLease(ctx, s, clk, "sync-clusters", "2026-11-21", runner.Holder{Host: "h", PID: i}, time.Minute)
			results <- err
		}(i)
	}
	wins := 0
	for i := 0; i < n; i++ {
		err := <-results
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, runner.ErrLeaseHeld):
			t.Fatalf("acquire: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d runners hold the lease, want exactly 1", wins)
	}
	if _, err := runner.AcquireLease(ctx, s, clk, "sync-clusters", "2026-11-21", runner.Holder{Host: "late", PID: 99}, time.Minute); !errors.Is(err, runner.ErrLeaseHeld) {
		t.Fatalf("before the TTL: %v, want ErrLeaseHeld", err)
	}
	clk.Advance(time.Minute)
	l, err := runner.AcquireLease(ctx, s, clk, "sync-clusters", "2026-11-21", runner.Holder{Host: "late", PID: 99}, time.Minute)
	if err != nil {
		t.Fatalf("takeover after the TTL: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("release (a conditional PUT): %v", err)
	}
}

// SPEC §10 (issue 15): reads from S3 stream in ranges instead of copying the
// object to the temporary directory first (a copy would still read the old
// bytes after a replace), and an object replaced mid-read fails the read
// instead of mixing two versions.
func TestReadsFromS3AreRangedGETsAndAnObjectReplacedMidReadFailsTheRead(t *testing.T) {
	ctx := context.Background()
	raw := newBucket(t, nil)
	// through the timeouts every job's store has, as the jobs open it
	s := storage.WithTimeouts(raw, storage.Timeouts{Request: 10 * time.Second, Idle: 10 * time.Second})
	const size = 3*s3.BlockBytes*s3.Blocks/2 + 12345 // more blocks than a file keeps
	if _, err := s.Put(ctx, "big/data", &pattern{n: size}); err != nil {
		t.Fatal(err)
	}
	f, err := storage.OpenFile(ctx, s, "big/data")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != size {
		t.Fatalf("size %d, want %d", f.Size(), size)
	}
	check := func(off int64, n int) {
		t.Helper()
		p := make([]byte, n)
		got, err := f.ReadAt(p, off)
		want := min(int64(n), size-off)
		if int64(got) != want || (want == int64(n) && err != nil) || (want < int64(n) && !errors.Is(err, io.EOF)) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d", n, off, got, err, want)
		}
		for i := 0; i < got; i++ {
			if p[i] != byte((off+int64(i))%251) {
				t.Fatalf("byte %d differs", off+int64(i))
			}
		}
	}
	// the footer, a read across two blocks, a read larger than a block, the
	// start again after every block was replaced, and past the end
	for _, r := range []struct {
		off int64
		n   int
	}{{size - 8, 8}, {s3.BlockBytes - 10, 20}, {5, 2*s3.BlockBytes + 7}, {size - 100, 4096}, {0, 4096}, {s3.BlockBytes * 20, 100}, {0, 10}} {
		check(r.off, r.n)
	}
	if _, err := s.Put(ctx, "big/data", strings.NewReader("replaced")); err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadAt(make([]byte, 10), s3.BlockBytes*10)
	if !errors.Is(err, storage.ErrPreconditionFailed) || !strings.Contains(err.Error(), "big/data") {
		t.Fatalf("reading an object replaced since it was opened: %v, want a precondition failure naming the key", err)
	}
}
