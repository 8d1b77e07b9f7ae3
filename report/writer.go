// Package report owns tally's report files: the built-in and custom templates
// (their CSV headers and snake_case Parquet columns), file names, and the writer
// that streams one report as CSV and Parquet in a single pass.
package report

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

// Kind is a column's type.
type Kind int

// Column kinds.
const (
	String Kind = iota
	Int
	Float
	Bool
	// Percent is a percentage (0–100): a double in Parquet, one decimal and
	// no % sign in CSV, a 0.0-formatted number in XLSX.
	Percent
	// PercentList is a trend of percentages, oldest first, null for a missing
	// week: a list of doubles in Parquet, "32.5;;33.0" in CSV and XLSX.
	PercentList
)

// Column is one report column: its CSV header and type. Its Parquet name is the
// snake_case of the header.
type Column struct {
	Header string
	Kind   Kind
	// Dict marks a column of few distinct values per row group (partner,
	// license type, status, a customer's name over its rows, a count of
	// licenses or calls): its Parquet pages are dictionary-encoded, as DuckDB
	// chooses for such columns. The dictionary is per row group, so memory
	// stays bounded however many rows. An integer column without it is
	// delta-encoded (best for ascending values, like ids).
	Dict bool
}

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

// SnakeCase is the Parquet name of a CSV header: lower case, every run of
// characters other than letters and digits one "_" ("Call Minutes - Video" →
// "call_minutes_video").
func SnakeCase(header string) string {
	return strings.Trim(nonAlnum.ReplaceAllString(strings.ToLower(header), "_"), "_")
}

// Name is the column's Parquet name.
func (c Column) Name() string { return SnakeCase(c.Header) }

// Value is one cell.
type Value struct {
	kind Kind
	null bool
	s    string
	i    int64
	f    float64
	b    bool
	l    []*float64
}

// S, I, F, B and Null make cells. A text cell's line breaks are normalised to
// LF (CRLF and a lone CR alike), so the CSV and the Parquet of one report hold
// the same text.
func S(s string) Value      { return Value{kind: String, s: normalizeBreaks(s)} }
func I(i int64) Value       { return Value{kind: Int, i: i} }
func F(f float64) Value     { return Value{kind: Float, f: f} }
func B(b bool) Value        { return Value{kind: Bool, b: b} }
func Null() Value           { return Value{null: true} }
func OptS(s *string) Value  { return opt(s, S) }
func OptF(f *float64) Value { return opt(f, F) }
func OptI(i *int64) Value   { return opt(i, I) }
func P(f float64) Value     { return Value{kind: Percent, f: f} }
func OptP(f *float64) Value { return opt(f, P) }

// PL is a trend of percentages (nil elements: missing weeks).
func PL(l []*float64) Value { return Value{kind: PercentList, l: l} }

func opt[T any](p *T, f func(T) Value) Value {
	if p == nil {
		return Null()
	}
	return f(*p)
}

// Text is the cell as CSV shows it (before formula neutralising).
func (v Value) Text() string {
	if v.null {
		return ""
	}
	switch v.kind {
	case Int:
		return strconv.FormatInt(v.i, 10)
	case Float:
		return strconv.FormatFloat(v.f, 'f', -1, 64)
	case Percent:
		return strconv.FormatFloat(v.f, 'f', 1, 64)
	case PercentList:
		return string(appendList(nil, v.l))
	case Bool:
		return strconv.FormatBool(v.b)
	}
	return v.s
}

// appendList writes a percentage trend as "32.5;;33.0".
func appendList(b []byte, l []*float64) []byte {
	for i, p := range l {
		if i > 0 {
			b = append(b, ';')
		}
		if p != nil {
			b = strconv.AppendFloat(b, *p, 'f', 1, 64)
		}
	}
	return b
}

