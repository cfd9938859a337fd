package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/enforce"
	"github.com/promgate/promgate/promapi"
)

// ask is what one request puts to the policy: its route and what it reads.
// Every route that reaches data, or the gateway's own pages about data,
// builds one and hands it to admit.
type ask struct {
	route string
	kind  kind
	// query is the parsed expression of a query route or a detector, or nil.
	query *enforce.Query
	// queries are the expressions a console page may run, asked about
	// together (console.go); nil elsewhere.
	queries []*enforce.Query
	// match are the match[] selectors of a match route, already checked to
	// parse; nil for other kinds.
	match []string
	// am is the silence or alerts under decision on an Alertmanager
	// route, or nil.
	am *authz.Alertmanager
	// params are the request's time parameters, checked against the limits
	// (and clamped where a metadata route allows it); nil when the request
	// has none to check.
	params url.Values
}

// grant is the policy's answer to an ask, compiled and checked: the
// decision, its enforcer, the upstream tenant and the limits that apply. It
// is everything a route needs to build the enforced upstream request.
type grant struct {
	dec    authz.Decision
	en     *enforce.Enforcer
	tenant string
	limits limits
	// up is the upstream the decision picks (upstreams.go).
	up *upstream
}

// admit turns (identity, route, query) into a grant: it asks the policy,
// takes the decision's compiled enforcer, applies the strictest limits and
// takes the tenant. Any failure is a denial or the caller's error; nothing
// is forwarded without a grant.
func (h *Handler) admit(ctx context.Context, r *http.Request, st *state, a *ask) (*grant, error) {
	in := authz.Input{
		Identity: st.identity,
		Request:  authz.Request{Method: r.Method, Path: r.URL.Path, Route: a.route, RemoteAddr: st.remoteAddr},
		// Alertmanager routes only: the silence or alerts under decision.
		Alertmanager: a.am,
	}
	switch {
	case a.query != nil:
		q := a.query
		in.QueryFunc = func() (*authz.Query, error) {
			return &authz.Query{Expressions: q.Expressions(), Selectors: selectorsOf(q.Selectors())}, nil
		}
	case a.kind == kindMatch:
		in.QueryFunc = func() (*authz.Query, error) { return h.matchQuery(a.match) }
	case len(a.queries) > 0:
		in.QueryFunc = func() (*authz.Query, error) {
			aq := &authz.Query{}
			for _, q := range a.queries {
				aq.Expressions = append(aq.Expressions, q.String())
				aq.Selectors = append(aq.Selectors, selectorsOf(q.Selectors())...)
			}
			return aq, nil
		}
	}
	st.tr.enter(spanPolicy)
	dec, err := h.decide(ctx, in, st)
	if err != nil {
		return nil, err
	}
	// The rewrite step lasts until the upstream step, or the end.
	st.tr.enter(spanRewrite)
	en, err := enforcerOf(dec)
	if err != nil {
		return nil, err
	}
	g := &grant{dec: dec, en: en, limits: h.limitsFor(dec.Limits)}
	if err := h.checkLimits(a, g, st); err != nil {
		return nil, err
	}
	if g.up, err = h.upstreamOf(dec.Upstream, st.identity.Subject); err != nil {
		return nil, err
	}
	tenantHeader := g.up.cfg.Upstream.TenantHeader
	if slices.Contains(amRoutes, a.route) {
		tenantHeader = h.cfg.Alertmanager.TenantHeader
	}
	if tenantHeader != "" {
		if dec.Tenant == "" {
			return nil, promapi.Errorf(promapi.ErrForbidden, "access denied for %s: the policy names no tenant, and the upstream needs one", st.identity.Subject)
		}
		g.tenant = dec.Tenant
	}
	return g, nil
}

// matchQuery describes match[] selectors to the policy.
func (h *Handler) matchQuery(match []string) (*authz.Query, error) {
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

// decide asks the policy. Every request of a route asks, whether or not its
// expression has selectors: a caller with no access gets 403 for 1+1 too.
// The revision recorded is the one of the snapshot that decided.
func (h *Handler) decide(ctx context.Context, in authz.Input, st *state) (authz.Decision, error) {
	dec, err := h.authz.Decide(ctx, in)
	st.decision = &dec
	st.revision = dec.Revision
	if err := h.rateLimit(st.identity, &dec); err != nil {
		return dec, err
	}
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

// enforcerOf returns the enforcer the decision was compiled into when the
// policy answered. An allowing decision without one was never validated,
// and denies.
func enforcerOf(dec authz.Decision) (*enforce.Enforcer, error) {
	en := dec.Enforcer()
	if en == nil {
		return nil, &promapi.Error{Type: promapi.ErrForbidden, Msg: "access denied: the policy decision is invalid",
			Err: errors.New("the decision was not compiled")}
	}
	return en, nil
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
