package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"tally/clock"
	"tally/model"
	"tally/periods"
	"tally/source"
	"tally/source/files"
	"tally/storage/local"
)

// cdrDay is the benchmark's call-records day.
var cdrDay = periods.Period{Cadence: periods.Daily, Start: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)}

const benchCustomer = "0f000001-1c2d-4e5f-8a9b-0c1d2e3f4a5b"

// readCDR writes a landing zone with n CUCM CDR records (and a CMR for each
// originating leg) for one Dedicated Instance cluster of 1,000 devices, then
// reads the day through the files source as sync does, and returns the legs.
func readCDR(n int64) (int64, error) {
	dir, err := os.MkdirTemp("", "tally-bench-cdr-*")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	write := func(rel, content string) (files.ManifestFile, error) {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		sum := sha256.Sum256([]byte(content))
		return files.ManifestFile{Path: rel, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}, os.WriteFile(p, []byte(content), 0o644)
	}
	day := "day=" + cdrDay.ID()
	devices := "device_id,customer_id,cluster_id,device_type,product,mac,firmware,location_id,location_name\n"
	for i := 0; i < 1000; i++ {
		devices += fmt.Sprintf("SEP%012X,%s,CL1,desk-phone,Cisco 8845,%012X,1,L%d,Site %d\n", i, benchCustomer, i, i%20, i%20)
	}
	var m files.Manifest
	m.Day = cdrDay.ID()
	for _, f := range []struct{ rel, content string }{
		{"partners/region=US/" + day + "/p.csv", "partner_id,partner_name\nP1,Partner\n"},
		{"customers/region=US/" + day + "/c.csv", "customer_id,customer_name,partner_id,managed_by,created_at\n" + benchCustomer + ",Acme,P1,partner,2026-01-01T00:00:00Z\n"},
		{"clusters/region=US/" + day + "/c.csv", "cluster_id,customer_id,fqdn,version\nCL1," + benchCustomer + ",cucm.example,14.0\n"},
		{"devices/region=US/" + day + "/d.csv", devices},
	} {
		mf, err := write(f.rel, f.content)
		if err != nil {
			return 0, err
		}
		m.Files = append(m.Files, mf)
	}
	b, _ := json.Marshal(m)
	if _, err := write("_ready/day="+cdrDay.ID()+".json", string(b)); err != nil {
		return 0, err
	}
	// Call records, 100,000 to a file, as a cluster pushes them through the day.
	const perFile = 100_000
	for start := int64(0); start < n; start += perFile {
		stamp := cdrDay.Start.Add(time.Duration(start*86400/max(n, 1)) * time.Second).Format("200601021504")
		if err := writeFlat(filepath.Join(dir, "cdr/cluster=CL1", fmt.Sprintf("cdr_CL1_01_%s_%d", stamp, start)), start, min(start+perFile, n), false); err != nil {
			return 0, err
		}
		if err := writeFlat(filepath.Join(dir, "cdr/cluster=CL1", fmt.Sprintf("cmr_CL1_01_%s_%d", stamp, start)), start, min(start+perFile, n), true); err != nil {
			return 0, err
		}
	}
	st, err := local.New(dir)
	if err != nil {
		return 0, err
	}
	src := &files.Source{Root: st, ReadyDeadline: 12 * time.Hour, MaxCallLength: 12 * time.Hour, Now: clock.Real{}.Now}
	ctx := context.Background()
	if _, err := src.Partners(ctx, cdrDay); err != nil {
		return 0, err
	}
	var legs int64
	err = src.Customers(ctx, cdrDay, func(cd *source.CustomerDay) error {
		return cd.EachCall(func(model.CallLeg) error { legs++; return nil })
	})
	return legs, err
}

func writeFlat(path string, from, to int64, cmr bool) error {
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if cmr {
		fmt.Fprint(w, "\"cdrRecordType\",\"globalCallID_callManagerId\",\"globalCallID_callId\",\"callIdentifier\",\"numberPacketsReceived\",\"numberPacketsLost\",\"jitter\",\"latency\",\"deviceName\"\nINTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,VARCHAR(129)\n")
	} else {
		fmt.Fprint(w, "\"cdrRecordType\",\"globalCallID_callManagerId\",\"globalCallID_callId\",\"origLegCallIdentifier\",\"dateTimeOrigination\",\"destLegIdentifier\",\"origDeviceName\",\"destDeviceName\",\"duration\"\nINTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,VARCHAR(129),VARCHAR(129),INTEGER\n")
	}
	for i := from; i < to; i++ {
		t := cdrDay.Start.Unix() + i*86400/max(to, 1)
		if cmr {
			fmt.Fprintf(w, "2,1,%d,%d,1000,%d,%d,40,\"SEP%012X\"\n", i, 2*i, i%7, i%200, i%1000)
		} else {
			fmt.Fprintf(w, "1,1,%d,%d,%d,%d,\"SEP%012X\",\"SIPTrunk\",%d\n", i, 2*i, t, 2*i+1, i%1000, i%600)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
