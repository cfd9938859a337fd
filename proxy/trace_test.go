package proxy

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tracing"
)

const (
	callerTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan   = "00f067aa0ba902b7"
	callerParent = "00-" + callerTrace + "-" + callerSpan + "-01"
	callerState  = "vendor=opaque,other=x"
)

// spanLog is what a traced fixture's spans are read from.
type spanLog interface {
	GetSpans() tracetest.SpanStubs
	Reset()
}

// eachTracer runs fn with newFixture's gateway traced by each tracer the
// proxy may be given: the gateway's own (package tracing, as `promgate
// serve` builds it, with every new trace sampled or none) and the
// OpenTelemetry SDK's, with the sampler parent-based on always or never.
func eachTracer(t *testing.T, sampleNew bool, fn func(t *testing.T, f *fixture, mem spanLog)) {
	t.Run("gateway", func(t *testing.T) {
		f := newFixture(t)
		log := &gatewaySpans{}
		var ratio *float64
		if !sampleNew {
			ratio = new(float64)
		}
		p, err := tracing.New(config.Tracing{Enabled: true, SampleRatio: ratio}, tracing.Options{
			Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(), Version: "test",
			Getenv: func(string) string { return "" }, Exporter: log,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
		log.p = p
		f.h = tracedHandler(t, f, p.Tracer())
		fn(t, f, log)
	})
	t.Run("sdk", func(t *testing.T) {
		f := newFixture(t)
		sampler := sdktrace.ParentBased(sdktrace.NeverSample())
		if sampleNew {
			sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
		}
		mem := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem), sdktrace.WithSampler(sampler))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		f.h = tracedHandler(t, f, tp.Tracer("test"))
		fn(t, f, mem)
	})
}

func tracedHandler(t *testing.T, f *fixture, tracer trace.Tracer) *Handler {
	t.Helper()
	h, err := New(Options{
		Config: f.h.cfg, Authn: f.h.authn, Authz: f.dec, Audit: f.aud,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(),
		UpstreamToken: func() string { return "upstream-secret" },
		Tracer:        tracer,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// gatewaySpans receives the gateway tracer's spans, as the SDK's stubs.
type gatewaySpans struct {
	p     *tracing.Provider
	mu    sync.Mutex
	spans tracetest.SpanStubs
}

func (g *gatewaySpans) ExportSpans(_ context.Context, spans []*tracing.SpanData) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range spans {
		parent := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: s.SpanContext.TraceID(), SpanID: s.ParentSpanID, Remote: s.ParentRemote,
		})
		g.spans = append(g.spans, tracetest.SpanStub{
			Name: s.Name, SpanContext: s.SpanContext, Parent: parent, SpanKind: s.Kind,
			StartTime: time.Unix(0, s.Start), EndTime: time.Unix(0, s.End),
			Attributes: s.Attributes, Status: sdktrace.Status{Code: s.StatusCode, Description: s.StatusDescription},
		})
	}
	return nil
}

func (g *gatewaySpans) Shutdown(context.Context) error { return nil }

