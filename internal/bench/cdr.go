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
	"strconv"
	"strings"
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

// flatField is one field of a CUCM flat file: its name, its type (the file's
// second line) and a value a record of the benchmark holds. Text fields are
// quoted, as CUCM writes them.
type flatField struct{ name, typ, value string }

func (f flatField) quoted() bool {
	return strings.HasPrefix(f.typ, "VARCHAR") || f.typ == "UNIQUEIDENTIFIER"
}

// cdrFieldList is every CDR field of a Release 11.x cluster, in the order of
// the "CDR Field Descriptions" of Cisco's Call Detail Records Administration
// Guide (the 6.1 fields, then those each release added through 11.0), with a
// plausible value; the ones tally reads vary per record (cdrRecord).
var cdrFieldList = []flatField{
	{"cdrRecordType", "INTEGER", "1"}, {"globalCallID_callManagerId", "INTEGER", "1"}, {"globalCallID_callId", "INTEGER", ""},
	{"origLegCallIdentifier", "INTEGER", ""}, {"dateTimeOrigination", "INTEGER", ""}, {"origNodeId", "INTEGER", "1"},
	{"origSpan", "INTEGER", "0"}, {"origIpAddr", "INTEGER", "-1062731418"}, {"callingPartyNumber", "VARCHAR(50)", "2001"},
	{"callingPartyUnicodeLoginUserID", "VARCHAR(128)", "jdoe"}, {"origCause_location", "INTEGER", "0"}, {"origCause_value", "INTEGER", "16"},
	{"origPrecedenceLevel", "INTEGER", "4"}, {"origMediaTransportAddress_IP", "INTEGER", "-1062731418"},
	{"origMediaTransportAddress_Port", "INTEGER", "24580"}, {"origMediaCap_payloadCapability", "INTEGER", "4"},
	{"origMediaCap_maxFramesPerPacket", "INTEGER", "20"}, {"origMediaCap_g723BitRate", "INTEGER", "0"},
	{"origVideoCap_Codec", "INTEGER", "0"}, {"origVideoCap_Bandwidth", "INTEGER", "0"}, {"origVideoCap_Resolution", "INTEGER", "0"},
	{"origVideoTransportAddress_IP", "INTEGER", "0"}, {"origVideoTransportAddress_Port", "INTEGER", "0"},
	{"origRSVPAudioStat", "VARCHAR(64)", "0"}, {"origRSVPVideoStat", "VARCHAR(64)", "0"}, {"destLegCallIdentifier", "INTEGER", ""},
	{"destNodeId", "INTEGER", "1"}, {"destSpan", "INTEGER", "0"}, {"destIpAddr", "INTEGER", "-1062731211"},
	{"originalCalledPartyNumber", "VARCHAR(50)", "918005551234"}, {"finalCalledPartyNumber", "VARCHAR(50)", "918005551234"},
	{"finalCalledPartyUnicodeLoginUserID", "VARCHAR(128)", ""}, {"destCause_location", "INTEGER", "0"}, {"destCause_value", "INTEGER", "16"},
	{"destPrecedenceLevel", "INTEGER", "4"}, {"destMediaTransportAddress_IP", "INTEGER", "-1062731211"},
	{"destMediaTransportAddress_Port", "INTEGER", "16384"}, {"destMediaCap_payloadCapability", "INTEGER", "4"},
	{"destMediaCap_maxFramesPerPacket", "INTEGER", "20"}, {"destMediaCap_g723BitRate", "INTEGER", "0"},
	{"destVideoCap_Codec", "INTEGER", "0"}, {"destVideoCap_Bandwidth", "INTEGER", "0"}, {"destVideoCap_Resolution", "INTEGER", "0"},
	{"destVideoTransportAddress_IP", "INTEGER", "0"}, {"destVideoTransportAddress_Port", "INTEGER", "0"},
	{"destRSVPAudioStat", "VARCHAR(64)", "0"}, {"destRSVPVideoStat", "VARCHAR(64)", "0"}, {"dateTimeConnect", "INTEGER", ""},
	{"dateTimeDisconnect", "INTEGER", ""}, {"lastRedirectDn", "VARCHAR(50)", "918005551234"}, {"pkid", "UNIQUEIDENTIFIER", ""},
	{"originalCalledPartyNumberPartition", "VARCHAR(50)", "PSTN_PT"}, {"callingPartyNumberPartition", "VARCHAR(50)", "Internal_PT"},
	{"finalCalledPartyNumberPartition", "VARCHAR(50)", "PSTN_PT"}, {"lastRedirectDnPartition", "VARCHAR(50)", "PSTN_PT"},
	{"duration", "INTEGER", ""}, {"origDeviceName", "VARCHAR(129)", ""}, {"destDeviceName", "VARCHAR(129)", ""},
	{"origCallTerminationOnBehalfOf", "INTEGER", "12"}, {"destCallTerminationOnBehalfOf", "INTEGER", "0"},
	{"origCalledPartyRedirectOnBehalfOf", "INTEGER", "0"}, {"lastRedirectRedirectOnBehalfOf", "INTEGER", "0"},
	{"origCalledPartyRedirectReason", "INTEGER", "0"}, {"lastRedirectRedirectReason", "INTEGER", "0"},
	{"destConversationId", "INTEGER", "0"}, {"globalCallId_ClusterID", "VARCHAR(50)", "StandAloneCluster"},
	{"joinOnBehalfOf", "INTEGER", "0"}, {"comment", "VARCHAR(2048)", ""}, {"authCodeDescription", "VARCHAR(50)", ""},
	{"authorizationLevel", "INTEGER", "0"}, {"clientMatterCode", "VARCHAR(32)", ""}, {"origDTMFMethod", "INTEGER", "3"},
	{"destDTMFMethod", "INTEGER", "3"}, {"callSecuredStatus", "INTEGER", "0"}, {"origConversationId", "INTEGER", "0"},
	{"origMediaCap_Bandwidth", "INTEGER", "64"}, {"destMediaCap_Bandwidth", "INTEGER", "64"}, {"authorizationCodeValue", "VARCHAR(32)", ""},
	{"outpulsedCallingPartyNumber", "VARCHAR(50)", "+12065550100"}, {"outpulsedCalledPartyNumber", "VARCHAR(50)", "+18005551234"},
	{"origIpv4v6Addr", "VARCHAR(64)", "10.1.1.102"}, {"destIpv4v6Addr", "VARCHAR(64)", "10.1.1.55"},
	{"origVideoCap_Codec_Channel2", "INTEGER", "0"}, {"origVideoCap_Bandwidth_Channel2", "INTEGER", "0"},
	{"origVideoCap_Resolution_Channel2", "INTEGER", "0"}, {"origVideoTransportAddress_IP_Channel2", "INTEGER", "0"},
	{"origVideoTransportAddress_Port_Channel2", "INTEGER", "0"}, {"origVideoChannel_Role_Channel2", "INTEGER", "0"},
	{"destVideoCap_Codec_Channel2", "INTEGER", "0"}, {"destVideoCap_Bandwidth_Channel2", "INTEGER", "0"},
	{"destVideoCap_Resolution_Channel2", "INTEGER", "0"}, {"destVideoTransportAddress_IP_Channel2", "INTEGER", "0"},
	{"destVideoTransportAddress_Port_Channel2", "INTEGER", "0"}, {"destVideoChannel_Role_Channel2", "INTEGER", "0"},
	{"incomingProtocolID", "INTEGER", "0"}, {"incomingProtocolCallRef", "VARCHAR(32)", ""}, {"outgoingProtocolID", "INTEGER", "3"},
	{"outgoingProtocolCallRef", "VARCHAR(32)", "0029e5b800010000000000e60a01011c"}, {"currentRoutingReason", "INTEGER", "0"},
	{"origRoutingReason", "INTEGER", "0"}, {"lastRedirectingRoutingReason", "INTEGER", "0"}, {"huntPilotDN", "VARCHAR(50)", ""},
	{"huntPilotPartition", "VARCHAR(50)", ""}, {"calledPartyPatternUsage", "INTEGER", "5"}, {"wasCallQueued", "INTEGER", "0"},
	{"totalWaitTimeInQueue", "INTEGER", "0"}, {"callingPartyNumber_uri", "VARCHAR(254)", ""}, {"originalCalledPartyNumber_uri", "VARCHAR(254)", ""},
	{"finalCalledPartyNumber_uri", "VARCHAR(254)", ""}, {"lastRedirectDn_uri", "VARCHAR(254)", ""}, {"incomingICID", "VARCHAR(50)", ""},
	{"incomingOrigIOI", "VARCHAR(50)", ""}, {"incomingTermIOI", "VARCHAR(50)", ""}, {"outgoingICID", "VARCHAR(50)", ""},
	{"outgoingOrigIOI", "VARCHAR(50)", ""}, {"outgoingTermIOI", "VARCHAR(50)", ""}, {"outpulsedOriginalCalledPartyNumber", "VARCHAR(50)", ""},
	{"outpulsedLastRedirectingNumber", "VARCHAR(50)", ""}, {"mobileCallingPartyNumber", "VARCHAR(50)", ""},
	{"finalMobileCalledPartyNumber", "VARCHAR(50)", ""}, {"origMobileDeviceName", "VARCHAR(129)", ""}, {"destMobileDeviceName", "VARCHAR(129)", ""},
	{"origMobileCallDuration", "INTEGER", "0"}, {"destMobileCallDuration", "INTEGER", "0"}, {"mobileCallType", "INTEGER", "0"},
	{"originalCalledPartyPattern", "VARCHAR(50)", "9.1[2-9]XX[2-9]XXXXXX"}, {"finalCalledPartyPattern", "VARCHAR(50)", "9.1[2-9]XX[2-9]XXXXXX"},
	{"lastRedirectingPartyPattern", "VARCHAR(50)", "9.1[2-9]XX[2-9]XXXXXX"}, {"huntPilotPattern", "VARCHAR(50)", ""},
}

