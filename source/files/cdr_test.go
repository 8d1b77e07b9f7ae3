package files

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"tally/model"
)

// Fixtures written from the CDR and CMR field definitions (Call Detail Records
// Administration Guide for CUCM 11.0(1)): the fields tally reads and a few
// others, in the files' own shape: names, types, then quoted records.
const cdrHeader = `"cdrRecordType","globalCallID_callManagerId","globalCallID_callId","origLegCallIdentifier","dateTimeOrigination","origNodeId","callingPartyNumber","destLegIdentifier","finalCalledPartyNumber","origVideoCap_Codec","destVideoCap_Codec","dateTimeConnect","dateTimeDisconnect","duration","origDeviceName","destDeviceName"
INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,VARCHAR(50),INTEGER,VARCHAR(50),INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,VARCHAR(129),VARCHAR(129)
`

const cmrHeader = `"cdrRecordType","globalCallID_callManagerId","globalCallID_callId","nodeId","directoryNum","callIdentifier","dateTimeStamp","numberPacketsSent","numberOctetsSent","numberPacketsReceived","numberOctetsReceived","numberPacketsLost","jitter","latency","deviceName","varVQMetrics"
INTEGER,INTEGER,INTEGER,INTEGER,VARCHAR(50),INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,INTEGER,VARCHAR(129),VARCHAR(600)
`

const clusterID = "CL1"

var diInventory = map[string]string{
	"customers/region=US/day=2026-11-21/c.csv": customersCSV,
	"clusters/region=US/day=2026-11-21/c.csv":  "cluster_id,customer_id,fqdn,version\n" + clusterID + "," + custUS + ",cucm.example.com,14.0\n",
	"devices/region=US/day=2026-11-21/d.jsonl": `{"device_id":"SEPAABBCCDDEEFF","customer_id":"` + custUS + `","cluster_id":"CL1","user_id":"u1","device_type":"desk-phone","product":"Cisco 8845","mac":"AABBCCDDEEFF","firmware":"1","location_id":"L1","location_name":"HQ"}
{"device_id":"CSFALICE","customer_id":"` + custUS + `","cluster_id":"CL1","user_id":"u1","device_type":"soft-client","product":"Jabber","mac":"","firmware":"1","location_id":"L1","location_name":"HQ"}
{"device_id":"branch-phone","customer_id":"` + custUS + `","cluster_id":"CL1","device_type":"desk-phone","product":"Cisco 7841","mac":"001122334455","firmware":"1","location_id":"L2","location_name":"Branch"}
`,
}

func at(s string) int64 { t, _ := time.Parse(time.RFC3339, s); return t.Unix() }

// cdrLine is one CDR record: an end-of-call record (type 1).
func cdrLine(cm, call, origLeg, destLeg int, start string, duration int, orig, dest string) string {
	return fmt.Sprintf("1,%d,%d,%d,%d,1,\"1000\",%d,\"2000\",0,0,%d,%d,%d,\"%s\",\"%s\"\n",
		cm, call, origLeg, at(start), destLeg, at(start), at(start)+int64(duration), duration, orig, dest)
}

func cmrLine(cm, call, leg int, received, lost, jitter, latency int, device string) string {
	return fmt.Sprintf("2,%d,%d,1,\"1000\",%d,0,100,16000,%d,16000,%d,%d,%d,\"%s\",\"MLQK=4.5\"\n", cm, call, leg, received, lost, jitter, latency, device)
}

