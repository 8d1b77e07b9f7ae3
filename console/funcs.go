package console

import (
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

var funcs = template.FuncMap{
	"join": strings.Join,
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"whenp": func(t *time.Time) string {
		if t == nil {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"ms": func(ms int64) string { return (time.Duration(ms) * time.Millisecond).Round(time.Millisecond).String() },
	"bytes": func(n int64) string {
		switch {
		case n >= 1<<20:
			return ftoa(float64(n)/(1<<20)) + " MiB"
		case n >= 1<<10:
			return ftoa(float64(n)/(1<<10)) + " KiB"
		}
		return itoa(n) + " B"
	},
	"q":        url.QueryEscape,
	"path":     url.PathEscape,
	"runpath":  runPath,
	"download": download,
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
