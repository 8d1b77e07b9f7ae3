package files

// Dedicated Instance call records: the CUCM CDR and CMR flat files a cluster's
// CDR Repository Manager pushes, under <root>/cdr/cluster=<cluster_id>/ as
// cdr_<ClusterID>_<NodeID>_<YYYYMMDDHHMM>_<seq> and cmr_…. Field names follow
// Cisco's "Call Detail Records Administration Guide for Cisco Unified
// Communications Manager, Release 11.0(1)" (CDR Field Descriptions; CMR Field
// Descriptions): a first line of field names, a second of field types, then
// comma-separated records whose text fields are quoted.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"tally/model"
	"tally/periods"
	"tally/source"
	"tally/storage"
)

// cdrFile is one delivered CDR or CMR file of a cluster.
type cdrFile struct {
	key     string
	cluster string // from the cluster= directory, which wins over the name's
	cmr     bool
	at      time.Time // the UTC minute in its name
	size    int64
	etag    string
}

// callFile is a call-record file as the ledger records it. Call records come
// without a manifest, so their store's ETag (which changes whenever the file
// is written again) tells a later change, not a hash of gigabytes; older
// ledger entries hold a sha256.
type callFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// parseCDRName reads cdr_<ClusterID>_<NodeID>_<YYYYMMDDHHMM>_<seq> (or cmr_…).
// The cluster id in the name may itself contain underscores, so the fields are
// taken from the end.
func parseCDRName(key string) (cdrFile, bool) {
	dir, name := path.Split(key)
	parts := strings.Split(strings.TrimSuffix(dir, "/"), "/")
	if len(parts) != 2 || parts[0] != "cdr" || !strings.HasPrefix(parts[1], "cluster=") {
		return cdrFile{}, false
	}
	f := cdrFile{key: key, cluster: strings.TrimPrefix(parts[1], "cluster=")}
	fields := strings.Split(name, "_")
	if len(fields) < 5 || (fields[0] != "cdr" && fields[0] != "cmr") {
		return cdrFile{}, false
	}
	f.cmr = fields[0] == "cmr"
	t, err := time.Parse("200601021504", fields[len(fields)-2])
	if err != nil {
		return cdrFile{}, false
	}
	f.at = t.UTC()
	return f, true
}

// cdrFiles are the files that can hold legs of day: named from the day's start
// up to its end plus maxCall (a call that started late in the day ends, and is
// written, after midnight).
func cdrFiles(ctx context.Context, root storage.Store, day periods.Period, maxCall time.Duration) ([]cdrFile, error) {
	objs, err := root.List(ctx, "cdr/")
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("files: list cdr/: %w", err)
	}
	var out []cdrFile
	for _, o := range objs {
		f, ok := parseCDRName(o.Key)
		if !ok || f.at.Before(day.Start) || !f.at.Before(day.End().Add(maxCall)) {
			continue
		}
		f.size, f.etag = o.Size, o.ETag
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, nil
}

// flatReader reads a CDR/CMR flat file: names, types, then records, each
// split into its fields (quotes removed) without copying them.
type flatReader struct {
	r       *bufio.Reader
	file    string
	names   []string
	line    int
	upto    int      // the last field tally reads (-1: every field is cut and counted)
	fields  [][]byte // the current record's fields (to upto): valid until next
	cur     []byte   // the current record's line
	long    []byte   // a line longer than the reader's buffer
	unquote []byte
}

func newFlatReader(r io.Reader, file string) (*flatReader, error) {
	f := &flatReader{r: bufio.NewReaderSize(r, 256<<10), file: file, upto: -1}
	line, err := f.readLine()
	if err != nil {
		return nil, fmt.Errorf("files: %s: the line of field names: %v", file, noEOF(err))
	}
	if bad := f.split(line); bad != "" {
		return nil, fmt.Errorf("files: %s: the line of field names: %s", file, bad)
	}
	for _, n := range f.fields {
		f.names = append(f.names, string(n))
	}
	if _, err := f.readLine(); err != nil {
		return nil, fmt.Errorf("files: %s: the line of field types: %v", file, noEOF(err))
	}
	return f, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return errors.New("missing")
	}
	return err
}

