package files

// Reading a delivered file into rows of cells, whatever wrote it: CSV with its
// header in any column order, JSON lines, either gzip-compressed, and Parquet
// with the types DuckDB, Spark or pandas write (see parquetColumn).

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strings"
	"unsafe"

	"github.com/klauspost/compress/gzip"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"tally/source"
)

// rowFunc takes one parsed row (its cells in the schema's column order, valid
// until it returns) with its line (CSV, JSON lines) or row number (Parquet),
// from 1.
type rowFunc func(line int64, cells []cell) error

// badFunc takes a row that could not be parsed, with its line and reason.
type badFunc func(line int64, reason string, raw map[string]any)

// formatOf is a delivered file's format, and whether it is gzip-compressed.
func formatOf(name string) (format string, gz bool, ok bool) {
	name, gz = strings.CutSuffix(name, ".gz")
	switch {
	case strings.HasSuffix(name, ".csv"):
		return "csv", gz, true
	case strings.HasSuffix(name, ".jsonl"):
		return "jsonl", gz, true
	case strings.HasSuffix(name, ".parquet") && !gz:
		return "parquet", false, true
	}
	return "", false, false
}

// gunzip wraps a gzip-compressed file's bytes; the manifest's size and sha256
// are of the compressed bytes, checked as they are read.
func gunzip(r io.Reader, file string) (io.Reader, error) {
	z, err := gzip.NewReader(r)
	if err != nil {
		return nil, source.Permanent(fmt.Errorf("files: %s: not gzip: %v", file, err))
	}
	z.Multistream(true)
	return z, nil
}

func readCSV(in io.Reader, key string, sc *schema, row rowFunc, bad badFunc) (unknown []string, err error) {
	r := csv.NewReader(&lineLimit{r: bufio.NewReaderSize(in, 64<<10), max: MaxLine, file: key})
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, source.Permanent(fmt.Errorf("files: %s: header: %v", key, err))
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	cols, unknown, err := sc.bind(key, header)
	if err != nil {
		return nil, err
	}
	cells := make([]cell, len(sc.columns))
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return unknown, nil
		}
		line, _ := r.FieldPos(0)
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, source.Permanent(fmt.Errorf("files: %s line %d: %v (a broken quote makes every later line unreadable, so the day fails)", key, pe.StartLine, pe.Err))
		}
		if err != nil {
			return nil, source.Permanent(fmt.Errorf("files: %s: %w", key, err))
		}
		var rowErr error
		if len(rec) != len(header) {
			rowErr = fmt.Errorf("%d fields, the header has %d", len(rec), len(header))
		}
		for i := range cells {
			cells[i] = cell{}
		}
		for i, s := range rec {
			if rowErr == nil && i < len(cols) && cols[i] >= 0 {
				rowErr = sc.columns[cols[i]].parseText(s, &cells[cols[i]])
			}
		}
		if rowErr != nil {
			raw := map[string]any{}
			for i, s := range rec {
				if i < len(header) {
					raw[header[i]] = s
				}
			}
			bad(int64(line), rowErr.Error(), raw)
			continue
		}
		if err := row(int64(line), cells); err != nil {
			return nil, err
		}
	}
}

// bind maps a header (in any order) to the schema's columns (-1: unknown): a
// missing required column fails the day; unknown columns are returned to be
// noted.
func (sc *schema) bind(file string, header []string) (cols []int, unknown []string, err error) {
	have := map[string]bool{}
	for _, h := range header {
		i, ok := sc.byName[h]
		if !ok || have[h] {
			unknown = append(unknown, h)
			cols = append(cols, -1)
			continue
		}
		have[h] = true
		cols = append(cols, i)
	}
	for _, c := range sc.columns {
		if !have[c.Name] && !c.Optional {
			return nil, nil, source.Permanent(fmt.Errorf("files: %s: missing required column %s (%s)", file, c.Name, c.kind))
		}
	}
	return cols, unknown, nil
}

