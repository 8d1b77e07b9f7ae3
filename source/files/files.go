// Package files is the landing-zone source: a partner's own exports in tally's
// data contract, <root>/<entity>/region=<R>/day=<D>/<name>.{parquet,csv,jsonl},
// read once the day's manifest <root>/_ready/day=<D>.json says the delivery is
// whole (every file with its size and sha256).
package files

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"reflect"
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
type Source struct {
	Root storage.Store
	// ReadyDeadline is how long after a day ends its manifest may arrive: until
	// then the day is waiting (no alert), after it the day fails.
	ReadyDeadline time.Duration
	// MaxCallLength is how long after a day ends its calls' CDR files may be
	// named (a call that starts at 23:59 is written when it ends).
	MaxCallLength time.Duration
	// TmpDir holds the spill files of a day's call records ("": the system's).
	TmpDir string
	Now    func() time.Time
	// Roster, when set, lists the day's partners and customers (by region)
	// instead of partners/ and customers/ files: the files source then only
	// supplements another source (webex) with what its API lacks. Every roster
	// customer is yielded, with or without rows here; partners/ and customers/
	// rows delivered anyway are rejected.
	Roster func(ctx context.Context, p periods.Period) ([]model.Partner, map[string][]model.Customer, error)

	// The days read lately (sync reads Partners, Customers, then Notes of one
	// day; a parallel backfill reads several days at once).
	mu     sync.Mutex
	loaded map[string]*day
	order  []string
	notes  map[string]map[string]any // days yielded, until sync takes their notes
}

// keep is how many parsed days the source holds for their runs.
const keep = 4

var _ source.Source = (*Source)(nil)

// Name is "files".
func (s *Source) Name() string { return "files" }

// day is one delivered day, parsed and grouped by region and customer.
type day struct {
	id        string
	partners  []model.Partner
	customers map[string][]*source.CustomerDay // region → customers sorted by id
	rejected  map[string][]source.Rejected     // region → rows no customer can take
	notes     map[string]any
	calls     *spill[placed]  // the call records' legs, in yield order (nil: none)
	conflicts map[string]bool // call ids delivered both as calls/ rows and as CDRs
	tmp       string          // their spill directory
}

// release removes the day's spill files.
func (d *day) release() {
	if d.calls != nil {
		d.calls.remove()
	}
	if d.tmp != "" {
		os.RemoveAll(d.tmp)
	}
}

// Partners reads the day (once) and returns its partners.
func (s *Source) Partners(ctx context.Context, p periods.Period) ([]model.Partner, error) {
	d, err := s.read(ctx, p)
	if err != nil {
		return nil, err
	}
	return d.partners, nil
}

// Customers yields the day's customers, region by region, by customer_id; a
// region's rejected rows come first, in a CustomerDay without a customer. The
// call records' legs are read from their spill as each customer is yielded.
// Once yielded, the day is let go (its notes stay for Notes).
func (s *Source) Customers(ctx context.Context, p periods.Period, fn func(*source.CustomerDay) error) error {
	d, err := s.read(ctx, p)
	if err != nil {
		return err
	}
	defer s.done(d)
	var legs *merged[placed]
	if d.calls != nil {
		if legs, err = d.calls.iter(); err != nil {
			return err
		}
		defer legs.close()
	}
	for _, region := range model.Regions {
		if rej := d.rejected[region]; len(rej) > 0 {
			if err := fn(&source.CustomerDay{Region: region, Rejected: rej}); err != nil {
				return err
			}
		}
		for _, cd := range d.customers[region] {
			if legs != nil {
				d.withCDRLegs(cd, legs)
			}
			if err := fn(cd); err != nil {
				return err
			}
		}
	}
	return nil
}

// done lets a yielded day go: its spill files are removed, its notes kept.
func (s *Source) done(d *day) {
	d.release()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded[d.id] == d {
		delete(s.loaded, d.id)
		for i, id := range s.order {
			if id == d.id {
				s.order = append(s.order[:i], s.order[i+1:]...)
				break
			}
		}
	}
	if s.notes == nil {
		s.notes = map[string]map[string]any{}
	}
	s.notes[d.id] = d.notes
}

