package files

// A row on its way through the day's sort is bytes: a sort key first (the
// region's rank, customer_id, the entity's key), then the row's columns in a
// canonical encoding. bytes.Compare then orders rows by region, customer and
// key, and rows with the same key by their whole content, so the order never
// depends on the format, file or row order that delivered them.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"

	"tally/model"
)

// cell is one parsed value of a contract column, before it is encoded. s and
// list may alias a reader's buffer: a row's cells are encoded before the
// reader moves on.
type cell struct {
	ok   bool // not null
	s    string
	n    int64 // kInt; kBool 0/1; kTime Unix µs; kDate days since 1970-01-01
	f    float64
	list []string
}

// sortKeys are the columns that order an entity's rows within a customer
// (concatenated, as source.CustomerDay.Sort compares them).
var sortKeys = map[string][]string{
	"customers": nil, "subscriptions": {"subscription_id", "subscriber_id"}, "orders": {"order_id", "license_type"},
	"clusters": {"cluster_id"}, "servers": {"server_id"}, "users": {"user_id"}, "devices": {"device_id"},
	"numbers": {"number"}, "calls": {"leg_id"},
}

// errNUL refuses an id with a NUL byte: NUL ends a key's parts in a record.
var errNUL = errors.New("customer_id or the row's key holds a NUL byte")

// record encodes a row of sc's entity under region rank: the sort key, then
// the row. cells are in sc's column order.
func (sc *schema) record(dst []byte, rank int, cells []cell) ([]byte, error) {
	dst = append(dst, byte(rank))
	cust := ""
	if sc.customer >= 0 {
		cust = cells[sc.customer].s
	}
	if bytes.IndexByte(unsafe.Slice(unsafe.StringData(cust), len(cust)), 0) >= 0 {
		return dst, errNUL
	}
	dst = append(dst, cust...)
	dst = append(dst, 0)
	for _, i := range sc.keys {
		k := cells[i].s
		if bytes.IndexByte(unsafe.Slice(unsafe.StringData(k), len(k)), 0) >= 0 {
			return dst, errNUL
		}
		dst = append(dst, k...)
	}
	dst = append(dst, 0)
	return sc.encodeCols(dst, cells, sc.inKey), nil
}

// decodeRecord sets the struct p points to from a record: customer_id and a
// one-column key from its sort key, the other columns from its row.
func (sc *schema) decodeRecord(rec []byte, p unsafe.Pointer) error {
	all := string(rec) // one allocation: every string of the row is a part of it
	i := strings.IndexByte(all[1:], 0) + 1
	j := strings.IndexByte(all[i+1:], 0) + i + 1
	if i <= 0 || j <= i {
		return errCorrupt
	}
	if err := sc.decodeFrom(all, j+1, p, sc.inKey); err != nil {
		return err
	}
	if sc.customer >= 0 {
		*(*string)(unsafe.Add(p, sc.columns[sc.customer].off)) = all[1:i]
	}
	if len(sc.keys) == 1 {
		*(*string)(unsafe.Add(p, sc.columns[sc.keys[0]].off)) = all[i+1 : j]
	}
	return nil
}

// customerPrefix is what every record of customer id in region rank starts with.
func customerPrefix(dst []byte, rank int, id string) []byte {
	dst = append(dst[:0], byte(rank))
	dst = append(dst, id...)
	return append(dst, 0)
}

// encode appends the canonical encoding of a row's cells.
func (sc *schema) encode(dst []byte, cells []cell) []byte { return sc.encodeCols(dst, cells, nil) }

// encodeCols encodes the cells but those skip marks.
func (sc *schema) encodeCols(dst []byte, cells []cell, skip []bool) []byte {
	return sc.encodeRange(dst, cells, 0, len(sc.columns), skip)
}

// encodeRange encodes the cells of columns from to to-1 but those skip marks:
// a row's encoding is its column ranges' encodings one after another.
func (sc *schema) encodeRange(dst []byte, cells []cell, from, to int, skip []bool) []byte {
	for i := from; i < to; i++ {
		c := sc.columns[i]
		if skip != nil && skip[i] {
			continue
		}
		v := &cells[i]
		if c.ptr {
			if !v.ok {
				dst = append(dst, 0)
				continue
			}
			dst = append(dst, 1)
		}
		switch c.kind {
		case kString:
			dst = binary.AppendUvarint(dst, uint64(len(v.s)))
			dst = append(dst, v.s...)
		case kInt, kTime, kDate:
			dst = binary.AppendVarint(dst, v.n)
		case kBool:
			dst = append(dst, byte(v.n))
		case kFloat:
			dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(v.f))
		case kList:
			if !v.ok {
				dst = append(dst, 0)
				continue
			}
			dst = binary.AppendUvarint(dst, uint64(len(v.list)))
			for _, s := range v.list {
				dst = binary.AppendUvarint(dst, uint64(len(s)))
				dst = append(dst, s...)
			}
		}
	}
	return dst
}

var errCorrupt = errors.New("spill: a corrupt record")

// decode sets the struct p points to (of sc's type) from an encoded row.
func (sc *schema) decode(row []byte, p unsafe.Pointer) error {
	return sc.decodeFrom(string(row), 0, p, nil)
}

