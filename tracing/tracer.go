package tracing

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// The gateway's tracer: the OpenTelemetry API (trace.Tracer, trace.Span)
// over a recorder of its own, the SDK's samplers, and the batch queue of
// batch.go.
//
// The SDK's tracer was measured first and cost too much on the request path
// for a gateway that makes five spans a request: about 1.3 KB and 6 to 7
// allocations a span (its recording span, then a snapshot of it for the
// processor, both large structs made for any use of the API), and its ID
// generator takes a mutex. That was +15 to 24 % of the whole request's CPU
// with every request sampled (docs/DESIGN.md, Tracing). This recorder keeps
// what the gateway uses: one small struct a span, handed as it is to the
// queue once ended (it never changes after End, so no snapshot), with
// lock-free random IDs. Sampling is the SDK's own (sdktrace.Sampler), so
// parent-based and ratio sampling behave exactly as with the SDK.
//
// The gateway's own request path does not use this API at all: it records
// each request in a Request (request.go), whose spans are only made when
// exported. The API is here for everything else that is handed a tracer.

// maxAttributes, maxEvents and maxLinks bound what one span holds; what is
// over is counted as dropped, as the SDK's span limits do.
const (
	maxAttributes = 128
	maxEvents     = 128
	maxLinks      = 128
)

// tracerProvider is what the API's Span.TracerProvider returns.
type tracerProvider struct {
	embedded.TracerProvider
	t *tracer
}

func (p *tracerProvider) Tracer(string, ...trace.TracerOption) trace.Tracer { return p.t }

// tracer starts spans. It is safe for concurrent use.
type tracer struct {
	embedded.Tracer
	provider *tracerProvider
	sampler  sdktrace.Sampler
	// queue receives ended, sampled spans; nil drops them (for tests of
	// the recorder alone).
	queue *batcher
	// now is the clock; time.Now outside tests.
	now func() time.Time
	// requests holds the gateway's request records for reuse
	// (request.go).
	requests freeRequests
}

func newTracer(sampler sdktrace.Sampler, q *batcher) *tracer {
	t := &tracer{sampler: sampler, queue: q, now: time.Now}
	t.provider = &tracerProvider{t: t}
	return t
}

// Start starts a span under the span or remote span context in ctx, or a
// new trace. A span the sampler drops is a non-recording span that still
// carries its context, so that it propagates (as the SDK's do).
func (t *tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.NewSpanStartConfig(opts...)
	if cfg.NewRoot() {
		ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	} else if p, ok := trace.SpanFromContext(ctx).(*span); ok && p.tracer == t {
		// A child of one of this tracer's recording spans (the gateway's
		// steps under its server span) is sampled as its parent was: every
		// sampler New builds decides alike for spans of one trace, as the
		// specification has samplers do, so asking it again would only
		// cost time.
		return t.start(ctx, name, &cfg, p.data.SpanContext, true, p.sampled)
	}
	parent := trace.SpanContextFromContext(ctx)
	var traceID trace.TraceID
	if parent.IsValid() {
		traceID = parent.TraceID()
	} else {
		traceID = newTraceID()
	}
	res := t.sampler.ShouldSample(sdktrace.SamplingParameters{
		ParentContext: ctx,
		TraceID:       traceID,
		Name:          name,
		Kind:          cfg.SpanKind(),
		Attributes:    cfg.Attributes(),
		Links:         cfg.Links(),
	})
	scc := trace.SpanContextConfig{TraceID: traceID, SpanID: newSpanID(), TraceState: res.Tracestate, TraceFlags: parent.TraceFlags()}
	if res.Decision == sdktrace.RecordAndSample {
		scc.TraceFlags |= trace.FlagsSampled
	} else {
		scc.TraceFlags &^= trace.FlagsSampled
	}
	if res.Decision == sdktrace.Drop {
		ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(scc))
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx, s := t.start(ctx, name, &cfg, parent, false, res.Decision == sdktrace.RecordAndSample)
	s.data.SpanContext = trace.NewSpanContext(scc)
	s.setAttributes(res.Attributes)
	return ctx, s
}

// start makes a recording span under parent. A child of a local span takes
// its trace, flags and tracestate and a new span ID; a root or remote
// parent's child gets its context from Start.
func (t *tracer) start(ctx context.Context, name string, cfg *trace.SpanConfig, parent trace.SpanContext, local, sampled bool) (context.Context, *span) {
	start := cfg.Timestamp()
	if start.IsZero() {
		start = t.now()
	}
	kind := cfg.SpanKind()
	if kind == trace.SpanKindUnspecified {
		kind = trace.SpanKindInternal
	}
	s := &span{
		tracer:  t,
		sampled: sampled,
		data: SpanData{
			Name:         name,
			ParentSpanID: parent.SpanID(),
			ParentRemote: parent.IsRemote(),
			Kind:         kind,
			Start:        start.UnixNano(),
		},
	}
	if local {
		s.data.SpanContext = parent.WithSpanID(newSpanID())
	}
	s.setAttributes(cfg.Attributes())
	for _, l := range cfg.Links() {
		s.addLink(l)
	}
	return trace.ContextWithSpan(ctx, s), s
}

// SpanData is a finished span, as the exporter reads it. It does not
// change once the span has ended.
type SpanData struct {
	Name        string
	SpanContext trace.SpanContext
	// ParentSpanID is the parent's span ID, invalid for a root span; the
	// parent is in the same trace. ParentRemote: the parent is the
	// caller's (a traceparent), not one of the gateway's spans.
	ParentSpanID trace.SpanID
	ParentRemote bool
	Kind         trace.SpanKind
	// Start and End are Unix times in nanoseconds.
	Start, End        int64
	Attributes        []attribute.KeyValue
	DroppedAttributes int
	StatusCode        codes.Code
	StatusDescription string
	// Extra holds events and links, which the gateway itself never sets.
	*Extra
}

