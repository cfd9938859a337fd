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

// wireLabel is one label: the offsets of its name and value in its
// series' message. Offsets rather than slices keep the scratch free of
// pointers, which the garbage collector would otherwise trace and guard.
type wireLabel struct{ ns, ne, vs, ve uint32 }

func (l wireLabel) name(raw []byte) []byte  { return raw[l.ns:l.ne:l.ne] }
func (l wireLabel) value(raw []byte) []byte { return raw[l.vs:l.ve:l.ve] }

// wireSeries is one series: its message, its labels (a range of the label
// slab) and its exemplars (a range of the exemplar slab, decoded, since
// their labels are checked).
type wireSeries struct {
	raw []byte
	// canonical says that raw holds known fields only and every label in
	// the short encoding (parseLabel), so that a series kept as it is can
	// be copied whole.
	canonical bool
	// asciiFramed says that the label fields are contiguous and in the
	// short encoding, so that their UTF-8 is checked in one pass over
	// raw[spanStart:spanEnd]: every framing byte is ASCII, and a run of
	// valid UTF-8 strings separated by ASCII bytes is valid exactly when
	// each of them is.
	asciiFramed        bool
	spanStart, spanEnd uint32
	labelStart         int32
	labelEnd           int32
	exemplarStart      int32
	exemplarEnd        int32
	samples            int32
	histograms         int32
}

// kv is a label by value, for the rare series that is re-encoded with an
// injected label.
type kv struct{ name, value []byte }

// wireScratch holds the slabs of one call, reused across calls through
// WireBuffers.
type wireScratch struct {
	seriesRaw, metaRaw [][]byte
	series             []wireSeries
	labels             []wireLabel
	exemplars          []prompb.Exemplar
	rest               [][]byte
	meta               []wireMeta
	merged             []kv
}

func (s *wireScratch) labelsOf(ws *wireSeries) []wireLabel {
	return s.labels[ws.labelStart:ws.labelEnd]
}

