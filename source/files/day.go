package files

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"sort"
	"unsafe"

	"tally/model"
	"tally/periods"
	"tally/source"
)

// scanOrder is the order entities are read in: customers place every other
// row, and clusters (before devices and calls) say which devices and calls
// the day's call records need.
var scanOrder = []string{"partners", "customers", "clusters", "subscriptions", "orders", "servers", "users", "devices", "numbers", "calls"}

// eagerCalls is how many of a customer's legs are read with it; a customer
// with more streams the rest (source.CustomerDay.CallStream).
const eagerCalls = 4096

// scan is one day being read: its rows sorted on disk per entity, the rows no
// customer can take per region, and what the call records need.
type scan struct {
	src       *Source
	day       periods.Period
	manifest  string
	tmp       *tmpSpace
	rec       []byte // a record being built
	home      customerIndex
	roster    map[string][]model.Customer // region → customers, when Source.Roster is set
	sorters   map[string]*sorter
	tables    map[string]*merger
	rejects   [4]*rejectLog // by region rank
	delivered map[string]int64
	inputs    []ManifestFile
	extra     map[string][]string
	sortedIn  map[string]bool // entities whose every buffer arrived in order

	// call records (cdr.go)
	cdr       []cdrFile
	inv       *inventory
	cdrCalls  map[string]bool // calls/ rows' call ids that name a call-record cluster
	conflicts map[string]bool // call ids delivered both as calls/ rows and as call records
	legs      *merger
	cdrNotes  map[string]any
}

