package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/console"
	"github.com/promgate/promgate/enforce"
	"github.com/promgate/promgate/promapi"
)

// The console's pages (package console renders them) read their data here,
// through the caller's own decision and enforcement: each page asks the
// policy once (route ui) with every expression it may run, and each query
// is then held to the query API's limits, rewritten by the caller's
// enforcer and sent upstream with the decision's tenant, exactly as a
// /api/v1/query or /api/v1/query_range of the caller would be. A
// restricted caller is never shown the background evaluator's state, which
// is computed unrestricted.

// consoleMaxRows bounds the rows of a result table.
const consoleMaxRows = 200

// consoleMaxSparks bounds the sparklines of the overview (one range query
// each).
const consoleMaxSparks = 12

// consoleMaxBody bounds an upstream answer read for a page.
const consoleMaxBody = 16 << 20

// consoleWindows are the graph windows a page offers.
var consoleWindows = []string{"1h", "24h", "7d"}

func windowOf(s, def string) (string, time.Duration) {
	if !slices.Contains(consoleWindows, s) {
		s = def
	}
	d, _ := model.ParseDuration(s)
	return s, time.Duration(d)
}

// consoleRun is one page's grant and its way to the upstream.
type consoleRun struct {
	h       *Handler
	r       *http.Request
	st      *state
	g       *grant
	release func()
	client  *http.Client
}