func readJSONL(in io.Reader, key string, sc *schema, row rowFunc, bad badFunc) (unknown []string, err error) {
	scan := bufio.NewScanner(in)
	scan.Buffer(make([]byte, 64*1024), MaxLine)
	seen := map[string]bool{}
	cells := make([]cell, len(sc.columns))
	line := int64(0)
	for scan.Scan() {
		line++
		text := bytes.TrimSpace(scan.Bytes())
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\ufeff"))
		}
		if len(text) == 0 {
			continue
		}
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			bad(line, "not a JSON object: "+err.Error(), map[string]any{"line": string(text)})
			continue
		}
		for i := range cells {
			cells[i] = cell{}
		}
		var rowErr error
		for name, x := range obj {
			i, ok := sc.byName[name]
			if !ok {
				if !seen[name] {
					seen[name] = true
					unknown = append(unknown, name)
				}
				continue
			}
			if rowErr == nil {
				rowErr = sc.columns[i].parseJSON(x, &cells[i])
			}
		}
		for _, c := range sc.columns {
			if _, ok := obj[c.Name]; !ok && !c.Optional && rowErr == nil {
				rowErr = fmt.Errorf("column %s: missing, but required (%s)", c.Name, c.kind)
			}
		}
		if rowErr != nil {
			bad(line, rowErr.Error(), obj)
			continue
		}
		if err := row(line, cells); err != nil {
			return nil, err
		}
	}
	if err := scan.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, source.Permanent(fmt.Errorf("files: %s line %d: longer than %d MiB", key, line+1, MaxLine>>20))
		}
		var pe permanentErr
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, fmt.Errorf("files: %s: %w", key, err)
	}
	sort.Strings(unknown)
	return unknown, nil
}

type permanentErr interface{ Unwrap() error }

// parquetColumn converts one leaf column of a delivered Parquet file into
// cells of a contract column. Accepted, by the contract column's kind:
//   - string: BYTE_ARRAY (STRING, ENUM, JSON or none); FIXED_LEN_BYTE_ARRAY(16)
//     with the UUID type as its canonical text (never raw bytes).
//   - integer: INT64, INT32 (also INT(8–64) and DECIMAL(p,0), however stored);
//     a DECIMAL of any other scale is refused.
//   - number: DOUBLE, FLOAT, any DECIMAL.
//   - boolean: BOOLEAN.
//   - timestamp: TIMESTAMP in ms, µs or ns, with or without time zone (without
//     one, the values are read as UTC); INT96 (Spark, Impala).
//   - date: DATE.
//   - list of strings: a LIST (or repeated) of strings.
type parquetColumn struct {
	col     int // the contract column
	list    bool
	maxDef  int
	itemDef int // a list's definition level once it has an item
	convert func(v parquet.Value, c *cell) error
}

// parquetColumns binds a file's leaf columns to the contract's: a required
// contract column it lacks, or a column of a type that cannot hold the
// contract's, fails the day naming file, column and type.
func (sc *schema) parquetColumns(key string, pf *parquet.File) ([]*parquetColumn, []string, error) {
	bound := make([]*parquetColumn, len(pf.Schema().Columns()))
	have := map[string]bool{}
	var unknown []string
	for _, path := range pf.Schema().Columns() {
		leaf, _ := pf.Schema().Lookup(path...)
		name := path[0]
		i, ok := sc.byName[name]
		if !ok || have[name] {
			if !ok && !have[name] {
				unknown = append(unknown, name)
			}
			continue
		}
		c := sc.columns[i]
		list := leaf.MaxRepetitionLevel > 0
		typ := leaf.Node.Type()
		refuse := func(why string) ([]*parquetColumn, []string, error) {
			return nil, nil, source.Permanent(fmt.Errorf("files: %s: column %s is %s, want %s%s", key, c.Name, typeName(typ, list), c.kind, why))
		}
		if list != (c.kind == kList) || (len(path) > 1 && !list) {
			return refuse("")
		}
		conv, why := converter(c.kind, typ)
		if conv == nil {
			return refuse(why)
		}
		have[name] = true
		bound[leaf.ColumnIndex] = &parquetColumn{col: i, list: list, maxDef: leaf.MaxDefinitionLevel, itemDef: itemLevel(pf.Schema(), path), convert: conv}
	}
	for _, c := range sc.columns {
		if !have[c.Name] && !c.Optional {
			return nil, nil, source.Permanent(fmt.Errorf("files: %s: missing required column %s (%s)", key, c.Name, c.kind))
		}
	}
	return bound, unknown, nil
}

