package files

// Dedicated Instance call records: the CUCM CDR and CMR flat files a cluster's
// CDR Repository Manager pushes, under <root>/cdr/cluster=<cluster_id>/ as
// cdr_<ClusterID>_<NodeID>_<YYYYMMDDHHMM>_<seq> and cmr_…. Field names follow
// Cisco's "Call Detail Records Administration Guide for Cisco Unified
// Communications Manager, Release 11.0(1)" (CDR Field Descriptions; CMR Field
// Descriptions): a first line of field names, a second of field types, then
// quoted, comma-separated records.

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

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
		out = append(out, f)
	}
	return out, nil
}

// flatRecords reads a CDR/CMR flat file: names, types, then records, each
// passed to fn as a map from field name to value with its line number.
func flatRecords(r io.Reader, file string, fn func(line int, rec map[string]string) error, bad func(line int, reason string)) error {
	cr := csv.NewReader(&lineLimit{r: bufioReader(r), max: MaxLine, file: file})
	cr.FieldsPerRecord = -1
	names, err := cr.Read()
	if err != nil {
		return fmt.Errorf("files: %s: the line of field names: %v", file, err)
	}
	if _, err := cr.Read(); err != nil {
		return fmt.Errorf("files: %s: the line of field types: %v", file, err)
	}
	for {
		fields, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		line, _ := cr.FieldPos(0)
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			bad(pe.StartLine, "unparseable line: "+pe.Err.Error())
			continue
		}
		if err != nil {
			return fmt.Errorf("files: %s: %w", file, err)
		}
		if len(fields) != len(names) {
			bad(line, fmt.Sprintf("%d fields, the header names %d", len(fields), len(names)))
			continue
		}
		rec := make(map[string]string, len(names))
		for i, n := range names {
			rec[n] = fields[i]
		}
		if err := fn(line, rec); err != nil {
			return err
		}
	}
}

// A day's call records go through three spills, so memory does not grow with
// the day's call count: CMRs and CDR sides, each sorted by leg key
// (cluster, callManagerId, callId, leg identifier) and merge-joined; then the
// legs sorted by region and customer, read back as each customer is yielded.

// cmr is a CMR's quality for one leg.
type cmr struct {
	Key                                  string
	Jitter, Latency, Loss                float64
	VideoJitter, VideoLatency, VideoLoss *float64
	Cluster, File                        string
	Line                                 int
}

// side is one side of a CDR: a leg of the cluster's device, or (Mapped false) a
// trunk or gateway side that still owns its CMR.
type side struct {
	Key    string
	Mapped bool
	Leg    model.CallLeg
}

// placed is a leg on its way to its customer, in yield order.
type placed struct {
	Region   int
	Customer string
	Leg      model.CallLeg
}

func legKey(cluster, cm, call, leg string) string {
	return cluster + "\x00" + cm + "\x00" + call + "\x00" + leg
}

// spillRecords bounds each spill's buffer: records held in memory at once.
const spillRecords = 50_000

