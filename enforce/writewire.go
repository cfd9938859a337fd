package enforce

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// The wire path: ConfineWriteWire does what DecodeWrite, ConfineWrite and
// EncodeWrite do together, on the protobuf bytes themselves, so that a
// request is checked and re-encoded without building a prompb.WriteRequest:
// labels are compared where they lie in the decoded body, and a series that
// is kept is written out from its parts. FuzzWrite checks that both paths
// agree.
//
// Field numbers of remote write 1.0 (prompb/remote.proto, types.proto).
const (
	fieldTimeseries = 1 // WriteRequest
	fieldMetadata   = 3 // WriteRequest

	fieldLabels     = 1 // TimeSeries
	fieldSamples    = 2
	fieldExemplars  = 3
	fieldHistograms = 4

	fieldLabelName  = 1 // Label
	fieldLabelValue = 2

	fieldSampleValue = 1 // Sample
	fieldSampleTime  = 2

	fieldMetaType   = 1 // MetricMetadata
	fieldMetaFamily = 2
	fieldMetaHelp   = 4
	fieldMetaUnit   = 5
)

// wireLabel is one label, pointing into the decoded body.
type wireLabel struct{ name, value []byte }

// wireSeries is one series: its labels (a range of the label slab) and the
// encoded sample, exemplar and histogram fields, tag and length included,
// to be copied as they are.
type wireSeries struct {
	// raw is the whole message; canonical says it holds known fields
	// only, every label in the short encoding (parseLabel), so that a
	// series kept as it is can be copied whole.
	raw       []byte
	canonical bool
	// asciiFramed says that the label fields are contiguous and in the
	// short encoding, so that their UTF-8 is checked in one pass over
	// labelSpan: every framing byte is ASCII, and a run of valid UTF-8
	// strings separated by ASCII bytes is valid exactly when each is.
	asciiFramed bool
	labelSpan   []byte
	labels      []wireLabel
	rest        [][]byte
	samples     int
	histograms  int
	exemplars   []prompb.Exemplar // decoded only when present
}

// wireScratch holds the slabs of one call, reused across calls through
// WireBuffers.
type wireScratch struct {
	series []wireSeries
	labels []wireLabel
	rest   [][]byte
	meta   []wireMeta
	inject []wireLabel
}

type wireMeta struct {
	typ                uint64
	family, help, unit []byte
}

// WireBuffers is the reusable memory of ConfineWriteWire. The zero value is
// ready to use; one WireBuffers serves one call at a time.
type WireBuffers struct{ s wireScratch }

func wireError(format string, args ...any) *Error {
	return &Error{Kind: BadData, Msg: "the body is not a remote write request (prometheus.WriteRequest): " + fmt.Sprintf(format, args...)}
}

