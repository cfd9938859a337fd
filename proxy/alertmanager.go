package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/enforce"
	"github.com/promgate/promgate/promapi"
	"github.com/promgate/promgate/reload"
)

// The Alertmanager routes (config alertmanager), served beside the
// Prometheus API when the block is set. Their names are the policy's
// input.request.route.
const (
	// RouteAMAlerts is GET /api/v2/alerts.
	RouteAMAlerts = "am_alerts"
	// RouteAMAlertGroups is GET /api/v2/alerts/groups.
	RouteAMAlertGroups = "am_alert_groups"
	// RouteAMAlertPush is POST /api/v2/alerts: a sender pushing alerts.
	RouteAMAlertPush = "am_alert_push"
	// RouteAMSilences is GET /api/v2/silences and GET /api/v2/silence/{id}.
	RouteAMSilences = "am_silences"
	// RouteAMSilence is POST /api/v2/silences (create or update) and
	// DELETE /api/v2/silence/{id} (expire).
	RouteAMSilence = "am_silence"
	// RouteAMStatus is GET /api/v2/status.
	RouteAMStatus = "am_status"
	// RouteAMReceivers is GET /api/v2/receivers.
	RouteAMReceivers = "am_receivers"
)

// amRoutes are the Alertmanager route names, for metrics that start at zero.
var amRoutes = []string{RouteAMAlerts, RouteAMAlertGroups, RouteAMAlertPush, RouteAMSilences, RouteAMSilence, RouteAMStatus, RouteAMReceivers}

var (
	getPostOnly = []string{http.MethodGet, http.MethodPost}
	getDelete   = []string{http.MethodGet, http.MethodDelete}

	amFilterParams = []string{"filter", "receiver", "active", "silenced", "inhibited"}
	amFilterMulti  = []string{"filter"}
)

// The Alertmanager route table. One path may serve several routes, one per
// method; each lists every method of its path, so that another method is
// 405 with the path's Allow.
var (
	amAlerts = &route{name: RouteAMAlerts, kind: kindPlain, methods: getPostOnly, serve: (*Handler).serveAMAlerts,
		params: append(slices.Clone(amFilterParams), "unprocessed"), multi: amFilterMulti}
	amAlertPush  = &route{name: RouteAMAlertPush, kind: kindPlain, methods: getPostOnly, serve: (*Handler).serveAMAlertPush}
	amGroups     = &route{name: RouteAMAlertGroups, kind: kindPlain, methods: getOnly, serve: (*Handler).serveAMAlerts, params: amFilterParams, multi: amFilterMulti}
	amSilences   = &route{name: RouteAMSilences, kind: kindPlain, methods: getPostOnly, serve: (*Handler).serveAMSilences, params: []string{"filter"}, multi: amFilterMulti}
	amSilenceNew = &route{name: RouteAMSilence, kind: kindPlain, methods: getPostOnly, serve: (*Handler).serveAMSilencePost}
	amSilenceGet = &route{name: RouteAMSilences, kind: kindPlain, methods: getDelete, serve: (*Handler).serveAMSilenceGet}
	amSilenceDel = &route{name: RouteAMSilence, kind: kindPlain, methods: getDelete, serve: (*Handler).serveAMSilenceDelete}
	amStatus     = &route{name: RouteAMStatus, kind: kindPlain, methods: getOnly, serve: (*Handler).serveAMStatus}
	amReceivers  = &route{name: RouteAMReceivers, kind: kindPlain, methods: getOnly, serve: (*Handler).serveAMReceivers}
)

// amMatch returns the Alertmanager route of a request, or nil. Only the
// canonical paths of API v2 are served: API v1, the UI, /-/reload and
// everything else are not found.
func amMatch(r *http.Request) *route {
	if (r.URL.RawPath != "" && r.URL.RawPath != r.URL.Path) || !canonical(r.URL.Path) {
		return nil
	}
	byMethod := func(get, other *route) *route {
		if r.Method == http.MethodGet {
			return get
		}
		return other
	}
	switch p := r.URL.Path; p {
	case "/api/v2/alerts":
		return byMethod(amAlerts, amAlertPush)
	case "/api/v2/alerts/groups":
		return amGroups
	case "/api/v2/silences":
		return byMethod(amSilences, amSilenceNew)
	case "/api/v2/status":
		return amStatus
	case "/api/v2/receivers":
		return amReceivers
	default:
		if id, ok := strings.CutPrefix(p, "/api/v2/silence/"); ok && enforce.ValidSilenceID(id) {
			return byMethod(amSilenceGet, amSilenceDel)
		}
	}
	return nil
}