// Extra is a span's events and links, rarely set.
type Extra struct {
	Events        []Event
	DroppedEvents int
	Links         []trace.Link
	DroppedLinks  int
}

// Event is a span's event.
type Event struct {
	Name       string
	Time       time.Time
	Attributes []attribute.KeyValue
}

// span is a recording span. Its methods are safe for concurrent use, as
// the API requires; after End they do nothing.
type span struct {
	embedded.Span
	tracer *tracer
	// sampled: exported when ended (RecordAndSample), or only recorded
	// (RecordOnly).
	sampled bool

	mu    sync.Mutex
	ended bool
	data  SpanData
	// inline holds the first attributes, so that setting them allocates
	// nothing.
	inline [inlineAttributes]attribute.KeyValue
}

// inlineAttributes is how many attributes a span holds without an
// allocation: the most the gateway sets on a step.
const inlineAttributes = 2

func (s *span) SpanContext() trace.SpanContext { return s.data.SpanContext }

func (s *span) IsRecording() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.ended
}

func (s *span) TracerProvider() trace.TracerProvider { return s.tracer.provider }

// End ends the span and hands it to the batch queue when it is sampled.
func (s *span) End(opts ...trace.SpanEndOption) {
	now := s.tracer.now()
	if len(opts) > 0 {
		if cfg := trace.NewSpanEndConfig(opts...); !cfg.Timestamp().IsZero() {
			now = cfg.Timestamp()
		}
	}
	s.endAt(now.UnixNano())
}

// endAt ends the span at end, a Unix time in nanoseconds.
func (s *span) endAt(end int64) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.data.End = end
	s.ended = true
	s.mu.Unlock()
	if q := s.tracer.queue; s.sampled && q != nil {
		q.enqueue(&s.data)
	}
}

func (s *span) SetName(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.data.Name = name
	}
}

// SetStatus sets the status as the API specifies: Ok is final, Error
// replaces Unset, and only Error keeps a description.
func (s *span) SetStatus(code codes.Code, description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.setStatus(code, description)
	}
}

func (s *span) setStatus(code codes.Code, description string) {
	if code < s.data.StatusCode || s.data.StatusCode == codes.Ok {
		return
	}
	if code != codes.Error {
		description = ""
	}
	s.data.StatusCode, s.data.StatusDescription = code, description
}

func (s *span) SetAttributes(kvs ...attribute.KeyValue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.setAttributes(kvs)
	}
}

// setAttributes adds kvs, replacing the value of a key already set; new
// keys beyond maxAttributes are dropped and counted. Invalid ones are
// skipped, as the SDK does.
func (s *span) setAttributes(kvs []attribute.KeyValue) {
	if s.data.Attributes == nil && len(kvs) > 0 {
		s.data.Attributes = s.inline[:0]
	}
next:
	for _, kv := range kvs {
		if !kv.Valid() {
			continue
		}
		for i := range s.data.Attributes {
			if s.data.Attributes[i].Key == kv.Key {
				s.data.Attributes[i] = kv
				continue next
			}
		}
		if len(s.data.Attributes) >= maxAttributes {
			s.data.DroppedAttributes++
			continue
		}
		s.data.Attributes = append(s.data.Attributes, kv)
	}
}

func (s *span) AddEvent(name string, opts ...trace.EventOption) {
	cfg := trace.NewEventConfig(opts...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addEvent(name, cfg)
}

func (s *span) addEvent(name string, cfg trace.EventConfig) {
	if s.ended {
		return
	}
	if s.data.Extra == nil {
		s.data.Extra = &Extra{}
	}
	if len(s.data.Events) >= maxEvents {
		s.data.DroppedEvents++
		return
	}
	attrs := cfg.Attributes()
	if len(attrs) > maxAttributes {
		attrs = attrs[:maxAttributes]
	}
	ts := cfg.Timestamp()
	if ts.IsZero() {
		ts = s.tracer.now()
	}
	s.data.Events = append(s.data.Events, Event{Name: name, Time: ts, Attributes: attrs})
}

// RecordError adds an "exception" event, as the SDK does; the caller sets
// the status.
func (s *span) RecordError(err error, opts ...trace.EventOption) {
	if err == nil {
		return
	}
	opts = append(opts, trace.WithAttributes(
		attribute.String("exception.type", "error"),
		attribute.String("exception.message", err.Error()),
	))
	cfg := trace.NewEventConfig(opts...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addEvent("exception", cfg)
}

func (s *span) AddLink(l trace.Link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.addLink(l)
	}
}

func (s *span) addLink(l trace.Link) {
	if !l.SpanContext.IsValid() {
		return
	}
	if s.data.Extra == nil {
		s.data.Extra = &Extra{}
	}
	if len(s.data.Links) >= maxLinks {
		s.data.DroppedLinks++
		return
	}
	s.data.Links = append(s.data.Links, l)
}

// newTraceID and newSpanID draw random, non-zero IDs from math/rand/v2's
// top-level generator: the runtime's per-thread ChaCha8, seeded from the
// operating system, which takes no lock. W3C Trace Context asks for random
// IDs; nothing secret rests on them (the SDK uses math/rand too).
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		putUint64(id[:8], rand.Uint64()) //nolint:gosec // G404: trace IDs need randomness, not secrecy (see above)
		putUint64(id[8:], rand.Uint64()) //nolint:gosec // G404: as above
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		putUint64(id[:], rand.Uint64()) //nolint:gosec // G404: as above
	}
	return id
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}
