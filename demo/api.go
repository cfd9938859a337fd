package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/protobuf/proto"
)

// Error types of Prometheus' API envelope.
const (
	errBadData  = "bad_data"
	errExec     = "execution"
	errTimeout  = "timeout"
	errCanceled = "canceled"
	errInternal = "internal"
	errNotFound = "not_found"
)

// maxPoints is Prometheus' limit on the points of one range query series.
const maxPoints = 11000

var (
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()
)

type apiError struct {
	typ string
	err error
}

func (e *apiError) Error() string { return e.err.Error() }

func badData(format string, args ...any) *apiError {
	return &apiError{errBadData, fmt.Errorf(format, args...)}
}

type envelope struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

type queryData struct {
	ResultType parser.ValueType `json:"resultType"`
	Result     any              `json:"result"`
}

// apiFunc answers one route: data, annotations or an error.
type apiFunc func(r *http.Request) (any, annotations.Annotations, *apiError)

// Handler returns the HTTP handler of the Prometheus API routes that the
// gateway protects.
func (u *Upstream) Handler() http.Handler {
	mux := http.NewServeMux()
	wrap := func(f apiFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := r.ParseForm(); err != nil {
				writeAPI(w, nil, nil, badData("error parsing form values: %v", err))
				return
			}
			data, annos, aerr := f(r)
			writeAPI(w, data, annos, aerr)
		}
	}
	getPost := func(pattern string, f apiFunc) {
		mux.HandleFunc("GET "+pattern, wrap(f))
		mux.HandleFunc("POST "+pattern, wrap(f))
	}
	getPost("/api/v1/query", u.query)
	getPost("/api/v1/query_range", u.queryRange)
	getPost("/api/v1/query_exemplars", u.queryExemplars)
	getPost("/api/v1/series", u.series)
	getPost("/api/v1/labels", u.labelNames)
	mux.HandleFunc("GET /api/v1/label/{name}/values", wrap(u.labelValues))
	mux.HandleFunc("GET /api/v1/rules", wrap(u.rulesRoute))
	mux.HandleFunc("GET /api/v1/alerts", wrap(u.alerts))
	mux.HandleFunc("GET /api/v1/metadata", wrap(u.metadata))
	mux.HandleFunc("GET /api/v1/status/buildinfo", wrap(u.buildInfo))
	mux.HandleFunc("GET /federate", u.federate)
	return mux
}

func writeAPI(w http.ResponseWriter, data any, annos annotations.Annotations, aerr *apiError) {
	w.Header().Set("Content-Type", "application/json")
	env := envelope{Status: "success", Data: data}
	if len(annos) > 0 {
		warnings, infos := annos.AsStrings("", 10, 10)
		env.Warnings, env.Infos = warnings, infos
	}
	code := http.StatusOK
	if aerr != nil {
		env = envelope{Status: "error", ErrorType: aerr.typ, Error: aerr.err.Error(), Warnings: env.Warnings, Infos: env.Infos}
		switch aerr.typ {
		case errBadData:
			code = http.StatusBadRequest
		case errExec:
			code = http.StatusUnprocessableEntity
		case errCanceled:
			code = 499
		case errTimeout:
			code = http.StatusServiceUnavailable
		case errNotFound:
			code = http.StatusNotFound
		default:
			code = http.StatusInternalServerError
		}
	}
	b, err := json.Marshal(env)
	if err != nil {
		code = http.StatusInternalServerError
		b = fmt.Appendf(nil, `{"status":"error","errorType":"internal","error":%q}`, "encode the response: "+err.Error())
	}
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		s, ns := math.Modf(t)
		ns = math.Round(ns*1000) / 1000
		return time.Unix(int64(s), int64(ns*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTime.Format(time.RFC3339Nano):
		return minTime, nil
	case maxTime.Format(time.RFC3339Nano):
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	t, err := parseTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time value for '%s': %w", name, err)
	}
	return t, nil
}

func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if ts > float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

func parseLimit(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q to a valid limit", s)
	}
	if n < 0 {
		return 0, errors.New("limit must be non-negative")
	}
	return n, nil
}

