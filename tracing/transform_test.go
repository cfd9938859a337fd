package tracing

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// The oracle: the same request built with the generated OTLP types and
// marshalled by the protobuf library, which encode.go must match.

// marshalRequest encodes spans as the body of an OTLP/HTTP export, under
// one resource and one instrumentation scope (the gateway's). The
// collector's ExportTraceServiceRequest has one field, `repeated
// ResourceSpans resource_spans = 1`, exactly as TracesData does, so the two
// are the same bytes on the wire (the OTLP specification says so of
// TracesData); encoding TracesData keeps the collector package, which links
// gRPC, out (see doc.go).
func marshalRequest(res *resourcepb.Resource, resSchema string, scope *commonpb.InstrumentationScope, spans []*SpanData) ([]byte, error) {
	ss := &tracepb.ScopeSpans{Scope: scope, Spans: make([]*tracepb.Span, 0, len(spans))}
	for _, s := range spans {
		if s != nil {
			ss.Spans = append(ss.Spans, spanPB(s))
		}
	}
	return proto.Marshal(&tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: res, SchemaUrl: resSchema, ScopeSpans: []*tracepb.ScopeSpans{ss},
	}}})
}

// resourceOf and scopeOf convert the resource and the scope once, for
// every export.
func resourceOf(res *resource.Resource) (*resourcepb.Resource, string) {
	return &resourcepb.Resource{Attributes: keyValues(res.Attributes())}, res.SchemaURL()
}

func scopeOf(name, version string) *commonpb.InstrumentationScope {
	return &commonpb.InstrumentationScope{Name: name, Version: version}
}

// spanPB converts one finished span.
func spanPB(s *SpanData) *tracepb.Span {
	sc := s.SpanContext
	tid, sid := sc.TraceID(), sc.SpanID()
	out := &tracepb.Span{
		TraceId:                tid[:],
		SpanId:                 sid[:],
		TraceState:             sc.TraceState().String(),
		Flags:                  spanFlags(sc.TraceFlags(), s.ParentRemote),
		Name:                   s.Name,
		Kind:                   spanKind(s.Kind),
		StartTimeUnixNano:      unixNano(s.Start),
		EndTimeUnixNano:        unixNano(s.End),
		Attributes:             keyValues(s.Attributes),
		DroppedAttributesCount: count32(s.DroppedAttributes),
		Status:                 &tracepb.Status{Code: statusCode(s.StatusCode), Message: s.StatusDescription},
	}
	if psid := s.ParentSpanID; psid.IsValid() {
		out.ParentSpanId = psid[:]
	}
	if s.Extra == nil {
		return out
	}
	out.DroppedEventsCount = count32(s.DroppedEvents)
	out.DroppedLinksCount = count32(s.DroppedLinks)
	for _, e := range s.Events {
		out.Events = append(out.Events, &tracepb.Span_Event{
			Name:         e.Name,
			TimeUnixNano: unixNano(e.Time.UnixNano()),
			Attributes:   keyValues(e.Attributes),
		})
	}
	for _, l := range s.Links {
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		out.Links = append(out.Links, &tracepb.Span_Link{
			TraceId:    ltid[:],
			SpanId:     lsid[:],
			TraceState: l.SpanContext.TraceState().String(),
			Attributes: keyValues(l.Attributes),
			Flags:      spanFlags(l.SpanContext.TraceFlags(), l.SpanContext.IsRemote()),
		})
	}
	return out
}

// repaired copies spans with every string made UTF-8, as encode.go does
// (the generated types refuse anything else).
func repaired(spans []*SpanData) []*SpanData {
	fix := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	kvs := func(in []attribute.KeyValue) []attribute.KeyValue {
		var out []attribute.KeyValue
		for _, kv := range in {
			k := attribute.Key(fix(string(kv.Key)))
			switch kv.Value.Type() {
			case attribute.STRING:
				out = append(out, k.String(fix(kv.Value.AsString())))
			case attribute.STRINGSLICE:
				var ss []string
				for _, s := range kv.Value.AsStringSlice() {
					ss = append(ss, fix(s))
				}
				out = append(out, k.StringSlice(ss))
			default:
				out = append(out, attribute.KeyValue{Key: k, Value: kv.Value})
			}
		}
		return out
	}
	out := make([]*SpanData, len(spans))
	for i, s := range spans {
		if s == nil {
			continue
		}
		c := *s
		c.Name, c.StatusDescription, c.Attributes = fix(c.Name), fix(c.StatusDescription), kvs(c.Attributes)
		out[i] = &c
	}
	return out
}

