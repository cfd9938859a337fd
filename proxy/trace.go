package proxy

import (
	"context"
	"encoding/hex"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/promgate/promgate/tracing"
)

// Tracing. With a tracer (Options.Tracer), every request gets a server span,
// renamed "promgate <route>" once the route is known, whose parent is the
// caller's traceparent when it sent a valid one, and one child span a step:
//
//	authn     authentication
//	policy    the decision and the rate limit
//	rewrite   the limits, the cost estimate, the tenant and the enforced query
//	upstream  the forward (or the detector's evaluation, or the scrape)
//
// The upstream request carries the upstream span's context as traceparent,
// with the caller's tracestate (stampHeaders). Without a tracer st.tr is nil,
// every method below returns at once, and stampHeaders passes the caller's
// traceparent and tracestate through unchanged.
const (
	spanAuthn    = "authn"
	spanPolicy   = "policy"
	spanRewrite  = "rewrite"
	spanUpstream = "upstream"
)

// reqTrace is one request's trace. With the gateway's tracer the request
// is recorded in a tracing.Request (req), whose spans are made only when
// exported; with any other tracer the spans are made through the API
// (span and step). The request's context is left as it is: the trace is
// reached through the request's state, and the context that goes upstream
// is read from here (upstreamContext). That spares a copy of the request
// and a context a span.
//
// The gateway's tracer reuses a tracing.Request once exported, so nothing
// here touches it after end: the span contexts that are read afterwards
// (the audit record's trace id) are kept here, and end drops the
// reference: every method does nothing once req and span are nil.
type reqTrace struct {
	tracer trace.Tracer
	// req is the gateway's record of a sampled request, or nil.
	req *tracing.Request
	// ctx holds the server span, the parent of every step, for a tracer
	// other than the gateway's; nil until needed.
	ctx  context.Context
	span trace.Span
	// sc is the server span's context, and upSC the upstream span's once
	// started.
	sc, upSC trace.SpanContext
	// step is the current step's span, or nil (another tracer's).
	step trace.Span
	// tp holds the first traceparent sent upstream (inject), that of the
	// span tpFor; tid is the trace id in hex once made (traceID).
	tp    [1]string
	tpFor trace.SpanID
	tid   string
}

// tracedState is a request's state with its trace, allocated as one when
// tracing is on; with tracing off the state is allocated alone, and
// tracing costs it nothing.
type tracedState struct {
	state
	trace reqTrace
}

