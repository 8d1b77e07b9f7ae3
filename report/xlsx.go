package report

import (
	"archive/zip"
	"compress/flate"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"

	"tally/internal/tmpfile"
)

// XLSXMaxRows is how many rows an Excel sheet holds (the header included);
// the rows after continue on "<Sheet> (2)", … A variable so tests can split
// sheets without writing a million rows.
var XLSXMaxRows = 1_048_576

// xlsxTime is the workbook's fixed created/modified time: re-runs are
// byte-identical.
const xlsxTime = "2000-01-01T00:00:00Z"

// xlsxWriter streams a report into an XLSX workbook with excelize's
// StreamWriter (rows spill to temporary files in tmpDir, so memory stays
// bounded): numbers as numbers, percentages as 0.0 numbers, booleans as
// booleans, and every text cell — ids, MAC addresses, phone numbers — typed as
// a string, so Excel never turns 077465852072 into a number or +1787… into a
// formula. A frozen bold header row and column widths on every sheet.
type xlsxWriter struct {
	out          io.Writer
	tmpDir       string
	f            *excelize.File
	sw           *excelize.StreamWriter
	cols         []Column
	base         string
	sheets       int
	rowInSheet   int // rows written on the current sheet, its header included
	rows         int64
	header, pctS int
	cells        []any
}

