// Package landingtest reshapes a landing zone the way partners' own tools
// deliver one (rows in random order, split into several files, gzip), so the
// files source's tests and benchmarks read what partners send, not only what
// tally's export writes.
package landingtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"

	"tally/model"
	"tally/periods"
	"tally/pq"
	"tally/source/files"
	"tally/storage"
)

// Shuffle writes in's delivered day into out with every Parquet file's rows in
// a uniformly random order (seeded) and split into parts files (names
// part-0 … of each entity and region), then the manifest. Memory stays
// bounded: rows are scattered into temporary buckets first, each bucket
// shuffled on its own.
func Shuffle(ctx context.Context, in, out storage.Store, day periods.Period, parts int, seed uint64) error {
	m, err := manifest(ctx, in, day)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var done []files.ManifestFile
	byDir := map[string][]string{}
	var dirs []string
	for _, f := range m.Files {
		dir := path.Dir(f.Path)
		if byDir[dir] == nil {
			dirs = append(dirs, dir)
		}
		byDir[dir] = append(byDir[dir], f.Path)
	}
	for _, dir := range dirs {
		entity := strings.Split(dir, "/")[0]
		var fs []files.ManifestFile
		switch entity {
		case "partners":
			fs, err = shuffle[model.Partner](ctx, in, out, dir, byDir[dir], parts, rng)
		case "customers":
			fs, err = shuffle[model.Customer](ctx, in, out, dir, byDir[dir], parts, rng)
		case "subscriptions":
			fs, err = shuffle[model.Subscription](ctx, in, out, dir, byDir[dir], parts, rng)
		case "orders":
			fs, err = shuffle[model.Order](ctx, in, out, dir, byDir[dir], parts, rng)
		case "clusters":
			fs, err = shuffle[model.Cluster](ctx, in, out, dir, byDir[dir], parts, rng)
		case "servers":
			fs, err = shuffle[model.Server](ctx, in, out, dir, byDir[dir], parts, rng)
		case "users":
			fs, err = shuffle[model.User](ctx, in, out, dir, byDir[dir], parts, rng)
		case "devices":
			fs, err = shuffle[model.Device](ctx, in, out, dir, byDir[dir], parts, rng)
		case "numbers":
			fs, err = shuffle[model.Number](ctx, in, out, dir, byDir[dir], parts, rng)
		case "calls":
			fs, err = shuffle[model.CallLeg](ctx, in, out, dir, byDir[dir], parts, rng)
		default:
			err = fmt.Errorf("landingtest: unknown entity %s", entity)
		}
		if err != nil {
			return err
		}
		done = append(done, fs...)
	}
	return writeManifest(ctx, out, day, done)
}

// bucketRows bounds a bucket: a shuffle holds one bucket of rows at a time.
const bucketRows = 200_000