// cdrLegs reads the day's CDR and CMR files into d.calls: legs of the
// clusters' customers, sorted for Customers. Rejected records go to d.rejected
// (by the cluster's region) or, without a region, to the returned list.
func (s *Source) cdrLegs(ctx context.Context, day periods.Period, inv *inventory, d *day) ([]source.Rejected, []ManifestFile, error) {
	files, err := cdrFiles(ctx, s.Root, day, s.MaxCallLength)
	if err != nil || len(files) == 0 {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(s.TmpDir, "tally-cdr-*")
	if err != nil {
		return nil, nil, fmt.Errorf("files: call records: %w", err)
	}
	d.tmp = dir
	cmrs := newSpill(dir, spillRecords, func(a, b *cmr) int { return strings.Compare(a.Key, b.Key) })
	sides := newSpill(dir, spillRecords, func(a, b *side) int { return strings.Compare(a.Key, b.Key) })
	defer cmrs.remove()
	defer sides.remove()
	var unplaced []source.Rejected
	reject := func(cluster, file string, line int, reason string, row map[string]string) {
		r := source.Rejected{Entity: "calls", File: file, Line: int64(line), Reason: reason, Row: map[string]any{}}
		for k, v := range row {
			r.Row[k] = v
		}
		if region, ok := inv.clusterRegion[cluster]; ok {
			d.rejected[region] = append(d.rejected[region], r)
		} else {
			unplaced = append(unplaced, r)
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].key < files[j].key })
	var read []ManifestFile
	for _, f := range files {
		bad := func(line int, reason string) { reject(f.cluster, f.key, line, reason, nil) }
		each := func(line int, rec map[string]string) error {
			if _, ok := inv.clusterCustomer[f.cluster]; !ok {
				reject(f.cluster, f.key, line, fmt.Sprintf("cluster %s is not in the day's clusters inventory", f.cluster), rec)
				return nil
			}
			if f.cmr {
				c, err := parseCMR(rec)
				if err != nil {
					reject(f.cluster, f.key, line, err.Error(), rec)
					return nil
				}
				c.Key = legKey(f.cluster, rec["globalCallID_callManagerId"], rec["globalCallID_callId"], rec["callIdentifier"])
				c.Cluster, c.File, c.Line = f.cluster, f.key, line
				return cmrs.add(*c)
			}
			out, reason := inv.sidesOf(f.cluster, rec, day)
			if reason != "" {
				reject(f.cluster, f.key, line, reason, rec)
				return nil
			}
			for _, sd := range out {
				if err := sides.add(sd); err != nil {
					return err
				}
			}
			return nil
		}
		sum, size, err := s.stream(ctx, f.key, func(r io.Reader) error { return flatRecords(r, f.key, each, bad) })
		if err != nil {
			return nil, nil, err // flatRecords' errors and the store's name the file
		}
		read = append(read, ManifestFile{Path: f.key, Size: size, SHA256: sum})
	}

	// Join sides and CMRs by leg key; a re-delivered side is the same key.
	legs := newSpill(dir, spillRecords, func(a, b *placed) int {
		if a.Region != b.Region {
			return a.Region - b.Region
		}
		if c := strings.Compare(a.Customer, b.Customer); c != 0 {
			return c
		}
		return strings.Compare(a.Leg.LegID, b.Leg.LegID)
	})
	d.calls = legs
	si, err := sides.iter()
	if err != nil {
		return nil, nil, err
	}
	defer si.close()
	ci, err := cmrs.iter()
	if err != nil {
		return nil, nil, err
	}
	defer ci.close()
	// Contract-shaped calls/ rows of the day, by call id: a call delivered both
	// ways is a conflict.
	contract := map[string]bool{}
	for _, cds := range d.customers {
		for _, cd := range cds {
			for _, l := range cd.Calls {
				contract[l.CallID] = true
			}
		}
	}
	lastKey := ""
	for {
		sd, ok, err := si.next()
		if err != nil {
			return nil, nil, err
		}
		// CMRs before this side's key have no CDR.
		for {
			c, more := ci.peek()
			if !more || (ok && c.Key >= sd.Key) {
				break
			}
			cm, _, _ := ci.next()
			if cm.Key != lastKey {
				parts := strings.Split(cm.Key, "\x00")
				reject(cm.Cluster, cm.File, cm.Line, fmt.Sprintf("CMR of call %s:%s leg %s has no CDR", parts[1], parts[2], parts[3]), nil)
			}
		}
		if !ok {
			break
		}
		if sd.Key == lastKey {
			continue // a re-delivered or overlapping file
		}
		lastKey = sd.Key
		var q *cmr
		for {
			c, more := ci.peek()
			if !more || c.Key != sd.Key {
				break
			}
			cm, _, _ := ci.next()
			q = &cm
		}
		if !sd.Mapped {
			continue
		}
		l := sd.Leg
		if contract[l.CallID] {
			d.conflicts[l.CallID] = true
			region := inv.clusterRegion[strings.SplitN(sd.Key, "\x00", 2)[0]]
			d.rejected[region] = append(d.rejected[region], source.Rejected{Entity: "calls", File: "cdr/",
				Reason: fmt.Sprintf("call %s is delivered both as calls/ rows and as CDRs: a conflict", l.CallID), Row: rowOf(reflect.ValueOf(l))})
			continue
		}
		if q != nil {
			l.AudioJitterMs, l.AudioLatencyMs, l.AudioLossPct = q.Jitter, q.Latency, q.Loss
			l.VideoJitterMs, l.VideoLatencyMs, l.VideoLossPct = q.VideoJitter, q.VideoLatency, q.VideoLoss
		}
		region := inv.clusterRegion[strings.SplitN(sd.Key, "\x00", 2)[0]]
		if err := legs.add(placed{Region: slices.Index(model.Regions, region), Customer: l.CustomerID, Leg: l}); err != nil {
			return nil, nil, err
		}
	}
	if err := legs.flush(); err != nil {
		return nil, nil, err
	}
	return unplaced, read, nil
}