// cmrFieldList is every CMR field, in the order of the guide's "CMR Field
// Descriptions" (Release 11.x to 12.5), with a plausible value.
var cmrFieldList = []flatField{
	{"cdrRecordType", "INTEGER", "2"}, {"globalCallID_callManagerId", "INTEGER", "1"}, {"globalCallID_callId", "INTEGER", ""},
	{"nodeId", "INTEGER", "1"}, {"directoryNum", "VARCHAR(50)", "2001"}, {"callIdentifier", "INTEGER", ""}, {"dateTimeStamp", "INTEGER", ""},
	{"numberPacketsSent", "INTEGER", "6000"}, {"numberOctetsSent", "INTEGER", "960000"}, {"numberPacketsReceived", "INTEGER", ""},
	{"numberOctetsReceived", "INTEGER", "960000"}, {"numberPacketsLost", "INTEGER", ""}, {"jitter", "INTEGER", ""}, {"latency", "INTEGER", ""},
	{"pkid", "UNIQUEIDENTIFIER", ""}, {"directoryNumPartition", "VARCHAR(50)", "Internal_PT"}, {"globalCallId_ClusterID", "VARCHAR(50)", "StandAloneCluster"},
	{"deviceName", "VARCHAR(129)", ""}, {"varVQMetrics", "VARCHAR(600)", "MLQK=4.5000;MLQKav=4.4771;MLQKmn=4.3522;MLQKmx=4.5000;ICR=0.0000;CCR=0.0002;ICRmx=0.0000;CS=1;SCS=0;MLQKvr=0.95"},
	{"duration", "INTEGER", ""}, {"videoContentType", "VARCHAR(10)", ""}, {"videoDuration", "INTEGER", "0"},
	{"numberVideoPacketsSent", "INTEGER", "0"}, {"numberVideoOctetsSent", "INTEGER", "0"}, {"numberVideoPacketsReceived", "INTEGER", "0"},
	{"numberVideoOctetsReceived", "INTEGER", "0"}, {"numberVideoPacketsLost", "INTEGER", "0"}, {"videoAverageJitter", "INTEGER", "0"},
	{"videoRoundTripTime", "INTEGER", "0"}, {"videoOneWayDelay", "INTEGER", "0"}, {"videoReceptionMetrics", "VARCHAR(600)", ""},
	{"videoTransmissionMetrics", "VARCHAR(600)", ""}, {"videoContentType_channel2", "VARCHAR(10)", ""}, {"videoDuration_channel2", "INTEGER", "0"},
	{"numberVideoPacketsSent_channel2", "INTEGER", "0"}, {"numberVideoOctetsSent_channel2", "INTEGER", "0"},
	{"numberVideoPacketsReceived_channel2", "INTEGER", "0"}, {"numberVideoOctetsReceived_channel2", "INTEGER", "0"},
	{"numberVideoPacketsLost_channel2", "INTEGER", "0"}, {"videoAverageJitter_channel2", "INTEGER", "0"},
	{"videoRoundTripTime_channel2", "INTEGER", "0"}, {"videoOneWayDelay_channel2", "INTEGER", "0"},
	{"videoReceptionMetrics_channel2", "VARCHAR(600)", ""}, {"videoTransmissionMetrics_channel2", "VARCHAR(600)", ""},
	{"localSessionID", "VARCHAR(32)", "0b4b2d1f00105000a000002c0e5b8b1c"}, {"remoteSessionID", "VARCHAR(32)", "00000000000000000000000000000000"},
	{"headsetSN", "VARCHAR(64)", ""}, {"headsetMetrics", "VARCHAR(600)", ""},
}

