package proxy

import (
	"errors"
	"net/http"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/detect"
	"github.com/promgate/promgate/promapi"
)

// detectorsPath is the detectors API: the catalog, and one detector
// evaluated as the caller under /<id>.
const detectorsPath = "/api/promgate/v1/detectors"

func isDetectorsPath(p string) bool {
	return p == detectorsPath || strings.HasPrefix(p, detectorsPath+"/")
}

// serveDetectors serves GET /api/promgate/v1/detectors (the catalog, with
// the background evaluator's state for unrestricted callers only: a firing
// detector over other tenants' data is itself information) and GET
// /api/promgate/v1/detectors/<id> (the detector evaluated now, through the
// caller's own enforcement; cluster-scoped detectors and any using absent()
// are refused for restricted callers rather than run confined, where they
// would lie).
func (h *Handler) serveDetectors(w http.ResponseWriter, r *http.Request, st *state) error {
	if r.URL.RawPath != "" && r.URL.RawPath != r.URL.Path {
		return promapi.Errorf(promapi.ErrNotFound, "not found: this path is not served by the gateway")
	}
	if r.URL.RawQuery != "" || r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
		return promapi.Errorf(promapi.ErrBadData, "the detectors API takes no parameters and no body")
	}
	detectorID := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, detectorsPath), "/")
	if strings.Contains(detectorID, "/") || (detectorID == "" && r.URL.Path != detectorsPath) {
		return promapi.Errorf(promapi.ErrNotFound, "not found: no such detector")
	}
	// The catalog asks the policy with no query; one detector asks with
	// its expression, which is held to the query API's limits as an
	// instant query at now.
	a := &ask{route: RouteDetectors, kind: kindPlain}
	if detectorID != "" {
		d, ok := h.detectors.Get(detectorID)
		if !ok {
			return promapi.Errorf(promapi.ErrNotFound, "not found: no detector %q", truncate(detectorID, 64))
		}
		st.query = []string{d.Expr}
		q, err := h.queries.parse(d.Expr)
		if err != nil {
			return err
		}
		a.kind, a.query = kindQuery, q
	}
	g, err := h.admit(r.Context(), r, st, a)
	if err != nil {
		return err
	}
	if detectorID == "" {
		var state map[string]detect.State
		if g.en.Unrestricted() && h.detectorState != nil {
			state = h.detectorState()
		}
		return promapi.WriteData(w, h.detectors.Summaries(state))
	}
	release, err := h.inflight.acquire(g, st.identity)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		return err
	}
	defer release()
	st.tr.upstream()
	vec, err := h.detectors.Evaluate(r.Context(), detectorID, h.detectorRewrite(g, st), h.detectorQuerier(r, st, g))
	if err != nil {
		return h.detectorError(err, st)
	}
	if vec == nil {
		vec = []*model.Sample{}
	}
	return promapi.WriteData(w, map[string]any{"resultType": "vector", "result": vec})
}

// detectorRewrite confines a detector's query to the grant, or is nil for
// an unrestricted caller (which lets cluster-scoped detectors run).
func (h *Handler) detectorRewrite(g *grant, st *state) func(string) (string, error) {
	if g.en.Unrestricted() {
		return nil
	}
	return func(query string) (string, error) {
		q, err := h.queries.parse(query)
		if err != nil {
			return "", err
		}
		out, err := g.en.Rewrite(q)
		if err != nil {
			return "", err
		}
		st.enforced = []string{out}
		return out, nil
	}
}

// detectorQuerier reaches the upstream as the forwarded queries do: the
// same transport, and headers from the one upstream builder.
func (h *Handler) detectorQuerier(r *http.Request, st *state, g *grant) detect.Querier {
	up := g.up // the upstream the decision chose, as for the API
	if up == nil {
		up = h.up
	}
	hdr := http.Header{}
	stampHeaders(hdr, r, st.tr, st.id, up.token(), up.cfg.Upstream.TenantHeader, g.tenant)
	return detect.NewHTTPQuerier(up.target.String(), up.rt, hdr)
}

// detectorError maps an evaluation error to the API error shape.
func (h *Handler) detectorError(err error, st *state) error {
	de, ok := errors.AsType[*detect.Error](err)
	if !ok {
		return h.enforceError(err, st.identity)
	}
	switch de.Kind {
	case detect.NotFound:
		return &promapi.Error{Type: promapi.ErrNotFound, Msg: de.Msg, Err: err}
	case detect.Forbidden:
		return &promapi.Error{Type: promapi.ErrForbidden, Msg: de.Msg, Err: err}
	default:
		return &promapi.Error{Type: promapi.ErrUnavailable, Msg: "upstream unavailable (request id " + st.id + ")", Err: errors.New(upstreamCause(err))}
	}
}
