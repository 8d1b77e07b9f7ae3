// Package storagetest is the shared test suite every storage.Store backend runs.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"tally/storage"
)

// Run runs the suite; newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	ctx := context.Background()

	t.Run("put publishes the whole object and get reads it back", func(t *testing.T) {
		s := newStore(t)
		obj, err := s.Put(ctx, "a/b/c.txt", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		if obj.Size != 5 || obj.Key != "a/b/c.txt" || obj.ETag == "" {
			t.Fatalf("put returned %+v", obj)
		}
		b, got, err := storage.ReadAll(ctx, s, "a/b/c.txt")
		if err != nil || string(b) != "hello" || got.Size != 5 {
			t.Fatalf("get = %q %+v %v", b, got, err)
		}
		if _, err := s.Put(ctx, "a/b/c.txt", strings.NewReader("bye")); err != nil {
			t.Fatal(err)
		}
		b, _, _ = storage.ReadAll(ctx, s, "a/b/c.txt")
		if string(b) != "bye" {
			t.Fatalf("overwrite: got %q", b)
		}
	})

	t.Run("a failed put leaves no object", func(t *testing.T) {
		s := newStore(t)
		r := io.MultiReader(strings.NewReader(strings.Repeat("x", 1<<20)), failingReader{})
		if _, err := s.Put(ctx, "half/file.bin", r); err == nil {
			t.Fatal("put from a failing reader succeeded")
		}
		if _, err := s.Stat(ctx, "half/file.bin"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("stat after failed put: %v, want ErrNotFound", err)
		}
		if objs, _ := s.List(ctx, "half/"); len(objs) != 0 {
			t.Fatalf("list after failed put: %v", objs)
		}
	})

	t.Run("a cancelled put leaves no object", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		r := &cancelAfter{n: 1 << 20, cancel: cancel}
		if _, err := s.Put(cctx, "cancelled/file.bin", r); err == nil {
			t.Fatal("put with a cancelled context succeeded")
		}
		if _, err := s.Stat(ctx, "cancelled/file.bin"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("stat after cancelled put: %v, want ErrNotFound", err)
		}
	})

	t.Run("missing keys are ErrNotFound", func(t *testing.T) {
		s := newStore(t)
		if _, _, err := s.Get(ctx, "nope/x"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("get: %v", err)
		}
		if _, err := s.Stat(ctx, "nope/x"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("stat: %v", err)
		}
		if err := s.Delete(ctx, "nope/x"); err != nil {
			t.Fatalf("delete of a missing key: %v", err)
		}
	})

	t.Run("keys with traversal, absolute paths or dot segments are refused", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"", "../escape", "a/../../b", "/etc/passwd", "a//b", "./a", "a/.tmp/x", `a\b`, "a\nb"} {
			if _, err := s.Put(ctx, k, strings.NewReader("x")); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("put %q: %v, want ErrInvalidKey", k, err)
			}
			if _, err := s.Create(ctx, k, []byte("x")); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("create %q: %v, want ErrInvalidKey", k, err)
			}
		}
	})

	t.Run("list returns objects under a prefix sorted by key", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"runs/b/2", "runs/a/1", "runs/a/10", "runsx/z", "other/q"} {
			if _, err := s.Put(ctx, k, strings.NewReader(k)); err != nil {
				t.Fatal(err)
			}
		}
		got := keys(t, s, "runs/")
		if want := "runs/a/1 runs/a/10 runs/b/2"; got != want {
			t.Fatalf("list runs/ = %s, want %s", got, want)
		}
		if got, want := keys(t, s, "runs/a/1"), "runs/a/1 runs/a/10"; got != want {
			t.Fatalf("list runs/a/1 = %s, want %s", got, want)
		}
		if got := keys(t, s, "missing/"); got != "" {
			t.Fatalf("list missing/ = %q", got)
		}
		if got, want := keys(t, s, ""), "other/q runs/a/1 runs/a/10 runs/b/2 runsx/z"; got != want {
			t.Fatalf("list all = %s, want %s", got, want)
		}
	})

	t.Run("delete removes the object", func(t *testing.T) {
		s := newStore(t)
		s.Put(ctx, "d/x", strings.NewReader("x"))
		if err := s.Delete(ctx, "d/x"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, "d/x"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("stat after delete: %v", err)
		}
	})

	t.Run("exclusive create: exactly one of many racing creators wins", func(t *testing.T) {
		s := newStore(t)
		const n = 8
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, exists := 0, 0
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, err := s.Create(ctx, "_leases/job/p.json", []byte(fmt.Sprintf("holder-%d", i)))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, storage.ErrExists):
					exists++
				default:
					t.Errorf("create: %v", err)
				}
			}(i)
		}
		wg.Wait()
		if wins != 1 || exists != n-1 {
			t.Fatalf("wins=%d exists=%d, want 1 and %d", wins, exists, n-1)
		}
	})

	t.Run("replace is compare-and-swap on the etag", func(t *testing.T) {
		s := newStore(t)
		obj, err := s.Create(ctx, "cas/k", []byte("v1"))
		if err != nil {
			t.Fatal(err)
		}
		obj2, err := s.Replace(ctx, "cas/k", obj.ETag, []byte("v2"))
		if err != nil {
			t.Fatalf("replace with the current etag: %v", err)
		}
		if obj2.ETag == obj.ETag {
			t.Fatal("etag did not change with the content")
		}
		if _, err := s.Replace(ctx, "cas/k", obj.ETag, []byte("v3")); !errors.Is(err, storage.ErrPreconditionFailed) {
			t.Fatalf("replace with a stale etag: %v, want ErrPreconditionFailed", err)
		}
		if _, err := s.Replace(ctx, "cas/missing", obj.ETag, []byte("v")); !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrPreconditionFailed) {
			t.Fatalf("replace of a missing key: %v", err)
		}
		b, _, _ := storage.ReadAll(ctx, s, "cas/k")
		if string(b) != "v2" {
			t.Fatalf("content = %q, want v2", b)
		}
	})

	t.Run("replace: exactly one of many racing swappers wins", func(t *testing.T) {
		s := newStore(t)
		obj, err := s.Create(ctx, "cas/race", []byte("v0"))
		if err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, err := s.Replace(ctx, "cas/race", obj.ETag, []byte(fmt.Sprintf("v%d", i+1)))
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					wins++
				} else if !errors.Is(err, storage.ErrPreconditionFailed) {
					t.Errorf("replace: %v", err)
				}
			}(i)
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d swappers won, want exactly 1", wins)
		}
	})

	t.Run("open file gives random access", func(t *testing.T) {
		s := newStore(t)
		data := bytes.Repeat([]byte("0123456789"), 1000)
		s.Put(ctx, "f/data", bytes.NewReader(data))
		f, err := storage.OpenFile(ctx, s, "f/data")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4)
		if _, err := f.ReadAt(buf, 9995); err != nil || string(buf) != "5678" || f.Size() != int64(len(data)) {
			t.Fatalf("ReadAt = %q size %d err %v", buf, f.Size(), err)
		}
		// Readers compare it with what List gave to tell a replaced object.
		objs, err := s.List(ctx, "f/")
		if err != nil || len(objs) != 1 || f.ETag() == "" || f.ETag() != objs[0].ETag {
			t.Fatalf("the open file's ETag %q is not the one List gives (%v, %v)", f.ETag(), objs, err)
		}
	})

	t.Run("url names the key", func(t *testing.T) {
		s := newStore(t)
		s.Put(ctx, "reports/x y.csv", strings.NewReader("x"))
		u, err := s.URL(ctx, "reports/x y.csv")
		if err != nil || !strings.Contains(u, "reports/x%20y.csv") {
			t.Fatalf("url = %q, %v", u, err)
		}
	})
}

func keys(t *testing.T, s storage.Store, prefix string) string {
	t.Helper()
	objs, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.Key)
	}
	return strings.Join(ks, " ")
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("upstream broke") }

type cancelAfter struct {
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
		return len(p), nil
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	c.n -= len(p)
	return len(p), nil
}
