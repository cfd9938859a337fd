package tracing

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// newTestTracer is a tracer whose ended spans go to mem through a batcher
// that exports only when flushed.
func newTestTracer(t *testing.T, sampler sdktrace.Sampler, maxQueue int) (*tracer, *batcher, *memExporter, *int) {
	t.Helper()
	mem := &memExporter{}
	var mu sync.Mutex
	dropped := 0
	b := newBatcher(batchConfig{scheduleDelay: time.Hour, exportTimeout: time.Second, maxQueue: maxQueue, maxBatch: maxQueue}, mem, false,
		func(n int) { mu.Lock(); dropped += n; mu.Unlock() }, func(error) {})
	t.Cleanup(func() { _ = b.shutdown(context.Background()) })
	return newTracer(sampler, b), b, mem, &dropped
}

func TestTracerParentsAndSampling(t *testing.T) {
	tr, b, mem, _ := newTestTracer(t, sdktrace.ParentBased(sdktrace.AlwaysSample()), 64)
	ts, _ := trace.ParseTraceState("vendor=x")
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
	ctx, server := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "server", trace.WithSpanKind(trace.SpanKindServer))
	_, child := tr.Start(ctx, "child")
	if !server.IsRecording() || !child.IsRecording() {
		t.Fatal("sampled spans must record")
	}
	child.End()
	server.End()
	if server.IsRecording() {
		t.Error("an ended span still records")
	}
	// A caller's not-sampled context: no span recorded, but the context
	// goes on under the caller's trace, not sampled.
	notSampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{6}, Remote: true})
	nctx, ns := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), notSampled), "dropped")
	if ns.IsRecording() || ns.SpanContext().TraceID() != notSampled.TraceID() || ns.SpanContext().IsSampled() ||
		!ns.SpanContext().SpanID().IsValid() || !trace.SpanContextFromContext(nctx).Equal(ns.SpanContext()) {
		t.Errorf("not-sampled span %+v", ns.SpanContext())
	}
	ns.End()
	// A new root.
	_, root := tr.Start(ctx, "root", trace.WithNewRoot())
	root.End()
	if err := b.forceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]*SpanData{}
	for _, s := range mem.get() {
		got[s.Name] = s
	}
	if len(got) != 3 || got["dropped"] != nil {
		t.Fatalf("exported %v", got)
	}
	srv, ch, rt := got["server"], got["child"], got["root"]
	switch {
	case srv.SpanContext.TraceID() != remote.TraceID() || srv.ParentSpanID != remote.SpanID() || !srv.ParentRemote || srv.Kind != trace.SpanKindServer:
		t.Errorf("server span %+v", srv)
	case srv.SpanContext.TraceState().String() != "vendor=x" || ch.SpanContext.TraceState().String() != "vendor=x":
		t.Errorf("tracestate not kept: %q %q", srv.SpanContext.TraceState(), ch.SpanContext.TraceState())
	case ch.ParentSpanID != srv.SpanContext.SpanID() || ch.ParentRemote || ch.Kind != trace.SpanKindInternal ||
		ch.SpanContext.TraceID() != remote.TraceID() || ch.SpanContext.SpanID() == srv.SpanContext.SpanID() || !ch.SpanContext.IsSampled():
		t.Errorf("child span %+v", ch)
	case rt.SpanContext.TraceID() == remote.TraceID() || rt.ParentSpanID.IsValid() || !rt.SpanContext.IsSampled():
		t.Errorf("new root %+v", rt)
	case srv.End < srv.Start || srv.Start == 0:
		t.Errorf("times %v %v", srv.Start, srv.End)
	}
}

func TestTracerRatioSampler(t *testing.T) {
	tr, _, _, _ := newTestTracer(t, sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.25)), 8)
	sampled := 0
	const n = 20000
	seen := map[trace.TraceID]bool{}
	for range n {
		_, s := tr.Start(context.Background(), "r")
		id := s.SpanContext().TraceID()
		if seen[id] || !id.IsValid() || !s.SpanContext().SpanID().IsValid() {
			t.Fatalf("trace id %v repeated or invalid", id)
		}
		seen[id] = true
		if s.SpanContext().IsSampled() {
			sampled++
		}
	}
	if f := float64(sampled) / n; f < 0.22 || f > 0.28 {
		t.Errorf("sampled %.3f of new traces, want about 0.25", f)
	}
}

