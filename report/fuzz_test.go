package report

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"unicode"
)

// Report cells are partner data: names, locations, numbers, anything.
func FuzzCSVRoundTripsThroughEncodingCSVAndNeverLeavesAFormulaUnneutralised(f *testing.F) {
	for _, s := range []string{"plain", "=1+1", " =1+1", "\u200b=1", "\ufeff@SUM(A1)", "a,b", `"q"`, "line\nbreak", "cr\rhere", "\t", "", "Zürich", `\.`, "-5"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		var out bytes.Buffer
		w, err := NewWriter([]Column{{Header: "A"}, {Header: "B"}}, &out, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write([]Value{S(a), S(b)}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&out).ReadAll()
		if err != nil {
			t.Fatalf("encoding/csv cannot read our CSV of %q, %q: %v\n%q", a, b, err, out.String())
		}
		if len(recs) != 2 || len(recs[1]) != 2 {
			t.Fatalf("%q, %q read back as %q", a, b, recs)
		}
		for i, in := range []string{a, b} {
			got, want := recs[1][i], SafeText(S(in).Text())
			// encoding/csv reads a quoted CRLF as LF, and S made every break an LF.
			if got != want && strings.ReplaceAll(want, "\r\n", "\n") != got {
				t.Fatalf("cell %q read back as %q, want %q", in, got, want)
			}
			if formula(got) {
				t.Fatalf("cell %q reads back as %q: a spreadsheet would run it as a formula", in, got)
			}
		}
	})
}

// formula reports whether a spreadsheet would treat the cell as a formula: its
// first character that is not a space, zero-width character or BOM is one of
// =, +, -, @ (or it starts with tab, CR or LF).
func formula(s string) bool {
	if s == "" || s[0] == '\'' {
		return false
	}
	if strings.ContainsRune("\t\r\n", rune(s[0])) {
		return true
	}
	for _, r := range s {
		if strings.ContainsRune("=+-@", r) {
			return true
		}
		if !unicode.IsSpace(r) && !unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return false
}
