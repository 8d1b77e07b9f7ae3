// Package files is the landing-zone source: a partner's own exports in tally's
// data contract, <root>/<entity>/region=<R>/day=<D>/<name>.{parquet,csv,jsonl},
// read once the day's manifest <root>/_ready/day=<D>.json says the delivery is
// whole (every file with its size and sha256).
package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"

	"tally/model"
	"tally/periods"
	"tally/source"
	"tally/storage"
)

// MaxLine bounds one CSV record or JSON line: a longer one fails the day with a
// clear message instead of taking the memory.
const MaxLine = 16 << 20

// Manifest is <root>/_ready/day=<D>.json, written last by whoever delivers.
type Manifest struct {
	Day   string         `json:"day"`
	Files []ManifestFile `json:"files"`
}

// ManifestFile is one delivered file.
type ManifestFile struct {
	Path   string `json:"path"` // relative to the landing root
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ManifestKey is where a day's manifest lives.
func ManifestKey(day periods.Period) string { return "_ready/day=" + day.ID() + ".json" }

// FileKey is where an entity's file of a region and day lives.
func FileKey(entity, region string, day periods.Period, name string) string {
	return fmt.Sprintf("%s/region=%s/day=%s/%s", entity, region, day.ID(), name)
}

// Source reads the landing zone in Root (a local directory or an S3 prefix).
// A day is read once, as it is yielded: every file is checked against the
// manifest and parsed as it streams by, its rows sorted on disk by region and
// customer (see spill.go), then merged back a customer at a time, so memory
// stays flat however large the day and in whatever order its files hold rows.
type Source struct {
	Root storage.Store
	// ReadyDeadline is how long after a day ends its manifest may arrive: until
	// then the day is waiting (no alert), after it the day fails.
	ReadyDeadline time.Duration
	// MaxCallLength is how long after a day ends its calls' CDR files may be
	// named (a call that starts at 23:59 is written when it ends).
	MaxCallLength time.Duration
	// TmpDir holds the day's sorted runs ("": the system's temp directory).
	TmpDir string
	Now    func() time.Time
	// Roster, when set, lists the day's partners and customers (by region)
	// instead of partners/ and customers/ files: the files source then only
	// supplements another source (webex) with what its API lacks. Every roster
	// customer is yielded, with or without rows here; partners/ and customers/
	// rows delivered anyway are rejected.
	Roster func(ctx context.Context, p periods.Period) ([]model.Partner, map[string][]model.Customer, error)

	mu    sync.Mutex
	notes map[string]map[string]any // days yielded, until sync takes their notes
}

var (
	_ source.Source  = (*Source)(nil)
	_ source.Noter   = (*Source)(nil)
	_ source.Counter = (*Source)(nil)
)

// Name is "files".
func (s *Source) Name() string { return "files" }

// Partners are the day's partners (the roster's, or those of its partners/
// files, each once, by id).
func (s *Source) Partners(ctx context.Context, p periods.Period) ([]model.Partner, error) {
	if s.Roster != nil {
		partners, _, err := s.Roster(ctx, p)
		return partners, err
	}
	m, err := s.manifest(ctx, p)
	if err != nil {
		return nil, err
	}
	var out []model.Partner
	seen := map[string]bool{}
	sch := Schemas["partners"]
	for _, f := range ordered(m.Files, "partners") {
		err := s.readRows(ctx, f, ManifestKey(p), sch, func(_ int64, cells []cell) error {
			pt, err := cellsAs[model.Partner](sch, cells)
			if err != nil {
				return err
			}
			if !seen[pt.PartnerID] {
				seen[pt.PartnerID] = true
				out = append(out, pt)
			}
			return nil
		}, func(int64, string, map[string]any) {}, nil)
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PartnerID < out[j].PartnerID })
	return out, nil
}

