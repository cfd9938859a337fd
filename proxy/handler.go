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
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/detect"
	"github.com/promgate/promgate/enforce"
	"github.com/promgate/promgate/promapi"
)

// Decider is the policy decision point. *authz.Authorizer implements it.
type Decider interface {
	Decide(ctx context.Context, in authz.Input) (authz.Decision, error)
	Revision() string
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
	failures *limiter
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
		cfg:     o.Config,
		authn:   o.Authn,
		authz:   o.Authz,
		audit:   o.Audit,
		log:     o.Logger.With("component", "proxy"),
		m:       newMetrics(o.Registerer),
		ip:      ip,
		limiter: newLimiter(o.Config.Limits.RequestsPerSecond, o.Config.Limits.Burst),
		// Authentication failures per client network: a sustained 5/s with
		// bursts of 50, generous for humans and misconfigured clients,
		// tight for a spray.
		failures: newLimiter(5, 50),
		token:    o.UpstreamToken,
		now:      o.Now,
		pages:    o.Pages,
		login:    o.Login,

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
	h.queries = newQueryCache()
	h.noCredentials = credentialsHint(o.Config)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("request id prefix: %w", err)
	}
	h.idPrefix = hex.EncodeToString(b[:])
	if h.up, err = newUpstream(o.Config, o.Transport, h); err != nil {
		return nil, err
	}
	if o.Config.Upstream.Kind == config.KindMetrics {
		if h.scrapes, err = newScrapeSet(o.Config, h.up.raw, h.token, h.now); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// ServeHTTP serves one request and writes its audit record.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &state{
		id:         h.idPrefix + "-" + strconv.FormatUint(h.idSeq.Add(1), 36),
		start:      h.now(),
		remoteAddr: h.ip.of(r),
		route:      RouteUnknown,
	}
	rec := &recorder{ResponseWriter: w}
	r = r.WithContext(withState(r.Context(), st))
	defer func() {
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			h.log.Error("panic serving request", "request_id", st.id, "route", st.route, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			st.err = fmt.Errorf("panic: %v", p)
			if rec.status == 0 {
				promapi.WriteError(rec, promapi.As(st.err, st.id))
			}
		}
		h.finish(rec, r, st)
		if p == http.ErrAbortHandler {
			panic(p)
		}
	}()
	if err := h.serve(rec, r, st); err != nil {
		e := promapi.As(err, st.id)
		st.err = e
		if rec.status == 0 {
			promapi.WriteError(rec, e)
		}
	}
}

