package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/promgate/promgate/config"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func ratio(r float64) *float64 { return &r }

func TestOffCreatesNothing(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  config.Tracing
		vars map[string]string
	}{
		"disabled":          {config.Tracing{}, nil},
		"OTEL_SDK_DISABLED": {config.Tracing{Enabled: true}, map[string]string{"OTEL_SDK_DISABLED": "true"}},
	} {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			p, err := New(tc.cfg, Options{Logger: discardLogger(), Registerer: reg, Getenv: env(tc.vars)})
			if err != nil {
				t.Fatal(err)
			}
			if p.Tracer() != nil || p.Endpoint() != "" {
				t.Errorf("tracer %v, endpoint %q; want none", p.Tracer(), p.Endpoint())
			}
			if err := p.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
			if n, _ := testutil.GatherAndCount(reg); n != 0 {
				t.Errorf("%d metrics registered while off", n)
			}
		})
	}
	var nilProvider *Provider
	if nilProvider.Tracer() != nil || nilProvider.Shutdown(context.Background()) != nil {
		t.Error("a nil Provider must be off")
	}
}

// memExporter keeps what it is sent.
type memExporter struct {
	mu    sync.Mutex
	spans []*SpanData
}

func (m *memExporter) ExportSpans(_ context.Context, spans []*SpanData) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.spans = append(m.spans, spans...)
	return nil
}

func (m *memExporter) Shutdown(context.Context) error { return nil }

func (m *memExporter) get() []*SpanData {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*SpanData(nil), m.spans...)
}

