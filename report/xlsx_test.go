package report

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/xuri/excelize/v2"
)

var sheetCols = []Column{{Header: "Customer"}, {Header: "MAC Address"}, {Header: "Phone Number"}, {Header: "Org ID"},
	{Header: "Total Licenses", Kind: Int}, {Header: "Assigned Percent", Kind: Percent}, {Header: "Active", Kind: Bool},
	{Header: "Usage Over the Last 3 Months (%)", Kind: PercentList}}

func sheetRow(i int) []Value {
	p := 32.5
	return []Value{S("Zürich AG"), S("001A2B3C4D5E"), S("+17875550100"), S("077465852072"), I(int64(100 + i)), P(40),
		B(i%2 == 0), PL([]*float64{nil, &p})}
}

// writeXLSX writes n rows as XLSX (and CSV and Parquet, so the pre-publish
// check compares all three).
func writeXLSX(t *testing.T, n int) []byte {
	t.Helper()
	var x, c, pq bytes.Buffer
	w, err := New(sheetCols, Outputs{CSV: &c, Parquet: &pq, XLSX: &x, Sheet: "Devices", TmpDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := w.Write(sheetRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("the pre-publish check over CSV, Parquet and XLSX: %v", err)
	}
	return x.Bytes()
}

func TestXLSXCellsAreTypedNumbersAsNumbersIdsMACsAndPhonesAsText(t *testing.T) {
	f, err := excelize.OpenReader(bytes.NewReader(writeXLSX(t, 3)))
	if err != nil {
		t.Fatalf("Excel could not open it: %v", err)
	}
	defer f.Close()
	if sheets := f.GetSheetList(); len(sheets) != 1 || sheets[0] != "Devices" {
		t.Fatalf("sheets %v, want [Devices]", sheets)
	}
	header, _ := f.GetRows("Devices")
	if strings.Join(header[0], "|") != "Customer|MAC Address|Phone Number|Org ID|Total Licenses|Assigned Percent|Active|Usage Over the Last 3 Months (%)" {
		t.Fatalf("header %v", header[0])
	}
	for cell, want := range map[string]excelize.CellType{"A2": excelize.CellTypeInlineString, "B2": excelize.CellTypeInlineString,
		"C2": excelize.CellTypeInlineString, "D2": excelize.CellTypeInlineString, "E2": excelize.CellTypeUnset, "F2": excelize.CellTypeUnset,
		"G2": excelize.CellTypeBool, "H2": excelize.CellTypeInlineString} {
		got, err := f.GetCellType("Devices", cell)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s is of type %v, want %v (text cells typed as strings; a number's type is unset, i.e. numeric)", cell, got, want)
		}
	}
	for cell, want := range map[string]string{"B2": "001A2B3C4D5E", "C2": "+17875550100", "D2": "077465852072", "E2": "100", "F2": "40.0", "H2": ";32.5"} {
		if v, _ := f.GetCellValue("Devices", cell); v != want {
			t.Errorf("%s shows %q, want %q (the leading 0 and + kept)", cell, v, want)
		}
	}
	// The header row is bold and frozen.
	style, _ := f.GetCellStyle("Devices", "A1")
	s, _ := f.GetStyle(style)
	if s == nil || s.Font == nil || !s.Font.Bold {
		t.Error("the header row is not bold")
	}
	panes, _ := f.GetPanes("Devices")
	if !panes.Freeze || panes.YSplit != 1 {
		t.Errorf("panes %+v: the header row is not frozen", panes)
	}
	if w, _ := f.GetColWidth("Devices", "A"); w < 10 {
		t.Errorf("column A is %.0f wide: widths are not set", w)
	}
}

func TestRowsBeyondASheetsLimitContinueOnNumberedSheets(t *testing.T) {
	old := XLSXMaxRows
	XLSXMaxRows = 4 // a header and 3 rows a sheet
	defer func() { XLSXMaxRows = old }()
	f, err := excelize.OpenReader(bytes.NewReader(writeXLSX(t, 8)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]int{"Devices": 3, "Devices (2)": 3, "Devices (3)": 2}
	if got := f.GetSheetList(); strings.Join(got, "|") != "Devices|Devices (2)|Devices (3)" {
		t.Fatalf("sheets %v", got)
	}
	total := 0
	for sheet, n := range want {
		rows, _ := f.GetRows(sheet)
		if len(rows) != n+1 || rows[0][0] != "Customer" {
			t.Errorf("%s: %d rows, want a header and %d", sheet, len(rows), n)
		}
		total += len(rows) - 1
	}
	if total != 8 {
		t.Errorf("%d rows over the sheets, want 8", total)
	}
}

func TestAReRunWritesAByteIdenticalXLSX(t *testing.T) {
	old := XLSXMaxRows
	XLSXMaxRows = 3 // several sheets: excelize writes them in map order
	defer func() { XLSXMaxRows = old }()
	first := writeXLSX(t, 20)
	for i := 0; i < 5; i++ {
		if !bytes.Equal(first, writeXLSX(t, 20)) {
			t.Fatal("the same rows made different XLSX bytes")
		}
	}
}

func TestASheetNameIsShortenedToExcelsLimitAndCleaned(t *testing.T) {
	for in, want := range map[string]string{"Dedicated Instance Usage by Cluster": "Dedicated Instance Usage by Clu", "a/b": "a-b"} {
		if got := sheetName(in, 1); got != want {
			t.Errorf("sheetName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sheetName("Dedicated Instance Usage by Cluster", 12); len(got) > 31 || !strings.HasSuffix(got, " (12)") {
		t.Errorf("continuation sheet name %q", got)
	}
}

func TestCSVBOMIsOptInAndPercentagesHaveOneDecimalWithoutASign(t *testing.T) {
	for _, bom := range []bool{false, true} {
		var c bytes.Buffer
		w, _ := New(sheetCols, Outputs{CSV: &c, CSVBOM: bom})
		w.Write(sheetRow(0))
		w.Close()
		b := c.Bytes()
		if got := bytes.HasPrefix(b, []byte("\uFEFF")); got != bom {
			t.Errorf("csv_bom %v: the file starts with a BOM: %v", bom, got)
		}
		recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(b, []byte("\uFEFF")))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if recs[0][0] != "Customer" || recs[1][5] != "40.0" || recs[1][7] != ";32.5" || recs[1][0] != "Zürich AG" {
			t.Errorf("csv_bom %v: %q", bom, recs)
		}
	}
}

func TestATrendIsARealListInParquetWithNullWeeks(t *testing.T) {
	var pq bytes.Buffer
	w, _ := New(sheetCols, Outputs{Parquet: &pq})
	w.Write(sheetRow(0))
	w.Close()
	type row struct {
		Usage []*float64 `parquet:"usage_over_the_last_3_months,list"`
		Pct   *float64   `parquet:"assigned_percent,optional"`
	}
	rows, err := parquet.Read[row](bytes.NewReader(pq.Bytes()), int64(pq.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || len(rows[0].Usage) != 2 || rows[0].Usage[0] != nil || rows[0].Usage[1] == nil || *rows[0].Usage[1] != 32.5 || *rows[0].Pct != 40 {
		t.Fatalf("read back %+v", rows)
	}
	_, text, _ := ReadParquetText(bytes.NewReader(pq.Bytes()), int64(pq.Len()))
	if text[0][7] != ";32.5" {
		t.Errorf("the list reads back as %q, want the CSV's \";32.5\"", text[0][7])
	}
}

// Integers are delta-encoded and low-cardinality text dictionary-encoded in
// report Parquet; readers get the same rows and types as from plain pages.
func TestReportParquetEncodingsReadBackAsTheSameRowsAndTypes(t *testing.T) {
	cols := []Column{{Header: "Partner Name", Dict: true}, {Header: "Customer Name"}, {Header: "Entitled", Kind: Int}}
	var c, pq bytes.Buffer
	w, _ := New(cols, Outputs{CSV: &c, Parquet: &pq})
	for i := 0; i < 3000; i++ {
		w.Write([]Value{S([]string{"Partner One", "Partner Two"}[i%2]), S(fmt.Sprintf("Customer %d", i)), I(int64(i % 97))})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(pq.Bytes()), int64(pq.Len()))
	if err != nil {
		t.Fatal(err)
	}
	enc := map[string]string{}
	for _, rg := range f.Metadata().RowGroups {
		for _, ch := range rg.Columns {
			enc[ch.MetaData.PathInSchema[0]] = fmt.Sprint(ch.MetaData.Encoding)
		}
	}
	if !strings.Contains(enc["partner_name"], "RLE_DICTIONARY") || !strings.Contains(enc["entitled"], "DELTA_BINARY_PACKED") || strings.Contains(enc["customer_name"], "DICTIONARY") {
		t.Errorf("encodings %v", enc)
	}
	for i, want := range []parquet.Kind{parquet.ByteArray, parquet.ByteArray, parquet.Int64} {
		if got := f.Schema().Fields()[i].Type().Kind(); got != want {
			t.Errorf("column %d is %v, want %v", i, got, want)
		}
	}
	_, rows, err := ReadParquetText(bytes.NewReader(pq.Bytes()), int64(pq.Len()))
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := csv.NewReader(bytes.NewReader(c.Bytes())).ReadAll()
	if len(rows) != 3000 || len(recs) != 3001 {
		t.Fatalf("%d Parquet rows, %d CSV records", len(rows), len(recs))
	}
	for i, row := range rows {
		if strings.Join(row, "|") != strings.Join(recs[i+1], "|") {
			t.Fatalf("row %d: Parquet %v, CSV %v", i, row, recs[i+1])
		}
	}
}

// Excel expects a sheet's <col> elements in ascending order (it "repairs" a
// file whose <cols> are not); read the sheet XML itself, since LibreOffice
// and excelize both tolerate the disorder.
func TestTheSheetXMLListsItsColumnsAscendingAsExcelExpects(t *testing.T) {
	b := writeXLSX(t, 3)
	z, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var sheet []byte
	for _, f := range z.File {
		if f.Name == "xl/worksheets/sheet1.xml" {
			r, _ := f.Open()
			sheet, _ = io.ReadAll(r)
			r.Close()
		}
	}
	mins := regexp.MustCompile(`<col min="(\d+)"`).FindAllSubmatch(sheet, -1)
	if len(mins) != len(sheetCols) {
		t.Fatalf("%d <col> elements, want %d:\n%s", len(mins), len(sheetCols), sheet)
	}
	for i, m := range mins {
		if n, _ := strconv.Atoi(string(m[1])); n != i+1 {
			t.Fatalf("<col> %d has min %d, want %d: the columns are not ascending", i, n, i+1)
		}
	}
}