func invalidParam(err error, name string) *apiError {
	return badData("invalid parameter %q: %w", name, err)
}

// queryContext applies the timeout parameter.
func queryContext(r *http.Request) (context.Context, context.CancelFunc, *apiError) {
	ctx := r.Context()
	if to := r.FormValue("timeout"); to != "" {
		d, err := parseDuration(to)
		if err != nil {
			return nil, nil, invalidParam(err, "timeout")
		}
		c, cancel := context.WithTimeout(ctx, d)
		return c, cancel, nil
	}
	return ctx, func() {}, nil
}

// queryOpts are the options of one query: its lookback_delta parameter.
// It implements promql.QueryOpts.
type queryOpts struct {
	lookback time.Duration
}

func (queryOpts) EnablePerStepStats() bool       { return false }
func (o queryOpts) LookbackDelta() time.Duration { return o.lookback }
func (queryOpts) UseStartTimestamps() *bool      { return nil }

func (u *Upstream) queryOpts(r *http.Request) (promql.QueryOpts, *apiError) {
	var o queryOpts
	if s := r.FormValue("lookback_delta"); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			return nil, invalidParam(fmt.Errorf("error parsing lookback delta duration: %w", err), "lookback_delta")
		}
		o.lookback = d
	}
	return o, nil
}

func (u *Upstream) query(r *http.Request) (any, annotations.Annotations, *apiError) {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return nil, nil, invalidParam(err, "limit")
	}
	ts, err := parseTimeParam(r, "time", time.Now())
	if err != nil {
		return nil, nil, invalidParam(err, "time")
	}
	ctx, cancel, aerr := queryContext(r)
	if aerr != nil {
		return nil, nil, aerr
	}
	defer cancel()
	opts, aerr := u.queryOpts(r)
	if aerr != nil {
		return nil, nil, aerr
	}
	qry, err := u.engine.NewInstantQuery(ctx, u.store, opts, r.FormValue("query"), ts)
	if err != nil {
		return nil, nil, invalidParam(err, "query")
	}
	defer qry.Close()
	return u.execute(ctx, qry, limit)
}

func (u *Upstream) queryRange(r *http.Request) (any, annotations.Annotations, *apiError) {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return nil, nil, invalidParam(err, "limit")
	}
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return nil, nil, invalidParam(err, "start")
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return nil, nil, invalidParam(err, "end")
	}
	if end.Before(start) {
		return nil, nil, invalidParam(errors.New("end timestamp must not be before start time"), "end")
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		return nil, nil, invalidParam(err, "step")
	}
	if step <= 0 {
		return nil, nil, invalidParam(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step")
	}
	if end.Sub(start)/step > maxPoints {
		return nil, nil, badData("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
	}
	ctx, cancel, aerr := queryContext(r)
	if aerr != nil {
		return nil, nil, aerr
	}
	defer cancel()
	opts, aerr := u.queryOpts(r)
	if aerr != nil {
		return nil, nil, aerr
	}
	qry, err := u.engine.NewRangeQuery(ctx, u.store, opts, r.FormValue("query"), start, end, step)
	if err != nil {
		return nil, nil, invalidParam(err, "query")
	}
	defer qry.Close()
	return u.execute(ctx, qry, limit)
}

// execute runs qry and renders its result as Prometheus does: never null, a
// limit truncates vectors and matrices with a warning.
func (u *Upstream) execute(ctx context.Context, qry promql.Query, limit int) (any, annotations.Annotations, *apiError) {
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, res.Warnings, engineError(res.Err)
	}
	annos := res.Warnings
	truncated := false
	var result any = res.Value
	switch v := res.Value.(type) {
	case promql.Vector:
		if v == nil {
			v = promql.Vector{}
		}
		if limit > 0 && len(v) > limit {
			v, truncated = v[:limit], true
		}
		result = v
	case promql.Matrix:
		if v == nil {
			v = promql.Matrix{}
		}
		if limit > 0 && len(v) > limit {
			v, truncated = v[:limit], true
		}
		result = v
	}
	if truncated {
		annos = annos.Add(errors.New("results truncated due to limit"))
	}
	return queryData{ResultType: res.Value.Type(), Result: result}, annos, nil
}

