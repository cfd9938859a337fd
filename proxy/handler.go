package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/detect"
	"github.com/promgate/promgate/enforce"
	"github.com/promgate/promgate/promapi"
)

// Decider is the policy decision point. *authz.Authorizer implements it.
// A decision names the revision of the policy that made it.
type Decider interface {
	Decide(ctx context.Context, in authz.Input) (authz.Decision, error)
}

// Auditor receives one record per request. *audit.Writer implements it.
type Auditor interface {
	Write(r *audit.Record) error
	Healthy() bool
}

// Options are what New needs. Config, Authn, Authz, Audit, Logger and
// Registerer are required.
type Options struct {
	Config     *config.Config
	Authn      authn.Chain
	Authz      Decider
	Audit      Auditor
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Transport reaches the upstream; nil builds one from Config.
	Transport http.RoundTripper
	// UpstreamToken returns the bearer token sent upstream, or "" for none.
	UpstreamToken func() string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Detectors is the detector catalog served on the detectors API, or nil.
	Detectors *detect.Catalog
	// DetectorState returns the background evaluator's state, or is nil.
	DetectorState func() map[string]detect.State
	// Login is the browser login, or nil. Its session cookie is cleared
	// when it fails to authenticate, and its pages are served.
	Login *authn.Login
	// Pages are handlers served at exact paths outside the API chain, such as
	// the browser login's /oauth2/* routes. They authenticate callers
	// themselves; the gateway still gives them a request ID, panic recovery
	// and an audit record. Their errors are theirs to render.
	Pages map[string]http.Handler
	// Tracer makes the request's spans (trace.go), or is nil: tracing off,
	// at no cost, the caller's trace context passed upstream unchanged.
	Tracer trace.Tracer
	// Gatherer reads the gateway's own metrics for the console's admin
	// page (console_admin.go), or is nil.
	Gatherer prometheus.Gatherer
}

// Handler is the public http.Handler: it authenticates, authorizes,
// enforces, forwards and audits every request.
type Handler struct {
	cfg     *config.Config
	authn   authn.Chain
	authz   Decider
	audit   Auditor
	log     *slog.Logger
	m       *metrics
	ip      *clientIP
	limiter *limiter
	tel     *telemetry
	// failures limits authentication failures per client network.
	failures *failureGuard
	// pageLimiter bounds the login pages per client network.
	pageLimiter *limiter
	// inflight bounds each identity's requests in flight upstream.
	inflight *inflight
	up       *upstream
	token    func() string
	now      func() time.Time
	pages    map[string]http.Handler
	login    *authn.Login
	// detectors and detectorState serve the detectors API (detectors.go).
	detectors     *detect.Catalog
	detectorState func() map[string]detect.State
	// queries caches parsed PromQL by its text.
	queries *queryCache
	// scrapes are the exporter sidecar's targets (scrape.go), or nil.
	scrapes *scrapeSet
	// noCredentials tells an anonymous caller which credentials work here.
	noCredentials string

	idPrefix string
	idSeq    atomic.Uint64
	// tracer is Options.Tracer: nil when tracing is off.
	tracer trace.Tracer
	// am reaches the Alertmanager of the alertmanager block, with amToken,
	// or is nil (alertmanager.go).
	am      *upstream
	amToken *TokenFile
	// gather is Options.Gatherer.
	gather prometheus.Gatherer
	// remote holds the remote write and read routes' metrics and sample
	// buckets (write.go).
	remote *remote
	// hold: responses wait for their durable audit record (durable.go).
	hold bool
	// named are the upstreams a decision may pick by name, with their
	// token files; namedThanos is set when one is Thanos (upstreams.go).
	named       map[string]*upstream
	namedTokens []*TokenFile
	namedThanos bool
}