func normalizeBreaks(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// SafeText neutralises a text cell a spreadsheet would run as a formula: a cell
// starting with =, +, -, @, tab, CR or LF gets a ' prefix — also when spaces,
// zero-width characters or a byte-order mark come first, since spreadsheets
// skip those. Numbers are never altered.
func SafeText(s string) string {
	if s == "" {
		return s
	}
	if strings.ContainsRune("=+-@\t\r\n", rune(s[0])) {
		return "'" + s
	}
	for _, r := range s {
		if strings.ContainsRune("=+-@\t\r\n", r) {
			return "'" + s
		}
		if !unicode.IsSpace(r) && !unicode.Is(unicode.Cf, r) {
			break
		}
	}
	return s
}

// RowGroupRows bounds a report's Parquet row group, so memory does not grow
// with rows. 128K rather than 256K: a region's Devices report fills a group
// from a few thousand customers on, so a run's peak stops growing sooner;
// the file stays within DuckDB's size (make bench).
const RowGroupRows = 128 * 1024

// PageBytes is the Parquet page buffer per column (parquet-go's default is 256 KiB).
// The writer keeps every page's column- and offset-index entry until the footer,
// about 150 bytes a page; at 256 KiB pages that alone grew peak RSS by 15% (4.5
// MiB) from 5M to 20M rows. 512 KiB pages halve the page count and the growth
// (`make bench`), at about 12 MiB more per open writer.
const PageBytes = 512 * 1024

// Writer writes one report as CSV, Parquet and/or XLSX in one pass over its rows.
type Writer struct {
	cols    []Column
	csv     *csvWriter
	xlsx    *xlsxWriter
	pq      *parquet.Writer
	zstd    *zstdCodec
	batch   []parquet.Row // rows handed to the Parquet writer a batch at a time
	values  []parquet.Value
	csvRows int64
	pqRows  int64
}

// batchRows is how many rows go to the Parquet writer per call.
const batchRows = 512

// schema is the Parquet schema of cols, in column order, every column nullable
// and compressed with codec.
func schema(cols []Column, codec compress.Codec) *parquet.Schema {
	g := parquet.Group{}
	order := make([]string, len(cols))
	for i, c := range cols {
		var n parquet.Node
		switch c.Kind {
		case Int:
			n = parquet.Encoded(parquet.Int(64), &parquet.DeltaBinaryPacked)
			if c.Dict {
				n = parquet.Encoded(parquet.Int(64), &parquet.RLEDictionary)
			}
		case Float:
			n = parquet.Leaf(parquet.DoubleType)
		case Percent:
			// One decimal from 0 to 100: at most 1,001 values, so a dictionary
			// page of 8 KiB and ~10-bit indexes beat 8-byte doubles.
			n = parquet.Encoded(parquet.Leaf(parquet.DoubleType), &parquet.RLEDictionary)
		case PercentList:
			g[c.Name()] = parquet.Optional(parquet.List(parquet.Compressed(parquet.Optional(parquet.Encoded(parquet.Leaf(parquet.DoubleType), &parquet.RLEDictionary)), codec)))
			order[i] = c.Name()
			continue
		case Bool:
			n = parquet.Leaf(parquet.BooleanType)
		default:
			n = parquet.String()
			if c.Dict {
				n = parquet.Encoded(n, &parquet.RLEDictionary)
			}
		}
		g[c.Name()] = parquet.Compressed(parquet.Optional(n), codec)
		order[i] = c.Name()
	}
	return parquet.NewSchema("report", orderedGroup{Group: g, order: order})
}

// orderedGroup keeps the template's column order (parquet.Group sorts by name).
type orderedGroup struct {
	parquet.Group
	order []string
}

func (g orderedGroup) Fields() []parquet.Field {
	fields := g.Group.Fields()
	slices.SortStableFunc(fields, func(a, b parquet.Field) int {
		return slices.Index(g.order, a.Name()) - slices.Index(g.order, b.Name())
	})
	return fields
}

// NewWriter starts a report as CSV and/or Parquet; csvOut or pqOut may be nil
// to skip that format.
func NewWriter(cols []Column, csvOut, pqOut io.Writer) (*Writer, error) {
	return New(cols, Outputs{CSV: csvOut, Parquet: pqOut})
}

// Outputs are where a report goes; a nil writer skips its format.
type Outputs struct {
	CSV, Parquet, XLSX io.Writer
	// CSVBOM starts the CSV with a UTF-8 byte-order mark (for Excel on Windows).
	CSVBOM bool
	// Sheet names the XLSX sheet (31 characters at most; rows past a sheet's
	// limit continue on "<Sheet> (2)", …); TmpDir holds its spill files.
	Sheet, TmpDir string
}

// New starts a report in the given outputs.
func New(cols []Column, o Outputs) (*Writer, error) {
	w := &Writer{cols: cols}
	if o.XLSX != nil {
		var err error
		if w.xlsx, err = newXLSXWriter(o.XLSX, cols, o.Sheet, o.TmpDir); err != nil {
			return nil, err
		}
	}
	csvOut, pqOut := o.CSV, o.Parquet
	if csvOut != nil {
		w.csv = newCSVWriter(csvOut)
		if o.CSVBOM {
			w.csv.w.WriteString("\uFEFF")
		}
		for i, c := range cols {
			w.csv.text(i, c.Header)
		}
		if err := w.csv.endRecord(); err != nil {
			return nil, err
		}
	}
	if pqOut != nil {
		var err error
		if w.zstd, err = newZstdCodec(); err != nil {
			return nil, err
		}
		w.pq = parquet.NewWriter(pqOut, schema(cols, w.zstd),
			parquet.MaxRowsPerRowGroup(RowGroupRows), parquet.PageBufferSize(PageBytes),
			parquet.CreatedBy("tally", "1", "-"), parquet.DataPageVersion(1))
	}
	return w, nil
}

// Write appends one row (one value per column, in column order).
func (w *Writer) Write(vals []Value) error {
	if len(vals) != len(w.cols) {
		return fmt.Errorf("report row has %d values for %d columns", len(vals), len(w.cols))
	}
	if w.csv != nil {
		for i, v := range vals {
			w.csv.value(i, v)
		}
		if err := w.csv.endRecord(); err != nil {
			return err
		}
		w.csvRows++
	}
	if w.xlsx != nil {
		if err := w.xlsx.write(vals); err != nil {
			return err
		}
	}
	if w.pq != nil {
		if w.values == nil {
			w.values = make([]parquet.Value, 0, batchRows*len(w.cols))
		}
		start := len(w.values)
		for i, v := range vals {
			var pv parquet.Value
			switch {
			case v.null:
				w.values = append(w.values, parquet.NullValue().Level(0, 0, i))
				continue
			case v.kind == Int:
				pv = parquet.Int64Value(v.i)
			case v.kind == Float, v.kind == Percent:
				pv = parquet.DoubleValue(v.f)
			case v.kind == PercentList:
				// optional list (def 1) of optional doubles (def 3; a null element 2)
				if len(v.l) == 0 {
					w.values = append(w.values, parquet.NullValue().Level(0, 1, i))
				}
				for j, p := range v.l {
					rep := 0
					if j > 0 {
						rep = 1
					}
					if p == nil {
						w.values = append(w.values, parquet.NullValue().Level(rep, 2, i))
					} else {
						w.values = append(w.values, parquet.DoubleValue(*p).Level(rep, 3, i))
					}
				}
				continue
			case v.kind == Bool:
				pv = parquet.BooleanValue(v.b)
			default:
				// Strings are immutable and the writer only reads the bytes: no copy.
				pv = parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(v.s), len(v.s)))
			}
			w.values = append(w.values, pv.Level(0, 1, i))
		}
		w.batch = append(w.batch, w.values[start:len(w.values):len(w.values)])
		w.pqRows++
		if len(w.batch) == batchRows {
			return w.flushBatch()
		}
	}
	return nil
}

