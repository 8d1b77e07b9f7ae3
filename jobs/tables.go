// Package jobs owns tally's jobs (sync-clusters, license-usage, …): what each
// computes for a period and the keys it writes. The runner wraps them with leases,
// retries and the ledger.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"tally/model"
	"tally/periods"
	"tally/pq"
	"tally/runner"
	"tally/storage"
)

// Job names: a public contract (they are in storage keys).
const (
	SyncClusters = "sync-clusters"
	LicenseUsage = "license-usage"
)

// Inventory entities, in the order they are written.
var Entities = []string{"partners", "customers", "subscriptions", "orders", "clusters", "servers", "users", "devices", "numbers"}

// UsageGrains are the usage/ tables.
var UsageGrains = []string{"license", "cluster", "subscription", "customer"}

// InventoryKey is where an entity's day snapshot for a region lives.
func InventoryKey(entity, region string, day periods.Period) string {
	return fmt.Sprintf("inventory/%s/region=%s/day=%s/part-0.parquet", entity, region, day.ID())
}

// CallsKey is where a region's call legs of a day live.
func CallsKey(region string, day periods.Period) string {
	return fmt.Sprintf("calls/region=%s/day=%s/part-0.parquet", region, day.ID())
}

// UsageKey is where a usage grain for a region and day lives.
func UsageKey(grain, region string, day periods.Period) string {
	return fmt.Sprintf("usage/%s/region=%s/day=%s/part-0.parquet", grain, region, day.ID())
}

// QuarantineKey is where malformed source rows of an entity go, with their reasons.
func QuarantineKey(entity, region string, day periods.Period) string {
	return fmt.Sprintf("quarantine/%s/region=%s/day=%s/part-0.jsonl", entity, region, day.ID())
}

// partRows bounds a part file: a table of more rows is written as part-0,
// part-1, … of at most partRows rows each (one row group). parquet-go keeps
// every page's index entry (about 100 bytes) until a file's footer: in one
// file per table, the 54K pages of a 100K-customer region's day were 5 MiB of
// a sync's live memory, growing with the estate; a part bounds them.
var partRows int64 = pq.RowGroupRows

// partsMeta is the footer key of a table's last part that says how many parts
// the table has: readers stop there, so parts an earlier run left past it
// (the run that wrote fewer was stopped before it removed them) are never
// read as this run's.
const partsMeta = "tally.parts"

// PartKey is part n of the table whose first part is key (…/part-0.parquet).
func PartKey(key string, n int) string {
	return key[:strings.LastIndex(key, "/")+1] + "part-" + strconv.Itoa(n) + ".parquet"
}

// partOf is the part number of a key named part-<n>.parquet.
func partOf(key string) (int, bool) {
	name := key[strings.LastIndex(key, "/")+1:]
	digits, ok := strings.CutSuffix(strings.TrimPrefix(name, "part-"), ".parquet")
	n, err := strconv.Atoi(digits)
	return n, ok && err == nil && n >= 0 && strconv.Itoa(n) == digits && strings.HasPrefix(name, "part-")
}

// listParts lists the parts in the folder of the table whose first part is
// key: each part's number and ETag.
func listParts(ctx context.Context, s storage.Store, key string) (map[int]string, error) {
	objs, err := s.List(ctx, key[:strings.LastIndex(key, "/")+1]+"part-")
	if err != nil {
		return nil, fmt.Errorf("list the parts of %s: %w", key, err)
	}
	parts := map[int]string{}
	for _, o := range objs {
		if n, ok := partOf(o.Key); ok {
			parts[n] = o.ETag
		}
	}
	return parts, nil
}

// table streams rows of T as a Parquet output of one or more parts. Parts are
// published together by commit, which then removes the parts past them left
// by an earlier run that wrote more.
type table[T any] struct {
	ctx    context.Context
	rc     *runner.RunContext
	region string
	key    string // part-0's
	done   []finishedPart
	out    *runner.OutputWriter // the current part
	w      *pq.Writer[T]        // nil once finished
	rows   int64                // the current part's, once finished
	err    error                // why finish failed
}

// finishedPart is a part whose footer is written, waiting for commit.
type finishedPart struct {
	out  *runner.OutputWriter
	rows int64
}

func openTable[T any](ctx context.Context, rc *runner.RunContext, region, key string) (*table[T], error) {
	out, err := rc.Open(ctx, region, key)
	if err != nil {
		return nil, err
	}
	return &table[T]{ctx: ctx, rc: rc, region: region, key: key, out: out, w: pq.NewWriter[T](out)}, nil
}