func TestSpanMethods(t *testing.T) {
	tr, b, mem, _ := newTestTracer(t, sdktrace.AlwaysSample(), 8)
	start := time.Unix(100, 0)
	_, s := tr.Start(context.Background(), "before", trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("a", "1"), attribute.String("", "invalid")),
		trace.WithLinks(trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})}))
	s.SetName("after")
	s.SetAttributes(attribute.String("a", "2"), attribute.Int("b", 3))
	for i := range maxAttributes {
		s.SetAttributes(attribute.Int("k"+strings.Repeat("x", i), i))
	}
	s.SetStatus(codes.Error, "bad")
	s.SetStatus(codes.Unset, "ignored")
	s.RecordError(errors.New("boom"))
	s.AddEvent("e", trace.WithAttributes(attribute.Bool("x", true)))
	s.End(trace.WithTimestamp(start.Add(time.Second)))
	// After End nothing changes.
	s.SetName("late")
	s.SetAttributes(attribute.String("late", "1"))
	s.SetStatus(codes.Ok, "")
	s.End()
	if err := b.forceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := mem.get()
	if len(spans) != 1 {
		t.Fatalf("%d spans exported, want 1 (End twice exports once)", len(spans))
	}
	d := spans[0]
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range d.Attributes {
		attrs[kv.Key] = kv.Value
	}
	switch {
	case d.Name != "after":
		t.Errorf("name %q", d.Name)
	case d.Start != start.UnixNano() || d.End != start.Add(time.Second).UnixNano():
		t.Errorf("times %v %v", d.Start, d.End)
	case attrs["a"].AsString() != "2" || attrs["b"].AsInt64() != 3 || hasKey(attrs, "") || hasKey(attrs, "late"):
		t.Errorf("attributes %v", attrs)
	case len(d.Attributes) != maxAttributes || d.DroppedAttributes != 2:
		t.Errorf("%d attributes, %d dropped; want %d and 2", len(d.Attributes), d.DroppedAttributes, maxAttributes)
	case d.StatusCode != codes.Error || d.StatusDescription != "bad":
		t.Errorf("status %v %q", d.StatusCode, d.StatusDescription)
	case len(d.Events) != 2 || d.Events[0].Name != "exception" || d.Events[1].Name != "e" || len(d.Links) != 1:
		t.Errorf("events %v links %v", d.Events, d.Links)
	}
	// Ok is final.
	_, ok := tr.Start(context.Background(), "ok")
	ok.SetStatus(codes.Ok, "dropped description")
	ok.SetStatus(codes.Error, "too late")
	ok.End()
	if err := b.forceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := mem.get()[1]; d.StatusCode != codes.Ok || d.StatusDescription != "" {
		t.Errorf("status after Ok then Error: %v %q", d.StatusCode, d.StatusDescription)
	}
}

func TestBatcherDropsWhenFull(t *testing.T) {
	block := make(chan struct{})
	exp := &blockingExporter{block: block, entered: make(chan struct{}, 1)}
	var mu sync.Mutex
	dropped := 0
	b := newBatcher(batchConfig{scheduleDelay: time.Hour, exportTimeout: time.Minute, maxQueue: 4, maxBatch: 1}, exp, false,
		func(n int) { mu.Lock(); dropped += n; mu.Unlock() }, func(error) {})
	tr := newTracer(plain(sdktrace.AlwaysSample()), b)
	// The first span is taken by the loop, whose export then blocks; four
	// fill the queue, and the rest are dropped, without waiting.
	for i := range 20 {
		_, s := tr.Start(context.Background(), "s")
		s.End()
		if i == 0 {
			<-exp.entered
		}
	}
	mu.Lock()
	d := dropped
	mu.Unlock()
	if d != 15 {
		t.Errorf("dropped %d of 20 with a queue of 4 and a blocked export, want 15", d)
	}
	close(block)
	if err := b.shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := exp.count(); got+d != 20 {
		t.Errorf("exported %d and dropped %d, want 20 in all", got, d)
	}
	// After shutdown, spans are dropped and counted.
	_, s := tr.Start(context.Background(), "late")
	s.End()
	mu.Lock()
	defer mu.Unlock()
	if dropped != d+1 {
		t.Errorf("a span ended after shutdown was not counted as dropped")
	}
}

type blockingExporter struct {
	block chan struct{}
	// entered receives a value when an export begins, if there is room.
	entered chan struct{}
	mu      sync.Mutex
	n       int
}

func (e *blockingExporter) ExportSpans(_ context.Context, spans []*SpanData) error {
	select {
	case e.entered <- struct{}{}:
	default:
	}
	<-e.block
	e.mu.Lock()
	e.n += len(spans)
	e.mu.Unlock()
	return nil
}

func (e *blockingExporter) Shutdown(context.Context) error { return nil }

func (e *blockingExporter) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

func TestSamplerAndBatchEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // the sampler's description, or the error's text
	}{
		{nil, "ParentBased{root:AlwaysOnSampler"},
		{map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, "AlwaysOffSampler"},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, "ParentBased{root:TraceIDRatioBased{0.5}"},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"},
		{map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER"},
	} {
		s, err := samplerOf(nil, env(tc.env))
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = s.Description()
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%v: %q, want %q", tc.env, got, tc.want)
		}
	}
	if s, _ := samplerOf(ratio(0.1), env(map[string]string{"OTEL_TRACES_SAMPLER": "always_off"})); !strings.Contains(s.Description(), "TraceIDRatioBased{0.1}") {
		t.Errorf("the configuration's ratio must win: %s", s.Description())
	}
	bc, err := batchConfigOf(env(map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BSP_MAX_QUEUE_SIZE": "10"}))
	if err != nil || bc.scheduleDelay != 100*time.Millisecond || bc.maxQueue != 10 || bc.maxBatch != 10 || bc.exportTimeout != 30*time.Second {
		t.Errorf("batch config %+v, %v", bc, err)
	}
	if _, err := batchConfigOf(env(map[string]string{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "-1"})); err == nil || !strings.Contains(err.Error(), "OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
		t.Errorf("bad batch size: %v", err)
	}
}

func hasKey(m map[attribute.Key]attribute.Value, k attribute.Key) bool {
	_, ok := m[k]
	return ok
}

func TestStartServer(t *testing.T) {
	ts, _ := trace.ParseTraceState("k=v")
	sampledParent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{5}, SpanID: trace.SpanID{6}, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true})
	unsampledParent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{8}, Remote: true})
	for _, tc := range []struct {
		name    string
		sampler *sampling
		parent  trace.SpanContext
		want    bool // recording
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
		s, ok := StartServer(tr, tc.parent, "promgate")
		if !ok {
			t.Fatalf("%s: not the fast path", tc.name)
		}
		sc := s.SpanContext()
		switch {
		case s.IsRecording() != tc.want || sc.IsSampled() != tc.want:
			t.Errorf("%s: recording %v, sampled %v; want %v", tc.name, s.IsRecording(), sc.IsSampled(), tc.want)
		case tc.parent.IsValid() && (sc.TraceID() != tc.parent.TraceID() || sc.TraceState().String() != tc.parent.TraceState().String()):
			t.Errorf("%s: context %v does not continue the parent's trace", tc.name, sc)
		case !sc.IsValid() || sc.SpanID() == tc.parent.SpanID():
			t.Errorf("%s: span context %v", tc.name, sc)
		}
		// The fast path decides as the API path does.
		ctx := context.Background()
		if tc.parent.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, tc.parent)
		}
		_, api := tr.Start(ctx, "promgate", trace.WithSpanKind(trace.SpanKindServer))
		if api.IsRecording() != tc.want {
			t.Errorf("%s: the API path decided %v", tc.name, api.IsRecording())
		}
		s.End()
		api.End()
		if err := b.forceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, want := len(mem.get()), map[bool]int{true: 2, false: 0}[tc.want]; got != want {
			t.Errorf("%s: %d spans exported, want %d", tc.name, got, want)
		}
	}
	if _, ok := StartServer(sdktrace.NewTracerProvider().Tracer("x"), trace.SpanContext{}, "promgate"); ok {
		t.Error("another tracer took the fast path")
	}
}

