package tracing

import (
	"bytes"
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/promgate/promgate/config"
)

func TestStartRequest(t *testing.T) {
	ts, _ := trace.ParseTraceState("k=v")
	sampledParent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{5}, SpanID: trace.SpanID{6}, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true})
	unsampledParent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{8}, Remote: true})
	for _, tc := range []struct {
		name    string
		sampler *sampling
		parent  trace.SpanContext
		want    bool // recorded
	}{
		{"parent-based follows a sampled parent", parentBased(sdktrace.NeverSample()), sampledParent, true},
		{"parent-based follows a parent not sampled", parentBased(sdktrace.AlwaysSample()), unsampledParent, false},
		{"parent-based root: always", parentBased(sdktrace.AlwaysSample()), trace.SpanContext{}, true},
		{"parent-based root: never", parentBased(sdktrace.NeverSample()), trace.SpanContext{}, false},
		{"plain ignores the parent", plain(sdktrace.AlwaysSample()), unsampledParent, true},
		{"plain never", plain(sdktrace.NeverSample()), sampledParent, false},
		{"parent-based root: ratio 1", parentBased(sdktrace.TraceIDRatioBased(1)), trace.SpanContext{}, true},
		{"parent-based root: ratio 0", parentBased(sdktrace.TraceIDRatioBased(0)), trace.SpanContext{}, false},
		{"plain ratio 0 ignores the parent", plain(sdktrace.TraceIDRatioBased(0)), sampledParent, false},
	} {
		// Only the samplers that take every trace skip the root's call.
		if want := tc.sampler.root.Description() == "AlwaysOnSampler" || tc.sampler.root.Description() == "TraceIDRatioBased{1}"; tc.sampler.always != want {
			t.Errorf("%s: always is %v", tc.name, tc.sampler.always)
		}
		tr, b, mem, _ := newTestTracer(t, tc.sampler, 8)
		r, sc, ok := StartRequest(tr, tc.parent)
		if !ok {
			t.Fatalf("%s: not the gateway's tracer", tc.name)
		}
		switch {
		case (r != nil) != tc.want || sc.IsSampled() != tc.want || !r.SpanContext().Equal(map[bool]trace.SpanContext{true: sc}[tc.want]):
			t.Errorf("%s: recorded %v, sampled %v; want %v", tc.name, r != nil, sc.IsSampled(), tc.want)
		case tc.parent.IsValid() && (sc.TraceID() != tc.parent.TraceID() || sc.TraceState().String() != tc.parent.TraceState().String()):
			t.Errorf("%s: context %v does not continue the parent's trace", tc.name, sc)
		case !sc.IsValid() || sc.SpanID() == tc.parent.SpanID() || sc.IsRemote():
			t.Errorf("%s: span context %v", tc.name, sc)
		}
		// The record decides as the API path does.
		ctx := context.Background()
		if tc.parent.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, tc.parent)
		}
		_, api := tr.Start(ctx, "promgate", trace.WithSpanKind(trace.SpanKindServer))
		if api.IsRecording() != tc.want {
			t.Errorf("%s: the API path decided %v", tc.name, api.IsRecording())
		}
		// A request not recorded (nil) takes every call and does nothing.
		r.Step("authn", trace.SpanKindInternal)
		r.StepResult(200, codes.Unset, "")
		r.Leave()
		r.End(&ServerEnd{Name: "promgate query"})
		api.End()
		if err := b.forceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, want := len(mem.get()), map[bool]int{true: 3, false: 0}[tc.want]; got != want {
			t.Errorf("%s: %d spans exported, want %d", tc.name, got, want)
		}
	}
	if _, _, ok := StartRequest(sdktrace.NewTracerProvider().Tracer("x"), trace.SpanContext{}); ok {
		t.Error("another tracer was taken for the gateway's")
	}
}