func TestDedicatedInstanceCDRAndCMRFilesBecomeLegsAndEveryBadRecordIsRejected(t *testing.T) {
	files := map[string]string{}
	for k, v := range diInventory {
		files[k] = v
	}
	s := landing(t, files, false, testDay.End().Add(time.Hour))
	put := func(key, content string) { putFile(t, s, key, content) }
	cdr := cdrHeader +
		// internal: a desk phone (by name) calls a Jabber client (CSF: by name only)
		cdrLine(1, 100, 16777217, 16777218, "2026-11-21T09:00:00Z", 120, "SEPAABBCCDDEEFF", "CSFALICE") +
		// outbound to a trunk: one leg; the branch phone matches by SEP<MAC>
		cdrLine(1, 101, 16777219, 16777220, "2026-11-21T10:00:00Z", 60, "SEP001122334455", "SIPTrunk-PSTN") +
		// neither side is a device of the cluster
		cdrLine(1, 102, 16777221, 16777222, "2026-11-21T11:00:00Z", 30, "SEPFFFFFFFFFFFF", "SIPTrunk-PSTN") +
		"this line, \"is broken\n" // a malformed line (an unterminated quote)
	// The cluster's own name in the file is StandAloneCluster: the cluster= directory wins.
	put("cdr/cluster=CL1/cdr_StandAloneCluster_01_202611211000_1", cdr)
	// The same file delivered again under another sequence number.
	put("cdr/cluster=CL1/cdr_StandAloneCluster_01_202611211000_2", cdr)
	// A call across midnight: it started on the 21st, its file is named on the 22nd.
	put("cdr/cluster=CL1/cdr_StandAloneCluster_01_202611220015_3", cdrHeader+cdrLine(1, 103, 16777223, 16777224, "2026-11-21T23:50:00Z", 1500, "CSFALICE", "SIPTrunk-PSTN"))
	// A call of the 22nd is not the 21st's.
	put("cdr/cluster=CL1/cdr_StandAloneCluster_01_202611220130_4", cdrHeader+cdrLine(1, 104, 16777225, 16777226, "2026-11-22T01:00:00Z", 60, "CSFALICE", "SIPTrunk-PSTN"))
	put("cdr/cluster=CL1/cmr_StandAloneCluster_01_202611211000_1", cmrHeader+
		cmrLine(1, 100, 16777217, 990, 10, 200, 0, "SEPAABBCCDDEEFF")+ // poor: jitter 200 ms > 150; latency 0 = not measured
		cmrLine(1, 100, 16777218, 1000, 0, 10, 40, "CSFALICE")+
		cmrLine(1, 999, 16777299, 1000, 0, 10, 40, "CSFALICE")) // a CMR without a CDR
	// A cluster the inventory does not have.
	put("cdr/cluster=CLX/cdr_CLX_01_202611211000_1", cdrHeader+cdrLine(9, 1, 1, 2, "2026-11-21T09:00:00Z", 10, "SEP0000", "x"))

	cds, err := dayIn(t, s)
	if err != nil {
		t.Fatal(err)
	}
	legs := map[string]model.CallLeg{}
	var reasons []string
	for _, cd := range cds {
		for _, l := range cd.Calls {
			legs[l.LegID] = l
		}
		for _, r := range cd.Rejected {
			reasons = append(reasons, r.Reason)
		}
	}
	want := map[string]string{ // leg id → direction
		"CL1:1:100:16777217": "internal", "CL1:1:100:16777218": "internal",
		"CL1:1:101:16777219": "outbound", "CL1:1:103:16777223": "outbound",
	}
	if len(legs) != len(want) {
		t.Fatalf("%d legs %v, want %d", len(legs), keys(legs), len(want))
	}
	for id, dir := range want {
		l, ok := legs[id]
		if !ok || l.Direction != dir || l.CallID != id[:strings.LastIndex(id, ":")] || l.CustomerID != custUS {
			t.Errorf("leg %s: %+v, want direction %s", id, l, dir)
		}
	}
	if l := legs["CL1:1:100:16777217"]; l.AudioJitterMs != 200 || l.AudioLossPct != 1 || l.AudioLatencyMs != 0 || l.LocationID != "L1" || l.UserID == nil || *l.UserID != "u1" {
		t.Errorf("the poor leg's quality from its CMR: %+v", l)
	}
	if l := legs["CL1:1:101:16777219"]; l.LocationID != "L2" || l.DeviceType != "desk-phone" || l.DurationSeconds != 60 {
		t.Errorf("the SEP<MAC> leg: %+v", l)
	}
	for _, w := range []string{"neither origDeviceName", "unparseable line", "has no CDR"} {
		n := 0
		for _, r := range reasons {
			if strings.Contains(r, w) {
				n++
			}
		}
		if n != 1 && !(w == "neither origDeviceName" && n == 2) && !(w == "unparseable line" && n == 2) {
			t.Errorf("%d rejected records say %q (%v)", n, w, reasons)
		}
	}
	notes := s.Notes(testDay)
	unplaced, _ := notes["cdr_rejected_without_region"]
	if unplaced == nil || !strings.Contains(fmt.Sprint(unplaced), "CLX is not in the day's clusters inventory") {
		t.Errorf("the unknown cluster's record is not in the ledger notes: %v", notes)
	}
	if files, _ := notes["cdr_files"].([]callFile); len(files) != 6 {
		t.Errorf("the ledger lists %d CDR/CMR files read, want 6 (the 22nd's 01:30 file is not the 21st's)", len(files))
	}
}

func keys(m map[string]model.CallLeg) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
