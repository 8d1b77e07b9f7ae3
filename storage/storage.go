// Package storage owns the Store interface every backend implements (local disk, S3)
// and the rules for the keys tally writes: validated, relative, slash-separated.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"tally/internal/tmpfile"
)

// Errors every backend translates its own into.
var (
	ErrNotFound           = errors.New("not found")
	ErrExists             = errors.New("already exists")
	ErrPreconditionFailed = errors.New("precondition failed")
	ErrInvalidKey         = errors.New("invalid key")
	// ErrMisconfigured is a store that cannot work as configured (a missing
	// bucket, refused credentials): retrying cannot fix it.
	ErrMisconfigured = errors.New("storage misconfigured")
)

// Object describes a stored object.
type Object struct {
	Key     string
	Size    int64
	ETag    string // changes whenever the content changes; used for compare-and-swap
	ModTime time.Time
}

// Store is where tally keeps everything: data files, the ledger, leases, the outbox.
type Store interface {
	// Put stores r's bytes under key, atomically: a reader sees the old object or
	// the whole new one, never a part.
	Put(ctx context.Context, key string, r io.Reader) (Object, error)
	// Get opens key for reading. ErrNotFound when absent.
	Get(ctx context.Context, key string) (io.ReadCloser, Object, error)
	// Stat describes key. ErrNotFound when absent.
	Stat(ctx context.Context, key string) (Object, error)
	// List returns the objects whose keys start with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes key; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// Create stores data under key only if key does not exist (ErrExists otherwise).
	Create(ctx context.Context, key string, data []byte) (Object, error)
	// Replace stores data under key only if key's current ETag is etag
	// (ErrPreconditionFailed otherwise, ErrNotFound when absent).
	Replace(ctx context.Context, key, etag string, data []byte) (Object, error)
	// URL is a link a person can open to download key.
	URL(ctx context.Context, key string) (string, error)
}

// SecretsPrefix is where secrets live in the control store (OAuth tokens,
// signing keys, console sessions): local storage writes them readable by its
// owner only (0600, in 0700 folders); on S3, a bucket policy should keep the
// prefix to tally's own credentials.
const SecretsPrefix = "_secrets/"

// Private reports whether key holds a secret.
func Private(key string) bool { return strings.HasPrefix(key, SecretsPrefix) }

// ValidateKey rejects keys that could escape the store or are not tally's own:
// empty, absolute, with "." or ".." segments, backslashes, empty segments,
// segments starting with "." (reserved for a backend's temporary files) or
// control characters.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if strings.HasPrefix(key, "/") || strings.Contains(key, `\`) {
		return fmt.Errorf("%w %q: must be relative and use /", ErrInvalidKey, key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || strings.HasPrefix(seg, ".") {
			return fmt.Errorf("%w %q: empty, dot or dot-dot segment", ErrInvalidKey, key)
		}
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w %q: control character", ErrInvalidKey, key)
		}
	}
	return nil
}

// ValidatePrefix is ValidateKey for list prefixes, which may be empty or end in "/".
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidateKey(strings.TrimSuffix(prefix, "/"))
}

// ReadAll reads a whole (small) object.
func ReadAll(ctx context.Context, s Store, key string) ([]byte, Object, error) {
	rc, obj, err := s.Get(ctx, key)
	if err != nil {
		return nil, obj, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, obj, fmt.Errorf("read %s: %w", key, err)
	}
	return b, obj, nil
}

// File is an object opened for random access (what a Parquet reader needs).
type File interface {
	io.ReaderAt
	io.Closer
	Size() int64
	// ETag is the ETag of the object being read (as Stat and List give it).
	ETag() string
}

// FileOpener is a backend that reads an object in ranges (S3): OpenFile uses
// it instead of copying the object to a temporary file. Each range read must
// answer within readTimeout (0: no limit); it answers errors.ErrUnsupported
// when the store under a wrapper reads no ranges.
type FileOpener interface {
	OpenFile(ctx context.Context, key string, readTimeout time.Duration) (File, error)
}

// OpenFile opens key for random access. Backends that read ranges
// (FileOpener) or whose Get returns an io.ReaderAt (local files) are used
// directly; others are spooled to a temporary file first.
func OpenFile(ctx context.Context, s Store, key string) (File, error) {
	if o, ok := s.(FileOpener); ok {
		if f, err := o.OpenFile(ctx, key, 0); !errors.Is(err, errors.ErrUnsupported) {
			return f, err
		}
	}
	rc, obj, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if ra, ok := rc.(io.ReaderAt); ok {
		return &file{ReaderAt: ra, Closer: rc, size: obj.Size, etag: obj.ETag}, nil
	}
	defer rc.Close()
	tmp, err := tmpfile.Create("", "tally-spool-*")
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", key, err)
	}
	n, err := io.Copy(tmp, rc)
	if err != nil {
		tmp.Close()
		return nil, fmt.Errorf("spool %s: %w", key, err)
	}
	return &file{ReaderAt: tmp, Closer: tmp, size: n, etag: obj.ETag}, nil
}

type file struct {
	io.ReaderAt
	io.Closer
	size int64
	etag string
}

func (f *file) Size() int64  { return f.size }
func (f *file) ETag() string { return f.etag }

// Regional routes each region's data to its own store and everything that is not
// customer data (ledger, leases, subscriptions, outbox) to the control store.
type Regional struct {
	Control Store
	Regions map[string]Store
}

// Single uses one store for the control plane and every region.
func Single(s Store, regions []string) Regional {
	r := Regional{Control: s, Regions: map[string]Store{}}
	for _, reg := range regions {
		r.Regions[reg] = s
	}
	return r
}

// For returns region's store. A region without one is an error, never a fallback.
func (r Regional) For(region string) (Store, error) {
	s, ok := r.Regions[region]
	if !ok {
		return nil, fmt.Errorf("no storage configured for region %s", region)
	}
	return s, nil
}

// Leftover is debris a crashed writer left behind: an incomplete multipart
// upload on S3, a temporary file on disk. Readers never see it, but it costs
// space until removed.
type Leftover struct {
	Kind  string // "upload" or "temp"
	Key   string // the key it was meant for (uploads), or the temporary file's name
	ID    string // the upload id (uploads)
	Since time.Time
	Size  int64 // bytes, where the backend knows them
}

// Collector is a store that can list and remove its leftovers (tally gc).
type Collector interface {
	Leftovers(ctx context.Context) ([]Leftover, error)
	RemoveLeftover(ctx context.Context, l Leftover) error
}