func (t *table[T]) add(rows ...T) error {
	if len(rows) == 0 {
		return nil
	}
	if t.w == nil {
		return fmt.Errorf("%T rows added to a finished table", rows[0])
	}
	for len(rows) > 0 {
		if t.w.Rows() == partRows {
			if err := t.nextPart(); err != nil {
				return err
			}
		}
		n := min(int64(len(rows)), partRows-t.w.Rows())
		if err := t.w.Write(rows[:n]...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// nextPart finishes the current part and opens the next.
func (t *table[T]) nextPart() error {
	if err := t.w.Close(); err != nil {
		return fmt.Errorf("%s: %w", PartKey(t.key, len(t.done)), err)
	}
	t.done = append(t.done, finishedPart{out: t.out, rows: t.w.Rows()})
	t.out, t.w = nil, nil
	out, err := t.rc.Open(t.ctx, t.region, PartKey(t.key, len(t.done)))
	if err != nil {
		return err
	}
	t.out, t.w = out, pq.NewWriter[T](out)
	return nil
}

// Rows is how many rows were added.
func (t *table[T]) Rows() int64 {
	n := t.rows
	if t.w != nil {
		n = t.w.Rows()
	}
	for _, p := range t.done {
		n += p.rows
	}
	return n
}

// finish writes the current part's footer and lets go of the writer's
// buffers; the parts are published only by commit. A sync finishes a region's
// tables when the source moves on to the next region, so one region's writers
// are open.
func (t *table[T]) finish() error {
	if t == nil {
		return nil
	}
	if t.w != nil {
		t.rows = t.w.Rows()
		t.w.SetMeta(partsMeta, strconv.Itoa(len(t.done)+1))
		if t.err = t.w.Close(); t.err != nil {
			t.out.Abort(t.err)
		}
		t.w = nil
	}
	return t.err
}

// commit publishes the parts in order, then removes the parts past the last
// that an earlier run left (it wrote more rows), so a reader of the table's
// folder reads this run's rows only. commit and abort do nothing on a table
// that was never opened, so a partly opened set can be aborted as a whole.
func (t *table[T]) commit() error {
	if t == nil || t.out == nil {
		return nil
	}
	if err := t.finish(); err != nil {
		t.abort(err)
		return err
	}
	for i, p := range t.done {
		if err := p.out.Commit(p.rows); err != nil {
			for _, rest := range t.done[i+1:] {
				rest.out.Abort(err)
			}
			t.out.Abort(err)
			t.done, t.out = nil, nil
			return err
		}
	}
	err := t.out.Commit(t.rows)
	t.out = nil
	if err != nil {
		return err
	}
	return t.removeStaleParts(len(t.done) + 1)
}

// removeStaleParts removes part n and every part after it, the last first,
// so the parts left are always numbered without a gap.
func (t *table[T]) removeStaleParts(n int) error {
	store, err := t.rc.Store(t.region)
	if err != nil {
		return err
	}
	parts, err := listParts(t.ctx, store, t.key)
	if err != nil {
		return err
	}
	var stale []int
	for k := range parts {
		if k >= n {
			stale = append(stale, k)
		}
	}
	slices.Sort(stale)
	for i := len(stale) - 1; i >= 0; i-- {
		if err := t.rc.Remove(t.ctx, t.region, PartKey(t.key, stale[i])); err != nil {
			return err
		}
	}
	return nil
}

func (t *table[T]) abort(err error) {
	if t == nil {
		return
	}
	for _, p := range t.done {
		p.out.Abort(err)
	}
	if t.out != nil {
		t.out.Abort(err)
	}
	t.done, t.out = nil, nil
}

// committer is a table of any row type.
type committer interface {
	finish() error
	commit() error
	abort(error)
}

// commitAll publishes every table, or none if one fails to close (the rest are aborted).
func commitAll(ts []committer) error {
	for i, t := range ts {
		if err := t.commit(); err != nil {
			for _, rest := range ts[i+1:] {
				rest.abort(err)
			}
			return err
		}
	}
	return nil
}

func abortAll(ts []committer, err error) {
	for _, t := range ts {
		t.abort(err)
	}
}

// input reads a table's parts in order (part-0, part-1, …), one file open at
// a time: the parts listed when it was opened, each checked to be the same
// object as then, so a re-run publishing the table again while it is read
// fails the read instead of mixing one run's parts with another's.
type input[T any] struct {
	ctx   context.Context
	s     storage.Store
	first string   // part-0's key
	etags []string // each part's, when the input was opened
	part  int      // the part being read
	f     storage.File
	r     *pq.Reader[T]
	err   error // opening the next part failed
}

// openInput opens a Parquet input; an input missing from storage names its key.
func openInput[T any](ctx context.Context, s storage.Store, key string) (*input[T], error) {
	if n, ok := partOf(key); !ok || n != 0 {
		return nil, fmt.Errorf("input %s: not a table's first part (…/part-0.parquet)", key)
	}
	parts, err := listParts(ctx, s, key)
	if err != nil {
		return nil, err
	}
	in := &input[T]{ctx: ctx, s: s, first: key}
	for etag, ok := parts[0]; ok; etag, ok = parts[len(in.etags)] {
		in.etags = append(in.etags, etag)
	}
	if len(in.etags) == 0 {
		return nil, fmt.Errorf("input %s is missing: %w", key, storage.ErrNotFound)
	}
	if err := in.open(0); err != nil {
		return nil, err
	}
	return in, nil
}

func (in *input[T]) key() string { return PartKey(in.first, in.part) }

// open opens part n, checking it is still the object listed.
func (in *input[T]) open(n int) error {
	key := PartKey(in.first, n)
	f, err := storage.OpenFile(in.ctx, in.s, key)
	if err == nil && f.ETag() != in.etags[n] {
		f.Close()
		err = fmt.Errorf("input %s changed while %s was read (a re-run published it again): read it again", key, in.first)
	}
	if errors.Is(err, storage.ErrNotFound) {
		err = fmt.Errorf("input %s was removed while %s was read (a re-run published it again): read it again (%v)", key, in.first, err)
	}
	if err != nil {
		return err
	}
	r, err := pq.NewReader[T](f, f.Size())
	if err != nil {
		f.Close()
		return fmt.Errorf("input %s: %w", key, err)
	}
	in.part, in.f, in.r = n, f, r
	return nil
}

// Next returns the next row; ok is false at the end or on error (see Err).
func (in *input[T]) Next() (T, bool) {
	for {
		row, ok := in.r.Next()
		if ok || in.r.Err() != nil || in.err != nil || in.last() {
			return row, ok
		}
		in.closeFile()
		if in.err = in.open(in.part + 1); in.err != nil {
			return row, false
		}
	}
}

// last reports whether the part being read is the table's last: the one whose
// footer says so (files of older runs say nothing), or the last listed.
func (in *input[T]) last() bool {
	if n, ok := in.r.Meta(partsMeta); ok {
		if n != strconv.Itoa(in.part+1) {
			in.err = fmt.Errorf("input %s: its footer says the table has %s parts, and it is part %d", in.key(), n, in.part)
		}
		return true
	}
	return in.part+1 == len(in.etags)
}

// Err is the first read error (nil at a clean end), naming the part.
func (in *input[T]) Err() error {
	if in.err != nil {
		return in.err
	}
	if err := in.r.Err(); err != nil {
		return fmt.Errorf("input %s: %w", in.key(), err)
	}
	return nil
}

func (in *input[T]) closeFile() {
	if in.f != nil {
		in.r.Close()
		in.f.Close()
		in.f = nil
	}
}

// Close releases the open part.
func (in *input[T]) Close() {
	if in != nil {
		in.closeFile()
	}
}

// stream reads a Parquet input sorted by customer_id, a customer at a time.
type stream[T any] struct {
	name string // the input's key
	r    *input[T]
	key  func(*T) string
	head T
	ok   bool
	buf  []T
}

func openStream[T any](ctx context.Context, s storage.Store, key string, keyOf func(*T) string) (*stream[T], error) {
	r, err := openInput[T](ctx, s, key)
	if err != nil {
		return nil, err
	}
	st := &stream[T]{name: key, r: r, key: keyOf}
	// A read that fails here would look like an empty input to a merge that
	// asks peek which customer comes next; later reads fail in take.
	if st.head, st.ok = r.Next(); !st.ok && r.Err() != nil {
		st.close()
		return nil, r.Err()
	}
	return st, nil
}

// peek is the next row's customer.
func (s *stream[T]) peek() (string, bool) {
	if !s.ok {
		return "", false
	}
	return s.key(&s.head), true
}

// take returns the rows of customer k (the stream must be at or before k),
// in a buffer the next take reuses.
func (s *stream[T]) take(k string) ([]T, error) {
	out := s.buf[:0]
	for s.ok && s.key(&s.head) == k {
		out = append(out, s.head)
		s.head, s.ok = s.r.Next()
	}
	s.buf = out
	if err := s.check(k); err != nil {
		return nil, err
	}
	return out, nil
}

// each calls fn with customer k's rows as they are read, passing over the rows
// of customers before k; it holds none of them (fn must not keep the
// pointer): for call legs, where one customer's day can be large.
func (s *stream[T]) each(k string, fn func(*T)) error {
	for s.ok && s.key(&s.head) < k {
		passed := s.key(&s.head)
		s.head, s.ok = s.r.Next()
		if err := s.check(passed); err != nil {
			return err
		}
	}
	for s.ok && s.key(&s.head) == k {
		fn(&s.head)
		s.head, s.ok = s.r.Next()
	}
	return s.check(k)
}

// check fails when the stream, just past customer k, is out of order or
// could not be read.
func (s *stream[T]) check(k string) error {
	if s.ok && s.key(&s.head) < k {
		return fmt.Errorf("input %s is not sorted by customer: %s comes after %s", s.name, s.key(&s.head), k)
	}
	if !s.ok {
		if err := s.r.Err(); err != nil {
			return err
		}
	}
	return nil
}

// rowsOf returns customer k's rows, passing over the rows of customers before
// k, in a buffer the next take reuses.
func (s *stream[T]) rowsOf(k string) ([]T, error) {
	for h, ok := s.peek(); ok && h < k; h, ok = s.peek() {
		if _, err := s.take(h); err != nil {
			return nil, err
		}
	}
	return s.take(k)
}

func (s *stream[T]) close() {
	if s != nil {
		s.r.Close()
	}
}

// readAll reads a small Parquet input whole.
func readAll[T any](ctx context.Context, s storage.Store, key string) ([]T, error) {
	in, err := openInput[T](ctx, s, key)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var rows []T
	for {
		row, ok := in.Next()
		if !ok {
			return rows, in.Err()
		}
		rows = append(rows, row)
	}
}

// rowMap turns a row into its column names and values (for quarantine lines).
func rowMap(row any) map[string]any {
	if m, ok := row.(map[string]any); ok {
		return m
	}
	v := reflect.Indirect(reflect.ValueOf(row))
	m := map[string]any{}
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("parquet"), ",")
		if name == "" || name == "-" {
			continue
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				m[name] = nil
				continue
			}
			fv = fv.Elem()
		}
		if d, ok := fv.Interface().(model.Date); ok {
			m[name] = d.String()
			continue
		}
		if t, ok := fv.Interface().(time.Time); ok {
			m[name] = t.UTC().Format(time.RFC3339Nano)
			continue
		}
		m[name] = fv.Interface()
	}
	return m
}

