package benchrows

import (
	"encoding/hex"
	"fmt"
	"strconv"

	"tally/report"
)

// Template emits n rows of a template part's columns, shaped like a real
// report's: sorted by customer, a customer's columns (name, org id, external
// id, partner) repeating over its rows, ids unique where a report's are
// (MAC addresses, phone numbers, user UUIDs), small vocabularies where a
// report's are, numbers of realistic ranges, some nulls. The row slice is
// reused between calls.
func Template(cols []report.Column, n int64, emit func([]report.Value) error) error {
	const customers = 20_000
	gens := make([]func(i, c int64) report.Value, len(cols))
	for j, col := range cols {
		gens[j] = generator(col, int64(j))
	}
	row := make([]report.Value, len(cols))
	for i := int64(0); i < n; i++ {
		c := i * customers / max(n, 1) // rows are sorted by customer
		for j, g := range gens {
			row[j] = g(i, c)
		}
		if err := emit(row); err != nil {
			return err
		}
	}
	return nil
}

// mix is splitmix64: a deterministic, well-spread number per (row, column).
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// uuid is a UUID-shaped id from a number.
func uuid(x uint64) string {
	var b [16]byte
	a, z := mix(x), mix(x+1)
	for k := 0; k < 8; k++ {
		b[k], b[8+k] = byte(a>>(8*k)), byte(z>>(8*k))
	}
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func vocab(words ...string) func(uint64) report.Value {
	vs := make([]report.Value, len(words))
	for k, w := range words {
		vs[k] = report.S(w)
	}
	return func(x uint64) report.Value { return vs[x%uint64(len(vs))] }
}

// generator is how a column's values look in a real report, by header.
func generator(col report.Column, j int64) func(i, c int64) report.Value {
	r := func(i int64) uint64 { return mix(uint64(i)*131 + uint64(j)) } // per row and column
	switch col.Kind {
	case report.Int:
		hi := map[string]uint64{"Entitled": 500, "Consumed": 520, "Total Licenses": 400, "Assigned": 300, "Used": 250, "Available": 150,
			"Days Since Added": 90, "Days to Expiry": 90, "Days to Renewal": 90, "Months Remaining": 36, "Months Since Added": 60, "Overage": 20,
			"Professional": 2000, "Common Area": 300, "TelePresence": 40}[col.Header]
		if hi == 0 {
			hi = 1000 // call counts and minutes
		}
		return func(i, c int64) report.Value { return report.I(int64(r(i) % hi)) }
	case report.Percent:
		return func(i, c int64) report.Value { return report.P(float64(r(i)%1001) / 10) }
	case report.Float:
		return func(i, c int64) report.Value { return report.F(float64(r(i)%100000) / 100) }
	case report.Bool:
		return func(i, c int64) report.Value { return report.B(r(i)%5 != 0) }
	case report.PercentList:
		return func(i, c int64) report.Value {
			l := make([]*float64, 13)
			x := r(i)
			for k := int(x % 6); k < 13; k++ { // the earliest weeks missing for newer subscriptions
				v := float64(mix(x+uint64(k))%1001) / 10
				l[k] = &v
			}
			return report.PL(l)
		}
	}
	perCustomer := func(f func(c int64) string) func(i, c int64) report.Value {
		return func(i, c int64) report.Value { return report.S(f(c)) }
	}
	switch col.Header {
	case "Partner Name":
		v := vocab("Contoso Voice Partners", "Fabrikam Cloud Services", "Northwind Communications")
		return func(i, c int64) report.Value { return v(uint64(c)) }
	case "Customer Name", "Customer":
		return perCustomer(func(c int64) string { return fmt.Sprintf("Customer %05d Logistics GmbH", c) })
	case "Org ID", "Customer Org ID":
		return perCustomer(func(c int64) string { return uuid(uint64(c) << 20) })
	case "External ID":
		return func(i, c int64) report.Value {
			if c%4 == 0 {
				return report.Null()
			}
			return report.S(fmt.Sprintf("EXT-%07d", c))
		}
	case "Region":
		return func(i, c int64) report.Value { return report.S("US") }
	case "Location", "Location Name":
		return func(i, c int64) report.Value {
			return report.S("Office " + strconv.Itoa(int(c%40)+int(r(i)%3)) + ", Zürich")
		}
	case "Location ID":
		return func(i, c int64) report.Value { return report.S(uuid(uint64(c)<<20 | 1<<19 | r(i)%3)) }
	case "Subscription ID":
		return func(i, c int64) report.Value {
			return report.S(fmt.Sprintf("Sub%08d", mix(uint64(c))%100_000_000/10*10+r(i)%3))
		}
	case "Subscriber ID":
		return perCustomer(func(c int64) string { return fmt.Sprintf("SBR-%07d", mix(uint64(c)+7)%10_000_000) })
	case "MAC Address":
		return func(i, c int64) report.Value { return report.S(fmt.Sprintf("%012X", mix(uint64(i))&0xFFFFFFFFFFFF)) }
	case "Phone Number":
		return func(i, c int64) report.Value {
			if r(i)%7 == 0 {
				return report.Null()
			}
			return report.S(fmt.Sprintf("+1%010d", 2_000_000_000+i))
		}
	case "Extension":
		return func(i, c int64) report.Value { return report.S(strconv.Itoa(int(1000 + i%9000))) }
	case "User ID":
		return func(i, c int64) report.Value {
			if r(i)%5 == 0 {
				return report.Null()
			}
			return report.S(fmt.Sprintf("user%06d@customer%05d.example.com", i%1_000_000, c))
		}
	case "User UUID":
		return func(i, c int64) report.Value {
			if r(i)%5 == 0 {
				return report.Null()
			}
			return report.S(uuid(uint64(i) << 1))
		}
	case "Cluster":
		return func(i, c int64) report.Value {
			return report.S(fmt.Sprintf("cucm%d.customer%05d.example.com", r(i)%2, c))
		}
	case "Server":
		return func(i, c int64) report.Value {
			return report.S(fmt.Sprintf("node%d.customer%05d.example.com", r(i)%6, c))
		}
	case "License Type":
		v := vocab("knowledge_worker", "common_area", "telepresence")
		return func(i, c int64) report.Value { return v(r(i)) }
	case "Compliance":
		v := vocab("ok", "ok", "ok", "over", "under")
		return func(i, c int64) report.Value { return v(r(i)) }
	case "Product":
		v := vocab("Cisco 8845", "Cisco 7841", "Cisco 8865", "Webex Room Kit", "Webex Desk Pro")
		return func(i, c int64) report.Value { return v(r(i)) }
	case "Firmware":
		return func(i, c int64) report.Value {
			return report.S("sip88xx." + strconv.Itoa(14+int(r(i)%3)) + "-2-1MN-" + strconv.Itoa(int(r(i)%10)))
		}
	case "Country":
		v := vocab("US", "CA", "GB", "DE", "AE")
		return func(i, c int64) report.Value { return v(uint64(c)) }
	case "Number Type":
		v := vocab("did", "extension", "toll-free")
		return func(i, c int64) report.Value { return v(r(i)) }
	case "PSTN Connection":
		v := vocab("Cisco PSTN", "Local Gateway", "Cloud Connected PSTN", "Premises-based PSTN")
		return func(i, c int64) report.Value { return v(uint64(c)) }
	case "User Type":
		v := vocab("user", "workspace", "virtual line")
		return func(i, c int64) report.Value { return v(r(i)) }
	}
	return func(i, c int64) report.Value { return report.S(fmt.Sprintf("%s %d", col.Header, r(i)%10000)) }
}
