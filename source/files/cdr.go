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
	"path"
	"reflect"
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

// cmrKey matches a CMR to a CDR leg: callManagerId, callId and the leg's call identifier.
type cmrKey struct{ cm, call, leg string }

type cmr struct {
	jitter, latency, loss                float64
	videoJitter, videoLatency, videoLoss *float64
	file                                 string
	line                                 int
	used                                 bool
}

// cdrLegs turns the day's CDR and CMR files into call legs of the clusters'
// customers. It returns the legs by customer, and the records it rejected
// (with their region where a cluster gives one; region "" otherwise).
func (s *Source) cdrLegs(ctx context.Context, day periods.Period, inv *inventory) (map[string][]model.CallLeg, []rejectedIn, []ManifestFile, error) {
	files, err := cdrFiles(ctx, s.Root, day, s.MaxCallLength)
	if err != nil {
		return nil, nil, nil, err
	}
	var read []ManifestFile
	var rejected []rejectedIn
	reject := func(cluster, file string, line int, reason string, row map[string]string) {
		r := rejectedIn{region: inv.clusterRegion[cluster]}
		r.Entity, r.File, r.Line, r.Reason = "calls", file, int64(line), reason
		r.Row = map[string]any{}
		for k, v := range row {
			r.Row[k] = v
		}
		rejected = append(rejected, r)
	}
	// CMRs first, so each CDR leg finds its quality.
	cmrs := map[cmrKey]*cmr{}
	sort.Slice(files, func(i, j int) bool {
		if files[i].cmr != files[j].cmr {
			return files[i].cmr
		}
		return files[i].key < files[j].key
	})
	legs := map[string][]model.CallLeg{}
	seen := map[string]bool{}
	for _, f := range files {
		sum, size, err := s.hash(ctx, f.key)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("files: %s: %w", f.key, err)
		}
		read = append(read, ManifestFile{Path: f.key, Size: size, SHA256: sum})
		rc, _, err := s.Root.Get(ctx, f.key)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("files: %w", err)
		}
		bad := func(line int, reason string) { reject(f.cluster, f.key, line, reason, nil) }
		var each func(line int, rec map[string]string) error
		if f.cmr {
			each = func(line int, rec map[string]string) error {
				if _, ok := inv.clusterRegion[f.cluster]; !ok {
					reject(f.cluster, f.key, line, fmt.Sprintf("cluster %s is not in the day's clusters inventory", f.cluster), rec)
					return nil
				}
				c, err := parseCMR(rec)
				if err != nil {
					reject(f.cluster, f.key, line, err.Error(), rec)
					return nil
				}
				c.file, c.line = f.key, line
				cmrs[cmrKey{rec["globalCallID_callManagerId"], rec["globalCallID_callId"], rec["callIdentifier"]}] = c
				return nil
			}
		} else {
			each = func(line int, rec map[string]string) error {
				out, reason := inv.legsOf(f.cluster, rec, cmrs, day)
				if reason != "" {
					reject(f.cluster, f.key, line, reason, rec)
					return nil
				}
				for _, l := range out {
					if seen[l.LegID] {
						continue // a re-delivered or overlapping file
					}
					seen[l.LegID] = true
					legs[l.CustomerID] = append(legs[l.CustomerID], l)
				}
				return nil
			}
		}
		err = flatRecords(rc, f.key, each, bad)
		rc.Close()
		if err != nil {
			return nil, nil, nil, err
		}
	}
	for k, c := range cmrs {
		if !c.used {
			reject(clusterOfFile(c.file), c.file, c.line, fmt.Sprintf("CMR of call %s:%s leg %s has no CDR", k.cm, k.call, k.leg), nil)
		}
	}
	return legs, rejected, read, nil
}

func clusterOfFile(key string) string {
	f, _ := parseCDRName(key)
	return f.cluster
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
	}{{"jitter", &c.jitter}, {"latency", &c.latency}, {"numberPacketsLost", &lost}, {"numberPacketsReceived", &received}} {
		if *f.dst, err = num(f.name); err != nil {
			return nil, err
		}
	}
	if lost+received > 0 {
		c.loss = 100 * lost / (lost + received)
	}
	if _, ok := rec["videoAverageJitter"]; ok && rec["videoDuration"] != "" && rec["videoDuration"] != "0" {
		vj, err1 := num("videoAverageJitter")
		vl, err2 := num("videoOneWayDelay")
		vlost, err3 := num("numberVideoPacketsLost")
		vrecv, err4 := num("numberVideoPacketsReceived")
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, err
		}
		c.videoJitter = &vj
		if vl > 0 {
			c.videoLatency = &vl
		}
		loss := 0.0
		if vlost+vrecv > 0 {
			loss = 100 * vlost / (vlost + vrecv)
		}
		c.videoLoss = &loss
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