// New builds the handler. It fails when the options are incomplete or the
// upstream cannot be configured.
func New(o Options) (*Handler, error) {
	if o.Config == nil || o.Authz == nil || o.Audit == nil || o.Logger == nil || o.Registerer == nil || len(o.Authn) == 0 {
		return nil, errors.New("proxy: incomplete options")
	}
	ip, err := newClientIP(o.Config.TrustedProxies)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		cfg:         o.Config,
		authn:       o.Authn,
		authz:       o.Authz,
		audit:       o.Audit,
		log:         o.Logger.With("component", "proxy"),
		m:           newMetrics(o.Registerer),
		ip:          ip,
		limiter:     newBuckets(o.Config.Limits.RequestsPerSecond, o.Config.Limits.Burst),
		failures:    newFailureGuard(o.Config.Limits.AuthFailures, o.Registerer),
		pageLimiter: newLimiter(pagePerSecond, pageBurst),
		inflight:    newInflight(o.Config.Limits.MaxConcurrency, o.Registerer),
		token:       o.UpstreamToken,
		now:         o.Now,
		pages:       o.Pages,
		login:       o.Login,
		tracer:      o.Tracer,
		gather:      o.Gatherer,

		detectors:     o.Detectors,
		detectorState: o.DetectorState,
	}
	if o.Login != nil {
		h.pages = map[string]http.Handler{}
		for path, page := range o.Pages {
			h.pages[path] = page
		}
		for path, page := range o.Login.Pages() {
			h.pages[path] = page
		}
	}
	if h.token == nil {
		h.token = func() string { return "" }
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.tel = newTelemetry(o.Registerer, h.now)
	h.remote = newRemote(o.Config.Write, o.Registerer)
	h.queries = newQueryCache()
	h.noCredentials = credentialsHint(o.Config)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("request id prefix: %w", err)
	}
	h.idPrefix = hex.EncodeToString(b[:])
	h.hold = holdsBack(o.Audit)
	if h.up, err = newUpstream(o.Config, o.Transport, h.token, h.tel, h.log); err != nil {
		return nil, err
	}
	if o.Config.Alertmanager != nil {
		if h.am, h.amToken, err = newAMUpstream(o.Config, h); err != nil {
			return nil, err
		}
	}
	if o.Config.Cache.Enabled && o.Config.Upstream.Kind != config.KindMetrics {
		if h.up.cache, err = newResultsCache(o.Config.Cache, h.up.rt, h.now, o.Registerer, h.log); err != nil {
			return nil, err
		}
	}
	if err := h.namedUpstreams(o.Config); err != nil {
		return nil, err
	}
	if o.Config.Upstream.Kind == config.KindMetrics {
		if h.scrapes, err = newScrapeSet(o.Config, h.up.raw, h.token); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// ServeHTTP serves one request and writes its audit record.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var st *state
	var t *reqTrace
	if h.tracer != nil {
		ts := new(tracedState)
		st, t = &ts.state, &ts.trace
	} else {
		st = new(state)
	}
	*st = state{
		id:         h.idPrefix + "-" + strconv.FormatUint(h.idSeq.Add(1), 36),
		start:      h.now(),
		remoteAddr: h.ip.of(r),
		route:      RouteUnknown,
	}
	rec := &recorder{ResponseWriter: w, hold: h.hold}
	// The gateway's own request id, the audit record's id: a client can
	// find the record of any answer it got, on whichever replica.
	w.Header().Set("X-Request-Id", st.id)
	if t != nil {
		h.startTrace(r, st, t)
	}
	defer func() {
		p := recover()
		if p != nil && p != http.ErrAbortHandler { //nolint:errorlint // a recovered panic value, not a returned error: net/http itself compares it with ErrAbortHandler by identity
			h.log.Error("panic serving request", "request_id", st.id, "route", st.route, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			st.err = fmt.Errorf("panic: %v", p)
			if rec.status == 0 {
				promapi.WriteError(rec, promapi.As(st.err, st.id))
			}
		}
		if err := h.finish(rec, r, st); err != nil && h.abortsOnAuditFailure(st) {
			panic(errAbort)
		}
		rec.release()
		if p == http.ErrAbortHandler { //nolint:errorlint // as above: the panic value itself
			panic(p)
		}
	}()
	if err := h.serve(rec, r, st); err != nil {
		e := promapi.As(err, st.id)
		st.err = e
		if rec.status == 0 {
			if e.Type == promapi.ErrTooManyRequests && rec.Header().Get("Retry-After") == "" {
				rec.Header().Set("Retry-After", "1")
			}
			promapi.WriteError(rec, e)
		}
	}
}

// serve runs the chain every request shares: audit health, pages,
// deadline, authentication, rate limit, route and method; then the route's
// own handler. Authentication comes before routing so that nothing, not
// even which paths exist, is revealed to an anonymous caller, and so that
// probes of unserved paths are audited with the caller's identity. Any
// error ends the request before the upstream is reached.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, st *state) error {
	if h.cfg.Audit.OnFailure == config.OnFailureDeny && !h.audit.Healthy() {
		return &promapi.Error{Type: promapi.ErrUnavailable, Status: http.StatusServiceUnavailable,
			Msg: "the audit trail cannot be written; requests are refused until it can"}
	}
	if page, ok := h.pages[r.URL.Path]; ok && (r.URL.RawPath == "" || r.URL.RawPath == r.URL.Path) {
		st.route = RoutePage
		if !h.pageLimiter.allow(h.failures.network(st.remoteAddr), h.now()) {
			w.Header().Set("Retry-After", "1")
			return promapi.Errorf(promapi.ErrTooManyRequests, "too many sign-in requests from your network; retry later")
		}
		page.ServeHTTP(w, r)
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(h.cfg.Limits.QueryTimeout))
	defer cancel()
	r = r.WithContext(ctx)
	st.tr.enter(spanAuthn)
	if err := h.authenticate(w, r, st); err != nil || st.identity == nil {
		st.tr.leave()
		return err
	}
	st.tr.leave()
	id := st.identity
	if id.Method == authn.MethodSession && r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
		// A session cookie rides along on cross-site form posts; only a
		// same-origin request may use it to change what the API reads.
		return promapi.Errorf(promapi.ErrForbidden, "cross-site request refused: a session-authenticated %s needs a same-origin Origin or Sec-Fetch-Site header", r.Method)
	}
	rt := h.match(r)
	if rt != nil {
		st.route, st.rt = rt.name, rt
	}
	if err := h.identityLimit(rt, r.Method, id); err != nil {
		return err
	}
	if rt == nil {
		return promapi.Errorf(promapi.ErrNotFound, "not found: this path is not served by the gateway")
	}
	if !slices.Contains(rt.methods, r.Method) {
		w.Header().Set("Allow", strings.Join(rt.methods, ", "))
		return &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusMethodNotAllowed,
			Msg: fmt.Sprintf("method %s is not allowed on this route; use %s", r.Method, strings.Join(rt.methods, " or "))}
	}
	if r.Header.Get("Upgrade") != "" {
		// The gateway never upgrades a connection; refusing here keeps a
		// caller's odd Upgrade from reaching the upstream, or its telemetry.
		return promapi.Errorf(promapi.ErrBadData, "protocol upgrades are not supported on this route")
	}
	err := rt.serve(h, w, r, st)
	if err != nil && st.decision == nil {
		// Refused before the policy answered, so no bucket was drawn
		// from: the identity's own pays, whatever its rate.
		h.limiter.allow(rateKey(id), h.now())
	}
	return err
}