// Customers yields the day's customers, region by region, by customer_id; a
// region's rejected rows come first, in CustomerDays without a customer.
func (s *Source) Customers(ctx context.Context, p periods.Period, fn func(*source.CustomerDay) error) error {
	sc, err := s.scan(ctx, p)
	if err != nil {
		return err
	}
	defer sc.close()
	err = sc.yield(ctx, fn)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notes == nil {
		s.notes = map[string]map[string]any{}
	}
	s.notes[p.ID()] = sc.notes()
	return err
}

// Notes are what the ledger records of the day's input: every file with its
// size and sha256, columns the contract does not know, the rows each entity
// delivered, and the temporary disk the day's sort took. Sync asks last.
func (s *Source) Notes(p periods.Period) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.notes[p.ID()]
	delete(s.notes, p.ID())
	return n
}

// Delivered is how many rows of each entity the day's files held (the calls
// include the legs of its call records), parsed or rejected.
func (s *Source) Delivered(p periods.Period) map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, _ := s.notes[p.ID()]["rows_delivered"].(map[string]int64)
	return d
}

// ordered is the manifest's files of one entity, by region (model.Regions
// order), then path: a delivery sorted by customer within each region is then
// sorted as a whole, and its rows need no sort.
func ordered(files []ManifestFile, entity string) []ManifestFile {
	var out []ManifestFile
	for _, f := range files {
		if strings.HasPrefix(f.Path, entity+"/") {
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := rankOf(out[i].Path), rankOf(out[j].Path)
		if ri != rj {
			return ri < rj
		}
		return out[i].Path < out[j].Path
	})
	return out
}

// rankOf is the region rank of a checked manifest path.
func rankOf(p string) int {
	r, _ := strings.CutPrefix(strings.Split(p, "/")[1], "region=")
	return slices.Index(model.Regions, r)
}

// manifest reads the day's manifest: before it exists the day is waiting
// (until ReadyDeadline). Its files' sizes and sha256 are checked as they are
// parsed (read), so each file is read once.
func (s *Source) manifest(ctx context.Context, p periods.Period) (*Manifest, error) {
	b, _, err := storage.ReadAll(ctx, s.Root, ManifestKey(p))
	if errors.Is(err, storage.ErrNotFound) {
		deadline := p.End().Add(s.ReadyDeadline)
		if s.Now().Before(deadline) {
			return nil, fmt.Errorf("%w: no manifest %s yet (the day is waiting until %s, source.files.ready_deadline)", source.ErrWaiting, ManifestKey(p), deadline.Format(time.RFC3339))
		}
		return nil, source.Permanent(fmt.Errorf("files: day %s was not delivered: no manifest %s by %s (source.files.ready_deadline)", p.ID(), ManifestKey(p), deadline.Format(time.RFC3339)))
	}
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, source.Permanent(fmt.Errorf("files: manifest %s: %v", ManifestKey(p), err))
	}
	for _, f := range m.Files {
		if _, _, err := s.place(f.Path, p); err != nil {
			return nil, err
		}
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	return &m, nil
}

// place checks a manifest path is a file of this day in the landing layout and
// returns its entity and region. Nothing outside the landing root is ever read.
func (s *Source) place(p string, day periods.Period) (entity, region string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", source.Permanent(fmt.Errorf("files: manifest path %q: %s (want <entity>/region=<R>/day=%s/<name>.{parquet,csv,jsonl,csv.gz,jsonl.gz})", p, why, day.ID()))
	}
	if storage.ValidateKey(p) != nil || path.Clean(p) != p {
		return bad("not a clean relative path inside the landing root")
	}
	parts := strings.Split(p, "/")
	if len(parts) != 4 {
		return bad("not four segments")
	}
	if _, ok := Schemas[parts[0]]; !ok {
		return bad("unknown entity " + parts[0])
	}
	region, ok := strings.CutPrefix(parts[1], "region=")
	if !ok || !model.ValidRegion(region) {
		return bad("unknown region")
	}
	if parts[2] != "day="+day.ID() {
		return bad("another day")
	}
	if _, _, ok := formatOf(parts[3]); !ok {
		return bad("unknown format (.parquet, .csv, .jsonl, .csv.gz or .jsonl.gz)")
	}
	return parts[0], region, nil
}

