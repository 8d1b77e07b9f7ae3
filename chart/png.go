package chart

import (
	"bytes"
	"fmt"
	"image/color"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Charts in email are set in a sans-serif, as the email's body is
// (gonum/plot's default is a serif).
func init() {
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
	plotter.DefaultFont = plot.DefaultFont
}

// EmailWidth and EmailHeight are the size (CSS pixels) an email shows the PNG
// at: within the 600 px a mail client gives a message.
const EmailWidth, EmailHeight = 600, 300

// PNG draws the chart with gonum/plot for an email's inline image, at twice
// EmailWidth×EmailHeight pixels (sharp on high-density screens): the same
// title, axes, series, gaps, colours and dashes as the SVG.
func (c *Chart) PNG() ([]byte, error) {
	p := plot.New()
	p.Title.Text = c.Title
	p.X.Label.Text = c.XLabel
	p.Y.Label.Text = c.YLabel
	p.Legend.Top = true
	p.Y.Min = 0
	if lo, hi := c.bounds(); c.Percent || hi > lo {
		p.Y.Min, p.Y.Max = lo, hi
	}
	p.X.Min, p.X.Max = -0.5, float64(len(c.Labels))-0.5
	p.NominalX(c.Labels...)
	p.Add(plotter.NewGrid())
	for si, s := range c.Series {
		colour, err := hexColour(c.colour(si))
		if err != nil {
			return nil, err
		}
		var all plotter.XYs
		var segment plotter.XYs
		legend := false
		flush := func() error {
			if len(segment) == 0 || c.Bars {
				segment = nil
				return nil
			}
			l, err := plotter.NewLine(segment)
			if err != nil {
				return err
			}
			l.Color, l.Width = colour, vg.Points(2)
			if s.Dashed {
				l.Dashes = []vg.Length{vg.Points(dash[0]), vg.Points(dash[1])}
			}
			p.Add(l)
			if !legend && s.Name != "" && len(c.Series) > 1 {
				p.Legend.Add(s.Name, l)
				legend = true
			}
			segment = nil
			return nil
		}
		for i, v := range s.Values {
			if v == nil || i >= len(c.Labels) {
				if err := flush(); err != nil { // a gap: the line stops
					return nil, err
				}
				continue
			}
			segment = append(segment, plotter.XY{X: float64(i), Y: *v})
			all = append(all, plotter.XY{X: float64(i), Y: *v})
		}
		if err := flush(); err != nil {
			return nil, err
		}
		if len(all) == 0 {
			continue
		}
		if c.Bars {
			vals := make(plotter.Values, len(c.Labels))
			for _, xy := range all {
				vals[int(xy.X)] = xy.Y
			}
			bars, err := plotter.NewBarChart(vals, vg.Points(30))
			if err != nil {
				return nil, err
			}
			bars.Color, bars.LineStyle.Width = colour, 0
			p.Add(bars)
			continue
		}
		pts, err := plotter.NewScatter(all)
		if err != nil {
			return nil, err
		}
		pts.GlyphStyle = draw.GlyphStyle{Color: colour, Radius: vg.Points(3), Shape: draw.CircleGlyph{}}
		if s.Dashed {
			pts.GlyphStyle.Shape = draw.RingGlyph{}
		}
		p.Add(pts)
	}
	// A point is 1/72 inch: at 144 dpi, EmailWidth points are 2×EmailWidth pixels.
	cnv := vgimg.NewWith(vgimg.UseWH(vg.Points(EmailWidth), vg.Points(EmailHeight)), vgimg.UseDPI(144))
	p.Draw(draw.New(cnv))
	var b bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: cnv}).WriteTo(&b); err != nil {
		return nil, fmt.Errorf("chart %s: %w", c.Title, err)
	}
	return b.Bytes(), nil
}

func hexColour(h string) (color.RGBA, error) {
	v, err := strconv.ParseUint(h[1:], 16, 32)
	if err != nil || len(h) != 7 {
		return color.RGBA{}, fmt.Errorf("chart: bad colour %q", h)
	}
	return color.RGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 255}, nil
}