// serveAPI serves the Prometheus API routes: parameters, the policy, the
// limits, the rewrite, then the upstream.
func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request, st *state) error {
	params, dropped, err := parseParams(r, st.rt, h.paramFlavor(), int64(h.cfg.Limits.MaxRequestBody))
	if err != nil {
		return err
	}
	if len(dropped) > 0 {
		st.dropped = dropped
		h.m.dropped.add(st.route, dropped)
	}
	a, err := h.askOf(st, params)
	if err != nil {
		return err
	}
	g, err := h.admit(r.Context(), r, st, a)
	if err != nil {
		return err
	}
	h.dropForFlavor(g.up, st, a.params)
	if why := st.rt.unrestrictedOnly; why != "" && !g.en.Unrestricted() {
		// The policy allowed the caller, but confined it: the answer
		// cannot be confined, so it is not given.
		return promapi.Errorf(promapi.ErrForbidden, "access denied for %s: %s is served to unrestricted callers only, because %s",
			st.identity.Subject, r.URL.Path, why)
	}
	// The slot is taken before the outbound request is built, since a
	// response filter may ask the upstream itself (metadata).
	release, err := h.inflight.acquire(g, st.identity)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		return err
	}
	defer release()
	out, err := h.outboundOf(r, st, a, g)
	if err != nil {
		return err
	}
	setClamped(w, st)
	st.tr.upstream()
	g.up.forward(w, r, st, out)
	return nil
}