// ConfineWriteWire checks and confines a decompressed remote write 1.0
// request exactly as ConfineWrite does (the same limits, well-formedness
// rules, modes and statistics), and appends the protobuf encoding of the
// enforced request to out. Fields the protocol does not define are dropped
// from the request, its series, labels and metadata; samples, histograms and
// exemplars are copied as sent once they decode. The result aliases
// nothing of raw. On error nothing of out is meaningful.
func (en *Enforcer) ConfineWriteWire(raw []byte, mode WriteMode, lim WriteLimits, wb *WireBuffers, out []byte) ([]byte, WriteStats, error) {
	if wb == nil {
		wb = &WireBuffers{}
	}
	s := &wb.s
	s.series, s.labels, s.rest, s.meta = s.series[:0], s.labels[:0], s.rest[:0], s.meta[:0]
	var st WriteStats
	// The series and metadata messages, in order.
	var seriesRaw, metaRaw [][]byte
	for b := raw; len(b) > 0; {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return out, st, wireError("%v", protowire.ParseError(n))
		}
		b = b[n:]
		if num == fieldTimeseries || num == fieldMetadata {
			if typ != protowire.BytesType {
				return out, st, wireError("field %d has wire type %d", num, typ)
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return out, st, wireError("%v", protowire.ParseError(n))
			}
			b = b[n:]
			if num == fieldTimeseries {
				seriesRaw = append(seriesRaw, v)
			} else {
				metaRaw = append(metaRaw, v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return out, st, wireError("%v", protowire.ParseError(n))
		}
		b = b[n:]
	}
	st.Series, st.Metadata = len(seriesRaw), len(metaRaw)
	if lim.MaxSeries > 0 && (st.Series > lim.MaxSeries || st.Metadata > lim.MaxSeries) {
		return out, st, &Error{Kind: BadData, Msg: fmt.Sprintf("the request holds %d series and %d metadata entries, above the limit of %d each; send smaller batches (queue_config max_samples_per_send)", st.Series, st.Metadata, lim.MaxSeries)}
	}
	for _, v := range seriesRaw {
		ws, err := s.parseSeries(v)
		if err != nil {
			return out, st, err
		}
		st.Samples += ws.samples
		st.Histograms += ws.histograms
		st.Exemplars += len(ws.exemplars)
		s.series = append(s.series, ws)
	}
	for _, v := range metaRaw {
		m, err := parseMeta(v)
		if err != nil {
			return out, st, err
		}
		s.meta = append(s.meta, m)
	}
	if n := st.Samples + st.Histograms + st.Exemplars; lim.MaxSamples > 0 && n > lim.MaxSamples {
		return out, st, &Error{Kind: BadData, Msg: fmt.Sprintf("the request holds %d samples, histograms and exemplars, above the limit of %d; send smaller batches (queue_config max_samples_per_send)", n, lim.MaxSamples)}
	}
	for i := range s.series {
		ws := &s.series[i]
		if len(ws.labels) == 0 {
			return out, st, &Error{Kind: BadData, Msg: fmt.Sprintf("series %d of the request has no labels", i)}
		}
		if msg := checkWireLabels(ws.labels, lim.MaxLabels, ws.asciiFramed && utf8.Valid(ws.labelSpan)); msg != "" {
			return out, st, &Error{Kind: BadData, Msg: fmt.Sprintf("series %d of the request (%s): %s", i, describeWire(ws.labels), msg)}
		}
		for j := range ws.exemplars {
			e := &ws.exemplars[j]
			if msg := checkLabels(e.Labels, lim.MaxLabels); msg != "" && len(e.Labels) > 0 {
				return out, st, &Error{Kind: BadData, Msg: fmt.Sprintf("exemplar %d of series %d (%s): %s", j, i, describeWire(ws.labels), msg)}
			}
		}
	}
	for i, m := range s.meta {
		if !utf8.Valid(m.family) || !utf8.Valid(m.help) || !utf8.Valid(m.unit) {
			return out, st, &Error{Kind: BadData, Msg: fmt.Sprintf("metadata entry %d of the request is not valid UTF-8", i)}
		}
	}

	unrestricted := en.Unrestricted()
	var families map[string]bool
	if !unrestricted && len(s.meta) > 0 {
		families = make(map[string]bool)
	}
	for i := range s.series {
		ws := &s.series[i]
		labels := ws.labels
		if !unrestricted {
			reason, label, injected := en.confineWire(ws, mode, s)
			if reason != "" {
				if mode == WriteReject {
					return out, st, &Error{Kind: Forbidden, Label: label, Msg: fmt.Sprintf("series %s refused: %s", describeWire(ws.labels), en.describeWireReason(reason, label, ws.labels))}
				}
				switch reason {
				case DropForeign:
					st.Foreign++
				case DropMissing:
					st.Missing++
				default:
					st.Excluded++
				}
				continue
			}
			if injected {
				st.Injected++
				labels = s.inject
			}
			if families != nil {
				name := wireValue(labels, model.MetricNameLabel)
				families[string(name)] = true
				for _, suf := range familySuffixes {
					if f, ok := bytes.CutSuffix(name, []byte(suf)); ok {
						families[string(f)] = true
					}
				}
			}
		}
		if ws.canonical && len(labels) == len(ws.labels) {
			// Kept as received, and nothing in it to drop: copy it whole.
			out = protowire.AppendTag(out, fieldTimeseries, protowire.BytesType)
			out = protowire.AppendBytes(out, ws.raw)
			continue
		}
		out = appendSeries(out, labels, ws.rest)
	}
	for _, m := range s.meta {
		if families != nil && !families[string(m.family)] {
			st.DroppedMetadata++
			continue
		}
		out = appendMeta(out, m)
	}
	return out, st, nil
}

// parseSeries splits one TimeSeries message into its labels and the
// encoded fields to copy, decoding what must be checked.
func (s *wireScratch) parseSeries(b []byte) (wireSeries, error) {
	ws := wireSeries{raw: b, canonical: true, asciiFramed: true}
	lstart, rstart := len(s.labels), len(s.rest)
	// The label run: where it starts in b, and whether it has ended.
	spanStart, spanEnded := -1, false
	whole := b
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return ws, wireError("series: %v", protowire.ParseError(n))
		}
		field := b
		offset := len(whole) - len(b)
		b = b[n:]
		if num != fieldLabels && spanStart >= 0 {
			spanEnded = true
		}
		switch num {
		case fieldLabels, fieldSamples, fieldExemplars, fieldHistograms:
			if typ != protowire.BytesType {
				return ws, wireError("series field %d has wire type %d", num, typ)
			}
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return ws, wireError("series: %v", protowire.ParseError(m))
			}
			b = b[m:]
			field = field[:n+m]
			switch num {
			case fieldLabels:
				l, short, err := parseLabel(v)
				if err != nil {
					return ws, err
				}
				if !short {
					ws.canonical = false
				}
				if !short || n != 1 || m != len(v)+1 || spanEnded {
					ws.asciiFramed = false
				}
				if spanStart < 0 {
					spanStart = offset
				}
				ws.labelSpan = whole[spanStart : offset+n+m]
				s.labels = append(s.labels, l)
			case fieldSamples:
				if err := checkSample(v); err != nil {
					return ws, err
				}
				ws.samples++
				s.rest = append(s.rest, field)
			case fieldExemplars:
				var e prompb.Exemplar
				if err := e.Unmarshal(v); err != nil {
					return ws, wireError("exemplar: %v", err)
				}
				ws.exemplars = append(ws.exemplars, e)
				s.rest = append(s.rest, field)
			case fieldHistograms:
				var h prompb.Histogram
				if err := h.Unmarshal(v); err != nil {
					return ws, wireError("histogram: %v", err)
				}
				ws.histograms++
				s.rest = append(s.rest, field)
			}
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return ws, wireError("series: %v", protowire.ParseError(m))
			}
			b = b[m:]
			ws.canonical = false
		}
	}
	ws.labels = s.labels[lstart:len(s.labels):len(s.labels)]
	ws.rest = s.rest[rstart:len(s.rest):len(s.rest)]
	return ws, nil
}