// TestNextAndEndServer checks the request path's two shortcuts: Next ends
// a step and starts the next one at one instant, and EndServer ends the
// open step and the server span with the server span's name, status and
// attributes; and both fall back to the API for spans that are not the
// fast path's.
func TestNextAndEndServer(t *testing.T) {
	tr, b, mem, _ := newTestTracer(t, parentBased(sdktrace.AlwaysSample()), 16)
	var clock int64
	tr.now = func() time.Time { clock += 10; return time.Unix(0, clock) }

	server, _ := StartServer(tr, trace.SpanContext{}, "promgate")
	authn := Child(server, "authn", trace.SpanKindInternal)
	policy, ok := Next(server, authn, "policy", trace.SpanKindInternal)
	if !ok {
		t.Fatal("Next did not take the fast path")
	}
	if authn.IsRecording() {
		t.Error("Next left the previous step open")
	}
	_, other := sdktrace.NewTracerProvider().Tracer("x").Start(context.Background(), "other")
	if _, ok := Next(server, other, "x", trace.SpanKindInternal); ok || !other.IsRecording() {
		t.Error("Next took another tracer's span")
	}
	if _, ok := Next(other, policy, "x", trace.SpanKindInternal); ok {
		t.Error("Next took another tracer's parent")
	}
	if !policy.IsRecording() {
		t.Error("Next ended a step it did not take")
	}
	upstream, _ := Next(server, policy, "upstream", trace.SpanKindClient)
	kvs := [2]attribute.KeyValue{attribute.String("promgate.route", "query"), attribute.Int("http.response.status_code", 502)}
	EndServer(server, upstream, "promgate query", codes.Error, "502 Bad Gateway", kvs[:]...)
	kvs[0] = attribute.String("promgate.route", "changed") // EndServer copied them
	EndServer(server, nil, "again", codes.Ok, "", attribute.Bool("late", true))
	if server.IsRecording() || upstream.IsRecording() {
		t.Error("EndServer left a span open")
	}
	if err := b.forceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]*SpanData{}
	for _, s := range mem.get() {
		got[s.Name] = s
	}
	if len(got) != 4 || got["promgate query"] == nil {
		t.Fatalf("exported %v, want the server span and three steps", got)
	}
	srv := got["promgate query"]
	want := []struct {
		name       string
		start, end int64
	}{{"authn", 20, 30}, {"policy", 30, 40}, {"upstream", 40, 50}}
	for _, w := range want {
		s := got[w.name]
		if s == nil || s.Start != w.start || s.End != w.end || s.ParentSpanID != srv.SpanContext.SpanID() || s.SpanContext.TraceID() != srv.SpanContext.TraceID() {
			t.Errorf("%s: %+v, want [%d, %d] under the server span", w.name, s, w.start, w.end)
		}
	}
	if got["upstream"].Kind != trace.SpanKindClient {
		t.Errorf("upstream kind %v", got["upstream"].Kind)
	}
	if srv.Start != 10 || srv.End != 50 || srv.StatusCode != codes.Error || srv.StatusDescription != "502 Bad Gateway" {
		t.Errorf("server span [%d, %d] status %v %q", srv.Start, srv.End, srv.StatusCode, srv.StatusDescription)
	}
	if len(srv.Attributes) != 2 || srv.Attributes[0].Value.AsString() != "query" || srv.Attributes[1].Value.AsInt64() != 502 {
		t.Errorf("server attributes %v", srv.Attributes)
	}

	// Another tracer's spans: the API calls, with the same outcome.
	mem2 := tracetest.NewInMemoryExporter()
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem2))
	ctx, sp := sdk.Tracer("x").Start(context.Background(), "promgate")
	_, step := sdk.Tracer("x").Start(ctx, "upstream")
	EndServer(sp, step, "promgate query", codes.Unset, "", kvs[:]...)
	spans := mem2.GetSpans()
	if len(spans) != 2 || spans[0].Name != "upstream" || spans[1].Name != "promgate query" || len(spans[1].Attributes) != 2 || spans[1].Status.Code != codes.Unset {
		t.Errorf("SDK spans %+v", spans)
	}
}

// TestGroupQueuedAtServerEnd checks that a group's steps wait for their
// server span and are queued with it, whole or not at all.
func TestGroupQueuedAtServerEnd(t *testing.T) {
	tr, b, mem, dropped := newTestTracer(t, parentBased(sdktrace.AlwaysSample()), 4)
	server, _ := StartServer(tr, trace.SpanContext{}, "promgate")
	authn := Child(server, "authn", trace.SpanKindInternal)
	authn.End()
	open := Child(server, "policy", trace.SpanKindInternal) // never ended: against the rule
	_ = open
	b.mu.Lock()
	queued := len(b.queue)
	b.mu.Unlock()
	if queued != 0 {
		t.Fatalf("%d spans queued before the server span ended", queued)
	}
	server.End()
	if err := b.forceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range mem.get() {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "promgate,authn" {
		t.Errorf("exported %v, want the server span and its ended step", names)
	}

	// A group that does not fit in the queue (4) is dropped whole.
	server, _ = StartServer(tr, trace.SpanContext{}, "promgate")
	for _, n := range []string{"authn", "policy", "rewrite", "upstream"} {
		Child(server, n, trace.SpanKindInternal).End()
	}
	server.End()
	if err := b.forceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(mem.get()); got != 2 || *dropped != 5 {
		t.Errorf("%d spans exported in all and %d dropped; want the first 2 and 5", got, *dropped)
	}
}

// TestTakeWholeBatches checks that a full batch's wake-up takes whole
// batches only and leaves the rest queued, in order.
func TestTakeWholeBatches(t *testing.T) {
	b := &batcher{cfg: batchConfig{maxBatch: 4, maxQueue: 16}}
	spans := make([]*SpanData, 10)
	for i := range spans {
		spans[i] = &SpanData{Start: int64(i)}
		b.queue = append(b.queue, spans[i])
	}
	got := b.take(make([]*SpanData, 0, 4), true)
	if len(got) != 8 || got[7] != spans[7] || len(b.queue) != 2 || b.queue[0] != spans[8] || b.queue[1] != spans[9] {
		t.Fatalf("took %d, left %d; want 8 and the last 2", len(got), len(b.queue))
	}
	if got = b.take(nil, true); len(got) != 0 || len(b.queue) != 2 {
		t.Fatalf("less than a batch: took %d, left %d", len(got), len(b.queue))
	}
	if got = b.take(nil, false); len(got) != 2 || len(b.queue) != 0 {
		t.Fatalf("all: took %d, left %d", len(got), len(b.queue))
	}
}