func (s *wireScratch) exemplarsOf(ws *wireSeries) []prompb.Exemplar {
	return s.exemplars[ws.exemplarStart:ws.exemplarEnd]
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

// maxWireMessage bounds a message the wire path reads, so that offsets fit
// in 32 bits; DecodeSnappy's limit keeps bodies far below it.
const maxWireMessage = 1 << 31

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
	clear(s.seriesRaw)
	clear(s.metaRaw)
	clear(s.exemplars)
	s.seriesRaw, s.metaRaw, s.series, s.labels, s.exemplars, s.meta = s.seriesRaw[:0], s.metaRaw[:0], s.series[:0], s.labels[:0], s.exemplars[:0], s.meta[:0]
	var st WriteStats
	if len(raw) >= maxWireMessage {
		return out, st, wireError("the body is larger than 2 GiB")
	}
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
				s.seriesRaw = append(s.seriesRaw, v)
			} else {
				s.metaRaw = append(s.metaRaw, v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return out, st, wireError("%v", protowire.ParseError(n))
		}
		b = b[n:]
	}
	st.Series, st.Metadata = len(s.seriesRaw), len(s.metaRaw)
	if lim.MaxSeries > 0 && (st.Series > lim.MaxSeries || st.Metadata > lim.MaxSeries) {
		return out, st, &Error{Kind: BadData, Msg: fmt.Sprintf("the request holds %d series and %d metadata entries, above the limit of %d each; send smaller batches (queue_config max_samples_per_send)", st.Series, st.Metadata, lim.MaxSeries)}
	}
	for _, v := range s.seriesRaw {
		ws, err := s.parseSeries(v)
		if err != nil {
			return out, st, err
		}
		st.Samples += int(ws.samples)
		st.Histograms += int(ws.histograms)
		st.Exemplars += int(ws.exemplarEnd - ws.exemplarStart)
		s.series = append(s.series, ws)
	}
	for _, v := range s.metaRaw {
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
		ls := s.labelsOf(ws)
		if len(ls) == 0 {
			return out, st, &Error{Kind: BadData, Msg: fmt.Sprintf("series %d of the request has no labels", i)}
		}
		utf8Checked := ws.asciiFramed && utf8.Valid(ws.raw[ws.spanStart:ws.spanEnd])
		if msg := checkWireLabels(ws.raw, ls, lim.MaxLabels, utf8Checked); msg != "" {
			return out, st, &Error{Kind: BadData, Msg: fmt.Sprintf("series %d of the request (%s): %s", i, describeWire(ws.raw, ls), msg)}
		}
		for j, e := range s.exemplarsOf(ws) {
			if msg := checkLabels(e.Labels, lim.MaxLabels); msg != "" && len(e.Labels) > 0 {
				return out, st, &Error{Kind: BadData, Msg: fmt.Sprintf("exemplar %d of series %d (%s): %s", j, i, describeWire(ws.raw, ls), msg)}
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
		ls := s.labelsOf(ws)
		var injected []kv
		if !unrestricted {
			var reason, label string
			reason, label, injected = en.confineWire(ws, s, mode)
			if reason != "" {
				if mode == WriteReject {
					return out, st, &Error{Kind: Forbidden, Label: label, Msg: fmt.Sprintf("series %s refused: %s", describeWire(ws.raw, ls), en.describeReason(reason, label, toProto(ws.raw, ls)))}
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
			if families != nil {
				name := wireValue(ws.raw, ls, model.MetricNameLabel)
				families[string(name)] = true
				for _, suf := range familySuffixes {
					if f, ok := bytes.CutSuffix(name, []byte(suf)); ok {
						families[string(f)] = true
					}
				}
			}
		}
		switch {
		case len(injected) > 0:
			st.Injected++
			out = s.appendMerged(out, ws, ls, injected)
		case ws.canonical:
			// Kept as received, and nothing in it to drop: copy it whole.
			out = protowire.AppendTag(out, fieldTimeseries, protowire.BytesType)
			out = protowire.AppendBytes(out, ws.raw)
		default:
			out = s.appendMerged(out, ws, ls, nil)
		}
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

// parseSeries reads one TimeSeries message: its labels into the label slab,
// its exemplars (decoded) into the exemplar slab, and its samples and
// histograms counted once they decode.
func (s *wireScratch) parseSeries(b []byte) (wireSeries, error) {
	ws := wireSeries{raw: b, canonical: true, asciiFramed: true, labelStart: int32(len(s.labels)), exemplarStart: int32(len(s.exemplars))} //nolint:gosec // G115: the slabs hold fewer entries than the body has bytes, below 2 GiB
	spanStarted, spanEnded := false, false
	for off := 0; off < len(b); {
		num, typ, n := consumeTag(b[off:])
		if n < 0 {
			return ws, wireError("series: %v", protowire.ParseError(n))
		}
		if num != fieldLabels && spanStarted {
			spanEnded = true
		}
		switch num {
		case fieldLabels, fieldSamples, fieldExemplars, fieldHistograms:
			if typ != protowire.BytesType {
				return ws, wireError("series field %d has wire type %d", num, typ)
			}
			v, m := protowire.ConsumeBytes(b[off+n:])
			if m < 0 {
				return ws, wireError("series: %v", protowire.ParseError(m))
			}
			vStart := off + n + m - len(v)
			switch num {
			case fieldLabels:
				l, short, err := parseLabel(v, uint32(vStart)) //nolint:gosec // G115: below maxWireMessage
				if err != nil {
					return ws, err
				}
				if !short {
					ws.canonical = false
				}
				if !short || n != 1 || m != len(v)+1 || spanEnded {
					ws.asciiFramed = false
				}
				if !spanStarted {
					spanStarted = true
					ws.spanStart = uint32(off) //nolint:gosec // G115: below maxWireMessage
				}
				ws.spanEnd = uint32(off + n + m) //nolint:gosec // G115: below maxWireMessage
				s.labels = append(s.labels, l)
			case fieldSamples:
				if err := checkSample(v); err != nil {
					return ws, err
				}
				ws.samples++
			case fieldExemplars:
				var e prompb.Exemplar
				if err := e.Unmarshal(v); err != nil {
					return ws, wireError("exemplar: %v", err)
				}
				s.exemplars = append(s.exemplars, e)
			case fieldHistograms:
				var h prompb.Histogram
				if err := h.Unmarshal(v); err != nil {
					return ws, wireError("histogram: %v", err)
				}
				ws.histograms++
			}
			off += n + m
		default:
			m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
			if m < 0 {
				return ws, wireError("series: %v", protowire.ParseError(m))
			}
			off += n + m
			ws.canonical = false
		}
	}
	ws.labelEnd = int32(len(s.labels))       //nolint:gosec // G115: as above
	ws.exemplarEnd = int32(len(s.exemplars)) //nolint:gosec // G115: as above
	return ws, nil
}

// parseLabel reads a Label message that starts at offset at in its series'
// message; a repeated field keeps its last value, as the generated decoder
// does. short reports the short encoding: name then value, each shorter
// than 128 bytes, and nothing else.
func parseLabel(b []byte, at uint32) (l wireLabel, short bool, err error) {
	if len(b) >= 4 && b[0] == 0x0a && b[1] < 0x80 {
		n := int(b[1])
		if v := 2 + n; len(b) >= v+2 && b[v] == 0x12 && b[v+1] < 0x80 && len(b) == v+2+int(b[v+1]) {
			return wireLabel{ns: at + 2, ne: at + uint32(v), vs: at + uint32(v) + 2, ve: at + uint32(len(b))}, true, nil //nolint:gosec // G115: below maxWireMessage
		}
	}
	l, err = parseLabelSlow(b, at)
	return l, false, err
}

func parseLabelSlow(b []byte, at uint32) (wireLabel, error) {
	l := wireLabel{ns: at, ne: at, vs: at, ve: at}
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return l, wireError("label: %v", protowire.ParseError(n))
		}
		if num == fieldLabelName || num == fieldLabelValue {
			if typ != protowire.BytesType {
				return l, wireError("label field %d has wire type %d", num, typ)
			}
			v, m := protowire.ConsumeBytes(b[off+n:])
			if m < 0 {
				return l, wireError("label: %v", protowire.ParseError(m))
			}
			start := at + uint32(off+n+m-len(v)) //nolint:gosec // G115: below maxWireMessage
			end := start + uint32(len(v))        //nolint:gosec // G115: as above
			if num == fieldLabelName {
				l.ns, l.ne = start, end
			} else {
				l.vs, l.ve = start, end
			}
			off += n + m
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
		if m < 0 {
			return l, wireError("label: %v", protowire.ParseError(m))
		}
		off += n + m
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
func checkWireLabels(raw []byte, ls []wireLabel, maxLabels int, utf8Checked bool) string {
	if maxLabels > 0 && len(ls) > maxLabels {
		return fmt.Sprintf("%d labels, above the limit of %d", len(ls), maxLabels)
	}
	for j, l := range ls {
		name, value := l.name(raw), l.value(raw)
		switch {
		case len(name) == 0:
			return "a label has an empty name"
		case !utf8Checked && (!utf8.Valid(name) || !utf8.Valid(value)):
			return "a label name or value is not valid UTF-8"
		case len(value) == 0:
			return fmt.Sprintf("label %s has an empty value; leave the label out instead", quoteName(string(name)))
		}
		if j > 0 {
			prev := ls[j-1].name(raw)
			switch c := bytes.Compare(prev, name); {
			case c == 0:
				return fmt.Sprintf("label %s appears twice", quoteName(string(name)))
			case c > 0:
				return fmt.Sprintf("labels are not sorted by name (%s after %s)", quoteName(string(name)), quoteName(string(prev)))
			}
		}
	}
	return ""
}

// confineWire is confineSeries on a wire series: reason is "" when it is
// kept, else the drop reason and the label at fault; injected lists the
// labels to add.
func (en *Enforcer) confineWire(ws *wireSeries, s *wireScratch, mode WriteMode) (reason, label string, injected []kv) {
	ls := s.labelsOf(ws)
	// value reads a label of the series as it will be forwarded.
	value := func(name string) ([]byte, bool) {
		for _, x := range injected {
			if string(x.name) == name {
				return x.value, true
			}
		}
		return wireLookup(ws.raw, ls, name)
	}
	for i := range en.labels {
		l := &en.labels[i]
		v, ok := wireLookup(ws.raw, ls, l.name)
		switch {
		case !ok && mode == WriteInject && len(l.values) == 1 && len(l.regexes) == 0:
			v = []byte(l.values[0])
			injected = append(injected, kv{name: []byte(l.name), value: v})
		case !ok:
			return DropMissing, l.name, nil
		case !l.allows(string(v)):
			return DropForeign, l.name, nil
		}
		for _, e := range s.exemplarsOf(ws) {
			if ev, ok := lookupLabel(e.Labels, l.name); ok && ev != string(v) {
				return DropForeign, l.name, nil
			}
		}
	}
	for _, m := range en.extra {
		v, _ := value(m.Name)
		if !m.Matches(string(v)) {
			return DropExcluded, m.Name, nil
		}
	}
	return "", "", injected
}

func wireLookup(raw []byte, ls []wireLabel, name string) ([]byte, bool) {
	for _, l := range ls {
		if string(l.name(raw)) == name {
			return l.value(raw), true
		}
	}
	return nil, false
}

func wireValue(raw []byte, ls []wireLabel, name string) []byte {
	v, _ := wireLookup(raw, ls, name)
	return v
}

// appendMerged appends a series re-encoded: its labels with injected ones in
// their sorted places, then its sample, exemplar and histogram fields as
// received.
func (s *wireScratch) appendMerged(out []byte, ws *wireSeries, ls []wireLabel, injected []kv) []byte {
	clear(s.merged)
	merged := s.merged[:0]
	for _, l := range ls {
		merged = append(merged, kv{name: l.name(ws.raw), value: l.value(ws.raw)})
	}
	for _, x := range injected {
		i := 0
		for i < len(merged) && bytes.Compare(merged[i].name, x.name) < 0 {
			i++
		}
		merged = append(merged, kv{})
		copy(merged[i+1:], merged[i:])
		merged[i] = x
	}
	s.merged = merged
	clear(s.rest)
	rest := s.rest[:0]
	for b := ws.raw; len(b) > 0; {
		// The series decoded once already: these cannot fail.
		num, typ, n := consumeTag(b)
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if num == fieldSamples || num == fieldExemplars || num == fieldHistograms {
			rest = append(rest, b[:n+m])
		}
		b = b[n+m:]
	}
	s.rest = rest
	size := 0
	for _, l := range merged {
		size += protowire.SizeTag(fieldLabels) + protowire.SizeBytes(labelSize(l))
	}
	for _, r := range rest {
		size += len(r)
	}
	out = protowire.AppendTag(out, fieldTimeseries, protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(size)) //nolint:gosec // G115: a size is never negative
	for _, l := range merged {
		out = protowire.AppendTag(out, fieldLabels, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(labelSize(l))) //nolint:gosec // G115: as above
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

func labelSize(l kv) int {
	return protowire.SizeTag(fieldLabelName) + protowire.SizeBytes(len(l.name)) +
		protowire.SizeTag(fieldLabelValue) + protowire.SizeBytes(len(l.value))
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

// toProto copies wire labels, for messages.
func toProto(raw []byte, ls []wireLabel) []prompb.Label {
	pl := make([]prompb.Label, 0, len(ls))
	for _, l := range ls {
		pl = append(pl, prompb.Label{Name: string(l.name(raw)), Value: string(l.value(raw))})
	}
	return pl
}

// describeWire is describeSeries on wire labels.
func describeWire(raw []byte, ls []wireLabel) string {
	s := describeSeries(toProto(raw, ls[:min(len(ls), 32)]))
	if len(ls) > 32 && !strings.HasSuffix(s, "...}") {
		s = strings.TrimSuffix(s, "}") + ",...}"
	}
	return s
}

// consumeTag is protowire.ConsumeTag with the one-byte tags of every field
// here read inline.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if c := b[0]; c < 0x80 && c >= 0x08 {
		return protowire.Number(c >> 3), protowire.Type(c & 7), 1
	}
	return protowire.ConsumeTag(b)
}