// legsOf maps one CDR record to 0–2 legs: one per side whose device is the
// cluster's; a trunk or gateway side is not a leg. A record neither side of
// which maps is rejected with its reason.
func (inv *inventory) legsOf(cluster string, rec map[string]string, cmrs map[cmrKey]*cmr, day periods.Period) ([]model.CallLeg, string) {
	customer, ok := inv.clusterCustomer[cluster]
	if !ok {
		return nil, fmt.Sprintf("cluster %s is not in the day's clusters inventory", cluster)
	}
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
		return nil, "" // another day's leg: that day reads it
	}
	duration, err := strconv.ParseInt(orZero(rec["duration"]), 10, 64)
	if err != nil || duration < 0 {
		return nil, fmt.Sprintf("duration %q is not a number of seconds", rec["duration"])
	}
	destLeg := rec["destLegIdentifier"]
	if destLeg == "" {
		destLeg = rec["destLegCallIdentifier"]
	}
	sides := []struct {
		device, leg, video, direction string
	}{
		{rec["origDeviceName"], rec["origLegCallIdentifier"], rec["origVideoCap_Codec"], "outbound"},
		{rec["destDeviceName"], destLeg, rec["destVideoCap_Codec"], "inbound"},
	}
	origDev, destDev := inv.device(cluster, sides[0].device), inv.device(cluster, sides[1].device)
	if origDev == nil && destDev == nil {
		return nil, fmt.Sprintf("neither origDeviceName %q nor destDeviceName %q is a device of cluster %s", sides[0].device, sides[1].device, cluster)
	}
	callID := cluster + ":" + cm + ":" + call
	var out []model.CallLeg
	for i, d := range []*model.Device{origDev, destDev} {
		if d == nil {
			continue
		}
		side := sides[i]
		dir := side.direction
		if origDev != nil && destDev != nil {
			dir = "internal"
		}
		l := model.CallLeg{LegID: callID + ":" + side.leg, CallID: callID, CustomerID: customer, LocationID: d.LocationID,
			UserID: d.UserID, DeviceType: d.DeviceType, StartTime: start, DurationSeconds: duration, Direction: dir,
			IsVideo: side.video != "" && side.video != "0"}
		if c := cmrs[cmrKey{cm, call, side.leg}]; c != nil {
			c.used = true
			l.AudioJitterMs, l.AudioLatencyMs, l.AudioLossPct = c.jitter, c.latency, c.loss
			l.VideoJitterMs, l.VideoLatencyMs, l.VideoLossPct = c.videoJitter, c.videoLatency, c.videoLoss
		}
		out = append(out, l)
	}
	return out, ""
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// rejectedIn is a rejected row with the region whose quarantine takes it (""
// when no cluster gives one: the ledger lists it instead).
type rejectedIn struct {
	source.Rejected
	region string
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

// addCDRLegs adds the day's Dedicated Instance call legs to their customers. A
// call_id that is also delivered as contract-shaped calls/ rows is a conflict:
// both are rejected.
func (s *Source) addCDRLegs(ctx context.Context, p periods.Period, d *day) error {
	inv := newInventory(d)
	if len(inv.clusterCustomer) == 0 {
		return nil
	}
	legs, rejected, read, err := s.cdrLegs(ctx, p, inv)
	if err != nil {
		return err
	}
	var unplaced []source.Rejected
	for _, r := range rejected {
		if r.region == "" {
			unplaced = append(unplaced, r.Rejected)
			continue
		}
		d.rejected[r.region] = append(d.rejected[r.region], r.Rejected)
	}
	for region, cds := range d.customers {
		for _, cd := range cds {
			add := legs[cd.Customer.CustomerID]
			if len(add) == 0 {
				continue
			}
			fromCDR := map[string]bool{}
			for _, l := range add {
				fromCDR[l.CallID] = true
			}
			conflict := map[string]bool{}
			for _, l := range cd.Calls {
				if fromCDR[l.CallID] {
					conflict[l.CallID] = true
				}
			}
			keep := func(ls []model.CallLeg, from string) []model.CallLeg {
				var out []model.CallLeg
				for _, l := range ls {
					if !conflict[l.CallID] {
						out = append(out, l)
						continue
					}
					d.rejected[region] = append(d.rejected[region], source.Rejected{Entity: "calls", File: from,
						Reason: fmt.Sprintf("call %s is delivered both as calls/ rows and as CDRs: a conflict", l.CallID), Row: rowOf(reflect.ValueOf(l))})
				}
				return out
			}
			cd.Calls = append(keep(cd.Calls, "calls/"), keep(add, "cdr/")...)
			cd.Sort()
		}
	}
	if len(read) > 0 {
		d.notes["cdr_files"] = read
	}
	if len(unplaced) > 0 {
		d.notes["cdr_rejected_without_region"] = unplaced
	}
	return nil
}
