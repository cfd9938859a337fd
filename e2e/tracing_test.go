//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP endpoint in the test process. It decodes
// each export as TracesData, which is byte for byte the collector's
// ExportTraceServiceRequest (one `repeated ResourceSpans resource_spans =
// 1`); the collector's Go package would bring gRPC into the module.
type otlpReceiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	spans   []*tracepb.Span
	service []string // service.name of each export's resource
	headers []http.Header
	bad     []string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rcv := &otlpReceiver{}
	rcv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, "gzip", http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := readAll(body)
		data := &tracepb.TracesData{}
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		rcv.headers = append(rcv.headers, r.Header.Clone())
		if err != nil || r.Method != http.MethodPost || r.URL.Path != "/v1/traces" ||
			r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(b, data) != nil {
			rcv.bad = append(rcv.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
			http.Error(w, "not an OTLP/HTTP protobuf export", http.StatusBadRequest)
			return
		}
		for _, rs := range data.ResourceSpans {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					rcv.service = append(rcv.service, kv.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				rcv.spans = append(rcv.spans, ss.Spans...)
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rcv.srv.Close)
	return rcv
}

// trace returns the spans of one trace, by name; a name seen twice fails.
func (rcv *otlpReceiver) trace(t *testing.T, traceID string) map[string]*tracepb.Span {
	t.Helper()
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	out := map[string]*tracepb.Span{}
	for _, s := range rcv.spans {
		if hex.EncodeToString(s.TraceId) != traceID {
			continue
		}
		if out[s.Name] != nil {
			t.Errorf("trace %s has two %q spans", traceID, s.Name)
		}
		out[s.Name] = s
	}
	return out
}

func spanAttrs(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = strconv.FormatInt(v.IntValue, 10)
		case *commonpb.AnyValue_BoolValue:
			m[kv.Key] = strconv.FormatBool(v.BoolValue)
		}
	}
	return m
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// auditTraceIDs reads the trace_id of each record of an audit file, by the
// client's X-Request-Id.
func auditTraceIDs(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r struct {
			ClientRequestID string `json:"client_request_id"`
			TraceID         string `json:"trace_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if r.ClientRequestID != "" {
			out[r.ClientRequestID] = r.TraceID
		}
	}
	return out
}

// TestTracing runs a gateway with tracing on in front of the real
// Prometheus, configured by the standard OTEL_* variables, and checks that
// the test's OTLP receiver gets its spans under the trace id the client sent,
// that Prometheus is asked with the gateway's own upstream span as parent,
// and that the audit record carries the trace id. The batch processor waits
// a minute between exports, so the spans arrive only because SIGTERM flushes
// them.
func TestTracing(t *testing.T) {
	rcv := newOTLPReceiver(t)
	// The gateway inherits the test process' environment.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-e2e-collector-key=e2e-secret-collector")
	t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
	t.Setenv("OTEL_SERVICE_NAME", "promgate-e2e")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
	dir := filepath.Join(env.tmp, "tracing")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The extra lines land after the limits block: a top-level tracing
	// block, with the endpoint left to the environment.
	g := startGatewayWithLimits(t, "tracing", env.rec.url, filepath.Join(dir, "audit.log"), "10MiB", "deny",
		"tracing:\n  enabled: true\n")
	c := newClient(t, g, env.pki, "team-a")

	traceAllowed, traceDenied, parentSpan := randomHex(t, 16), randomHex(t, 16), randomHex(t, 8)
	secret := map[string][]string{"Authorization": {"Bearer e2e-secret-caller-token"}}
	withTrace := func(req request, id, traceID string) request {
		req.header = map[string][]string{
			"X-Request-Id": {id},
			"Traceparent":  {"00-" + traceID + "-" + parentSpan + "-01"},
			"Tracestate":   {"e2e=1"},
		}
		for k, v := range secret {
			req.header[k] = v
		}
		return req
	}

	allowed := c.do(t, withTrace(q(`up{job="team-a"}`), "trace-allowed", traceAllowed))
	if allowed.status != http.StatusOK || len(allowed.fwd) != 1 {
		t.Fatalf("allowed query: %s, %d forwarded", allowed, len(allowed.fwd))
	}
	upParent := allowed.fwd[0].Header.Get("Traceparent")
	if !strings.HasPrefix(upParent, "00-"+traceAllowed+"-") || strings.Contains(upParent, parentSpan) || !strings.HasSuffix(upParent, "-01") {
		t.Errorf("Prometheus got traceparent %q; want the client's trace %s under a span of the gateway", upParent, traceAllowed)
	}
	if got := allowed.fwd[0].Header.Get("Tracestate"); got != "e2e=1" {
		t.Errorf("Prometheus got tracestate %q, want the client's", got)
	}
	// The policy gives nobody no access: a denial, not an error.
	denied := newClient(t, g, env.pki, "nobody").do(t, withTrace(q("up"), "trace-denied", traceDenied))
	if denied.status != http.StatusForbidden || len(denied.fwd) != 0 {
		t.Fatalf("denied query: %s, %d forwarded", denied, len(denied.fwd))
	}
	fresh := c.do(t, request{path: "/api/v1/query", query: q("up").query, header: map[string][]string{"X-Request-Id": {"trace-fresh"}}})
	if fresh.status != http.StatusOK || len(fresh.fwd) != 1 {
		t.Fatalf("query without traceparent: %s", fresh)
	}
	freshParent := fresh.fwd[0].Header.Get("Traceparent")

	// Nothing was exported yet (a minute between batches); SIGTERM
	// flushes the queue before the process exits.
	if err := g.proc.stop(); err != nil {
		t.Fatal(err)
	}

	spans := rcv.trace(t, traceAllowed)
	server := spans["promgate query"]
	if server == nil {
		t.Fatalf("no server span under the client's trace %s; received %d spans, bad exports %v", traceAllowed, len(rcv.spans), rcv.bad)
	}
	if got := hex.EncodeToString(server.ParentSpanId); got != parentSpan {
		t.Errorf("server span's parent %s, want the client's span %s", got, parentSpan)
	}
	if server.Kind != tracepb.Span_SPAN_KIND_SERVER || server.TraceState != "e2e=1" {
		t.Errorf("server span kind %v tracestate %q", server.Kind, server.TraceState)
	}
	a := spanAttrs(server)
	for k, want := range map[string]string{
		"promgate.route": "query", "http.request.method": "GET", "http.response.status_code": "200",
		"promgate.identity.subject": "team-a", "promgate.decision": "allow",
	} {
		if a[k] != want {
			t.Errorf("server span %s = %q, want %q (all: %v)", k, a[k], want, a)
		}
	}
	if a["promgate.request_id"] == "" {
		t.Error("server span without promgate.request_id")
	}
	for _, name := range []string{"authn", "policy", "rewrite", "upstream"} {
		s := spans[name]
		if s == nil {
			t.Errorf("no %s span", name)
			continue
		}
		if !bytes.Equal(s.ParentSpanId, server.SpanId) {
			t.Errorf("%s span's parent %x, want the server span %x", name, s.ParentSpanId, server.SpanId)
		}
	}
	if up := spans["upstream"]; up != nil {
		if want := "00-" + traceAllowed + "-" + hex.EncodeToString(up.SpanId) + "-01"; upParent != want {
			t.Errorf("Prometheus got traceparent %q, want the upstream span's %q", upParent, want)
		}
		if spanAttrs(up)["http.response.status_code"] != "200" || up.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("upstream span %v", up)
		}
	}

	dspans := rcv.trace(t, traceDenied)
	if s := dspans["promgate query"]; s == nil || spanAttrs(s)["promgate.decision"] != "deny" || spanAttrs(s)["http.response.status_code"] != "403" ||
		spanAttrs(s)["promgate.identity.subject"] != "nobody" || s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("denied request's server span %v", s)
	}
	if dspans["upstream"] != nil {
		t.Error("a denied request has an upstream span")
	}

	// A request without traceparent starts its own trace, which Prometheus
	// and the audit record see.
	freshTrace := ""
	if parts := strings.Split(freshParent, "-"); len(parts) == 4 {
		freshTrace = parts[1]
	}
	if freshTrace == "" || rcv.trace(t, freshTrace)["promgate query"] == nil {
		t.Errorf("no spans for the new trace of traceparent %q", freshParent)
	}

	ids := auditTraceIDs(t, g.audit)
	for id, want := range map[string]string{"trace-allowed": traceAllowed, "trace-denied": traceDenied, "trace-fresh": freshTrace} {
		if ids[id] != want {
			t.Errorf("audit record %s: trace_id %q, want %q", id, ids[id], want)
		}
	}

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) > 0 {
		t.Errorf("exports that were not OTLP/HTTP protobuf: %v", rcv.bad)
	}
	for _, s := range rcv.service {
		if s != "promgate-e2e" {
			t.Errorf("resource service.name %q, want OTEL_SERVICE_NAME's", s)
		}
	}
	for _, h := range rcv.headers {
		if h.Get("X-E2e-Collector-Key") != "e2e-secret-collector" || h.Get("Content-Encoding") != "gzip" {
			t.Errorf("export headers %v lack OTEL_EXPORTER_OTLP_HEADERS or gzip", h)
		}
	}
	// No credential in any span, and the collector's key not in the log.
	for _, s := range rcv.spans {
		b, _ := proto.Marshal(s)
		for _, needle := range []string{"secret", "Bearer", "CERTIFICATE"} {
			if bytes.Contains(b, []byte(needle)) {
				t.Errorf("span %q holds %q", s.Name, needle)
			}
		}
	}
	logs, err := os.ReadFile(g.proc.stderr)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(logs, []byte("e2e-secret")) {
		t.Error("the gateway's log holds a secret")
	}
	if !bytes.Contains(logs, []byte(`"msg":"tracing on"`)) || !bytes.Contains(logs, []byte(rcv.srv.URL+"/v1/traces")) {
		t.Errorf("the gateway did not log the tracing endpoint")
	}
}

// TestTracingOffPassesThrough checks the suite's main gateway, which has
// tracing off: the client's traceparent and tracestate reach Prometheus as
// sent, and the audit record keeps the trace id.
func TestTracingOffPassesThrough(t *testing.T) {
	c := newClient(t, env.main, env.pki, "team-a")
	traceID := randomHex(t, 16)
	tp := "00-" + traceID + "-" + randomHex(t, 8) + "-01"
	res := c.do(t, request{path: "/api/v1/query", query: q("up").query, header: map[string][]string{
		"X-Request-Id": {"trace-off-" + traceID}, "Traceparent": {tp}, "Tracestate": {"e2e=off"},
	}})
	if res.status != http.StatusOK || len(res.fwd) != 1 {
		t.Fatalf("%s: %d forwarded", res, len(res.fwd))
	}
	if got := res.fwd[0].Header.Get("Traceparent"); got != tp {
		t.Errorf("Prometheus got traceparent %q, want the client's %q", got, tp)
	}
	if got := res.fwd[0].Header.Get("Tracestate"); got != "e2e=off" {
		t.Errorf("Prometheus got tracestate %q", got)
	}
	// The audit trail is flushed every second.
	deadline := time.Now().Add(5 * time.Second)
	for {
		id, ok := auditTraceIDs(t, env.main.audit)["trace-off-"+traceID]
		if ok {
			if id != traceID {
				t.Errorf("audit trace_id %q, want %q", id, traceID)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no audit record of the request after 5s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