// parseLabel reads a Label message; a repeated field keeps its last value,
// as the generated decoder does.
// short reports the short encoding: name then value, each shorter than 128
// bytes, and nothing else.
func parseLabel(b []byte) (l wireLabel, short bool, err error) {
	if len(b) >= 4 && b[0] == 0x0a && b[1] < 0x80 {
		n := int(b[1])
		if v := 2 + n; len(b) >= v+2 && b[v] == 0x12 && b[v+1] < 0x80 && len(b) == v+2+int(b[v+1]) {
			return wireLabel{name: b[2:v:v], value: b[v+2:]}, true, nil
		}
	}
	l, err = parseLabelSlow(b)
	return l, false, err
}

func parseLabelSlow(b []byte) (wireLabel, error) {
	var l wireLabel
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return l, wireError("label: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if num == fieldLabelName || num == fieldLabelValue {
			if typ != protowire.BytesType {
				return l, wireError("label field %d has wire type %d", num, typ)
			}
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return l, wireError("label: %v", protowire.ParseError(m))
			}
			b = b[m:]
			if num == fieldLabelName {
				l.name = v
			} else {
				l.value = v
			}
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return l, wireError("label: %v", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return l, nil
}

// checkSample checks that b decodes as a Sample.
func checkSample(b []byte) error {
	// The common encoding first: a value, then a timestamp of at most ten
	// varint bytes, nothing else.
	if len(b) >= 10 && b[0] == 0x09 && b[9] == 0x10 {
		if _, n := protowire.ConsumeVarint(b[10:]); n > 0 && 10+n == len(b) {
			return nil
		}
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return wireError("sample: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == fieldSampleValue && typ != protowire.Fixed64Type, num == fieldSampleTime && typ != protowire.VarintType:
			return wireError("sample field %d has wire type %d", num, typ)
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return wireError("sample: %v", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return nil
}

// parseMeta reads a MetricMetadata message.
func parseMeta(b []byte) (wireMeta, error) {
	var m wireMeta
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, wireError("metadata: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case fieldMetaType:
			if typ != protowire.VarintType {
				return m, wireError("metadata field %d has wire type %d", num, typ)
			}
			v, k := protowire.ConsumeVarint(b)
			if k < 0 {
				return m, wireError("metadata: %v", protowire.ParseError(k))
			}
			// The generated decoder reads the enum as an int32.
			m.typ = uint64(uint32(int32(v))) //nolint:gosec // G115: an enum truncated to int32, as the generated decoder does
			b = b[k:]
		case fieldMetaFamily, fieldMetaHelp, fieldMetaUnit:
			if typ != protowire.BytesType {
				return m, wireError("metadata field %d has wire type %d", num, typ)
			}
			v, k := protowire.ConsumeBytes(b)
			if k < 0 {
				return m, wireError("metadata: %v", protowire.ParseError(k))
			}
			b = b[k:]
			switch num {
			case fieldMetaFamily:
				m.family = v
			case fieldMetaHelp:
				m.help = v
			default:
				m.unit = v
			}
		default:
			k := protowire.ConsumeFieldValue(num, typ, b)
			if k < 0 {
				return m, wireError("metadata: %v", protowire.ParseError(k))
			}
			b = b[k:]
		}
	}
	return m, nil
}

// checkWireLabels is checkLabels on wire labels. utf8Checked says that
// every name and value is known to be valid UTF-8.
func checkWireLabels(ls []wireLabel, maxLabels int, utf8Checked bool) string {
	if maxLabels > 0 && len(ls) > maxLabels {
		return fmt.Sprintf("%d labels, above the limit of %d", len(ls), maxLabels)
	}
	for j := range ls {
		l := &ls[j]
		switch {
		case len(l.name) == 0:
			return "a label has an empty name"
		case !utf8Checked && (!utf8.Valid(l.name) || !utf8.Valid(l.value)):
			return "a label name or value is not valid UTF-8"
		case len(l.value) == 0:
			return fmt.Sprintf("label %s has an empty value; leave the label out instead", quoteName(string(l.name)))
		}
		if j > 0 {
			switch c := bytes.Compare(ls[j-1].name, l.name); {
			case c == 0:
				return fmt.Sprintf("label %s appears twice", quoteName(string(l.name)))
			case c > 0:
				return fmt.Sprintf("labels are not sorted by name (%s after %s)", quoteName(string(l.name)), quoteName(string(ls[j-1].name)))
			}
		}
	}
	return ""
}

// confineWire is confineSeries on a wire series. An injected label set is
// left in s.inject.
func (en *Enforcer) confineWire(ws *wireSeries, mode WriteMode, s *wireScratch) (reason, label string, injected bool) {
	labels := ws.labels
	for i := range en.labels {
		l := &en.labels[i]
		v, ok := wireLookup(labels, l.name)
		switch {
		case !ok && mode == WriteInject && len(l.values) == 1 && len(l.regexes) == 0:
			s.inject = insertWireLabel(s.inject[:0], labels, l.name, l.values[0])
			labels = s.inject
			injected = true
			// The next injection builds from this one.
			s.inject = nil
		case !ok:
			return DropMissing, l.name, false
		case !l.allows(string(v)):
			return DropForeign, l.name, false
		}
		for j := range ws.exemplars {
			if ev, ok := lookupLabel(ws.exemplars[j].Labels, l.name); ok && ev != string(wireValue(labels, l.name)) {
				return DropForeign, l.name, false
			}
		}
	}
	for _, m := range en.extra {
		if !m.Matches(string(wireValue(labels, m.Name))) {
			return DropExcluded, m.Name, false
		}
	}
	if injected {
		s.inject = labels
	}
	return "", "", injected
}

func wireLookup(ls []wireLabel, name string) ([]byte, bool) {
	for i := range ls {
		if string(ls[i].name) == name {
			return ls[i].value, true
		}
	}
	return nil, false
}

func wireValue(ls []wireLabel, name string) []byte {
	v, _ := wireLookup(ls, name)
	return v
}

// insertWireLabel appends ls with name=value in its sorted place to dst.
func insertWireLabel(dst, ls []wireLabel, name, value string) []wireLabel {
	i := 0
	for i < len(ls) && string(ls[i].name) < name {
		i++
	}
	dst = append(dst, ls[:i]...)
	dst = append(dst, wireLabel{name: []byte(name), value: []byte(value)})
	return append(dst, ls[i:]...)
}

func labelSize(l wireLabel) int {
	return protowire.SizeTag(fieldLabelName) + protowire.SizeBytes(len(l.name)) +
		protowire.SizeTag(fieldLabelValue) + protowire.SizeBytes(len(l.value))
}

// appendSeries appends one TimeSeries field: its labels, then its other
// fields as received.
func appendSeries(out []byte, labels []wireLabel, rest [][]byte) []byte {
	size := 0
	for _, l := range labels {
		size += protowire.SizeTag(fieldLabels) + protowire.SizeBytes(labelSize(l))
	}
	for _, r := range rest {
		size += len(r)
	}
	out = protowire.AppendTag(out, fieldTimeseries, protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(size))
	for _, l := range labels {
		out = protowire.AppendTag(out, fieldLabels, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(labelSize(l))) //nolint:gosec // G115: a size is never negative
		out = protowire.AppendTag(out, fieldLabelName, protowire.BytesType)
		out = protowire.AppendBytes(out, l.name)
		out = protowire.AppendTag(out, fieldLabelValue, protowire.BytesType)
		out = protowire.AppendBytes(out, l.value)
	}
	for _, r := range rest {
		out = append(out, r...)
	}
	return out
}

// appendMeta appends one MetricMetadata field with its known fields, the
// empty ones left out as the generated encoder does.
func appendMeta(out []byte, m wireMeta) []byte {
	size := 0
	if m.typ != 0 {
		size += protowire.SizeTag(fieldMetaType) + protowire.SizeVarint(m.typ)
	}
	for _, f := range []struct {
		num protowire.Number
		v   []byte
	}{{fieldMetaFamily, m.family}, {fieldMetaHelp, m.help}, {fieldMetaUnit, m.unit}} {
		if len(f.v) > 0 {
			size += protowire.SizeTag(f.num) + protowire.SizeBytes(len(f.v))
		}
	}
	out = protowire.AppendTag(out, fieldMetadata, protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(size))
	if m.typ != 0 {
		out = protowire.AppendTag(out, fieldMetaType, protowire.VarintType)
		out = protowire.AppendVarint(out, m.typ)
	}
	for _, f := range []struct {
		num protowire.Number
		v   []byte
	}{{fieldMetaFamily, m.family}, {fieldMetaHelp, m.help}, {fieldMetaUnit, m.unit}} {
		if len(f.v) > 0 {
			out = protowire.AppendTag(out, f.num, protowire.BytesType)
			out = protowire.AppendBytes(out, f.v)
		}
	}
	return out
}

// describeWire is describeSeries on wire labels.
func describeWire(ls []wireLabel) string {
	pl := make([]prompb.Label, 0, min(len(ls), 32))
	for _, l := range ls[:min(len(ls), 32)] {
		pl = append(pl, prompb.Label{Name: string(l.name), Value: string(l.value)})
	}
	s := describeSeries(pl)
	if len(ls) > 32 && !strings.HasSuffix(s, "...}") {
		s = strings.TrimSuffix(s, "}") + ",...}"
	}
	return s
}

func (en *Enforcer) describeWireReason(reason, label string, ls []wireLabel) string {
	pl := make([]prompb.Label, 0, len(ls))
	for _, l := range ls {
		pl = append(pl, prompb.Label{Name: string(l.name), Value: string(l.value)})
	}
	return en.describeReason(reason, label, pl)
}

// consumeTag is protowire.ConsumeTag with the one-byte tags of every field
// here read inline.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if c := b[0]; c < 0x80 && c >= 0x08 {
		return protowire.Number(c >> 3), protowire.Type(c & 7), 1
	}
	return protowire.ConsumeTag(b)
}
