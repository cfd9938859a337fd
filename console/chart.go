package console

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// Point is one sample of a chart series.
type Point struct {
	T time.Time
	V float64
}

// Series is one line of a chart.
type Series struct {
	Label  string
	Points []Point
}

// Chart is a line chart drawn as inline SVG.
type Chart struct {
	// Title names the chart for assistive technology.
	Title      string
	Series     []Series
	Start, End time.Time
	// Threshold, when set, is drawn as a dashed line.
	Threshold *float64
	Width     int
	Height    int
}

// maxChartSeries bounds the lines drawn; the page's table lists them all.
const maxChartSeries = 12

// SVG draws the chart. Every text in it is escaped; it carries no script and
// no style attribute (the page's style sheet colours it by class).
func (c Chart) SVG() template.HTML {
	w, h := c.Width, c.Height
	if w <= 0 {
		w = 800
	}
	if h <= 0 {
		h = 240
	}
	const left, right, top, bottom = 64, 8, 8, 24
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	lo, hi := math.Inf(1), math.Inf(-1)
	series := c.Series
	if len(series) > maxChartSeries {
		series = series[:maxChartSeries]
	}
	for _, s := range series {
		for _, p := range s.Points {
			if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
				continue
			}
			lo, hi = math.Min(lo, p.V), math.Max(hi, p.V)
		}
	}
	if c.Threshold != nil {
		lo, hi = math.Min(lo, *c.Threshold), math.Max(hi, *c.Threshold)
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0, 1
	}
	if lo > 0 {
		lo = 0
	}
	if hi == lo {
		hi = lo + 1
	}
	hi += (hi - lo) * 0.05
	t0, t1 := c.Start, c.End
	span := t1.Sub(t0).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 { return left + pw*t.Sub(t0).Seconds()/span }
	y := func(v float64) float64 { return top + ph*(1-(v-lo)/(hi-lo)) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" width="100%%" preserveAspectRatio="none" role="img" aria-label="%s">`, w, h, esc(c.Title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.Title))
	// Axes and three value ticks.
	fmt.Fprintf(&b, `<path class="axis" d="M%d %d V%d H%d"/>`, left, top, h-bottom, w-right)
	for i := 0; i <= 2; i++ {
		v := lo + (hi-lo)*float64(i)/2
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`, left-4, y(v)+4, esc(FormatValue(v)))
	}
	layout := "15:04"
	if t1.Sub(t0) > 36*time.Hour {
		layout = "Jan 2"
	}
	for i := 0; i <= 3; i++ {
		t := t0.Add(time.Duration(float64(t1.Sub(t0)) * float64(i) / 3))
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 3:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="%s">%s</text>`, x(t), h-6, anchor, t.UTC().Format(layout))
	}
	if c.Threshold != nil {
		fmt.Fprintf(&b, `<path class="threshold" d="M%d %.1f H%d"><title>threshold %s</title></path>`, left, y(*c.Threshold), w-right, esc(FormatValue(*c.Threshold)))
	}
	for i, s := range series {
		d := path(s.Points, x, y)
		if d == "" {
			continue
		}
		fmt.Fprintf(&b, `<path class="line s%d" d="%s"><title>%s</title></path>`, i%8, d, esc(s.Label))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // G203: built above from numbers and escaped text only
}

// Sparkline draws one small line without axes.
func Sparkline(title string, pts []Point, start, end time.Time) template.HTML {
	const w, h = 160, 32
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		if !math.IsNaN(p.V) && !math.IsInf(p.V, 0) {
			lo, hi = math.Min(lo, p.V), math.Max(hi, p.V)
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0, 1
	}
	if hi == lo {
		lo, hi = lo-1, hi+1
	}
	span := end.Sub(start).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 { return 1 + (w-2)*t.Sub(start).Seconds()/span }
	y := func(v float64) float64 { return 2 + (h-4)*(1-(v-lo)/(hi-lo)) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s"><title>%s</title>`, w, h, w, h, esc(title), esc(title))
	if d := path(pts, x, y); d != "" {
		fmt.Fprintf(&b, `<path class="line s0" d="%s"/>`, d)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // G203: numbers and escaped text only
}

// path is an SVG path through the points; a gap of more than three times
// the median step, or a NaN, breaks the line.
func path(pts []Point, x func(time.Time) float64, y func(float64) float64) string {
	var b strings.Builder
	pen := false
	var prev time.Time
	gap := time.Duration(0)
	if len(pts) > 2 {
		gap = 3 * pts[len(pts)/2].T.Sub(pts[len(pts)/2-1].T)
	}
	for _, p := range pts {
		if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
			pen = false
			continue
		}
		if pen && gap > 0 && p.T.Sub(prev) > gap {
			pen = false
		}
		if pen {
			b.WriteString(" L")
		} else {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteByte('M')
		}
		b.WriteString(strconv.FormatFloat(x(p.T), 'f', 1, 64))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatFloat(y(p.V), 'f', 1, 64))
		pen, prev = true, p.T
	}
	return b.String()
}

// FormatValue prints a sample value briefly: 3 significant digits with an
// SI suffix for large numbers.
func FormatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'g', -1, 64)
	case a >= 1e9:
		return strconv.FormatFloat(v/1e9, 'g', 3, 64) + "G"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func esc(s string) string { return template.HTMLEscapeString(s) }