func TestProviderResourceAndSampler(t *testing.T) {
	mem := &memExporter{}
	// The SDK reads the resource's variables from the process itself.
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
	p, err := New(config.Tracing{Enabled: true, SampleRatio: ratio(0)}, Options{
		Logger: discardLogger(), Registerer: prometheus.NewRegistry(), Version: "1.2.3", Exporter: mem,
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Tracer()
	// Ratio 0: a new trace is not sampled, but a caller's sampled one is
	// followed (parent-based).
	_, root := tr.Start(context.Background(), "root")
	root.End()
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	_, child := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "child")
	child.End()
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := mem.get()
	if len(spans) != 1 || spans[0].Name != "child" || spans[0].SpanContext.TraceID() != parent.TraceID() {
		t.Fatalf("exported %v, want only the child of the sampled caller", spans)
	}
	attrs := map[attribute.Key]string{}
	for _, kv := range p.res.Attributes() {
		attrs[kv.Key] = kv.Value.String()
	}
	for k, want := range map[attribute.Key]string{"service.name": "promgate", "service.version": "1.2.3", "deployment.environment": "test"} {
		if attrs[k] != want {
			t.Errorf("resource %s = %q, want %q", k, attrs[k], want)
		}
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestExportConfig(t *testing.T) {
	dir := t.TempDir()
	headers := filepath.Join(dir, "headers")
	if err := os.WriteFile(headers, []byte("# the collector's key\nX-Api-Key: s3cr3t-from-file\n\nX-Tenant: a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cfg      config.Tracing
		vars     map[string]string
		endpoint string
		headers  map[string]string
		timeout  time.Duration
		gzip     bool
	}{
		{name: "default", endpoint: defaultEndpoint, timeout: defaultTimeout},
		{name: "config without path", cfg: config.Tracing{Endpoint: "http://collector:4318"}, endpoint: "http://collector:4318/v1/traces", timeout: defaultTimeout},
		{name: "config wins", cfg: config.Tracing{Endpoint: "https://collector/otlp/v1/traces"},
			vars:     map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://env:4318/x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"},
			endpoint: "https://collector/otlp/v1/traces", timeout: defaultTimeout},
		{name: "traces endpoint as is", vars: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://env:4318/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"},
			endpoint: "http://env:4318/custom", timeout: defaultTimeout},
		{name: "base endpoint gets the path", vars: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318/base/"},
			endpoint: "http://env:4318/base/v1/traces", timeout: defaultTimeout},
		{name: "headers, file then env", cfg: config.Tracing{HeadersFile: headers},
			vars: map[string]string{
				"OTEL_EXPORTER_OTLP_HEADERS":        "x-tenant=b,authorization=Basic%20YWJj",
				"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=c",
			},
			endpoint: defaultEndpoint, timeout: defaultTimeout,
			headers: map[string]string{"X-Api-Key": "s3cr3t-from-file", "X-Tenant": "c", "Authorization": "Basic YWJj"}},
		{name: "timeout and compression", vars: map[string]string{
			"OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1500", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
		}, endpoint: defaultEndpoint, timeout: 1500 * time.Millisecond, gzip: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ec, err := exportConfigOf(tc.cfg, env(tc.vars))
			if err != nil {
				t.Fatal(err)
			}
			if ec.endpoint != tc.endpoint || ec.timeout != tc.timeout || ec.gzip != tc.gzip {
				t.Errorf("endpoint %q timeout %v gzip %v; want %q %v %v", ec.endpoint, ec.timeout, ec.gzip, tc.endpoint, tc.timeout, tc.gzip)
			}
			if len(ec.headers) != len(tc.headers) {
				t.Errorf("headers %v, want %v", ec.headers, tc.headers)
			}
			for k, v := range tc.headers {
				if got := ec.headers.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if strings.HasPrefix(ec.endpoint, "https:") != (ec.tls != nil) {
				t.Errorf("tls config %v for %s", ec.tls, ec.endpoint)
			}
		})
	}
}

func TestExportConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "headers")
	if err := os.WriteFile(bad, []byte("X-Api-Key s3cr3t-no-colon\nContent-Type: s3cr3t-reserved\nBad Name: s3cr3t-name\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  config.Tracing
		vars map[string]string
		want []string
	}{
		{name: "headers file", cfg: config.Tracing{HeadersFile: bad},
			want: []string{"tracing.headers_file: line 1 is not Name: value", "line 2: header Content-Type is set by the exporter", "line 3: a header name is not an HTTP token"}},
		{name: "missing headers file", cfg: config.Tracing{HeadersFile: filepath.Join(dir, "missing")}, want: []string{"tracing.headers_file:"}},
		{name: "env headers", vars: map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "novalue-s3cr3t,x-key=%zz-s3cr3t"},
			want: []string{"OTEL_EXPORTER_OTLP_HEADERS: entry 1 is not name=value", "header X-Key is not percent-encoded"}},
		{name: "env endpoint credentials", vars: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://u:s3cr3t@collector/v1/traces"}, //nolint:gosec // G101: a made-up credential; the test checks that it is refused and not repeated
			want: []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: must not carry credentials"}},
		{name: "env endpoint scheme", vars: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"},
			want: []string{"OTEL_EXPORTER_OTLP_ENDPOINT: not an http or https URL"}},
		{name: "timeout", vars: map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, want: []string{`OTEL_EXPORTER_OTLP_TIMEOUT: "10s" is not a timeout`}},
		{name: "compression", vars: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "zstd"}, want: []string{`OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: "zstd" is not gzip or none`}},
		{name: "certificate", cfg: config.Tracing{Endpoint: "https://collector"}, vars: map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": bad},
			want: []string{"OTEL_EXPORTER_OTLP_CERTIFICATE: " + bad + " holds no PEM certificate"}},
		{name: "client key alone", cfg: config.Tracing{Endpoint: "https://collector"}, vars: map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_KEY": bad},
			want: []string{"go together"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := exportConfigOf(tc.cfg, env(tc.vars))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q repeats a secret", err)
			}
		})
	}
}

// collector is an OTLP/HTTP endpoint. It decodes the body as TracesData,
// which is wire-identical to the collector's ExportTraceServiceRequest (whose
// package would bring gRPC into the module's requirements).
type collector struct {
	srv *httptest.Server

	mu       sync.Mutex
	reqs     []*tracepb.TracesData
	headers  []http.Header
	statuses []int // answered in order; 200 once they run out
}

func newCollector(t *testing.T, statuses ...int) *collector {
	c := &collector{statuses: statuses}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.headers = append(c.headers, r.Header.Clone())
		if len(c.statuses) > 0 {
			status := c.statuses[0]
			c.statuses = c.statuses[1:]
			w.WriteHeader(status)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		req := &tracepb.TracesData{}
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(b, req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		c.reqs = append(c.reqs, req)
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) spans() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, r := range c.reqs {
		for _, rs := range r.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				out = append(out, ss.Spans...)
			}
		}
	}
	return out
}