// newAMUpstream builds the Alertmanager's upstream from the alertmanager
// block: its URL, TLS, token and tenant header in place of upstream's.
// Identical requests are never coalesced: silences change.
func newAMUpstream(cfg *config.Config, h *Handler) (*upstream, *TokenFile, error) {
	am := cfg.Alertmanager
	token := &TokenFile{path: am.BearerTokenFile, key: "alertmanager.bearer_token_file"}
	empty := ""
	token.token.Store(&empty)
	if err := token.Reload(); err != nil {
		return nil, nil, err
	}
	c := *cfg
	c.Upstream = config.Upstream{Kind: config.KindPrometheusAPI, URL: am.URL, TLS: am.TLS, TenantHeader: am.TenantHeader}
	u, err := newUpstream(&c, nil, token.Token, h.tel, h.log)
	if err != nil {
		return nil, nil, fmt.Errorf("alertmanager: %w", err)
	}
	return u, token, nil
}

// amRequest is one request the gateway sends the Alertmanager.
type amRequest struct {
	method string
	path   string
	query  url.Values
	body   []byte
	tenant string
}

// amDo sends req to the Alertmanager for the caller's request r, with the
// gateway's token, the decision's tenant and r's trace context, and reads
// the answer whole (at most maxFilteredBody). An error is the upstream's
// failure, in the API error shape.
func (h *Handler) amDo(r *http.Request, st *state, req amRequest) (int, http.Header, []byte, error) {
	u := h.am
	target := u.target.JoinPath(req.path)
	target.RawQuery = req.query.Encode()
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	st.tr.upstream()
	out, err := http.NewRequestWithContext(r.Context(), req.method, target.String(), body)
	if err != nil {
		return 0, nil, nil, err
	}
	for _, k := range []string{"Accept", "User-Agent"} {
		if v := r.Header.Values(k); len(v) > 0 {
			out.Header[k] = v
		}
	}
	if req.body != nil {
		out.Header.Set("Content-Type", "application/json")
	}
	stampHeaders(out.Header, r, st.tr, st.id, u.token(), u.cfg.Upstream.TenantHeader, req.tenant)
	resp, err := u.rt.RoundTrip(out)
	if err != nil {
		u.tel.upstream(st.route, 0)
		st.tr.answered(0)
		return 0, nil, nil, h.amFailure(r, st, err)
	}
	defer resp.Body.Close()
	u.tel.upstream(st.route, resp.StatusCode)
	st.tr.answered(resp.StatusCode)
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxFilteredBody+1))
	if err != nil {
		return 0, nil, nil, h.amFailure(r, st, err)
	}
	if len(b) > maxFilteredBody {
		return 0, nil, nil, h.amFailure(r, st, fmt.Errorf("%w: response larger than %d bytes", enforce.ErrUpstream, maxFilteredBody))
	}
	return resp.StatusCode, resp.Header, b, nil
}

// amFailure describes an upstream failure without revealing the upstream.
func (h *Handler) amFailure(r *http.Request, st *state, err error) error {
	switch {
	case errors.Is(r.Context().Err(), context.DeadlineExceeded):
		return &promapi.Error{Type: promapi.ErrTimeout, Msg: "the Alertmanager timed out (request id " + st.id + ")", Err: errors.New(upstreamCause(err))}
	case errors.Is(err, enforce.ErrUpstream):
		return &promapi.Error{Type: promapi.ErrUnavailable, Msg: "the Alertmanager's response could not be filtered for this caller (request id " + st.id + ")", Err: err}
	}
	return &promapi.Error{Type: promapi.ErrUnavailable, Msg: "the Alertmanager is unavailable (request id " + st.id + ")", Err: errors.New(upstreamCause(err))}
}