// GetSpans flushes the batch queue, then returns every span exported.
func (g *gatewaySpans) GetSpans() tracetest.SpanStubs {
	if err := g.p.ForceFlush(context.Background()); err != nil {
		panic(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.spans)
}

func (g *gatewaySpans) Reset() {
	_ = g.p.ForceFlush(context.Background())
	g.mu.Lock()
	defer g.mu.Unlock()
	g.spans = nil
}

// credentials are sent besides the client certificate; no span may show them.
var credentials = map[string]string{
	"Authorization": "Bearer caller-secret-token",
	"Cookie":        "__Host-promgate_session=caller-secret-cookie",
}

func withHeaders(h ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range h {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	t.Fatalf("no span %q among %v", name, names)
	return tracetest.SpanStub{}
}

func attrs(s tracetest.SpanStub) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// checkNoSecrets fails when a span's name, attributes, status or events
// hold a credential or the upstream's token.
func checkNoSecrets(t *testing.T, spans tracetest.SpanStubs) {
	t.Helper()
	for _, s := range spans {
		texts := []string{s.Name, s.Status.Description}
		for _, kv := range s.Attributes {
			texts = append(texts, string(kv.Key), kv.Value.String())
		}
		for _, e := range s.Events {
			texts = append(texts, e.Name)
			for _, kv := range e.Attributes {
				texts = append(texts, kv.Value.String())
			}
		}
		for _, txt := range texts {
			if strings.Contains(txt, "secret") || strings.Contains(txt, "Bearer") {
				t.Errorf("span %q holds %q", s.Name, txt)
			}
		}
	}
}

func TestTracingSpans(t *testing.T) {
	eachTracer(t, true, func(t *testing.T, f *fixture, mem spanLog) {
		w := f.do(t, request{user: "alice", target: "/api/v1/query?query=up",
			header: withHeaders(credentials, map[string]string{"Traceparent": callerParent, "Tracestate": callerState})})
		if w.Code != http.StatusOK {
			t.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
		spans := mem.GetSpans()
		if len(spans) != 5 {
			t.Errorf("%d spans, want 5 (server, authn, policy, rewrite, upstream)", len(spans))
		}
		server := spanNamed(t, spans, "promgate query")
		// The server span continues the caller's trace, under the caller's span.
		if got := server.SpanContext.TraceID().String(); got != callerTrace {
			t.Errorf("trace id %s, want the caller's %s", got, callerTrace)
		}
		if !server.Parent.IsRemote() || server.Parent.SpanID().String() != callerSpan {
			t.Errorf("server span's parent %v, want the caller's remote span %s", server.Parent, callerSpan)
		}
		if server.SpanKind != trace.SpanKindServer {
			t.Errorf("server span kind %v", server.SpanKind)
		}
		if got := server.SpanContext.TraceState().String(); got != callerState {
			t.Errorf("tracestate %q, want the caller's %q", got, callerState)
		}
		rec := f.aud.records[len(f.aud.records)-1]
		want := map[attribute.Key]string{
			"promgate.route":            RouteQuery,
			"http.request.method":       "GET",
			"http.response.status_code": "200",
			"promgate.request_id":       rec.ID,
			"promgate.identity.subject": "alice",
			"promgate.identity.method":  "mtls",
			"promgate.decision":         "allow",
		}
		if got := attrs(server); !mapsEqual(got, want) {
			t.Errorf("server span attributes %v, want %v", got, want)
		}
		// One child a step, in order, each under the server span.
		var last trace.SpanContext
		var prev *tracetest.SpanStub
		for _, name := range []string{spanAuthn, spanPolicy, spanRewrite, spanUpstream} {
			s := spanNamed(t, spans, name)
			if s.Parent.SpanID() != server.SpanContext.SpanID() || s.SpanContext.TraceID() != server.SpanContext.TraceID() {
				t.Errorf("%s span's parent %v, want the server span %v", name, s.Parent.SpanID(), server.SpanContext.SpanID())
			}
			if s.StartTime.Before(server.StartTime) || s.EndTime.After(server.EndTime) {
				t.Errorf("%s span [%v, %v] outside the server span [%v, %v]", name, s.StartTime, s.EndTime, server.StartTime, server.EndTime)
			}
			if prev != nil && s.StartTime.Before(prev.EndTime) {
				t.Errorf("%s starts before %s ends", name, prev.Name)
			}
			prev, last = &s, s.SpanContext
		}
		up := spanNamed(t, spans, spanUpstream)
		if up.SpanKind != trace.SpanKindClient || attrs(up)["http.response.status_code"] != "200" {
			t.Errorf("upstream span kind %v, attributes %v", up.SpanKind, attrs(up))
		}
		// The upstream sees the gateway's upstream span as its parent, in the
		// caller's trace, with the caller's tracestate.
		fwd, _ := f.up.last()
		if got, want := fwd.Header.Get("Traceparent"), "00-"+callerTrace+"-"+last.SpanID().String()+"-01"; got != want {
			t.Errorf("upstream traceparent %q, want %q", got, want)
		}
		if got := fwd.Header.Get("Tracestate"); got != callerState {
			t.Errorf("upstream tracestate %q, want %q", got, callerState)
		}
		if rec.TraceID != callerTrace {
			t.Errorf("audit trace_id %q, want %q", rec.TraceID, callerTrace)
		}
		checkNoSecrets(t, spans)
	})
}

func TestTracingNewTrace(t *testing.T) {
	eachTracer(t, true, func(t *testing.T, f *fixture, mem spanLog) {
		// A traceparent that is not valid W3C (version ff) starts a new trace.
		for _, tp := range []string{"", "ff-" + callerTrace + "-" + callerSpan + "-01", "00-" + callerTrace + "-" + callerSpan + "-01,00-" + callerTrace + "-" + callerSpan + "-01"} {
			mem.Reset()
			hdr := map[string]string{}
			if tp != "" {
				hdr["Traceparent"] = tp
			}
			if w := f.do(t, request{user: "root", target: "/api/v1/query?query=up", header: hdr}); w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			server := spanNamed(t, mem.GetSpans(), "promgate query")
			id := server.SpanContext.TraceID().String()
			if server.Parent.IsValid() || id == callerTrace {
				t.Errorf("traceparent %q: server span's parent %v, trace %s; want a new root", tp, server.Parent, id)
			}
			rec := f.aud.records[len(f.aud.records)-1]
			fwd, _ := f.up.last()
			if rec.TraceID != id || !strings.HasPrefix(fwd.Header.Get("Traceparent"), "00-"+id+"-") {
				t.Errorf("traceparent %q: audit trace_id %q, upstream traceparent %q; want the new trace %s", tp, rec.TraceID, fwd.Header.Get("Traceparent"), id)
			}
		}
	})
}

func TestTracingDenied(t *testing.T) {
	eachTracer(t, true, func(t *testing.T, f *fixture, mem spanLog) {
		if w := f.do(t, request{user: "mallory", target: "/api/v1/query?query=up", header: withHeaders(credentials, map[string]string{"Traceparent": callerParent})}); w.Code != http.StatusForbidden {
			t.Fatalf("status %d", w.Code)
		}
		spans := mem.GetSpans()
		server := spanNamed(t, spans, "promgate query")
		if a := attrs(server); a["promgate.decision"] != "deny" || a["http.response.status_code"] != "403" || a["promgate.identity.subject"] != "mallory" {
			t.Errorf("server span attributes %v", a)
		}
		if server.Status.Code == codes.Error {
			t.Error("a denial is not an error of the gateway")
		}
		var names []string
		for _, s := range spans {
			names = append(names, s.Name)
		}
		slices.Sort(names)
		if want := []string{spanAuthn, spanPolicy, "promgate query"}; !slices.Equal(names, want) {
			t.Errorf("spans %v, want %v: nothing after the denial", names, want)
		}
		checkNoSecrets(t, spans)

		// Unauthenticated: the authentication step only, no identity.
		mem.Reset()
		if w := f.do(t, request{target: "/api/v1/query?query=up", header: withHeaders(credentials, map[string]string{"Traceparent": callerParent})}); w.Code != http.StatusUnauthorized {
			t.Fatalf("status %d", w.Code)
		}
		spans = mem.GetSpans()
		server = spanNamed(t, spans, "promgate unknown")
		if a := attrs(server); len(spans) != 2 || a["http.response.status_code"] != "401" || a["promgate.identity.subject"] != "" || a["promgate.decision"] != "" {
			t.Errorf("%d spans; server span attributes %v", len(spans), a)
		}
		checkNoSecrets(t, spans)
	})
}

func TestTracingUpstreamFailure(t *testing.T) {
	eachTracer(t, true, func(t *testing.T, f *fixture, mem spanLog) {
		cfg := *f.h.cfg
		cfg.Upstream.URL = "http://127.0.0.1:1" // nothing listens
		up, err := newUpstream(&cfg, nil, f.h.token, f.h.tel, f.h.log)
		if err != nil {
			t.Fatal(err)
		}
		f.h.up = up
		if w := f.do(t, request{user: "root", target: "/api/v1/query?query=up"}); w.Code != http.StatusBadGateway {
			t.Fatalf("status %d", w.Code)
		}
		spans := mem.GetSpans()
		if s := spanNamed(t, spans, spanUpstream); s.Status.Code != codes.Error {
			t.Errorf("upstream span status %v, want an error", s.Status)
		}
		if s := spanNamed(t, spans, "promgate query"); s.Status.Code != codes.Error || attrs(s)["http.response.status_code"] != "502" {
			t.Errorf("server span status %v, attributes %v", s.Status, attrs(s))
		}
	})
}

func TestTracingNotSampled(t *testing.T) {
	// Not sampled: no span is exported, yet the upstream gets the
	// gateway's context with the sampled flag off, and the audit record the
	// trace id.
	eachTracer(t, false, func(t *testing.T, f *fixture, mem spanLog) {
		if w := f.do(t, request{user: "root", target: "/api/v1/query?query=up"}); w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
		if n := len(mem.GetSpans()); n != 0 {
			t.Errorf("%d spans exported, want none", n)
		}
		rec := f.aud.records[len(f.aud.records)-1]
		fwd, _ := f.up.last()
		if tp := fwd.Header.Get("Traceparent"); rec.TraceID == "" || !strings.HasPrefix(tp, "00-"+rec.TraceID+"-") || !strings.HasSuffix(tp, "-00") {
			t.Errorf("upstream traceparent %q, audit trace_id %q", tp, rec.TraceID)
		}
	})
}

func TestTracingOff(t *testing.T) {
	tests := []struct {
		name        string
		header      map[string]string
		wantParent  string // forwarded upstream
		wantState   string
		wantAuditID string
	}{
		{name: "none"},
		{name: "valid", header: map[string]string{"Traceparent": callerParent, "Tracestate": callerState},
			wantParent: callerParent, wantState: callerState, wantAuditID: callerTrace},
		{name: "future version", header: map[string]string{"Traceparent": "01-" + callerTrace + "-" + callerSpan + "-01-abc"},
			wantParent: "01-" + callerTrace + "-" + callerSpan + "-01-abc", wantAuditID: callerTrace},
		// Passed through as before, but not a W3C trace, so not recorded.
		{name: "zero trace id", header: map[string]string{"Traceparent": "00-00000000000000000000000000000000-" + callerSpan + "-01"},
			wantParent: "00-00000000000000000000000000000000-" + callerSpan + "-01"},
		{name: "version ff", header: map[string]string{"Traceparent": "ff-" + callerTrace + "-" + callerSpan + "-01"},
			wantParent: "ff-" + callerTrace + "-" + callerSpan + "-01"},
		{name: "upper case", header: map[string]string{"Traceparent": "00-" + strings.ToUpper(callerTrace) + "-" + callerSpan + "-01", "Tracestate": callerState}},
		{name: "bad tracestate dropped", header: map[string]string{"Traceparent": callerParent, "Tracestate": "a=\x01"},
			wantParent: callerParent, wantAuditID: callerTrace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if w := f.do(t, request{user: "root", target: "/api/v1/query?query=up", header: tc.header}); w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			fwd, _ := f.up.last()
			if got := fwd.Header.Get("Traceparent"); got != tc.wantParent {
				t.Errorf("upstream traceparent %q, want %q", got, tc.wantParent)
			}
			if got := fwd.Header.Get("Tracestate"); got != tc.wantState {
				t.Errorf("upstream tracestate %q, want %q", got, tc.wantState)
			}
			if got := f.aud.records[len(f.aud.records)-1].TraceID; got != tc.wantAuditID {
				t.Errorf("audit trace_id %q, want %q", got, tc.wantAuditID)
			}
		})
	}
	// Sent twice: neither passed through nor recorded.
	f := newFixture(t)
	r := httptest.NewRequest(http.MethodGet, "https://gw.example/api/v1/query?query=up", nil)
	r.TLS = verifiedState(f.certs["root"])
	r.Header["Traceparent"] = []string{callerParent, callerParent}
	f.h.ServeHTTP(httptest.NewRecorder(), r)
	fwd, _ := f.up.last()
	if fwd.Header.Get("Traceparent") != "" || f.aud.records[len(f.aud.records)-1].TraceID != "" {
		t.Errorf("a repeated traceparent was used: %q", fwd.Header.Get("Traceparent"))
	}
}

func mapsEqual(a, b map[attribute.Key]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestInjectMatchesPropagator checks injectTraceContext against
// OpenTelemetry's own TraceContext propagator, for every flag byte and with
// and without a tracestate.
func TestInjectMatchesPropagator(t *testing.T) {
	ts, err := trace.ParseTraceState(callerState)
	if err != nil {
		t.Fatal(err)
	}
	for flags := range 256 {
		for _, state := range []trace.TraceState{{}, ts} {
			sc := trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 15: 0x36}, SpanID: trace.SpanID{0, 0xf0, 7: 0xb7},
				TraceFlags: trace.TraceFlags(flags), TraceState: state,
			})
			got, want := http.Header{}, http.Header{}
			injectTraceContext(got, sc)
			propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(want))
			if !maps.EqualFunc(got, want, slices.Equal) {
				t.Fatalf("flags %02x, tracestate %q: wrote %v, the propagator %v", flags, state.String(), got, want)
			}
		}
	}
	hdr := http.Header{}
	injectTraceContext(hdr, trace.SpanContext{})
	if len(hdr) != 0 {
		t.Errorf("an invalid span context wrote %v", hdr)
	}
}

