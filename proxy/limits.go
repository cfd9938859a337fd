package proxy

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/enforce"
	"github.com/promgate/promgate/promapi"
)

// limits are what apply to one request: the configuration's, made stricter
// by the decision's. Zero means not set.
type limits struct {
	maxRange, maxLookback, minStep time.Duration
	maxPoints, maxSubqueryPoints   int64
	maxSamples                     int64
}

// limitsFor merges the configuration's limits with a decision's: for each,
// the stricter one wins.
func (h *Handler) limitsFor(dl authz.Limits) limits {
	l := h.cfg.Limits
	return limits{
		maxRange:          strictest(time.Duration(l.MaxRange), dl.MaxRange),
		maxLookback:       strictest(time.Duration(l.MaxLookback), dl.MaxLookback),
		minStep:           max(time.Duration(l.MinStep), dl.MinStep),
		maxPoints:         strictest(l.MaxQueryPoints, dl.MaxQueryPoints),
		maxSubqueryPoints: strictest(l.MaxSubqueryPoints, dl.MaxSubqueryPoints),
		maxSamples:        strictest(l.MaxSamplesEstimate, dl.MaxSamplesEstimate),
	}
}

// strictest returns the smaller positive limit; zero means unset.
func strictest[T int64 | time.Duration](a, b T) T {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	default:
		return min(a, b)
	}
}

// window is the time parameters of one request, parsed.
type window struct {
	now, eval, start, end time.Time
	hasStart, hasEnd      bool
	step, lookbackDelta   time.Duration
}

// checkLimits applies the grant's limits to the ask before anything is
// forwarded: the request's time window, how far back it reaches, and the
// estimated cost of its query (cost.go in enforce). A metadata route's
// missing or too early start is clamped to the window's edge instead of
// refused, since its answer stays correct within the allowed window; the
// clamp is recorded. Every caller, unrestricted ones included, is held to
// the cost limits.
func (h *Handler) checkLimits(a *ask, g *grant, st *state) error {
	if a.params == nil && a.query == nil {
		return nil
	}
	w, err := h.parseWindow(a, g.limits)
	if err != nil {
		return err
	}
	l := g.limits
	// Prometheus reads a missing start on these routes as the beginning of
	// time (exemplars included), so it is clamped rather than left open.
	if (a.kind == kindMatch && a.params != nil && a.route != RouteFederate) || a.route == RouteQueryExemplars {
		h.clamp(a, &w, l, st)
	}
	if w.hasStart && w.hasEnd {
		if w.end.Before(w.start) {
			return promapi.Errorf(promapi.ErrBadData, `invalid parameter "end": end timestamp must not be before start time`)
		}
		if l.maxRange > 0 && w.end.Sub(w.start) > l.maxRange {
			return promapi.Errorf(promapi.ErrBadData, "time range %s exceeds the maximum of %s", w.end.Sub(w.start), l.maxRange)
		}
	}
	earliest := w.eval
	if w.hasStart && w.start.Before(earliest) {
		earliest = w.start
	}
	if a.query == nil {
		return nil
	}
	p := enforce.CostParams{
		Start: earliest, End: w.eval, Step: w.step,
		ScrapeInterval: time.Duration(h.cfg.Limits.AssumedScrapeInterval),
		EvalInterval:   time.Duration(h.cfg.Limits.DefaultSubqueryStep),
		LookbackDelta:  w.lookbackDelta,
	}
	if a.route == RouteQueryRange {
		p.End = w.end
	}
	c := a.query.Cost(p)
	if l.maxLookback > 0 && len(a.query.Selectors()) > 0 {
		reach := max(w.now.Sub(earliest), 0)
		if a.route != RouteQueryExemplars {
			// Exemplars are read between start and end only: ranges,
			// offsets and the lookback delta do not widen them.
			reach += c.Lookback
		}
		if reach > l.maxLookback {
			return promapi.Errorf(promapi.ErrBadData, "query reaches %s into the past, beyond the maximum lookback of %s",
				reach.Round(time.Second), l.maxLookback)
		}
	}
	return checkCost(c, l)
}

// checkCost refuses a query whose estimated cost is over a limit, naming
// the limit, its value and the estimate.
func checkCost(c enforce.Cost, l limits) error {
	for _, x := range []struct {
		name        string
		limit, cost int64
		what        string
	}{
		{"max_subquery_points", l.maxSubqueryPoints, c.SubqueryPoints, "points in one subquery"},
		{"max_query_points", l.maxPoints, c.Points, "evaluation points per series"},
		{"max_samples_estimate", l.maxSamples, c.Samples, "samples read per series"},
	} {
		if x.limit > 0 && x.cost > x.limit {
			return promapi.Errorf(promapi.ErrBadData, "query too expensive: an estimated %d %s exceed limits.%s of %d; narrow the range, raise the step or shorten subqueries",
				x.cost, x.what, x.name, x.limit)
		}
	}
	return nil
}

