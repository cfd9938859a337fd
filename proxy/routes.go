package proxy

import (
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/promgate/promgate/config"
)

// Route names. They are shared by routing, metric labels, the audit record and
// the policy input (input.request.route).
const (
	RouteQuery          = "query"
	RouteQueryRange     = "query_range"
	RouteQueryExemplars = "query_exemplars"
	RouteSeries         = "series"
	RouteLabels         = "labels"
	RouteLabelValues    = "label_values"
	RouteFederate       = "federate"
	RouteRules          = "rules"
	RouteAlerts         = "alerts"
	RouteMetadata       = "metadata"
	RouteBuildInfo      = "buildinfo"
	RouteFormatQuery    = "format_query"
	RouteDetectors      = "detectors"
	RouteUI             = "ui"
	// RouteScrape is the exporter sidecar's scrape (upstream.kind metrics).
	RouteScrape = "scrape"
	// RoutePage labels the gateway's own pages (login, UI).
	RoutePage = "page"
	// RouteUnknown labels requests to paths the gateway does not serve.
	RouteUnknown = "unknown"
	// The status routes (routes.status in the configuration), named as
	// there; buildinfo is one of them.
	RouteRuntimeInfo = "runtimeinfo"
	RouteFlags       = "flags"
	RouteTSDB        = "tsdb"
	RouteConfig      = "config"
	RouteWALReplay   = "walreplay"
	RouteTargets     = "targets"
	// RouteWrite and RouteRead are remote write and remote read (write.go,
	// read.go).
	RouteWrite = "write"
	RouteRead  = "read"
)

// Routes lists every route name, for metrics that start at zero.
var Routes = []string{
	RouteQuery, RouteQueryRange, RouteQueryExemplars, RouteSeries, RouteLabels,
	RouteLabelValues, RouteFederate, RouteRules, RouteAlerts, RouteMetadata,
	RouteBuildInfo, RouteFormatQuery, RouteDetectors, RouteUI, RoutePage, RouteUnknown,
	RouteScrape, RouteRuntimeInfo, RouteFlags, RouteTSDB, RouteConfig, RouteWALReplay,
	RouteTargets, RouteWrite, RouteRead,
	// The Alertmanager routes (alertmanager.go).
	RouteAMAlerts, RouteAMAlertGroups, RouteAMAlertPush, RouteAMSilences, RouteAMSilence, RouteAMStatus, RouteAMReceivers,
}

// kind says what a route reads, and so what the policy is asked about and
// how the request is enforced.
type kind int

const (
	kindQuery kind = iota // a PromQL expression in `query`
	kindMatch             // series selectors in `match[]`
	kindPlain             // no selectors: the decision alone
)

// route is one row of the route table: what a request may carry, what the
// policy is asked, how a restricted caller's answer is filtered, and which
// handler serves it. ServeHTTP runs the shared chain (audit health,
// deadline, authentication, rate limit, method) once and then calls serve.
type route struct {
	name    string
	kind    kind
	methods []string
	// params are forwarded upstream; any other parameter is dropped (never
	// forwarded), counted and named in the audit record.
	params []string
	// multi are params that may repeat.
	multi []string
	// thanos are the Thanos Query parameters also forwarded when
	// upstream.flavor is thanos, after their values pass thanosChecks.
	thanos []string
	// filter, when set, confines a restricted caller's upstream answer. It
	// may ask the upstream itself (metadata), with the grant's tenant.
	filter func(h *Handler, r *http.Request, g *grant, st *state) (bodyFilter, error)
	// status marks a status route: served only when routes.status lists
	// its name, and otherwise not found, as a path the gateway never
	// serves.
	status bool
	// unrestrictedOnly, when set, says why the route's answer describes the
	// whole upstream: a caller the decision confines gets 403 with it.
	unrestrictedOnly string
	// serve answers the request once the chain has run.
	serve func(h *Handler, w http.ResponseWriter, r *http.Request, st *state) error
}

// bodyFilter rewrites a successful upstream body for a restricted caller.
type bodyFilter func([]byte) ([]byte, error)

var (
	getPost = []string{http.MethodGet, http.MethodPost}
	getOnly = []string{http.MethodGet}
	getHead = []string{http.MethodGet, http.MethodHead}
	// postOnly is remote write and read.
	postOnly = []string{http.MethodPost}
)