func engineError(err error) *apiError {
	var (
		eqc promql.ErrQueryCanceled
		eqt promql.ErrQueryTimeout
		es  promql.ErrStorage
	)
	switch {
	case errors.As(err, &eqc), errors.Is(err, context.Canceled):
		return &apiError{errCanceled, err}
	case errors.As(err, &eqt), errors.Is(err, context.DeadlineExceeded):
		return &apiError{errTimeout, err}
	case errors.As(err, &es):
		return &apiError{errInternal, err}
	}
	return &apiError{errExec, err}
}

// queryExemplars validates its parameters like Prometheus; the synthetic
// data has no exemplars, so the answer is always an empty list.
func (u *Upstream) queryExemplars(r *http.Request) (any, annotations.Annotations, *apiError) {
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return nil, nil, invalidParam(err, "start")
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return nil, nil, invalidParam(err, "end")
	}
	if end.Before(start) {
		return nil, nil, invalidParam(errors.New("end timestamp must not be before start timestamp"), "end")
	}
	if _, err := u.parser.ParseExpr(r.FormValue("query")); err != nil {
		return nil, nil, invalidParam(err, "query")
	}
	return []struct{}{}, nil, nil
}

func (u *Upstream) matchers(values []string) ([][]*labels.Matcher, *apiError) {
	sets, err := u.parser.ParseMetricSelectors(values)
	if err != nil {
		return nil, badData("%v", err)
	}
outer:
	for _, ms := range sets {
		for _, m := range ms {
			if m != nil && !m.Matches("") {
				continue outer
			}
		}
		return nil, badData("match[] must contain at least one non-empty matcher")
	}
	return sets, nil
}

// timeRange parses start and end, each defaulting to the widest range.
func timeRange(r *http.Request) (start, end time.Time, aerr *apiError) {
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return start, end, invalidParam(err, "start")
	}
	end, err = parseTimeParam(r, "end", maxTime)
	if err != nil {
		return start, end, invalidParam(err, "end")
	}
	if end.Before(start) {
		return start, end, invalidParam(errors.New("end timestamp must not be before start time"), "end")
	}
	return start, end, nil
}