// quarantine collects malformed source rows per entity and writes them, with
// their reasons, as JSON lines next to the data (never dropped).
type quarantine struct {
	rc     *runner.RunContext
	region string
	day    periods.Period
	outs   map[string]*runner.OutputWriter
	rows   map[string]int64
	order  []string
}

func newQuarantine(rc *runner.RunContext, region string, day periods.Period) *quarantine {
	return &quarantine{rc: rc, region: region, day: day, outs: map[string]*runner.OutputWriter{}, rows: map[string]int64{}}
}

func (q *quarantine) add(ctx context.Context, entity string, row any, reason error) error {
	out, ok := q.outs[entity]
	if !ok {
		var err error
		if out, err = q.rc.Open(ctx, q.region, QuarantineKey(entity, q.region, q.day)); err != nil {
			return err
		}
		q.outs[entity] = out
		q.order = append(q.order, entity)
	}
	line, err := json.Marshal(map[string]any{"entity": entity, "day": q.day.ID(), "region": q.region, "reason": reason.Error(), "row": rowMap(row)})
	if err != nil {
		return err
	}
	if _, err := out.Write(append(line, '\n')); err != nil {
		return err
	}
	q.rows[entity]++
	q.rc.Count("quarantined", 1)
	q.rc.Count("quarantined/"+entity, 1)
	return nil
}