// TestRequestSpans checks the spans a Request makes: steps that follow
// each other share an instant, Leave ends a step alone, End ends the open
// step with the server span, statuses merge as SetStatus would have them,
// and the attributes are the ServerEnd's.
func TestRequestSpans(t *testing.T) {
	tr, b, mem, _ := newTestTracer(t, parentBased(sdktrace.AlwaysSample()), 16)
	var clock int64
	tr.now = func() time.Time { clock += 10; return time.Unix(0, clock) }
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})

	r, sc, _ := StartRequest(tr, parent) // 10
	r.Step("authn", trace.SpanKindInternal)
	authn := r.StepContext()
	r.Leave()                                 // 30
	r.Step("policy", trace.SpanKindInternal)  // 40
	r.Step("rewrite", trace.SpanKindInternal) // 50
	r.Step("upstream", trace.SpanKindClient)
	up := r.StepContext()                            // 60
	r.StepResult(0, codes.Error, "no usable answer") // Error replaces Unset
	r.StepResult(502, codes.Unset, "")               // Unset does not replace Error
	end := ServerEnd{
		Name: "promgate query", Route: "query", Method: "GET", Status: 502, RequestID: "r-1",
		Identified: true, Subject: "alice", IdentityMethod: "mtls", Decision: "allow", Coalesced: true,
		StatusCode: codes.Error, StatusDescription: "502 Bad Gateway",
	}
	r.End(&end)           // 70
	end.Route = "changed" // End copied it
	if up.TraceID() != sc.TraceID() || up.SpanID() == sc.SpanID() || up.SpanID() == authn.SpanID() || !up.IsSampled() {
		t.Errorf("step contexts %v %v under %v", authn, up, sc)
	}
	if err := b.forceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]*SpanData{}
	for _, s := range mem.get() {
		got[s.Name] = s
	}
	srv := got["promgate query"]
	if len(got) != 5 || srv == nil {
		t.Fatalf("exported %v, want the server span and four steps", got)
	}
	want := []struct {
		name       string
		kind       trace.SpanKind
		start, end int64
		id         trace.SpanID
	}{
		{"authn", trace.SpanKindInternal, 20, 30, authn.SpanID()},
		{"policy", trace.SpanKindInternal, 40, 50, trace.SpanID{}},
		{"rewrite", trace.SpanKindInternal, 50, 60, trace.SpanID{}},
		{"upstream", trace.SpanKindClient, 60, 70, up.SpanID()},
	}
	for _, w := range want {
		s := got[w.name]
		if s == nil || s.Start != w.start || s.End != w.end || s.Kind != w.kind || s.ParentSpanID != sc.SpanID() || s.ParentRemote ||
			s.SpanContext.TraceID() != sc.TraceID() || (w.id.IsValid() && s.SpanContext.SpanID() != w.id) {
			t.Errorf("%s: %+v, want [%d, %d] under the server span", w.name, s, w.start, w.end)
		}
	}
	if u := got["upstream"]; u.StatusCode != codes.Error || u.StatusDescription != "no usable answer" || len(u.Attributes) != 1 || u.Attributes[0] != attribute.Int("http.response.status_code", 502) {
		t.Errorf("upstream status %v %q, attributes %v", u.StatusCode, u.StatusDescription, u.Attributes)
	}
	if a := got["authn"]; a.StatusCode != codes.Unset || len(a.Attributes) != 0 {
		t.Errorf("authn: %+v", a)
	}
	if srv.Start != 10 || srv.End != 70 || srv.Kind != trace.SpanKindServer || srv.StatusCode != codes.Error || srv.StatusDescription != "502 Bad Gateway" ||
		!srv.SpanContext.Equal(sc) || srv.ParentSpanID != parent.SpanID() || !srv.ParentRemote {
		t.Errorf("server span %+v", srv)
	}
	wantAttrs := []attribute.KeyValue{
		attribute.String("promgate.route", "query"), attribute.String("http.request.method", "GET"),
		attribute.Int("http.response.status_code", 502), attribute.String("promgate.request_id", "r-1"),
		attribute.String("promgate.identity.subject", "alice"), attribute.String("promgate.identity.method", "mtls"),
		attribute.String("promgate.decision", "allow"), attribute.Bool("promgate.coalesced", true),
	}
	if len(srv.Attributes) != len(wantAttrs) {
		t.Fatalf("server attributes %v", srv.Attributes)
	}
	for i := range wantAttrs {
		if srv.Attributes[i] != wantAttrs[i] {
			t.Errorf("server attribute %d: %v, want %v", i, srv.Attributes[i], wantAttrs[i])
		}
	}

	// The fewest attributes, and a status that is not Error: no
	// description kept.
	r, _, _ = StartRequest(tr, trace.SpanContext{})
	r.End(&ServerEnd{Name: "promgate unknown", Route: "unknown", Method: "_OTHER", Status: 404, RequestID: "r-2", StatusCode: codes.Ok, StatusDescription: "dropped"})
	if err := b.forceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := mem.get()
	last := spans[len(spans)-1]
	if last.Name != "promgate unknown" || len(last.Attributes) != 4 || last.StatusCode != codes.Ok || last.StatusDescription != "" || last.ParentSpanID.IsValid() {
		t.Errorf("short server span %+v", last)
	}
}