// sheetName is a valid sheet name (31 characters, none of []:*?/\) with its
// continuation suffix.
func sheetName(base string, n int) string {
	base = strings.Map(func(r rune) rune {
		if strings.ContainsRune(`[]:*?/\`, r) {
			return '-'
		}
		return r
	}, strings.TrimSpace(base))
	if base == "" {
		base = "Report"
	}
	suffix := ""
	if n > 1 {
		suffix = fmt.Sprintf(" (%d)", n)
	}
	for utf8.RuneCountInString(base)+len(suffix) > 31 {
		_, size := utf8.DecodeLastRuneInString(base)
		base = base[:len(base)-size]
	}
	return base + suffix
}

func newXLSXWriter(out io.Writer, cols []Column, sheet, tmpDir string) (*xlsxWriter, error) {
	f := excelize.NewFile(excelize.Options{TmpDir: tmpDir})
	x := &xlsxWriter{out: out, tmpDir: tmpDir, f: f, cols: cols, base: sheet, cells: make([]any, len(cols))}
	var err error
	if x.header, err = f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}, Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"EDEDED"}}}); err != nil {
		return nil, err
	}
	pctFmt := "0.0"
	if x.pctS, err = f.NewStyle(&excelize.Style{CustomNumFmt: &pctFmt}); err != nil {
		return nil, err
	}
	if err := f.SetDocProps(&excelize.DocProperties{Creator: "tally", Created: xlsxTime, Modified: xlsxTime}); err != nil {
		return nil, err
	}
	if err := x.newSheet(); err != nil {
		return nil, err
	}
	return x, nil
}

// newSheet starts the next sheet with its header row.
func (x *xlsxWriter) newSheet() error {
	if x.sw != nil {
		if err := x.sw.Flush(); err != nil {
			return err
		}
	}
	x.sheets++
	name := sheetName(x.base, x.sheets)
	if x.sheets == 1 {
		if err := x.f.SetSheetName("Sheet1", name); err != nil {
			return err
		}
	} else if _, err := x.f.NewSheet(name); err != nil {
		return err
	}
	sw, err := x.f.NewStreamWriter(name)
	if err != nil {
		return err
	}
	// Widths from the last column to the first: excelize (v2.11) writes
	// <cols> in the reverse of the order they were set, and Excel "repairs"
	// a sheet whose <col> elements are not ascending.
	for i := len(x.cols) - 1; i >= 0; i-- {
		c := x.cols[i]
		width := float64(utf8.RuneCountInString(c.Header)) + 2
		switch c.Kind {
		case String:
			width = max(width, 18)
		case PercentList:
			width = max(width, 40)
		default:
			width = max(width, 10)
		}
		if err := sw.SetColWidth(i+1, i+1, min(width, 60)); err != nil {
			return err
		}
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return err
	}
	header := make([]any, len(x.cols))
	for i, c := range x.cols {
		header[i] = excelize.Cell{StyleID: x.header, Value: c.Header}
	}
	if err := sw.SetRow("A1", header); err != nil {
		return err
	}
	x.sw, x.rowInSheet = sw, 1
	return nil
}

func (x *xlsxWriter) write(vals []Value) error {
	if x.rowInSheet >= XLSXMaxRows {
		if err := x.newSheet(); err != nil {
			return err
		}
	}
	for i, v := range vals {
		switch {
		case v.null:
			x.cells[i] = nil
		case v.kind == Int:
			x.cells[i] = v.i
		case v.kind == Float:
			x.cells[i] = v.f
		case v.kind == Percent:
			x.cells[i] = excelize.Cell{StyleID: x.pctS, Value: v.f}
		case v.kind == Bool:
			x.cells[i] = v.b
		case v.kind == PercentList:
			x.cells[i] = string(appendList(nil, v.l))
		default:
			x.cells[i] = v.s // a string cell: never a number, never a formula
		}
	}
	x.rowInSheet++
	cell, err := excelize.CoordinatesToCellName(1, x.rowInSheet)
	if err != nil {
		return err
	}
	if err := x.sw.SetRow(cell, x.cells); err != nil {
		return err
	}
	x.rows++
	return nil
}

// close writes the workbook through spoolZip: straight to out, in name order.
func (x *xlsxWriter) close() error {
	defer x.f.Close()
	if err := x.sw.Flush(); err != nil {
		return err
	}
	z := &spoolZip{dir: x.tmpDir}
	x.f.SetZipWriter(func(io.Writer) excelize.ZipWriter { return z })
	if _, err := x.f.WriteToBuffer(); err != nil { // the buffer stays empty: z holds the entries
		z.discard()
		return err
	}
	return z.writeTo(x.out)
}

// spoolZip is the zip writer excelize saves through. excelize would build the
// whole workbook in a memory buffer, its streamed sheets in map order; here
// each entry is compressed into a temporary file as it comes (memory stays
// bounded), and the entries are written to the output sorted by name, their
// compressed bytes copied as they are: the same rows always make the same bytes.
type spoolZip struct {
	dir     string
	entries []*spooled
	cur     *spooled
}

type spooled struct {
	name       string
	file       *os.File
	fw         *flate.Writer
	crc        hash.Hash32
	size, comp int64
}

func (e *spooled) Write(p []byte) (int, error) {
	e.crc.Write(p)
	e.size += int64(len(p))
	return e.fw.Write(p)
}

func (z *spoolZip) finish() error {
	if z.cur == nil {
		return nil
	}
	e := z.cur
	z.cur = nil
	if err := e.fw.Close(); err != nil {
		return err
	}
	n, err := e.file.Seek(0, io.SeekCurrent)
	e.comp = n
	return err
}

func (z *spoolZip) Create(name string) (io.Writer, error) {
	if err := z.finish(); err != nil {
		return nil, err
	}
	f, err := tmpfile.Create(z.dir, "tally-xlsx-*")
	if err != nil {
		return nil, err
	}
	fw, _ := flate.NewWriter(f, flate.BestSpeed)
	e := &spooled{name: name, file: f, fw: fw, crc: crc32.NewIEEE()}
	z.entries, z.cur = append(z.entries, e), e
	return e, nil
}

func (z *spoolZip) AddFS(fs.FS) error { return errors.New("xlsx: AddFS is not supported") }

func (z *spoolZip) Close() error { return z.finish() }

func (z *spoolZip) discard() {
	for _, e := range z.entries {
		e.file.Close()
	}
}

func (z *spoolZip) writeTo(out io.Writer) error {
	defer z.discard()
	if err := z.finish(); err != nil {
		return err
	}
	sort.Slice(z.entries, func(i, j int) bool { return z.entries[i].name < z.entries[j].name })
	zw := zip.NewWriter(out)
	for _, e := range z.entries {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: e.name, Method: zip.Deflate, CRC32: e.crc.Sum32(),
			CompressedSize64: uint64(e.comp), UncompressedSize64: uint64(e.size)})
		if err != nil {
			return err
		}
		if _, err := e.file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.Copy(w, e.file); err != nil {
			return err
		}
	}
	return zw.Close()
}
