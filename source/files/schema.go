package files

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"tally/model"
	"tally/pq"
)

// Entities are the landing zone's entity directories, in the contract's order.
var Entities = []string{"partners", "customers", "subscriptions", "orders", "clusters", "servers", "users", "devices", "numbers", "calls"}

// kind is how a column's cells are written and read.
type kind int

const (
	kString kind = iota
	kInt
	kFloat
	kBool
	kTime
	kDate
	kList
)

func (k kind) String() string {
	return [...]string{"string", "integer", "number", "boolean", "timestamp (RFC 3339 or epoch seconds)", "date (YYYY-MM-DD)", "list of strings (a JSON array)"}[k]
}

// Column is one contract column of an entity.
type Column struct {
	Name     string
	Type     string // for people: the kind's name
	Optional bool   // may be missing or empty (null)
	kind     kind
	off      uintptr // the struct field's offset
	ptr      bool    // the field is a pointer (nil: null)
}

// schema is an entity's columns, from its model struct's parquet tags: the
// contract is the code, so the README table generated from it cannot drift.
type schema struct {
	entity   string
	typ      reflect.Type
	columns  []Column
	byName   map[string]int
	customer int    // customer_id's column (-1: partners)
	keys     []int  // sortKeys' columns
	inKey    []bool // the columns a record keeps in its sort key, not its row
	// parquetWriter streams rows of this entity's struct into a Parquet file.
	parquetWriter func(io.Writer) rowWriter
}

// rowWriter writes rows given as pointers to the entity's struct.
type rowWriter interface {
	write(p unsafe.Pointer) error
	close() error
}

var (
	timeType = reflect.TypeOf(time.Time{})
	dateType = reflect.TypeOf(model.Date(0))
)

func schemaOf[T any](entity string) *schema {
	t := reflect.TypeFor[T]()
	s := &schema{entity: entity, typ: t, byName: map[string]int{}, customer: -1,
		parquetWriter: func(w io.Writer) rowWriter { return &parquetRows[T]{w: pq.NewWriter[T](w)} }}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("parquet")
		if tag == "" || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		c := Column{Name: name, off: f.Offset, Optional: strings.Contains(opts, "optional")}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
			c.Optional, c.ptr = true, true
		}
		switch {
		case ft == timeType:
			c.kind = kTime
		case ft == dateType:
			c.kind = kDate
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
			c.kind, c.Optional = kList, true // an absent list is an empty one
		case ft.Kind() == reflect.String:
			c.kind = kString
		case ft.Kind() == reflect.Int64:
			c.kind = kInt
		case ft.Kind() == reflect.Float64:
			c.kind = kFloat
		case ft.Kind() == reflect.Bool:
			c.kind = kBool
		default:
			panic(fmt.Sprintf("files: %s.%s: no cell kind for %s", t.Name(), f.Name, ft))
		}
		c.Type = c.kind.String()
		s.byName[name] = len(s.columns)
		s.columns = append(s.columns, c)
	}
	if i, ok := s.byName["customer_id"]; ok && entity != "partners" {
		s.customer = i
	}
	for _, k := range sortKeys[entity] {
		s.keys = append(s.keys, s.byName[k])
	}
	s.inKey = make([]bool, len(s.columns))
	if s.customer >= 0 {
		s.inKey[s.customer] = true
	}
	if len(s.keys) == 1 {
		s.inKey[s.keys[0]] = true
	}
	return s
}

// parquetRows hands rows to a Parquet writer a batch at a time.
type parquetRows[T any] struct {
	w   *pq.Writer[T]
	buf []T
}

func (p *parquetRows[T]) write(row unsafe.Pointer) error {
	p.buf = append(p.buf, *(*T)(row))
	if len(p.buf) == 256 {
		return p.flush()
	}
	return nil
}

func (p *parquetRows[T]) flush() error {
	err := p.w.Write(p.buf...)
	clear(p.buf)
	p.buf = p.buf[:0]
	return err
}

func (p *parquetRows[T]) close() error {
	if err := p.flush(); err != nil {
		return err
	}
	return p.w.Close()
}

// Schemas are every entity's columns.
var Schemas = map[string]*schema{
	"partners": schemaOf[model.Partner]("partners"), "customers": schemaOf[model.Customer]("customers"),
	"subscriptions": schemaOf[model.Subscription]("subscriptions"), "orders": schemaOf[model.Order]("orders"),
	"clusters": schemaOf[model.Cluster]("clusters"), "servers": schemaOf[model.Server]("servers"),
	"users": schemaOf[model.User]("users"), "devices": schemaOf[model.Device]("devices"),
	"numbers": schemaOf[model.Number]("numbers"), "calls": schemaOf[model.CallLeg]("calls"),
}

// Columns lists an entity's contract columns (for the README and --help).
func Columns(entity string) []Column { return Schemas[entity].columns }

