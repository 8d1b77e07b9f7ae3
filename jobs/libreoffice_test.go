package jobs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// soffice is LibreOffice's headless converter; missing, the test fails in CI
// (make test installs it) and is skipped elsewhere with how to install it.
func soffice(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("soffice")
	if err != nil {
		msg := "soffice is missing: make test installs it (apt-get install libreoffice-calc-nogui)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// Every template's workbook, opened by a real spreadsheet application the way
// a recipient's is: LibreOffice converts it to CSV, which must hold tally's
// CSV's rows, cell for cell. Two differences are the CSV's on purpose: a cell
// the formula guard prefixed with ' (a phone number like +1…), and booleans,
// which a spreadsheet shows as TRUE/FALSE.
func TestLibreOfficeReadsEveryTemplatesXLSXAsTheSameRowsAsItsCSV(t *testing.T) {
	bin := soffice(t)
	e, keys := everyTemplateXLSX(t)
	if len(keys) == 0 {
		t.Fatal("no XLSX written")
	}
	in, out := t.TempDir(), t.TempDir()
	var args []string
	for i, key := range keys { // one name per file: regions share file names
		b, err := os.ReadFile(filepath.Join(e.dir, key))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(in, fmt.Sprintf("%03d.xlsx", i))
		os.WriteFile(p, b, 0o644)
		args = append(args, p)
	}
	cmd := exec.Command(bin, append([]string{"--headless", "--norestore", "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76", "--outdir", out}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // soffice needs a profile it can write
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("soffice --convert-to csv: %v\n%s", err, b)
	}
	for i, key := range keys {
		got := readCSV(t, filepath.Join(out, fmt.Sprintf("%03d.csv", i)))
		want := readCSV(t, filepath.Join(e.dir, strings.TrimSuffix(key, ".xlsx")+".csv"))
		if len(got) != len(want) {
			t.Errorf("%s: LibreOffice reads %d rows, the CSV has %d", key, len(got), len(want))
			continue
		}
		bad := 0
		for r := range want {
			for c := range want[r] {
				w, g := strings.TrimPrefix(want[r][c], "'"), ""
				if c < len(got[r]) {
					g = got[r][c]
				}
				if w == g || (w == "true" && g == "TRUE") || (w == "false" && g == "FALSE") {
					continue
				}
				if bad++; bad <= 5 {
					t.Errorf("%s row %d column %q: LibreOffice reads %q, the CSV has %q", key, r+1, want[0][c], g, want[r][c])
				}
			}
		}
	}
}