// Notes are what the ledger records of the day's input: every file with its
// size and sha256, and columns the contract does not know. Sync asks last.
func (s *Source) Notes(p periods.Period) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.notes[p.ID()]
	delete(s.notes, p.ID())
	return n
}

func (s *Source) read(ctx context.Context, p periods.Period) (*day, error) {
	s.mu.Lock()
	d := s.loaded[p.ID()]
	s.mu.Unlock()
	if d != nil {
		return d, nil
	}
	d, err := s.parseDay(ctx, p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded == nil {
		s.loaded = map[string]*day{}
	}
	if _, ok := s.loaded[p.ID()]; !ok {
		s.order = append(s.order, p.ID())
	}
	s.loaded[p.ID()] = d
	for len(s.order) > keep {
		s.loaded[s.order[0]].release()
		delete(s.loaded, s.order[0])
		s.order = s.order[1:]
	}
	return d, nil
}

// parseDay reads, checks and groups one delivered day.
func (s *Source) parseDay(ctx context.Context, p periods.Period) (*day, error) {
	m, err := s.manifest(ctx, p)
	if err != nil {
		return nil, err
	}
	d := &day{id: p.ID(), customers: map[string][]*source.CustomerDay{}, rejected: map[string][]source.Rejected{}, conflicts: map[string]bool{}}
	rows := map[string]map[string][]reflect.Value{} // entity → region → rows
	extra := map[string][]string{}
	for _, f := range m.Files {
		entity, region, err := s.place(f.Path, p)
		if err != nil {
			return nil, err
		}
		vals, rejected, unknown, err := s.parse(ctx, f, ManifestKey(p), entity)
		if err != nil {
			return nil, err
		}
		if rows[entity] == nil {
			rows[entity] = map[string][]reflect.Value{}
		}
		rows[entity][region] = append(rows[entity][region], vals...)
		for i := range rejected {
			rejected[i].Entity = entity
		}
		d.rejected[region] = append(d.rejected[region], rejected...)
		if len(unknown) > 0 {
			extra[f.Path] = unknown
		}
	}
	if s.Roster != nil {
		if err := s.roster(ctx, p, d, rows); err != nil {
			return nil, err
		}
	}
	d.group(rows)
	d.notes = map[string]any{"input_files": m.Files}
	if len(extra) > 0 {
		d.notes["extra_columns"] = extra
	}
	if err := s.addCDRLegs(ctx, p, d); err != nil {
		return nil, err
	}
	return d, nil
}

// roster puts the Roster's partners and customers in place of delivered ones.
func (s *Source) roster(ctx context.Context, p periods.Period, d *day, rows map[string]map[string][]reflect.Value) error {
	partners, customers, err := s.Roster(ctx, p)
	if err != nil {
		return err
	}
	for _, entity := range []string{"partners", "customers"} {
		for region, vals := range rows[entity] {
			for _, v := range vals {
				d.reject(region, entity, v, entity+" come from the primary source, not the landing zone")
			}
		}
	}
	rows["partners"] = map[string][]reflect.Value{}
	rows["customers"] = map[string][]reflect.Value{}
	for _, pt := range partners {
		rows["partners"][model.Regions[0]] = append(rows["partners"][model.Regions[0]], reflect.ValueOf(pt))
	}
	for region, cs := range customers {
		for _, c := range cs {
			rows["customers"][region] = append(rows["customers"][region], reflect.ValueOf(c))
		}
	}
	return nil
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
		return "", "", source.Permanent(fmt.Errorf("files: manifest path %q: %s (want <entity>/region=<R>/day=%s/<name>.{parquet,csv,jsonl})", p, why, day.ID()))
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
	switch path.Ext(parts[3]) {
	case ".parquet", ".csv", ".jsonl":
	default:
		return bad("unknown format")
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

// parse reads one file into rows of its entity. A malformed row is rejected
// with its line (or row) and reason; a missing required column or a column of
// the wrong type fails the day.
func (s *Source) parse(ctx context.Context, f ManifestFile, manifest, entity string) (rows []reflect.Value, rejected []source.Rejected, unknown []string, err error) {
	sc := Schemas[entity]
	var parse func(r io.Reader) error
	switch path.Ext(f.Path) {
	case ".csv":
		parse = func(r io.Reader) error { rows, rejected, unknown, err = parseCSV(r, f.Path, sc); return err }
	case ".jsonl":
		parse = func(r io.Reader) error { rows, rejected, unknown, err = parseJSONL(r, f.Path, sc); return err }
	default: // Parquet needs random access: check the file, then read it
		if err := s.verified(ctx, f, manifest, nil); err != nil {
			return nil, nil, nil, err
		}
		return s.parseParquet(ctx, f.Path, sc)
	}
	if err := s.verified(ctx, f, manifest, parse); err != nil {
		return nil, nil, nil, err
	}
	return rows, rejected, unknown, nil
}

func parseCSV(in io.Reader, key string, sc *schema) (rows []reflect.Value, rejected []source.Rejected, unknown []string, err error) {
	r := csv.NewReader(&lineLimit{r: bufio.NewReader(in), max: MaxLine, file: key})
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, nil, nil, source.Permanent(fmt.Errorf("files: %s: header: %v", key, err))
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	cols, unknown, err := sc.bind(key, header)
	if err != nil {
		return nil, nil, nil, err
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return rows, rejected, unknown, nil
		}
		line, _ := r.FieldPos(0)
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, nil, nil, source.Permanent(fmt.Errorf("files: %s line %d: %v (a broken quote makes every later line unreadable, so the day fails)", key, pe.StartLine, pe.Err))
		}
		if err != nil {
			return nil, nil, nil, source.Permanent(fmt.Errorf("files: %s: %w", key, err))
		}
		raw := map[string]any{}
		v := reflect.New(sc.typ).Elem()
		var rowErr error
		if len(rec) != len(header) {
			rowErr = fmt.Errorf("%d fields, the header has %d", len(rec), len(header))
		}
		for i, cell := range rec {
			if i < len(header) {
				raw[header[i]] = cell
			}
			if rowErr == nil && i < len(cols) && cols[i] != nil {
				rowErr = cols[i].set(v, cell)
			}
		}
		if rowErr != nil {
			rejected = append(rejected, source.Rejected{File: key, Line: int64(line), Reason: rowErr.Error(), Row: raw})
			continue
		}
		rows = append(rows, v)
	}
}

func parseJSONL(in io.Reader, key string, sc *schema) (rows []reflect.Value, rejected []source.Rejected, unknown []string, err error) {
	scan := bufio.NewScanner(in)
	scan.Buffer(make([]byte, 64*1024), MaxLine)
	seen := map[string]bool{}
	line := int64(0)
	for scan.Scan() {
		line++
		text := bytes.TrimSpace(scan.Bytes())
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\ufeff"))
		}
		if len(text) == 0 {
			continue
		}
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			rejected = append(rejected, source.Rejected{File: key, Line: line, Reason: "not a JSON object: " + err.Error(), Row: map[string]any{"line": string(text)}})
			continue
		}
		v := reflect.New(sc.typ).Elem()
		var rowErr error
		for name, cell := range obj {
			i, ok := sc.byName[name]
			if !ok {
				if !seen[name] {
					seen[name] = true
					unknown = append(unknown, name)
				}
				continue
			}
			if rowErr == nil {
				rowErr = sc.columns[i].set(v, cell)
			}
		}
		for _, c := range sc.columns {
			if _, ok := obj[c.Name]; !ok && !c.Optional && rowErr == nil {
				rowErr = fmt.Errorf("column %s: missing, but required (%s)", c.Name, c.kind)
			}
		}
		if rowErr != nil {
			rejected = append(rejected, source.Rejected{File: key, Line: line, Reason: rowErr.Error(), Row: obj})
			continue
		}
		rows = append(rows, v)
	}
	if err := scan.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, nil, nil, source.Permanent(fmt.Errorf("files: %s line %d: longer than %d MiB", key, line+1, MaxLine>>20))
		}
		return nil, nil, nil, fmt.Errorf("files: %s: %w", key, err)
	}
	sort.Strings(unknown)
	return rows, rejected, unknown, nil
}

