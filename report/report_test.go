package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"tally/periods"
)

func TestSnakeCaseOfACSVHeader(t *testing.T) {
	for h, want := range map[string]string{
		"Call Minutes - Video": "call_minutes_video",
		"Customer Org ID":      "customer_org_id",
		"Assigned Percent":     "assigned_percent",
		"Usage %":              "usage",
		"Auto-Renew":           "auto_renew",
		"MAC Address":          "mac_address",
		"TelePresence":         "telepresence",
	} {
		if got := SnakeCase(h); got != want {
			t.Errorf("SnakeCase(%q) = %q, want %q", h, got, want)
		}
	}
}

func TestEveryTemplatesParquetColumnsAreUniqueSnakeCase(t *testing.T) {
	for _, tpl := range BuiltIns {
		for _, p := range tpl.Parts {
			seen := map[string]bool{}
			for _, c := range p.Columns {
				if seen[c.Name()] {
					t.Errorf("%s%s: two columns are %q", tpl.Name, p.Suffix, c.Name())
				}
				seen[c.Name()] = true
			}
		}
	}
}

func TestCellsThatStartAFormulaAreNeutralisedNumbersNever(t *testing.T) {
	cases := map[string]string{
		"=HYPERLINK(\"http://evil\",\"x\")": "'=HYPERLINK(\"http://evil\",\"x\")",
		"+1 555 0100":                       "'+1 555 0100",
		"-2":                                "'-2",
		"@SUM(A1)":                          "'@SUM(A1)",
		"\tcmd":                             "'\tcmd",
		"\rcmd":                             "'\rcmd",
		"\ncmd":                             "'\ncmd",
		"Acme":                              "Acme",
		"":                                  "",
		" =1+1":                             "' =1+1",
		"\u200b=1+1":                        "'\u200b=1+1",
		"\ufeff=1+1":                        "'\ufeff=1+1",
		"  @SUM(A1)":                        "'  @SUM(A1)",
		" Acme = good":                      " Acme = good",
	}
	for in, want := range cases {
		if got := SafeText(in); got != want {
			t.Errorf("SafeText(%q) = %q, want %q", in, got, want)
		}
	}
	var out bytes.Buffer
	w, _ := NewWriter([]Column{{Header: "Name"}, {Header: "Delta", Kind: Int}}, &out, nil)
	w.Write([]Value{S("=1+1"), I(-5)})
	w.Close()
	if got := out.String(); got != "Name,Delta\r\n'=1+1,-5\r\n" {
		t.Fatalf("csv = %q: a text cell is neutralised, a negative number is not", got)
	}
}

func TestCSVIsRFC4180QuotedUTF8(t *testing.T) {
	var out bytes.Buffer
	w, _ := NewWriter([]Column{{Header: "A"}, {Header: "B"}}, &out, nil)
	w.Write([]Value{S(`say "hi", ok`), S("Zürich\nline two")})
	w.Close()
	// Records end in CRLF; a line break inside a quoted field is written as CRLF too.
	want := "A,B\r\n\"say \"\"hi\"\", ok\",\"Zürich\r\nline two\"\r\n"
	if out.String() != want {
		t.Fatalf("csv = %q, want %q", out.String(), want)
	}
	recs, err := csv.NewReader(strings.NewReader(out.String())).ReadAll()
	if err != nil || recs[1][0] != `say "hi", ok` || recs[1][1] != "Zürich\nline two" {
		t.Fatalf("round trip: %v %v", recs, err)
	}
}

