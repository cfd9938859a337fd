package tracing

import (
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// The OTLP/HTTP request body, encoded field by field with protowire into
// one reused buffer. Building the generated message types (a struct per
// span, per attribute and per value) and marshalling them by reflection
// cost the gateway more than recording the spans did; this writes the same
// bytes (transform_test.go checks it against the generated types, and the
// fuzz test with any span) with no allocation once the buffer has grown.
//
// The field numbers are those of opentelemetry-proto's trace/v1, common/v1
// and resource/v1 messages. Proto3 leaves out fields at their zero value,
// except inside a oneof (AnyValue), where the field says which one is set.
// Strings that are not UTF-8 are repaired (validUTF8).

// Field numbers.
const (
	fTracesDataResourceSpans protowire.Number = 1

	fResourceSpansResource   protowire.Number = 1
	fResourceSpansScopeSpans protowire.Number = 2
	fResourceSpansSchemaURL  protowire.Number = 3

	fScopeSpansScope protowire.Number = 1
	fScopeSpansSpans protowire.Number = 2

	fSpanTraceID           protowire.Number = 1
	fSpanSpanID            protowire.Number = 2
	fSpanTraceState        protowire.Number = 3
	fSpanParentSpanID      protowire.Number = 4
	fSpanName              protowire.Number = 5
	fSpanKind              protowire.Number = 6
	fSpanStart             protowire.Number = 7
	fSpanEnd               protowire.Number = 8
	fSpanAttributes        protowire.Number = 9
	fSpanDroppedAttributes protowire.Number = 10
	fSpanEvents            protowire.Number = 11
	fSpanDroppedEvents     protowire.Number = 12
	fSpanLinks             protowire.Number = 13
	fSpanDroppedLinks      protowire.Number = 14
	fSpanStatus            protowire.Number = 15
	fSpanFlags             protowire.Number = 16

	fStatusMessage protowire.Number = 2
	fStatusCode    protowire.Number = 3

	fEventTime       protowire.Number = 1
	fEventName       protowire.Number = 2
	fEventAttributes protowire.Number = 3

	fLinkTraceID    protowire.Number = 1
	fLinkSpanID     protowire.Number = 2
	fLinkTraceState protowire.Number = 3
	fLinkAttributes protowire.Number = 4
	fLinkFlags      protowire.Number = 6

	fKeyValueKey   protowire.Number = 1
	fKeyValueValue protowire.Number = 2

	fAnyString protowire.Number = 1
	fAnyBool   protowire.Number = 2
	fAnyInt    protowire.Number = 3
	fAnyDouble protowire.Number = 4
	fAnyArray  protowire.Number = 5
	fAnyKVList protowire.Number = 6
	fAnyBytes  protowire.Number = 7

	fArrayValues  protowire.Number = 1
	fKVListValues protowire.Number = 1
)

// appendRequest appends the TracesData (the collector's
// ExportTraceServiceRequest) of a batch's spans under one resource and
// scope, given as their encoded messages, to b.
func appendRequest(b, resource, scope []byte, resSchema string, batch []entry) []byte {
	rs, b := begin(b, fTracesDataResourceSpans)
	b = appendBytesField(b, fResourceSpansResource, resource)
	ss, b := begin(b, fResourceSpansScopeSpans)
	b = appendBytesField(b, fScopeSpansScope, scope)
	for _, e := range batch {
		switch {
		case e.req != nil:
			b = appendRequestSpans(b, e.req)
		case e.span != nil:
			at, bb := begin2(b, fScopeSpansSpans)
			b = end2(appendSpan(bb, e.span), at)
		}
	}
	b = end(b, ss)
	b = appendString(b, fResourceSpansSchemaURL, resSchema)
	return end(b, rs)
}

// appendRequestSpans appends a Request's spans, each as a field of
// ScopeSpans: the bytes appendSpan writes for the spans of spanData, with
// no span made. The keys of the gateway's attributes are short ASCII
// constants, so only their values are looked at.
func appendRequestSpans(b []byte, r *Request) []byte {
	tid, sid := r.sc.TraceID(), r.sc.SpanID()
	ts := traceState(r.sc)
	flags := r.sc.TraceFlags()
	// The server span: most likely 128 bytes or more (begin2).
	at, b := begin2(b, fScopeSpansSpans)
	b = appendIDs(b, &tid, sid, ts)
	if r.parent.IsValid() {
		b = append(b, byte(fSpanParentSpanID)<<3|byte(protowire.BytesType), 8)
		b = append(b, r.parent[:]...)
	}
	b = appendString(b, fSpanName, r.fin.Name)
	b = appendVarintField(b, fSpanKind, uint64(spanKind(trace.SpanKindServer)))
	b = appendFixed64Field(b, fSpanStart, unixNano(r.start))
	b = appendFixed64Field(b, fSpanEnd, unixNano(r.end))
	e := &r.fin
	b = appendStringAttr(b, keyRoute, e.Route)
	b = appendStringAttr(b, keyMethod, e.Method)
	b = appendIntAttr(b, keyStatus, int64(e.Status))
	b = appendStringAttr(b, keyRequestID, e.RequestID)
	if e.Identified {
		b = appendStringAttr(b, keySubject, e.Subject)
		b = appendStringAttr(b, keyIdentityMethod, e.IdentityMethod)
	}
	if e.Decision != "" {
		b = appendStringAttr(b, keyDecision, e.Decision)
	}
	if e.Coalesced {
		b = appendKeyValue(b, fSpanAttributes, keyCoalesced, attribute.BoolValue(true))
	}
	b = appendStatus(b, e.StatusCode, e.StatusDescription)
	b = appendFixed32Field(b, fSpanFlags, spanFlags(flags, r.parentRemote))
	b = end2(b, at)
	// The steps: most likely under 128 bytes (begin).
	for i := range r.steps {
		s := &r.steps[i]
		at, b = begin(b, fScopeSpansSpans)
		b = appendIDs(b, &tid, s.id, ts)
		b = append(b, byte(fSpanParentSpanID)<<3|byte(protowire.BytesType), 8)
		b = append(b, sid[:]...)
		b = appendString(b, fSpanName, s.name)
		b = appendVarintField(b, fSpanKind, uint64(spanKind(s.kind)))
		b = appendFixed64Field(b, fSpanStart, unixNano(s.start))
		b = appendFixed64Field(b, fSpanEnd, unixNano(s.end))
		if s.httpStatus != 0 {
			b = appendIntAttr(b, keyStatus, int64(s.httpStatus))
		}
		b = appendStatus(b, s.code, s.desc)
		b = appendFixed32Field(b, fSpanFlags, spanFlags(flags, false))
		b = end(b, at)
	}
	return b
}

// traceState is sc's tracestate as its header would carry it, or "".
func traceState(sc trace.SpanContext) string {
	if st := sc.TraceState(); st.Len() > 0 {
		return st.String()
	}
	return ""
}

// appendIDs appends a span's trace ID, span ID and tracestate (ts, when
// not empty).
func appendIDs(b []byte, tid *trace.TraceID, sid trace.SpanID, ts string) []byte {
	b = append(b, byte(fSpanTraceID)<<3|byte(protowire.BytesType), 16)
	b = append(b, tid[:]...)
	b = append(b, byte(fSpanSpanID)<<3|byte(protowire.BytesType), 8)
	b = append(b, sid[:]...)
	return appendString(b, fSpanTraceState, ts)
}

// appendStatus appends a span's status, always present, as the generated
// types would send it.
func appendStatus(b []byte, code codes.Code, description string) []byte {
	at, b := begin(b, fSpanStatus)
	b = appendString(b, fStatusMessage, description)
	b = appendVarintField(b, fStatusCode, uint64(statusCode(code)))
	return end(b, at)
}

// appendStringAttr appends the span attribute key (a short ASCII
// constant) with the string v: in one go when v is short ASCII, as
// appendKeyValue's fast path writes it.
func appendStringAttr(b []byte, key, v string) []byte {
	if shortString(key, v) {
		return appendShortString(b, fSpanAttributes, key, v)
	}
	return appendKeyValue(b, fSpanAttributes, key, attribute.StringValue(v))
}

// appendIntAttr appends the span attribute key (a short ASCII constant)
// with the integer x.
func appendIntAttr(b []byte, key string, x int64) []byte {
	return appendShortVarint(b, fSpanAttributes, fAnyInt, key, uint64(x)) //nolint:gosec // G115: protobuf's int64 is its two's complement varint
}

// shortString reports whether the string s, with the short ASCII key,
// fits appendShortString: every length in one byte.
func shortString(key, s string) bool {
	return len(s) < 100 && len(key)+len(s) < 120 && isASCII(s)
}

// appendShortString appends the KeyValue of key and the string s as field
// num (below 16) in one go; shortString(key, s) holds, and key is short
// ASCII.
func appendShortString(b []byte, num protowire.Number, key, s string) []byte {
	anyLen := 2 + len(s)
	b = append(b, byte(num)<<3|byte(protowire.BytesType), byte(2+len(key)+2+anyLen),
		byte(fKeyValueKey)<<3|byte(protowire.BytesType), byte(len(key)))
	b = append(b, key...)
	b = append(b, byte(fKeyValueValue)<<3|byte(protowire.BytesType), byte(anyLen),
		byte(fAnyString)<<3|byte(protowire.BytesType), byte(len(s)))
	return append(b, s...)
}

// appendShortVarint appends the KeyValue of key and the varint x, as the
// AnyValue's field (fAnyInt or fAnyBool), as field num (below 16) in one
// go; key is short ASCII.
func appendShortVarint(b []byte, num, field protowire.Number, key string, x uint64) []byte {
	anyLen := 1 + protowire.SizeVarint(x)
	b = append(b, byte(num)<<3|byte(protowire.BytesType), byte(2+len(key)+2+anyLen),
		byte(fKeyValueKey)<<3|byte(protowire.BytesType), byte(len(key)))
	b = append(b, key...)
	b = append(b, byte(fKeyValueValue)<<3|byte(protowire.BytesType), byte(anyLen), byte(field)<<3|byte(protowire.VarintType))
	return protowire.AppendVarint(b, x)
}

func appendSpan(b []byte, s *SpanData) []byte {
	sc := s.SpanContext
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendIDs(b, &tid, sid, traceState(sc))
	if s.ParentSpanID.IsValid() {
		b = appendBytesField(b, fSpanParentSpanID, s.ParentSpanID[:])
	}
	b = appendString(b, fSpanName, s.Name)
	b = appendVarintField(b, fSpanKind, uint64(spanKind(s.Kind)))
	b = appendFixed64Field(b, fSpanStart, unixNano(s.Start))
	b = appendFixed64Field(b, fSpanEnd, unixNano(s.End))
	b = appendKeyValues(b, fSpanAttributes, s.Attributes)
	b = appendVarintField(b, fSpanDroppedAttributes, uint64(count32(s.DroppedAttributes)))
	if x := s.Extra; x != nil {
		for _, e := range x.Events {
			at, bb := begin(b, fSpanEvents)
			bb = appendFixed64Field(bb, fEventTime, unixNano(e.Time.UnixNano()))
			bb = appendString(bb, fEventName, e.Name)
			bb = appendKeyValues(bb, fEventAttributes, e.Attributes)
			b = end(bb, at)
		}
		b = appendVarintField(b, fSpanDroppedEvents, uint64(count32(x.DroppedEvents)))
		for _, l := range x.Links {
			ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
			at, bb := begin(b, fSpanLinks)
			bb = appendBytesField(bb, fLinkTraceID, ltid[:])
			bb = appendBytesField(bb, fLinkSpanID, lsid[:])
			if ts := l.SpanContext.TraceState(); ts.Len() > 0 {
				bb = appendString(bb, fLinkTraceState, ts.String())
			}
			bb = appendKeyValues(bb, fLinkAttributes, l.Attributes)
			bb = appendFixed32Field(bb, fLinkFlags, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext.IsRemote()))
			b = end(bb, at)
		}
		b = appendVarintField(b, fSpanDroppedLinks, uint64(count32(x.DroppedLinks)))
	}
	b = appendStatus(b, s.StatusCode, s.StatusDescription)
	return appendFixed32Field(b, fSpanFlags, spanFlags(sc.TraceFlags(), s.ParentRemote))
}