// The Prometheus API routes' shared shape.
var (
	queryParams = []string{"query", "time", "timeout", "limit", "lookback_delta", "stats"}
	rangeParams = []string{"query", "start", "end", "step", "timeout", "limit", "lookback_delta", "stats"}
	matchParams = []string{"match[]", "start", "end", "limit"}
	matchMulti  = []string{"match[]"}

	thanosQuery = []string{"dedup", "partial_response", "replicaLabels[]", "engine", "analyze", "max_source_resolution"}
	thanosMatch = []string{"dedup", "partial_response"}
)

// routes is the route table of DESIGN.md, keyed by canonical path.
var routes = map[string]*route{
	"/api/v1/query":       {name: RouteQuery, kind: kindQuery, methods: getPost, params: queryParams, thanos: thanosQuery, serve: (*Handler).serveAPI},
	"/api/v1/query_range": {name: RouteQueryRange, kind: kindQuery, methods: getPost, params: rangeParams, thanos: thanosQuery, serve: (*Handler).serveAPI},
	"/api/v1/query_exemplars": {
		name: RouteQueryExemplars, kind: kindQuery, methods: getPost, serve: (*Handler).serveAPI,
		// Grafana sends step with exemplar queries; Prometheus ignores it.
		params: []string{"query", "start", "end", "step"},
	},
	"/api/v1/series": {name: RouteSeries, kind: kindMatch, methods: getPost, params: matchParams, multi: matchMulti, thanos: thanosMatch, serve: (*Handler).serveAPI},
	"/api/v1/labels": {name: RouteLabels, kind: kindMatch, methods: getPost, params: matchParams, multi: matchMulti, thanos: thanosMatch, serve: (*Handler).serveAPI},
	"/federate":      {name: RouteFederate, kind: kindMatch, methods: getOnly, params: matchMulti, multi: matchMulti, serve: (*Handler).serveAPI},
	"/api/v1/rules": {
		name: RouteRules, kind: kindPlain, methods: getOnly, serve: (*Handler).serveAPI,
		params: []string{"type", "rule_name[]", "rule_group[]", "file[]", "exclude_alerts", "match[]", "group_limit", "group_next_token"},
		multi:  []string{"rule_name[]", "rule_group[]", "file[]", "match[]"},
		filter: func(_ *Handler, _ *http.Request, g *grant, _ *state) (bodyFilter, error) {
			return g.en.FilterRules, nil
		},
	},
	"/api/v1/alerts": {
		name: RouteAlerts, kind: kindPlain, methods: getOnly, serve: (*Handler).serveAPI,
		filter: func(_ *Handler, _ *http.Request, g *grant, _ *state) (bodyFilter, error) {
			return g.en.FilterAlerts, nil
		},
	},
	"/api/v1/metadata": {
		name: RouteMetadata, kind: kindPlain, methods: getOnly, serve: (*Handler).serveAPI,
		params: []string{"metric", "limit", "limit_per_metric"},
		filter: (*Handler).metadataFilter,
	},
	// The status routes. Prometheus answers them from its own state, not
	// from series, so the policy's decision alone admits a request; those
	// that describe every tenant's data or the server's setup are for
	// unrestricted callers only, and targets is filtered.
	"/api/v1/status/buildinfo": {name: RouteBuildInfo, kind: kindPlain, methods: getOnly, status: true, serve: (*Handler).serveAPI},
	"/api/v1/status/runtimeinfo": {
		name: RouteRuntimeInfo, kind: kindPlain, methods: getOnly, status: true, serve: (*Handler).serveAPI,
		unrestrictedOnly: "it describes the server's setup (working directory, storage retention, reloads)",
	},
	"/api/v1/status/flags": {
		name: RouteFlags, kind: kindPlain, methods: getOnly, status: true, serve: (*Handler).serveAPI,
		unrestrictedOnly: "it describes the server's setup (command-line flags, paths, retention)",
	},
	"/api/v1/status/tsdb": {
		name: RouteTSDB, kind: kindPlain, methods: getOnly, status: true, serve: (*Handler).serveAPI,
		params:           []string{"limit"},
		unrestrictedOnly: "it counts the series of every tenant, by metric name and label value",
	},
	"/api/v1/status/config": {
		name: RouteConfig, kind: kindPlain, methods: getOnly, status: true, serve: (*Handler).serveAPI,
		unrestrictedOnly: "it shows the server's whole configuration, every tenant's scrape jobs included",
	},
	"/api/v1/status/walreplay": {
		name: RouteWALReplay, kind: kindPlain, methods: getOnly, status: true, serve: (*Handler).serveAPI,
		unrestrictedOnly: "its segment numbers measure the ingestion of every tenant",
	},
	"/api/v1/targets": {
		name: RouteTargets, kind: kindPlain, methods: getOnly, status: true, serve: (*Handler).serveAPI,
		params: []string{"state", "scrapePool"},
		filter: func(_ *Handler, _ *http.Request, g *grant, _ *state) (bodyFilter, error) {
			return g.en.FilterTargets, nil
		},
	},
	// Remote write and read: protobuf bodies, checked and confined by
	// their own handlers.
	"/api/v1/write": {name: RouteWrite, kind: kindPlain, methods: postOnly, serve: (*Handler).serveWrite},
	"/api/v1/read":  {name: RouteRead, kind: kindMatch, methods: postOnly, serve: (*Handler).serveRead},
	// format_query only pretty-prints the expression; it reads no data.
	"/api/v1/format_query": {name: RouteFormatQuery, kind: kindPlain, methods: getPost, params: []string{"query"}, serve: (*Handler).serveAPI},
}