func TestParquetAndCSVOfOneReportAgree(t *testing.T) {
	cols := []Column{{Header: "Customer Name"}, {Header: "Total Calls", Kind: Int}, {Header: "Assigned %", Kind: Float}, {Header: "Active", Kind: Bool}}
	var c, p bytes.Buffer
	w, err := NewWriter(cols, &c, &p)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < RowGroupRows+5000; i++ { // more than one row group
		name := S(fmt.Sprintf("Customer %d", i))
		if i%7 == 0 {
			name = Null()
		}
		if err := w.Write([]Value{name, I(int64(i)), F(float64(i) / 4), B(i%2 == 0)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs, _ := csv.NewReader(&c).ReadAll()
	f, err := parquet.OpenFile(bytes.NewReader(p.Bytes()), int64(p.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fl := range f.Schema().Fields() {
		names = append(names, fl.Name())
	}
	if strings.Join(names, ",") != "customer_name,total_calls,assigned,active" {
		t.Fatalf("parquet columns %v: want template order, snake_case", names)
	}
	if f.NumRows() != int64(len(recs)-1) || len(f.RowGroups()) < 2 {
		t.Fatalf("parquet %d rows in %d row groups, csv %d", f.NumRows(), len(f.RowGroups()), len(recs)-1)
	}
	r := parquet.NewReader(f)
	rows := make([]parquet.Row, 1)
	for i := 1; i < len(recs); i++ {
		if _, err := r.ReadRows(rows); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		for j, v := range rows[0] {
			got := ""
			if !v.IsNull() {
				switch cols[j].Kind {
				case Int:
					got = fmt.Sprint(v.Int64())
				case Float:
					got = fmt.Sprint(v.Double())
				case Bool:
					got = fmt.Sprint(v.Boolean())
				default:
					got = v.String()
				}
			}
			if got != recs[i][j] {
				t.Fatalf("row %d column %s: parquet %q, csv %q", i, cols[j].Header, got, recs[i][j])
			}
		}
	}
}

func TestFileNamesAndKeys(t *testing.T) {
	week, _ := periods.Parse(periods.Weekly, "2026-11-15")
	day, _ := periods.Parse(periods.Daily, "2026-11-21")
	tok := Token("sub-1", week)
	if len(tok) != 8 || strings.Trim(tok, alnum) != "" || tok != Token("sub-1", week) || tok == Token("sub-2", week) || tok == Token("sub-1", week.Prev()) {
		t.Fatalf("token %q: want 8 alphanumerics, stable for (subscription, period), different otherwise", tok)
	}
	if got := FileName(CustomerSubscriptions, 1, "sub-1", week); got != "Customer Subscriptions - Expiring_"+tok+"_2026-11-22" {
		t.Fatalf("file name = %q", got)
	}
	if got := FileName(FlexLicenseUsage, 0, "s", day); !strings.HasSuffix(got, "_2026-11-22") || !strings.HasPrefix(got, "Flex License Usage_") {
		t.Fatalf("daily name = %q: the date is the day after the period ends", got)
	}
	if got := Key("EU", Devices, day, "Devices_abcdefgh_2026-11-22", "csv"); got != "reports/region=EU/devices/daily/2026-11-21/Devices_abcdefgh_2026-11-22.csv" {
		t.Fatalf("key = %q", got)
	}
}

func TestCustomTemplates(t *testing.T) {
	c := &Custom{Name: "Desk Phones", Base: "devices", Columns: []string{"Customer", "MAC Address"}, Filters: map[string][]string{"Product": {"Cisco 8845"}}}
	tpl, err := c.Build()
	if err != nil {
		t.Fatal(err)
	}
	if tpl.Slug != "custom-desk-phones" || len(tpl.Parts[0].Columns) != 2 {
		t.Fatalf("template = %+v", tpl)
	}
	base := Devices.Parts[0].Columns
	row := make([]Value, len(base))
	for i := range row {
		row[i] = S("x")
	}
	row[1], row[5], row[6] = S("Acme"), S("Cisco 8845"), S("AABBCCDDEEFF")
	out, ok := tpl.Project(0, base, row)
	if !ok || out[0].Text() != "Acme" || out[1].Text() != "AABBCCDDEEFF" {
		t.Fatalf("projected %v %v", out, ok)
	}
	row[5] = S("Cisco 7841")
	if _, ok := tpl.Project(0, base, row); ok {
		t.Fatal("a row the filter excludes was kept")
	}
	bad := []struct {
		c    Custom
		want string
	}{
		{Custom{Name: "X1", Base: "nope"}, `unknown template "nope"`},
		{Custom{Name: "X1", Base: "devices", Columns: []string{"Colour"}}, `no column "Colour"`},
		{Custom{Name: "X1", Base: "devices", Filters: map[string][]string{"Colour": {"red"}}}, `filter on unknown column "Colour"`},
		{Custom{Name: "../etc", Base: "devices"}, "letters, digits and spaces"},
		{Custom{Name: "Subs", Base: "customer-subscriptions"}, "cannot be customised"},
	}
	for _, b := range bad {
		if _, err := b.c.Build(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: %v, want %q", b.c, err, b.want)
		}
	}
}

func TestOurCSVEncoderQuotesExactlyLikeEncodingCSV(t *testing.T) {
	cells := []string{"plain", "with,comma", `with "quote"`, "line\nbreak", "cr\rhere", " leading space", "\tleading tab", `\.`, "", "Zürich", "trailing ", "a\r\nb"}
	var ours, std bytes.Buffer
	w, _ := NewWriter([]Column{{Header: "x"}}, &ours, nil)
	sw := csv.NewWriter(&std)
	sw.UseCRLF = true
	sw.Write([]string{"x"})
	for _, c := range cells {
		w.Write([]Value{S(c)})
		sw.Write([]string{SafeText(S(c).Text())})
	}
	w.Close()
	sw.Flush()
	if ours.String() != std.String() {
		t.Fatalf("ours:\n%q\nencoding/csv:\n%q", ours.String(), std.String())
	}
}

func TestALoneCRIsTheSameLineBreakInCSVAndParquet(t *testing.T) {
	for in, want := range map[string]string{"a\rb": "a\nb", "a\r\nb": "a\nb", "a\nb": "a\nb", "ab": "ab"} {
		if got := S(in).Text(); got != want {
			t.Errorf("S(%q) holds %q, want %q in both writers", in, got, want)
		}
	}
}