func TestExporterEndToEnd(t *testing.T) {
	col := newCollector(t, http.StatusServiceUnavailable) // one retry
	dir := t.TempDir()
	headers := filepath.Join(dir, "headers")
	if err := os.WriteFile(headers, []byte("X-Api-Key: s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p, err := New(config.Tracing{Enabled: true, Endpoint: col.srv.URL, HeadersFile: headers}, Options{
		Logger: discardLogger(), Registerer: reg, Version: "test",
		Getenv: env(map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Endpoint() != col.srv.URL+"/v1/traces" {
		t.Errorf("endpoint %q", p.Endpoint())
	}
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9}, SpanID: trace.SpanID{0x00, 0xf0}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	ctx, server := p.Tracer().Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "promgate query",
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.String("promgate.route", "query"), attribute.Int("http.response.status_code", 200)))
	_, child := p.Tracer().Start(ctx, "upstream", trace.WithSpanKind(trace.SpanKindClient))
	child.End()
	server.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := col.spans()
	if len(spans) != 2 {
		t.Fatalf("collector got %d spans, want 2", len(spans))
	}
	byName := map[string]*tracepb.Span{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	srv, up := byName["promgate query"], byName["upstream"]
	tid := parent.TraceID()
	psid := parent.SpanID()
	switch {
	case srv == nil || up == nil:
		t.Fatalf("spans %v", spans)
	case !bytes.Equal(srv.TraceId, tid[:]) || !bytes.Equal(up.TraceId, tid[:]):
		t.Errorf("trace ids %x %x, want the caller's %x", srv.TraceId, up.TraceId, tid[:])
	case !bytes.Equal(srv.ParentSpanId, psid[:]) || !bytes.Equal(up.ParentSpanId, srv.SpanId):
		t.Errorf("parents: server's %x (want %x), upstream's %x (want %x)", srv.ParentSpanId, psid[:], up.ParentSpanId, srv.SpanId)
	case srv.Kind != tracepb.Span_SPAN_KIND_SERVER || up.Kind != tracepb.Span_SPAN_KIND_CLIENT:
		t.Errorf("kinds %v %v", srv.Kind, up.Kind)
	case srv.Flags&uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK) == 0 || up.Flags&uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK) != 0:
		t.Errorf("flags %x %x: only the server span has a remote parent", srv.Flags, up.Flags)
	case srv.StartTimeUnixNano == 0 || srv.EndTimeUnixNano < srv.StartTimeUnixNano:
		t.Errorf("times %d %d", srv.StartTimeUnixNano, srv.EndTimeUnixNano)
	}
	col.mu.Lock()
	rs := col.reqs[0].ResourceSpans[0]
	col.mu.Unlock()
	res := map[string]string{}
	for _, kv := range rs.Resource.Attributes {
		res[kv.Key] = kv.Value.GetStringValue()
	}
	if res["service.name"] != "promgate" || res["service.version"] != "test" || rs.ScopeSpans[0].Scope.GetName() != ScopeName {
		t.Errorf("resource %v, scope %v", res, rs.ScopeSpans[0].Scope)
	}
	attrs := map[string]string{}
	for _, kv := range srv.Attributes {
		attrs[kv.Key] = kv.Value.String()
	}
	if !strings.Contains(attrs["promgate.route"], "query") || !strings.Contains(attrs["http.response.status_code"], "200") {
		t.Errorf("attributes %v", attrs)
	}
	col.mu.Lock()
	for _, h := range col.headers {
		if h.Get("X-Api-Key") != "s3cr3t" || h.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(h.Get("User-Agent"), "promgate/test") {
			t.Errorf("export headers %v", h)
		}
	}
	if len(col.headers) != 2 {
		t.Errorf("%d posts, want 2 (a 503, then the retry)", len(col.headers))
	}
	col.mu.Unlock()
	want := `# HELP promgate_tracing_spans_total Finished spans, by result: exported, failed (the endpoint refused them or could not be reached), or dropped (the export queue was full).
# TYPE promgate_tracing_spans_total counter
promgate_tracing_spans_total{result="dropped"} 0
promgate_tracing_spans_total{result="exported"} 2
promgate_tracing_spans_total{result="failed"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "promgate_tracing_spans_total"); err != nil {
		t.Error(err)
	}
}

func TestExporterFailure(t *testing.T) {
	col := newCollector(t, http.StatusBadRequest)
	ec := exportConfig{endpoint: col.srv.URL + "/v1/traces", headers: http.Header{"X-Api-Key": {"s3cr3t"}}, timeout: time.Second}
	spans := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spans"}, []string{"result"})
	e := newExporter(ec, "test", spans)
	stub := []*SpanData{{Name: "x", SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})}}
	err := e.ExportSpans(context.Background(), stub)
	if err == nil || !strings.Contains(err.Error(), "answered 400") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %v, want the status and no header", err)
	}
	if got := testutil.ToFloat64(spans.WithLabelValues("failed")); got != 1 {
		t.Errorf("failed spans counted %v, want 1", got)
	}
	// Unreachable: retried until the timeout, then an error.
	col.srv.Close()
	e.cfg.timeout = 300 * time.Millisecond
	e.backoff = 10 * time.Millisecond
	start := time.Now()
	if err := e.ExportSpans(context.Background(), stub); err == nil {
		t.Error("export to a closed endpoint succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gave up after %v, want about the timeout", d)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.ExportSpans(context.Background(), stub); !errors.Is(err, errShutdown) {
		t.Errorf("after shutdown: %v", err)
	}
}