func appendKeyValues(b []byte, num protowire.Number, kvs []attribute.KeyValue) []byte {
	for _, kv := range kvs {
		b = appendKeyValue(b, num, string(kv.Key), kv.Value)
	}
	return b
}

func appendKeyValue(b []byte, num protowire.Number, key string, v attribute.Value) []byte {
	// The gateway's own attributes are short ASCII keys with short ASCII
	// strings, integers or booleans: every length then fits one byte and
	// is known before writing, so they are written in one go.
	if num < 16 && len(key) < 100 && isASCII(key) {
		switch v.Type() {
		case attribute.STRING:
			if s := v.AsString(); shortString(key, s) {
				return appendShortString(b, num, key, s)
			}
		case attribute.INT64, attribute.BOOL:
			field, x := fAnyInt, uint64(v.AsInt64())
			if v.Type() == attribute.BOOL {
				field, x = fAnyBool, protowire.EncodeBool(v.AsBool())
			}
			return appendShortVarint(b, num, field, key, x)
		}
	}
	at, b := begin(b, num)
	b = appendString(b, fKeyValueKey, key)
	vat, b := begin(b, fKeyValueValue)
	b = appendAnyValue(b, v)
	return end(end(b, vat), at)
}

// appendAnyValue appends the fields of an AnyValue: the one field of its
// oneof, present even at its zero value.
func appendAnyValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		return protowire.AppendVarint(protowire.AppendTag(b, fAnyBool, protowire.VarintType), protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		return protowire.AppendVarint(protowire.AppendTag(b, fAnyInt, protowire.VarintType), uint64(v.AsInt64()))
	case attribute.FLOAT64:
		return protowire.AppendFixed64(protowire.AppendTag(b, fAnyDouble, protowire.Fixed64Type), math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		return protowire.AppendString(protowire.AppendTag(b, fAnyString, protowire.BytesType), validUTF8(v.AsString()))
	case attribute.BYTESLICE:
		return protowire.AppendBytes(protowire.AppendTag(b, fAnyBytes, protowire.BytesType), v.AsByteSlice())
	case attribute.BOOLSLICE:
		return appendArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		return appendArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		return appendArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		return appendArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		return appendArray(b, v.AsSlice(), func(v attribute.Value) attribute.Value { return v })
	case attribute.MAP:
		at, b := begin(b, fAnyKVList)
		for _, kv := range v.AsMap() {
			b = appendKeyValue(b, fKVListValues, string(kv.Key), kv.Value)
		}
		return end(b, at)
	case attribute.EMPTY:
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, fAnyString, protowire.BytesType), "INVALID")
}