// startTrace starts the trace of r, under the caller's trace context when
// it sent a valid one, in t (st's own, see tracedState).
func (h *Handler) startTrace(r *http.Request, st *state, t *reqTrace) {
	parent, remote := callerSpanContext(r)
	if req, sc, ok := tracing.StartRequest(h.tracer, parent); ok {
		// The gateway's tracer: req is nil when the request is not
		// sampled, and sc then only goes upstream.
		*t = reqTrace{tracer: h.tracer, req: req, sc: sc}
		st.tr = t
		return
	}
	ctx := r.Context()
	if remote {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	ctx, span := h.tracer.Start(ctx, "promgate", trace.WithSpanKind(trace.SpanKindServer))
	*t = reqTrace{tracer: h.tracer, ctx: ctx, span: span, sc: span.SpanContext()}
	st.tr = t
}

// enter ends the current step and starts step name. A request that is not
// sampled makes no step spans: nothing would record them, and every
// standard sampler decides a trace's spans alike.
func (t *reqTrace) enter(name string) {
	if t == nil {
		return
	}
	t.next(name, trace.SpanKindInternal)
}

// next ends the current step, if any, and starts step name when the
// request is recorded, at the instant the current one ends when the
// tracer is the gateway's.
func (t *reqTrace) next(name string, kind trace.SpanKind) {
	if t.req != nil {
		t.req.Step(name, kind)
		return
	}
	if t.span == nil {
		return
	}
	t.leave()
	if !t.sc.IsSampled() && !t.span.IsRecording() {
		return
	}
	if t.ctx == nil {
		t.ctx = trace.ContextWithSpan(context.Background(), t.span)
	}
	_, t.step = t.tracer.Start(t.ctx, name, trace.WithSpanKind(kind))
}

// leave ends the current step.
func (t *reqTrace) leave() {
	switch {
	case t == nil:
	case t.req != nil:
		t.req.Leave()
	case t.step != nil:
		t.step.End()
		t.step = nil
	}
}

// upstream ends the current step and starts the upstream span, whose
// context stampHeaders then sends upstream. Not sampled, the server span's
// context goes upstream instead.
func (t *reqTrace) upstream() {
	if t == nil {
		return
	}
	t.next(spanUpstream, trace.SpanKindClient)
	switch {
	case t.req != nil:
		t.upSC = t.req.StepContext()
	case t.step != nil:
		t.upSC = t.step.SpanContext()
	}
}

// upstreamContext is the span context that goes upstream: the upstream
// span's once started, else the server span's. Nil (tracing off), none.
func (t *reqTrace) upstreamContext() trace.SpanContext {
	switch {
	case t == nil:
		return trace.SpanContext{}
	case t.upSC.IsValid():
		return t.upSC
	}
	return t.sc
}

// inject writes the upstream context (upstreamContext) into hdr as
// traceparent and tracestate, as injectTraceContext does, and reports
// whether there was one. The first traceparent a request sends is made
// into tp, which every header that sends it then shares (tp is written
// once, before any header holds it, and a header's values are replaced,
// never written in place); the audit record's trace id is taken from it.
func (t *reqTrace) inject(hdr http.Header) bool {
	sc := t.upstreamContext()
	if !sc.IsValid() {
		return false
	}
	if t.tp[0] == "" {
		t.tp[0], t.tpFor = traceparent(sc), sc.SpanID()
		t.tid = t.tp[0][3:35]
	}
	if t.tpFor == sc.SpanID() {
		setTraceContext(hdr, sc, t.tp[:])
	} else {
		injectTraceContext(hdr, sc)
	}
	return true
}

// traceID is the trace id in hex.
func (t *reqTrace) traceID() string {
	if t.tid == "" {
		t.tid = t.sc.TraceID().String()
	}
	return t.tid
}

// answered records the upstream's status on the upstream span: 0 when the
// upstream could not be reached or its answer could not be used.
func (t *reqTrace) answered(status int) {
	if t == nil {
		return
	}
	code, description := codes.Unset, ""
	switch {
	case status == 0:
		code, description = codes.Error, "no usable answer from the upstream"
	case status >= 500:
		code = codes.Error
	}
	if t.req != nil {
		t.req.StepResult(status, code, description)
		return
	}
	// A step is only started for a request that is recorded (next).
	if t.step == nil {
		return
	}
	if status != 0 {
		t.step.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	if code != codes.Unset {
		t.step.SetStatus(code, description)
	}
}

// end ends the open step and the server span, with what the request
// turned out to be. Attributes name the caller by subject only: never a
// credential, a query or a header. Nothing touches the trace afterwards.
func (t *reqTrace) end(st *state, method string, status int) {
	if t == nil || (t.req == nil && t.span == nil) {
		return
	}
	e := tracing.ServerEnd{
		Name:      spanName(st.route),
		Route:     st.route,
		Method:    methodAttr(method),
		Status:    status,
		RequestID: st.id,
		Coalesced: st.coalesced,
	}
	if id := st.identity; id != nil {
		e.Identified, e.Subject, e.IdentityMethod = true, id.Subject, string(id.Method)
	}
	if d := st.decision; d != nil {
		e.Decision = "deny"
		if d.Allow {
			e.Decision = "allow"
		}
	}
	if status >= 500 {
		e.StatusCode, e.StatusDescription = codes.Error, strconv.Itoa(status)+" "+http.StatusText(status)
	}
	if t.req != nil {
		// The open step (the upstream's, usually) and the server span end
		// at one instant.
		t.req.End(&e)
		t.req = nil
		return
	}
	t.leave()
	if t.span.IsRecording() {
		t.span.SetName(e.Name)
		t.span.SetAttributes(e.Attributes()...)
		if e.StatusCode != codes.Unset {
			t.span.SetStatus(e.StatusCode, e.StatusDescription)
		}
	}
	t.span.End()
	t.span = nil
}

// traceIDOf is the trace id of the audit record: the request's trace when
// tracing is on (the caller's, or a new one), else the caller's valid
// traceparent's, else none.
func traceIDOf(r *http.Request, st *state) string {
	if st.tr != nil {
		return st.tr.traceID()
	}
	id, _ := callerTraceID(r)
	return id
}

// spanNames are the server spans' names, made once.
var spanNames = func() map[string]string {
	m := make(map[string]string, len(Routes))
	for _, r := range Routes {
		m[r] = "promgate " + r
	}
	return m
}()

func spanName(route string) string {
	if n, ok := spanNames[route]; ok {
		return n
	}
	return "promgate " + route
}

// methodAttr is the request method as OpenTelemetry's semantic conventions
// want it: a known method, or _OTHER.
func methodAttr(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch:
		return m
	}
	return "_OTHER"
}

// callerTraceparent returns the caller's traceparent when it is sent once
// and well-formed: the one stampHeaders passes through with tracing off.
func callerTraceparent(r *http.Request) (string, bool) {
	tp := r.Header["Traceparent"] // the canonical key, as net/http stores it
	if len(tp) == 1 && len(tp[0]) <= 128 && wellFormedTraceparent(tp[0]) {
		return tp[0], true
	}
	return "", false
}

// callerTracestate returns the caller's tracestate when it is sent once,
// at most 512 printable ASCII bytes.
func callerTracestate(r *http.Request) (string, bool) {
	ts := r.Header["Tracestate"] // as above
	if len(ts) == 1 && len(ts[0]) <= 512 && printableASCII(ts[0]) {
		return ts[0], true
	}
	return "", false
}

// validTraceparent reports whether a well-formed traceparent (see
// wellFormedTraceparent) is valid as W3C Trace Context defines it and as the
// OpenTelemetry propagator reads it: a version other than ff, in version 00
// nothing after the flags and no flag but sampled and random, and neither
// id all zero.
func validTraceparent(tp string) bool {
	if tp[:2] == "ff" || (tp[:2] == "00" && (len(tp) != 55 || tp[53] != '0' || tp[54] > '3')) {
		return false
	}
	_, terr := trace.TraceIDFromHex(tp[3:35])
	_, serr := trace.SpanIDFromHex(tp[36:52])
	return terr == nil && serr == nil
}

// callerTraceID returns the trace id of the caller's valid traceparent.
func callerTraceID(r *http.Request) (string, bool) {
	tp, ok := callerTraceparent(r)
	if !ok || !validTraceparent(tp) {
		return "", false
	}
	return tp[3:35], true
}

// callerSpanContext returns the caller's valid trace context as a remote
// span context, read as the OpenTelemetry propagator reads it (the sampled
// and random flags only), with its tracestate when that is valid too.
func callerSpanContext(r *http.Request) (trace.SpanContext, bool) {
	tp, ok := callerTraceparent(r)
	if !ok || !validTraceparent(tp) {
		return trace.SpanContext{}, false
	}
	tid, _ := trace.TraceIDFromHex(tp[3:35])        // checked above
	sid, _ := trace.SpanIDFromHex(tp[36:52])        // checked above
	flags, _ := strconv.ParseUint(tp[53:55], 16, 8) // hex, by wellFormedTraceparent
	scc := trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true,
		TraceFlags: trace.TraceFlags(flags) & (trace.FlagsSampled | trace.FlagsRandom)}
	if ts, ok := callerTracestate(r); ok {
		// An invalid tracestate is dropped, and the traceparent kept.
		scc.TraceState, _ = trace.ParseTraceState(ts)
	}
	return trace.NewSpanContext(scc), true
}

// injectTraceContext writes sc upstream as traceparent and tracestate,
// as OpenTelemetry's TraceContext propagator writes them (the sampled and
// random flags only; trace_test.go checks that they agree), without the
// context the propagator reads them from.
func injectTraceContext(hdr http.Header, sc trace.SpanContext) {
	if sc.IsValid() {
		setTraceContext(hdr, sc, []string{traceparent(sc)})
	}
}

// setTraceContext writes sc's tracestate, when it has one, and tp, its
// traceparent's values, into hdr.
func setTraceContext(hdr http.Header, sc trace.SpanContext, tp []string) {
	if ts := sc.TraceState().String(); ts != "" {
		hdr["Tracestate"] = []string{ts}
	}
	hdr["Traceparent"] = tp
}

// traceparent is sc's traceparent header value, version 00.
func traceparent(sc trace.SpanContext) string {
	tid, sid := sc.TraceID(), sc.SpanID()
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	f := byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))
	b[53], b[54] = hexDigits[f>>4], hexDigits[f&0xf]
	return string(b[:])
}

const hexDigits = "0123456789abcdef"