// askOf reads what a Prometheus API request asks of the policy.
func (h *Handler) askOf(st *state, params url.Values) (*ask, error) {
	a := &ask{route: st.rt.name, kind: st.rt.kind, params: params}
	switch st.rt.kind {
	case kindQuery:
		text := params.Get("query")
		if text == "" {
			return nil, promapi.Errorf(promapi.ErrBadData, `missing parameter "query"`)
		}
		st.query = []string{text}
		q, err := h.queries.parse(text)
		if err != nil {
			return nil, h.enforceError(err, st.identity)
		}
		a.query = q
	case kindMatch:
		a.match = params["match[]"]
		st.query = a.match
		if _, err := enforce.Matchers(a.match, nil); err != nil {
			return nil, h.enforceError(err, st.identity)
		}
	}
	return a, nil
}

// outboundOf builds the enforced upstream request of a Prometheus API
// request: the rewritten query or match[], the remaining parameters as
// checked, the tenant, and the response filter of a restricted caller.
func (h *Handler) outboundOf(r *http.Request, st *state, a *ask, g *grant) (*outbound, error) {
	params := a.params
	switch a.kind {
	case kindQuery:
		text, err := g.en.Rewrite(a.query)
		if err != nil {
			return nil, h.enforceError(err, st.identity)
		}
		params.Set("query", text)
		st.enforced = []string{text}
	case kindMatch:
		match, err := h.confineMatch(st, a.match, g.en)
		if err != nil {
			return nil, err
		}
		if len(match) == 0 {
			delete(params, "match[]")
		} else {
			params["match[]"] = match
		}
		st.enforced = match
	}
	out := &outbound{path: r.URL.Path, post: r.Method == http.MethodPost, tenant: g.tenant}
	if st.rt.filter != nil && !g.en.Unrestricted() {
		// Responses that list what the caller may not see are filtered by
		// route (never by path string) before they leave the gateway.
		f, err := st.rt.filter(h, r, g, st)
		if err != nil {
			return nil, err
		}
		out.filter = f
	}
	out.query = params.Encode()
	return out, nil
}

// metadataFilter confines a metadata answer to the metric names the
// caller's enforcement lets it see, which it asks the upstream first.
func (h *Handler) metadataFilter(r *http.Request, g *grant, st *state) (bodyFilter, error) {
	match, err := g.en.Matchers(nil)
	if err != nil {
		return nil, &promapi.Error{Type: promapi.ErrForbidden, Msg: "access denied: the policy decision is invalid", Err: err}
	}
	names, err := g.up.labelValues(r, st, "__name__", match, g.tenant)
	if err != nil {
		return nil, &promapi.Error{Type: promapi.ErrUnavailable, Msg: "upstream unavailable (request id " + st.id + ")", Err: err}
	}
	visible := make(map[string]bool, len(names))
	for _, n := range names {
		visible[n] = true
	}
	return func(b []byte) ([]byte, error) { return g.en.FilterMetadata(b, visible) }, nil
}