func (u *Upstream) series(r *http.Request) (any, annotations.Annotations, *apiError) {
	if len(r.Form["match[]"]) == 0 {
		return nil, nil, badData("no match[] parameter provided")
	}
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return nil, nil, invalidParam(err, "limit")
	}
	start, end, aerr := timeRange(r)
	if aerr != nil {
		return nil, nil, aerr
	}
	sets, aerr := u.matchers(r.Form["match[]"])
	if aerr != nil {
		return nil, nil, aerr
	}
	ctx := r.Context()
	q, err := u.store.Querier(timestamp(start), timestamp(end))
	if err != nil {
		return nil, nil, &apiError{errInternal, err}
	}
	defer q.Close() //nolint:errcheck // a read-only querier: Close only releases it
	hints := &storage.SelectHints{Start: timestamp(start), End: timestamp(end), Func: "series"}
	var set storage.SeriesSet
	if len(sets) > 1 {
		var all []storage.SeriesSet
		for _, ms := range sets {
			all = append(all, q.Select(ctx, true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(all, 0, storage.ChainedSeriesMerge)
	} else {
		set = q.Select(ctx, false, hints, sets[0]...)
	}
	out := []labels.Labels{}
	var annos annotations.Annotations
	for set.Next() {
		out = append(out, set.At().Labels())
		if limit > 0 && len(out) > limit {
			out = out[:limit]
			annos = annos.Add(errors.New("results truncated due to limit"))
			break
		}
	}
	annos = annos.Merge(set.Warnings())
	if err := set.Err(); err != nil {
		return nil, annos, &apiError{errExec, err}
	}
	return out, annos, nil
}

func (u *Upstream) labelNames(r *http.Request) (any, annotations.Annotations, *apiError) {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return nil, nil, invalidParam(err, "limit")
	}
	start, end, aerr := timeRange(r)
	if aerr != nil {
		return nil, nil, aerr
	}
	var sets [][]*labels.Matcher
	if len(r.Form["match[]"]) > 0 {
		if sets, aerr = u.matchers(r.Form["match[]"]); aerr != nil {
			return nil, nil, aerr
		}
	}
	q, err := u.store.Querier(timestamp(start), timestamp(end))
	if err != nil {
		return nil, nil, &apiError{errInternal, err}
	}
	defer q.Close() //nolint:errcheck // a read-only querier: Close only releases it
	// No limit hint: the storage would cut before sorting. The data is
	// small, so the sorted union is cut instead.
	hints := &storage.LabelHints{}
	names, annos, aerr := collectStrings(sets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(r.Context(), hints, ms...)
	})
	if aerr != nil {
		return nil, annos, aerr
	}
	if limit > 0 && len(names) > limit {
		names = names[:limit]
		annos = annos.Add(errors.New("results truncated due to limit"))
	}
	return names, annos, nil
}

func (u *Upstream) labelValues(r *http.Request) (any, annotations.Annotations, *apiError) {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return nil, nil, badData("invalid label name: %q", name)
	}
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return nil, nil, invalidParam(err, "limit")
	}
	start, end, aerr := timeRange(r)
	if aerr != nil {
		return nil, nil, aerr
	}
	var sets [][]*labels.Matcher
	if len(r.Form["match[]"]) > 0 {
		if sets, aerr = u.matchers(r.Form["match[]"]); aerr != nil {
			return nil, nil, aerr
		}
	}
	q, err := u.store.Querier(timestamp(start), timestamp(end))
	if err != nil {
		return nil, nil, &apiError{errInternal, err}
	}
	defer q.Close() //nolint:errcheck // a read-only querier: Close only releases it
	hints := &storage.LabelHints{}
	values, annos, aerr := collectStrings(sets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(r.Context(), name, hints, ms...)
	})
	if aerr != nil {
		return nil, annos, aerr
	}
	if limit > 0 && len(values) > limit {
		values = values[:limit]
		annos = annos.Add(errors.New("results truncated due to limit"))
	}
	return values, annos, nil
}