// amReply sends the Alertmanager's answer to the caller: a successful one
// through filter when it is set, any other as the Alertmanager wrote it.
func (h *Handler) amReply(w http.ResponseWriter, r *http.Request, st *state, status int, hdr http.Header, body []byte, filter bodyFilter) error {
	if status/100 == 2 && filter != nil {
		out, err := filter(body)
		if err != nil {
			return h.amFailure(r, st, err)
		}
		body = out
	}
	if ct := hdr.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// amAdmit asks the policy about an Alertmanager request and takes a slot
// upstream. The tenant comes from alertmanager.tenant_header.
func (h *Handler) amAdmit(r *http.Request, st *state, in *authz.Alertmanager) (*grant, func(), error) {
	g, err := h.admit(r.Context(), r, st, &ask{route: st.rt.name, kind: kindPlain, am: in})
	if err != nil {
		return nil, nil, err
	}
	release, err := h.inflight.acquire(g, st.identity)
	if err != nil {
		return nil, nil, err
	}
	return g, release, nil
}

// amParams reads the query parameters of an Alertmanager read route: each
// filter is parsed as Alertmanager parses it and forwarded as printed again,
// and the flags must be true or false.
func (h *Handler) amParams(r *http.Request, st *state) (url.Values, error) {
	params, dropped, err := parseParams(r, st.rt, config.FlavorPrometheus, int64(h.cfg.Limits.MaxRequestBody))
	if err != nil {
		return nil, err
	}
	if len(dropped) > 0 {
		st.dropped = dropped
		h.m.dropped.add(st.route, dropped)
	}
	if len(params["filter"]) > enforce.MaxSilenceMatchers {
		return nil, promapi.Errorf(promapi.ErrBadData, "more than %d filter parameters", enforce.MaxSilenceMatchers)
	}
	for i, f := range params["filter"] {
		m, err := enforce.ParseAMMatcher(f)
		if err != nil {
			return nil, h.enforceError(err, st.identity)
		}
		params["filter"][i] = m.String()
	}
	for _, flag := range []string{"active", "silenced", "inhibited", "unprocessed"} {
		if v, ok := params[flag]; ok && v[0] != "true" && v[0] != "false" {
			return nil, promapi.Errorf(promapi.ErrBadData, "parameter %s must be true or false", flag)
		}
	}
	st.query = params["filter"]
	return params, nil
}

// serveAMAlerts serves GET /api/v2/alerts and /api/v2/alerts/groups: the
// caller's enforcement goes into filter as matchers that Alertmanager ANDs
// with the caller's own, and the answer is filtered again by each alert's
// labels, a group left without alerts dropped.
func (h *Handler) serveAMAlerts(w http.ResponseWriter, r *http.Request, st *state) error {
	params, err := h.amParams(r, st)
	if err != nil {
		return err
	}
	g, release, err := h.amAdmit(r, st, nil)
	if err != nil {
		return err
	}
	defer release()
	var filter bodyFilter
	if !g.en.Unrestricted() {
		extra, err := g.en.AlertFilters()
		if err != nil {
			return h.enforceError(err, st.identity)
		}
		params["filter"] = append(params["filter"], extra...)
		filter = g.en.FilterAMAlerts
		if st.route == RouteAMAlertGroups {
			filter = g.en.FilterAMAlertGroups
		}
	}
	st.enforced = params["filter"]
	status, hdr, body, err := h.amDo(r, st, amRequest{method: http.MethodGet, path: r.URL.Path, query: params, tenant: g.tenant})
	if err != nil {
		return err
	}
	return h.amReply(w, r, st, status, hdr, body, filter)
}

// serveAMSilences serves GET /api/v2/silences: a restricted caller gets the
// silences confined to its allowed values only.
func (h *Handler) serveAMSilences(w http.ResponseWriter, r *http.Request, st *state) error {
	return h.serveAMRead(w, r, st, true, func(g *grant) bodyFilter { return g.en.FilterSilences })
}

// silenceIDOf returns the id of a /api/v2/silence/{id} path.
func silenceIDOf(r *http.Request) string {
	return strings.TrimPrefix(r.URL.Path, "/api/v2/silence/")
}

// serveAMSilenceGet serves GET /api/v2/silence/{id}: a restricted caller
// gets the silence only when it is confined to its allowed values.
func (h *Handler) serveAMSilenceGet(w http.ResponseWriter, r *http.Request, st *state) error {
	if _, err := h.amParams(r, st); err != nil {
		return err
	}
	g, release, err := h.amAdmit(r, st, nil)
	if err != nil {
		return err
	}
	defer release()
	id := silenceIDOf(r)
	status, hdr, body, err := h.amDo(r, st, amRequest{method: http.MethodGet, path: r.URL.Path, tenant: g.tenant})
	if err != nil {
		return err
	}
	if status == http.StatusOK && !g.en.Unrestricted() {
		_, ms, err := enforce.ReadSilence(body)
		if err != nil {
			return h.amFailure(r, st, err)
		}
		if !g.en.SilenceConfined(ms) {
			return h.notConfined(st, id)
		}
	}
	return h.amReply(w, r, st, status, hdr, body, nil)
}

func (h *Handler) notConfined(st *state, id string) error {
	return promapi.Errorf(promapi.ErrForbidden, "access denied for %s: silence %s is not confined to the label values you may see", st.identity.Subject, id)
}

// readBody reads a JSON request body of at most limits.max_request_body.
// The route takes no parameter: any in the query string is dropped, and
// the body must be application/json.
func (h *Handler) readBody(r *http.Request, st *state) ([]byte, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, promapi.Wrap(promapi.ErrBadData, "invalid URL query string", err)
	}
	if len(q) > 0 {
		st.dropped = slices.Sorted(maps.Keys(q))
		h.m.dropped.add(st.route, st.dropped)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusUnsupportedMediaType, Msg: "the body must be Content-Type: application/json"}
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, int64(h.cfg.Limits.MaxRequestBody)))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusRequestEntityTooLarge,
				Msg: fmt.Sprintf("request body larger than %d bytes", int64(h.cfg.Limits.MaxRequestBody))}
		}
		return nil, promapi.Wrap(promapi.ErrBadData, "the request body could not be read", err)
	}
	return b, nil
}

