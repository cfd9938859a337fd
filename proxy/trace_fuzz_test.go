package proxy

import (
	"context"
	"net/http"
	"regexp"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceparentRE is what wellFormedTraceparent checks, as the regular
// expression of its documentation.
var traceparentRE = regexp.MustCompile(`^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[0-9a-f-]*)?$`)

// FuzzTraceparent feeds the caller's traceparent and tracestate parser
// arbitrary headers. It must never panic, and whatever it accepts the
// OpenTelemetry propagator must read the same way: the same trace id, span
// id and sampled flag, so that the gateway's spans join the caller's trace
// exactly as any OpenTelemetry service's would.
func FuzzTraceparent(f *testing.F) {
	for _, s := range [][2]string{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", ""},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra", "a=b"},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", "k=v\x00"},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", ""},
		{"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, tp, ts string) {
		if got, want := wellFormedTraceparent(tp), traceparentRE.MatchString(tp); got != want {
			t.Fatalf("wellFormedTraceparent(%q) = %v, the regular expression says %v", tp, got, want)
		}
		r := &http.Request{Header: http.Header{}}
		r.Header.Set("Traceparent", tp)
		if ts != "" {
			r.Header.Set("Tracestate", ts)
		}
		sc, ok := callerSpanContext(r)
		id, idOK := callerTraceID(r)
		if ok != idOK {
			t.Fatalf("callerSpanContext ok=%v but callerTraceID ok=%v for %q", ok, idOK, tp)
		}
		if !ok {
			return
		}
		if id != sc.TraceID().String() {
			t.Fatalf("trace id %q, span context %s", id, sc.TraceID())
		}
		want := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(r.Header)))
		if !want.IsValid() {
			t.Fatalf("accepted %q, which the OpenTelemetry propagator refuses", tp)
		}
		if want.TraceID() != sc.TraceID() || want.SpanID() != sc.SpanID() || want.IsSampled() != sc.IsSampled() {
			t.Fatalf("%q: read as %s/%s sampled=%v, the propagator reads %s/%s sampled=%v",
				tp, sc.TraceID(), sc.SpanID(), sc.IsSampled(), want.TraceID(), want.SpanID(), want.IsSampled())
		}
	})
}
