package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/console"
	"github.com/promgate/promgate/detect"
	"github.com/promgate/promgate/enforce"
	"github.com/promgate/promgate/promapi"
)

// severityRank orders severities, most severe first.
var severityRank = map[string]int{"critical": 0, "warning": 1, "info": 2}

// serveOverview serves /ui/: the detectors, firing and pending first.
//
// An unrestricted caller sees the background evaluator's state (when it
// runs; otherwise every detector is evaluated now). A restricted caller
// sees only the detectors that can run confined, each evaluated now with
// its enforcement; the others are counted in one line that says why. Each
// active detector gets a sparkline of its own query over 24 hours.
func (h *Handler) serveOverview(w http.ResponseWriter, r *http.Request, st *state) error {
	var dets []detect.Detector
	if h.detectors != nil {
		dets = h.detectors.List()
	}
	var evState map[string]detect.State
	if h.detectorState != nil {
		evState = h.detectorState()
	}
	// The policy is asked once, with every expression the page may run
	// for this caller: the confinable detectors (evaluated live when
	// restricted), and those the evaluator reports active (sparklines).
	var queries []*enforce.Query
	parsed := map[string]*enforce.Query{}
	spark := map[string]*enforce.Query{}
	for _, d := range dets {
		s, active := evState[d.ID]
		if !d.RestrictedOK() && (!active || (s.State != detect.StateFiring && s.State != detect.StatePending)) && evState != nil {
			continue
		}
		q, err := h.queries.parse(d.Expr)
		if err != nil {
			continue // the catalog's tests parse every expression
		}
		parsed[d.ID] = q
		queries = append(queries, q)
		// The sparkline draws the value the detector compares with its
		// threshold, which exists before and after the anomaly too.
		spark[d.ID] = q
		if value := console.Compared(d.Expr); value != "" {
			if vq, err := h.queries.parse(value); err == nil {
				spark[d.ID] = vq
				queries = append(queries, vq)
			}
		}
	}
	run, err := h.consoleAdmit(r, st, queries)
	if err != nil {
		return h.consoleRefusal(w, r, st, err)
	}
	defer run.release()
	restricted := !run.g.en.Unrestricted()
	page := console.Overview{Base: h.consoleBase(st, run.g, "Detectors", "overview")}
	now := h.now()
	live := restricted || evState == nil
	if live {
		page.Evaluator = "Each detector below was evaluated just now"
		if restricted {
			page.Evaluator += ", confined to what you may see"
		}
		page.Evaluator += ": a detector is active when its query returns series (its for: duration is not applied)."
	} else {
		page.Evaluator = "States come from the gateway's background evaluator, which applies each detector's for: duration."
	}
	byTactic := map[string]int{}
	bySeverity := map[string]int{}
	sparks := 0
	for _, d := range dets {
		if restricted && !d.RestrictedOK() {
			page.Hidden++
			continue
		}
		cd := console.Detector{ID: d.ID, Title: d.Title, Severity: d.Severity, Scope: d.Scope, Techniques: console.Techniques(d.Attack)}
		q := parsed[d.ID]
		if live {
			cd.Live = true
			if q == nil {
				cd.State, cd.Error = detect.StateUnknown, "the expression does not parse"
			} else if v, _, err := run.instant(q, now); err != nil {
				cd.State = detect.StateUnknown
				cd.Error, _ = errText(err, st.id)
			} else if vec, _ := v.(model.Vector); len(vec) > 0 {
				cd.State, cd.Active, cd.Firing = detect.StateFiring, len(vec), len(vec)
			} else {
				cd.State = detect.StateInactive
			}
		} else {
			s := evState[d.ID]
			cd.State, cd.Active, cd.Firing, cd.Error = s.State, s.Active, s.Firing, s.LastError
		}
		if cd.State != detect.StateFiring && cd.State != detect.StatePending {
			page.Quiet = append(page.Quiet, cd)
			continue
		}
		if cd.State == detect.StateFiring {
			page.Firing++
		} else {
			page.Pending++
		}
		bySeverity[d.Severity]++
		for _, t := range console.Tactics(d.Attack) {
			byTactic[t]++
		}
		if sq := spark[d.ID]; sq != nil && sparks < consoleMaxSparks {
			sparks++
			m, _, err := run.series(sq, now, 24*time.Hour, 48)
			if err == nil {
				cd.Spark = console.Sparkline("24 hours of "+d.ID, maxPoints(m), now.Add(-24*time.Hour), now)
			} else {
				msg, _ := errText(err, st.id)
				cd.Error = "no sparkline: " + msg
			}
		}
		page.Active = append(page.Active, cd)
	}
	if page.Hidden > 0 {
		page.HiddenWhy = "they read cluster-wide series, the object's namespace from exported_namespace, or use absent(); confined to your scope they would return nothing or fire falsely, so they run only for unrestricted callers."
	}
	sort.SliceStable(page.Active, func(i, j int) bool {
		a, b := page.Active[i], page.Active[j]
		if (a.State == detect.StateFiring) != (b.State == detect.StateFiring) {
			return a.State == detect.StateFiring
		}
		return severityRank[a.Severity] < severityRank[b.Severity]
	})
	for _, s := range []string{"critical", "warning", "info"} {
		if n := bySeverity[s]; n > 0 {
			page.BySeverity = append(page.BySeverity, console.Count{Name: s, Count: n})
		}
	}
	for t, n := range byTactic {
		page.ByTactic = append(page.ByTactic, console.Count{Name: t, Count: n})
	}
	sort.Slice(page.ByTactic, func(i, j int) bool {
		a, b := page.ByTactic[i], page.ByTactic[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Name < b.Name
	})
	return writePage(w, r, http.StatusOK, "overview", page)
}

// serveDetectorPage serves /ui/detectors/<id>.
func (h *Handler) serveDetectorPage(w http.ResponseWriter, r *http.Request, st *state, id string, params url.Values) error {
	var d detect.Detector
	ok := false
	if h.detectors != nil && id != "" && !strings.Contains(id, "/") {
		d, ok = h.detectors.Get(id)
	}
	if !ok {
		return h.consoleRefusal(w, r, st, promapi.Errorf(promapi.ErrNotFound, "not found: no detector %q", truncate(id, 64)))
	}
	window, span := windowOf(params.Get("window"), "24h")
	q, err := h.queries.parse(d.Expr)
	if err != nil {
		return h.consoleRefusal(w, r, st, err)
	}
	queries := []*enforce.Query{q}
	graphQ := q
	// The graph draws the value the detector compares: with its numeric
	// threshold drawn, or against a baseline query.
	value, threshold, hasThreshold := console.Threshold(d.Expr)
	if !hasThreshold {
		value = console.Compared(d.Expr)
	}
	if value != "" {
		if vq, err := h.queries.parse(value); err == nil {
			graphQ = vq
			queries = append(queries, vq)
		}
	}
	run, err := h.consoleAdmit(r, st, queries)
	if err != nil {
		return h.consoleRefusal(w, r, st, err)
	}
	defer run.release()
	restricted := !run.g.en.Unrestricted()
	page := console.DetectorPage{
		Base: h.consoleBase(st, run.g, d.Title, "overview"),
		Detector: console.Detector{ID: d.ID, Title: d.Title, Description: d.Description, Severity: d.Severity, Scope: d.Scope,
			For: model.Duration(d.For).String(), Techniques: console.Techniques(d.Attack)},
		Runbook: d.Runbook, Sources: d.Sources, Requires: d.Requires, Query: d.Expr,
		Window: window, Windows: consoleWindows, GraphQuery: graphQ.String(),
	}
	if hasThreshold && graphQ != q {
		page.Threshold = console.FormatValue(threshold)
	}
	if b, err := detect.RuleFile([]detect.Detector{d}); err == nil {
		page.Export = string(b)
	}
	if restricted && !d.RestrictedOK() {
		page.Refused = "This detector runs only for unrestricted callers: " + refusalOf(d)
		return writePage(w, r, http.StatusOK, "detector", page)
	}
	now := h.now()
	if !restricted && h.detectorState != nil {
		if s, ok := h.detectorState()[d.ID]; ok {
			page.Detector.State, page.Detector.Active, page.Detector.Firing = s.State, s.Active, s.Firing
		}
	}
	v, text, err := run.instant(q, now)
	page.Enforced = text
	if err != nil {
		page.Refused, _ = errText(err, st.id)
	} else if vec, ok := v.(model.Vector); ok {
		page.Rows, _ = rowsOf(vec)
		if page.Detector.State == "" {
			page.Detector.Live = true
			page.Detector.State = detect.StateInactive
			if len(vec) > 0 {
				page.Detector.State = detect.StateFiring
			}
		}
	}
	m, _, err := run.series(graphQ, now, span, 240)
	if err != nil {
		msg, _ := errText(err, st.id)
		page.Refused = strings.TrimSpace(page.Refused + " The graph could not be drawn: " + msg)
	} else {
		var th *float64
		if page.Threshold != "" {
			th = &threshold
		}
		page.Graph = chartOf(d.ID+" over "+window, m, now.Add(-span), now, th).SVG()
	}
	return writePage(w, r, http.StatusOK, "detector", page)
}

// refusalOf says why a detector does not run confined.
func refusalOf(d detect.Detector) string {
	switch {
	case d.UsesAbsent:
		return "it uses absent(), which fires whenever enforcement hides a series."
	case d.Scope == detect.ScopeCluster:
		return "it reads cluster-wide series (scope cluster), which confinement would hide."
	default:
		return "it reads the object's namespace from exported_namespace (scope " + d.Scope + "), which namespace enforcement cannot confine reliably."
	}
}

// consoleExamples are the query page's starting points.
var consoleExamples = []string{
	`count by (namespace) (up)`,
	`sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!=""}[5m]))`,
	`sum by (namespace, status) (rate(nginx_ingress_controller_requests[5m]))`,
}

// serveQueryPage serves /ui/query?query=…&window=…: the expression runs
// through the same decision, limits and rewrite as /api/v1/query.
func (h *Handler) serveQueryPage(w http.ResponseWriter, r *http.Request, st *state, params url.Values) error {
	text := params.Get("query")
	window, span := windowOf(params.Get("window"), "1h")
	if len(params["query"]) > 1 {
		return h.consoleRefusal(w, r, st, promapi.Errorf(promapi.ErrBadData, `parameter "query" given more than once`))
	}
	var queries []*enforce.Query
	var q *enforce.Query
	var parseErr error
	if text != "" {
		q, parseErr = h.queries.parse(text)
		if parseErr == nil {
			queries = append(queries, q)
		}
	}
	run, err := h.consoleAdmit(r, st, queries)
	if err != nil {
		if text == "" || promapi.As(err, st.id).Type != promapi.ErrForbidden {
			return h.consoleRefusal(w, r, st, err)
		}
	}
	if run != nil {
		defer run.release()
	}
	page := console.QueryPage{Query: text, Window: window, Windows: consoleWindows, Examples: consoleExamples}
	if run != nil {
		page.Base = h.consoleBase(st, run.g, "Query", "query")
	} else {
		page.Base = h.consoleBase(st, nil, "Query", "query")
	}
	status := http.StatusOK
	fail := func(err error) {
		e := promapi.As(h.enforceError(err, st.identity), st.id)
		page.Error, page.ErrorKind = e.Msg, string(e.Type)
		status = e.Code()
		st.err = e
	}
	switch {
	case text == "":
	case parseErr != nil:
		fail(parseErr)
	case run == nil:
		fail(err)
	default:
		now := h.now()
		v, enforced, err := run.instant(q, now)
		page.Enforced = enforced
		if err != nil {
			fail(err)
			break
		}
		switch v := v.(type) {
		case model.Vector:
			page.Rows, page.Truncated = rowsOf(v)
			if m, _, err := run.series(q, now, span, 240); err == nil {
				page.Graph = chartOf(text+" over "+window, m, now.Add(-span), now, nil).SVG()
			}
		case *model.Scalar:
			page.Scalar = v.Value.String()
		case *model.String:
			page.Scalar = v.Value
		case model.Matrix:
			var vec model.Vector
			for _, s := range v {
				if n := len(s.Values); n > 0 {
					vec = append(vec, &model.Sample{Metric: s.Metric, Value: s.Values[n-1].Value, Timestamp: s.Values[n-1].Timestamp})
				}
			}
			page.Rows, page.Truncated = rowsOf(vec)
		}
	}
	if !slices.Contains(consoleWindows, window) {
		page.Window = "1h"
	}
	return writePage(w, r, status, "query", page)
}