// TestInjectSharesOnlyItsOwnValue checks reqTrace.inject: the first
// upstream span's traceparent is made once and shared by the headers that
// send it, a later upstream span's gets a value of its own (so that the
// first header still says what it said), both are what injectTraceContext
// writes, and the audit record's trace id is the one they carry.
func TestInjectSharesOnlyItsOwnValue(t *testing.T) {
	ts, _ := trace.ParseTraceState(callerState)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x4b, 15: 0x36}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, TraceState: ts})
	tr := &reqTrace{sc: sc}
	want := func(sc trace.SpanContext) http.Header {
		h := http.Header{}
		injectTraceContext(h, sc)
		return h
	}
	if !tr.inject(http.Header{}) || tr.traceID() != sc.TraceID().String() {
		t.Fatalf("the server span's context: trace id %q", tr.traceID())
	}
	// An upstream span, then another.
	tr = &reqTrace{sc: sc}
	tr.upSC = sc.WithSpanID(trace.SpanID{2})
	first, again := http.Header{}, http.Header{}
	tr.inject(first)
	tr.inject(again)
	tr.upSC = sc.WithSpanID(trace.SpanID{3})
	second := http.Header{}
	tr.inject(second)
	for _, c := range []struct {
		got  http.Header
		span byte
	}{{first, 2}, {again, 2}, {second, 3}} {
		if w := want(sc.WithSpanID(trace.SpanID{c.span})); !maps.EqualFunc(c.got, w, slices.Equal) {
			t.Errorf("span %d: wrote %v, want %v", c.span, c.got, w)
		}
	}
	if tr.traceID() != sc.TraceID().String() {
		t.Errorf("trace id %q", tr.traceID())
	}
	var none *reqTrace
	if hdr := (http.Header{}); none.inject(hdr) || len(hdr) != 0 {
		t.Errorf("tracing off wrote %v", hdr)
	}
}