// cdrDevices is how many phones the benchmark's cluster has.
const cdrDevices = 1000

// writeCDRDay writes a landing zone with n CUCM CDR records (a fifth of them
// internal calls between two phones, the rest to a SIP trunk) and a CMR for
// each phone's leg, 100,000 records to a file, for one Dedicated Instance
// cluster of cdrDevices phones: the files DuckDB reads too (bench/duckdb).
func writeCDRDay(dir string, n int64) error {
	if _, err := os.Stat(filepath.Join(dir, "_ready", "day="+cdrDay.ID()+".json")); err == nil {
		return nil // written by an earlier run: the same records
	}
	os.RemoveAll(dir)
	write := func(rel, content string) (files.ManifestFile, error) {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		sum := sha256.Sum256([]byte(content))
		return files.ManifestFile{Path: rel, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}, os.WriteFile(p, []byte(content), 0o644)
	}
	const perFile = 100_000
	for start := int64(0); start < n; start += perFile {
		stamp := cdrDay.Start.Add(time.Duration(start*86400/max(n, 1)) * time.Second).Format("200601021504")
		if err := writeFlat(filepath.Join(dir, "cdr/cluster=CL1", fmt.Sprintf("cdr_StandAloneCluster_01_%s_%d", stamp, start)), start, min(start+perFile, n), n, false); err != nil {
			return err
		}
		if err := writeFlat(filepath.Join(dir, "cdr/cluster=CL1", fmt.Sprintf("cmr_StandAloneCluster_01_%s_%d", stamp, start)), start, min(start+perFile, n), n, true); err != nil {
			return err
		}
	}
	day := "day=" + cdrDay.ID()
	var devices strings.Builder
	devices.WriteString("device_id,customer_id,cluster_id,device_type,product,mac,firmware,location_id,location_name\n")
	for i := 0; i < cdrDevices; i++ {
		fmt.Fprintf(&devices, "SEP%012X,%s,CL1,desk-phone,Cisco 8845,%012X,1,L%d,Site %d\n", i, benchCustomer, i, i%20, i%20)
	}
	var m files.Manifest
	m.Day = cdrDay.ID()
	for _, f := range []struct{ rel, content string }{
		{"partners/region=US/" + day + "/p.csv", "partner_id,partner_name\nP1,Partner\n"},
		{"customers/region=US/" + day + "/c.csv", "customer_id,customer_name,partner_id,managed_by,created_at\n" + benchCustomer + ",Acme,P1,partner,2026-01-01T00:00:00Z\n"},
		{"clusters/region=US/" + day + "/c.csv", "cluster_id,customer_id,fqdn,version\nCL1," + benchCustomer + ",cucm.example,14.0\n"},
		{"devices/region=US/" + day + "/d.csv", devices.String()},
	} {
		mf, err := write(f.rel, f.content)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, mf)
	}
	b, _ := json.Marshal(m)
	_, err := write("_ready/day="+cdrDay.ID()+".json", string(b))
	return err
}

