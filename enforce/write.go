package enforce

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
)

// WriteMode says what ConfineWrite does with a series that does not carry
// the allowed labels. A series with a foreign value is never kept, whatever
// the mode.
type WriteMode string

// The write modes, named as in the configuration and the decision.
const (
	// WriteInject adds an enforced label a series lacks when exactly one
	// literal value of it is allowed (and no regular expression), and
	// drops the series it cannot fix, as WriteDrop does.
	WriteInject WriteMode = "inject"
	// WriteReject refuses the whole request at the first series that does
	// not carry allowed values (an *Error of kind Forbidden naming it).
	WriteReject WriteMode = "reject"
	// WriteDrop keeps the allowed series and drops the others.
	WriteDrop WriteMode = "drop"
)

// Reasons a series is dropped, the reason label of
// promgate_write_dropped_series_total.
const (
	// DropForeign: an enforced label holds a value the decision does not
	// allow, or an exemplar names another value of it.
	DropForeign = "foreign_value"
	// DropMissing: an enforced label is missing and was not injected.
	DropMissing = "missing_label"
	// DropExcluded: a decision matcher (such as {secret!="true"}) refuses
	// the series.
	DropExcluded = "excluded"
)

// DropReasons lists the drop reasons, for metrics that start at zero.
var DropReasons = []string{DropForeign, DropMissing, DropExcluded}

// WriteLimits bound one write request. Zero means no bound.
type WriteLimits struct {
	// MaxSeries bounds the time series, and separately the metadata
	// entries, of one request.
	MaxSeries int
	// MaxSamples bounds the samples, histogram samples and exemplars of one
	// request, together.
	MaxSamples int
	// MaxLabels bounds the labels of one series or exemplar.
	MaxLabels int
}

// WriteStats describe one write request as received, and what confinement
// did to it. They hold counts only, never sample data.
type WriteStats struct {
	Series, Samples, Histograms, Exemplars, Metadata int
	// Dropped counts the series not forwarded, by reason; Injected the
	// series given a label.
	Foreign, Missing, Excluded int
	Injected                   int
	// DroppedMetadata counts the metadata entries not forwarded: those of
	// metric names no kept series has.
	DroppedMetadata int
}

// Dropped is the number of series not forwarded.
func (s WriteStats) Dropped() int { return s.Foreign + s.Missing + s.Excluded }

// DecodeWrite decodes a remote write 1.0 body: a snappy block holding a
// prompb.WriteRequest. The decompressed length the snappy header declares is
// checked against maxDecoded before anything is decompressed, so that a
// small body cannot make the gateway allocate gigabytes. Every error is an
// *Error of kind BadData.
func DecodeWrite(body []byte, maxDecoded int) (*prompb.WriteRequest, error) {
	raw, err := decodeSnappy(body, maxDecoded)
	if err != nil {
		return nil, err
	}
	req := &prompb.WriteRequest{}
	if err := req.Unmarshal(raw); err != nil {
		return nil, &Error{Kind: BadData, Msg: "the body is not a remote write request (prometheus.WriteRequest): " + err.Error()}
	}
	return req, nil
}

// DecodeSnappy decompresses a snappy block into dst's storage when it is
// large enough, after checking that the length its header declares is at
// most maxDecoded. Every error is an *Error of kind BadData.
func DecodeSnappy(body []byte, maxDecoded int, dst []byte) ([]byte, error) {
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, &Error{Kind: BadData, Msg: "the body is not snappy block-compressed: " + err.Error()}
	}
	if maxDecoded > 0 && n > maxDecoded {
		return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("the body declares %d bytes decompressed, above the limit of %d", n, maxDecoded)}
	}
	raw, err := snappy.Decode(dst[:cap(dst)], body)
	if err != nil {
		return nil, &Error{Kind: BadData, Msg: "the body is not snappy block-compressed: " + err.Error()}
	}
	return raw, nil
}

