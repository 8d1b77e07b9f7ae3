// Package chart owns tally's charts: trend lines and bars drawn as accessible
// SVG for the console (server-side, no script, no external font) and as PNG for
// email, where clients do not render SVG. A missing value is a gap, never a zero.
package chart

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Series is one line: a value per label, nil where there is none (a week that
// was not published).
type Series struct {
	Name   string
	Values []*float64
	// Colour is the series' palette index (nil: its position); series that
	// share a subject (a region) share a colour and differ by Dashed.
	Colour *int
	Dashed bool
}

// colour is series si's colour.
func (c *Chart) colour(si int) string {
	if ci := c.Series[si].Colour; ci != nil {
		return Palette[*ci%len(Palette)]
	}
	return Palette[si%len(Palette)]
}

// dash is the SVG and PNG dash pattern of a dashed series (points).
var dash = []float64{6, 4}

// Chart is a titled chart over labelled points (weeks, endpoint types).
type Chart struct {
	ID     string // the element id (unique on a page)
	Title  string
	XLabel string
	YLabel string // the quantity, with its unit: "Assigned licenses (%)"
	Unit   string // appended to values in the text alternative: "%", " s", ""
	Labels []string
	Series []Series
	Bars   bool // bars instead of lines (one series)
	// Percent fixes the y axis at 0–100.
	Percent bool
}

// Points counts the values drawn (gaps excluded).
func (c *Chart) Points() int {
	n := 0
	for _, s := range c.Series {
		for _, v := range s.Values {
			if v != nil {
				n++
			}
		}
	}
	return n
}

// Alt is the chart as text: each series' values by label, "no data" for a gap.
func (c *Chart) Alt() string {
	var b strings.Builder
	b.WriteString(c.Title)
	b.WriteString(". ")
	for i, s := range c.Series {
		if i > 0 {
			b.WriteString(" ")
		}
		if s.Name != "" {
			b.WriteString(s.Name + ": ")
		}
		for j, l := range c.Labels {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(l + " ")
			if j < len(s.Values) && s.Values[j] != nil {
				b.WriteString(c.Value(*s.Values[j]))
			} else {
				b.WriteString("no data")
			}
		}
		b.WriteString(".")
	}
	return b.String()
}

// Value is a point's value with its unit, as the console's tables show it:
// percentages and seconds always with one decimal ("60.0%"), counts as they are.
func (c *Chart) Value(v float64) string {
	if c.Unit == "%" || c.Unit == " s" {
		return strconv.FormatFloat(v, 'f', 1, 64) + c.Unit
	}
	return Format(v) + c.Unit
}

// Format is a value as charts show it: one decimal at most.
func Format(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// Palette is the series colours (colour-blind safe, Okabe–Ito).
var Palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00"}

// bounds is the y range: 0 to a round maximum (0–100 for percentages).
func (c *Chart) bounds() (lo, hi float64) {
	if c.Percent {
		return 0, 100
	}
	for _, s := range c.Series {
		for _, v := range s.Values {
			if v != nil {
				hi = math.Max(hi, *v)
				lo = math.Min(lo, *v)
			}
		}
	}
	if hi == lo {
		hi = lo + 1
	}
	return lo, niceCeil(hi)
}

// niceCeil rounds up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// Geometry of the SVG, in its own units (it scales to its container).
const (
	width, height                      = 640.0, 300.0
	left, right, top, bottom           = 64.0, 16.0, 40.0, 64.0
	plotW, plotH                       = width - left - right, height - top - bottom
	yTicks                             = 4
	fontSize, smallFont, titleFontSize = 13, 11, 15
)

// SVG draws the chart inline: title and desc for assistive technology, axes
// with labels and units, one path per series broken at gaps, a circle (or bar)
// per value with its value in a tooltip title. Presentation attributes only
// (a CSP without inline styles allows them).
func (c *Chart) SVG() template.HTML {
	var b strings.Builder
	lo, hi := c.bounds()
	y := func(v float64) float64 { return top + plotH - (v-lo)/(hi-lo)*plotH }
	n := len(c.Labels)
	step := plotW / float64(max(n, 1))
	x := func(i int) float64 { return left + step*(float64(i)+0.5) }
	esc := template.HTMLEscapeString
	id := esc(c.ID)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" role="img" aria-labelledby="%s-title %s-desc" class="chart" id="%s" data-points="%d" font-family="system-ui, sans-serif">`,
		width, height, id, id, id, c.Points())
	fmt.Fprintf(&b, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, esc(c.Title), id, esc(c.Alt()))
	fmt.Fprintf(&b, `<text x="%g" y="22" font-size="%d" font-weight="600" fill="#1b1b1b">%s</text>`, left, titleFontSize, esc(c.Title))
	// y grid and ticks
	for i := 0; i <= yTicks; i++ {
		v := lo + (hi-lo)*float64(i)/yTicks
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#e3e3e3"/>`, left, left+plotW, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" font-size="%d" text-anchor="end" fill="#555">%s</text>`, left-6, y(v)+4, smallFont, esc(Format(v)))
	}
	fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="#555"/>`, left, left+plotW, top+plotH, top+plotH)
	fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="#555"/>`, left, left, top, top+plotH)
	for i, l := range c.Labels {
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" font-size="%d" text-anchor="middle" fill="#555">%s</text>`, x(i), top+plotH+16, smallFont, esc(l))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="%d" text-anchor="middle" fill="#333">%s</text>`, left+plotW/2, height-26, fontSize, esc(c.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(16 %g) rotate(-90)" font-size="%d" text-anchor="middle" fill="#333">%s</text>`, top+plotH/2, fontSize, esc(c.YLabel))
	for si, s := range c.Series {
		colour := c.colour(si)
		dashes := ""
		if s.Dashed {
			dashes = fmt.Sprintf(` stroke-dasharray="%g %g"`, dash[0], dash[1])
		}
		fmt.Fprintf(&b, `<g class="series" data-series="%s">`, esc(s.Name))
		if c.Bars {
			bw := step * 0.6
			for i, v := range s.Values {
				if v == nil || i >= n {
					continue
				}
				fmt.Fprintf(&b, `<rect class="point" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" data-label="%s" data-value="%s"><title>%s: %s</title></rect>`,
					x(i)-bw/2, y(*v), bw, y(lo)-y(*v), colour, esc(c.Labels[i]), Format(*v), esc(c.Labels[i]), esc(c.Value(*v)))
			}
		} else {
			var path strings.Builder
			pen := false
			for i, v := range s.Values {
				if v == nil || i >= n {
					pen = false // a gap: the line stops, it never drops to zero
					continue
				}
				op := "L"
				if !pen {
					op = "M"
				}
				fmt.Fprintf(&path, "%s%.1f %.1f ", op, x(i), y(*v))
				pen = true
			}
			if path.Len() > 0 {
				fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2.5"%s/>`, strings.TrimSpace(path.String()), colour, dashes)
			}
			for i, v := range s.Values {
				if v == nil || i >= n {
					continue
				}
				fmt.Fprintf(&b, `<circle class="point" cx="%.1f" cy="%.1f" r="4" fill="%s" data-label="%s" data-value="%s"><title>%s%s: %s</title></circle>`,
					x(i), y(*v), colour, esc(c.Labels[i]), Format(*v), seriesPrefix(s.Name), esc(c.Labels[i]), esc(c.Value(*v)))
			}
		}
		b.WriteString(`</g>`)
	}
	if len(c.Series) > 1 { // legend
		lx := left + plotW
		for si := len(c.Series) - 1; si >= 0; si-- {
			name := c.Series[si].Name
			w := float64(len(name))*6.5 + 30
			lx -= w
			dashes := ""
			if c.Series[si].Dashed {
				dashes = fmt.Sprintf(` stroke-dasharray="%g %g"`, dash[0]/2, dash[1]/2)
			}
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="18" y2="18" stroke="%s" stroke-width="3"%s/><text x="%.1f" y="22" font-size="%d" fill="#333">%s</text>`,
				lx, lx+18, c.colour(si), dashes, lx+22, smallFont, esc(name))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func seriesPrefix(name string) string {
	if name == "" {
		return ""
	}
	return template.HTMLEscapeString(name) + ", "
}

// F is a pointer to v, for building series.
func F(v float64) *float64 { return &v }
