package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"tally/storage"
)

// A Parquet reader reads a file in ranges: the footer, then each column's
// pages in order, several columns in step. OpenFile serves those reads from
// ranged GETs of BlockBytes, keeping the last Blocks of them, so a read holds
// at most Blocks × BlockBytes of a file in memory and writes nothing to disk.
const (
	BlockBytes = 256 << 10
	Blocks     = 16
)

var _ storage.FileOpener = (*Store)(nil)

// OpenFile opens key for random access by ranged GETs, each conditional on the
// ETag seen at open: an object replaced while it is read fails the read
// (storage.ErrPreconditionFailed) rather than mixing two versions.
func (s *Store) OpenFile(ctx context.Context, key string, readTimeout time.Duration) (storage.File, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	obj, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	return &rangeFile{ctx: ctx, s: s, key: key, k: k, etag: obj.ETag, size: obj.Size, timeout: readTimeout}, nil
}

type rangeFile struct {
	ctx          context.Context
	s            *Store
	key, k, etag string
	size         int64
	timeout      time.Duration // per ranged GET; 0: none

	mu     sync.Mutex
	blocks []*block // least recently used first
}

type block struct {
	off  int64
	data []byte
}

func (f *rangeFile) Size() int64  { return f.size }
func (f *rangeFile) ETag() string { return f.etag }
func (f *rangeFile) Close() error { f.blocks = nil; return nil }

// ReadAt reads len(p) bytes at off from the blocks that hold them.
func (f *rangeFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("s3: read %s at %d: negative offset", f.key, off)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for n < len(p) && off+int64(n) < f.size {
		at := off + int64(n)
		b, err := f.block(at - at%BlockBytes)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], b.data[at-b.off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// block returns the block at off, fetching it (into the least recently used
// block's buffer once Blocks are held) when it is not held.
func (f *rangeFile) block(off int64) (*block, error) {
	for i, b := range f.blocks {
		if b.off == off {
			copy(f.blocks[i:], f.blocks[i+1:])
			f.blocks[len(f.blocks)-1] = b
			return b, nil
		}
	}
	b := &block{}
	if len(f.blocks) == Blocks {
		b, f.blocks = f.blocks[0], f.blocks[1:]
	}
	end := min(off+BlockBytes, f.size)
	rng := fmt.Sprintf("bytes=%d-%d", off, end-1)
	ctx := f.ctx
	if f.timeout > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeoutCause(ctx, f.timeout, &storage.ErrTimeout{Op: "read", Key: f.key, After: f.timeout})
		defer c()
	}
	out, err := f.s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &f.s.bucket, Key: &f.k, Range: &rng, IfMatch: &f.etag})
	if err != nil {
		if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("s3: read %s: %w", f.key, c)
		}
		err = f.s.translate("read", f.key, err)
		if errors.Is(err, storage.ErrPreconditionFailed) {
			err = fmt.Errorf("%w (the object was replaced while it was read)", err)
		}
		return nil, err
	}
	defer out.Body.Close()
	if cap(b.data) < int(end-off) {
		b.data = make([]byte, BlockBytes)
	}
	b.off, b.data = off, b.data[:end-off]
	if _, err := io.ReadFull(out.Body, b.data); err != nil {
		if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
			err = c
		}
		return nil, fmt.Errorf("s3: read %s bytes %d-%d: %w", f.key, off, end-1, err)
	}
	f.blocks = append(f.blocks, b)
	return b, nil
}