func (w *Writer) flushBatch() error {
	if len(w.batch) == 0 {
		return nil
	}
	_, err := w.pq.WriteRows(w.batch)
	w.batch, w.values = w.batch[:0], w.values[:0]
	return err
}

// Abort drops what the writer holds outside its outputs (the XLSX's
// temporary files); the outputs themselves are the caller's to abort.
func (w *Writer) Abort() {
	if w != nil && w.xlsx != nil {
		w.xlsx.f.Close()
	}
}

// Rows is how many data rows were written.
func (w *Writer) Rows() int64 {
	n := max(w.csvRows, w.pqRows)
	if w.xlsx != nil {
		n = max(n, w.xlsx.rows)
	}
	return n
}

// Close flushes both formats, then checks them against each other: the same row
// count and the same columns (a check that fails fails the run, before publish).
func (w *Writer) Close() error {
	if w.csv != nil {
		if err := w.csv.flush(); err != nil {
			return err
		}
	}
	if w.pq != nil {
		if err := w.flushBatch(); err != nil {
			return err
		}
		if err := errors.Join(w.pq.Close(), w.zstd.Close()); err != nil {
			return err
		}
	}
	if w.xlsx != nil {
		if err := w.xlsx.close(); err != nil {
			return err
		}
		if w.csv != nil && w.xlsx.rows != w.csvRows || w.pq != nil && w.xlsx.rows != w.pqRows {
			return fmt.Errorf("report check: XLSX has %d rows, CSV %d, Parquet %d", w.xlsx.rows, w.csvRows, w.pqRows)
		}
	}
	if w.csv != nil && w.pq != nil {
		if w.csvRows != w.pqRows {
			return fmt.Errorf("report check: CSV has %d rows, Parquet %d", w.csvRows, w.pqRows)
		}
		fields := w.pq.Schema().Fields()
		if len(fields) != len(w.cols) {
			return fmt.Errorf("report check: CSV has %d columns, Parquet %d", len(w.cols), len(fields))
		}
		for i, f := range fields {
			if f.Name() != w.cols[i].Name() {
				return fmt.Errorf("report check: column %d is %q in CSV and %q in Parquet", i+1, w.cols[i].Header, f.Name())
			}
		}
	}
	return nil
}