// TestRequestQueuedWhole checks that a request's spans are queued when it
// ends, together, and dropped together when they do not fit.
func TestRequestQueuedWhole(t *testing.T) {
	tr, b, mem, dropped := newTestTracer(t, parentBased(sdktrace.AlwaysSample()), 4)
	r, _, _ := StartRequest(tr, trace.SpanContext{})
	r.Step("authn", trace.SpanKindInternal)
	r.Step("policy", trace.SpanKindInternal)
	b.mu.Lock()
	queued := len(b.queue)
	b.mu.Unlock()
	if queued != 0 {
		t.Fatalf("%d entries queued before the request ended", queued)
	}
	r.End(&ServerEnd{Name: "promgate"})
	if err := b.forceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range mem.get() {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "promgate,authn,policy" {
		t.Errorf("exported %v, want the server span and its steps", names)
	}

	// A request that does not fit in the queue (4) is dropped whole.
	r, _, _ = StartRequest(tr, trace.SpanContext{})
	for _, n := range []string{"authn", "policy", "rewrite", "upstream"} {
		r.Step(n, trace.SpanKindInternal)
	}
	r.End(&ServerEnd{Name: "promgate"})
	if err := b.forceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(mem.get()); got != 3 || *dropped != 5 {
		t.Errorf("%d spans exported in all and %d dropped; want the first 3 and 5", got, *dropped)
	}
}

// TestTakeWholeBatches checks that a full batch's wake-up takes whole
// batches only and leaves the rest queued, in order, with requests kept
// whole: a batch holds at most maxBatch spans, unless one request alone
// holds more.
func TestTakeWholeBatches(t *testing.T) {
	b := &batcher{cfg: batchConfig{maxBatch: 4, maxQueue: 64}}
	req := func(steps int) *Request {
		r := &Request{}
		r.steps = make([]step, steps)
		return r
	}
	// Spans a queue entry holds: 1 1 3 | 4 | 2 2 | 6 | 1 1 (the last two
	// are not a whole batch).
	sizes := []int{1, 1, 3, 4, 2, 2, 6, 1, 1}
	var all []entry
	for i, n := range sizes {
		e := entry{span: &SpanData{Start: int64(i)}}
		if n > 1 {
			e = entry{req: req(n - 1)}
		}
		all = append(all, e)
		b.queue = append(b.queue, e)
		b.queued += n
	}
	got := b.take(make([]entry, 0, 4), true)
	if len(got) != 7 || got[6] != all[6] || len(b.queue) != 2 || b.queue[0] != all[7] || b.queued != 2 {
		t.Fatalf("took %d entries, left %d (%d spans); want 7 and the last 2", len(got), len(b.queue), b.queued)
	}
	var batches []int
	for q := got; len(q) > 0; {
		n, spans, _ := firstBatch(q, b.cfg.maxBatch)
		batches = append(batches, spans)
		q = q[n:]
	}
	if strconv.Itoa(len(batches)) != "5" || batches[0] != 2 || batches[1] != 3 || batches[2] != 4 || batches[3] != 4 || batches[4] != 6 {
		t.Errorf("batches of %v spans, want [2 3 4 4 6]", batches)
	}
	if got = b.take(nil, true); len(got) != 0 || len(b.queue) != 2 {
		t.Fatalf("less than a batch: took %d, left %d", len(got), len(b.queue))
	}
	if got = b.take(nil, false); len(got) != 2 || len(b.queue) != 0 || b.queued != 0 {
		t.Fatalf("all: took %d, left %d", len(got), len(b.queue))
	}
}

// TestRequestsReusedAfterExport runs many concurrent requests through the
// OTLP exporter, which reuses a Request once its spans are exported or
// dropped, with a queue small enough to drop some and batches small enough
// to export while the requests run. Every span that reaches the collector
// must be whole and its own request's: its server span as parent, its
// request's step names and times. Run with -race (make test does), a
// Request reused while still in use is a data race as well.
func TestRequestsReusedAfterExport(t *testing.T) {
	col := newCollector(t)
	reg := prometheus.NewRegistry()
	p, err := New(config.Tracing{Enabled: true, Endpoint: col.srv.URL}, Options{
		Logger: discardLogger(), Registerer: reg, Version: "test",
		Getenv: env(map[string]string{
			"OTEL_BSP_SCHEDULE_DELAY":        "1",
			"OTEL_BSP_MAX_QUEUE_SIZE":        "512",
			"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "16",
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	const workers, requests, steps = 6, 300, inlineSteps + 1 // one step more than the inline array holds
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range requests {
				id := strconv.Itoa(w*requests + i)
				r, _, ok := StartRequest(p.Tracer(), trace.SpanContext{})
				if !ok || r == nil {
					t.Error("the request is not recorded")
					return
				}
				for s := range steps {
					r.Step(id+"/step"+strconv.Itoa(s), trace.SpanKindInternal)
					r.StepResult(200+s, codes.Unset, "")
				}
				r.End(&ServerEnd{Name: "promgate", RequestID: id, Route: "query", Method: "GET", Status: 200})
				if i%2 == 0 {
					time.Sleep(time.Millisecond) // let exports keep up with most requests
				}
			}
		}()
	}
	wg.Wait()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := col.spans()
	type server struct{ req, spanID string }
	servers := map[string]server{}
	attr := func(kvs []*commonpb.KeyValue, key string) string {
		for _, kv := range kvs {
			if kv.Key == key {
				if s := kv.Value.GetStringValue(); s != "" {
					return s
				}
				return strconv.FormatInt(kv.Value.GetIntValue(), 10)
			}
		}
		return ""
	}
	spanIDs := map[string]bool{}
	for _, s := range spans {
		sid := hex.EncodeToString(s.SpanId)
		if spanIDs[sid] {
			t.Fatalf("span ID %s exported twice", sid)
		}
		spanIDs[sid] = true
		if s.Name == "promgate" {
			if len(s.ParentSpanId) != 0 || attr(s.Attributes, "promgate.request_id") == "" || len(s.Attributes) != 4 {
				t.Fatalf("server span %v", s)
			}
			servers[hex.EncodeToString(s.TraceId)] = server{attr(s.Attributes, "promgate.request_id"), sid}
		}
	}
	for _, s := range spans {
		if s.Name == "promgate" {
			continue
		}
		srv, ok := servers[hex.EncodeToString(s.TraceId)]
		if !ok {
			t.Fatalf("span %q without its server span: a request is exported whole or not at all", s.Name)
		}
		req, stepName, _ := strings.Cut(s.Name, "/")
		n, _ := strconv.Atoi(strings.TrimPrefix(stepName, "step"))
		switch {
		case req != srv.req:
			t.Fatalf("span %q is in request %s's trace", s.Name, srv.req)
		case attr(s.Attributes, "http.response.status_code") != strconv.Itoa(200+n) || len(s.Attributes) != 1:
			t.Fatalf("span %q has attributes %v", s.Name, s.Attributes)
		case hex.EncodeToString(s.ParentSpanId) != srv.spanID:
			t.Fatalf("span %q of request %s has parent %x, want its server span %s", s.Name, srv.req, s.ParentSpanId, srv.spanID)
		case s.EndTimeUnixNano < s.StartTimeUnixNano || s.StartTimeUnixNano == 0:
			t.Fatalf("span %q: times %d, %d", s.Name, s.StartTimeUnixNano, s.EndTimeUnixNano)
		}
	}
	exported, dropped := spansCounted(t, reg, "exported"), spansCounted(t, reg, "dropped")
	if total := workers * requests * (steps + 1); int(exported+dropped) != total || int(exported) != len(spans) || len(spans) != len(servers)*(steps+1) {
		t.Errorf("%v exported (the collector got %d, of %d requests) and %v dropped; want %d in all", exported, len(spans), len(servers), dropped, total)
	}
	if len(servers) == 0 || exported == 0 {
		t.Fatal("nothing exported")
	}
	t.Logf("%d spans exported, %v dropped, %d requests", len(spans), dropped, len(servers))
}

// spansCounted returns promgate_tracing_spans_total{result} from reg.
func spansCounted(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == "promgate_tracing_spans_total" && l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no promgate_tracing_spans_total{result=%q}", result)
	return 0
}

// testRequest is a recorded request with every field set from the
// arguments, for the encoding tests.
func testRequest(name, val string, n int64, flags uint8, steps int, remote bool) *Request {
	ts, _ := trace.ParseTraceState("vendor=opaque,other=x")
	if flags&4 != 0 {
		ts = trace.TraceState{}
	}
	low := byte(n & 0xff)
	r := &Request{
		sc: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x4b, low}, SpanID: trace.SpanID{1, byte(flags)},
			TraceFlags: trace.TraceFlags(flags & 3), TraceState: ts}),
		start: n, end: n + 100, parentRemote: remote,
		fin: ServerEnd{
			Name: name, Route: val, Method: "GET", Status: int(n), RequestID: val + "-1",
			Identified: flags&8 != 0, Subject: val, IdentityMethod: "oidc", Decision: map[bool]string{true: "deny"}[flags&16 != 0],
			Coalesced: flags&32 != 0, StatusCode: codes.Code(flags % 3), StatusDescription: val,
		},
	}
	if remote {
		r.parent = trace.SpanID{9, low}
	}
	r.fin.StatusCode, r.fin.StatusDescription = mergeStatus(codes.Unset, "", r.fin.StatusCode, r.fin.StatusDescription)
	for i := range steps {
		s := step{name: name + strconv.Itoa(i), kind: trace.SpanKind(i % 6), id: trace.SpanID{2, byte(i)}, start: n + int64(i), end: n + int64(i) + 1}
		if i%2 == 1 {
			s.httpStatus, s.code, s.desc = int(n)+i, codes.Error, val
		}
		r.steps = append(r.steps, s)
	}
	return r
}