// sameOrigin reports whether a browser says the request comes from the
// gateway's own origin. Sec-Fetch-Site is set by every current browser and
// cannot be forged by a page; Origin is the fallback.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return s == "same-origin"
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return false
	}
	u, err := url.Parse(o)
	return err == nil && u.Scheme == "https" && u.Host == r.Host && u.Path == "" && u.User == nil
}

func (h *Handler) authnError(err error) error {
	if errors.Is(err, authn.ErrNoCredentials) {
		h.m.authnFailures.WithLabelValues("none", "no_credentials").Inc()
		return promapi.Wrap(promapi.ErrUnauthorized, h.noCredentials, err)
	}
	if ae, ok := errors.AsType[*authn.Error](err); ok {
		h.m.authnFailures.WithLabelValues(string(ae.Method), ae.Reason).Inc()
		return promapi.Wrap(promapi.ErrUnauthorized, "authentication failed: "+ae.Msg, err)
	}
	h.m.authnFailures.WithLabelValues("unknown", "error").Inc()
	return promapi.Wrap(promapi.ErrUnauthorized, "authentication failed", err)
}

// credentialsHint names the credentials the configuration accepts.
func credentialsHint(c *config.Config) string {
	var ways []string
	if c.TLS.ClientAuthType != config.NoClientCert {
		ways = append(ways, "a client certificate signed by the gateway's client CA")
	}
	if len(c.Authn.OIDC) > 0 {
		ways = append(ways, "a bearer token from a configured issuer")
	}
	if c.Authn.Login != nil {
		ways = append(ways, "a session from signing in at /oauth2/start")
	}
	return "authentication required: present " + strings.Join(ways, ", or ")
}

// finish writes the audit record and the request metrics.
func (h *Handler) finish(rec *recorder, r *http.Request, st *state) error {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	elapsed := h.now().Sub(st.start)
	h.m.requests.WithLabelValues(st.route, strconv.Itoa(status)).Inc()
	h.m.duration.WithLabelValues(st.route).Observe(elapsed.Seconds())
	if id := st.identity; id != nil {
		h.tel.request(id.Subject, st.route, rec.bytes)
	}
	st.tr.end(st, r.Method, status)

	ar := &audit.Record{
		Time:            st.start,
		ID:              st.id,
		ClientRequestID: r.Header.Get("X-Request-Id"),
		TraceID:         traceIDOf(r, st),
		RemoteAddr:      st.remoteAddr,
		Method:          r.Method,
		Route:           st.route,
		Path:            r.URL.Path,
		Query:           st.query,
		EnforcedQuery:   st.enforced,
		Status:          status,
		Bytes:           rec.bytes,
		DurationMS:      float64(elapsed.Microseconds()) / 1000,
	}
	if id := st.identity; id != nil {
		ar.Identity = &audit.Identity{Method: string(id.Method), Subject: id.Subject, Groups: id.Groups, Issuer: id.Issuer}
		if id.Certificate != nil {
			ar.Identity.CertFingerprint = id.Certificate.FingerprintSHA256
		}
	}
	ar.DroppedParams = st.dropped
	ar.RefusedMatch = st.refusedMatch
	ar.Remote = st.remote
	ar.Coalesced = st.coalesced
	ar.ResultsCache = st.cache
	for _, c := range st.clamped {
		ar.Clamped = append(ar.Clamped, c.name+"="+c.value)
	}
	if s := st.silence; s != nil {
		ar.SilenceOperation, ar.SilenceID, ar.SilenceMatchers = s.op, s.id, s.matchers
		if !s.startsAt.IsZero() {
			ar.SilenceStartsAt, ar.SilenceEndsAt = s.startsAt.UTC().Format(time.RFC3339), s.endsAt.UTC().Format(time.RFC3339)
		}
	}
	if d := st.decision; d != nil {
		ar.Decision = &audit.Decision{Allow: d.Allow, Reason: d.Reason, PolicyRevision: st.revision}
	}
	if st.err != nil {
		ar.Error = st.err.Error()
	}
	err := h.audit.Write(ar)
	if err != nil {
		h.log.Error("audit write", "request_id", st.id, "err", err)
	}
	return err
}
