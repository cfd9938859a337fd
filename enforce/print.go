package enforce

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// format prints e exactly as e.String() does, into one buffer. The stock
// printer allocates a 1 KiB buffer per aggregation and selector and copies
// the whole left side again at every binary operator, which made printing
// three quarters of a 20-selector rewrite. Every node whose printing is not
// reproduced here falls back to its own String(); TestFormatMatchesStock
// and the fuzz targets check that both printers agree.
func format(e parser.Expr) string {
	var b strings.Builder
	b.Grow(256)
	writeExpr(&b, e)
	return b.String()
}

func writeExpr(b *strings.Builder, e parser.Expr) {
	switch n := e.(type) {
	case *parser.BinaryExpr:
		if n.VectorMatching != nil && (n.VectorMatching.FillValues.LHS != nil || n.VectorMatching.FillValues.RHS != nil) {
			b.WriteString(n.String())
			return
		}
		writeExpr(b, n.LHS)
		b.WriteByte(' ')
		b.WriteString(n.ShortString())
		b.WriteByte(' ')
		writeExpr(b, n.RHS)
	case *parser.AggregateExpr:
		b.WriteString(n.Op.String())
		switch {
		case n.Without:
			b.WriteString(" without (")
			writeLabels(b, n.Grouping)
			b.WriteString(") ")
		case len(n.Grouping) > 0:
			b.WriteString(" by (")
			writeLabels(b, n.Grouping)
			b.WriteString(") ")
		}
		b.WriteByte('(')
		if n.Op.IsAggregatorWithParam() {
			writeExpr(b, n.Param)
			b.WriteString(", ")
		}
		writeExpr(b, n.Expr)
		b.WriteByte(')')
	case *parser.Call:
		b.WriteString(n.Func.Name)
		b.WriteByte('(')
		for i, a := range n.Args {
			if i > 0 {
				b.WriteString(", ")
			}
			writeExpr(b, a)
		}
		b.WriteByte(')')
	case *parser.ParenExpr:
		b.WriteByte('(')
		writeExpr(b, n.Expr)
		b.WriteByte(')')
	case *parser.UnaryExpr:
		b.WriteString(n.ShortString())
		writeExpr(b, n.Expr)
	case *parser.SubqueryExpr:
		writeExpr(b, n.Expr)
		b.WriteString(n.ShortString())
	case *parser.MatrixSelector:
		vs, ok := n.VectorSelector.(*parser.VectorSelector)
		if !ok || vs.Anchored || vs.Smoothed || n.RangeExpr != nil || vs.OriginalOffsetExpr != nil {
			b.WriteString(n.String())
			return
		}
		writeSelector(b, vs)
		b.WriteByte('[')
		writeDuration(b, n.Range)
		b.WriteByte(']')
		writeAtOffset(b, vs)
	case *parser.VectorSelector:
		if n.OriginalOffsetExpr != nil {
			b.WriteString(n.String())
			return
		}
		if n.Anchored || n.Smoothed {
			b.WriteString(n.String())
			return
		}
		writeSelector(b, n)
		writeAtOffset(b, n)
	default:
		b.WriteString(e.String())
	}
}

// writeAtOffset writes a selector's @ and offset modifiers.
func writeAtOffset(b *strings.Builder, n *parser.VectorSelector) {
	switch {
	case n.Timestamp != nil:
		b.WriteString(" @ ")
		b.WriteString(strconv.FormatFloat(float64(*n.Timestamp)/1000.0, 'f', 3, 64))
	case n.StartOrEnd == parser.START:
		b.WriteString(" @ start()")
	case n.StartOrEnd == parser.END:
		b.WriteString(" @ end()")
	}
	switch {
	case n.OriginalOffset > 0:
		b.WriteString(" offset ")
		writeDuration(b, n.OriginalOffset)
	case n.OriginalOffset < 0:
		b.WriteString(" offset -")
		writeDuration(b, -n.OriginalOffset)
	}
}

// durationUnits are model.Duration's units, largest first; years and weeks
// are used only when they divide the duration exactly.
var durationUnits = []struct {
	unit  string
	ms    int64
	exact bool
}{
	{"y", 1000 * 60 * 60 * 24 * 365, true},
	{"w", 1000 * 60 * 60 * 24 * 7, true},
	{"d", 1000 * 60 * 60 * 24, false},
	{"h", 1000 * 60 * 60, false},
	{"m", 1000 * 60, false},
	{"s", 1000, false},
	{"ms", 1, false},
}

// writeDuration writes d as model.Duration(d).String does, without its
// fmt.Sprintf per unit.
func writeDuration(b *strings.Builder, d time.Duration) {
	ms := int64(d / time.Millisecond)
	if ms == 0 {
		b.WriteString("0s")
		return
	}
	if ms < 0 {
		b.WriteByte('-')
		ms = -ms
	}
	var num [20]byte
	for _, u := range durationUnits {
		if u.exact && ms%u.ms != 0 {
			continue
		}
		if v := ms / u.ms; v > 0 {
			b.Write(strconv.AppendInt(num[:0], v, 10))
			b.WriteString(u.unit)
			ms -= v * u.ms
		}
	}
}

// writeLabels writes grouping labels, quoting those outside the classic
// alphabet, as the stock printer does.
func writeLabels(b *strings.Builder, ss []string) {
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		if model.LegacyValidation.IsValidLabelName(s) {
			b.WriteString(s)
		} else {
			b.WriteString(strconv.Quote(s))
		}
	}
}

// writeSelector writes a selector's name and matchers, without modifiers,
// as VectorSelector.String does: the __name__ equality that repeats the name
// is left out, and the others are sorted by their printed form. Matchers are
// printed into one scratch buffer (appendMatcher) rather than one string
// each, and sorted as byte ranges of it.
func writeSelector(b *strings.Builder, n *parser.VectorSelector) {
	b.WriteString(n.Name)
	var scratch [512]byte
	var spanArr [16]span
	buf, spans := scratch[:0], spanArr[:0]
	for _, m := range n.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual && m.Value == n.Name && m.Value != "" {
			continue
		}
		start := len(buf)
		buf = appendMatcher(buf, m)
		spans = append(spans, span{start, len(buf)})
	}
	if len(spans) == 0 {
		return
	}
	slices.SortFunc(spans, func(x, y span) int { return bytes.Compare(buf[x.from:x.to], buf[y.from:y.to]) })
	b.WriteByte('{')
	for i, sp := range spans {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(buf[sp.from:sp.to])
	}
	b.WriteByte('}')
}

// span is a byte range of a scratch buffer.
type span struct{ from, to int }

// appendMatcher appends m as labels.Matcher.String prints it: the name,
// quoted unless it is a classic label name, the operator and the quoted
// value.
func appendMatcher(buf []byte, m *labels.Matcher) []byte {
	if quoteMatcherName(m.Name) {
		buf = strconv.AppendQuote(buf, m.Name)
	} else {
		buf = append(buf, m.Name...)
	}
	buf = append(buf, m.Type.String()...)
	return strconv.AppendQuote(buf, m.Value)
}

// quoteMatcherName is labels.Matcher's rule for quoting a name.
func quoteMatcherName(name string) bool {
	for i, c := range name {
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return true
	}
	return name == ""
}