func (q *quarantine) commit() error {
	for _, e := range q.order {
		if err := q.outs[e].Commit(q.rows[e]); err != nil {
			return err
		}
	}
	return nil
}

func (q *quarantine) abort(err error) {
	for _, e := range q.order {
		q.outs[e].Abort(err)
	}
}

// keepValid returns the rows that pass validate; the others go to quarantine.
func keepValid[T any](ctx context.Context, q *quarantine, entity string, rows []T, validate func(*T) error) ([]T, error) {
	out := rows[:0:0]
	for i := range rows {
		if err := validate(&rows[i]); err != nil {
			if qerr := q.add(ctx, entity, &rows[i], err); qerr != nil {
				return nil, qerr
			}
			continue
		}
		out = append(out, rows[i])
	}
	return out, nil
}

// ReadTable reads one of tally's own (small) Parquet tables whole: the console
// reads analytics with it. storage.ErrNotFound when it was never published.
func ReadTable[T any](ctx context.Context, s storage.Store, key string) ([]T, error) {
	return readAll[T](ctx, s, key)
}

// EachRow calls fn with each row of one of tally's tables in turn, holding one
// row at a time (the console looks names up in a day's inventory with it).
// storage.ErrNotFound when it was never published.
func EachRow[T any](ctx context.Context, s storage.Store, key string, fn func(*T)) error {
	in, err := openInput[T](ctx, s, key)
	if err != nil {
		return err
	}
	defer in.Close()
	for {
		row, ok := in.Next()
		if !ok {
			return in.Err()
		}
		fn(&row)
	}
}