// collectStrings calls f once per matcher set (once with none when sets is
// empty) and returns the sorted union.
func collectStrings(sets [][]*labels.Matcher, f func([]*labels.Matcher) ([]string, annotations.Annotations, error)) ([]string, annotations.Annotations, *apiError) {
	var annos annotations.Annotations
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	seen := map[string]struct{}{}
	for _, ms := range sets {
		vals, w, err := f(ms)
		annos = annos.Merge(w)
		if err != nil {
			return nil, annos, &apiError{errExec, err}
		}
		for _, v := range vals {
			seen[v] = struct{}{}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, annos, nil
}

func timestamp(t time.Time) int64 {
	return t.Unix()*1000 + int64(t.Nanosecond())/int64(time.Millisecond)
}

// federate writes the latest sample (within the engine's lookback) of every
// series that a match[] selects, in the negotiated text format, like
// Prometheus' /federate.
func (u *Upstream) federate(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "error parsing form values: "+err.Error(), http.StatusBadRequest)
		return
	}
	sets, aerr := u.matchers(r.Form["match[]"])
	if aerr != nil {
		http.Error(w, aerr.Error(), http.StatusBadRequest)
		return
	}
	if len(sets) == 0 {
		// Prometheus answers an empty body when no match[] is given.
		w.Header().Set("Content-Type", string(expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)))
		return
	}
	now := timestamp(time.Now())
	mint := now - (5 * time.Minute).Milliseconds()
	q, err := u.store.Querier(mint, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer q.Close() //nolint:errcheck // a read-only querier: Close only releases it
	hints := &storage.SelectHints{Start: mint, End: now}
	var all []storage.SeriesSet
	for _, ms := range sets {
		all = append(all, q.Select(r.Context(), false, hints, ms...))
	}
	set := storage.NewMergeSeriesSet(all, 0, storage.ChainedSeriesMerge)
	families := map[string]*dto.MetricFamily{}
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		it = s.Iterator(it)
		var t int64
		var v float64
		ok := false
		for vt := it.Seek(mint); vt == chunkenc.ValFloat; vt = it.Next() {
			tt, vv := it.At()
			if tt > now {
				break
			}
			t, v, ok = tt, vv, true
		}
		if it.Err() != nil || !ok || value.IsStaleNaN(v) {
			continue
		}
		name := s.Labels().Get(model.MetricNameLabel)
		mf, found := families[name]
		if !found {
			mf = &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_UNTYPED.Enum()}
			families[name] = mf
		}
		m := &dto.Metric{Untyped: &dto.Untyped{Value: proto.Float64(v)}, TimestampMs: proto.Int64(t)}
		s.Labels().Range(func(l labels.Label) {
			if l.Name != model.MetricNameLabel {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
			}
		})
		mf.Metric = append(mf.Metric, m)
	}
	if err := set.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
	w.Header().Set("Content-Type", string(format))
	enc := expfmt.NewEncoder(w, format)
	for _, n := range names {
		if err := enc.Encode(families[n]); err != nil {
			u.log.Error("federation failed", "err", err)
			return
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		_ = c.Close()
	}
}

type apiAlert struct {
	Labels          labels.Labels `json:"labels"`
	Annotations     labels.Labels `json:"annotations"`
	State           string        `json:"state"`
	ActiveAt        *time.Time    `json:"activeAt,omitempty"`
	KeepFiringSince *time.Time    `json:"keepFiringSince,omitempty"`
	Value           string        `json:"value"`
}

func toAPIAlerts(in []alert) []*apiAlert {
	out := make([]*apiAlert, len(in))
	for i, a := range in {
		out[i] = &apiAlert{
			Labels:      a.labels,
			Annotations: a.annotations,
			State:       a.state.String(),
			ActiveAt:    &a.activeAt,
			Value:       strconv.FormatFloat(a.value, 'e', -1, 64),
		}
		if !a.keepFiringSince.IsZero() {
			out[i].KeepFiringSince = &a.keepFiringSince
		}
	}
	return out
}

func (u *Upstream) alerts(*http.Request) (any, annotations.Annotations, *apiError) {
	out := []*apiAlert{}
	for _, g := range u.groups {
		g.mu.Lock()
		for _, r := range g.rules {
			if r.alerting {
				out = append(out, toAPIAlerts(r.activeAlerts())...)
			}
		}
		g.mu.Unlock()
	}
	return map[string]any{"alerts": out}, nil, nil
}