// itemLevel is the definition level at a path's repeated node: a value defined
// that far is a list item (null past it), one below it an empty or null list.
func itemLevel(s *parquet.Schema, path []string) int {
	var n parquet.Node = s
	def := 0
	for _, name := range path {
		var next parquet.Node
		for _, f := range n.Fields() {
			if f.Name() == name {
				next = f
				break
			}
		}
		if next == nil {
			break
		}
		n = next
		if n.Optional() || n.Repeated() {
			def++
		}
		if n.Repeated() {
			return def
		}
	}
	return def
}

func typeName(t parquet.Type, list bool) string {
	s := t.String()
	if lt := t.LogicalType(); lt != nil && lt.Value != nil {
		s = lt.String() + " (" + t.Kind().String() + ")"
	}
	if list {
		return "a list of " + s
	}
	return s
}

// converter is how values of Parquet type t become cells of kind k (nil: they
// cannot, and why).
func converter(k kind, t parquet.Type) (func(parquet.Value, *cell) error, string) {
	var logical format.LogicalTypeValue
	if lt := t.LogicalType(); lt != nil {
		logical = lt.Value
	}
	phys := t.Kind()
	switch k {
	case kString, kList:
		switch logical.(type) {
		case *format.UUIDType:
			if phys == parquet.FixedLenByteArray && t.Length() == 16 {
				return func(v parquet.Value, c *cell) error { c.s = uuidText(v.ByteArray()); return nil }, ""
			}
		case nil, *format.StringType, *format.EnumType, *format.JsonType:
			if phys == parquet.ByteArray || phys == parquet.FixedLenByteArray {
				return func(v parquet.Value, c *cell) error { c.s = unsafeString(v.ByteArray()); return nil }, ""
			}
		}
	case kInt:
		switch lt := logical.(type) {
		case *format.DecimalType:
			if lt.Scale != 0 {
				return nil, fmt.Sprintf(" (an integer column takes DECIMAL with scale 0 only: cast it, e.g. CAST(x AS BIGINT))")
			}
			return decimalInt(phys)
		case nil, *format.IntType:
			switch phys {
			case parquet.Int64:
				return func(v parquet.Value, c *cell) error { c.n = v.Int64(); return nil }, ""
			case parquet.Int32:
				return func(v parquet.Value, c *cell) error { c.n = int64(v.Int32()); return nil }, ""
			case parquet.Double, parquet.Float:
				return nil, " (DuckDB writes a HUGEINT, such as a SUM, as DOUBLE: cast it, e.g. CAST(x AS BIGINT))"
			}
		}
	case kFloat:
		switch lt := logical.(type) {
		case *format.DecimalType:
			scale := math.Pow10(int(lt.Scale))
			conv, why := decimalInt(phys)
			if conv == nil {
				return nil, why
			}
			return func(v parquet.Value, c *cell) error {
				if err := conv(v, c); err != nil {
					return err
				}
				c.f, c.n = float64(c.n)/scale, 0
				return nil
			}, ""
		case nil:
			switch phys {
			case parquet.Double:
				return func(v parquet.Value, c *cell) error { c.f = v.Double(); return nil }, ""
			case parquet.Float:
				return func(v parquet.Value, c *cell) error { c.f = float64(v.Float()); return nil }, ""
			}
		}
	case kBool:
		if phys == parquet.Boolean && logical == nil {
			return func(v parquet.Value, c *cell) error {
				if v.Boolean() {
					c.n = 1
				}
				return nil
			}, ""
		}
	case kTime:
		if lt, ok := logical.(*format.TimestampType); ok && phys == parquet.Int64 {
			// Without a time zone (isAdjustedToUTC false: DuckDB's TIMESTAMP,
			// Spark's TIMESTAMP_NTZ) the values are wall-clock times; tally's
			// contract is UTC, so they are read as UTC.
			switch lt.Unit.Value.(type) {
			case *format.MilliSeconds:
				return func(v parquet.Value, c *cell) error { c.n = v.Int64() * 1000; return nil }, ""
			case *format.MicroSeconds:
				return func(v parquet.Value, c *cell) error { c.n = v.Int64(); return nil }, ""
			case *format.NanoSeconds:
				return func(v parquet.Value, c *cell) error { c.n = floorDiv(v.Int64(), 1000); return nil }, ""
			}
		}
		if phys == parquet.Int96 {
			return func(v parquet.Value, c *cell) error {
				i := v.Int96()
				nanos := int64(uint64(i[1])<<32 | uint64(i[0]))
				c.n = (int64(i[2])-2440588)*86400_000_000 + nanos/1000
				return nil
			}, ""
		}
		if phys == parquet.Int64 && logical == nil {
			return nil, " (an INT64 without a TIMESTAMP type has no unit: write it as TIMESTAMP)"
		}
	case kDate:
		if _, ok := logical.(*format.DateType); ok && phys == parquet.Int32 {
			return func(v parquet.Value, c *cell) error { c.n = int64(v.Int32()); return nil }, ""
		}
	}
	return nil, ""
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// decimalInt reads a DECIMAL's unscaled value as an integer, however stored.
func decimalInt(phys parquet.Kind) (func(parquet.Value, *cell) error, string) {
	switch phys {
	case parquet.Int64:
		return func(v parquet.Value, c *cell) error { c.n = v.Int64(); return nil }, ""
	case parquet.Int32:
		return func(v parquet.Value, c *cell) error { c.n = int64(v.Int32()); return nil }, ""
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return func(v parquet.Value, c *cell) error {
			b := v.ByteArray() // big-endian two's complement
			n := new(big.Int).SetBytes(b)
			if len(b) > 0 && b[0]&0x80 != 0 {
				n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
			}
			if !n.IsInt64() {
				return fmt.Errorf("%s does not fit in 64 bits", n)
			}
			c.n = n.Int64()
			return nil
		}, ""
	}
	return nil, ""
}

func uuidText(b []byte) string {
	var out [36]byte
	const hexd = "0123456789abcdef"
	j := 0
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexd[x>>4], hexd[x&15]
		j += 2
	}
	return string(out[:])
}

