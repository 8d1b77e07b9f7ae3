package files

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

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
	index    int
}

// schema is an entity's columns, from its model struct's parquet tags: the
// contract is the code, so the README table generated from it cannot drift.
type schema struct {
	typ     reflect.Type
	columns []Column
	byName  map[string]int
	// readParquet and writeParquet move rows of this entity's struct through
	// Parquet by column name.
	readParquet  func(*parquet.File) ([]reflect.Value, error)
	writeParquet func(io.Writer, []reflect.Value) error
}

var (
	timeType = reflect.TypeOf(time.Time{})
	dateType = reflect.TypeOf(model.Date(0))
)

func schemaOf[T any]() *schema {
	t := reflect.TypeFor[T]()
	s := &schema{typ: t, byName: map[string]int{},
		readParquet: readAs[T],
		writeParquet: func(w io.Writer, rows []reflect.Value) error {
			out := make([]T, len(rows))
			for i, v := range rows {
				out[i] = v.Interface().(T)
			}
			_, err := pq.WriteAll(w, out)
			return err
		}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("parquet")
		if tag == "" || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		c := Column{Name: name, index: i, Optional: strings.Contains(opts, "optional")}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
			c.Optional = true
		}
		switch {
		case ft == timeType:
			c.kind = kTime
		case ft == dateType:
			c.kind = kDate
		case ft.Kind() == reflect.Slice:
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
	return s
}

// Schemas are every entity's columns.
var Schemas = map[string]*schema{
	"partners": schemaOf[model.Partner](), "customers": schemaOf[model.Customer](), "subscriptions": schemaOf[model.Subscription](),
	"orders": schemaOf[model.Order](), "clusters": schemaOf[model.Cluster](), "servers": schemaOf[model.Server](),
	"users": schemaOf[model.User](), "devices": schemaOf[model.Device](), "numbers": schemaOf[model.Number](), "calls": schemaOf[model.CallLeg](),
}

// Columns lists an entity's contract columns (for the README and --help).
func Columns(entity string) []Column { return Schemas[entity].columns }

// set parses one cell into column c of the row v points to. Text cells (CSV)
// arrive as strings; JSON cells as decoded JSON values. An empty text cell or a
// JSON null is null.
func (c Column) set(v reflect.Value, cell any) error {
	f := v.Field(c.index)
	if s, ok := cell.(string); (ok && s == "" && c.kind != kString) || cell == nil || (ok && s == "" && c.Optional) {
		if !c.Optional {
			return fmt.Errorf("column %s: empty, but required (%s)", c.Name, c.kind)
		}
		f.Set(reflect.Zero(f.Type()))
		return nil
	}
	val, err := c.parse(cell)
	if err != nil {
		return fmt.Errorf("column %s: %v", c.Name, err)
	}
	rv := reflect.ValueOf(val)
	if f.Kind() == reflect.Pointer {
		p := reflect.New(f.Type().Elem())
		p.Elem().Set(rv.Convert(f.Type().Elem()))
		f.Set(p)
		return nil
	}
	f.Set(rv.Convert(f.Type()))
	return nil
}

func (c Column) parse(cell any) (any, error) {
	s, isText := cell.(string)
	switch c.kind {
	case kString:
		if !isText {
			return nil, fmt.Errorf("%v is not a string", cell)
		}
		return s, nil
	case kInt:
		if isText {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not an integer", s)
			}
			return n, nil
		}
		num, ok := cell.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%v is not an integer", cell)
		}
		n, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not an integer", num)
		}
		return n, nil
	case kFloat:
		text := s
		if !isText {
			num, ok := cell.(json.Number)
			if !ok {
				return nil, fmt.Errorf("%v is not a number", cell)
			}
			text = string(num)
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", text)
		}
		return f, nil
	case kBool:
		if b, ok := cell.(bool); ok {
			return b, nil
		}
		b, err := strconv.ParseBool(s)
		if err != nil || !isText {
			return nil, fmt.Errorf("%v is not true or false", cell)
		}
		return b, nil
	case kTime:
		text := s
		if num, ok := cell.(json.Number); ok {
			text = string(num)
		} else if !isText {
			return nil, fmt.Errorf("%v is not a timestamp", cell)
		}
		if sec, err := strconv.ParseInt(text, 10, 64); err == nil {
			return time.Unix(sec, 0).UTC(), nil
		}
		t, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			return nil, fmt.Errorf("%q is not an RFC 3339 timestamp or epoch seconds", text)
		}
		return t.UTC().Truncate(time.Microsecond), nil
	case kDate:
		if !isText {
			return nil, fmt.Errorf("%v is not a date", cell)
		}
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a date (YYYY-MM-DD)", s)
		}
		return model.DateOf(t), nil
	case kList:
		var items []any
		if isText {
			if err := json.Unmarshal([]byte(s), &items); err != nil {
				return nil, fmt.Errorf("%q is not a JSON array", s)
			}
		} else if items, _ = cell.([]any); items == nil {
			return nil, fmt.Errorf("%v is not a list", cell)
		}
		out := make([]string, 0, len(items))
		for _, it := range items {
			str, ok := it.(string)
			if !ok {
				return nil, fmt.Errorf("list item %v is not a string", it)
			}
			out = append(out, str)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown kind")
}

// format writes column c of row v as a text cell ("" for null), the inverse of set.
func (c Column) format(v reflect.Value) string {
	f := v.Field(c.index)
	if f.Kind() == reflect.Pointer {
		if f.IsNil() {
			return ""
		}
		f = f.Elem()
	}
	switch c.kind {
	case kString:
		return f.String()
	case kInt:
		return strconv.FormatInt(f.Int(), 10)
	case kFloat:
		return strconv.FormatFloat(f.Float(), 'g', -1, 64)
	case kBool:
		return strconv.FormatBool(f.Bool())
	case kTime:
		return f.Interface().(time.Time).UTC().Format(time.RFC3339Nano)
	case kDate:
		return f.Interface().(model.Date).String()
	case kList:
		b, _ := json.Marshal(f.Interface())
		if string(b) == "null" {
			return "[]"
		}
		return string(b)
	}
	return ""
}

// jsonValue is column c of row v as a JSON value (nil for null).
func (c Column) jsonValue(v reflect.Value) any {
	f := v.Field(c.index)
	if f.Kind() == reflect.Pointer && f.IsNil() {
		return nil
	}
	switch c.kind {
	case kInt, kFloat:
		return json.Number(c.format(v)) // the same digits as the CSV cell
	case kBool:
		return reflect.Indirect(f).Bool()
	case kList:
		if f.IsNil() {
			return []string{}
		}
		return f.Interface()
	}
	return c.format(v)
}
