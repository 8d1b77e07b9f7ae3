package chart

import (
	"bytes"
	"fmt"
	"image/color"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// PNG draws the chart with gonum/plot at 640×300 points, for an email's
// inline image: the same title, axes, series, gaps and colours as the SVG.
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
		colour, err := hexColour(Palette[si%len(Palette)])
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
		p.Add(pts)
	}
	w, err := p.WriterTo(vg.Points(width), vg.Points(height), "png")
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", c.Title, err)
	}
	var b bytes.Buffer
	if _, err := w.WriteTo(&b); err != nil {
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
