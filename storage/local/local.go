// Package local is the storage.Store on a local disk: atomic publish by temporary
// file, fsync and rename; exclusive create and compare-and-swap under flock.
package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"tally/storage"
)

var _ storage.Store = (*Store)(nil)

// Store keeps objects as files under a root directory. Temporary files live in
// <root>/.tmp and lock files in <root>/.locks; no valid key reaches either.
type Store struct {
	root string
	// real is root with its symlinks resolved, when the store reads only
	// regular files reached without a symlink below it (tally's own data:
	// a link planted under reports/ to /etc/passwd reads as not found).
	real string
}

// New opens (creating if needed) a store rooted at dir.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local storage %s: %w", dir, err)
	}
	for _, d := range []string{abs, filepath.Join(abs, ".tmp"), filepath.Join(abs, ".locks")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("local storage: %w", err)
		}
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("local storage: %w", err)
	}
	return &Store{root: abs, real: real}, nil
}

// Open opens an existing directory for reading without creating anything in
// it (a landing zone tally only reads; links in it are followed).
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local storage %s: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("local storage %s: not a directory", dir)
	}
	return &Store{root: abs}, nil
}

// Root is the directory the store lives in.
func (s *Store) Root() string { return s.root }

func (s *Store) path(key string) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

func etag(fi os.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	// Every publish is a rename of a new file, so the inode changes with the content.
	return fmt.Sprintf("%x-%x-%x", ino, fi.ModTime().UnixNano(), fi.Size())
}

func object(key string, fi os.FileInfo) storage.Object {
	return storage.Object{Key: key, Size: fi.Size(), ETag: etag(fi), ModTime: fi.ModTime().UTC()}
}

// writeTemp writes r to a new synced temporary file and returns its path. The
// file is created 0644 under the umask (os.CreateTemp's 0600 would hide every
// published file from a web server serving reports.base_url as another user),
// but 0600 for a secret (storage.Private).
func (s *Store) writeTemp(ctx context.Context, key string, r io.Reader) (string, error) {
	var rnd [12]byte
	rand.Read(rnd[:])
	perm := os.FileMode(0o644)
	if storage.Private(key) {
		perm = 0o600
	}
	f, err := os.OpenFile(filepath.Join(s.root, ".tmp", "put-"+hex.EncodeToString(rnd[:])), os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// Put writes r to a temporary file, syncs it and renames it into place.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (storage.Object, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.Object{}, err
	}
	tmp, err := s.writeTemp(ctx, key, r)
	if err != nil {
		return storage.Object{}, fmt.Errorf("local: put %s: %w", key, err)
	}
	if err := s.publish(key, tmp, p); err != nil {
		os.Remove(tmp)
		return storage.Object{}, fmt.Errorf("local: put %s: %w", key, err)
	}
	return s.Stat(ctx, key)
}

// mkdirs makes a key's folders: 0700 for a secret's (storage.Private).
func (s *Store) mkdirs(key, dir string) error {
	if storage.Private(key) {
		return os.MkdirAll(dir, 0o700)
	}
	return os.MkdirAll(dir, 0o755)
}

func (s *Store) publish(key, tmp, p string) error {
	if err := s.mkdirs(key, filepath.Dir(p)); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get opens key. The returned reader is an *os.File, so it is also an io.ReaderAt.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, storage.Object, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, storage.Object{}, err
	}
	flags := os.O_RDONLY
	if s.real != "" {
		if err := s.linkFree(key, p); err != nil {
			return nil, storage.Object{}, err
		}
		flags |= syscall.O_NOFOLLOW // a link swapped in after the check is refused too
	}
	f, err := os.OpenFile(p, flags, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			err = fs.ErrNotExist
		}
		return nil, storage.Object{}, translate("get", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, storage.Object{}, translate("get", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, storage.Object{}, fmt.Errorf("local: get %s: not a regular file: %w", key, storage.ErrNotFound)
	}
	return f, object(key, fi), nil
}

// linkFree refuses a key reached through a symlink below the store's root.
func (s *Store) linkFree(key, p string) error {
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return translate("get", key, err)
	}
	if want := filepath.Dir(filepath.Join(s.real, filepath.FromSlash(key))); dir != want {
		return fmt.Errorf("local: %s is reached through a symlink: %w", key, storage.ErrNotFound)
	}
	return nil
}

// Stat describes key.
func (s *Store) Stat(_ context.Context, key string) (storage.Object, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.Object{}, err
	}
	stat := os.Stat
	if s.real != "" {
		if err := s.linkFree(key, p); err != nil {
			return storage.Object{}, err
		}
		stat = os.Lstat
	}
	fi, err := stat(p)
	if err != nil {
		return storage.Object{}, translate("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return storage.Object{}, fmt.Errorf("local: stat %s: not a regular file: %w", key, storage.ErrNotFound)
	}
	return object(key, fi), nil
}