// decodeSnappy checks the declared length and decompresses a snappy block.
func decodeSnappy(body []byte, maxDecoded int) ([]byte, error) {
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, &Error{Kind: BadData, Msg: "the body is not snappy block-compressed: " + err.Error()}
	}
	if maxDecoded > 0 && n > maxDecoded {
		return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("the body declares %d bytes decompressed, above the limit of %d", n, maxDecoded)}
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, &Error{Kind: BadData, Msg: "the body is not snappy block-compressed: " + err.Error()}
	}
	return raw, nil
}

// EncodeWrite encodes req as a remote write 1.0 body, appending to buf's
// storage when it is large enough.
func EncodeWrite(req *prompb.WriteRequest, buf []byte) ([]byte, error) {
	raw, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	return snappy.Encode(buf[:cap(buf)], raw), nil
}

// ConfineWrite checks a decoded write request and confines it to the
// enforcer, in place. It first checks the whole request against lim and the
// well-formedness rules, whatever the decision: every series has at least
// one label; label names are non-empty, valid UTF-8, unique and sorted;
// values are non-empty valid UTF-8; exemplars' labels follow the same rules;
// metadata strings are valid UTF-8. A breach is an *Error of kind BadData
// naming the first offending series, and nothing of the request may be
// forwarded. Fields the protocol does not define are removed.
//
// It then confines, unless the enforcer is unrestricted:
//
//	series                          inject                 reject      drop
//	allowed values                  kept                   kept        kept
//	enforced label missing,         label added, kept      refused     dropped
//	  one literal value allowed
//	enforced label missing,         dropped                refused     dropped
//	  otherwise
//	a value not allowed             dropped                refused     dropped
//	refused by a decision matcher   dropped                refused     dropped
//	exemplar naming another value   dropped                refused     dropped
//	  of an enforced label
//
// "refused" is an *Error of kind Forbidden naming the series; the request
// must not be forwarded at all. Decision matchers are checked after a label
// is injected. A series' samples, histograms and exemplars go with it. The
// metadata entries kept are those whose metric family is the name of a kept
// series, or that name without a histogram or summary suffix (_bucket, _sum,
// _count, ...).
func (en *Enforcer) ConfineWrite(req *prompb.WriteRequest, mode WriteMode, lim WriteLimits) (WriteStats, error) {
	st, err := checkWrite(req, lim)
	if err != nil || en.Unrestricted() {
		return st, err
	}
	kept := req.Timeseries[:0]
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		reason, label, injected := en.confineSeries(ts, mode)
		if reason == "" {
			if injected {
				st.Injected++
			}
			kept = append(kept, *ts)
			continue
		}
		if mode == WriteReject {
			return st, &Error{Kind: Forbidden, Label: label, Msg: fmt.Sprintf("series %s refused: %s", describeSeries(ts.Labels), en.describeReason(reason, label, ts.Labels))}
		}
		switch reason {
		case DropForeign:
			st.Foreign++
		case DropMissing:
			st.Missing++
		default:
			st.Excluded++
		}
	}
	// Clear the tail so that the dropped series' memory is not kept alive.
	clear(req.Timeseries[len(kept):])
	req.Timeseries = kept
	if len(req.Metadata) > 0 {
		families := make(map[string]bool, len(kept))
		for i := range kept {
			name := labelValue(kept[i].Labels, model.MetricNameLabel)
			families[name] = true
			for _, s := range familySuffixes {
				if f, ok := strings.CutSuffix(name, s); ok {
					families[f] = true
				}
			}
		}
		md := req.Metadata[:0]
		for _, m := range req.Metadata {
			if families[m.MetricFamilyName] {
				md = append(md, m)
			}
		}
		st.DroppedMetadata = len(req.Metadata) - len(md)
		clear(req.Metadata[len(md):])
		req.Metadata = md
	}
	return st, nil
}