// checkEncoding fails when appendRequest's bytes do not decode into
// exactly the message the generated types build.
func checkEncoding(t *testing.T, res *resource.Resource, spans []*SpanData) {
	t.Helper()
	checkEntries(t, res, spanEntries(spans))
}

// checkEntries is checkEncoding for a batch of entries: a Request's bytes
// must be those of the spans it makes (spanData).
func checkEntries(t *testing.T, res *resource.Resource, batch []entry) {
	t.Helper()
	resBytes, scopeBytes, err := encodeResourceAndScope(res, ScopeName, "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	var spans []*SpanData
	for _, e := range batch {
		if e.req != nil {
			spans = append(spans, e.req.spanData()...)
		} else {
			spans = append(spans, e.span)
		}
	}
	got := appendRequest(nil, resBytes, scopeBytes, res.SchemaURL(), batch)
	var gotMsg tracepb.TracesData
	if err := proto.Unmarshal(got, &gotMsg); err != nil {
		t.Fatalf("appendRequest's bytes do not decode: %v", err)
	}
	rpb, _ := resourceOf(res)
	want, err := marshalRequest(rpb, res.SchemaURL(), scopeOf(ScopeName, "1.2.3"), repaired(spans))
	if err != nil {
		t.Fatal(err)
	}
	var wantMsg tracepb.TracesData
	if err := proto.Unmarshal(want, &wantMsg); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&gotMsg, &wantMsg) {
		t.Fatalf("encodings differ:\n got %v\nwant %v", &gotMsg, &wantMsg)
	}
	// Deterministic marshalling of both gives the same bytes.
	a, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&gotMsg)
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&wantMsg)
	if !bytes.Equal(a, b) {
		t.Fatal("re-encoded messages differ")
	}
}

func TestEncodeMatchesGeneratedTypes(t *testing.T) {
	res := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
		attribute.String("service.name", "promgate"), attribute.String("service.version", "1.2.3"))
	ts, _ := trace.ParseTraceState("vendor=opaque,other=x")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x4b, 0xf9}, SpanID: trace.SpanID{1, 2}, TraceFlags: trace.FlagsSampled, TraceState: ts})
	long := string(bytes.Repeat([]byte("x"), 300)) // lengths over one varint byte
	spans := []*SpanData{
		{
			Name: "promgate query", SpanContext: sc, ParentSpanID: trace.SpanID{9}, ParentRemote: true, Kind: trace.SpanKindServer,
			Start: time.Unix(100, 5).UnixNano(), End: time.Unix(101, 0).UnixNano(),
			Attributes: []attribute.KeyValue{
				attribute.String("promgate.route", "query"), attribute.Int("http.response.status_code", 200),
				attribute.Int("zero", 0), attribute.Int("negative", -7), attribute.Bool("false", false), attribute.Bool("true", true),
				attribute.Float64("pi", math.Pi), attribute.Float64("zero.f", 0), attribute.String("empty", ""), attribute.String("long", long),
				attribute.StringSlice("ss", []string{"a", "", long}), attribute.Int64Slice("is", []int64{0, -1, 1 << 40}),
				attribute.BoolSlice("bs", []bool{true, false}), attribute.Float64Slice("fs", []float64{0.5, -2}),
			},
			DroppedAttributes: 3, StatusCode: codes.Error, StatusDescription: "502 Bad Gateway",
		},
		{Name: "authn", SpanContext: sc.WithSpanID(trace.SpanID{3}), ParentSpanID: trace.SpanID{1, 2}, Kind: trace.SpanKindInternal, Start: 1, End: 2},
		nil,
		{Name: "", SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})},
		{
			Name: "events", SpanContext: sc.WithSpanID(trace.SpanID{4}), Kind: trace.SpanKindClient, StatusCode: codes.Ok,
			Extra: &Extra{
				Events:        []Event{{Name: "exception", Time: time.Unix(5, 0), Attributes: []attribute.KeyValue{attribute.String("exception.message", long)}}, {Name: "e"}},
				DroppedEvents: 1,
				Links:         []trace.Link{{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.Int("n", 1)}}, {SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{2}, SpanID: trace.SpanID{2}, Remote: true})}},
				DroppedLinks:  2,
			},
		},
	}
	checkEncoding(t, res, spans)
	// Many spans: the scope's and the resource's lengths take three bytes.
	var many []*SpanData
	for range 600 {
		many = append(many, spans[0])
	}
	checkEncoding(t, res, many)
	checkEncoding(t, res, nil)
}