func shuffle[T any](ctx context.Context, in, out storage.Store, dir string, keys []string, parts int, rng *rand.Rand) ([]files.ManifestFile, error) {
	// Count the rows, to size the buckets.
	total := int64(0)
	for _, k := range keys {
		if err := each[T](ctx, in, k, func(T) error { total++; return nil }); err != nil {
			return nil, err
		}
	}
	nb := int(total/bucketRows) + 1
	buckets := make([]*os.File, nb)
	writers := make([]*pq.Writer[T], nb)
	for i := range buckets {
		f, err := os.CreateTemp("", "landingtest-*")
		if err != nil {
			return nil, err
		}
		os.Remove(f.Name())
		defer f.Close()
		buckets[i], writers[i] = f, pq.NewWriter[T](f)
	}
	for _, k := range keys {
		if err := each[T](ctx, in, k, func(row T) error { return writers[rng.IntN(nb)].Write(row) }); err != nil {
			return nil, err
		}
	}
	outs := make([]*partFile[T], parts)
	for i := range outs {
		outs[i] = newPart[T](ctx, out, fmt.Sprintf("%s/part-%d.parquet", dir, i))
	}
	var err error
	for i, f := range buckets {
		if err = writers[i].Close(); err != nil {
			break
		}
		st, _ := f.Stat()
		var rows []T
		if rows, err = pq.ReadAll[T](f, st.Size()); err != nil {
			break
		}
		rng.Shuffle(len(rows), func(a, b int) { rows[a], rows[b] = rows[b], rows[a] })
		for j, row := range rows {
			if err = outs[j%parts].w.Write(row); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	var done []files.ManifestFile
	for _, o := range outs {
		mf, cerr := o.close(err)
		if err == nil {
			err = cerr
		}
		done = append(done, mf)
	}
	return done, err
}

func each[T any](ctx context.Context, s storage.Store, key string, fn func(T) error) error {
	f, err := storage.OpenFile(ctx, s, key)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := pq.NewReader[T](f, f.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	defer r.Close()
	for {
		row, ok := r.Next()
		if !ok {
			return r.Err()
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}

// partFile is one output file streaming into its store through a pipe.
type partFile[T any] struct {
	key  string
	w    *pq.Writer[T]
	pw   *io.PipeWriter
	hw   *hashWriter
	done chan error
}

type hashWriter struct {
	w    io.Writer
	h    hash.Hash
	size int64
}

func (h *hashWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.size += int64(n)
	return n, err
}

func newPart[T any](ctx context.Context, out storage.Store, key string) *partFile[T] {
	pr, pw := io.Pipe()
	p := &partFile[T]{key: key, pw: pw, hw: &hashWriter{w: pw, h: sha256.New()}, done: make(chan error, 1)}
	p.w = pq.NewWriter[T](p.hw)
	go func() {
		_, err := out.Put(ctx, key, pr)
		pr.CloseWithError(err)
		p.done <- err
	}()
	return p
}

func (p *partFile[T]) close(cause error) (files.ManifestFile, error) {
	if cause == nil {
		cause = p.w.Close()
	}
	if cause != nil {
		p.pw.CloseWithError(cause)
		<-p.done
		return files.ManifestFile{}, cause
	}
	p.pw.Close()
	if err := <-p.done; err != nil {
		return files.ManifestFile{}, err
	}
	return files.ManifestFile{Path: p.key, Size: p.hw.size, SHA256: hex.EncodeToString(p.hw.h.Sum(nil))}, nil
}

// Gzip rewrites every CSV and JSON-lines file of the day in dir (a local
// landing zone) as <name>.gz, and the manifest with the compressed files'
// sizes and sha256.
func Gzip(dir string, day periods.Period) error {
	mpath := dir + "/" + files.ManifestKey(day)
	b, err := os.ReadFile(mpath)
	if err != nil {
		return err
	}
	var m files.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for i, f := range m.Files {
		if !strings.HasSuffix(f.Path, ".csv") && !strings.HasSuffix(f.Path, ".jsonl") {
			continue
		}
		raw, err := os.ReadFile(dir + "/" + f.Path)
		if err != nil {
			return err
		}
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(raw)
		if err := zw.Close(); err != nil {
			return err
		}
		if err := os.WriteFile(dir+"/"+f.Path+".gz", z.Bytes(), 0o644); err != nil {
			return err
		}
		os.Remove(dir + "/" + f.Path)
		sum := sha256.Sum256(z.Bytes())
		m.Files[i] = files.ManifestFile{Path: f.Path + ".gz", Size: int64(z.Len()), SHA256: hex.EncodeToString(sum[:])}
	}
	b, _ = json.MarshalIndent(m, "", "  ")
	return os.WriteFile(mpath, b, 0o644)
}

// Remanifest writes the manifest of the day in dir (a local landing zone)
// again, with the sizes and sha256 of its files as they are now: a test edits
// a delivered file, then delivers it again.
func Remanifest(dir string, day periods.Period) error {
	mpath := dir + "/" + files.ManifestKey(day)
	b, err := os.ReadFile(mpath)
	if err != nil {
		return err
	}
	var m files.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for i, f := range m.Files {
		raw, err := os.ReadFile(dir + "/" + f.Path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(raw)
		m.Files[i] = files.ManifestFile{Path: f.Path, Size: int64(len(raw)), SHA256: hex.EncodeToString(sum[:])}
	}
	b, _ = json.MarshalIndent(m, "", "  ")
	return os.WriteFile(mpath, b, 0o644)
}

func manifest(ctx context.Context, s storage.Store, day periods.Period) (*files.Manifest, error) {
	b, _, err := storage.ReadAll(ctx, s, files.ManifestKey(day))
	if err != nil {
		return nil, err
	}
	var m files.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func writeManifest(ctx context.Context, out storage.Store, day periods.Period, fs []files.ManifestFile) error {
	b, _ := json.MarshalIndent(files.Manifest{Day: day.ID(), Files: fs}, "", "  ")
	_, err := out.Put(ctx, files.ManifestKey(day), bytes.NewReader(b))
	return err
}