// serve runs the request through the chain: audit health, pages, deadline,
// authn, rate limit, route, method, parse, authz, limits, enforce, upstream.
// Authentication comes before routing so that nothing, not even which paths
// exist, is revealed to an anonymous caller, and so that probes of unserved
// paths are audited with the caller's identity. Any error ends the request
// before the upstream is reached.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, st *state) error {
	if h.cfg.Audit.OnFailure == config.OnFailureDeny && !h.audit.Healthy() {
		return &promapi.Error{Type: promapi.ErrUnavailable, Status: http.StatusServiceUnavailable,
			Msg: "the audit trail cannot be written; requests are refused until it can"}
	}
	if page, ok := h.pages[r.URL.Path]; ok && (r.URL.RawPath == "" || r.URL.RawPath == r.URL.Path) {
		st.route = RoutePage
		page.ServeHTTP(w, r)
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(h.cfg.Limits.QueryTimeout))
	defer cancel()
	r = r.WithContext(ctx)

	network := clientNetwork(st.remoteAddr)
	if h.failures.exhausted(network, h.now()) {
		// This network keeps failing authentication: refuse before spending
		// any work on its credentials.
		w.Header().Set("Retry-After", "10")
		return promapi.Errorf(promapi.ErrTooManyRequests, "too many failed authentications from your network; retry later")
	}
	id, err := h.authn.Authenticate(r)
	if err != nil {
		h.failures.allow(network, h.now())
		method := "none"
		if ae, ok := errors.AsType[*authn.Error](err); ok {
			method = string(ae.Method)
			if ae.Method == authn.MethodSession && h.login != nil {
				// A tampered, foreign or expired cookie is cleared, so the
				// browser stops sending it.
				h.login.ClearCookies(w, r)
			}
		}
		h.tel.authnFailure(st.remoteAddr, method)
		if h.login != nil && isUIPath(r.URL.Path) && wantsHTML(r) {
			// A browser without a session goes to the login, and comes back.
			st.route = RouteUI
			st.err = err
			http.Redirect(w, r, h.login.StartURL(r), http.StatusFound)
			return nil
		}
		return h.authnError(err)
	}
	st.identity = id
	if id.Method == authn.MethodSession && r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
		// A session cookie rides along on cross-site form posts; only a
		// same-origin request may use it to change what the API reads.
		return promapi.Errorf(promapi.ErrForbidden, "cross-site request refused: a session-authenticated %s needs a same-origin Origin or Sec-Fetch-Site header", r.Method)
	}
	if !h.limiter.allow(string(id.Method)+"\x00"+id.Subject, h.now()) {
		w.Header().Set("Retry-After", "1")
		return promapi.Errorf(promapi.ErrTooManyRequests, "rate limit exceeded for %s; slow down", id.Subject)
	}

	if h.cfg.Upstream.Kind == config.KindMetrics {
		// Exporter sidecar: the scrape route(s) only (scrape.go).
		return h.serveScrape(w, r, st, id)
	}
	if isUIPath(r.URL.Path) {
		return h.serveUI(w, r, st, id)
	}
	if h.detectors != nil && isDetectorsPath(r.URL.Path) {
		// The detectors API evaluates as the caller (detectors.go).
		return h.serveDetectors(w, r, st, id)
	}
	rt := classify(r.URL.RawPath, r.URL.Path)
	if rt == nil {
		return promapi.Errorf(promapi.ErrNotFound, "not found: this path is not served by the gateway")
	}
	st.route = rt.name
	if !rt.allows(r.Method) {
		w.Header().Set("Allow", strings.Join(rt.methods, ", "))
		return &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusMethodNotAllowed,
			Msg: fmt.Sprintf("method %s is not allowed on this route; use %s", r.Method, strings.Join(rt.methods, " or "))}
	}
	params, err := parseParams(r, rt, int64(h.cfg.Limits.MaxRequestBody))
	if err != nil {
		return err
	}
	in := authz.Input{
		Identity: id,
		Request:  authz.Request{Method: r.Method, Path: r.URL.Path, Route: rt.name, RemoteAddr: st.remoteAddr},
	}
	var q *enforce.Query
	switch rt.kind {
	case kindQuery:
		text := params.Get("query")
		if text == "" {
			return promapi.Errorf(promapi.ErrBadData, `missing parameter "query"`)
		}
		st.query = []string{text}
		if q, err = h.queries.parse(text); err != nil {
			return h.enforceError(err, id)
		}
		in.QueryFunc = func() (*authz.Query, error) {
			return &authz.Query{Expressions: q.Expressions(), Selectors: selectorsOf(q.Selectors())}, nil
		}
	case kindMatch:
		match := params["match[]"]
		st.query = match
		if _, err := enforce.Matchers(match, nil); err != nil {
			return h.enforceError(err, id)
		}
		in.QueryFunc = func() (*authz.Query, error) {
			aq := &authz.Query{Expressions: match}
			for _, m := range match {
				mq, err := h.queries.parse(m)
				if err != nil {
					return nil, err
				}
				aq.Selectors = append(aq.Selectors, selectorsOf(mq.Selectors())...)
			}
			return aq, nil
		}
	}

	dec, err := h.decide(ctx, in, q, st)
	if err != nil {
		return err
	}
	en, err := enforcerFor(dec)
	if err != nil {
		return err
	}
	if err := h.checkLimits(rt, params, q, dec.Limits); err != nil {
		return err
	}
	if err := h.setTenant(dec, id, st); err != nil {
		return err
	}
	if !en.Unrestricted() {
		// Responses that list what the caller may not see are filtered by
		// route (never by path string) before they leave the gateway. The
		// metadata filter asks the upstream first, with the tenant set above.
		switch rt.name {
		case RouteRules:
			st.filter = en.FilterRules
		case RouteAlerts:
			st.filter = en.FilterAlerts
		case RouteMetadata:
			visible, err := h.visibleMetrics(ctx, en, st)
			if err != nil {
				return err
			}
			st.filter = func(b []byte) ([]byte, error) { return en.FilterMetadata(b, visible) }
		}
	}

	switch rt.kind {
	case kindQuery:
		out, err := en.Rewrite(q)
		if err != nil {
			return h.enforceError(err, id)
		}
		params.Set("query", out)
		st.enforced = []string{out}
	case kindMatch:
		out, err := en.Matchers(params["match[]"])
		if err != nil {
			return h.enforceError(err, id)
		}
		if len(out) == 0 {
			delete(params, "match[]")
		} else {
			params["match[]"] = out
		}
		st.enforced = out
	}
	st.upstreamPath = r.URL.Path
	st.upstreamQuery = params.Encode()
	st.post = r.Method == http.MethodPost
	h.up.rp.ServeHTTP(w, r)
	return nil
}