// bind maps a header to the schema's columns: a missing required column fails
// the day; unknown columns are returned to be noted.
func (sc *schema) bind(file string, header []string) (cols []*Column, unknown []string, err error) {
	have := map[string]bool{}
	for _, h := range header {
		i, ok := sc.byName[h]
		if !ok {
			unknown = append(unknown, h)
			cols = append(cols, nil)
			continue
		}
		have[h] = true
		c := sc.columns[i]
		cols = append(cols, &c)
	}
	for _, c := range sc.columns {
		if !have[c.Name] && !c.Optional {
			return nil, nil, source.Permanent(fmt.Errorf("files: %s: missing required column %s (%s)", file, c.Name, c.kind))
		}
	}
	return cols, unknown, nil
}

// parquetKind is the physical type a contract kind is stored as.
func parquetKinds(k kind) []parquet.Kind {
	switch k {
	case kString:
		return []parquet.Kind{parquet.ByteArray, parquet.FixedLenByteArray}
	case kInt:
		return []parquet.Kind{parquet.Int64, parquet.Int32} // INT32 widens to INT64
	case kFloat:
		return []parquet.Kind{parquet.Double, parquet.Float}
	case kBool:
		return []parquet.Kind{parquet.Boolean}
	case kTime:
		return []parquet.Kind{parquet.Int64}
	case kDate:
		return []parquet.Kind{parquet.Int32}
	}
	return nil
}