func TestEncodeRequestMatchesGeneratedTypes(t *testing.T) {
	res := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0", attribute.String("service.name", "promgate"))
	long := string(bytes.Repeat([]byte("x"), 300))
	batch := []entry{
		{req: testRequest("promgate query", "query", 200, 1|8|16|32, 4, true)},
		{span: &SpanData{Name: "api", SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})}},
		{req: testRequest("promgate series", "", 0, 4, 0, false)},
		{req: testRequest("promgate "+long, long, -1, 2|8, 6, false)},        // lengths over one varint byte
		{req: testRequest("promgate x", "\xff\xfebad utf-8", 7, 8, 2, true)}, // repaired
	}
	checkEntries(t, res, batch)
	var many []entry
	for range 200 {
		many = append(many, batch[0])
	}
	checkEntries(t, res, many)
}

// FuzzEncodeRequest checks a Request's encoding against the generated
// types' for requests made from the fuzzer's values.
func FuzzEncodeRequest(f *testing.F) {
	f.Add("promgate query", "query", int64(200), uint8(1|8|16), uint8(4), true)
	f.Add("", "", int64(0), uint8(0), uint8(0), false)
	f.Add("promgate \xff", "a\x00b\xc3", int64(-5), uint8(63), uint8(9), true)
	f.Fuzz(func(t *testing.T, name, val string, n int64, flags, steps uint8, remote bool) {
		r := testRequest(name, val, n, flags, int(steps%12), remote)
		checkEntries(t, resource.NewWithAttributes("", attribute.String("service.name", "promgate")), []entry{{req: r}, {req: r}})
	})
}

// BenchmarkEncodeRequests is one batch of a gateway's requests as the
// exporter sends it (about 512 spans): from the records, and from the
// same spans made as SpanData.
func BenchmarkEncodeRequests(b *testing.B) {
	resBytes, scopeBytes, _ := encodeResourceAndScope(resource.NewWithAttributes("", attribute.String("service.name", "promgate")), ScopeName, "bench")
	r := testRequest("promgate query", "query", 1_765_000_000_000_000_000, 1|8|16, 4, false)
	reqs := make([]entry, 102)
	var spans []*SpanData
	for i := range reqs {
		reqs[i].req = r
		spans = append(spans, r.spanData()...)
	}
	asSpans := spanEntries(spans)
	for _, c := range []struct {
		name  string
		batch []entry
	}{{"request", reqs}, {"spans", asSpans}} {
		b.Run(c.name, func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				buf = appendRequest(buf[:0], resBytes, scopeBytes, "", c.batch)
			}
		})
	}
}
