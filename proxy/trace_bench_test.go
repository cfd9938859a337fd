package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tracing"
)

// discardExporter drops every batch: the benchmarks measure the request
// path, the SDK's span recording and the batch processor's queue, not an
// endpoint.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkServeTracing runs BenchmarkGateway's whole chain (mTLS, the
// default Rego policy, rewrite, forward, audit) for a request that carries
// a traceparent (or none: the -new-trace cases), with tracing off and on: the gateway's tracer (package
// tracing) with every span sampled, or none (the caller's context says not
// sampled), and, for comparison, the OpenTelemetry SDK's tracer provider
// with its batch processor, every span sampled.
func BenchmarkServeTracing(b *testing.B) {
	b.Run("off", func(b *testing.B) { benchmarkTracing(b, nil, "01") })
	b.Run("on", func(b *testing.B) { benchmarkTracing(b, gatewayTracer(b), "01") })
	b.Run("on-not-sampled", func(b *testing.B) { benchmarkTracing(b, gatewayTracer(b), "00") })
	b.Run("on-otlp", func(b *testing.B) { benchmarkTracing(b, otlpTracer(b), "01") })
	// No traceparent from the caller, as in the bench harness: a new trace.
	b.Run("off-new-trace", func(b *testing.B) { benchmarkTracing(b, nil, "") })
	b.Run("on-otlp-new-trace", func(b *testing.B) { benchmarkTracing(b, otlpTracer(b), "") })
	b.Run("on-sdk", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		benchmarkTracing(b, tp.Tracer("bench"), "01")
	})
}

// discardSpans drops every batch of the gateway's tracer.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []*tracing.SpanData) error { return nil }
func (discardSpans) Shutdown(context.Context) error                         { return nil }

// gatewayTracer is the tracer `promgate serve` runs with tracing on (no
// sample ratio: parent-based, every new trace sampled), exporting to
// discardSpans.
func gatewayTracer(b *testing.B) trace.Tracer {
	p, err := tracing.New(config.Tracing{Enabled: true}, tracing.Options{
		Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(), Version: "bench",
		Getenv: func(string) string { return "" }, Exporter: discardSpans{},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p.Tracer()
}

// otlpTracer is gatewayTracer exporting over OTLP/HTTP, as `promgate
// serve` does, to a local endpoint that reads and drops each request (its
// own cost is in the figures too, and small).
func otlpTracer(b *testing.B) trace.Tracer {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(sink.Close)
	p, err := tracing.New(config.Tracing{Enabled: true, Endpoint: sink.URL}, tracing.Options{
		Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(), Version: "bench",
		Getenv: func(string) string { return "" },
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p.Tracer()
}

func benchmarkTracing(b *testing.B, tracer trace.Tracer, flags string) {
	h, cert := benchGateway(b, tracer)
	traceparent := "00-" + callerTrace + "-" + callerSpan + "-" + flags
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := benchRequestFor(cert, benchQuery)
			if flags != "" {
				r.Header.Set("Traceparent", traceparent)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatal(w.Code, w.Body.String())
			}
		}
	})
}