// checkWrite applies the limits and the well-formedness rules to the whole
// request and counts it.
func checkWrite(req *prompb.WriteRequest, lim WriteLimits) (WriteStats, error) {
	st := WriteStats{Series: len(req.Timeseries), Metadata: len(req.Metadata)}
	req.XXX_unrecognized = nil
	if lim.MaxSeries > 0 && (st.Series > lim.MaxSeries || st.Metadata > lim.MaxSeries) {
		return st, &Error{Kind: BadData, Msg: fmt.Sprintf("the request holds %d series and %d metadata entries, above the limit of %d each; send smaller batches (queue_config max_samples_per_send)", st.Series, st.Metadata, lim.MaxSeries)}
	}
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		st.Samples += len(ts.Samples)
		st.Histograms += len(ts.Histograms)
		st.Exemplars += len(ts.Exemplars)
	}
	if n := st.Samples + st.Histograms + st.Exemplars; lim.MaxSamples > 0 && n > lim.MaxSamples {
		return st, &Error{Kind: BadData, Msg: fmt.Sprintf("the request holds %d samples, histograms and exemplars, above the limit of %d; send smaller batches (queue_config max_samples_per_send)", n, lim.MaxSamples)}
	}
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		ts.XXX_unrecognized = nil
		if len(ts.Labels) == 0 {
			return st, &Error{Kind: BadData, Msg: fmt.Sprintf("series %d of the request has no labels", i)}
		}
		if msg := checkLabels(ts.Labels, lim.MaxLabels); msg != "" {
			return st, &Error{Kind: BadData, Msg: fmt.Sprintf("series %d of the request (%s): %s", i, describeSeries(ts.Labels), msg)}
		}
		for j := range ts.Samples {
			ts.Samples[j].XXX_unrecognized = nil
		}
		for j := range ts.Histograms {
			h := &ts.Histograms[j]
			h.XXX_unrecognized = nil
			for k := range h.PositiveSpans {
				h.PositiveSpans[k].XXX_unrecognized = nil
			}
			for k := range h.NegativeSpans {
				h.NegativeSpans[k].XXX_unrecognized = nil
			}
		}
		for j := range ts.Exemplars {
			e := &ts.Exemplars[j]
			e.XXX_unrecognized = nil
			if msg := checkLabels(e.Labels, lim.MaxLabels); msg != "" && len(e.Labels) > 0 {
				return st, &Error{Kind: BadData, Msg: fmt.Sprintf("exemplar %d of series %d (%s): %s", j, i, describeSeries(ts.Labels), msg)}
			}
		}
	}
	for i := range req.Metadata {
		m := &req.Metadata[i]
		m.XXX_unrecognized = nil
		if !utf8.ValidString(m.MetricFamilyName) || !utf8.ValidString(m.Help) || !utf8.ValidString(m.Unit) {
			return st, &Error{Kind: BadData, Msg: fmt.Sprintf("metadata entry %d of the request is not valid UTF-8", i)}
		}
	}
	return st, nil
}

// checkLabels returns why ls is not a well-formed label set, or "".
func checkLabels(ls []prompb.Label, maxLabels int) string {
	if maxLabels > 0 && len(ls) > maxLabels {
		return fmt.Sprintf("%d labels, above the limit of %d", len(ls), maxLabels)
	}
	for j := range ls {
		l := &ls[j]
		l.XXX_unrecognized = nil
		switch {
		case l.Name == "":
			return "a label has an empty name"
		case !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value):
			return "a label name or value is not valid UTF-8"
		case l.Value == "":
			return fmt.Sprintf("label %s has an empty value; leave the label out instead", quoteName(l.Name))
		case j > 0 && ls[j-1].Name == l.Name:
			return fmt.Sprintf("label %s appears twice", quoteName(l.Name))
		case j > 0 && ls[j-1].Name > l.Name:
			return fmt.Sprintf("labels are not sorted by name (%s after %s)", quoteName(l.Name), quoteName(ls[j-1].Name))
		}
	}
	return ""
}

