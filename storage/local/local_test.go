package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tally/storage"
	"tally/storage/local"
	"tally/storage/storagetest"
)

func TestLocalStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestAKeyReachedThroughASymlinkIsNotFoundAndSecretsAreReadableByTheOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	outside := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(outside, []byte("root:x:0:0"), 0o644)
	os.MkdirAll(filepath.Join(dir, "reports", "region=US"), 0o755)
	os.Symlink(outside, filepath.Join(dir, "reports", "region=US", "leak.csv"))
	os.Symlink(filepath.Dir(outside), filepath.Join(dir, "reports", "region=EU"))
	for _, key := range []string{"reports/region=US/leak.csv", "reports/region=EU/passwd"} {
		if _, _, err := s.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("get %s: %v, want not found (a symlink)", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("stat %s: %v, want not found (a symlink)", key, err)
		}
	}
	if objs, _ := s.List(ctx, "reports/"); len(objs) != 0 {
		t.Errorf("list reports/: %v, want no symlinked file", objs)
	}
	// A landing zone opened read-only follows its links, as before.
	landing, _ := local.Open(dir)
	if _, _, err := landing.Get(ctx, "reports/region=US/leak.csv"); err != nil {
		t.Errorf("a landing zone's link: %v", err)
	}

	if _, err := s.Create(ctx, "_secrets/sessions/a.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "_secrets/webex-oauth/p1.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"_secrets/sessions/a.json", "_secrets/webex-oauth/p1.json"} {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", p, fi.Mode().Perm(), err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "_secrets")); fi.Mode().Perm() != 0o700 {
		t.Errorf("_secrets/: mode %v, want 0700", fi.Mode().Perm())
	}
}