// parseText parses a text cell (CSV, or a JSON string) of column c. An empty
// cell is null, except in a required string column, where it is "".
func (c Column) parseText(s string, v *cell) error {
	*v = cell{}
	if s == "" {
		if c.kind == kString && !c.Optional {
			v.ok = true
			return nil
		}
		if !c.Optional {
			return fmt.Errorf("column %s: empty, but required (%s)", c.Name, c.kind)
		}
		return nil
	}
	v.ok = true
	var err error
	switch c.kind {
	case kString:
		v.s = s
	case kInt:
		if v.n, err = strconv.ParseInt(s, 10, 64); err != nil {
			return fmt.Errorf("column %s: %q is not an integer", c.Name, s)
		}
	case kFloat:
		if v.f, err = strconv.ParseFloat(s, 64); err != nil {
			return fmt.Errorf("column %s: %q is not a number", c.Name, s)
		}
	case kBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("column %s: %q is not true or false", c.Name, s)
		}
		if b {
			v.n = 1
		}
	case kTime:
		if v.n, err = parseTime(s); err != nil {
			return fmt.Errorf("column %s: %v", c.Name, err)
		}
	case kDate:
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return fmt.Errorf("column %s: %q is not a date (YYYY-MM-DD)", c.Name, s)
		}
		v.n = int64(model.DateOf(t))
	case kList:
		var items []any
		if err := json.Unmarshal([]byte(s), &items); err != nil {
			return fmt.Errorf("column %s: %q is not a JSON array", c.Name, s)
		}
		return c.setList(items, v)
	}
	return nil
}

// parseTime reads epoch seconds or an RFC 3339 timestamp as Unix
// microseconds; also the text DuckDB, PostgreSQL and pandas write (a space for
// the T, a zone of +00 or none: without one, the time is UTC).
func parseTime(s string) (int64, error) {
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		return sec * 1_000_000, nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMicro(), nil
		}
	}
	return 0, fmt.Errorf("%q is not an RFC 3339 timestamp or epoch seconds", s)
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"}

// parseJSON parses a JSON value (decoded with UseNumber) of column c: numbers
// must be JSON numbers and booleans JSON booleans (a string where a number
// belongs is an error, never a silent zero); timestamps and dates are strings
// (or epoch seconds); lists are arrays.
func (c Column) parseJSON(x any, v *cell) error {
	if s, ok := x.(string); ok && (c.kind == kString || c.kind == kTime || c.kind == kDate || s == "") {
		return c.parseText(s, v)
	}
	*v = cell{}
	if x == nil {
		if !c.Optional {
			return fmt.Errorf("column %s: null, but required (%s)", c.Name, c.kind)
		}
		return nil
	}
	v.ok = true
	switch c.kind {
	case kInt, kFloat, kTime:
		num, ok := x.(json.Number)
		if !ok {
			return fmt.Errorf("column %s: %v is not %s", c.Name, x, map[kind]string{kInt: "an integer", kFloat: "a number", kTime: "a timestamp"}[c.kind])
		}
		return c.parseText(string(num), v)
	case kBool:
		b, ok := x.(bool)
		if !ok {
			return fmt.Errorf("column %s: %v is not true or false", c.Name, x)
		}
		if b {
			v.n = 1
		}
		return nil
	case kList:
		items, ok := x.([]any)
		if !ok {
			return fmt.Errorf("column %s: %v is not a list", c.Name, x)
		}
		return c.setList(items, v)
	}
	return fmt.Errorf("column %s: %v is not a %s", c.Name, x, c.kind)
}

func (c Column) setList(items []any, v *cell) error {
	v.ok, v.list = true, make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			return fmt.Errorf("column %s: list item %v is not a string", c.Name, it)
		}
		v.list = append(v.list, s)
	}
	return nil
}

// text writes a cell as CSV text ("" for null), the inverse of parseText.
func (c Column) text(v cell) string {
	if !v.ok {
		if c.kind == kList {
			return "[]"
		}
		return ""
	}
	switch c.kind {
	case kString:
		return v.s
	case kInt:
		return strconv.FormatInt(v.n, 10)
	case kFloat:
		return strconv.FormatFloat(v.f, 'g', -1, 64)
	case kBool:
		return strconv.FormatBool(v.n == 1)
	case kTime:
		return time.UnixMicro(v.n).UTC().Format(time.RFC3339Nano)
	case kDate:
		return model.Date(v.n).String()
	case kList:
		b, _ := json.Marshal(v.list)
		return string(b)
	}
	return ""
}

// jsonValue is a cell as a JSON value (nil for null), the inverse of parseJSON.
func (c Column) jsonValue(v cell) any {
	if !v.ok {
		if c.kind == kList {
			return []string{}
		}
		return nil
	}
	switch c.kind {
	case kInt, kFloat:
		return json.Number(c.text(v)) // the same digits as the CSV cell
	case kBool:
		return v.n == 1
	case kList:
		return v.list
	}
	return c.text(v)
}