// existingSilence reads the silence id through the gateway's own client,
// with the decision's tenant. A silence the Alertmanager does not know is
// 404.
func (h *Handler) existingSilence(r *http.Request, st *state, g *grant, id string) (*authz.Silence, []enforce.AMMatcher, error) {
	status, _, body, err := h.amDo(r, st, amRequest{method: http.MethodGet, path: "/api/v2/silence/" + id, tenant: g.tenant})
	if err != nil {
		return nil, nil, err
	}
	switch {
	case status == http.StatusNotFound:
		return nil, nil, promapi.Errorf(promapi.ErrNotFound, "silence %s not found", id)
	case status != http.StatusOK:
		return nil, nil, &promapi.Error{Type: promapi.ErrUnavailable, Msg: "the Alertmanager is unavailable (request id " + st.id + ")",
			Err: fmt.Errorf("read silence %s: status %d", id, status)}
	}
	var s struct {
		ID        string              `json:"id"`
		Matchers  []enforce.AMMatcher `json:"matchers"`
		StartsAt  time.Time           `json:"startsAt"`
		EndsAt    time.Time           `json:"endsAt"`
		CreatedBy string              `json:"createdBy"`
		Comment   string              `json:"comment"`
	}
	if err := json.Unmarshal(body, &s); err != nil || len(s.Matchers) == 0 {
		return nil, nil, h.amFailure(r, st, fmt.Errorf("%w: silence %s", enforce.ErrUpstream, id))
	}
	return &authz.Silence{ID: s.ID, Matchers: policyMatchers(s.Matchers), Comment: s.Comment, CreatedBy: s.CreatedBy,
		StartsAt: s.StartsAt, EndsAt: s.EndsAt}, s.Matchers, nil
}

// decideAgain asks the policy a second time, now with the existing silence
// read: the first decision gave the tenant to read it with, this one
// decides. It draws no second token from the rate limit.
func (h *Handler) decideAgain(r *http.Request, st *state, in *authz.Alertmanager) (*grant, error) {
	dec, err := h.authz.Decide(r.Context(), authz.Input{
		Identity:     st.identity,
		Request:      authz.Request{Method: r.Method, Path: r.URL.Path, Route: st.route, RemoteAddr: st.remoteAddr},
		Alertmanager: in,
	})
	st.decision, st.revision = &dec, dec.Revision
	if err != nil {
		return nil, &promapi.Error{Type: promapi.ErrForbidden, Msg: "access denied: the policy could not decide", Err: err}
	}
	if !dec.Allow {
		reason := dec.Reason
		if reason == "" {
			reason = "no policy rule allows this request"
		}
		return nil, &promapi.Error{Type: promapi.ErrForbidden, Msg: "access denied for " + st.identity.Subject + ": " + reason}
	}
	en, err := enforcerOf(dec)
	if err != nil {
		return nil, err
	}
	g := &grant{dec: dec, en: en, limits: h.limitsFor(dec.Limits)}
	if h.cfg.Alertmanager.TenantHeader != "" {
		if dec.Tenant == "" {
			return nil, promapi.Errorf(promapi.ErrForbidden, "access denied for %s: the policy names no tenant, and the Alertmanager needs one", st.identity.Subject)
		}
		g.tenant = dec.Tenant
	}
	return g, nil
}