// confineSeries decides one well-formed series: reason is "" when it is
// kept (injected says a label was added to it), else the drop reason and the
// label at fault.
func (en *Enforcer) confineSeries(ts *prompb.TimeSeries, mode WriteMode) (reason, label string, injected bool) {
	for i := range en.labels {
		l := &en.labels[i]
		v, ok := lookupLabel(ts.Labels, l.name)
		switch {
		case !ok && mode == WriteInject && len(l.values) == 1 && len(l.regexes) == 0:
			ts.Labels = insertLabel(ts.Labels, l.name, l.values[0])
			injected = true
		case !ok:
			return DropMissing, l.name, false
		case !l.allows(v):
			return DropForeign, l.name, false
		}
		for j := range ts.Exemplars {
			if ev, ok := lookupLabel(ts.Exemplars[j].Labels, l.name); ok && ev != labelValue(ts.Labels, l.name) {
				return DropForeign, l.name, false
			}
		}
	}
	for _, m := range en.extra {
		if !m.Matches(labelValue(ts.Labels, m.Name)) {
			return DropExcluded, m.Name, false
		}
	}
	return "", "", injected
}

// protoAllowed reports whether a series with labels ls (sorted or not) is
// one the caller may see: every enforced label holds an allowed value and
// every decision matcher holds, a missing label being "".
func (en *Enforcer) protoAllowed(ls []prompb.Label) bool {
	for i := range en.labels {
		l := &en.labels[i]
		if !l.allows(labelValue(ls, l.name)) {
			return false
		}
	}
	for _, m := range en.extra {
		if !m.Matches(labelValue(ls, m.Name)) {
			return false
		}
	}
	return true
}

// lookupLabel returns the value of label name in ls.
func lookupLabel(ls []prompb.Label, name string) (string, bool) {
	for i := range ls {
		if ls[i].Name == name {
			return ls[i].Value, true
		}
	}
	return "", false
}

func labelValue(ls []prompb.Label, name string) string {
	v, _ := lookupLabel(ls, name)
	return v
}

// insertLabel returns ls, sorted by name, with name=value added in its
// place. ls is not modified: it may share the decoded request's memory.
func insertLabel(ls []prompb.Label, name, value string) []prompb.Label {
	out := make([]prompb.Label, 0, len(ls)+1)
	i := 0
	for i < len(ls) && ls[i].Name < name {
		i++
	}
	out = append(out, ls[:i]...)
	out = append(out, prompb.Label{Name: name, Value: value})
	return append(out, ls[i:]...)
}

// maxDescribed bounds a series as named in an error message.
const maxDescribed = 256

// describeSeries prints a series' labels as a selector, cut to
// maxDescribed bytes. The labels are the caller's own input.
func describeSeries(ls []prompb.Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quoteName(strings.ToValidUTF8(l.Name, "\uFFFD")))
		b.WriteByte('=')
		fmt.Fprintf(&b, "%q", strings.ToValidUTF8(l.Value, "\uFFFD"))
		if b.Len() > maxDescribed {
			break
		}
	}
	s := b.String()
	if len(s) > maxDescribed {
		return strings.ToValidUTF8(s[:maxDescribed], "") + "...}"
	}
	return s + "}"
}

// describeReason says why a series is refused, naming the label and the
// series' own value, never the allowed ones.
func (en *Enforcer) describeReason(reason, label string, ls []prompb.Label) string {
	switch reason {
	case DropForeign:
		if v, ok := lookupLabel(ls, label); ok && !en.labelAllows(label, v) {
			return fmt.Sprintf("label %s=%q is not allowed", quoteName(label), v)
		}
		return fmt.Sprintf("an exemplar names another value of label %s", quoteName(label))
	case DropMissing:
		return fmt.Sprintf("label %s is missing; add it (relabelling or external_labels)", quoteName(label))
	default:
		return fmt.Sprintf("excluded by the policy (label %s)", quoteName(label))
	}
}

// labelAllows reports whether the enforced label name allows v.
func (en *Enforcer) labelAllows(name, v string) bool {
	for i := range en.labels {
		if en.labels[i].name == name {
			return en.labels[i].allows(v)
		}
	}
	return true
}
