package report

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"
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
	x := &xlsxWriter{out: out, f: f, cols: cols, base: sheet, cells: make([]any, len(cols))}
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
	for i, c := range x.cols {
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

// close writes the workbook. excelize writes the streamed sheets in map
// order, so the zip's entries are rewritten sorted by name (their compressed
// bytes copied as they are): the same rows always make the same bytes.
func (x *xlsxWriter) close() error {
	defer x.f.Close()
	if err := x.sw.Flush(); err != nil {
		return err
	}
	buf, err := x.f.WriteToBuffer()
	if err != nil {
		return err
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		return err
	}
	files := append([]*zip.File(nil), zr.File...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	zw := zip.NewWriter(x.out)
	for _, f := range files {
		h := f.FileHeader
		w, err := zw.CreateRaw(&h)
		if err != nil {
			return err
		}
		r, err := f.OpenRaw()
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			return err
		}
	}
	return zw.Close()
}