// serveAMSilencePost serves POST /api/v2/silences. The policy sees the
// silence as sent (operation create, or update with an id); an update reads
// the existing silence through the gateway and asks again with it, and is
// allowed only when that silence is confined to the caller's values. The
// new silence gets the caller's enforcement injected where it has no
// matcher (one naming other values is 403), and createdBy becomes the
// authenticated subject.
func (h *Handler) serveAMSilencePost(w http.ResponseWriter, r *http.Request, st *state) error {
	b, err := h.readBody(r, st)
	if err != nil {
		return err
	}
	s, err := enforce.ParseSilence(b)
	if err != nil {
		return h.enforceError(err, st.identity)
	}
	s.CreatedBy = st.identity.Subject
	in := &authz.Alertmanager{Operation: authz.AMCreate, Silence: policySilence(s)}
	if s.ID != "" {
		in.Operation = authz.AMUpdate
	}
	st.silence = &silenceRecord{op: in.Operation, id: s.ID}
	// As sent until it is confined; a refused one is audited so.
	st.silence.set(s)
	g, release, err := h.amAdmit(r, st, in)
	if err != nil {
		return err
	}
	defer release()
	if s.ID != "" {
		existing, ms, err := h.existingSilence(r, st, g, s.ID)
		if err != nil {
			return err
		}
		again := *in
		again.Existing = existing
		if g, err = h.decideAgain(r, st, &again); err != nil {
			return err
		}
		if !g.en.SilenceConfined(ms) {
			return h.notConfined(st, s.ID)
		}
	}
	if err := g.en.ConfineSilence(s); err != nil {
		return h.enforceError(err, st.identity)
	}
	st.silence.set(s)
	body, err := json.Marshal(s)
	if err != nil {
		return err
	}
	status, hdr, resp, err := h.amDo(r, st, amRequest{method: http.MethodPost, path: r.URL.Path, body: body, tenant: g.tenant})
	if err != nil {
		return err
	}
	if status == http.StatusOK {
		var created struct {
			SilenceID string `json:"silenceID"`
		}
		if json.Unmarshal(resp, &created) == nil && enforce.ValidSilenceID(created.SilenceID) {
			st.silence.id = created.SilenceID
		}
	}
	return h.amReply(w, r, st, status, hdr, resp, nil)
}

// serveAMSilenceDelete serves DELETE /api/v2/silence/{id}: the silence is
// read first and expired only when it is confined to the caller's values
// and the policy, shown it, allows; otherwise 403 and nothing is forwarded.
func (h *Handler) serveAMSilenceDelete(w http.ResponseWriter, r *http.Request, st *state) error {
	if _, err := h.amParams(r, st); err != nil {
		return err
	}
	id := silenceIDOf(r)
	in := &authz.Alertmanager{Operation: authz.AMExpire, Silence: &authz.Silence{ID: id}}
	st.silence = &silenceRecord{op: authz.AMExpire, id: id}
	g, release, err := h.amAdmit(r, st, in)
	if err != nil {
		return err
	}
	defer release()
	existing, ms, err := h.existingSilence(r, st, g, id)
	if err != nil {
		return err
	}
	st.silence.matchers = filterStrings(ms)
	st.silence.startsAt, st.silence.endsAt = existing.StartsAt, existing.EndsAt
	again := *in
	again.Existing = existing
	if g, err = h.decideAgain(r, st, &again); err != nil {
		return err
	}
	if !g.en.SilenceConfined(ms) {
		return h.notConfined(st, id)
	}
	status, hdr, body, err := h.amDo(r, st, amRequest{method: http.MethodDelete, path: r.URL.Path, tenant: g.tenant})
	if err != nil {
		return err
	}
	return h.amReply(w, r, st, status, hdr, body, nil)
}