func parseCMR(rec map[string]string) (*cmr, error) {
	num := func(name string) (float64, error) {
		v := strings.TrimSpace(rec[name])
		if v == "" {
			return 0, nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("CMR field %s: %q is not a number", name, v)
		}
		return f, nil
	}
	c := &cmr{}
	var err error
	var lost, received float64
	for _, f := range []struct {
		name string
		dst  *float64
	}{{"jitter", &c.Jitter}, {"latency", &c.Latency}, {"numberPacketsLost", &lost}, {"numberPacketsReceived", &received}} {
		if *f.dst, err = num(f.name); err != nil {
			return nil, err
		}
	}
	if lost+received > 0 {
		c.Loss = 100 * lost / (lost + received)
	}
	if _, ok := rec["videoAverageJitter"]; ok && rec["videoDuration"] != "" && rec["videoDuration"] != "0" {
		vj, err1 := num("videoAverageJitter")
		vl, err2 := num("videoOneWayDelay")
		vlost, err3 := num("numberVideoPacketsLost")
		vrecv, err4 := num("numberVideoPacketsReceived")
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, err
		}
		c.VideoJitter = &vj
		if vl > 0 {
			c.VideoLatency = &vl
		}
		loss := 0.0
		if vlost+vrecv > 0 {
			loss = 100 * vlost / (vlost + vrecv)
		}
		c.VideoLoss = &loss
	}
	return c, nil
}

// inventory is what mapping call records needs: the day's devices by name and
// MAC per cluster, and each cluster's customer and region.
type inventory struct {
	clusterCustomer map[string]string
	clusterRegion   map[string]string
	byName          map[string]map[string]*model.Device // cluster → device_id → device
	byMAC           map[string]map[string]*model.Device // cluster → MAC → device
}

// device maps a CDR device name to the cluster's inventory: by device_id first,
// then SEP<MAC> to the inventory MAC (CSF, BOT and TCT names carry no MAC).
func (inv *inventory) device(cluster, name string) *model.Device {
	if name == "" {
		return nil
	}
	if d := inv.byName[cluster][name]; d != nil {
		return d
	}
	if mac, ok := strings.CutPrefix(strings.ToUpper(name), "SEP"); ok && len(mac) == 12 {
		return inv.byMAC[cluster][mac]
	}
	return nil
}

// sidesOf maps one CDR record to its two sides: a leg for each side whose
// device is the cluster's, a bare key for a trunk or gateway side (it still owns
// its CMR). A record neither side of which maps is rejected with its reason; an
// end-of-call record of another day yields nothing (that day reads it).
func (inv *inventory) sidesOf(cluster string, rec map[string]string, day periods.Period) ([]side, string) {
	customer := inv.clusterCustomer[cluster]
	if rec["cdrRecordType"] != "" && rec["cdrRecordType"] != "1" {
		return nil, "" // not a call's end record (0: start, 2: CMR)
	}
	cm, call := rec["globalCallID_callManagerId"], rec["globalCallID_callId"]
	if cm == "" || call == "" {
		return nil, "globalCallID_callManagerId or globalCallID_callId is empty"
	}
	origination, err := strconv.ParseInt(rec["dateTimeOrigination"], 10, 64)
	if err != nil {
		return nil, fmt.Sprintf("dateTimeOrigination %q is not epoch seconds", rec["dateTimeOrigination"])
	}
	start := time.Unix(origination, 0).UTC()
	if start.Before(day.Start) || !start.Before(day.End()) {
		return nil, ""
	}
	duration, err := strconv.ParseInt(orZero(rec["duration"]), 10, 64)
	if err != nil || duration < 0 {
		return nil, fmt.Sprintf("duration %q is not a number of seconds", rec["duration"])
	}
	destLeg := rec["destLegIdentifier"]
	if destLeg == "" {
		destLeg = rec["destLegCallIdentifier"]
	}
	ends := []struct{ device, leg, video, direction string }{
		{rec["origDeviceName"], rec["origLegCallIdentifier"], rec["origVideoCap_Codec"], "outbound"},
		{rec["destDeviceName"], destLeg, rec["destVideoCap_Codec"], "inbound"},
	}
	devs := []*model.Device{inv.device(cluster, ends[0].device), inv.device(cluster, ends[1].device)}
	if devs[0] == nil && devs[1] == nil {
		return nil, fmt.Sprintf("neither origDeviceName %q nor destDeviceName %q is a device of cluster %s", ends[0].device, ends[1].device, cluster)
	}
	callID := cluster + ":" + cm + ":" + call
	var out []side
	for i, d := range devs {
		e := ends[i]
		sd := side{Key: legKey(cluster, cm, call, e.leg)}
		if d != nil {
			dir := e.direction
			if devs[0] != nil && devs[1] != nil {
				dir = "internal"
			}
			sd.Mapped = true
			sd.Leg = model.CallLeg{LegID: callID + ":" + e.leg, CallID: callID, CustomerID: customer, LocationID: d.LocationID,
				UserID: d.UserID, DeviceType: d.DeviceType, StartTime: start, DurationSeconds: duration, Direction: dir,
				IsVideo: e.video != "" && e.video != "0"}
		}
		out = append(out, sd)
	}
	return out, ""
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 64*1024) }