// consoleAdmit asks the policy for a page that may run queries, and takes
// the caller's in-flight slot for the page's upstream queries.
func (h *Handler) consoleAdmit(r *http.Request, st *state, queries []*enforce.Query) (*consoleRun, error) {
	a := &ask{route: RouteUI, kind: kindPlain, queries: queries}
	for _, q := range queries {
		st.query = append(st.query, q.String())
	}
	g, err := h.admit(r.Context(), r, st, a)
	st.tr.leave()
	if err != nil {
		return nil, err
	}
	release, err := h.inflight.acquire(g, st.identity)
	if err != nil {
		return nil, err
	}
	if g.up == nil {
		g.up = h.up
	}
	// The console's queries go where the API's would: the upstream the
	// decision chose, with its transport, token and tenant header.
	return &consoleRun{h: h, r: r, st: st, g: g, release: release,
		client: &http.Client{Transport: g.up.rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// enforced is the query as the caller's enforcer rewrites it.
func (c *consoleRun) enforced(q *enforce.Query) (string, error) {
	text, err := c.g.en.Rewrite(q)
	if err != nil {
		return "", c.h.enforceError(err, c.st.identity)
	}
	return text, nil
}

// instant runs q at ts as the caller.
func (c *consoleRun) instant(q *enforce.Query, ts time.Time) (model.Value, string, error) {
	params := url.Values{"query": {q.String()}, "time": {promTime(ts)}}
	if err := c.h.checkLimits(&ask{route: RouteQuery, kind: kindQuery, query: q, params: params}, c.g, c.st); err != nil {
		return nil, "", err
	}
	text, err := c.enforced(q)
	if err != nil {
		return nil, "", err
	}
	params.Set("query", text)
	v, err := c.do("/api/v1/query", params)
	return v, text, err
}

// series runs q over [end-d, end] as the caller, with about n points.
func (c *consoleRun) series(q *enforce.Query, end time.Time, d time.Duration, n int) (model.Matrix, string, error) {
	step := (d / time.Duration(n)).Truncate(time.Second)
	if step < 15*time.Second {
		step = 15 * time.Second
	}
	end = end.Truncate(step)
	params := url.Values{"query": {q.String()}, "start": {promTime(end.Add(-d))}, "end": {promTime(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	if err := c.h.checkLimits(&ask{route: RouteQueryRange, kind: kindQuery, query: q, params: params}, c.g, c.st); err != nil {
		return nil, "", err
	}
	text, err := c.enforced(q)
	if err != nil {
		return nil, "", err
	}
	params.Set("query", text)
	v, err := c.do("/api/v1/query_range", params)
	if err != nil {
		return nil, text, err
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, text, &promapi.Error{Type: promapi.ErrBadData, Msg: "the expression does not return a range vector over time (a string or a scalar cannot be graphed)"}
	}
	return m, text, nil
}

func promTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// do posts one query to the upstream with the gateway's headers and the
// decision's tenant, and decodes the answer. An upstream API error passes
// through with its type and message, as it would to the API's caller; a
// transport failure says only that the upstream is unavailable.
func (c *consoleRun) do(path string, params url.Values) (model.Value, error) {
	c.st.enforced = append(c.st.enforced, params.Get("query"))
	u := *c.g.up.target
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	// The URL is the configured upstream's; only the form carries input.
	req, err := http.NewRequestWithContext(c.r.Context(), http.MethodPost, u.String(), strings.NewReader(params.Encode())) //nolint:gosec // G704: the configured upstream, not a caller's URL
	if err != nil {
		return nil, err
	}
	stampHeaders(req.Header, c.r, c.st.tr, c.st.id, c.g.up.token(), c.g.up.cfg.Upstream.TenantHeader, c.g.tenant)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req) //nolint:gosec // G704: as above
	if err != nil {
		return nil, c.unavailable(err)
	}
	defer resp.Body.Close() //nolint:errcheck // a read-only response body
	body, err := io.ReadAll(io.LimitReader(resp.Body, consoleMaxBody+1))
	if err != nil {
		return nil, c.unavailable(err)
	}
	if len(body) > consoleMaxBody {
		return nil, &promapi.Error{Type: promapi.ErrBadData, Msg: "the answer is too large for the console; narrow the query"}
	}
	var env struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, c.unavailable(fmt.Errorf("upstream answered status %d without an API envelope", resp.StatusCode))
	}
	if env.Status != "success" {
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable && env.ErrorType != "timeout" {
			return nil, c.unavailable(fmt.Errorf("upstream %d %s: %s", resp.StatusCode, env.ErrorType, env.Error))
		}
		return nil, &promapi.Error{Type: promapi.ErrorType(env.ErrorType), Status: resp.StatusCode, Msg: env.Error}
	}
	var v model.Value
	switch env.Data.ResultType {
	case "vector":
		var vec model.Vector
		err = json.Unmarshal(env.Data.Result, &vec)
		v = vec
	case "matrix":
		var m model.Matrix
		err = json.Unmarshal(env.Data.Result, &m)
		v = m
	case "scalar":
		var s model.Scalar
		err = json.Unmarshal(env.Data.Result, &s)
		v = &s
	case "string":
		var s model.String
		err = json.Unmarshal(env.Data.Result, &s)
		v = &s
	default:
		err = fmt.Errorf("result type %q", env.Data.ResultType)
	}
	if err != nil {
		return nil, c.unavailable(fmt.Errorf("decode upstream answer: %w", err))
	}
	return v, nil
}

func (c *consoleRun) unavailable(err error) error {
	return &promapi.Error{Type: promapi.ErrUnavailable, Status: http.StatusBadGateway, Msg: "upstream unavailable (request id " + c.st.id + ")", Err: errors.New(upstreamCause(err))}
}

// base is the header every page carries.
func (h *Handler) consoleBase(st *state, g *grant, title, nav string) console.Base {
	id := st.identity
	b := console.Base{Title: title, Nav: nav, Subject: id.Subject, Method: string(id.Method), Groups: id.Groups, Now: h.now()}
	if id.Method == authn.MethodSession {
		b.SignOut = authn.PathSignOut
	}
	if g != nil {
		b.Restricted = !g.en.Unrestricted()
		b.Admin = !b.Restricted
		for _, l := range uiLabels(g.dec) {
			switch {
			case len(l.Values) == 1 && len(l.Regexes) == 0:
				b.Scope = append(b.Scope, l.Name+`="`+l.Values[0]+`"`)
			case len(l.Values) > 0:
				b.Scope = append(b.Scope, l.Name+` in {`+strings.Join(l.Values, ", ")+`}`)
			}
			for _, re := range l.Regexes {
				b.Scope = append(b.Scope, l.Name+`=~"`+re+`"`)
			}
		}
		b.Scope = append(b.Scope, g.dec.Matchers...)
	}
	return b
}

// writePage renders a console page.
func writePage(w http.ResponseWriter, r *http.Request, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := console.Render(&buf, name, data); err != nil {
		return err
	}
	console.SetHeaders(w.Header())
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
	return nil
}

// consoleRefusal renders a denial, or a failure before any data was read,
// as an HTML page; a rate limit keeps its own status and the API's shape.
func (h *Handler) consoleRefusal(w http.ResponseWriter, r *http.Request, st *state, err error) error {
	e := promapi.As(err, st.id)
	if e.Type == promapi.ErrTooManyRequests {
		w.Header().Set("Retry-After", "1")
		return err
	}
	st.err = err
	status := e.Code()
	title := "Access denied"
	if e.Type != promapi.ErrForbidden {
		title = "The page cannot be shown"
	}
	b := h.consoleBase(st, nil, title, "")
	return writePage(w, r, status, "message", console.Message{Base: b, Status: status, Heading: title, Text: e.Msg})
}

// serveUI serves the console: the redirects of / and /ui, and the pages.
func (h *Handler) serveUI(w http.ResponseWriter, r *http.Request, st *state) error {
	if r.URL.RawPath != "" && r.URL.RawPath != r.URL.Path {
		return promapi.Errorf(promapi.ErrNotFound, "not found: this path is not served by the gateway")
	}
	p := r.URL.Path
	if p == "/" || p == "/ui" {
		http.Redirect(w, r, console.PathOverview, http.StatusFound)
		return nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return h.consoleRefusal(w, r, st, promapi.Errorf(promapi.ErrBadData, "the page's parameters are malformed: %v", err))
	}
	switch {
	case p == console.PathOverview:
		return h.serveOverview(w, r, st)
	case strings.HasPrefix(p, console.PathDetectors):
		return h.serveDetectorPage(w, r, st, strings.TrimPrefix(p, console.PathDetectors), q)
	case p == console.PathQuery:
		return h.serveQueryPage(w, r, st, q)
	case p == console.PathTopology:
		return h.serveTopology(w, r, st, q)
	case p == console.PathAdmin:
		return h.serveAdmin(w, r, st, q)
	}
	return h.consoleRefusal(w, r, st, promapi.Errorf(promapi.ErrNotFound, "not found: the console has no page %s", truncate(p, 64)))
}

// rowsOf turns a vector into table rows, sorted by labels, at most
// consoleMaxRows; it returns how many were left out.
func rowsOf(vec model.Vector) ([]console.Row, int) {
	sort.Slice(vec, func(i, j int) bool { return vec[i].Metric.Before(vec[j].Metric) })
	var rows []console.Row
	for i, s := range vec {
		if i == consoleMaxRows {
			return rows, len(vec) - i
		}
		rows = append(rows, console.Row{Labels: labelsOf(s.Metric), Value: strconv.FormatFloat(float64(s.Value), 'g', -1, 64)})
	}
	return rows, 0
}

func labelsOf(m model.Metric) []console.Label {
	out := make([]console.Label, 0, len(m))
	for k, v := range m {
		out = append(out, console.Label{Name: string(k), Value: string(v)})
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Name == model.MetricNameLabel) != (out[j].Name == model.MetricNameLabel) {
			return out[i].Name == model.MetricNameLabel
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// chartOf draws a matrix.
func chartOf(title string, m model.Matrix, start, end time.Time, threshold *float64) console.Chart {
	sort.Slice(m, func(i, j int) bool { return m[i].Metric.Before(m[j].Metric) })
	c := console.Chart{Title: title, Start: start, End: end, Threshold: threshold}
	for _, s := range m {
		cs := console.Series{Label: s.Metric.String()}
		for _, p := range s.Values {
			cs.Points = append(cs.Points, console.Point{T: p.Timestamp.Time(), V: float64(p.Value)})
		}
		c.Series = append(c.Series, cs)
	}
	return c
}

// maxPoints folds a matrix into one line: the largest value at each step.
func maxPoints(m model.Matrix) []console.Point {
	by := map[model.Time]float64{}
	for _, s := range m {
		for _, p := range s.Values {
			if v, ok := by[p.Timestamp]; !ok || float64(p.Value) > v || math.IsNaN(v) {
				by[p.Timestamp] = float64(p.Value)
			}
		}
	}
	out := make([]console.Point, 0, len(by))
	for t, v := range by {
		out = append(out, console.Point{T: t.Time(), V: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].T.Before(out[j].T) })
	return out
}

// errText is the message of an error a page shows in place of data.
func errText(err error, id string) (string, string) {
	e := promapi.As(err, id)
	return e.Msg, string(e.Type)
}

// consoleSignIn answers a browser without credentials when no login is
// configured: 401 with an HTML page naming the credential that works.
func (h *Handler) consoleSignIn(w http.ResponseWriter, r *http.Request, st *state, cause error) error {
	e := promapi.As(h.authnError(cause), st.id)
	st.route, st.err = RouteUI, e
	w.Header().Set("WWW-Authenticate", "Bearer")
	text := e.Msg + ". In a browser, import your client certificate and key (a PKCS#12 file) into the browser's certificate store, then reload this page."
	return writePage(w, r, http.StatusUnauthorized, "message", console.Message{
		Base: console.Base{Title: "Sign-in needed", Now: h.now()}, Status: http.StatusUnauthorized, Heading: "Sign-in needed", Text: text})
}