// decodeFrom decodes the row that starts at all[pos:], its columns but those
// skip marks. Strings are parts of all: one allocation per row, not per field.
func (sc *schema) decodeFrom(all string, pos int, p unsafe.Pointer, skip []bool) error {
	str := func() (string, bool) {
		n, k := uvarint(all, pos)
		if k <= 0 || uint64(len(all)-pos-k) < n {
			return "", false
		}
		s := all[pos+k : pos+k+int(n)]
		pos += k + int(n)
		return s, true
	}
	for ci, c := range sc.columns {
		if skip != nil && skip[ci] {
			continue
		}
		f := unsafe.Add(p, c.off)
		if c.ptr {
			if pos >= len(all) {
				return errCorrupt
			}
			isSet := all[pos] == 1
			pos++
			if !isSet {
				*(*unsafe.Pointer)(f) = nil
				continue
			}
		}
		switch c.kind {
		case kString:
			s, ok := str()
			if !ok {
				return errCorrupt
			}
			if c.ptr {
				*(**string)(f) = &s
			} else {
				*(*string)(f) = s
			}
		case kInt, kTime, kDate:
			u, k := uvarint(all, pos)
			if k <= 0 {
				return errCorrupt
			}
			pos += k
			n := int64(u >> 1) // zig-zag, as binary.AppendVarint writes
			if u&1 != 0 {
				n = ^n
			}
			switch {
			case c.kind == kDate:
				*(*model.Date)(f) = model.Date(n)
			case c.kind == kTime && c.ptr:
				t := time.UnixMicro(n).UTC()
				*(**time.Time)(f) = &t
			case c.kind == kTime:
				*(*time.Time)(f) = time.UnixMicro(n).UTC()
			case c.ptr:
				*(**int64)(f) = &n
			default:
				*(*int64)(f) = n
			}
		case kBool:
			if pos >= len(all) {
				return errCorrupt
			}
			*(*bool)(f) = all[pos] == 1
			pos++
		case kFloat:
			if len(all)-pos < 8 {
				return errCorrupt
			}
			v := math.Float64frombits(binary.BigEndian.Uint64([]byte(all[pos : pos+8])))
			pos += 8
			if c.ptr {
				*(**float64)(f) = &v
			} else {
				*(*float64)(f) = v
			}
		case kList:
			n, k := uvarint(all, pos)
			if k <= 0 || n > uint64(len(all)-pos) {
				return errCorrupt
			}
			pos += k
			var list []string
			if n > 0 {
				list = make([]string, n)
			}
			for i := range list {
				s, ok := str()
				if !ok {
					return errCorrupt
				}
				list[i] = s
			}
			*(*[]string)(f) = list
		}
	}
	if pos != len(all) {
		return errCorrupt
	}
	return nil
}

// uvarint reads an unsigned varint at s[pos:], as binary.Uvarint does.
func uvarint(s string, pos int) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; pos+i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[pos+i]
		if b < 0x80 {
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

// cellsOf reads the struct p points to (of sc's type) into cells, the inverse
// of decode: how rows that arrive as structs (call-record legs, a roster's
// customers) are encoded.
func (sc *schema) cellsOf(p unsafe.Pointer, cells []cell) {
	for i, c := range sc.columns {
		f := unsafe.Add(p, c.off)
		v := &cells[i]
		*v = cell{ok: true}
		if c.ptr {
			if *(*unsafe.Pointer)(f) == nil {
				v.ok = false
				continue
			}
			f = *(*unsafe.Pointer)(f)
		}
		switch c.kind {
		case kString:
			v.s = *(*string)(f)
		case kInt:
			v.n = *(*int64)(f)
		case kTime:
			v.n = (*time.Time)(f).UnixMicro()
		case kDate:
			v.n = int64(*(*model.Date)(f))
		case kBool:
			if *(*bool)(f) {
				v.n = 1
			}
		case kFloat:
			v.f = *(*float64)(f)
		case kList:
			v.list = *(*[]string)(f)
			v.ok = v.list != nil
		}
	}
}

// cellsRow is a row's cells as JSON values, by column name: how a row that
// parsed but cannot be placed is quarantined.
func (sc *schema) cellsRow(cells []cell) map[string]any {
	m := make(map[string]any, len(sc.columns))
	for i, c := range sc.columns {
		v := cells[i]
		if !v.ok {
			if c.kind == kList {
				m[c.Name] = []string{}
			} else {
				m[c.Name] = nil
			}
			continue
		}
		switch c.kind {
		case kString:
			m[c.Name] = string([]byte(v.s)) // a copy: the cell may alias a reader's buffer
		case kInt:
			m[c.Name] = v.n
		case kTime:
			m[c.Name] = time.UnixMicro(v.n).UTC().Format(time.RFC3339Nano)
		case kDate:
			m[c.Name] = model.Date(v.n).String()
		case kBool:
			m[c.Name] = v.n == 1
		case kFloat:
			m[c.Name] = v.f
		case kList:
			l := make([]string, len(v.list))
			for j, s := range v.list {
				l[j] = string([]byte(s))
			}
			m[c.Name] = l
		}
	}
	return m
}

// decodeAs decodes an encoded row of sc's entity into a T (sc's type).
func decodeAs[T any](sc *schema, row []byte) (T, error) {
	var v T
	if err := sc.decode(row, unsafe.Pointer(&v)); err != nil {
		return v, fmt.Errorf("files: %w", err)
	}
	return v, nil
}