// newInventory indexes the day's clusters and devices for the call records.
func newInventory(d *day) *inventory {
	inv := &inventory{clusterCustomer: map[string]string{}, clusterRegion: map[string]string{},
		byName: map[string]map[string]*model.Device{}, byMAC: map[string]map[string]*model.Device{}}
	for region, cds := range d.customers {
		for _, cd := range cds {
			for _, c := range cd.Clusters {
				inv.clusterCustomer[c.ClusterID], inv.clusterRegion[c.ClusterID] = cd.Customer.CustomerID, region
				inv.byName[c.ClusterID], inv.byMAC[c.ClusterID] = map[string]*model.Device{}, map[string]*model.Device{}
			}
		}
	}
	for _, cds := range d.customers {
		for _, cd := range cds {
			for i := range cd.Devices {
				dev := &cd.Devices[i]
				if dev.ClusterID == nil || inv.byName[*dev.ClusterID] == nil {
					continue
				}
				inv.byName[*dev.ClusterID][dev.DeviceID] = dev
				if dev.MAC != "" {
					inv.byMAC[*dev.ClusterID][strings.ToUpper(strings.NewReplacer(":", "", "-", "", ".", "").Replace(dev.MAC))] = dev
				}
			}
		}
	}
	return inv
}

// addCDRLegs reads the day's Dedicated Instance call records (see cdrLegs).
func (s *Source) addCDRLegs(ctx context.Context, p periods.Period, d *day) error {
	inv := newInventory(d)
	if len(inv.clusterCustomer) == 0 {
		return nil
	}
	unplaced, read, err := s.cdrLegs(ctx, p, inv, d)
	if err != nil {
		return err
	}
	if len(read) > 0 {
		d.notes["cdr_files"] = read
	}
	if len(unplaced) > 0 {
		d.notes["cdr_rejected_without_region"] = unplaced
	}
	return nil
}

// withCDRLegs streams a customer's calls: its calls/ rows merged by leg_id
// with its legs from the call records, read in yield order from legs. A call
// delivered both ways is a conflict: its calls/ rows are rejected here (its CDR
// legs were when they were joined).
func (d *day) withCDRLegs(cd *source.CustomerDay, legs *merged[placed]) {
	region := slices.Index(model.Regions, cd.Region)
	var kept []model.CallLeg
	for _, l := range cd.Calls {
		if !d.conflicts[l.CallID] {
			kept = append(kept, l)
			continue
		}
		cd.Rejected = append(cd.Rejected, source.Rejected{Entity: "calls", File: "calls/",
			Reason: fmt.Sprintf("call %s is delivered both as calls/ rows and as CDRs: a conflict", l.CallID), Row: rowOf(reflect.ValueOf(l))})
	}
	cd.Calls = kept
	mine := func() (*placed, bool) {
		for {
			next, ok := legs.peek()
			if !ok || next.Region > region || (next.Region == region && next.Customer > cd.Customer.CustomerID) {
				return nil, false
			}
			if next.Region == region && next.Customer == cd.Customer.CustomerID {
				return next, true
			}
			legs.next() // an earlier customer's leg its consumer did not read (a region outside --region)
		}
	}
	cd.CallStream = func(yield func(model.CallLeg) error) error {
		i := 0
		for {
			next, ok := mine()
			for i < len(kept) && (!ok || kept[i].LegID < next.Leg.LegID) {
				if err := yield(kept[i]); err != nil {
					return err
				}
				i++
			}
			if !ok {
				return nil
			}
			pl, _, err := legs.next()
			if err != nil {
				return err
			}
			if err := yield(pl.Leg); err != nil {
				return err
			}
		}
	}
}
