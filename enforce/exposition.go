package enforce

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// Format is an exposition format the exposition filter reads and writes.
type Format int

const (
	// FormatText is the Prometheus text format (text/plain, version 0.0.4,
	// or 1.0.0 with UTF-8 names).
	FormatText Format = iota + 1
	// FormatOpenMetrics is OpenMetrics 1.0 (application/openmetrics-text,
	// version 0.0.1 or 1.0.0).
	FormatOpenMetrics
)

// String returns the name of the format.
func (f Format) String() string {
	switch f {
	case FormatText:
		return "text"
	case FormatOpenMetrics:
		return "openmetrics"
	default:
		return "Format(" + strconv.Itoa(int(f)) + ")"
	}
}

// ParseFormat returns the format of an exposition from its Content-Type.
// Protocol buffers, OpenMetrics 2.0 and anything else are refused: the
// filter cannot read them.
func ParseFormat(contentType string) (Format, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, fmt.Errorf("content type %q does not parse", contentType)
	}
	switch mt {
	case "text/plain":
		return FormatText, nil
	case "application/openmetrics-text":
		switch params["version"] {
		case "", "0.0.1", "1.0.0":
			return FormatOpenMetrics, nil
		}
		return 0, fmt.Errorf("OpenMetrics version %q cannot be filtered; only 1.0", params["version"])
	}
	return 0, fmt.Errorf("content type %q cannot be filtered; only the text format and OpenMetrics 1.0", mt)
}

// ExpositionStats counts what FilterExposition read and kept.
type ExpositionStats struct {
	// Samples is the number of samples read; Kept is how many of them were
	// written.
	Samples, Kept int
}

// FilterExposition reads one whole exposition in format f from r, keeps
// the samples whose labels satisfy the policy, each family's HELP, TYPE and
// UNIT before its first kept sample, and the exemplars of kept samples, and
// writes them to w in the same format. The caller bounds r.
//
// A sample is kept when every enforced label is present with an allowed
// value and every decision matcher accepts its labels, with __name__ the
// sample's own name (foo_bucket, foo_count) and a missing label read as "".
// The series of one histogram or summary share their labels apart from le
// and quantile, so enforced labels keep or drop them together; a decision
// matcher on __name__, le or quantile judges each series alone, as it does
// in a query. Families without a kept sample lose their metadata too, and
// comments are dropped.
//
// Nothing is written unless the whole input parses: the output is built in
// memory and written to w with one Write. An input that does not parse is
// an error wrapping ErrUpstream. The output is printed from the parsed
// values, never copied from the input, so that a line the parser reads one
// way cannot be read another way by the client: label values and help
// texts are escaped again, floats are printed in their shortest exact form,
// and OpenMetrics timestamps are printed so that Prometheus reads back the
// same millisecond (sec.mmm5). An unrestricted Enforcer keeps every sample.
func (en *Enforcer) FilterExposition(w io.Writer, r io.Reader, f Format) (ExpositionStats, error) {
	var st ExpositionStats
	in, err := io.ReadAll(r)
	if err != nil {
		return st, fmt.Errorf("read exposition: %w", err)
	}
	syms := labels.NewSymbolTable()
	var p textparse.Parser
	switch f {
	case FormatText:
		p = textparse.NewPromParser(in, syms, false)
	case FormatOpenMetrics:
		p = textparse.NewOpenMetricsParser(in, syms)
	default:
		return st, fmt.Errorf("%w: unknown exposition format %v", ErrUpstream, f)
	}
	out := bytes.NewBuffer(make([]byte, 0, len(in)/2+64))
	fw := expositionWriter{out: out, om: f == FormatOpenMetrics}
	var (
		pending []byte // metadata lines of family, not yet written
		family  string // the family the pending metadata belongs to
		ls      labels.Labels
		ex      exemplar.Exemplar
	)
	// enterFamily returns the family a metadata line names, and drops the
	// pending metadata of the previous family when it changes.
	enterFamily := func(name []byte) string {
		n := metaName(name)
		if n != family {
			pending, family = pending[:0], n
		}
		return n
	}
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("%w: exposition: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies this error; the cause is kept as text so that it cannot reclassify it
		}
		switch entry {
		case textparse.EntryHelp:
			name, text := p.Help()
			n := enterFamily(name)
			pending = fw.help(pending, n, text)
		case textparse.EntryType:
			name, typ := p.Type()
			n := enterFamily(name)
			pending = fw.typ(pending, n, typ)
		case textparse.EntryUnit:
			name, unit := p.Unit()
			n := enterFamily(name)
			pending = fw.unit(pending, n, unit)
		case textparse.EntryComment:
			// Dropped: a comment may describe what the caller may not see.
		case textparse.EntrySeries:
			st.Samples++
			_, ts, v := p.Series()
			p.Labels(&ls)
			if dup, ok := ls.HasDuplicateLabelNames(); ok {
				// Which of the two values would the filter check? Neither
				// is safe to pass, and Prometheus fails such a scrape too.
				return st, fmt.Errorf("%w: exposition: a sample has the label %q twice", ErrUpstream, truncateName(dup))
			}
			name := ls.Get(model.MetricNameLabel)
			if family != "" && !inFamily(name, family) {
				// A sample of another family: the pending metadata
				// belonged to a family without kept samples.
				pending, family = pending[:0], ""
			}
			if !en.sampleAllowed(ls) {
				continue
			}
			st.Kept++
			if len(pending) > 0 {
				out.Write(pending)
				pending = pending[:0]
			}
			fw.sample(ls, v, ts)
			if fw.om {
				for ex = (exemplar.Exemplar{}); p.Exemplar(&ex); ex = (exemplar.Exemplar{}) {
					fw.exemplar(&ex)
				}
			}
			out.WriteByte('\n')
		case textparse.EntryHistogram:
			return st, fmt.Errorf("%w: exposition: native histograms cannot be filtered", ErrUpstream)
		default:
			return st, fmt.Errorf("%w: exposition: unexpected entry %d", ErrUpstream, entry)
		}
	}
	if fw.om {
		out.WriteString("# EOF\n")
	}
	if _, err := w.Write(out.Bytes()); err != nil {
		return st, fmt.Errorf("write filtered exposition: %w", err)
	}
	return st, nil
}