// ReadParquetText reads a report's Parquet file back as the text cells its CSV
// shows (before formula neutralising), with the column names: for checks and
// tests that compare the two formats.
func ReadParquetText(ra io.ReaderAt, size int64) (names []string, rows [][]string, err error) {
	f, err := parquet.OpenFile(ra, size)
	if err != nil {
		return nil, nil, err
	}
	leaves := f.Schema().Fields()
	for _, l := range leaves {
		names = append(names, l.Name())
	}
	// A list column is a repeated leaf: its elements join as the CSV shows them.
	isList := make([]bool, len(leaves))
	for i, l := range leaves {
		isList[i] = !l.Leaf() // report columns are leaves, except the lists
	}
	r := parquet.NewReader(f)
	defer r.Close()
	buf := make([]parquet.Row, 256)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			cells := make([]string, len(leaves))
			for _, v := range row {
				i := v.Column()
				if isList[i] {
					if v.RepetitionLevel() > 0 {
						cells[i] += ";"
					}
					if !v.IsNull() {
						cells[i] += strconv.FormatFloat(v.Double(), 'f', 1, 64)
					}
					continue
				}
				if v.IsNull() {
					continue
				}
				switch v.Kind() {
				case parquet.Int64:
					cells[i] = strconv.FormatInt(v.Int64(), 10)
				case parquet.Double:
					cells[i] = strconv.FormatFloat(v.Double(), 'f', -1, 64)
				case parquet.Boolean:
					cells[i] = strconv.FormatBool(v.Boolean())
				default:
					cells[i] = string(v.ByteArray())
				}
			}
			rows = append(rows, cells)
		}
		if err == io.EOF {
			return names, rows, nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
}
