package report

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// csvWriter writes RFC 4180 CSV with the quoting rules of encoding/csv (with
// UseCRLF), without a []string per record: numbers are formatted into a reused
// buffer, so a report row allocates nothing and memory stays flat (SPEC §10).
type csvWriter struct {
	w       *bufio.Writer
	scratch []byte
	err     error
}

func newCSVWriter(w io.Writer) *csvWriter {
	return &csvWriter{w: bufio.NewWriterSize(w, 64*1024), scratch: make([]byte, 0, 64)}
}

// needsQuotes is encoding/csv's rule: a comma, quote, CR or LF anywhere, or a
// leading space, or the field `\.`.
func needsQuotes(s string) bool {
	if s == "" {
		return false
	}
	if s == `\.` || strings.ContainsAny(s, "\",\r\n") {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsSpace(r)
}

func (c *csvWriter) text(i int, s string) {
	if i > 0 {
		c.w.WriteByte(',')
	}
	if !needsQuotes(s) {
		c.w.WriteString(s)
		return
	}
	c.w.WriteByte('"')
	for len(s) > 0 {
		j := strings.IndexAny(s, "\"\r\n")
		if j < 0 {
			c.w.WriteString(s)
			break
		}
		c.w.WriteString(s[:j])
		switch s[j] {
		case '"':
			c.w.WriteString(`""`)
		case '\n':
			c.w.WriteString("\r\n") // like encoding/csv with UseCRLF (S made every break an LF)
		}
		s = s[j+1:]
	}
	c.w.WriteByte('"')
}

func (c *csvWriter) value(i int, v Value) {
	if v.null {
		if i > 0 {
			c.w.WriteByte(',')
		}
		return
	}
	switch v.kind {
	case Int:
		c.scratch = strconv.AppendInt(c.scratch[:0], v.i, 10)
	case Float:
		c.scratch = strconv.AppendFloat(c.scratch[:0], v.f, 'f', -1, 64)
	case Percent:
		c.scratch = strconv.AppendFloat(c.scratch[:0], v.f, 'f', 1, 64)
	case PercentList:
		c.scratch = appendList(c.scratch[:0], v.l)
	case Bool:
		c.scratch = strconv.AppendBool(c.scratch[:0], v.b)
	default:
		c.text(i, SafeText(v.s))
		return
	}
	if i > 0 {
		c.w.WriteByte(',')
	}
	c.w.Write(c.scratch)
}

func (c *csvWriter) endRecord() error {
	_, err := c.w.WriteString("\r\n")
	return err
}

func (c *csvWriter) flush() error { return c.w.Flush() }