// List walks the directory of prefix and returns matching files sorted by key.
func (s *Store) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	dir := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var out []storage.Object
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		rel, _ := filepath.Rel(s.root, p)
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if p != dir && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(key, prefix) || strings.HasPrefix(d.Name(), ".") || (s.real != "" && !d.Type().IsRegular()) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing
			}
			return err
		}
		out = append(out, object(key, fi))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("local: list %s: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes key.
func (s *Store) Delete(_ context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local: delete %s: %w", key, err)
	}
	return nil
}

// Create writes data to a synced temporary file and hard-links it to key: link(2)
// fails when key exists, like O_EXCL, and a reader never sees a half-written file.
func (s *Store) Create(ctx context.Context, key string, data []byte) (storage.Object, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.Object{}, err
	}
	tmp, err := s.writeTemp(ctx, key, bytes.NewReader(data))
	if err != nil {
		return storage.Object{}, fmt.Errorf("local: create %s: %w", key, err)
	}
	defer os.Remove(tmp)
	if err := s.mkdirs(key, filepath.Dir(p)); err != nil {
		return storage.Object{}, fmt.Errorf("local: create %s: %w", key, err)
	}
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return storage.Object{}, fmt.Errorf("local: create %s: %w", key, storage.ErrExists)
		}
		return storage.Object{}, fmt.Errorf("local: create %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return storage.Object{}, fmt.Errorf("local: create %s: %w", key, err)
	}
	return s.Stat(ctx, key)
}

// Replace swaps key's content if its ETag is still etag. The new content is
// written and synced first; only the compare and the rename run under an
// exclusive flock on the key's lock file, so the window in which a frozen process
// (SIGSTOP, a stopped VM) holds the lock is two system calls long, and a waiter
// gives up when its context ends instead of blocking forever.
func (s *Store) Replace(ctx context.Context, key, etag string, data []byte) (storage.Object, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.Object{}, err
	}
	tmp, err := s.writeTemp(ctx, key, bytes.NewReader(data))
	if err != nil {
		return storage.Object{}, fmt.Errorf("local: replace %s: %w", key, err)
	}
	defer os.Remove(tmp) // gone after a successful rename
	sum := sha256.Sum256([]byte(key))
	lock, err := os.OpenFile(filepath.Join(s.root, ".locks", hex.EncodeToString(sum[:16])), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return storage.Object{}, fmt.Errorf("local: replace %s: %w", key, err)
	}
	defer lock.Close()
	if err := flock(ctx, lock); err != nil {
		return storage.Object{}, fmt.Errorf("local: replace %s: flock: %w", key, err)
	}
	cur, err := s.Stat(ctx, key)
	if err == nil && cur.ETag != etag {
		err = fmt.Errorf("local: replace %s: %w", key, storage.ErrPreconditionFailed)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if err != nil {
		return storage.Object{}, err
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return storage.Object{}, fmt.Errorf("local: replace %s: %w", key, err)
	}
	return s.Stat(ctx, key)
}

// flock takes an exclusive lock on f, retrying until ctx ends.
func flock(ctx context.Context, f *os.File) error {
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(wait): // polling a lock, not reading the data's clock
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// URL is a file:// link to key.
func (s *Store) URL(_ context.Context, key string) (string, error) {
	p, err := s.path(key)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(p)}).String(), nil
}

func translate(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("local: %s %s: %w", op, key, storage.ErrNotFound)
	}
	return fmt.Errorf("local: %s %s: %w", op, key, err)
}

// ctxReader stops a copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

var _ storage.Collector = (*Store)(nil)

// Leftovers are the temporary files in .tmp: a writer that was killed mid-write
// leaves its file there.
func (s *Store) Leftovers(ctx context.Context) ([]storage.Leftover, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, ".tmp"))
	if err != nil {
		return nil, fmt.Errorf("local: leftovers: %w", err)
	}
	var out []storage.Leftover
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || e.IsDir() {
			continue
		}
		out = append(out, storage.Leftover{Kind: "temp", Key: e.Name(), Since: fi.ModTime().UTC(), Size: fi.Size()})
	}
	return out, nil
}

// RemoveLeftover deletes one temporary file.
func (s *Store) RemoveLeftover(_ context.Context, l storage.Leftover) error {
	if l.Kind != "temp" || strings.ContainsAny(l.Key, `/\`) || l.Key == "" || strings.HasPrefix(l.Key, ".") {
		return fmt.Errorf("local: %q is not a temporary file of this store", l.Key)
	}
	if err := os.Remove(filepath.Join(s.root, ".tmp", l.Key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local: remove %s: %w", l.Key, err)
	}
	return nil
}