func appendArray[T any](b []byte, vs []T, value func(T) attribute.Value) []byte {
	at, b := begin(b, fAnyArray)
	for _, v := range vs {
		vat, bb := begin(b, fArrayValues)
		b = end(appendAnyValue(bb, value(v)), vat)
	}
	return end(b, at)
}

// begin appends the tag of a length-delimited field num and a one-byte
// placeholder for its length, and returns where the placeholder is; end
// writes the length of what was appended after it, moving the field's
// content up when the length needs more than one byte.
func begin(b []byte, num protowire.Number) (int, []byte) {
	b = appendTag(b, num, protowire.BytesType)
	return len(b), append(b, 0)
}

func end(b []byte, at int) []byte {
	n := len(b) - at - 1
	if n < 0x80 {
		b[at] = byte(n)
		return b
	}
	size := protowire.SizeVarint(uint64(n))
	b = slices.Grow(b, size-1)[:len(b)+size-1]
	copy(b[at+size:], b[at+1:at+1+n])
	protowire.AppendVarint(b[at:at], uint64(n))
	return b
}

// begin2 and end2 are begin and end for a message that is most likely 128
// bytes to 16 KiB long (a span): its placeholder has the two bytes such a
// length takes, so that it is written in place, and only a shorter or
// longer message is moved.
func begin2(b []byte, num protowire.Number) (int, []byte) {
	b = appendTag(b, num, protowire.BytesType)
	return len(b), append(b, 0, 0)
}