// visibleMetrics asks the upstream which metric names the caller's
// enforcement lets it see, to confine a metadata response to them.
func (h *Handler) visibleMetrics(ctx context.Context, en *enforce.Enforcer, st *state) (map[string]bool, error) {
	match, err := en.Matchers(nil)
	if err != nil {
		return nil, &promapi.Error{Type: promapi.ErrForbidden, Msg: "access denied: the policy decision is invalid", Err: err}
	}
	names, err := h.up.labelValues(ctx, "__name__", match, st, h.token(), h.cfg.Upstream.TenantHeader)
	if err != nil {
		return nil, &promapi.Error{Type: promapi.ErrUnavailable, Msg: "upstream unavailable (request id " + st.id + ")", Err: err}
	}
	visible := make(map[string]bool, len(names))
	for _, n := range names {
		visible[n] = true
	}
	return visible, nil
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

// decide asks the policy. An expression without selectors reads no data and
// needs no decision, so that Grafana's health check (1+1) works for every
// authenticated caller.
func (h *Handler) decide(ctx context.Context, in authz.Input, q *enforce.Query, st *state) (authz.Decision, error) {
	if q != nil && len(q.Selectors()) == 0 {
		dec := authz.Decision{Allow: true, Reason: "the expression has no selectors and reads no data"}
		st.decision = &dec
		return dec, nil
	}
	st.revision = h.authz.Revision()
	dec, err := h.authz.Decide(ctx, in)
	st.decision = &dec
	if err != nil {
		return dec, &promapi.Error{Type: promapi.ErrForbidden, Msg: "access denied: the policy could not decide", Err: err}
	}
	if !dec.Allow {
		reason := dec.Reason
		if reason == "" {
			reason = "no policy rule allows this request"
		}
		return dec, &promapi.Error{Type: promapi.ErrForbidden, Msg: "access denied for " + in.Identity.Subject + ": " + reason}
	}
	return dec, nil
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

// enforcerFor builds the enforcer of a decision. An invalid decision denies.
func enforcerFor(dec authz.Decision) (*enforce.Enforcer, error) {
	en, err := enforce.NewPolicyEnforcer(enforce.Policy{Enforce: dec.Enforce, EnforceRegex: dec.EnforceRegex, Matchers: dec.Matchers})
	if err != nil {
		return nil, &promapi.Error{Type: promapi.ErrForbidden, Msg: "access denied: the policy decision is invalid", Err: err}
	}
	return en, nil
}

// setTenant takes the decision's tenant for upstream.tenant_header. A
// tenant-keyed upstream with no tenant in the decision is a denial.
func (h *Handler) setTenant(dec authz.Decision, id *authn.Identity, st *state) error {
	if h.cfg.Upstream.TenantHeader == "" {
		return nil
	}
	if dec.Tenant == "" {
		return promapi.Errorf(promapi.ErrForbidden, "access denied for %s: the policy names no tenant, and the upstream needs one", id.Subject)
	}
	st.tenant = dec.Tenant
	return nil
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

// enforceError maps a rewriter error to the API error shape, and counts
// refusals per subject and label for the cross-tenant probing detector.
func (h *Handler) enforceError(err error, id *authn.Identity) error {
	ee, ok := errors.AsType[*enforce.Error](err)
	if !ok {
		return err
	}
	switch ee.Kind {
	case enforce.Forbidden:
		if id != nil && ee.Label != "" {
			h.tel.refusal(id.Subject, ee.Label)
		}
		msg := ee.Msg
		if id != nil {
			msg += " for " + id.Subject
		}
		return &promapi.Error{Type: promapi.ErrForbidden, Msg: msg, Err: err}
	case enforce.BadData:
		return &promapi.Error{Type: promapi.ErrBadData, Msg: ee.Msg, Err: err}
	default:
		return &promapi.Error{Type: promapi.ErrForbidden, Msg: "access denied: the policy decision is invalid", Err: err}
	}
}

func selectorsOf(ss []enforce.Selector) []authz.Selector {
	out := make([]authz.Selector, len(ss))
	for i, s := range ss {
		ms := make([]authz.Matcher, len(s.Matchers))
		for j, m := range s.Matchers {
			ms[j] = authz.Matcher{Name: m.Name, Type: m.Type, Value: m.Value}
		}
		out[i] = authz.Selector{Metric: s.Metric, Matchers: ms}
	}
	return out
}

// finish writes the audit record and the request metrics.
func (h *Handler) finish(rec *recorder, r *http.Request, st *state) {
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

	ar := &audit.Record{
		Time:            st.start,
		ID:              st.id,
		ClientRequestID: r.Header.Get("X-Request-Id"),
		RemoteAddr:      st.remoteAddr,
		Method:          r.Method,
		Route:           st.route,
		Path:            truncate(r.URL.Path, 512),
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
	if d := st.decision; d != nil {
		ar.Decision = &audit.Decision{Allow: d.Allow, Reason: d.Reason, PolicyRevision: st.revision}
	}
	if st.err != nil {
		ar.Error = st.err.Error()
	}
	if err := h.audit.Write(ar); err != nil {
		h.log.Error("audit write", "request_id", st.id, "err", err)
	}
}

// checkLimits applies the strictest of the global limits and the decision's.
func (h *Handler) checkLimits(rt *route, params url.Values, q *enforce.Query, dl authz.Limits) error {
	l := h.cfg.Limits
	maxRange := strictest(time.Duration(l.MaxRange), dl.MaxRange)
	maxLookback := strictest(time.Duration(l.MaxLookback), dl.MaxLookback)
	minStep := max(time.Duration(l.MinStep), dl.MinStep)
	now := h.now()

	evalTime := now
	var start, end time.Time
	var err error
	if s := params.Get("time"); s != "" {
		if evalTime, err = promapi.ParseTime(s); err != nil {
			return promapi.Errorf(promapi.ErrBadData, `invalid parameter "time": %v`, err)
		}
	}
	if s := params.Get("timeout"); s != "" {
		d, err := promapi.ParseDuration(s)
		if err != nil || d <= 0 {
			return promapi.Errorf(promapi.ErrBadData, `invalid parameter "timeout": %q is not a positive duration`, truncate(s, 32))
		}
		if qt := time.Duration(l.QueryTimeout); d > qt {
			params.Set("timeout", model.Duration(qt).String())
		}
	}
	hasStart, hasEnd := params.Get("start") != "", params.Get("end") != ""
	if hasStart {
		if start, err = promapi.ParseTime(params.Get("start")); err != nil {
			return promapi.Errorf(promapi.ErrBadData, `invalid parameter "start": %v`, err)
		}
	}
	if hasEnd {
		if end, err = promapi.ParseTime(params.Get("end")); err != nil {
			return promapi.Errorf(promapi.ErrBadData, `invalid parameter "end": %v`, err)
		}
		evalTime = end
	}
	if rt.name == RouteQueryRange {
		if !hasStart || !hasEnd {
			return promapi.Errorf(promapi.ErrBadData, `query_range needs "start" and "end"`)
		}
		s := params.Get("step")
		if s == "" {
			return promapi.Errorf(promapi.ErrBadData, `missing parameter "step"`)
		}
		step, err := promapi.ParseDuration(s)
		if err != nil {
			return promapi.Errorf(promapi.ErrBadData, `invalid parameter "step": %v`, err)
		}
		if step <= 0 {
			return promapi.Errorf(promapi.ErrBadData, `invalid parameter "step": zero or negative query resolution step widths are not accepted`)
		}
		if minStep > 0 && step < minStep {
			return promapi.Errorf(promapi.ErrBadData, "step %s is below the minimum of %s", step, minStep)
		}
	}
	if hasStart && hasEnd {
		if end.Before(start) {
			return promapi.Errorf(promapi.ErrBadData, `invalid parameter "end": end timestamp must not be before start time`)
		}
		if maxRange > 0 && end.Sub(start) > maxRange {
			return promapi.Errorf(promapi.ErrBadData, "time range %s exceeds the maximum of %s", end.Sub(start), maxRange)
		}
	}
	if q != nil && maxLookback > 0 && len(q.Selectors()) > 0 {
		// An expression without selectors reads no data, whenever it is
		// evaluated. One with selectors reaches back from its earliest evaluation time by its
		// ranges, offsets and @ modifiers.
		earliest := evalTime
		if hasStart && start.Before(earliest) {
			earliest = start
		}
		reach := max(now.Sub(earliest), 0) + q.Lookback(earliest)
		if reach > maxLookback {
			return promapi.Errorf(promapi.ErrBadData, "query reaches %s into the past, beyond the maximum lookback of %s",
				reach.Round(time.Second), maxLookback)
		}
	}
	return nil
}

// strictest returns the smaller positive limit; zero means unset.
func strictest(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	default:
		return min(a, b)
	}
}
