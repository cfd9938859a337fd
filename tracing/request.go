package tracing

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// A gateway request's spans are not made as spans. The request records
// what they will hold, as it goes, in one Request: the server span's
// context and times, each step's name, span ID and times, and at the end
// the server span's name, status and attributes as plain fields. The
// spans exist only when they are exported: the OTLP exporter encodes them
// straight from the record (appendRequestSpans), and any other exporter
// gets them made as SpanData (spanData). Nothing on the request path then
// builds a span, an attribute or a lock; a Request is used by the
// request's goroutine alone, and is reused once exported.
//
// The spans are exactly those the OpenTelemetry API would have made from
// the same calls (trace_test.go in proxy runs every case with both
// tracers, and encode_test.go compares the bytes with the generated
// types'): one server span, whose parent is the caller's remote span when
// it sent one, and one internal or client span a step, whose parent is
// the server span.

// Request is one gateway request's trace: see above. Its methods are for
// the request's goroutine only, and do nothing on a nil Request. Once End
// has returned it is not used in any way: it may already be another
// request's.
type Request struct {
	tr *tracer
	sc trace.SpanContext
	// parent is the caller's span, or invalid for a new trace.
	parent       trace.SpanID
	parentRemote bool
	start, end   int64
	// steps are the steps so far; the last is open when open is set.
	steps []step
	open  bool
	// End's fields.
	fin ServerEnd
	// inline holds the first steps: the gateway makes four a request.
	inline [inlineSteps]step
}

const inlineSteps = 4

// step is one step's span.
type step struct {
	name       string
	kind       trace.SpanKind
	id         trace.SpanID
	start, end int64
	// httpStatus is the upstream's answer (http.response.status_code),
	// or 0 for none.
	httpStatus int
	code       codes.Code
	desc       string
}

// ServerEnd is what the server span ends with: its name, its status (set
// as the API's SetStatus sets it: only Error keeps a description, and Unset
// sets nothing), and its attributes, each one present as the field says.
// It names the caller by subject only: never a credential or a query.
type ServerEnd struct {
	// Name is the span's final name.
	Name string
	// Route is promgate.route, Method http.request.method, Status
	// http.response.status_code and RequestID promgate.request_id.
	Route, Method string
	Status        int
	RequestID     string
	// With Identified, Subject is promgate.identity.subject and
	// IdentityMethod promgate.identity.method.
	Identified              bool
	Subject, IdentityMethod string
	// Decision is promgate.decision, when not empty.
	Decision string
	// Coalesced sets promgate.coalesced to true.
	Coalesced         bool
	StatusCode        codes.Code
	StatusDescription string
}

// The attributes' keys.
const (
	keyRoute          = "promgate.route"
	keyMethod         = "http.request.method"
	keyStatus         = "http.response.status_code"
	keyRequestID      = "promgate.request_id"
	keySubject        = "promgate.identity.subject"
	keyIdentityMethod = "promgate.identity.method"
	keyDecision       = "promgate.decision"
	keyCoalesced      = "promgate.coalesced"
)

// StartRequest starts the trace of a request under parent, the caller's
// remote span context (or none, for a new trace), when t is the gateway's
// tracer with a sampler samplerOf built; ok is false for any other tracer,
// which the caller then uses through the API. The sampling decision is the
// sampler's, made from its parts: a parent-based sampler follows parent's
// sampled flag, and otherwise its root sampler decides on the trace ID. sc
// is the server span's context, which goes upstream until a step's does;
// r is nil when the request is not sampled (nothing is recorded then).
func StartRequest(t trace.Tracer, parent trace.SpanContext) (r *Request, sc trace.SpanContext, ok bool) {
	tr, ok := t.(*tracer)
	if !ok {
		return nil, trace.SpanContext{}, false
	}
	smp, ok := tr.sampler.(*sampling)
	if !ok {
		return nil, trace.SpanContext{}, false
	}
	scc := trace.SpanContextConfig{SpanID: newSpanID(), TraceFlags: parent.TraceFlags(), TraceState: parent.TraceState()}
	if parent.IsValid() {
		scc.TraceID = parent.TraceID()
	} else {
		scc.TraceID = newTraceID()
	}
	var sampled bool
	switch {
	case smp.parentBased && parent.IsValid():
		sampled = parent.IsSampled()
	case smp.always:
		sampled = true
	default:
		res := smp.root.ShouldSample(sdktrace.SamplingParameters{
			ParentContext: context.Background(), TraceID: scc.TraceID, Name: "promgate", Kind: trace.SpanKindServer,
		})
		sampled = res.Decision == sdktrace.RecordAndSample
	}
	if !sampled {
		scc.TraceFlags &^= trace.FlagsSampled
		return nil, trace.NewSpanContext(scc), true
	}
	scc.TraceFlags |= trace.FlagsSampled
	r = tr.requests.get()
	// Every field is set here or before it is read: a reused Request's
	// steps are overwritten as they are appended, and fin by End, so the
	// whole record (about 600 bytes) is not cleared.
	r.tr = tr
	r.sc = trace.NewSpanContext(scc)
	r.parent, r.parentRemote = parent.SpanID(), parent.IsRemote()
	r.start, r.end = tr.now().UnixNano(), 0
	r.steps, r.open = r.inline[:0], false
	return r, r.sc, true
}

// SpanContext is the server span's context.
func (r *Request) SpanContext() trace.SpanContext {
	if r == nil {
		return trace.SpanContext{}
	}
	return r.sc
}

// Step ends the open step, if any, and starts step name of kind at the
// same instant (one reading of the clock for both).
func (r *Request) Step(name string, kind trace.SpanKind) {
	if r == nil {
		return
	}
	now := r.tr.now().UnixNano()
	if r.open {
		r.steps[len(r.steps)-1].end = now
	}
	r.steps = append(r.steps, step{name: name, kind: kind, id: newSpanID(), start: now})
	r.open = true
}

