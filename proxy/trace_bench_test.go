package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
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
	f := newFixture(b)
	up := benchUpstream(b)
	az, err := authz.New(config.Authz{Policies: "../policies", Decision: "data.promgate.authz.decision"},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	cfg := *f.h.cfg
	cfg.Upstream.URL = up.URL
	cfg.Upstream.Coalesce = false
	var tracer trace.Tracer
	if tp != nil {
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		tracer = tp.Tracer("bench")
	}
	h, err := New(Options{Config: &cfg, Authn: f.h.authn, Authz: az, Audit: discard{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(), Tracer: tracer})
	if err != nil {
		b.Fatal(err)
	}
	cert := f.certs["alice"]
	cert.Subject.OrganizationalUnit = []string{"team-a"}
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
