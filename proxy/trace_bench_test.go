package proxy

import (
	"context"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// discardExporter drops every batch: the benchmarks measure the request
// path, the SDK's span recording and the batch processor's queue, not an
// endpoint.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkServeTracing runs BenchmarkGateway's whole chain (mTLS, the
// default Rego policy, rewrite, forward, audit) for a request that carries
// a traceparent, with tracing off and on (the SDK with a batch processor,
// every span sampled, or none: the caller's context says not sampled).
func BenchmarkServeTracing(b *testing.B) {
	b.Run("off", func(b *testing.B) { benchmarkTracing(b, nil, "01") })
	b.Run("on", func(b *testing.B) {
		benchmarkTracing(b, sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{})), "01")
	})
	b.Run("on-not-sampled", func(b *testing.B) {
		benchmarkTracing(b, sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{})), "00")
	})
}

func benchmarkTracing(b *testing.B, tp *sdktrace.TracerProvider, flags string) {
	var tracer trace.Tracer
	if tp != nil {
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		tracer = tp.Tracer("bench")
	}
	h, cert := benchGateway(b, tracer)
	traceparent := "00-" + callerTrace + "-" + callerSpan + "-" + flags
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := benchRequestFor(cert, benchQuery)
			r.Header.Set("Traceparent", traceparent)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatal(w.Code, w.Body.String())
			}
		}
	})
}