// serveAMAlertPush serves POST /api/v2/alerts: every alert must carry
// allowed values for the enforced labels (a missing one is added when the
// decision allows exactly one value) and satisfy the decision's matchers.
func (h *Handler) serveAMAlertPush(w http.ResponseWriter, r *http.Request, st *state) error {
	b, err := h.readBody(r, st)
	if err != nil {
		return err
	}
	alerts, err := enforce.ParseAlerts(b)
	if err != nil {
		return h.enforceError(err, st.identity)
	}
	in := &authz.Alertmanager{Operation: authz.AMPush, Alerts: make([]map[string]string, len(alerts))}
	for i, a := range alerts {
		in.Alerts[i] = a.Labels
	}
	g, release, err := h.amAdmit(r, st, in)
	if err != nil {
		return err
	}
	defer release()
	if err := g.en.ConfineAlerts(alerts); err != nil {
		return h.enforceError(err, st.identity)
	}
	body, err := json.Marshal(alerts)
	if err != nil {
		return err
	}
	status, hdr, resp, err := h.amDo(r, st, amRequest{method: http.MethodPost, path: r.URL.Path, body: body, tenant: g.tenant})
	if err != nil {
		return err
	}
	return h.amReply(w, r, st, status, hdr, resp, nil)
}

// serveAMStatus serves GET /api/v2/status, without config.original and the
// cluster's peers for a restricted caller.
func (h *Handler) serveAMStatus(w http.ResponseWriter, r *http.Request, st *state) error {
	return h.serveAMRead(w, r, st, false, func(g *grant) bodyFilter { return g.en.FilterAMStatus })
}

// serveAMReceivers serves GET /api/v2/receivers: a restricted caller gets
// the receivers its decision lists, or none.
func (h *Handler) serveAMReceivers(w http.ResponseWriter, r *http.Request, st *state) error {
	return h.serveAMRead(w, r, st, false, func(g *grant) bodyFilter {
		allowed := g.dec.Receivers
		return func(b []byte) ([]byte, error) { return enforce.FilterReceivers(b, allowed) }
	})
}

// serveAMRead serves an Alertmanager read: admitted, forwarded with the
// checked parameters when withParams (else with none), and its answer
// passed through restricted's filter for a restricted caller (an
// unrestricted one gets it unchanged).
func (h *Handler) serveAMRead(w http.ResponseWriter, r *http.Request, st *state, withParams bool, restricted func(*grant) bodyFilter) error {
	params, err := h.amParams(r, st)
	if err != nil {
		return err
	}
	if !withParams {
		params = nil
	}
	g, release, err := h.amAdmit(r, st, nil)
	if err != nil {
		return err
	}
	defer release()
	status, hdr, body, err := h.amDo(r, st, amRequest{method: http.MethodGet, path: r.URL.Path, query: params, tenant: g.tenant})
	if err != nil {
		return err
	}
	var filter bodyFilter
	if !g.en.Unrestricted() {
		filter = restricted(g)
	}
	return h.amReply(w, r, st, status, hdr, body, filter)
}

// policyMatchers converts silence matchers for the policy input.
func policyMatchers(ms []enforce.AMMatcher) []authz.Matcher {
	out := make([]authz.Matcher, len(ms))
	for i, m := range ms {
		out[i] = authz.Matcher{Name: m.Name, Type: m.Type(), Value: m.Value}
	}
	return out
}

func policySilence(s *enforce.Silence) *authz.Silence {
	return &authz.Silence{ID: s.ID, Matchers: policyMatchers(s.Matchers), Comment: s.Comment, CreatedBy: s.CreatedBy,
		StartsAt: s.StartsAt, EndsAt: s.EndsAt}
}

func filterStrings(ms []enforce.AMMatcher) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	return out
}

// silenceRecord is what the audit record says of a silence change: who (the
// record's identity) silenced what (matchers, as forwarded, or as sent when
// refused before), for how long, and its id.
type silenceRecord struct {
	op               string
	id               string
	matchers         []string
	startsAt, endsAt time.Time
}

func (sr *silenceRecord) set(s *enforce.Silence) {
	sr.matchers = filterStrings(s.Matchers)
	sr.startsAt, sr.endsAt = s.StartsAt, s.EndsAt
}

// AlertmanagerToken reloads alertmanager.bearer_token_file, for the
// configuration watcher; without one it watches nothing.
func (h *Handler) AlertmanagerToken() reload.Part {
	if h.amToken == nil {
		return reload.Func{Paths: []string{}, Fn: func() error { return nil }}
	}
	return reload.Func{Paths: h.amToken.Files(), Fn: h.amToken.Reload}
}