// scan reads the day's delivery (its manifest first: before it exists the day
// is waiting) into sorted runs, ready to yield.
func (s *Source) scan(ctx context.Context, p periods.Period) (*scan, error) {
	m, err := s.manifest(ctx, p)
	if err != nil {
		return nil, err
	}
	sc := &scan{src: s, day: p, manifest: ManifestKey(p), tmp: &tmpSpace{dir: s.TmpDir}, sorters: map[string]*sorter{},
		tables: map[string]*merger{}, delivered: map[string]int64{}, inputs: m.Files, extra: map[string][]string{},
		sortedIn: map[string]bool{}, cdrCalls: map[string]bool{}, conflicts: map[string]bool{}}
	ok := false
	defer func() {
		if !ok {
			sc.close()
		}
	}()
	if sc.cdr, err = cdrFiles(ctx, s.Root, p, s.MaxCallLength); err != nil {
		return nil, err
	}
	sc.inv = newInventory(sc.cdr)
	for i := range sc.rejects {
		sc.rejects[i] = &rejectLog{t: sc.tmp}
	}
	if s.Roster != nil {
		_, customers, err := s.Roster(ctx, p)
		if err != nil {
			return nil, err
		}
		sc.roster = customers
		for region, cs := range customers {
			for _, c := range cs {
				sc.home.add(c.CustomerID, slices.Index(model.Regions, region))
			}
		}
		sc.home.seal()
	}
	for _, entity := range scanOrder {
		files := ordered(m.Files, entity)
		sch := Schemas[entity]
		var srt *sorter // partners are only counted here (or rejected): Partners reads them
		if entity != "partners" {
			srt = newSorter(sc.tmp, sortBudget)
			sc.sorters[entity] = srt
		}
		for _, f := range files {
			rank := rankOf(f.Path)
			err := s.readRows(ctx, f, sc.manifest, sch,
				func(line int64, cells []cell) error {
					sc.delivered[entity]++
					return sc.place(sch, srt, rank, f.Path, line, cells)
				},
				func(line int64, reason string, raw map[string]any) {
					sc.delivered[entity]++
					sc.reject(rank, source.Rejected{Entity: entity, File: f.Path, Line: line, Reason: reason, Row: raw})
				},
				func(unknown []string) { sc.extra[f.Path] = unknown })
			if err != nil {
				return nil, err
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if entity == "customers" && s.Roster == nil {
			sc.home.seal()
		}
		if srt == nil {
			continue
		}
		merged, err := srt.merged()
		delete(sc.sorters, entity)
		if err != nil {
			return nil, err
		}
		sc.sortedIn[entity] = srt.inOrder
		sc.tables[entity] = merged
	}
	if err := sc.callRecords(ctx); err != nil {
		return nil, err
	}
	sc.tmp.arena = nil // the sort buffer is not needed while the day is yielded
	ok = true
	return sc, nil
}

// place sorts a parsed row under its customer. Whether its customer is the
// day's, in the region that delivered it, is found as the day is yielded (a
// row no customer of its region takes is rejected then, see misplaced); the
// rows the call records are mapped with are checked here, before the call
// records are read.
func (sc *scan) place(sch *schema, srt *sorter, rank int, file string, line int64, cells []cell) error {
	entity := sch.entity
	rejectRow := func(reason string) {
		sc.reject(rank, source.Rejected{Entity: entity, File: file, Line: line, Reason: reason, Row: sch.cellsRow(cells)})
	}
	switch {
	case sc.roster != nil && (entity == "partners" || entity == "customers"):
		rejectRow(entity + " come from the primary source, not the landing zone")
		return nil
	case entity == "partners":
		return nil
	case entity == "customers":
		sc.home.add(cells[sch.customer].s, rank)
	case len(sc.inv.want) > 0 && (entity == "clusters" || entity == "devices"):
		if reason := sc.misplaced(rank, cells[sch.customer].s); reason != "" {
			rejectRow(reason)
			return nil
		}
	}
	var err error
	if sc.rec, err = sch.record(sc.rec[:0], rank, cells); err != nil {
		rejectRow(err.Error())
		return nil
	}
	sc.noteForCallRecords(entity, rank, cells)
	return srt.add(sc.rec)
}

// misplaced says why a row of customer id delivered under region rank cannot
// be placed ("" when it can): residency, a row is never written to another
// region's storage.
func (sc *scan) misplaced(rank int, id string) string {
	home, ok := sc.home.region(id)
	switch {
	case !ok:
		return fmt.Sprintf("customer %s is not in the day's customers", id)
	case home != rank:
		return fmt.Sprintf("delivered under region=%s, but customer %s is in %s (a row never goes to another region)", model.Regions[rank], id, model.Regions[home])
	}
	return ""
}

// unplaced rejects a record that no customer took: its customer is not the
// day's, or not in the region that delivered it.
func (sc *scan) unplaced(entity string, rec []byte) (source.Rejected, error) {
	sch := Schemas[entity]
	cust := string(rec[1 : bytes.IndexByte(rec[1:], 0)+1])
	row := reflect.New(sch.typ)
	if err := sch.decodeRecord(rec, row.UnsafePointer()); err != nil {
		return source.Rejected{}, err
	}
	return source.Rejected{Entity: entity, Reason: sc.misplaced(int(rec[0]), cust), Row: sch.rowOf(row.UnsafePointer())}, nil
}

func (sc *scan) reject(rank int, r source.Rejected) {
	if err := sc.rejects[rank].add(r); err != nil && sc.rejects[rank].err == nil {
		sc.rejects[rank].err = err
	}
}

// yield calls fn with the day's customers, region by region, by customer_id,
// each with its rows; a region's rejected rows come first.
func (sc *scan) yield(ctx context.Context, fn func(*source.CustomerDay) error) error {
	var prefix []byte
	for rank, region := range model.Regions {
		if err := sc.rejects[rank].each(func(rs []source.Rejected) error {
			return fn(&source.CustomerDay{Region: region, Rejected: rs})
		}); err != nil {
			return err
		}
		next := sc.customersOf(rank, region)
		prev := ""
		for {
			c, ok, err := next()
			if err != nil || !ok {
				if err != nil {
					return err
				}
				break
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if sc.roster == nil {
				home, _ := sc.home.region(c.CustomerID)
				if c.CustomerID == prev || home != rank {
					r := source.Rejected{Entity: "customers", Reason: fmt.Sprintf("customer %s is delivered twice (also under region=%s)", c.CustomerID, model.Regions[home]),
						Row: Schemas["customers"].rowOf(unsafe.Pointer(&c))}
					if err := fn(&source.CustomerDay{Region: region, Rejected: []source.Rejected{r}}); err != nil {
						return err
					}
					continue
				}
			}
			prev = c.CustomerID
			prefix = customerPrefix(prefix, rank, c.CustomerID)
			cd := &source.CustomerDay{Region: region, Customer: c}
			if err := sc.rowsOf(cd, prefix); err != nil {
				return err
			}
			if err := sc.callsOf(cd, slices.Clone(prefix)); err != nil {
				return err
			}
			if err := fn(cd); err != nil {
				return err
			}
		}
		if err := sc.rest(rank, region, fn); err != nil {
			return err
		}
	}
	return nil
}

// customersOf iterates region rank's customers: the roster's, or those of the
// sorted customers/ rows.
func (sc *scan) customersOf(rank int, region string) func() (model.Customer, bool, error) {
	if sc.roster != nil {
		cs, i := sc.roster[region], 0
		return func() (model.Customer, bool, error) {
			if i == len(cs) {
				return model.Customer{}, false, nil
			}
			i++
			return cs[i-1], true, nil
		}
	}
	m, sch := sc.tables["customers"], Schemas["customers"]
	return func() (model.Customer, bool, error) {
		rec, ok := m.peek()
		if !ok || int(rec[0]) != rank {
			return model.Customer{}, false, m.err
		}
		m.next()
		var c model.Customer
		err := sch.decodeRecord(rec, unsafe.Pointer(&c))
		return c, err == nil, err
	}
}

// rowsOf takes the customer's rows of every inventory entity.
func (sc *scan) rowsOf(cd *source.CustomerDay, prefix []byte) error {
	var err error
	take := func(entity string, into func(rec []byte) error) {
		if err == nil {
			err = sc.take(cd, entity, prefix, into)
		}
	}
	take("subscriptions", appendTo(&cd.Subscriptions, "subscriptions"))
	take("orders", appendTo(&cd.Orders, "orders"))
	take("clusters", appendTo(&cd.Clusters, "clusters"))
	take("servers", appendTo(&cd.Servers, "servers"))
	take("users", appendTo(&cd.Users, "users"))
	take("devices", appendTo(&cd.Devices, "devices"))
	take("numbers", appendTo(&cd.Numbers, "numbers"))
	return err
}

// appendTo decodes a record's row (of entity, whose struct T is) onto a
// CustomerDay's slice.
func appendTo[T any](rows *[]T, entity string) func(rec []byte) error {
	sch := Schemas[entity]
	return func(rec []byte) error {
		var v T
		*rows = append(*rows, v)
		return sch.decodeRecord(rec, unsafe.Pointer(&(*rows)[len(*rows)-1]))
	}
}

// take passes entity's records of the customer (prefix) to into. Records
// before them are of no customer of the region: they are rejected (into cd,
// quarantined in the region that delivered them), never dropped.
func (sc *scan) take(cd *source.CustomerDay, entity string, prefix []byte, into func([]byte) error) error {
	if err := sc.rejectBefore(cd, entity, prefix); err != nil {
		return err
	}
	m := sc.tables[entity]
	for m != nil {
		rec, ok := m.peek()
		if !ok || !bytes.HasPrefix(rec, prefix) {
			return m.err
		}
		m.next()
		if err := into(rec); err != nil {
			return err
		}
	}
	return nil
}

// rejectBefore rejects entity's records before limit into cd.
func (sc *scan) rejectBefore(cd *source.CustomerDay, entity string, limit []byte) error {
	m := sc.tables[entity]
	for m != nil {
		rec, ok := m.peek()
		if !ok || bytes.Compare(rec, limit) >= 0 {
			return m.err
		}
		m.next()
		r, err := sc.unplaced(entity, rec)
		if err != nil {
			return err
		}
		cd.Rejected = append(cd.Rejected, r)
	}
	return nil
}

// rest rejects the records of region rank that no customer took (those after
// its last customer), in CustomerDays of the region without a customer.
func (sc *scan) rest(rank int, region string, fn func(*source.CustomerDay) error) error {
	end := []byte{byte(rank + 1)}
	for _, entity := range scanOrder {
		if entity == "partners" || entity == "customers" {
			continue
		}
		cd := &source.CustomerDay{Region: region}
		var err error
		if entity == "calls" {
			err = sc.skipCalls(cd, end)
		} else {
			err = sc.rejectBefore(cd, entity, end)
		}
		if err != nil {
			return err
		}
		for len(cd.Rejected) > 0 {
			n := min(len(cd.Rejected), 1000)
			if err := fn(&source.CustomerDay{Region: region, Rejected: cd.Rejected[:n]}); err != nil {
				return err
			}
			cd.Rejected = cd.Rejected[n:]
		}
	}
	return nil
}

// skipCalls passes over the calls before prefix: those of customers whose
// consumer did not read them (a region outside --region) silently, those of
// no customer of their region rejected into cd.
func (sc *scan) skipCalls(cd *source.CustomerDay, prefix []byte) error {
	for _, m := range []*merger{sc.tables["calls"], sc.legs} {
		for m != nil {
			rec, ok := m.peek()
			if !ok || bytes.Compare(rec, prefix) >= 0 {
				break
			}
			m.next()
			if m == sc.legs || sc.misplaced(int(rec[0]), string(rec[1:bytes.IndexByte(rec[1:], 0)+1])) == "" {
				continue // a customer's legs its consumer did not read (call records map to known customers only)
			}
			r, err := sc.unplaced("calls", rec)
			if err != nil {
				return err
			}
			cd.Rejected = append(cd.Rejected, r)
		}
		if m != nil && m.err != nil {
			return m.err
		}
	}
	return nil
}

// callsOf gives the customer its legs: its calls/ rows merged by leg_id with
// the legs of its call records. The first eagerCalls come with it; a customer
// with more streams the rest as it is written. A call delivered both ways is a
// conflict: its calls/ rows are rejected here (its call-record legs were when
// they were joined).
func (sc *scan) callsOf(cd *source.CustomerDay, prefix []byte) error {
	rows, legs := sc.tables["calls"], sc.legs
	if err := sc.skipCalls(cd, prefix); err != nil {
		return err
	}
	sch := Schemas["calls"]
	// next is the customer's next leg from either stream.
	next := func() (model.CallLeg, bool, error) {
		for {
			var a, b []byte
			if rows != nil {
				if r, ok := rows.peek(); ok && bytes.HasPrefix(r, prefix) {
					a = r
				} else if rows.err != nil {
					return model.CallLeg{}, false, rows.err
				}
			}
			if legs != nil {
				if r, ok := legs.peek(); ok && bytes.HasPrefix(r, prefix) {
					b = r
				} else if legs.err != nil {
					return model.CallLeg{}, false, legs.err
				}
			}
			if a == nil && b == nil {
				return model.CallLeg{}, false, nil
			}
			fromRows := a != nil && (b == nil || bytes.Compare(a, b) <= 0)
			var rec []byte
			if fromRows {
				rec, _ = rows.next()
			} else {
				rec, _ = legs.next()
			}
			var l model.CallLeg
			if err := sch.decodeRecord(rec, unsafe.Pointer(&l)); err != nil {
				return l, false, err
			}
			if fromRows && sc.conflicts[l.CallID] {
				cd.Rejected = append(cd.Rejected, source.Rejected{Entity: "calls", File: "calls/",
					Reason: fmt.Sprintf("call %s is delivered both as calls/ rows and as CDRs: a conflict", l.CallID), Row: sch.rowOf(unsafe.Pointer(&l))})
				continue
			}
			return l, true, nil
		}
	}
	for len(cd.Calls) < eagerCalls {
		l, ok, err := next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		cd.Calls = append(cd.Calls, l)
	}
	eager := cd.Calls
	cd.Calls, cd.CallStream = nil, func(yield func(model.CallLeg) error) error {
		for _, l := range eager {
			if err := yield(l); err != nil {
				return err
			}
		}
		for {
			l, ok, err := next()
			if err != nil || !ok {
				return err
			}
			if err := yield(l); err != nil {
				return err
			}
		}
	}
	return nil
}

// notes are the day's facts for the ledger.
func (sc *scan) notes() map[string]any {
	n := map[string]any{"input_files": sc.inputs, "rows_delivered": sc.delivered}
	if len(sc.extra) > 0 {
		n["extra_columns"] = sc.extra
	}
	sorted := []string{}
	for e, ok := range sc.sortedIn {
		if ok {
			sorted = append(sorted, e)
		}
	}
	sort.Strings(sorted)
	n["sort"] = map[string]any{"tmp_peak_bytes": sc.tmp.peak, "runs": sc.tmp.runs, "merge_passes": sc.tmp.passes,
		"delivered_in_order": sorted}
	for k, v := range sc.cdrNotes {
		n[k] = v
	}
	return n
}

// close lets every run go (their disk space with them).
func (sc *scan) close() {
	for _, s := range sc.sorters {
		s.discard()
	}
	for _, m := range sc.tables {
		m.close()
	}
	if sc.legs != nil {
		sc.legs.close()
	}
	for _, r := range sc.rejects {
		if r != nil {
			r.close()
		}
	}
}

// customerIndex is each customer's region, compact: 17 bytes a customer
// (its UUID and region rank), not its rows.
type customerIndex struct {
	uuids []homeEntry
	dir   []uint32       // dir[b]: the first of uuids whose id starts with the two bytes b
	other map[string]int // ids that are not lower-case UUIDs (rejected by sync, but placed all the same)
}

type homeEntry struct {
	id   [16]byte
	rank uint8
}

func (x *customerIndex) add(id string, rank int) {
	if u, ok := parseUUID(id); ok {
		x.uuids = append(x.uuids, homeEntry{u, uint8(rank)})
		return
	}
	if x.other == nil {
		x.other = map[string]int{}
	}
	if r, ok := x.other[id]; !ok || rank < r {
		x.other[id] = rank
	}
}

// seal sorts the index; a customer delivered under several regions is in the
// first (model.Regions order).
func (x *customerIndex) seal() {
	slices.SortFunc(x.uuids, func(a, b homeEntry) int {
		if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
			return c
		}
		return int(a.rank) - int(b.rank)
	})
	x.uuids = slices.Clone(slices.CompactFunc(x.uuids, func(a, b homeEntry) bool { return a.id == b.id })) // no append slack
	x.dir = make([]uint32, 1<<16+1)
	i := 0
	for b := range 1 << 16 {
		for i < len(x.uuids) && int(x.uuids[i].id[0])<<8|int(x.uuids[i].id[1]) < b {
			i++
		}
		x.dir[b] = uint32(i)
	}
	x.dir[1<<16] = uint32(len(x.uuids))
}

func (x *customerIndex) region(id string) (int, bool) {
	if u, ok := parseUUID(id); ok {
		if x.dir == nil {
			return 0, false
		}
		b := int(u[0])<<8 | int(u[1])
		for _, e := range x.uuids[x.dir[b]:x.dir[b+1]] {
			if e.id == u {
				return int(e.rank), true
			}
		}
		return 0, false
	}
	r, ok := x.other[id]
	return r, ok
}

// parseUUID reads a lower-case canonical UUID (8-4-4-4-12 hex digits).
func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if s[i] == '-' {
			i--
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
	}
	return u, j == 16
}

func unhex(c byte) (byte, bool) {
	v := hexValue[c]
	return v & 0x0f, v != 0
}

// hexValue is 0x10 | a lower-case hex digit's value, 0 for any other byte.
var hexValue = func() (t [256]byte) {
	for i, c := range "0123456789abcdef" {
		t[c] = 0x10 | byte(i)
	}
	return t
}()

// rejectLog keeps a region's rejected rows on disk (JSON lines in an
// unlinked file) until they are yielded, a thousand at a time.
type rejectLog struct {
	t    *tmpSpace
	f    *os.File
	w    *bufio.Writer
	n    int
	size int64
	err  error
}

func (l *rejectLog) add(r source.Rejected) error {
	if l.f == nil {
		f, err := l.t.create()
		if err != nil {
			return err
		}
		l.f, l.w = f, bufio.NewWriterSize(f, 32<<10)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("files: a rejected row: %w", err)
	}
	l.n++
	l.size += int64(len(b) + 1)
	l.t.grow(int64(len(b) + 1))
	_, err = l.w.Write(append(b, '\n'))
	return err
}

func (l *rejectLog) each(fn func([]source.Rejected) error) error {
	if l.err != nil {
		return l.err
	}
	if l.f == nil {
		return nil
	}
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("files: rejected rows (storage.tmp_dir): %w", err)
	}
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	dec := json.NewDecoder(bufio.NewReaderSize(l.f, 32<<10))
	dec.UseNumber()
	batch := make([]source.Rejected, 0, 1000)
	for range l.n {
		var r source.Rejected
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("files: rejected rows (storage.tmp_dir): %w", err)
		}
		batch = append(batch, r)
		if len(batch) == cap(batch) {
			if err := fn(batch); err != nil {
				return err
			}
			batch = make([]source.Rejected, 0, 1000)
		}
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

func (l *rejectLog) close() {
	if l.f != nil {
		l.f.Close()
		l.t.grow(-l.size)
		l.f, l.size = nil, 0
	}
}

// rowOf is a struct of the schema's type as a quarantined row.
func (sch *schema) rowOf(p unsafe.Pointer) map[string]any {
	cells := make([]cell, len(sch.columns))
	sch.cellsOf(p, cells)
	return sch.cellsRow(cells)
}

// cellsAs is cells as a struct T of sch's type.
func cellsAs[T any](sch *schema, cells []cell) (T, error) {
	return decodeAs[T](sch, sch.encode(nil, cells))
}