// parseWindow reads and checks the time parameters of a request, and caps
// its timeout at limits.query_timeout.
func (h *Handler) parseWindow(a *ask, l limits) (window, error) {
	now := h.now()
	w := window{now: now, eval: now, lookbackDelta: 5 * time.Minute}
	params := a.params
	if params == nil {
		return w, nil
	}
	var err error
	if s := params.Get("time"); s != "" {
		if w.eval, err = promapi.ParseTime(s); err != nil {
			return w, promapi.Errorf(promapi.ErrBadData, `invalid parameter "time": %v`, err)
		}
	}
	if s := params.Get("timeout"); s != "" {
		d, err := promapi.ParseDuration(s)
		if err != nil || d <= 0 {
			return w, promapi.Errorf(promapi.ErrBadData, `invalid parameter "timeout": %q is not a positive duration`, truncate(s, 32))
		}
		if qt := time.Duration(h.cfg.Limits.QueryTimeout); d > qt {
			params.Set("timeout", model.Duration(qt).String())
		}
	}
	if s := params.Get("lookback_delta"); s != "" {
		d, err := promapi.ParseDuration(s)
		if err != nil || d < 0 {
			return w, promapi.Errorf(promapi.ErrBadData, `invalid parameter "lookback_delta": %q is not a duration`, truncate(s, 32))
		}
		if d > 0 {
			w.lookbackDelta = d
		}
	}
	if w.hasStart = params.Get("start") != ""; w.hasStart {
		if w.start, err = promapi.ParseTime(params.Get("start")); err != nil {
			return w, promapi.Errorf(promapi.ErrBadData, `invalid parameter "start": %v`, err)
		}
	}
	if w.hasEnd = params.Get("end") != ""; w.hasEnd {
		if w.end, err = promapi.ParseTime(params.Get("end")); err != nil {
			return w, promapi.Errorf(promapi.ErrBadData, `invalid parameter "end": %v`, err)
		}
		w.eval = w.end
	}
	if a.route == RouteQueryRange {
		if !w.hasStart || !w.hasEnd {
			return w, promapi.Errorf(promapi.ErrBadData, `query_range needs "start" and "end"`)
		}
		w.step, err = parseStep(params.Get("step"), l.minStep)
	}
	return w, err
}

// parseStep reads a range query's step, which must be at least minStep.
func parseStep(s string, minStep time.Duration) (time.Duration, error) {
	if s == "" {
		return 0, promapi.Errorf(promapi.ErrBadData, `missing parameter "step"`)
	}
	step, err := promapi.ParseDuration(s)
	if err != nil {
		return 0, promapi.Errorf(promapi.ErrBadData, `invalid parameter "step": %v`, err)
	}
	if step <= 0 {
		return 0, promapi.Errorf(promapi.ErrBadData, `invalid parameter "step": zero or negative query resolution step widths are not accepted`)
	}
	if minStep > 0 && step < minStep {
		return 0, promapi.Errorf(promapi.ErrBadData, "step %s is below the minimum of %s", step, minStep)
	}
	return step, nil
}

// clamp moves a metadata request's window into the allowed one: a missing
// start (which the upstream reads as the beginning of time) or one before
// the edge becomes the edge, and a missing end becomes now when a start is
// set for it. The edge is now minus max_lookback, or end minus max_range,
// whichever is later. Nothing moves when neither limit is set.
func (h *Handler) clamp(a *ask, w *window, l limits, st *state) {
	end := w.now
	if w.hasEnd {
		end = w.end
	}
	var edge time.Time
	if l.maxLookback > 0 {
		edge = w.now.Add(-l.maxLookback)
	}
	if l.maxRange > 0 {
		if e := end.Add(-l.maxRange); e.After(edge) {
			edge = e
		}
	}
	if edge.IsZero() || (w.hasStart && !w.start.Before(edge)) {
		return
	}
	w.start, w.hasStart = edge, true
	st.clamp(a.params, "start", formatTime(edge))
	if !w.hasEnd {
		w.end, w.hasEnd = end, true
		st.clamp(a.params, "end", formatTime(end))
	}
}

// formatTime writes a time as Prometheus reads it: Unix seconds with
// milliseconds.
func formatTime(t time.Time) string {
	return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000)
}

// clampedHeader names the parameters the gateway moved into the allowed
// window, on the response to the caller.
const clampedHeader = "X-Promgate-Clamped"

func setClamped(w http.ResponseWriter, st *state) {
	if len(st.clamped) > 0 {
		w.Header().Set(clampedHeader, st.clamped[0].name)
		for _, c := range st.clamped[1:] {
			w.Header().Add(clampedHeader, c.name)
		}
	}
}
