package tracing

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
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
	// Extra holds what the gateway's own spans never have.
	*Extra
	// grp is the group of the span, or nil (see group).
	grp *group
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
	// grp is the group the span belongs to (StartServer and Child), or
	// nil for a span of its own; idx is its place in the group.
	grp *group
	idx uint8
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
	if g := s.grp; g != nil && s != &g.spans[0] {
		g.ended.Or(1 << s.idx)
	}
	s.finished()
}

// finished hands the ended span to the batch queue when it is sampled,
// and otherwise lets go of it. The steps of a group are queued with their
// server span, when it ends, under one lock: a request then takes the
// queue's lock once, not once a span. (By the group's rule every step has
// ended by then; one that has not is never exported, and its group never
// reused.)
func (s *span) finished() {
	q := s.tracer.queue
	switch {
	case !s.sampled || q == nil:
		s.data.release()
	case s.grp == nil:
		q.enqueue(&s.data)
	case s == &s.grp.spans[0]:
		g := s.grp
		var all [groupSpans]*SpanData
		n := 0
		ended := g.ended.Load() | 1
		for i := range g.used {
			if ended&(1<<i) != 0 {
				all[n] = &g.spans[i].data
				n++
			}
		}
		// Every span handed out holds the group until it is released:
		// one that has not ended never is.
		g.refs.Store(int32(g.used)) //nolint:gosec // G115: at most groupSpans
		q.enqueueAll(all[:n])
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

// A request's spans are made by StartServer and Child in one allocation,
// a group: the server span and its first steps. When the exporter keeps
// nothing of what it exports (the OTLP exporter encodes a batch and lets it
// go), a group is reused once every span in it has been exported or
// dropped: the gateway's tracing then makes almost no garbage a request.
// The price is a rule for the caller, which the gateway's request path
// keeps: a span of StartServer or Child, and every span made under it, is
// not used in any way once the server span has ended (its memory may
// already be another request's). Spans of Tracer.Start are never reused.

// groupSpans is a group's spans: the gateway's server span and its four
// steps. A request with more steps gets the others one by one.
const groupSpans = 5

type group struct {
	spans [groupSpans]span
	// serverAttributes holds the server span's attributes (the steps' fit
	// in their own inline arrays).
	serverAttributes [serverAttributes]attribute.KeyValue
	// used is how many of spans were handed out; only the request's
	// goroutine reads and writes it, before its server span ends.
	used int
	// refs counts the spans handed out and not yet released (exported or
	// dropped); it is set when the server span ends and its group is
	// queued (finished).
	refs atomic.Int32
	// ended has bit i set once spans[i], a step, has ended.
	ended atomic.Uint32
	// free is the list the group goes back to when refs falls to zero, or
	// nil when it is not reused.
	free *freeGroups
}

// serverAttributes is how many attributes the server span holds without an
// allocation: the most the gateway sets on it.
const serverAttributes = 8

// freeGroups holds groups for reuse, at most maxFreeGroups. It is a list
// under a mutex rather than a sync.Pool, which the garbage collector
// empties: at thousands of requests a second the collector runs often
// enough that a pool would hand out new groups for a good share of them.
type freeGroups struct {
	mu     sync.Mutex
	groups []*group
}

// maxFreeGroups bounds what is kept for reuse: about 1.6 MB, enough for
// the groups of a default-sized queue (2,048 spans) in flight.
const maxFreeGroups = 512

func (f *freeGroups) get() *group {
	f.mu.Lock()
	n := len(f.groups)
	if n == 0 {
		f.mu.Unlock()
		return &group{free: f}
	}
	g := f.groups[n-1]
	f.groups[n-1] = nil
	f.groups = f.groups[:n-1]
	f.mu.Unlock()
	g.free = f
	return g
}

// put keeps g for reuse. Only its counters are reset: take and the
// span's starters overwrite every field of a span they hand out, and
// clearing the whole group (about 2.4 KB) a request would cost more than
// the garbage it spares the collector. What a kept group still points to
// (its last request's strings) is bounded by maxFreeGroups.
func (f *freeGroups) put(g *group) {
	g.used = 0
	g.refs.Store(0)
	g.ended.Store(0)
	f.mu.Lock()
	if len(f.groups) < maxFreeGroups {
		f.groups = append(f.groups, g)
	}
	f.mu.Unlock()
}

// newGroup returns an empty group, reused when q recycles.
func newGroup(q *batcher) *group {
	if q == nil || q.free == nil {
		return &group{}
	}
	return q.free.get()
}

// take returns the group's next span, or a span of its own when the group
// is full.
func (g *group) take() *span {
	if g.used == groupSpans {
		return &span{}
	}
	s := &g.spans[g.used]
	s.idx = uint8(g.used) //nolint:gosec // G115: below groupSpans
	g.used++
	s.grp = g
	// The span may be a reused one (put): what its starter does not set
	// is reset here.
	s.ended = false
	return s
}

// release lets go of one of the group's spans; the last one reuses the
// group.
func (g *group) release() {
	if g.refs.Add(-1) == 0 && g.free != nil {
		g.free.put(g)
	}
}

// release lets go of the span whose data d is, once exported or dropped.
func (d *SpanData) release() {
	if d.grp != nil {
		d.grp.release()
	}
}

// Child starts a span of kind under parent, without a context, when parent
// is a span of StartServer or Child: the fast path for the gateway's steps,
// which need no context of their own (their span context is read from the
// span). A child is sampled as its parent is, and shares its group (see
// above: it is not used once the server span has ended). It returns nil for
// any other span (a non-recording one, or another tracer's), and the caller
// then starts the span with its tracer.
func Child(parent trace.Span, name string, kind trace.SpanKind) trace.Span {
	p, ok := parent.(*span)
	if !ok || p.grp == nil {
		return nil
	}
	return p.child(name, kind, p.tracer.now().UnixNano())
}

// Next ends prev and starts the next step under parent, as prev.End and
// Child would one after the other, but at one instant: one reading of the
// clock for both, for steps that follow each other with nothing between.
// ok is false, and nothing is done, unless parent is a span of StartServer
// or Child and prev a span of Child; the caller then ends prev and starts
// the step itself.
func Next(parent, prev trace.Span, name string, kind trace.SpanKind) (s trace.Span, ok bool) {
	p, ok := parent.(*span)
	if !ok || p.grp == nil {
		return nil, false
	}
	q, ok := prev.(*span)
	if !ok || q.grp == nil {
		return nil, false
	}
	now := p.tracer.now().UnixNano()
	q.endAt(now)
	return p.child(name, kind, now), true
}

// child starts a step of p's group at start.
func (p *span) child(name string, kind trace.SpanKind, start int64) *span {
	s := p.grp.take()
	s.tracer, s.sampled = p.tracer, p.sampled
	s.data = SpanData{
		Name:         name,
		SpanContext:  p.data.SpanContext.WithSpanID(newSpanID()),
		ParentSpanID: p.data.SpanContext.SpanID(),
		Kind:         kind,
		Start:        start,
		grp:          s.grp,
	}
	return s
}

// EndServer ends step, when it is not nil, and then sp, at one instant,
// with sp's final name, status and attributes (kvs, copied: they may be
// the caller's own array, on its stack). For spans of this tracer that is
// one reading of the clock and one lock taken on sp, where SetName,
// SetAttributes, SetStatus and End would take four; for any other span it
// makes those calls. The status is set as SetStatus sets it, and not at
// all when code is Unset.
func EndServer(sp, step trace.Span, name string, code codes.Code, description string, kvs ...attribute.KeyValue) {
	s, ok := sp.(*span)
	if !ok {
		if step != nil {
			step.End()
		}
		if sp.IsRecording() {
			sp.SetName(name)
			sp.SetAttributes(slices.Clone(kvs)...)
			if code != codes.Unset {
				sp.SetStatus(code, description)
			}
		}
		sp.End()
		return
	}
	now := s.tracer.now().UnixNano()
	if q, ok := step.(*span); ok {
		q.endAt(now)
	} else if step != nil {
		step.End()
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.data.Name = name
	s.setAttributes(kvs)
	if code != codes.Unset {
		s.setStatus(code, description)
	}
	s.data.End = now
	s.ended = true
	s.mu.Unlock()
	s.finished()
}

// StartServer starts a span of kind server under parent, the caller's
// remote span context (or none, for a new trace), without a context, when
// t is the gateway's tracer with a sampler samplerOf built: the fast path
// of the gateway's server span. The decision is the sampler's, made from
// its parts: a parent-based sampler follows parent's sampled flag, and
// otherwise its root sampler decides on the trace ID. ok is false for any
// other tracer, which the caller then uses through the API. A sampled span
// is the first of a new group (see above): neither it nor its children are
// used once it has ended.
func StartServer(t trace.Tracer, parent trace.SpanContext, name string) (s trace.Span, ok bool) {
	tr, ok := t.(*tracer)
	if !ok {
		return nil, false
	}
	smp, ok := tr.sampler.(*sampling)
	if !ok {
		return nil, false
	}
	scc := trace.SpanContextConfig{SpanID: newSpanID(), TraceFlags: parent.TraceFlags(), TraceState: parent.TraceState()}
	var sampled bool
	if parent.IsValid() {
		scc.TraceID = parent.TraceID()
	} else {
		scc.TraceID = newTraceID()
	}
	switch {
	case smp.parentBased && parent.IsValid():
		sampled = parent.IsSampled()
	case smp.always:
		sampled = true
	default:
		res := smp.root.ShouldSample(sdktrace.SamplingParameters{
			ParentContext: context.Background(), TraceID: scc.TraceID, Name: name, Kind: trace.SpanKindServer,
		})
		sampled = res.Decision == sdktrace.RecordAndSample
	}
	if sampled {
		scc.TraceFlags |= trace.FlagsSampled
	} else {
		scc.TraceFlags &^= trace.FlagsSampled
		return trace.SpanFromContext(trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(scc))), true
	}
	g := newGroup(tr.queue)
	sp := g.take()
	sp.tracer, sp.sampled = tr, true
	sp.data = SpanData{
		Name:         name,
		SpanContext:  trace.NewSpanContext(scc),
		ParentSpanID: parent.SpanID(),
		ParentRemote: parent.IsRemote(),
		Kind:         trace.SpanKindServer,
		Start:        tr.now().UnixNano(),
		Attributes:   g.serverAttributes[:0],
		grp:          g,
	}
	return sp, true
}

// SetAttributes sets kvs on sp as sp.SetAttributes does, copying them: kvs
// may be the caller's own array, on its stack.
func SetAttributes(sp trace.Span, kvs ...attribute.KeyValue) {
	s, ok := sp.(*span)
	if !ok {
		sp.SetAttributes(slices.Clone(kvs)...)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.setAttributes(kvs)
	}
}
