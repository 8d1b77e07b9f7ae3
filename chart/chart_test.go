package chart

import (
	"bytes"
	"encoding/xml"
	"image/png"
	"strings"
	"testing"
)

func trend() *Chart {
	return &Chart{ID: "t", Title: "License assignment", XLabel: "Week", YLabel: "Licenses (%)", Unit: "%", Percent: true,
		Labels: []string{"W1", "W2", "W3", "W4", "W5"},
		Series: []Series{{Name: "Assigned", Values: []*float64{F(40), nil, F(55.5), F(60), F(61)}}, {Name: "Used", Values: []*float64{F(20), F(22), nil, nil, F(35)}}}}
}

// svgDoc parses the SVG as a browser's XML parser would.
type svgDoc struct {
	Role   string   `xml:"role,attr"`
	Title  string   `xml:"title"`
	Desc   string   `xml:"desc"`
	Points string   `xml:"data-points,attr"`
	Texts  []string `xml:"text"`
	Series []struct {
		Paths []struct {
			D string `xml:"d,attr"`
		} `xml:"path"`
		Circles []struct {
			Value string `xml:"data-value,attr"`
		} `xml:"circle"`
	} `xml:"g"`
}

func TestAChartIsAccessibleSVGWithATitleAxisLabelsUnitsAndATextAlternative(t *testing.T) {
	var doc svgDoc
	if err := xml.Unmarshal([]byte(trend().SVG()), &doc); err != nil {
		t.Fatalf("the SVG is not well-formed XML: %v", err)
	}
	if doc.Role != "img" || doc.Title != "License assignment" || !strings.Contains(doc.Desc, "W2 no data") || !strings.Contains(doc.Desc, "W3 55.5%") {
		t.Errorf("role %q, title %q, desc %q", doc.Role, doc.Title, doc.Desc)
	}
	all := strings.Join(doc.Texts, "|")
	for _, want := range []string{"Week", "Licenses (%)", "100", "W5"} {
		if !strings.Contains(all, want) {
			t.Errorf("the chart's text has no %q: %s", want, all)
		}
	}
}

func TestMissingWeeksAreGapsInTheLineNeverZeros(t *testing.T) {
	var doc svgDoc
	xml.Unmarshal([]byte(trend().SVG()), &doc)
	if doc.Points != "7" || len(doc.Series) != 2 {
		t.Fatalf("data-points %q in %d series, want 7 values in 2", doc.Points, len(doc.Series))
	}
	// Assigned: 40, gap, 55.5, 60, 61 → two segments; Used: 20, 22, gap, gap, 35 → two.
	for i, s := range doc.Series {
		if len(s.Paths) != 1 || strings.Count(s.Paths[0].D, "M") != 2 {
			t.Errorf("series %d: path %+v, want one path of two segments (the gap is a break)", i, s.Paths)
		}
	}
	if len(doc.Series[0].Circles) != 4 || len(doc.Series[1].Circles) != 3 {
		t.Errorf("points per series %d, %d; want 4, 3 (none drawn for a missing week)", len(doc.Series[0].Circles), len(doc.Series[1].Circles))
	}
	for _, c := range doc.Series[0].Circles {
		if c.Value == "0" {
			t.Error("a missing week was drawn as 0")
		}
	}
}

func TestTheEmailChartIsAPNGOfTheSameSeries(t *testing.T) {
	b, err := trend().PNG()
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if w := img.Bounds().Dx(); w < 600 {
		t.Errorf("the PNG is %d px wide, want at least 600", w)
	}
	again, _ := trend().PNG()
	if !bytes.Equal(b, again) {
		t.Error("the same chart drew different PNG bytes")
	}
}

func TestFormatShowsWholeNumbersBareAndOthersWithOneDecimal(t *testing.T) {
	for v, want := range map[float64]string{40: "40", 37.5: "37.5", 0.25: "0.2", 1234: "1234"} {
		if got := Format(v); got != want {
			t.Errorf("Format(%v) = %q, want %q", v, got, want)
		}
	}
}
