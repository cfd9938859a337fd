package console

import (
	"fmt"
	"html/template"
	"math"
	"sort"
	"strings"
)

// TopologyGraph draws the edges as a directed graph: the workloads on a
// circle in name order (so a namespace's workloads sit together), an arrow
// per edge, new edges thick and red.
func TopologyGraph(edges []Edge) template.HTML {
	seen := map[string]bool{}
	newNode := map[string]bool{}
	var nodes []string
	for _, e := range edges {
		for _, n := range []string{e.From, e.To} {
			if !seen[n] {
				seen[n] = true
				nodes = append(nodes, n)
			}
		}
		if e.New {
			newNode[e.To] = true
		}
	}
	sort.Strings(nodes)
	const w, h = 900, 520
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart topo" viewBox="0 0 %d %d" width="100%%" role="img" aria-label="Service graph: %d workloads, %d edges">`, w, h, len(nodes), len(edges))
	fmt.Fprintf(&b, `<title>Service graph: %d workloads, %d edges</title>`, len(nodes), len(edges))
	b.WriteString(`<defs><marker id="arr" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path class="arrow" d="M0 0L10 5L0 10z"/></marker>` +
		`<marker id="arrnew" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path class="arrow new" d="M0 0L10 5L0 10z"/></marker></defs>`)
	if len(nodes) == 0 {
		fmt.Fprintf(&b, `<text class="nlabel" x="%d" y="%d" text-anchor="middle">no edges</text></svg>`, w/2, h/2)
		return template.HTML(b.String()) //nolint:gosec // G203: numbers and escaped text only
	}
	pos := map[string][2]float64{}
	cx, cy, r := float64(w)/2, float64(h)/2, math.Min(float64(w), float64(h))/2-70
	for i, n := range nodes {
		a := 2*math.Pi*float64(i)/float64(len(nodes)) - math.Pi/2
		pos[n] = [2]float64{cx + r*math.Cos(a), cy + r*math.Sin(a)}
	}
	const nodeR = 9.0
	// Old edges first, so that new ones are drawn on top.
	for _, pass := range []bool{false, true} {
		for _, e := range edges {
			if e.New != pass {
				continue
			}
			p, q := pos[e.From], pos[e.To]
			dx, dy := q[0]-p[0], q[1]-p[1]
			d := math.Hypot(dx, dy)
			if d == 0 {
				continue
			}
			x1, y1 := p[0]+dx/d*nodeR, p[1]+dy/d*nodeR
			x2, y2 := q[0]-dx/d*(nodeR+2), q[1]-dy/d*(nodeR+2)
			cls, marker := "edge", "arr"
			if e.New {
				cls, marker = "edge new", "arrnew"
			}
			fmt.Fprintf(&b, `<path class="%s" d="M%.1f %.1f L%.1f %.1f" marker-end="url(#%s)"><title>%s → %s, %s req/s%s</title></path>`,
				cls, x1, y1, x2, y2, marker, esc(e.From), esc(e.To), esc(e.Rate), map[bool]string{true: ", new", false: ""}[e.New])
		}
	}
	for _, n := range nodes {
		p := pos[n]
		cls := "node"
		if newNode[n] {
			cls = "node new"
		}
		anchor := "start"
		dx := 14.0
		if p[0] < cx-1 {
			anchor, dx = "end", -14
		}
		fmt.Fprintf(&b, `<circle class="%s" cx="%.1f" cy="%.1f" r="%.0f"/><text class="nlabel" x="%.1f" y="%.1f" text-anchor="%s">%s</text>`,
			cls, p[0], p[1], nodeR, p[0]+dx, p[1]+4, anchor, esc(n))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // G203: numbers and escaped text only
}