func (s *Source) hash(ctx context.Context, key string) (string, int64, error) {
	return s.stream(ctx, key, nil)
}

// stream streams key to parse (nil: only hash it) and returns the sha256 and size
// of all of its bytes, the ones parse left unread included.
func (s *Source) stream(ctx context.Context, key string, parse func(io.Reader) error) (sum string, size int64, err error) {
	rc, _, err := s.Root.Get(ctx, key)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	r := io.TeeReader(rc, h)
	var perr error
	if parse != nil {
		perr = parse(&counter{r: r, n: &size})
	}
	rest, err := io.Copy(io.Discard, r)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), size + rest, perr
}

// readCallFile streams a call-record file (they come without a manifest) to
// parse and returns the object read.
func (s *Source) readCallFile(ctx context.Context, key string, parse func(io.Reader) error) (storage.Object, error) {
	rc, obj, err := s.Root.Get(ctx, key)
	if err != nil {
		return obj, fmt.Errorf("files: %s: %w", key, err)
	}
	defer rc.Close()
	return obj, parse(rc)
}

// verified parses a delivered file while checking it against its manifest
// entry: a size or sha256 that differs is a partial or changed delivery, never
// ingested, and that verdict wins over whatever parse made of the bytes.
func (s *Source) verified(ctx context.Context, f ManifestFile, manifest string, parse func(io.Reader) error) error {
	sum, size, err := s.stream(ctx, f.Path, parse)
	if sum == "" && err != nil {
		return fmt.Errorf("files: manifest %s lists %s: %w", manifest, f.Path, err)
	}
	if size != f.Size || sum != f.SHA256 {
		return source.Permanent(fmt.Errorf("files: %s is %d bytes with sha256 %s, but manifest %s says %d bytes with sha256 %s: a partial or changed delivery is not ingested",
			f.Path, size, sum, manifest, f.Size, f.SHA256))
	}
	return err
}

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n *int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// readRows streams one delivered file's rows to row (rejected ones to bad),
// checking its bytes against the manifest entry as they are read. A missing
// required column or a column of the wrong type fails the day; unknown columns
// are passed to noteUnknown.
func (s *Source) readRows(ctx context.Context, f ManifestFile, manifest string, sc *schema, row rowFunc, bad badFunc, noteUnknown func([]string)) error {
	name := path.Base(f.Path)
	format, gz, _ := formatOf(name)
	var unknown []string
	if format == "parquet" { // random access: check the file, then read it
		if err := s.verified(ctx, f, manifest, nil); err != nil {
			return err
		}
		file, err := storage.OpenFile(ctx, s.Root, f.Path)
		if err != nil {
			return fmt.Errorf("files: %w", err)
		}
		defer file.Close()
		pf, err := parquet.OpenFile(file, file.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
		if err != nil {
			return source.Permanent(fmt.Errorf("files: %s: not a Parquet file: %v", f.Path, err))
		}
		bound, unknown, err := sc.parquetColumns(f.Path, pf)
		if err != nil {
			return err
		}
		if err := readParquet(pf, f.Path, sc, bound, row, bad); err != nil {
			return err
		}
		if noteUnknown != nil && len(unknown) > 0 {
			noteUnknown(unknown)
		}
		return nil
	}
	err := s.verified(ctx, f, manifest, func(r io.Reader) error {
		if gz {
			z, err := gunzip(r, f.Path)
			if err != nil {
				return err
			}
			r = z
		}
		var err error
		if format == "csv" {
			unknown, err = readCSV(r, f.Path, sc, row, bad)
		} else {
			unknown, err = readJSONL(r, f.Path, sc, row, bad)
		}
		return err
	})
	if err != nil {
		return err
	}
	if noteUnknown != nil && len(unknown) > 0 {
		noteUnknown(unknown)
	}
	return nil
}
