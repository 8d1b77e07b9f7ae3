package files

import (
	"strings"
	"testing"
	"time"
)

// Landing files arrive from outside: any bytes give rows, rejected rows or a
// clear error, never a panic.
func FuzzLandingFilesParseToRowsRejectionsOrAnErrorNeverAPanic(f *testing.F) {
	f.Add(customersCSV, "{\"device_id\":\"d\"}\n", cdrHeader+cdrLine(1, 1, 1, 2, "2026-11-21T09:00:00Z", 10, "SEPAABBCCDDEEFF", "x"))
	f.Add("customer_id\n\"broken", "not json", "\"a\"\n")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, csv, jsonl, cdr string) {
		files := map[string]string{}
		for k, v := range diInventory {
			files[k] = v
		}
		files["customers/region=US/day=2026-11-21/c.csv"] = csv
		files["devices/region=EU/day=2026-11-21/d.jsonl"] = jsonl
		s := landing(t, files, false, testDay.End().Add(time.Hour))
		putFile(t, s, "cdr/cluster=CL1/cdr_CL1_01_202611211000_1", cdr)
		putFile(t, s, "cdr/cluster=CL1/cmr_CL1_01_202611211000_1", strings.Replace(cdr, cdrHeader, cmrHeader, 1))
		cds, err := dayIn(t, s)
		if err != nil {
			return
		}
		for _, cd := range cds {
			if cd.Customer.CustomerID == "" && len(cd.Rejected) == 0 {
				t.Fatalf("an empty customer day: %+v", cd)
			}
		}
	})
}