// FuzzEncode checks appendRequest against the generated types for spans
// made from the fuzzer's bytes.
func FuzzEncode(f *testing.F) {
	f.Add([]byte("promgate query"), "k", "v", int64(-1), 2.5, uint8(1), uint16(300))
	f.Add([]byte{}, "", "", int64(0), 0.0, uint8(0), uint16(0))
	f.Fuzz(func(t *testing.T, name []byte, key, val string, n int64, x float64, kind uint8, repeat uint16) {
		var id [24]byte
		copy(id[:], name)
		binary.BigEndian.PutUint64(id[16:], uint64(n)) //nolint:gosec // test data
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID(id[:16]), SpanID: trace.SpanID(id[16:]), TraceFlags: trace.TraceFlags(kind)})
		s := &SpanData{
			Name: string(name), SpanContext: sc, Kind: trace.SpanKind(kind % 6), Start: n, End: n + int64(repeat),
			Attributes: []attribute.KeyValue{attribute.String(key, val), attribute.Int64(key+"n", n), attribute.Float64(key+"x", x),
				attribute.String(key+"r", string(bytes.Repeat([]byte(val), int(repeat%64))))},
			StatusCode: codes.Code(kind % 3), StatusDescription: val, DroppedAttributes: int(repeat),
		}
		spans := make([]*SpanData, 1+int(repeat%8))
		for i := range spans {
			spans[i] = s
		}
		checkEncoding(t, resource.NewWithAttributes("", attribute.String("service.name", strings.ToValidUTF8(val, "?"))), spans)
	})
}

// BenchmarkEncode is one batch of 512 gateway spans, as the exporter sends
// it: encode.go, then the generated types with the protobuf library.
func BenchmarkEncode(b *testing.B) {
	res := resource.NewWithAttributes("", attribute.String("service.name", "promgate"))
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	s := &SpanData{Name: "promgate query", SpanContext: sc, ParentSpanID: trace.SpanID{3}, Kind: trace.SpanKindServer, Start: 1, End: 2,
		Attributes: []attribute.KeyValue{
			attribute.String("promgate.route", "query"), attribute.String("http.request.method", "GET"),
			attribute.Int("http.response.status_code", 200), attribute.String("promgate.request_id", "abc-1"),
			attribute.String("promgate.identity.subject", "alice"), attribute.String("promgate.identity.method", "mtls"),
			attribute.String("promgate.decision", "allow"),
		}}
	spans := make([]*SpanData, 512)
	for i := range spans {
		spans[i] = s
	}
	resBytes, scopeBytes, _ := encodeResourceAndScope(res, ScopeName, "bench")
	batch := spanEntries(spans)
	b.Run("protowire", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = appendRequest(buf[:0], resBytes, scopeBytes, "", batch)
		}
	})
	b.Run("generated", func(b *testing.B) {
		rpb, _ := resourceOf(res)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshalRequest(rpb, "", scopeOf(ScopeName, "bench"), spans); err != nil {
				b.Fatal(err)
			}
		}
	})
}
