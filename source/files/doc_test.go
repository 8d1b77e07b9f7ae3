package files

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's column table from the code")

const begin, end = "<!-- landing-columns:begin (generated: go test ./source/files -run README -update) -->\n", "<!-- landing-columns:end -->"

func TestTheREADMEsLandingZoneColumnsAreTheCodesContract(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the generated landing-zone column table (%q … %q)", begin, end)
	}
	want := ColumnsMarkdown()
	if got := readme[i+len(begin) : j]; got != want {
		if *update {
			os.WriteFile("../../README.md", []byte(readme[:i+len(begin)]+want+readme[j:]), 0o644)
			return
		}
		t.Fatalf("the README's column table differs from the code's contract; run go test ./source/files -run README -update\nwant:\n%s", want)
	}
}