// TestTracingReusedSpansConcurrent serves requests from many goroutines
// with the gateway's tracer exporting over OTLP/HTTP, which reuses each
// request's record (tracing.Request) once exported, with batches small and
// frequent enough to export while the requests run. Under -race (make
// test), a record touched after its request ended is a data race with its
// reuse; and every
// exported trace must be one request's: the server span's request id is
// the audit record's of that trace, and the upstream saw that trace's
// upstream span as its parent.
func TestTracingReusedSpansConcurrent(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var got []*tracepb.Span
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var td tracepb.TracesData
		if err := proto.Unmarshal(b, &td); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range td.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				got = append(got, ss.Spans...)
			}
		}
	}))
	t.Cleanup(sink.Close)
	p, err := tracing.New(config.Tracing{Enabled: true, Endpoint: sink.URL}, tracing.Options{
		Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(), Version: "test",
		Getenv: func(k string) string {
			return map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "1", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8", "OTEL_BSP_MAX_QUEUE_SIZE": "100000"}[k]
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.h = tracedHandler(t, f, p.Tracer())
	const workers, requests = 8, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range requests {
				// A time of its own, so that no two requests are coalesced.
				at := strconv.FormatInt(time.Now().Unix()-int64(w*requests+i), 10)
				user, target := "alice", "/api/v1/query?query=up&time="+at
				switch i % 3 {
				case 1:
					user = "mallory" // denied: no upstream span
				case 2:
					user, target = "root", "/api/v1/labels?start="+at
				}
				wr := f.do(t, request{user: user, target: target, header: map[string]string{
					"Traceparent": fmt.Sprintf("00-%016x%016x-%s-01", w+1, i+1, callerSpan),
				}})
				if want := map[bool]int{true: http.StatusForbidden, false: http.StatusOK}[user == "mallory"]; wr.Code != want {
					t.Errorf("%s %s: status %d, want %d: %s", user, target, wr.Code, want, wr.Body.String())
				}
			}
		}()
	}
	wg.Wait()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Each trace's spans by name, and its server span's request id.
	traces := map[string]map[string]*tracepb.Span{}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range got {
		tid := hex.EncodeToString(s.TraceId)
		if traces[tid] == nil {
			traces[tid] = map[string]*tracepb.Span{}
		}
		if traces[tid][s.Name] != nil {
			t.Fatalf("trace %s has two %q spans", tid, s.Name)
		}
		traces[tid][s.Name] = s
	}
	if len(traces) != workers*requests {
		t.Fatalf("%d traces exported, want %d", len(traces), workers*requests)
	}
	f.aud.mu.Lock()
	recs := map[string]string{}
	for _, r := range f.aud.records {
		recs[r.TraceID] = r.ID
	}
	f.aud.mu.Unlock()
	sawParent := map[string]string{}
	f.up.mu.Lock()
	for _, r := range f.up.reqs {
		tp := r.Header.Get("Traceparent")
		sawParent[tp[3:35]] = tp[36:52]
	}
	f.up.mu.Unlock()
	checked := 0
	for tid, spans := range traces {
		var server *tracepb.Span
		for name, s := range spans {
			if strings.HasPrefix(name, "promgate ") {
				server = s
			}
		}
		if server == nil {
			t.Fatalf("trace %s has no server span: %v", tid, spans)
		}
		id := ""
		for _, kv := range server.Attributes {
			if kv.Key == "promgate.request_id" {
				id = kv.Value.GetStringValue()
			}
		}
		if id == "" || recs[tid] != id {
			t.Fatalf("trace %s: server span's request id %q, audit record's %q", tid, id, recs[tid])
		}
		for name, s := range spans {
			if s != server && !bytes.Equal(s.ParentSpanId, server.SpanId) {
				t.Fatalf("trace %s: %s's parent %x is not the server span %x", tid, name, s.ParentSpanId, server.SpanId)
			}
		}
		// A request coalesced with another (the same labels request at
		// once) sent nothing upstream of its own.
		if up := spans[spanUpstream]; up != nil {
			if parent, ok := sawParent[tid]; ok {
				checked++
				if parent != hex.EncodeToString(up.SpanId) {
					t.Fatalf("trace %s: the upstream saw parent %q, want the upstream span %x", tid, parent, up.SpanId)
				}
			}
		}
	}
	if checked < workers*requests/2 {
		t.Errorf("only %d upstream requests checked", checked)
	}
}