func end2(b []byte, at int) []byte {
	n := len(b) - at - 2
	if n >= 0x80 && n < 1<<14 {
		b[at] = byte(n) | 0x80
		b[at+1] = byte(n >> 7)
		return b
	}
	// Move the content to after a one-byte placeholder and let end do it.
	copy(b[at+1:], b[at+2:])
	return end(b[:len(b)-1], at)
}

// appendTag appends a field's tag: one byte for the field numbers below
// 16 that nearly every field has.
func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	if num < 16 {
		return append(b, byte(num)<<3|byte(typ))
	}
	return appendLongTag(b, num, typ)
}

// appendLongTag is appendTag's other case, apart so that appendTag is
// inlined.
func appendLongTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return protowire.AppendTag(b, num, typ)
}

// appendLen appends a length: one byte below 128.
func appendLen(b []byte, n int) []byte {
	if n < 0x80 {
		return append(b, byte(n))
	}
	return protowire.AppendVarint(b, uint64(n))
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return append(appendLen(appendTag(b, num, protowire.BytesType), len(v)), v...)
}

func appendString(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	v = validUTF8(v)
	return append(appendLen(appendTag(b, num, protowire.BytesType), len(v)), v...)
}

// isASCII reports whether s is all ASCII, which is UTF-8.
func isASCII(s string) bool {
	// Eight bytes at a time (the compiler makes one load of the eight).
	for len(s) >= 8 {
		w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		if w&0x8080808080808080 != 0 {
			return false
		}
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// validUTF8 replaces what is not UTF-8 in s with U+FFFD: a protobuf
// string must be UTF-8, and a collector refuses the whole request (the
// generated types would not even encode it) for one bad attribute.
func validUTF8(s string) string {
	if isASCII(s) || utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = appendTag(b, num, protowire.VarintType)
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

func appendFixed64Field(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed64(appendTag(b, num, protowire.Fixed64Type), v)
}

func appendFixed32Field(b []byte, num protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed32(appendTag(b, num, protowire.Fixed32Type), v)
}