func (s *Source) parseParquet(ctx context.Context, key string, sc *schema) (rows []reflect.Value, rejected []source.Rejected, unknown []string, err error) {
	f, err := storage.OpenFile(ctx, s.Root, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("files: %w", err)
	}
	defer f.Close()
	pf, err := parquet.OpenFile(f, f.Size())
	if err != nil {
		return nil, nil, nil, source.Permanent(fmt.Errorf("files: %s: not a Parquet file: %v", key, err))
	}
	have := map[string]bool{}
	for _, field := range pf.Schema().Fields() {
		i, ok := sc.byName[field.Name()]
		if !ok {
			unknown = append(unknown, field.Name())
			continue
		}
		have[field.Name()] = true
		c := sc.columns[i]
		if c.kind == kList {
			if field.Leaf() {
				return nil, nil, nil, source.Permanent(fmt.Errorf("files: %s: column %s is %s, want %s", key, c.Name, field.Type(), c.kind))
			}
			continue
		}
		if !field.Leaf() || !containsKind(parquetKinds(c.kind), field.Type().Kind()) {
			return nil, nil, nil, source.Permanent(fmt.Errorf("files: %s: column %s is %s, want %s", key, c.Name, field.Type(), c.kind))
		}
	}
	for _, c := range sc.columns {
		if !have[c.Name] && !c.Optional {
			return nil, nil, nil, source.Permanent(fmt.Errorf("files: %s: missing required column %s (%s)", key, c.Name, c.kind))
		}
	}
	rows, err = sc.readParquet(pf)
	if err != nil {
		return nil, nil, nil, source.Permanent(fmt.Errorf("files: %s: %v", key, err))
	}
	return rows, nil, unknown, nil
}

func containsKind(ks []parquet.Kind, k parquet.Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// readAs reads every row of pf into values of T, by column name (parquet-go
// converts INT32 to INT64 and fills absent optional columns with nulls).
func readAs[T any](pf *parquet.File) ([]reflect.Value, error) {
	r := parquet.NewGenericReader[T](pf)
	defer r.Close()
	var out []reflect.Value
	buf := make([]T, 1024)
	for {
		n, err := r.Read(buf)
		for i := 0; i < n; i++ {
			v := reflect.New(reflect.TypeOf(buf[i])).Elem()
			v.Set(reflect.ValueOf(buf[i]))
			out = append(out, v)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		clear(buf)
	}
}

// lineLimit fails a read once a line grows past max bytes (a 2 GB line must not
// take 2 GB of memory).
type lineLimit struct {
	r    *bufio.Reader
	max  int
	run  int
	file string
}

func (l *lineLimit) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for _, b := range p[:n] {
		if b == '\n' {
			l.run = 0
			continue
		}
		l.run++
		if l.run > l.max {
			return 0, source.Permanent(fmt.Errorf("files: %s: a line longer than %d MiB", l.file, l.max>>20))
		}
	}
	return n, err
}
