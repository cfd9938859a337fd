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
	"go.opentelemetry.io/otel/trace"
)

// newTestTracer is a tracer whose ended spans go to mem through a batcher
// that exports only when flushed.
func newTestTracer(t *testing.T, sampler sdktrace.Sampler, maxQueue int) (*tracer, *batcher, *memExporter, *int) {
	t.Helper()
	mem := &memExporter{}
	var mu sync.Mutex
	dropped := 0
	b := newBatcher(batchConfig{scheduleDelay: time.Hour, exportTimeout: time.Second, maxQueue: maxQueue, maxBatch: maxQueue}, mem,
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
	b := newBatcher(batchConfig{scheduleDelay: time.Hour, exportTimeout: time.Minute, maxQueue: 4, maxBatch: 1}, exp,
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
