package proxy

import (
	"errors"
	"net/http"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
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
func (h *Handler) serveDetectors(w http.ResponseWriter, r *http.Request, st *state, id *authn.Identity) error {
	st.route = RouteDetectors
	if r.URL.RawPath != "" && r.URL.RawPath != r.URL.Path {
		return promapi.Errorf(promapi.ErrNotFound, "not found: this path is not served by the gateway")
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusMethodNotAllowed,
			Msg: "method " + r.Method + " is not allowed on this route; use GET"}
	}
	if r.URL.RawQuery != "" || r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
		return promapi.Errorf(promapi.ErrBadData, "the detectors API takes no parameters and no body")
	}
	detectorID := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, detectorsPath), "/")
	if strings.Contains(detectorID, "/") || (detectorID == "" && r.URL.Path != detectorsPath) {
		return promapi.Errorf(promapi.ErrNotFound, "not found: no such detector")
	}

	in := authz.Input{
		Identity: id,
		Request:  authz.Request{Method: r.Method, Path: r.URL.Path, Route: RouteDetectors, RemoteAddr: st.remoteAddr},
	}
	var d detect.Detector
	if detectorID != "" {
		var ok bool
		if d, ok = h.detectors.Get(detectorID); !ok {
			return promapi.Errorf(promapi.ErrNotFound, "not found: no detector %q", truncate(detectorID, 64))
		}
		st.query = []string{d.Expr}
		q, err := h.queries.parse(d.Expr)
		if err != nil {
			return err
		}
		in.Query = &authz.Query{Expressions: q.Expressions(), Selectors: selectorsOf(q.Selectors())}
	}
	dec, err := h.decide(r.Context(), in, nil, st)
	if err != nil {
		return err
	}
	en, err := enforcerFor(dec)
	if err != nil {
		return err
	}
	if err := h.setTenant(dec, id, st); err != nil {
		return err
	}

	if detectorID == "" {
		var state map[string]detect.State
		if en.Unrestricted() && h.detectorState != nil {
			state = h.detectorState()
		}
		return promapi.WriteData(w, h.detectors.Summaries(state))
	}

	var rewrite func(string) (string, error)
	if !en.Unrestricted() {
		rewrite = func(query string) (string, error) {
			q, err := h.queries.parse(query)
			if err != nil {
				return "", err
			}
			out, err := en.Rewrite(q)
			if err != nil {
				return "", err
			}
			st.enforced = []string{out}
			return out, nil
		}
	}
	hdr := http.Header{"X-Request-Id": {st.id}}
	if tok := h.token(); tok != "" {
		hdr.Set("Authorization", "Bearer "+tok)
	}
	if st.tenant != "" {
		hdr.Set(h.cfg.Upstream.TenantHeader, st.tenant)
	}
	querier := detect.NewHTTPQuerier(h.up.target.String(), h.up.rp.Transport, hdr)
	vec, err := h.detectors.Evaluate(r.Context(), detectorID, rewrite, querier)
	if err != nil {
		if de, ok := errors.AsType[*detect.Error](err); ok {
			switch de.Kind {
			case detect.NotFound:
				return &promapi.Error{Type: promapi.ErrNotFound, Msg: de.Msg, Err: err}
			case detect.Forbidden:
				return &promapi.Error{Type: promapi.ErrForbidden, Msg: de.Msg, Err: err}
			default:
				return &promapi.Error{Type: promapi.ErrUnavailable, Msg: "upstream unavailable (request id " + st.id + ")", Err: errors.New(upstreamCause(err))}
			}
		}
		return h.enforceError(err, id)
	}
	if vec == nil {
		vec = []*model.Sample{}
	}
	return promapi.WriteData(w, map[string]any{"resultType": "vector", "result": vec})
}