type apiRuleGroup struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	Rules          []any     `json:"rules"`
	Interval       float64   `json:"interval"`
	Limit          int       `json:"limit"`
	EvaluationTime float64   `json:"evaluationTime"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

type apiAlertingRule struct {
	State          string        `json:"state"`
	Name           string        `json:"name"`
	Query          string        `json:"query"`
	Duration       float64       `json:"duration"`
	KeepFiringFor  float64       `json:"keepFiringFor"`
	Labels         labels.Labels `json:"labels"`
	Annotations    labels.Labels `json:"annotations"`
	Alerts         []*apiAlert   `json:"alerts"`
	Health         string        `json:"health"`
	LastError      string        `json:"lastError,omitempty"`
	EvaluationTime float64       `json:"evaluationTime"`
	LastEvaluation time.Time     `json:"lastEvaluation"`
	Type           string        `json:"type"`
}

type apiRecordingRule struct {
	Name           string        `json:"name"`
	Query          string        `json:"query"`
	Labels         labels.Labels `json:"labels"`
	Health         string        `json:"health"`
	LastError      string        `json:"lastError,omitempty"`
	EvaluationTime float64       `json:"evaluationTime"`
	LastEvaluation time.Time     `json:"lastEvaluation"`
	Type           string        `json:"type"`
}

// rulesRoute mirrors Prometheus' /api/v1/rules, filters and pagination
// included.
func (u *Upstream) rulesRoute(r *http.Request) (any, annotations.Annotations, *apiError) {
	set := func(vs []string) map[string]bool {
		m := map[string]bool{}
		for _, v := range vs {
			m[v] = true
		}
		return m
	}
	names, groups, files := set(r.Form["rule_name[]"]), set(r.Form["rule_group[]"]), set(r.Form["file[]"])
	var sets [][]*labels.Matcher
	if len(r.Form["match[]"]) > 0 {
		var aerr *apiError
		if sets, aerr = u.matchers(r.Form["match[]"]); aerr != nil {
			return nil, nil, aerr
		}
	}
	typ := strings.ToLower(r.FormValue("type"))
	if typ != "" && typ != "alert" && typ != "record" {
		return nil, nil, invalidParam(fmt.Errorf("not supported value %q", typ), "type")
	}
	excludeAlerts := false
	if s := r.FormValue("exclude_alerts"); s != "" {
		b, err := strconv.ParseBool(strings.ToLower(s))
		if err != nil {
			return nil, nil, invalidParam(fmt.Errorf("error converting exclude_alerts: %w", err), "exclude_alerts")
		}
		excludeAlerts = b
	}
	maxGroups := 0
	if s := r.FormValue("group_limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, nil, invalidParam(errors.New("group_limit needs to be greater than 0"), "group_limit")
		}
		maxGroups = n
	}
	nextToken := r.FormValue("group_next_token")
	if nextToken != "" && maxGroups == 0 {
		return nil, nil, invalidParam(errors.New("group_limit needs to be present in order to paginate over the groups"), "group_next_token")
	}

	res := struct {
		Groups    []*apiRuleGroup `json:"groups"`
		NextToken string          `json:"groupNextToken,omitempty"`
	}{Groups: []*apiRuleGroup{}}
	found := false
	for _, g := range u.groups {
		token := groupToken(g)
		if maxGroups > 0 && nextToken != "" && !found {
			if token != nextToken {
				continue
			}
			found = true
		}
		if len(groups) > 0 && !groups[g.name] || len(files) > 0 && !files[g.file] {
			continue
		}
		ag := apiGroup(g, func(rl *rule) bool {
			return (len(names) == 0 || names[rl.name]) && matchesAny(rl.labels, sets) &&
				(typ == "" || typ == "alert" && rl.alerting || typ == "record" && !rl.alerting)
		}, excludeAlerts)
		if len(ag.Rules) > 0 {
			if maxGroups > 0 && len(res.Groups) == maxGroups {
				res.NextToken = token
				break
			}
			res.Groups = append(res.Groups, ag)
		}
	}
	if maxGroups > 0 && nextToken != "" && !found {
		return nil, nil, invalidParam(fmt.Errorf("invalid group_next_token '%v'. were rule groups changed?", nextToken), "group_next_token")
	}
	return res, nil, nil
}

// apiGroup renders g with the rules that keep selects.
func apiGroup(g *ruleGroup, keep func(*rule) bool, excludeAlerts bool) *apiRuleGroup {
	g.mu.Lock()
	defer g.mu.Unlock()
	ag := &apiRuleGroup{
		Name: g.name, File: g.file, Rules: []any{}, Interval: g.interval.Seconds(), Limit: g.limit,
		EvaluationTime: g.evalDuration.Seconds(), LastEvaluation: g.lastEval,
	}
	for _, rl := range g.rules {
		if !keep(rl) {
			continue
		}
		lastErr := ""
		if rl.lastErr != nil {
			lastErr = rl.lastErr.Error()
		}
		if !rl.alerting {
			ag.Rules = append(ag.Rules, apiRecordingRule{
				Name: rl.name, Query: rl.expr.String(), Labels: rl.labels, Health: rl.health,
				LastError: lastErr, EvaluationTime: rl.evalDuration.Seconds(),
				LastEvaluation: rl.lastEval, Type: "recording",
			})
			continue
		}
		var active []*apiAlert
		if !excludeAlerts {
			active = toAPIAlerts(rl.activeAlerts())
		}
		ag.Rules = append(ag.Rules, apiAlertingRule{
			State: rl.state(), Name: rl.name, Query: rl.expr.String(),
			Duration: rl.holdDuration.Seconds(), KeepFiringFor: rl.keepFiringFor.Seconds(),
			Labels: rl.labels, Annotations: rl.annotations, Alerts: active, Health: rl.health,
			LastError: lastErr, EvaluationTime: rl.evalDuration.Seconds(),
			LastEvaluation: rl.lastEval, Type: "alerting",
		})
	}
	return ag
}

// matchesAny reports whether lset matches every matcher of one of sets, or
// sets is empty.
func matchesAny(lset labels.Labels, sets [][]*labels.Matcher) bool {
	if len(sets) == 0 {
		return true
	}
	for _, ms := range sets {
		if matches(lset, ms) {
			return true
		}
	}
	return false
}

// groupToken is the pagination token of a group: its file and name, hashed
// as Prometheus does.
func groupToken(g *ruleGroup) string {
	return strconv.FormatUint(labels.FromStrings("file", g.file, "name", g.name).Hash(), 16)
}

type metadataEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// metadata answers from the scenario's metric families, like the metadata a
// scrape would have collected.
func (u *Upstream) metadata(r *http.Request) (any, annotations.Annotations, *apiError) {
	limit := -1
	if s := r.FormValue("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, nil, badData("limit must be a number")
		}
		limit = n
	}
	if s := r.FormValue("limit_per_metric"); s != "" {
		if _, err := strconv.Atoi(s); err != nil {
			return nil, nil, badData("limit_per_metric must be a number")
		}
	}
	metric := r.FormValue("metric")
	fams := slices.Clone(u.scenario.families)
	sort.Slice(fams, func(i, j int) bool { return fams[i].name < fams[j].name })
	out := map[string][]metadataEntry{}
	for _, f := range fams {
		if metric != "" && f.name != metric {
			continue
		}
		if limit >= 0 && len(out) >= limit {
			break
		}
		out[f.name] = []metadataEntry{{Type: f.typ, Help: f.help, Unit: f.unit}}
	}
	return out, nil, nil
}

func (u *Upstream) buildInfo(*http.Request) (any, annotations.Annotations, *apiError) {
	version := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/prometheus/prometheus" {
				// Prometheus' Go module v0.X.Y is Prometheus 3.(X-300).Y.
				if v, err := moduleToRelease(d.Version); err == nil {
					version = v
				}
			}
		}
	}
	return map[string]string{
		"version":   version,
		"revision":  "promgate-demo",
		"branch":    "promgate-demo",
		"buildUser": "promgate",
		"buildDate": u.started.UTC().Format("20060102-15:04:05"),
		"goVersion": runtime.Version(),
	}, nil, nil
}

func moduleToRelease(v string) (string, error) {
	var minor, patch int
	if _, err := fmt.Sscanf(v, "v0.%d.%d", &minor, &patch); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d.%d.%d", minor/100, minor%100, patch), nil
}