var labelValues = &route{
	name: RouteLabelValues, kind: kindMatch, methods: getOnly, params: matchParams, multi: matchMulti, thanos: thanosMatch, serve: (*Handler).serveAPI,
}

// The gateway's own routes. Their handlers check their sub-paths.
var (
	uiRoute        = &route{name: RouteUI, kind: kindPlain, methods: getHead, serve: (*Handler).serveUI}
	detectorsRoute = &route{name: RouteDetectors, kind: kindQuery, methods: getOnly, serve: (*Handler).serveDetectors}
	scrapeRoute    = &route{name: RouteScrape, kind: kindPlain, methods: getOnly, serve: (*Handler).serveScrape}
)

// match returns the route of a request, or nil for a path the gateway does
// not serve. The exporter sidecar serves scrapes only.
func (h *Handler) match(r *http.Request) *route {
	switch {
	case h.scrapes != nil:
		if h.scrapes.target(r) == nil {
			return nil
		}
		return scrapeRoute
	case isConsole(r):
		return uiRoute
	case h.detectors != nil && isDetectorsPath(r.URL.Path):
		return detectorsRoute
	case h.am != nil && strings.HasPrefix(r.URL.Path, "/api/v2/"):
		// The Alertmanager's API v2 (alertmanager.go); its other paths,
		// API v1 included, are not found.
		return amMatch(r)
	}
	rt := classify(r.URL.RawPath, r.URL.Path)
	if rt != nil && rt.status && !slices.Contains(h.cfg.Routes.Status, rt.name) {
		// Not listed in routes.status: exactly as a path never served.
		return nil
	}
	if rt != nil && (rt.name == RouteWrite || rt.name == RouteRead) && !slices.Contains(h.cfg.Write.Routes, rt.name) {
		// Not listed in write.routes: exactly as a path never served.
		return nil
	}
	return rt
}

// labelNameRE is the classic label name alphabet. UTF-8 names reach this
// route in Prometheus' U__ escaping, which uses the same alphabet.
var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// classify maps a request path to its route. It accepts only canonical paths:
// the raw path must be exactly the decoded one (no percent-encoding), with no
// empty, dot or dot-dot segments and no trailing slash, so that what is
// classified is byte for byte what is forwarded. The label values route
// takes only a valid label name, which is forwarded as part of the path.
func classify(rawPath, path string) *route {
	if rawPath != "" && rawPath != path {
		return nil
	}
	if !canonical(path) {
		return nil
	}
	if rt, ok := routes[path]; ok {
		return rt
	}
	if rest, ok := strings.CutPrefix(path, "/api/v1/label/"); ok {
		if name, ok := strings.CutSuffix(rest, "/values"); ok && labelNameRE.MatchString(name) {
			return labelValues
		}
	}
	return nil
}

// canonical reports whether p is an absolute path without empty, "." or ".."
// segments, a trailing slash, or bytes outside printable ASCII.
func canonical(p string) bool {
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '\\' || c == ';' || c == '%' {
			return false
		}
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// forwards reports whether the route forwards param to an upstream of the
// given flavor.
func (rt *route) forwards(param, flavor string) bool {
	return slices.Contains(rt.params, param) || (flavor == config.FlavorThanos && slices.Contains(rt.thanos, param))
}

func (rt *route) repeats(param string) bool {
	return slices.Contains(rt.multi, param) || param == "replicaLabels[]"
}
