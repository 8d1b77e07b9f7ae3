package files

import (
	"fmt"
	"strings"
)

// ColumnsMarkdown is the landing zone's contract as a Markdown table, one row
// per entity: the README shows exactly this (a test keeps them equal).
func ColumnsMarkdown() string {
	var b strings.Builder
	b.WriteString("| entity | columns (type; *optional*) |\n|---|---|\n")
	for _, e := range Entities {
		var cols []string
		for _, c := range Columns(e) {
			s := fmt.Sprintf("`%s` %s", c.Name, short(c.kind))
			if c.Optional {
				s = fmt.Sprintf("*`%s` %s*", c.Name, short(c.kind))
			}
			cols = append(cols, s)
		}
		fmt.Fprintf(&b, "| %s | %s |\n", e, strings.Join(cols, ", "))
	}
	return b.String()
}

func short(k kind) string {
	return [...]string{"string", "int", "number", "bool", "timestamp", "date", "list"}[k]
}