// index is the position of each of names in the file's records (-1: absent).
func (f *flatReader) index(names ...string) []int {
	out := make([]int, len(names))
	for i, n := range names {
		out[i] = slices.Index(f.names, n)
	}
	return out
}

// readLine is the next line without its end, aliasing the reader's buffer.
func (f *flatReader) readLine() ([]byte, error) {
	f.line++
	line, err := f.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		f.long = append(f.long[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(f.long) > MaxLine {
				return nil, source.Permanent(fmt.Errorf("files: %s line %d: longer than %d MiB", f.file, f.line, MaxLine>>20))
			}
			line, err = f.r.ReadSlice('\n')
			f.long = append(f.long, line...)
		}
		line = f.long
	}
	if err == io.EOF && len(line) > 0 {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'}), nil
}

// next reads the next record into fields; a line that cannot be split is
// returned as bad (its reason), and reading goes on with the next line.
func (f *flatReader) next() (ok bool, bad string, err error) {
	for {
		line, err := f.readLine()
		if err == io.EOF {
			return false, "", nil
		}
		if err != nil {
			return false, "", err
		}
		if len(line) == 0 {
			continue
		}
		f.cur = line
		if bad := f.split(line); bad != "" {
			return true, bad, nil
		}
		if f.upto >= 0 && len(f.fields) <= f.upto {
			return true, fmt.Sprintf("unparseable line: %d fields, tally reads field %d (%s)", len(f.fields), f.upto+1, f.names[f.upto]), nil
		}
		if f.upto < 0 && len(f.fields) != len(f.names) {
			return true, fmt.Sprintf("unparseable line: %d fields, the header names %d", len(f.fields), len(f.names)), nil
		}
		return true, "", nil
	}
}

// split cuts a line at its commas into its fields, up to f.upto (all of
// them when it is -1): a record is read by the fields tally takes from it,
// those after the last of them are not looked at. A field that starts with a
// quote ends at its closing quote ("" inside is one quote).
func (f *flatReader) split(line []byte) string {
	f.fields = f.fields[:0]
	f.unquote = f.unquote[:0]
	for f.upto < 0 || len(f.fields) <= f.upto {
		if len(line) > 0 && line[0] == '"' {
			j, escaped := 1, false
			for {
				k := bytes.IndexByte(line[j:], '"')
				if k < 0 {
					return `unparseable line: a quoted field is not closed`
				}
				j += k
				if j+1 < len(line) && line[j+1] == '"' {
					escaped, j = true, j+2
					continue
				}
				break
			}
			v := line[1:j]
			if escaped {
				start := len(f.unquote)
				f.unquote = append(f.unquote, bytes.ReplaceAll(v, []byte(`""`), []byte(`"`))...)
				v = f.unquote[start:]
			}
			f.fields = append(f.fields, v)
			line = line[j+1:]
			if len(line) == 0 {
				return ""
			}
			if line[0] != ',' {
				return `unparseable line: text after a quoted field`
			}
			line = line[1:]
			if len(line) == 0 { // a trailing comma: one more, empty field
				f.fields = append(f.fields, line)
				return ""
			}
			continue
		}
		k := bytes.IndexByte(line, ',')
		if k < 0 {
			f.fields = append(f.fields, line)
			return ""
		}
		f.fields = append(f.fields, line[:k])
		line = line[k+1:]
	}
	return ""
}

// field is the current record's field at index i ("" when absent).
func (f *flatReader) field(i int) []byte {
	if i < 0 || i >= len(f.fields) {
		return nil
	}
	return f.fields[i]
}

// row is the current record as a quarantined row, by field name: all of its
// fields (it is cut again, whole).
func (f *flatReader) row() map[string]any {
	upto := f.upto
	f.upto = -1
	f.split(f.cur)
	f.upto = upto
	m := make(map[string]any, len(f.fields))
	for i, v := range f.fields {
		if i < len(f.names) {
			m[f.names[i]] = string(v)
		}
	}
	return m
}

// A day's call records go through three sorts on disk, so memory does not grow
// with the day's call count: CMRs and CDR sides, each sorted by leg key
// (cluster, callManagerId, callId, leg identifier) and merge-joined; then the
// legs, sorted as the calls/ rows are (region, customer, leg_id) and merged
// with them as each customer is yielded.

// CDR and CMR fields tally reads, by their positions in cdrFields/cmrFields.
var (
	cdrFields = []string{"cdrRecordType", "globalCallID_callManagerId", "globalCallID_callId", "dateTimeOrigination", "duration",
		"origDeviceName", "origLegCallIdentifier", "origVideoCap_Codec", "destDeviceName", "destLegIdentifier", "destLegCallIdentifier", "destVideoCap_Codec"}
	cmrFields = []string{"globalCallID_callManagerId", "globalCallID_callId", "callIdentifier", "jitter", "latency", "numberPacketsLost",
		"numberPacketsReceived", "videoAverageJitter", "videoDuration", "videoOneWayDelay", "numberVideoPacketsLost", "numberVideoPacketsReceived"}
)

const (
	fRecordType = iota
	fCM
	fCall
	fOrigination
	fDuration
	fOrigDevice
	fOrigLeg
	fOrigVideo
	fDestDevice
	fDestLeg
	fDestLegCall
	fDestVideo
)

const (
	mCM = iota
	mCall
	mLeg
	mJitter
	mLatency
	mLost
	mReceived
	mVideoJitter
	mVideoDuration
	mVideoDelay
	mVideoLost
	mVideoReceived
)

// callSortBudget is each call-record sorter's buffer. Call records mostly
// arrive in call order, so their runs extend one another whatever the buffer;
// a small one keeps a 50K-record day's memory that of a 5M one.
const callSortBudget = 4 << 20

// unplacedListed bounds the rejected call records without a region listed in
// the ledger (they are all counted).
const unplacedListed = 100

// inventory is what mapping call records needs, for the clusters that have
// call-record files on the day: each cluster's customer and region, and its
// devices by name and by MAC.
type inventory struct {
	want            map[string]bool // clusters with call-record files
	clusterCustomer map[string]string
	clusterRegion   map[string]int
	byName          map[string]map[string]*devInfo // cluster → device_id → device
	byMAC           map[string]map[string]*devInfo // cluster → MAC → device
}

// devInfo is what a leg takes from its device.
type devInfo struct {
	location   string
	user       *string
	deviceType string
}

func newInventory(files []cdrFile) *inventory {
	inv := &inventory{want: map[string]bool{}, clusterCustomer: map[string]string{}, clusterRegion: map[string]int{},
		byName: map[string]map[string]*devInfo{}, byMAC: map[string]map[string]*devInfo{}}
	for _, f := range files {
		inv.want[f.cluster] = true
	}
	return inv
}

// noteForCallRecords keeps, from a placed row, what the day's call records
// need: their clusters, those clusters' devices, and the call ids of calls/
// rows that could also come as call records (a conflict).
func (sc *scan) noteForCallRecords(entity string, rank int, cells []cell) {
	inv := sc.inv
	if len(inv.want) == 0 {
		return
	}
	sch := Schemas[entity]
	switch entity {
	case "clusters":
		id := cells[sch.byName["cluster_id"]].s
		if inv.want[id] {
			id = strings.Clone(id)
			inv.clusterCustomer[id] = strings.Clone(cells[sch.customer].s)
			inv.clusterRegion[id] = rank
			inv.byName[id], inv.byMAC[id] = map[string]*devInfo{}, map[string]*devInfo{}
		}
	case "devices":
		cl := cells[sch.byName["cluster_id"]]
		if !cl.ok || inv.byName[cl.s] == nil {
			return
		}
		d := &devInfo{location: strings.Clone(cells[sch.byName["location_id"]].s), deviceType: strings.Clone(cells[sch.byName["device_type"]].s)}
		if u := cells[sch.byName["user_id"]]; u.ok {
			s := strings.Clone(u.s)
			d.user = &s
		}
		inv.byName[cl.s][strings.Clone(cells[sch.byName["device_id"]].s)] = d
		if mac := cells[sch.byName["mac"]].s; mac != "" {
			inv.byMAC[cl.s][strings.ToUpper(strings.NewReplacer(":", "", "-", "", ".", "").Replace(mac))] = d
		}
	case "calls":
		id := cells[sch.byName["call_id"]].s
		if i := strings.LastIndexByte(id, ':'); i > 0 {
			if j := strings.LastIndexByte(id[:i], ':'); j > 0 && inv.want[id[:j]] {
				sc.cdrCalls[strings.Clone(id)] = true
			}
		}
	}
}

// clusterDevices are one cluster's devices, by name and by MAC.
type clusterDevices struct{ byName, byMAC map[string]*devInfo }

func (inv *inventory) devicesOf(cluster string) clusterDevices {
	return clusterDevices{inv.byName[cluster], inv.byMAC[cluster]}
}

// device maps a CDR device name to the cluster's inventory: by device_id first,
// then SEP<MAC> to the inventory MAC (CSF, BOT and TCT names carry no MAC).
func (c clusterDevices) device(name []byte) *devInfo {
	if len(name) == 0 {
		return nil
	}
	if d := c.byName[string(name)]; d != nil {
		return d
	}
	if len(name) == 15 && strings.EqualFold(string(name[:3]), "SEP") {
		var mac [12]byte
		copy(mac[:], bytes.ToUpper(name[3:]))
		return c.byMAC[string(mac[:])]
	}
	return nil
}

// legKey starts a side's or a CMR's record: the leg's id (cluster,
// callManagerId, callId and the leg's identifier, joined by colons: the
// leg_id of its leg) and a NUL. Sides then join their CMRs in leg_id order,
// so a cluster's legs come out of the join already sorted.
func legKey(dst []byte, cluster string, cm, call, leg []byte) []byte {
	dst = append(dst, cluster...)
	dst = append(append(dst, ':'), cm...)
	dst = append(append(dst, ':'), call...)
	dst = append(append(dst, ':'), leg...)
	return append(dst, 0)
}

// keyOf is a side's or a CMR's leg key (with its NUL).
func keyOf(rec []byte) []byte {
	if i := bytes.IndexByte(rec, 0); i >= 0 {
		return rec[:i+1]
	}
	return rec
}

// digits reports whether b is a number as CUCM writes its identifiers (the
// leg key is unambiguous only so); an empty leg identifier is allowed.
func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// callRecords reads the day's CDR and CMR files into sc.legs: the legs of the
// clusters' customers, sorted as calls/ rows are. Rejected records go to their
// cluster's region or, without one, to the ledger.
func (sc *scan) callRecords(ctx context.Context) error {
	if len(sc.cdr) == 0 || len(sc.inv.clusterCustomer) == 0 {
		return nil
	}
	inv := sc.inv
	cmrs, sides := newSorter(sc.tmp, callSortBudget), newSorter(sc.tmp, callSortBudget)
	sc.sorters["cdr CMRs"], sc.sorters["cdr sides"] = cmrs, sides
	var unplaced []source.Rejected
	var unplacedCount, records, rejected int64
	reject := func(cluster, file string, line int, reason string, row map[string]any) {
		rejected++
		r := source.Rejected{Entity: "calls", File: file, Line: int64(line), Reason: reason, Row: row}
		if rank, ok := inv.clusterRegion[cluster]; ok {
			sc.reject(rank, r)
			return
		}
		if unplacedCount++; len(unplaced) < unplacedListed {
			unplaced = append(unplaced, r)
		}
	}
	var read []callFile
	var rec []byte
	leg := make([]cell, len(Schemas["calls"].columns))
	for _, f := range sc.cdr {
		cluster := f.cluster
		_, known := inv.clusterCustomer[cluster]
		obj, err := sc.src.readCallFile(ctx, f.key, func(r io.Reader) error {
			fr, err := newFlatReader(r, f.key)
			if err != nil {
				return err
			}
			idx := fr.index(cdrFields...)
			if f.cmr {
				idx = fr.index(cmrFields...)
			}
			fr.upto = slices.Max(idx)
			devices := inv.devicesOf(cluster)
			for {
				ok, bad, err := fr.next()
				if err != nil || !ok {
					return err
				}
				records++
				if bad != "" {
					reject(cluster, f.key, fr.line, bad, nil)
					continue
				}
				if !known {
					reject(cluster, f.key, fr.line, fmt.Sprintf("cluster %s is not in the day's clusters inventory", cluster), fr.row())
					continue
				}
				if f.cmr {
					rec, err = cmrRecord(rec[:0], cluster, fr, idx, f.key)
					if err != nil {
						reject(cluster, f.key, fr.line, err.Error(), fr.row())
						continue
					}
					if err := cmrs.add(rec); err != nil {
						return err
					}
					continue
				}
				reason, err := inv.sides(cluster, devices, fr, idx, sc.day, leg, sides.add)
				if err != nil {
					return err
				}
				if reason != "" {
					reject(cluster, f.key, fr.line, reason, fr.row())
				}
			}
		})
		if err != nil {
			return err // the reader's and the store's errors name the file
		}
		read = append(read, callFile{Path: f.key, Size: obj.Size, ETag: obj.ETag})
		if err := ctx.Err(); err != nil {
			return err
		}
	}

	// Join sides and CMRs by leg key; a re-delivered side is the same key.
	si, err := sides.merged()
	delete(sc.sorters, "cdr sides")
	if err != nil {
		return err
	}
	defer si.close()
	ci, err := cmrs.merged()
	delete(sc.sorters, "cdr CMRs")
	if err != nil {
		return err
	}
	defer ci.close()
	legs := newSorter(sc.tmp, callSortBudget)
	sc.sorters["cdr legs"] = legs
	sch := Schemas["calls"]
	var lastKey, cmrKey []byte
	var legCount int64
	var q cmrQuality
	for {
		sd, ok := si.next()
		if si.err != nil {
			return si.err
		}
		var key []byte
		if ok {
			key = keyOf(sd)
		}
		// CMRs before this side's key have no CDR.
		for {
			c, more := ci.peek()
			if !more || (ok && bytes.Compare(keyOf(c), key) >= 0) {
				break
			}
			ci.next()
			if k := keyOf(c); !bytes.Equal(k, cmrKey) {
				cmrKey = append(cmrKey[:0], k...)
				id := string(k[:len(k)-1]) // cluster:cm:call:leg
				call, leg := id[:strings.LastIndexByte(id, ':')], id[strings.LastIndexByte(id, ':')+1:]
				cluster := call[:strings.LastIndexByte(call[:strings.LastIndexByte(call, ':')], ':')]
				file, line := cmrSource(c)
				reject(cluster, file, line, fmt.Sprintf("CMR of call %s leg %s has no CDR", strings.TrimPrefix(call, cluster+":"), leg), nil)
			}
		}
		if ci.err != nil {
			return ci.err
		}
		if !ok {
			break
		}
		if bytes.Equal(key, lastKey) {
			continue // a re-delivered or overlapping file
		}
		lastKey = append(lastKey[:0], key...)
		hasQ := false
		for {
			c, more := ci.peek()
			if !more || !bytes.Equal(keyOf(c), key) {
				break
			}
			ci.next()
			q, hasQ = readQuality(c[len(key):]), true
		}
		payload := sd[len(key):]
		if payload[0] == 0 {
			continue // a trunk or gateway side: not a leg, it only owned its CMR
		}
		if !hasQ {
			q = cmrQuality{}
		}
		rank := int(payload[1])
		if rec, err = sideLeg(rec[:0], rank, key[:len(key)-1], payload[2:], q); err != nil {
			return err
		}
		legCount++
		legID := key[:len(key)-1]
		if callID := legID[:bytes.LastIndexByte(legID, ':')]; sc.cdrCalls[string(callID)] {
			sc.conflicts[string(callID)] = true
			var l model.CallLeg // the record's row, for the quarantine
			if err := sch.decodeRecord(rec, pointer(&l)); err != nil {
				return err
			}
			sc.reject(rank, source.Rejected{Entity: "calls", File: "cdr/",
				Reason: fmt.Sprintf("call %s is delivered both as calls/ rows and as CDRs: a conflict", callID), Row: sch.rowOf(pointer(&l))})
			continue
		}
		if err := legs.add(rec); err != nil {
			return err
		}
	}
	delete(sc.sorters, "cdr legs")
	if sc.legs, err = legs.merged(); err != nil {
		return err
	}
	sc.delivered["calls"] += legCount
	sc.cdrNotes = map[string]any{"cdr_files": read,
		"call_records": map[string]int64{"records": records, "legs": legCount, "rejected": rejected}}
	if unplacedCount > 0 {
		sc.cdrNotes["cdr_rejected_without_region"] = unplaced
		sc.cdrNotes["cdr_rejected_without_region_count"] = unplacedCount
	}
	return nil
}

// sides maps one CDR record to its two sides, each passed to add as a record:
// its leg key, then 1, the region rank and the leg (a device of the cluster),
// or 0 (a trunk or gateway side: it still owns its CMR). A record neither side
// of which maps is rejected with its reason; an end-of-call record of another
// day yields nothing (that day reads it).
func (inv *inventory) sides(cluster string, devices clusterDevices, fr *flatReader, idx []int, day periods.Period, leg []cell, add func([]byte) error) (string, error) {
	get := func(i int) []byte { return fr.field(idx[i]) }
	if t := get(fRecordType); len(t) > 0 && string(t) != "1" {
		return "", nil // not a call's end record (0: start, 2: CMR)
	}
	cm, call := get(fCM), get(fCall)
	if len(cm) == 0 || len(call) == 0 {
		return "globalCallID_callManagerId or globalCallID_callId is empty", nil
	}
	if !digits(cm) || !digits(call) {
		return fmt.Sprintf("globalCallID_callManagerId %q or globalCallID_callId %q is not a number", cm, call), nil
	}
	origination, err := strconv.ParseInt(unsafeString(get(fOrigination)), 10, 64)
	if err != nil {
		return fmt.Sprintf("dateTimeOrigination %q is not epoch seconds", get(fOrigination)), nil
	}
	start := time.Unix(origination, 0).UTC()
	if start.Before(day.Start) || !start.Before(day.End()) {
		return "", nil
	}
	duration := int64(0)
	if d := get(fDuration); len(d) > 0 {
		if duration, err = strconv.ParseInt(unsafeString(d), 10, 64); err != nil || duration < 0 {
			return fmt.Sprintf("duration %q is not a number of seconds", d), nil
		}
	}
	destLeg := get(fDestLeg)
	if len(destLeg) == 0 {
		destLeg = get(fDestLegCall)
	}
	ends := [2]struct {
		device, leg, video []byte
		direction          string
	}{
		{get(fOrigDevice), get(fOrigLeg), get(fOrigVideo), "outbound"},
		{get(fDestDevice), destLeg, get(fDestVideo), "inbound"},
	}
	devs := [2]*devInfo{devices.device(ends[0].device), devices.device(ends[1].device)}
	if devs[0] == nil && devs[1] == nil {
		return fmt.Sprintf("neither origDeviceName %q nor destDeviceName %q is a device of cluster %s", ends[0].device, ends[1].device, cluster), nil
	}
	sch := Schemas["calls"]
	customer := inv.clusterCustomer[cluster]
	var rec []byte
	for i, d := range devs {
		e := ends[i]
		if !digits(e.leg) {
			return fmt.Sprintf("leg identifier %q is not a number", e.leg), nil
		}
		rec = legKey(rec[:0], cluster, cm, call, e.leg)
		if d == nil {
			rec = append(rec, 0)
		} else {
			// The leg, encoded but for its CMR's quality (joined later): the
			// columns before and after the quality ones, and its customer.
			dir := e.direction
			if devs[0] != nil && devs[1] != nil {
				dir = "internal"
			}
			keyEnd := len(rec) - 1
			callEnd := bytes.LastIndexByte(rec[:keyEnd], ':')
			for j := range leg {
				leg[j] = cell{}
			}
			leg[legCol.call] = cell{ok: true, s: unsafeString(rec[:callEnd])}
			leg[legCol.location] = cell{ok: true, s: d.location}
			if d.user != nil {
				leg[legCol.user] = cell{ok: true, s: *d.user}
			}
			leg[legCol.deviceType] = cell{ok: true, s: d.deviceType}
			leg[legCol.start] = cell{ok: true, n: start.UnixMicro()}
			leg[legCol.duration] = cell{ok: true, n: duration}
			leg[legCol.direction] = cell{ok: true, s: dir}
			if len(e.video) > 0 && string(e.video) != "0" {
				leg[legCol.video] = cell{ok: true, n: 1}
			}
			rec = append(rec, 1, byte(inv.clusterRegion[cluster]))
			rec = binary.AppendUvarint(rec, uint64(len(customer)))
			rec = append(rec, customer...)
			head := sch.encodeRange(nil, leg, 0, legCol.qFrom, sch.inKey)
			rec = binary.AppendUvarint(rec, uint64(len(head)))
			rec = append(rec, head...)
			rec = sch.encodeRange(rec, leg, legCol.qTo, len(leg), sch.inKey)
		}
		if err := add(rec); err != nil {
			return "", err
		}
	}
	return "", nil
}

// legCol are the call leg columns a call record fills; the quality columns
// (audio and video jitter, latency, loss: qFrom to qTo-1) are one range, the
// CMR's part of the leg.
var legCol = func() (c struct {
	call, location, user, deviceType, start, duration, direction, video, qFrom, qTo int
}) {
	col := Schemas["calls"].byName
	c.call, c.location, c.user, c.deviceType = col["call_id"], col["location_id"], col["user_id"], col["device_type"]
	c.start, c.duration, c.direction, c.video = col["start_time"], col["duration_seconds"], col["direction"], col["is_video"]
	c.qFrom, c.qTo = col["audio_jitter_ms"], col["video_loss_pct"]+1
	if c.qTo-c.qFrom != 6 {
		panic("files: the call legs' quality columns are not one range")
	}
	return c
}()

// sideLeg is the calls record of a joined side: its leg id, its customer and
// encoded columns (the side's payload past its rank) with the CMR's quality
// spliced in where the quality columns go.
func sideLeg(dst []byte, rank int, legID, payload []byte, q cmrQuality) ([]byte, error) {
	n, k := binary.Uvarint(payload)
	if k <= 0 || uint64(len(payload)-k) < n {
		return dst, errCorrupt
	}
	customer := payload[k : k+int(n)]
	payload = payload[k+int(n):]
	n, k = binary.Uvarint(payload)
	if k <= 0 || uint64(len(payload)-k) < n {
		return dst, errCorrupt
	}
	head, tail := payload[k:k+int(n)], payload[k+int(n):]
	dst = append(dst, byte(rank))
	dst = append(append(dst, customer...), 0)
	dst = append(append(dst, legID...), 0)
	dst = append(dst, head...)
	var buf [32]cell
	cells := buf[:legCol.qTo]
	qc := cells[legCol.qFrom:]
	qc[0], qc[1], qc[2] = cell{ok: true, f: q.jitter}, cell{ok: true, f: q.latency}, cell{ok: true, f: q.loss}
	for i, v := range []*float64{q.videoJitter, q.videoLatency, q.videoLoss} {
		if v != nil {
			qc[3+i] = cell{ok: true, f: *v}
		}
	}
	dst = Schemas["calls"].encodeRange(dst, cells, legCol.qFrom, legCol.qTo, nil)
	return append(dst, tail...), nil
}

// cmrQuality is a CMR's quality for one leg.
type cmrQuality struct {
	jitter, latency, loss                float64
	videoJitter, videoLatency, videoLoss *float64
}

// cmrRecord is a CMR as a record: its leg key, then its quality and where it
// came from (to name it when it has no CDR).
func cmrRecord(dst []byte, cluster string, fr *flatReader, idx []int, file string) ([]byte, error) {
	get := func(i int) []byte { return fr.field(idx[i]) }
	for _, i := range []int{mCM, mCall, mLeg} {
		if !digits(get(i)) {
			return dst, fmt.Errorf("CMR field %s %q is not a number", cmrFields[i], get(i))
		}
	}
	// stream is one stream's jitter, latency and loss = lost ÷ (lost + received), in %.
	stream := func(jitter, latency, lost, received int) (q [3]float64, err error) {
		var v [4]float64
		for j, i := range []int{jitter, latency, lost, received} {
			s := bytes.TrimSpace(get(i))
			if len(s) == 0 {
				continue
			}
			if v[j], err = strconv.ParseFloat(unsafeString(s), 64); err != nil {
				return q, fmt.Errorf("CMR field %s: %q is not a number", cmrFields[i], s)
			}
		}
		q[0], q[1] = v[0], v[1]
		if v[2]+v[3] > 0 {
			q[2] = 100 * v[2] / (v[2] + v[3])
		}
		return q, nil
	}
	audio, err := stream(mJitter, mLatency, mLost, mReceived)
	if err != nil {
		return dst, err
	}
	dst = legKey(dst, cluster, get(mCM), get(mCall), get(mLeg))
	for _, f := range audio {
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
	}
	if vd := get(mVideoDuration); idx[mVideoJitter] >= 0 && len(vd) > 0 && string(vd) != "0" {
		video, err := stream(mVideoJitter, mVideoDelay, mVideoLost, mVideoReceived) // a delay of 0: not measured
		if err != nil {
			return dst, err
		}
		dst = append(dst, 1)
		for _, f := range video {
			dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
		}
	} else {
		dst = append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(file)))
	dst = append(dst, file...)
	return binary.AppendUvarint(dst, uint64(fr.line)), nil
}

// readQuality reads a CMR record's quality (past its key).
func readQuality(b []byte) cmrQuality {
	f := func() float64 { v := math.Float64frombits(binary.BigEndian.Uint64(b)); b = b[8:]; return v }
	q := cmrQuality{jitter: f(), latency: f(), loss: f()}
	if b[0] == 1 {
		b = b[1:]
		vj, vl, vloss := f(), f(), f()
		q.videoJitter, q.videoLoss = &vj, &vloss
		if vl > 0 {
			q.videoLatency = &vl
		}
	}
	return q
}

func pointer[T any](v *T) unsafe.Pointer { return unsafe.Pointer(v) }

// cmrSource is the file and line a CMR record came from.
func cmrSource(rec []byte) (string, int) {
	b := rec[len(keyOf(rec))+24:]
	if b[0] == 1 {
		b = b[25:]
	} else {
		b = b[1:]
	}
	n, k := binary.Uvarint(b)
	file := string(b[k : k+int(n)])
	line, _ := binary.Uvarint(b[k+int(n):])
	return file, int(line)
}
