package tracing

import (
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
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
// ExportTraceServiceRequest) of spans under one resource and scope, given
// as their encoded messages, to b.
func appendRequest(b, resource, scope []byte, resSchema string, spans []*SpanData) []byte {
	rs, b := begin(b, fTracesDataResourceSpans)
	b = appendBytesField(b, fResourceSpansResource, resource)
	ss, b := begin(b, fResourceSpansScopeSpans)
	b = appendBytesField(b, fScopeSpansScope, scope)
	for _, s := range spans {
		if s == nil {
			continue
		}
		at, bb := begin(b, fScopeSpansSpans)
		b = end(appendSpan(bb, s), at)
	}
	b = end(b, ss)
	b = appendString(b, fResourceSpansSchemaURL, resSchema)
	return end(b, rs)
}

func appendSpan(b []byte, s *SpanData) []byte {
	sc := s.SpanContext
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytesField(b, fSpanTraceID, tid[:])
	b = appendBytesField(b, fSpanSpanID, sid[:])
	if ts := sc.TraceState(); ts.Len() > 0 {
		b = appendString(b, fSpanTraceState, ts.String())
	}
	if s.ParentSpanID.IsValid() {
		b = appendBytesField(b, fSpanParentSpanID, s.ParentSpanID[:])
	}
	b = appendString(b, fSpanName, s.Name)
	b = appendVarintField(b, fSpanKind, uint64(spanKind(s.Kind))) //nolint:gosec // G115: an enum of 0 to 5
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
	// The status is always set, as the generated types would send it.
	at, b := begin(b, fSpanStatus)
	b = appendString(b, fStatusMessage, s.StatusDescription)
	b = appendVarintField(b, fStatusCode, uint64(statusCode(s.StatusCode))) //nolint:gosec // G115: an enum of 0 to 2
	b = end(b, at)
	return appendFixed32Field(b, fSpanFlags, spanFlags(sc.TraceFlags(), s.ParentRemote))
}

func appendKeyValues(b []byte, num protowire.Number, kvs []attribute.KeyValue) []byte {
	for _, kv := range kvs {
		b = appendKeyValue(b, num, string(kv.Key), kv.Value)
	}
	return b
}

func appendKeyValue(b []byte, num protowire.Number, key string, v attribute.Value) []byte {
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
		return protowire.AppendVarint(protowire.AppendTag(b, fAnyInt, protowire.VarintType), uint64(v.AsInt64())) //nolint:gosec // G115: int64 is encoded as its two's complement, as protobuf does
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
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return len(b), append(b, 0)
}

func end(b []byte, at int) []byte {
	n := len(b) - at - 1
	if n < 0x80 {
		b[at] = byte(n) //nolint:gosec // G115: n < 0x80 here
		return b
	}
	size := protowire.SizeVarint(uint64(n))
	b = slices.Grow(b, size-1)[:len(b)+size-1]
	copy(b[at+size:], b[at+1:at+1+n])
	protowire.AppendVarint(b[at:at], uint64(n))
	return b
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

func appendString(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), validUTF8(v))
}

// validUTF8 replaces what is not UTF-8 in s with U+FFFD: a protobuf
// string must be UTF-8, and a collector refuses the whole request (the
// generated types would not even encode it) for one bad attribute.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func appendFixed64Field(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), v)
}

func appendFixed32Field(b []byte, num protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed32(protowire.AppendTag(b, num, protowire.Fixed32Type), v)
}