func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// readParquet reads a Parquet file a row group at a time, a batch of rows at
// a time: a null in a required column rejects the row.
func readParquet(pf *parquet.File, key string, sc *schema, bound []*parquetColumn, row rowFunc, bad badFunc) error {
	cells := make([]cell, len(sc.columns))
	buf := make([]parquet.Row, 256)
	line := int64(0)
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				line++
				for i := range cells {
					cells[i] = cell{}
				}
				var rowErr error
				for _, v := range r {
					b := bound[v.Column()]
					if b == nil || rowErr != nil {
						continue
					}
					c := &cells[b.col]
					if b.list {
						if def := v.DefinitionLevel(); def < b.maxDef {
							if def >= b.itemDef { // below it: an empty or null list
								rowErr = fmt.Errorf("column %s: a list item is null", sc.columns[b.col].Name)
							}
							continue
						}
						var item cell
						if err := b.convert(v, &item); err != nil {
							rowErr = fmt.Errorf("column %s: %v", sc.columns[b.col].Name, err)
							continue
						}
						c.ok, c.list = true, append(c.list, item.s)
						continue
					}
					if v.IsNull() {
						continue
					}
					c.ok = true
					if err := b.convert(v, c); err != nil {
						rowErr = fmt.Errorf("column %s: %v", sc.columns[b.col].Name, err)
					}
				}
				if rowErr == nil {
					for i, c := range sc.columns {
						if !cells[i].ok && !c.Optional {
							rowErr = fmt.Errorf("column %s: null, but required (%s)", c.Name, c.kind)
							break
						}
					}
				}
				if rowErr != nil {
					bad(line, rowErr.Error(), sc.cellsRow(cells))
					continue
				}
				if err := row(line, cells); err != nil {
					rows.Close()
					return err
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				rows.Close()
				return source.Permanent(fmt.Errorf("files: %s: %v", key, err))
			}
		}
		if err := rows.Close(); err != nil {
			return source.Permanent(fmt.Errorf("files: %s: %v", key, err))
		}
	}
	return nil
}

// lineLimit fails a read once a line grows past max bytes (a 2 GB line must not
// take 2 GB of memory).
type lineLimit struct {
	r    *bufio.Reader
	max  int
	run  int
	file string
}

func (l *lineLimit) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	b := p[:n]
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			l.run += len(b)
			break
		}
		b, l.run = b[i+1:], 0
	}
	if l.run > l.max {
		return 0, source.Permanent(fmt.Errorf("files: %s: a line longer than %d MiB", l.file, l.max>>20))
	}
	return n, err
}