// StepContext is the open step's span context, or an invalid one when no
// step is open.
func (r *Request) StepContext() trace.SpanContext {
	if r == nil || !r.open {
		return trace.SpanContext{}
	}
	return r.sc.WithSpanID(r.steps[len(r.steps)-1].id)
}

// Leave ends the open step, if any.
func (r *Request) Leave() {
	if r == nil || !r.open {
		return
	}
	r.steps[len(r.steps)-1].end = r.tr.now().UnixNano()
	r.open = false
}

// StepResult records on the open step the upstream's HTTP status (none
// when 0) and the step's status, set as the API's SetStatus sets it.
func (r *Request) StepResult(httpStatus int, code codes.Code, description string) {
	if r == nil || !r.open {
		return
	}
	s := &r.steps[len(r.steps)-1]
	if httpStatus != 0 {
		s.httpStatus = httpStatus
	}
	s.code, s.desc = mergeStatus(s.code, s.desc, code, description)
}

// mergeStatus is SetStatus: Ok is final, Error replaces Unset, and only
// Error keeps a description.
func mergeStatus(have codes.Code, desc string, code codes.Code, description string) (codes.Code, string) {
	if code < have || have == codes.Ok {
		return have, desc
	}
	if code != codes.Error {
		description = ""
	}
	return code, description
}

// End ends the open step, if any, and the server span at one instant, with
// e, and queues the request's spans for export. r is not used afterwards.
func (r *Request) End(e *ServerEnd) {
	if r == nil {
		return
	}
	now := r.tr.now().UnixNano()
	if r.open {
		r.steps[len(r.steps)-1].end = now
		r.open = false
	}
	r.end = now
	r.fin = *e
	r.fin.StatusCode, r.fin.StatusDescription = mergeStatus(codes.Unset, "", e.StatusCode, e.StatusDescription)
	if q := r.tr.queue; q != nil {
		q.enqueueRequest(r)
		return
	}
	r.release()
}

// spans is how many spans r makes.
func (r *Request) spans() int { return 1 + len(r.steps) }

// release lets go of r once exported or dropped.
func (r *Request) release() {
	if r.tr != nil {
		r.tr.requests.put(r)
	}
}

// Attributes are the server span's attributes, in the order they are
// encoded.
func (e *ServerEnd) Attributes() []attribute.KeyValue {
	kvs := []attribute.KeyValue{
		attribute.String(keyRoute, e.Route),
		attribute.String(keyMethod, e.Method),
		attribute.Int(keyStatus, e.Status),
		attribute.String(keyRequestID, e.RequestID),
	}
	if e.Identified {
		kvs = append(kvs, attribute.String(keySubject, e.Subject), attribute.String(keyIdentityMethod, e.IdentityMethod))
	}
	if e.Decision != "" {
		kvs = append(kvs, attribute.String(keyDecision, e.Decision))
	}
	if e.Coalesced {
		kvs = append(kvs, attribute.Bool(keyCoalesced, true))
	}
	return kvs
}

// spanData makes r's spans, the server span first, for an exporter other
// than the OTLP one. They share nothing with r, which may be reused.
func (r *Request) spanData() []*SpanData {
	out := make([]*SpanData, 0, r.spans())
	out = append(out, &SpanData{
		Name:              r.fin.Name,
		SpanContext:       r.sc,
		ParentSpanID:      r.parent,
		ParentRemote:      r.parentRemote,
		Kind:              trace.SpanKindServer,
		Start:             r.start,
		End:               r.end,
		Attributes:        r.fin.Attributes(),
		StatusCode:        r.fin.StatusCode,
		StatusDescription: r.fin.StatusDescription,
	})
	for _, s := range r.steps {
		d := &SpanData{
			Name:              s.name,
			SpanContext:       r.sc.WithSpanID(s.id),
			ParentSpanID:      r.sc.SpanID(),
			Kind:              s.kind,
			Start:             s.start,
			End:               s.end,
			StatusCode:        s.code,
			StatusDescription: s.desc,
		}
		if s.httpStatus != 0 {
			d.Attributes = []attribute.KeyValue{attribute.Int(keyStatus, s.httpStatus)}
		}
		out = append(out, d)
	}
	return out
}

// freeRequests holds Requests for reuse, at most maxFreeRequests. It is a
// list under a mutex rather than a sync.Pool, which the garbage collector
// empties: at thousands of requests a second the collector runs often
// enough that a pool would hand out new Requests for a good share of them.
type freeRequests struct {
	mu   sync.Mutex
	reqs []*Request
}

// maxFreeRequests bounds what is kept for reuse: about 0.3 MB (608 bytes
// a Request), enough for the requests of a default-sized queue (2,048
// spans) in flight.
const maxFreeRequests = 512

func (f *freeRequests) get() *Request {
	f.mu.Lock()
	n := len(f.reqs)
	if n == 0 {
		f.mu.Unlock()
		return &Request{}
	}
	r := f.reqs[n-1]
	f.reqs[n-1] = nil
	f.reqs = f.reqs[:n-1]
	f.mu.Unlock()
	return r
}

// put keeps r for reuse. Its strings stay referenced until it is: what
// that holds is bounded by maxFreeRequests. A Request whose steps outgrew
// the inline array is not kept.
func (f *freeRequests) put(r *Request) {
	if cap(r.steps) != inlineSteps {
		return
	}
	f.mu.Lock()
	if len(f.reqs) < maxFreeRequests {
		f.reqs = append(f.reqs, r)
	}
	f.mu.Unlock()
}