// writeFlat writes records from..to of the day's n as a CDR (or CMR) file.
func writeFlat(path string, from, to, n int64, cmr bool) error {
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fields := cdrFieldList
	if cmr {
		fields = cmrFieldList
	}
	var line []byte
	for i, fl := range fields {
		if i > 0 {
			line = append(line, ',')
		}
		line = append(append(append(line, '"'), fl.name...), '"')
	}
	w.Write(append(line, '\n'))
	line = line[:0]
	for i, fl := range fields {
		if i > 0 {
			line = append(line, ',')
		}
		line = append(line, fl.typ...)
	}
	w.Write(append(line, '\n'))
	phone := func(d int64) string { return fmt.Sprintf("SEP%012X", d%cdrDevices) }
	for i := from; i < to; i++ {
		t := cdrDay.Start.Unix() + i*86400/max(n, 1)
		internal := i%5 == 0
		dest := "SIPTrunk-PSTN"
		if internal {
			dest = phone(i + 7)
		}
		value := func(name string) (string, bool) {
			switch name {
			case "globalCallID_callId":
				return strconv.FormatInt(10_000_000+i, 10), true
			case "origLegCallIdentifier":
				return strconv.FormatInt(20_000_000+2*i, 10), true
			case "destLegCallIdentifier":
				return strconv.FormatInt(20_000_001+2*i, 10), true
			case "dateTimeOrigination", "dateTimeStamp":
				return strconv.FormatInt(t, 10), true
			case "dateTimeConnect":
				return strconv.FormatInt(t+5, 10), true
			case "dateTimeDisconnect":
				return strconv.FormatInt(t+5+i%600, 10), true
			case "duration":
				return strconv.FormatInt(i%600, 10), true
			case "pkid":
				return fmt.Sprintf("%08x-1c2d-4e5f-8a9b-%012x", i, i), true
			case "origDeviceName", "deviceName":
				return phone(i), true
			case "destDeviceName":
				return dest, true
			case "callIdentifier":
				return strconv.FormatInt(20_000_000+2*i, 10), true
			case "numberPacketsReceived":
				return "1000", true
			case "numberPacketsLost":
				return strconv.FormatInt(i%7, 10), true
			case "jitter":
				return strconv.FormatInt(i%200, 10), true
			case "latency":
				return "40", true
			}
			return "", false
		}
		writeRecord := func(override func(string) (string, bool)) {
			line = line[:0]
			for j, fl := range fields {
				if j > 0 {
					line = append(line, ',')
				}
				v, ok := override(fl.name)
				if !ok {
					v = fl.value
				}
				if fl.quoted() {
					line = append(append(append(line, '"'), v...), '"')
				} else {
					line = append(line, v...)
				}
			}
			w.Write(append(line, '\n'))
		}
		writeRecord(value)
		if cmr && internal { // the called phone's leg has its CMR too
			writeRecord(func(name string) (string, bool) {
				switch name {
				case "callIdentifier":
					return strconv.FormatInt(20_000_001+2*i, 10), true
				case "deviceName":
					return dest, true
				}
				return value(name)
			})
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// readCDR reads the day of dir through the files source as sync does and
// returns its legs (the measured part: the files are written before).
func readCDR(dir string) (int64, error) {
	st, err := local.Open(dir)
	if err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp("", "tally-bench-cdr-spill-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	src := &files.Source{Root: st, ReadyDeadline: 12 * time.Hour, MaxCallLength: 12 * time.Hour, TmpDir: tmp, Now: clock.Real{}.Now}
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