// sampleAllowed reports whether the caller may see a sample with labels ls
// (__name__ included): every enforced label is present with an allowed
// value, and every decision matcher holds, a missing label being "".
func (en *Enforcer) sampleAllowed(ls labels.Labels) bool {
	for i := range en.labels {
		l := &en.labels[i]
		if !l.allows(ls.Get(l.name)) {
			return false
		}
	}
	for _, m := range en.extra {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// familySuffixes are the sample name suffixes of a family's series in the
// text format and OpenMetrics.
var familySuffixes = []string{"_bucket", "_sum", "_count", "_total", "_created", "_info", "_gcount", "_gsum"}

// inFamily reports whether a sample named name belongs to family.
func inFamily(name, family string) bool {
	rest, ok := strings.CutPrefix(name, family)
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	for _, s := range familySuffixes {
		if rest == s {
			return true
		}
	}
	return false
}

// metaNameReplacer undoes the escapes of a quoted metric name in a HELP or
// TYPE line (the parser strips the quotes only).
var metaNameReplacer = strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\n`, "\n")

// metaName returns the metric name of a metadata entry.
func metaName(b []byte) string {
	if bytes.IndexByte(b, '\\') >= 0 {
		return metaNameReplacer.Replace(string(b))
	}
	return string(b)
}

// expositionWriter prints entries in the text format or OpenMetrics.
type expositionWriter struct {
	out *bytes.Buffer
	om  bool
	num []byte
}

// appendName appends a metric name or label name, quoted when it is not a
// legacy name.
func appendName(b []byte, name string) []byte {
	if model.LegacyValidation.IsValidMetricName(name) {
		return append(b, name...)
	}
	return appendQuoted(b, name)
}

// appendQuoted appends s in double quotes, escaped as a label value.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s, true)
	return append(b, '"')
}

// appendEscaped appends s with \ and newline escaped, and " too when quote
// is set (label values, and help texts in OpenMetrics).
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quote:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

// help appends a HELP line. The text format escapes only \ and newline in
// help texts; OpenMetrics escapes " too.
func (fw *expositionWriter) help(b []byte, name string, text []byte) []byte {
	b = append(b, "# HELP "...)
	b = appendName(b, name)
	b = append(b, ' ')
	b = appendEscaped(b, string(text), fw.om)
	return append(b, '\n')
}

func (fw *expositionWriter) typ(b []byte, name string, t model.MetricType) []byte {
	b = append(b, "# TYPE "...)
	b = appendName(b, name)
	b = append(b, ' ')
	switch {
	case t == model.MetricTypeUnknown && !fw.om:
		b = append(b, "untyped"...)
	case t == "":
		b = append(b, "unknown"...)
	default:
		b = append(b, t...)
	}
	return append(b, '\n')
}

func (fw *expositionWriter) unit(b []byte, name string, unit []byte) []byte {
	b = append(b, "# UNIT "...)
	b = appendName(b, name)
	b = append(b, ' ')
	b = append(b, unit...)
	return append(b, '\n')
}

// sample writes the name, labels, value and timestamp of one sample,
// without the line break.
func (fw *expositionWriter) sample(ls labels.Labels, v float64, ts *int64) {
	b := fw.num[:0]
	name := ls.Get(model.MetricNameLabel)
	legacy := model.LegacyValidation.IsValidMetricName(name)
	if legacy {
		b = append(b, name...)
	}
	first := true
	open := func() {
		if first {
			b = append(b, '{')
			first = false
		} else {
			b = append(b, ',')
		}
	}
	if !legacy {
		open()
		b = appendQuoted(b, name)
	}
	ls.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			return
		}
		open()
		if model.LegacyValidation.IsValidLabelName(l.Name) {
			b = append(b, l.Name...)
		} else {
			b = appendQuoted(b, l.Name)
		}
		b = append(b, '=')
		b = appendQuoted(b, l.Value)
	})
	if !first {
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	if ts != nil {
		b = append(b, ' ')
		b = fw.appendTimestamp(b, *ts)
	}
	fw.out.Write(b)
	fw.num = b
}

// exemplar writes " # {labels} value [timestamp]".
func (fw *expositionWriter) exemplar(e *exemplar.Exemplar) {
	b := append(fw.num[:0], " # {"...)
	i := 0
	e.Labels.Range(func(l labels.Label) {
		if i > 0 {
			b = append(b, ',')
		}
		i++
		if model.LegacyValidation.IsValidLabelName(l.Name) {
			b = append(b, l.Name...)
		} else {
			b = appendQuoted(b, l.Name)
		}
		b = append(b, '=')
		b = appendQuoted(b, l.Value)
	})
	b = append(b, "} "...)
	b = appendFloat(b, e.Value)
	if e.HasTs {
		b = append(b, ' ')
		b = fw.appendTimestamp(b, e.Ts)
	}
	fw.out.Write(b)
	fw.num = b
}

// appendFloat appends v as the text format and OpenMetrics write floats.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendTimestamp appends a millisecond timestamp: as an integer in the text
// format, and in OpenMetrics as seconds with a trailing 5 in the fourth
// decimal, because Prometheus reads OpenMetrics timestamps as
// int64(seconds*1000): half a millisecond above (below, for negative
// timestamps) the exact value truncates back to it, where the exact decimal
// may land just below it.
func (fw *expositionWriter) appendTimestamp(b []byte, ms int64) []byte {
	if !fw.om {
		return strconv.AppendInt(b, ms, 10)
	}
	u := uint64(ms) //nolint:gosec // G115: two's complement on purpose: -u below is the magnitude even for math.MinInt64
	if ms < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendUint(b, u/1000, 10)
	frac := u % 1000
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10), '5')
}

// truncateName cuts a label name from the upstream to 64 bytes for an error.
func truncateName(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
