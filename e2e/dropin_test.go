//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// The tests of this file cover issue 16: the gateway is a drop-in for the
// Prometheus HTTP API. Real clients talk to it as team-a (restricted to
// team-a and team-a-staging) and as the admin: the official Go client
// (client_golang's v1.API, every method), and the requests Grafana's
// Prometheus data source sends, rebuilt from Grafana's source. Every answer
// is either the data, confined to the caller's namespaces, or an error in
// Prometheus' own JSON shape that the client decodes.

// dropinLeakNeedles must not occur in any answer a team-a caller gets: the
// marker labels of the other jobs and of the series without a namespace,
// team-b's always-firing alert, and the other namespaces as namespace label
// values in JSON, YAML (a configuration) or name=value pairs (TSDB
// statistics). The bare names team-b and kube-system may occur: team-a's
// target is Prometheus itself, whose own metrics name every scrape job (for
// example prometheus_target_sync_length_seconds{scrape_job="team-b"}).
var dropinLeakNeedles = []string{
	"e2e_team_b_only", "e2e_kube_system_only", "e2e_no_namespace", "E2ETeamBAlwaysFiring",
	`"namespace":"team-b"`, `"namespace":"kube-system"`,
	"namespace: team-b", "namespace: kube-system",
	"namespace=team-b", "namespace=kube-system",
}

// dropinWaitForData waits until Prometheus has scraped each job for at least
// 20 s, so that a range query whose end Grafana aligned down to a 15 s step
// still finds samples within the lookback.
func dropinWaitForData(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(dataBudget)
	for {
		seen, err := promNamespaces(env.promURL, `count by (namespace) (count_over_time(up[1m]) >= 20)`)
		if err == nil && containsAll(seen, allNamespaces) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has not had 20 s of data for every namespace after %v: %v, %v", dataBudget, keys(seen), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Part 1: client_golang's v1.API, every method.
// ---------------------------------------------------------------------------

// dropinExchange is one HTTP exchange client_golang had with the gateway.
type dropinExchange struct {
	method string
	uri    string
	status int
	ctype  string
	body   []byte
}

func (e dropinExchange) String() string {
	b := e.body
	if len(b) > 300 {
		b = append(b[:300:300], "..."...)
	}
	return fmt.Sprintf("%s %s: %d (%s) %s", e.method, e.uri, e.status, e.ctype, b)
}

// dropinTransport sits between client_golang and the suite's client
// transport (which presents the caller's certificate and counts the
// exchanges for the audit check) and keeps every response byte for byte.
type dropinTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	list []dropinExchange
}

func (d *dropinTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	b, err := readAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if resp.StatusCode >= 400 {
		errorBodies.add(b)
	}
	d.mu.Lock()
	d.list = append(d.list, dropinExchange{
		method: r.Method, uri: r.URL.RequestURI(), status: resp.StatusCode,
		ctype: resp.Header.Get("Content-Type"), body: b,
	})
	d.mu.Unlock()
	return resp, nil
}

// take returns the exchanges since the last take.
func (d *dropinTransport) take() []dropinExchange {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.list
	d.list = nil
	return out
}

// dropinAPI returns a client_golang v1.API for the main gateway that
// presents who's client certificate: the RoundTripper is the suite's own
// client transport (newClient: the CA of env.pki, client-<name>.crt/.key).
func dropinAPI(t *testing.T, who caller) (v1.API, *dropinTransport) {
	t.Helper()
	tr := &dropinTransport{base: who.client(t).hc.Transport}
	c, err := api.NewClient(api.Config{Address: "https://" + env.main.addr, RoundTripper: tr})
	if err != nil {
		t.Fatal(err)
	}
	return v1.NewAPI(c), tr
}

// dropinEnvelope decodes Prometheus' error envelope.
func dropinEnvelope(e dropinExchange) (errType, msg string, err error) {
	if !strings.HasPrefix(e.ctype, "application/json") {
		return "", "", fmt.Errorf("Content-Type %q, want application/json", e.ctype)
	}
	var env struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}
	if err := json.Unmarshal(e.body, &env); err != nil {
		return "", "", fmt.Errorf("not JSON: %w", err)
	}
	if env.Status != "error" || env.ErrorType == "" || env.Error == "" {
		return "", "", errors.New(`not {"status":"error","errorType":...,"error":...}`)
	}
	return env.ErrorType, env.Error, nil
}

// dropinMethod is one call of a v1.API method.
type dropinMethod struct {
	name string // the v1.API method
	// answer: the gateway serves this route to every caller the policy
	// gives access, so a refusal is a drop-in failure.
	answer bool
	call   func(ctx context.Context, a v1.API) (any, error)
	// seen returns the namespaces an answer reveals; nil when the answer
	// carries none (the raw body is still checked for leaks).
	seen func(v any) map[string]bool
	// own: a restricted caller must see its own namespace, and the admin
	// team-a and team-b.
	own bool
}

func nsOfLabelSets(sets ...model.LabelSet) map[string]bool {
	seen := map[string]bool{}
	for _, s := range sets {
		seen[string(s["namespace"])] = true
	}
	return seen
}

// dropinMethods lists one or more calls of every method of v1.API in
// client_golang v1.25.0 (go.mod); TestDropInClientGolang fails when the
// interface has a method this list does not call.
func dropinMethods(now time.Time) []dropinMethod {
	start := now.Add(-5 * time.Minute)
	// A selector no series matches: the admin's DeleteSeries must not be
	// able to delete anything even if it ever reached a Prometheus with the
	// admin API enabled.
	const nothing = `{__name__="e2e_dropin_no_such_metric"}`
	return []dropinMethod{
		{name: "Alerts", answer: true, call: func(ctx context.Context, a v1.API) (any, error) { return a.Alerts(ctx) },
			seen: func(v any) map[string]bool {
				var ls []model.LabelSet
				for _, al := range v.(v1.AlertsResult).Alerts {
					ls = append(ls, al.Labels)
				}
				return nsOfLabelSets(ls...)
			}},
		{name: "AlertManagers", call: func(ctx context.Context, a v1.API) (any, error) { return a.AlertManagers(ctx) }},
		{name: "CleanTombstones", call: func(ctx context.Context, a v1.API) (any, error) { return nil, a.CleanTombstones(ctx) }},
		{name: "Config", call: func(ctx context.Context, a v1.API) (any, error) { return a.Config(ctx) }},
		{name: "DeleteSeries", call: func(ctx context.Context, a v1.API) (any, error) {
			return nil, a.DeleteSeries(ctx, []string{nothing}, start, now)
		}},
		{name: "Flags", call: func(ctx context.Context, a v1.API) (any, error) { return a.Flags(ctx) }},
		{name: "LabelNames", answer: true, own: true, call: func(ctx context.Context, a v1.API) (any, error) {
			v, _, _, err := a.LabelNames(ctx, nil, start, now)
			return v, err
		}, seen: func(v any) map[string]bool {
			seen := map[string]bool{}
			for _, n := range v.(model.LabelNames) {
				if ns, ok := markerNamespace[string(n)]; ok {
					seen[ns] = true
				}
			}
			return seen
		}},
		{name: "LabelNames(match[]=up)", answer: true, own: true, call: func(ctx context.Context, a v1.API) (any, error) {
			v, _, _, err := a.LabelNames(ctx, []string{"up"}, start, now)
			return v, err
		}, seen: func(v any) map[string]bool {
			seen := map[string]bool{}
			for _, n := range v.(model.LabelNames) {
				if ns, ok := markerNamespace[string(n)]; ok {
					seen[ns] = true
				}
			}
			return seen
		}},
		{name: "LabelValues(namespace)", answer: true, own: true, call: func(ctx context.Context, a v1.API) (any, error) {
			v, _, _, err := a.LabelValues(ctx, "namespace", nil, start, now)
			return v, err
		}, seen: func(v any) map[string]bool {
			seen := map[string]bool{}
			for _, s := range v.(model.LabelValues) {
				seen[string(s)] = true
			}
			return seen
		}},
		{name: "LabelValues(job, match[]=up)", answer: true, own: true, call: func(ctx context.Context, a v1.API) (any, error) {
			v, _, _, err := a.LabelValues(ctx, "job", []string{"up"}, start, now)
			return v, err
		}, seen: func(v any) map[string]bool {
			seen := map[string]bool{}
			for _, s := range v.(model.LabelValues) {
				ns, ok := jobNamespace[string(s)]
				if !ok {
					ns = "unknown job " + string(s)
				}
				seen[ns] = true
			}
			return seen
		}},
		{name: "Query", answer: true, own: true, call: func(ctx context.Context, a v1.API) (any, error) {
			v, _, _, err := a.Query(ctx, "up", now)
			return v, err
		}, seen: func(v any) map[string]bool {
			var ls []model.LabelSet
			for _, s := range v.(model.Vector) {
				ls = append(ls, model.LabelSet(s.Metric))
			}
			return nsOfLabelSets(ls...)
		}},
		{name: "QueryRange", answer: true, own: true, call: func(ctx context.Context, a v1.API) (any, error) {
			v, _, _, err := a.QueryRange(ctx, `sum by (namespace, job) (rate(prometheus_http_requests_total[1m]))`,
				v1.Range{Start: now.Add(-time.Minute), End: now, Step: 5 * time.Second})
			return v, err
		}, seen: func(v any) map[string]bool {
			var ls []model.LabelSet
			for _, s := range v.(model.Matrix) {
				ls = append(ls, model.LabelSet(s.Metric))
			}
			return nsOfLabelSets(ls...)
		}},
		{name: "QueryExemplars", answer: true, call: func(ctx context.Context, a v1.API) (any, error) {
			return a.QueryExemplars(ctx, "up", start, now)
		}, seen: func(v any) map[string]bool {
			var ls []model.LabelSet
			for _, e := range v.([]v1.ExemplarQueryResult) {
				ls = append(ls, e.SeriesLabels)
			}
			return nsOfLabelSets(ls...)
		}},
		{name: "Buildinfo", answer: true, call: func(ctx context.Context, a v1.API) (any, error) { return a.Buildinfo(ctx) }},
		{name: "Runtimeinfo", call: func(ctx context.Context, a v1.API) (any, error) { return a.Runtimeinfo(ctx) }},
		{name: "Series", answer: true, own: true, call: func(ctx context.Context, a v1.API) (any, error) {
			v, _, _, err := a.Series(ctx, []string{"up"}, start, now)
			return v, err
		}, seen: func(v any) map[string]bool { return nsOfLabelSets(v.([]model.LabelSet)...) }},
		{name: "Snapshot", call: func(ctx context.Context, a v1.API) (any, error) { return a.Snapshot(ctx, false) }},
		{name: "Rules", answer: true, call: func(ctx context.Context, a v1.API) (any, error) { return a.Rules(ctx, nil) },
			seen: func(v any) map[string]bool {
				seen := map[string]bool{}
				for _, g := range v.(v1.RulesResult).Groups {
					for _, r := range g.Rules {
						if ar, ok := r.(v1.AlertingRule); ok {
							if ar.Name == "E2ETeamBAlwaysFiring" {
								seen[nsTeamB] = true
							}
							for _, al := range ar.Alerts {
								seen[string(al.Labels["namespace"])] = true
							}
						}
					}
				}
				return seen
			}},
		{name: "Targets", call: func(ctx context.Context, a v1.API) (any, error) { return a.Targets(ctx) },
			seen: func(v any) map[string]bool {
				seen := map[string]bool{}
				tr := v.(v1.TargetsResult)
				for _, at := range tr.Active {
					seen[string(at.Labels["namespace"])] = true
					seen[at.DiscoveredLabels["namespace"]] = true
				}
				for _, dt := range tr.Dropped {
					seen[dt.DiscoveredLabels["namespace"]] = true
				}
				return seen
			}},
		{name: "TargetsMetadata", call: func(ctx context.Context, a v1.API) (any, error) {
			return a.TargetsMetadata(ctx, `{job="team-a"}`, "up", "")
		}, seen: func(v any) map[string]bool {
			seen := map[string]bool{}
			for _, m := range v.([]v1.MetricMetadata) {
				ns, ok := jobNamespace[m.Target["job"]]
				if !ok {
					ns = "unknown job " + m.Target["job"]
				}
				seen[ns] = true
			}
			return seen
		}},
		{name: "Metadata", answer: true, call: func(ctx context.Context, a v1.API) (any, error) { return a.Metadata(ctx, "", "") }},
		{name: "TSDB", call: func(ctx context.Context, a v1.API) (any, error) { return a.TSDB(ctx) }},
		{name: "TSDBBlocks", call: func(ctx context.Context, a v1.API) (any, error) { return a.TSDBBlocks(ctx) }},
		{name: "WalReplay", call: func(ctx context.Context, a v1.API) (any, error) { return a.WalReplay(ctx) }},
		{name: "FormatQuery", answer: true, call: func(ctx context.Context, a v1.API) (any, error) {
			return a.FormatQuery(ctx, `sum(rate(up{job="team-a"}[5m]))`)
		}},
	}
}

// TestDropInClientGolang calls every method of client_golang's v1.API as
// team-a and as the admin. Each call is answered, or refused with an error
// in Prometheus' JSON shape: the client returns a *v1.Error with a type and
// a message (not bad_response, its decode failure), and every error body on
// the wire is {"status":"error","errorType":...,"error":...} with
// Content-Type application/json. Answers to team-a carry only team-a's
// namespaces, and every expression the gateway forwarded for team-a is
// confined. The outcome of each method is logged.
func TestDropInClientGolang(t *testing.T) {
	dropinWaitForData(t)
	now := time.Now()
	methods := dropinMethods(now)

	// Every method of the interface is called.
	it := reflect.TypeFor[v1.API]()
	for i := range it.NumMethod() {
		name := it.Method(i).Name
		if !slices.ContainsFunc(methods, func(m dropinMethod) bool {
			return m.name == name || strings.HasPrefix(m.name, name+"(")
		}) {
			t.Errorf("v1.API.%s is not called by this test; add it to dropinMethods", name)
		}
	}

	for _, who := range []caller{callerAdmin, callerTeamA} {
		t.Run(who.name, func(t *testing.T) {
			a, tr := dropinAPI(t, who)
			var summary []string
			for _, m := range methods {
				before := env.rec.count()
				ctx, cancel := context.WithTimeout(context.Background(), requestBudget)
				v, err := m.call(ctx, a)
				cancel()
				exs := tr.take()
				fwd := env.rec.since(before)
				outcome := dropinCheckCall(t, who, m, v, err, exs, fwd)
				summary = append(summary, fmt.Sprintf("%-28s %s", m.name, outcome))
			}
			t.Logf("client_golang v1.API as %s:\n  %s", who.name, strings.Join(summary, "\n  "))
		})
	}
}

// dropinCheckCall checks one client_golang call and returns its outcome for
// the log.
func dropinCheckCall(t *testing.T, who caller, m dropinMethod, v any, err error, exs []dropinExchange, fwd []forwarded) string {
	t.Helper()
	if len(exs) == 0 {
		t.Errorf("%s as %s: no HTTP exchange (error %v)", m.name, who.name, err)
		return "no exchange"
	}
	var wire []string
	for _, e := range exs {
		wire = append(wire, fmt.Sprintf("%s %d", e.method, e.status))
		if e.status >= 400 {
			if _, _, perr := dropinEnvelope(e); perr != nil {
				t.Errorf("%s as %s: NOT DECODABLE: %s: %v", m.name, who.name, e, perr)
			}
		}
	}
	last := exs[len(exs)-1]
	// Whatever reached the upstream for team-a is confined. format_query
	// only pretty-prints the caller's expression and reads no data.
	if who.allowed != nil {
		for _, f := range fwd {
			if f.Path == "/api/v1/format_query" {
				continue
			}
			query, match := f.exprs()
			for _, e := range append(query, match...) {
				if cerr := checkConfined(e, who.allowed); cerr != nil {
					t.Errorf("%s as %s: LEAK upstream: %v", m.name, who.name, cerr)
				}
			}
		}
	}

	if err != nil {
		var apiErr *v1.Error
		switch {
		case !errors.As(err, &apiErr):
			t.Errorf("%s as %s: error %T %v is not a *v1.Error (exchanges: %v)", m.name, who.name, err, err, exs)
			return "FAILED: " + err.Error()
		case apiErr.Type == v1.ErrBadResponse:
			t.Errorf("%s as %s: client could not decode the answer: %v (exchanges: %v)", m.name, who.name, apiErr, exs)
			return "FAILED: " + err.Error()
		case apiErr.Type == "" || apiErr.Msg == "":
			t.Errorf("%s as %s: *v1.Error without type or message: %#v", m.name, who.name, apiErr)
		case last.status < 400:
			t.Errorf("%s as %s: error %v on a %d answer: %s", m.name, who.name, apiErr, last.status, last)
		}
		if m.answer {
			t.Errorf("%s as %s: refused (%v, %s); the gateway serves this route, a drop-in must answer it", m.name, who.name, apiErr, last)
		}
		errType, msg, _ := dropinEnvelope(last)
		return fmt.Sprintf("refused %d %s (%s: %q) [client: %s]", last.status, errType, strings.Join(wire, ", "), msg, apiErr.Type)
	}

	// Answered: a JSON success envelope.
	if last.status/100 != 2 || !strings.HasPrefix(last.ctype, "application/json") {
		t.Errorf("%s as %s: answered without an error but the last exchange is %s", m.name, who.name, last)
	}
	var env struct {
		Status string `json:"status"`
	}
	if jerr := json.Unmarshal(last.body, &env); jerr != nil || env.Status != "success" {
		t.Errorf("%s as %s: answer is not a success envelope: %s", m.name, who.name, last)
	}
	if who.allowed != nil {
		for _, n := range dropinLeakNeedles {
			if bytes.Contains(last.body, []byte(n)) {
				t.Errorf("%s as %s: LEAK: the answer contains %q: %s", m.name, who.name, n, last)
			}
		}
	}
	detail := ""
	if m.seen != nil {
		seen := m.seen(v)
		detail = fmt.Sprintf(", namespaces %v", keys(seen))
		switch {
		case who.allowed != nil:
			for ns := range seen {
				if !slices.Contains(who.allowed, ns) {
					t.Errorf("%s as %s: LEAK: namespace %q outside %v in the answer: %s", m.name, who.name, ns, who.allowed, last)
				}
			}
			if m.own && !seen[who.own] {
				t.Errorf("%s as %s: the caller does not see its own namespace %q (saw %v): %s", m.name, who.name, who.own, keys(seen), last)
			}
		case m.own:
			for _, ns := range []string{nsTeamA, nsTeamB} {
				if !seen[ns] {
					t.Errorf("%s as admin: namespace %q missing (saw %v): %s", m.name, ns, keys(seen), last)
				}
			}
		}
	}
	return fmt.Sprintf("answered %d (%s)%s", last.status, strings.Join(wire, ", "), detail)
}

// ---------------------------------------------------------------------------
// Part 2: Grafana's Prometheus data source.
//
// The request shapes below are rebuilt from Grafana's source (grafana/grafana
// and grafana/grafana-plugin-sdk-go) as read from a code index that returned
// one stored version of each file. Each file is named with the commit of the
// version read; they are not all from one commit, and no release tag is
// claimed for them:
//
//   - pkg/promlib/client/client.go @24d6880ae3f4: QueryRange (query, start,
//     end, step), QueryInstant (query, time = the range's end, not aligned),
//     QueryExemplars (query, start, end; no step), `timeout` only when the
//     data source sets queryTimeout; createQueryRequest: POST sends the
//     values as a form body (Content-Type application/x-www-form-urlencoded),
//     GET in the URL (url.Values.Encode); QueryResource: the frontend's
//     resource URL query is kept verbatim, endpointsSupportOnlyGet go out as
//     GET, the others as POST with the URL query and the frontend's body, and
//     a POST answered 405 or 400 is retried as GET with the body moved into
//     the URL.
//   - pkg/promlib/querydata/request.go @0084c0a57cf1 and
//     pkg/promlib/resource/resource.go @082f560d9cb5: httpMethod defaults to
//     POST in the backend.
//   - pkg/promlib/models/query.go @00aaabde125f: calculatePrometheusInterval
//     (min interval 15s unless set, Calculate with maxDataPoints, the safe
//     interval at 11000 points, the larger wins), $__interval (FormatInterval
//     of the step) and $__rate_interval (max(interval + 15s, 4 * 15s), as a
//     Go duration string), AlignTimeRange (start and end rounded down to a
//     multiple of the step, UTC offset 0).
//   - pkg/promlib/intervalv2/intervalv2.go @1e15b8001f5a: Calculate and
//     CalculateSafeInterval; gtime.RoundInterval from
//     grafana/grafana-plugin-sdk-go backend/gtime/gtime.go @b5f0a9708def.
//   - packages/grafana-data/src/datetime/rangeutil.ts @0aff354e8473:
//     calculateInterval and roundInterval, the frontend interval that the
//     backend receives as the query's interval and bases $__rate_interval on.
//   - pkg/promlib/healthcheck.go @03930ff804ae: the health check is an
//     instant query of `1+1` over the range 1 s to 4 s, so time=4;
//     pkg/promlib/heuristics.go @0c2c8040437d: then
//     api/v1/status/buildinfo as a resource.
//   - pkg/promlib/middleware/custom_query_params_test.go @14ba733fea31 and
//     the middleware it tests (custom_query_params.go, read in the code index
//     without a commit): customQueryParameters are added to the URL query of
//     every request, also a POST whose other values are in the body.
//   - packages/grafana-prometheus/src/datasource.ts @012d362d1934: the
//     frontend's httpMethod defaults to GET; _request appends the values to
//     the URL with encodeURIComponent in insertion order (GET) or sends them
//     as a form (POST); metadataRequest uses httpMethod only for URLs that
//     contain api/v1/query, api/v1/query_range, api/v1/series or
//     api/v1/labels, else GET; loadRules (api/v1/rules) and
//     areExemplarsAvailable (api/v1/query_exemplars, query=test, start and
//     end in milliseconds) at start-up; getTimeRangeParams.
//   - packages/grafana-prometheus/src/resource_clients.ts @039aaf2ce0e4 and
//     constants.ts @29e9d0be03c1: the metric browser's LabelsApiClient
//     (label/__name__/values, labels, label/<name>/values with match[],
//     limit=40000, the range snapped to the minute) and querySeries
//     (series, match[], limit=40000, the range unsnapped);
//     language_utils.ts @11bda4e2c0a5: getRangeSnapInterval (cache level
//     low: start rounded down, end up, to the minute) and getPrometheusTime
//     (Math.ceil of milliseconds / 1000).
//   - packages/grafana-prometheus/src/language_provider.ts @00ebd26e4574:
//     loadMetricsMetadata (api/v1/metadata, no parameters).
//   - packages/grafana-prometheus/src/metric_find_query.ts @0a2110951d33:
//     the variable queries label_values(metric, label) ->
//     label/<label>/values?match[]=metric&start&end, label_values(label),
//     metrics(regex) -> label/__name__/values, query_result(expr) ->
//     query?query&time, and a bare selector -> series?match[]&start&end.
// ---------------------------------------------------------------------------

// grafanaPanelWidth is the panel width in pixels: a panel's maxDataPoints
// defaults to it.
const grafanaPanelWidth = 1000

// Constants of pkg/promlib/models/query.go.
const (
	grafanaMinInterval    = 15 * time.Second // gtime.GetIntervalFrom's default when neither query nor data source sets one
	grafanaSafeResolution = 11000            // safeResolution
)

// grafanaRounding is gtime.RoundInterval (backend, bounds inclusive except
// the last but one) and rangeutil.roundInterval (frontend, bounds
// exclusive): the interval rounded down to a "round" one. In milliseconds.
var grafanaRounding = []struct{ bound, to int64 }{
	{10, 1}, {15, 10}, {35, 20}, {75, 50}, {150, 100}, {350, 200}, {750, 500},
	{1500, 1000}, {3500, 2000}, {7500, 5000}, {12500, 10000}, {17500, 15000},
	{25000, 20000}, {45000, 30000}, {90000, 60000}, {210000, 120000},
	{450000, 300000}, {750000, 600000}, {1050000, 900000}, {1500000, 1200000},
	{2700000, 1800000}, {5400000, 3600000}, {9000000, 7200000},
	{16200000, 10800000}, {32400000, 21600000}, {86400000, 43200000},
	{172800000, 86400000}, {604800000, 86400000}, {1814400000, 604800000},
}

func grafanaRound(d time.Duration, frontend bool) time.Duration {
	ms := float64(d) / float64(time.Millisecond)
	for _, r := range grafanaRounding {
		if ms < float64(r.bound) || (!frontend && ms == float64(r.bound)) {
			return time.Duration(r.to) * time.Millisecond
		}
	}
	if ms < 3628800000 {
		return 2592000000 * time.Millisecond // 30d
	}
	return 31536000000 * time.Millisecond // 1y
}

// grafanaStep is the step the backend sends for a panel of
// grafanaPanelWidth over rng (calculatePrometheusInterval with no min
// interval set: intervalv2 Calculate at maxDataPoints, or the safe interval
// at 11000 points if larger).
func grafanaStep(rng time.Duration) time.Duration {
	calculated := rng / grafanaPanelWidth
	if calculated < grafanaMinInterval {
		calculated = grafanaMinInterval
	} else {
		calculated = grafanaRound(calculated, false)
	}
	safe := grafanaRound(rng/grafanaSafeResolution, false)
	return max(calculated, safe)
}

// grafanaRateInterval is $__rate_interval: the frontend interval
// (rangeutil.calculateInterval at the panel width, at least the data
// source's 15s) plus the 15s scrape interval, at least four scrape
// intervals; formatted as Go's Duration.String.
func grafanaRateInterval(rng time.Duration) string {
	interval := max(grafanaRound(rng/grafanaPanelWidth, true), grafanaMinInterval)
	return max(interval+grafanaMinInterval, 4*grafanaMinInterval).String()
}

// grafanaFormatInterval is gtime.FormatInterval, $__interval's text.
func grafanaFormatInterval(d time.Duration) string {
	const day, year = 24 * time.Hour, 365 * 24 * time.Hour
	switch {
	case d >= year:
		return fmt.Sprintf("%dy", d/year)
	case d >= day:
		return fmt.Sprintf("%dd", d/day)
	case d >= time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d >= time.Second:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// grafanaAlign is AlignTimeRange with a UTC offset of 0.
func grafanaAlign(t time.Time, step time.Duration) time.Time {
	return time.Unix(0, t.UnixNano()/int64(step)*int64(step)).UTC()
}

// grafanaTime is client.go's formatTime.
func grafanaTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.Unix())+float64(t.Nanosecond())/1e9, 'f', -1, 64)
}

// grafanaPromTime is getPrometheusTime: Math.ceil(ms / 1000).
func grafanaPromTime(t time.Time) int64 {
	ms := t.UnixMilli()
	return (ms + 999) / 1000
}

// grafanaSnap is getRangeSnapInterval at the default cache level (low, one
// minute).
func grafanaSnap(from, to time.Time) (string, string) {
	start := grafanaPromTime(from) / 60 * 60
	end := (grafanaPromTime(to) + 59) / 60 * 60
	if start == end {
		end += 60
	}
	return strconv.FormatInt(start, 10), strconv.FormatInt(end, 10)
}

// encodeURIComponent is JavaScript's, which the frontend uses to build
// resource URLs.
func encodeURIComponent(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// grafanaDashboard is a time picker range.
type grafanaDashboard struct {
	name string
	from func(now time.Time) time.Time
}

var grafanaDashboards = []grafanaDashboard{
	{"1h", func(now time.Time) time.Time { return now.Add(-time.Hour) }},
	{"7d", func(now time.Time) time.Time { return now.AddDate(0, 0, -7) }},
	{"90d", func(now time.Time) time.Time { return now.AddDate(0, 0, -90) }},
	{"1y", func(now time.Time) time.Time { return now.AddDate(-1, 0, 0) }},
}

// grafanaPanels are the dashboard's panel queries, as saved (before
// interpolation). sum keeps namespace so that the answer shows whose data
// it is.
var grafanaPanels = []string{
	`up`,
	`sum by (namespace, job) (rate(prometheus_http_requests_total[$__rate_interval]))`,
	`avg_over_time(up[$__interval])`,
}

// grafanaDS is a Prometheus data source's configuration (jsonData).
type grafanaDS struct {
	name string
	// backendMethod is jsonData.httpMethod as pkg/promlib reads it ("" is
	// POST); frontendMethod as datasource.ts reads it ("" is GET).
	backendMethod, frontendMethod string
	custom                        url.Values // customQueryParameters
	timeout                       string     // queryTimeout, sent as `timeout` by client.go
}

var grafanaDataSources = []grafanaDS{
	{name: "defaults", backendMethod: http.MethodPost, frontendMethod: http.MethodGet},
	{name: "GET+nocache", backendMethod: http.MethodGet, frontendMethod: http.MethodGet, custom: url.Values{"nocache": {"1"}}},
	{name: "POST+nocache+timeout", backendMethod: http.MethodPost, frontendMethod: http.MethodPost, custom: url.Values{"nocache": {"1"}}, timeout: "60s"},
}

// grafanaCall is one thing Grafana does, and what its answer must show.
type grafanaCall struct {
	name string
	// data: a query sent by pkg/promlib's query data path (client.go
	// QueryRange, QueryInstant, QueryExemplars).
	data   bool
	path   string
	params [][2]string // in the order the caller builds them
	ex     extractor   // nil: the answer reveals no namespace
	// own: a restricted caller must see its own namespace, the admin team-a
	// and team-b. Off where the data may not reach into the window.
	own bool
	// scalar2: the answer is the scalar 2 (the health check).
	scalar2 bool
}

// queryRequest is client.go's createQueryRequest plus the custom query
// parameters middleware.
func (ds grafanaDS) queryRequest(c grafanaCall) request {
	qv := url.Values{}
	for _, p := range c.params {
		qv.Set(p[0], p[1])
	}
	if ds.timeout != "" && (c.path == "/api/v1/query" || c.path == "/api/v1/query_range") {
		qv.Set("timeout", ds.timeout)
	}
	if ds.backendMethod == http.MethodPost {
		r := request{method: http.MethodPost, path: c.path, form: qv}
		if len(ds.custom) > 0 {
			r.raw = ds.custom.Encode()
		}
		return r
	}
	for k, vs := range ds.custom {
		for _, v := range vs {
			qv.Add(k, v)
		}
	}
	return request{path: c.path, query: qv}
}

// grafanaGetOnly is client.go's endpointsSupportOnlyGet as QueryResource
// matches it: strings.HasPrefix(req.Path, entry). The resource path carries
// no leading slash (heuristics.go asks for "api/v1/status/buildinfo"; the
// frontend's .../resources/api/v1/... arrives the same way, as this test
// reads Grafana), so only the entries written without one match; rules and
// buildinfo then go out as POST, and come back as GET on the 405 that
// Prometheus answers too. Either way Grafana ends with the GET sent here.
var grafanaGetOnly = []string{"api/v1/label/", "api/v1/metadata"}

// grafanaGetAndPost is the frontend's GET_AND_POST_METADATA_ENDPOINTS,
// matched with String.includes.
var grafanaGetAndPost = []string{"api/v1/query", "api/v1/query_range", "api/v1/series", "api/v1/labels"}

// resourceRequests is a frontend metadataRequest through the data source's
// resource endpoint and QueryResource: the first request, and the GET
// QueryResource retries with when the first is a POST answered 405 or 400.
func (ds grafanaDS) resourceRequests(c grafanaCall) (first request, retry request) {
	var raw []string
	form := url.Values{}
	frontendPost := ds.frontendMethod == http.MethodPost && slices.ContainsFunc(grafanaGetAndPost, func(e string) bool { return strings.Contains(c.path, e) })
	for _, p := range c.params {
		if frontendPost {
			form.Add(p[0], p[1])
		} else {
			raw = append(raw, encodeURIComponent(p[0])+"="+encodeURIComponent(p[1]))
		}
	}
	rawQuery := strings.Join(raw, "&")
	// The custom query parameters middleware re-encodes the URL query.
	withCustom := func(rq string) string {
		if len(ds.custom) == 0 {
			return rq
		}
		q, _ := url.ParseQuery(rq)
		for k, vs := range ds.custom {
			for _, v := range vs {
				q.Add(k, v)
			}
		}
		return q.Encode()
	}
	// addBodyToQueryParams: the body's values join the URL's, re-encoded.
	getQuery := rawQuery
	if len(form) > 0 {
		q, _ := url.ParseQuery(rawQuery)
		for k, vs := range form {
			for _, v := range vs {
				q.Add(k, v)
			}
		}
		getQuery = q.Encode()
	}
	get := request{path: c.path, raw: withCustom(getQuery)}
	getOnly := slices.ContainsFunc(grafanaGetOnly, func(e string) bool { return strings.HasPrefix(strings.TrimPrefix(c.path, "/"), e) })
	if ds.backendMethod == http.MethodGet || getOnly {
		return get, request{}
	}
	post := request{method: http.MethodPost, path: c.path, raw: withCustom(rawQuery), ctype: "application/x-www-form-urlencoded"}
	if len(form) > 0 {
		post.form = form
	}
	return post, get
}

// prometheusGetOnly are the routes Prometheus itself serves on GET only,
// where it answers a POST with 405, so that QueryResource's GET retry is
// what Grafana does against Prometheus too.
var prometheusGetOnly = []string{"/api/v1/rules", "/api/v1/alerts", "/api/v1/metadata", "/api/v1/status/buildinfo"}

// grafanaCalls lists what Grafana sends for one dashboard range: the panel
// queries (range, instant, exemplars), the data source's start-up calls, the
// metric browser, the variable queries and the health check.
func grafanaCalls(now time.Time, d grafanaDashboard) []grafanaCall {
	to := now.Truncate(time.Millisecond) // the request's range is in ms
	from := d.from(now).Truncate(time.Millisecond)
	rng := to.Sub(from)
	step := grafanaStep(rng)
	alignedStart, alignedEnd := grafanaAlign(from, step), grafanaAlign(to, step)
	interp := strings.NewReplacer("$__rate_interval", grafanaRateInterval(rng), "$__interval", grafanaFormatInterval(step))
	recent := d.name == "1h" // aligned to 15 s, the range's end still has data

	var calls []grafanaCall
	for i, panel := range grafanaPanels {
		expr := interp.Replace(panel)
		calls = append(calls,
			grafanaCall{name: fmt.Sprintf("panel %d range", i), data: true, path: "/api/v1/query_range", ex: vectorNS, own: recent,
				params: [][2]string{{"query", expr}, {"start", grafanaTime(alignedStart)}, {"end", grafanaTime(alignedEnd)},
					{"step", strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}},
			grafanaCall{name: fmt.Sprintf("panel %d instant", i), data: true, path: "/api/v1/query", ex: vectorNS, own: true,
				params: [][2]string{{"query", expr}, {"time", grafanaTime(to)}}},
			grafanaCall{name: fmt.Sprintf("panel %d exemplars", i), data: true, path: "/api/v1/query_exemplars", ex: exemplarsNS,
				params: [][2]string{{"query", expr}, {"start", grafanaTime(alignedStart)}, {"end", grafanaTime(alignedEnd)}}},
		)
	}

	snapStart, snapEnd := grafanaSnap(from, to)
	start, end := strconv.FormatInt(grafanaPromTime(from), 10), strconv.FormatInt(grafanaPromTime(to), 10)
	const limit = "40000" // DEFAULT_SERIES_LIMIT
	calls = append(calls,
		// datasource.ts init: loadRules, areExemplarsAvailable (times in ms).
		grafanaCall{name: "loadRules", path: "/api/v1/rules", ex: rulesNS},
		grafanaCall{name: "areExemplarsAvailable", path: "/api/v1/query_exemplars", ex: exemplarsNS,
			params: [][2]string{{"query", "test"}, {"start", strconv.FormatInt(now.Add(-30*time.Minute).UnixMilli(), 10)},
				{"end", strconv.FormatInt(now.UnixMilli(), 10)}}},
		// language_provider.ts: loadMetricsMetadata.
		grafanaCall{name: "loadMetricsMetadata", path: "/api/v1/metadata"},
		// resource_clients.ts, the metric browser.
		grafanaCall{name: "browser metric names", path: "/api/v1/label/__name__/values",
			params: [][2]string{{"limit", limit}, {"start", snapStart}, {"end", snapEnd}}},
		grafanaCall{name: "browser label names", path: "/api/v1/labels", ex: labelsNS, own: true,
			params: [][2]string{{"limit", limit}, {"start", snapStart}, {"end", snapEnd}}},
		grafanaCall{name: "browser label names of up", path: "/api/v1/labels", ex: labelsNS, own: true,
			params: [][2]string{{"limit", limit}, {"start", snapStart}, {"end", snapEnd}, {"match[]", `{__name__="up"}`}}},
		grafanaCall{name: "browser job values of up", path: "/api/v1/label/job/values", ex: jobValuesNS, own: true,
			params: [][2]string{{"limit", limit}, {"start", snapStart}, {"end", snapEnd}, {"match[]", `{__name__="up"}`}}},
		grafanaCall{name: "browser namespace values", path: "/api/v1/label/namespace/values", ex: valuesNS, own: true,
			params: [][2]string{{"limit", limit}, {"start", snapStart}, {"end", snapEnd}}},
		grafanaCall{name: "browser series", path: "/api/v1/series", ex: seriesNS, own: true,
			params: [][2]string{{"start", start}, {"end", end}, {"match[]", `{__name__!=""}`}, {"limit", limit}}},
		// metric_find_query.ts, dashboard variables.
		grafanaCall{name: "variable label_values(up, job)", path: "/api/v1/label/job/values", ex: jobValuesNS, own: true,
			params: [][2]string{{"match[]", "up"}, {"start", start}, {"end", end}}},
		grafanaCall{name: "variable label_values(namespace)", path: "/api/v1/label/namespace/values", ex: valuesNS, own: true,
			params: [][2]string{{"start", start}, {"end", end}}},
		grafanaCall{name: "variable metrics(prometheus_http_.*)", path: "/api/v1/label/__name__/values",
			params: [][2]string{{"start", start}, {"end", end}}},
		grafanaCall{name: "variable query_result(count by (namespace) (up))", path: "/api/v1/query", ex: vectorNS, own: true,
			params: [][2]string{{"query", "count by (namespace) (up)"}, {"time", end}}},
		grafanaCall{name: "variable up (series)", path: "/api/v1/series", ex: seriesNS, own: true,
			params: [][2]string{{"match[]", "up"}, {"start", start}, {"end", end}}},
		// healthcheck.go and heuristics.go: Save & test.
		grafanaCall{name: "health check 1+1", data: true, path: "/api/v1/query", scalar2: true,
			params: [][2]string{{"query", "1+1"}, {"time", "4"}}},
		grafanaCall{name: "heuristics buildinfo", path: "/api/v1/status/buildinfo"},
	)
	return calls
}

// rulesNS reads /api/v1/rules: the namespaces of the alerts, and team-b for
// its always-firing alerting rule.
func rulesNS(body []byte) (map[string]bool, error) {
	var d struct {
		Groups []struct {
			Rules []struct {
				Name   string `json:"name"`
				Alerts []struct {
					Labels map[string]string `json:"labels"`
				} `json:"alerts"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := dataOf(body, &d); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, g := range d.Groups {
		for _, r := range g.Rules {
			if r.Name == "E2ETeamBAlwaysFiring" {
				seen[nsTeamB] = true
			}
			for _, a := range r.Alerts {
				seen[a.Labels["namespace"]] = true
			}
		}
	}
	return seen, nil
}

// droppedNocache sums promgate_dropped_params_total for param="nocache" on
// the main gateway's internal listener.
func droppedNocache(t *testing.T) float64 {
	t.Helper()
	resp, err := http.Get("http://" + env.main.internal + "/metrics") //nolint:gosec // G107: the URL of a server this test started on loopback
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "promgate_dropped_params_total{") || !strings.Contains(line, `param="nocache"`) {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		sum += f
	}
	return sum
}

// TestDropInGrafanaStepOracle checks the port of Grafana's interval
// arithmetic against values worked out by hand from the sources above.
func TestDropInGrafanaStepOracle(t *testing.T) {
	for _, tc := range []struct {
		rng      time.Duration
		step     time.Duration
		interval string
		rateIvl  string
	}{
		// 3.6 s per pixel: below the 15s minimum.
		{rng: time.Hour, step: 15 * time.Second, interval: "15s", rateIvl: "1m0s"},
		// 604.8 s per pixel rounds to 10m (<= 750 s).
		{rng: 7 * 24 * time.Hour, step: 10 * time.Minute, interval: "10m", rateIvl: "10m15s"},
		// 7776 s per pixel rounds to 2h (<= 9000 s).
		{rng: 90 * 24 * time.Hour, step: 2 * time.Hour, interval: "2h", rateIvl: "2h0m15s"},
		// 31536 s (31622 s in a leap year) per pixel rounds to 6h (<= 32400 s).
		{rng: 365 * 24 * time.Hour, step: 6 * time.Hour, interval: "6h", rateIvl: "6h0m15s"},
		{rng: 366 * 24 * time.Hour, step: 6 * time.Hour, interval: "6h", rateIvl: "6h0m15s"},
		// 5 minutes: 0.3 s per pixel, the minimum again.
		{rng: 5 * time.Minute, step: 15 * time.Second, interval: "15s", rateIvl: "1m0s"},
	} {
		step := grafanaStep(tc.rng)
		if step != tc.step || grafanaFormatInterval(step) != tc.interval || grafanaRateInterval(tc.rng) != tc.rateIvl {
			t.Errorf("range %v: step %v (%s), $__rate_interval %s; want %v (%s), %s",
				tc.rng, step, grafanaFormatInterval(step), grafanaRateInterval(tc.rng), tc.step, tc.interval, tc.rateIvl)
		}
		if points := int64(tc.rng/step) + 1; points > grafanaSafeResolution {
			t.Errorf("range %v: %d points at step %v, over Prometheus' 11000", tc.rng, points, step)
		}
	}
	if got := encodeURIComponent(`count by (namespace) (up{a="b c"})`); got != `count%20by%20(namespace)%20(up%7Ba%3D%22b%20c%22%7D)` {
		t.Errorf("encodeURIComponent = %s", got)
	}
	if s, e := grafanaSnap(time.Unix(1000, 1e6), time.Unix(1001, 0)); s != "960" || e != "1020" {
		t.Errorf("grafanaSnap = %s, %s; want 960, 1020", s, e)
	}
	if got := grafanaAlign(time.Unix(1000, 5e8), 15*time.Second); got.Unix() != 990 {
		t.Errorf("grafanaAlign = %v, want 990", got.Unix())
	}
}

// TestDropInGrafana sends the requests of Grafana's Prometheus data source,
// for dashboards over the last hour, 7 days, 90 days and a year at the
// automatic step of a 1000 px panel, with three data source configurations
// (the defaults: backend POST, frontend GET; httpMethod GET with
// customQueryParameters nocache=1; httpMethod POST with nocache=1 and
// queryTimeout 60s), as team-a and as the admin. Every request Grafana
// completes gets 200, and team-a's answers and what reached the upstream
// for it are confined to its namespaces. nocache never reaches the upstream
// and is counted in promgate_dropped_params_total.
func TestDropInGrafana(t *testing.T) {
	dropinWaitForData(t)
	now := time.Now()
	droppedBefore := droppedNocache(t)
	nocacheSent := 0

	for _, d := range grafanaDashboards {
		calls := grafanaCalls(now, d)
		rng := now.Sub(d.from(now))
		t.Logf("dashboard %s: step %v, $__interval %s, $__rate_interval %s, %d calls per data source",
			d.name, grafanaStep(rng), grafanaFormatInterval(grafanaStep(rng)), grafanaRateInterval(rng), len(calls))
		for _, ds := range grafanaDataSources {
			for _, who := range []caller{callerAdmin, callerTeamA} {
				t.Run(d.name+"/"+ds.name+"/"+who.name, func(t *testing.T) {
					c := who.client(t)
					var sent []string
					for _, call := range calls {
						var reqs []request
						if call.data {
							reqs = []request{ds.queryRequest(call)}
						} else {
							first, retry := ds.resourceRequests(call)
							reqs = []request{first}
							if retry.path != "" {
								reqs = append(reqs, retry)
							}
						}
						res := c.do(t, reqs[0])
						sent = append(sent, fmt.Sprintf("%s: %s -> %d", call.name, reqs[0], res.status))
						if len(reqs) == 2 && (res.status == http.StatusMethodNotAllowed || res.status == http.StatusBadRequest) {
							// QueryResource's GET retry. Grafana does the same
							// against Prometheus only where Prometheus
							// answers a POST 405.
							if !slices.Contains(prometheusGetOnly, call.path) {
								t.Errorf("%s as %s: %s: Prometheus answers this POST; the gateway's %d makes Grafana retry with GET", call.name, who.name, res, res.status)
							} else if res.status != http.StatusMethodNotAllowed {
								t.Errorf("%s as %s: %s: want 405 as Prometheus answers", call.name, who.name, res)
							} else {
								res.wantEnvelope(t, "bad_data")
							}
							res.wantNotForwarded(t)
							res = c.do(t, reqs[1])
							sent = append(sent, fmt.Sprintf("%s (GET retry): %s -> %d", call.name, reqs[1], res.status))
						}
						if res.status == http.StatusOK && strings.Contains(res.req.String(), "nocache") {
							nocacheSent++
						}
						dropinCheckGrafana(t, who, call, res)
					}
					if who.name == callerAdmin.name && ds.name == "defaults" {
						t.Logf("%s dashboard, data source %s:\n  %s", d.name, ds.name, strings.Join(sent, "\n  "))
					}
				})
			}
		}
	}

	if got := droppedNocache(t) - droppedBefore; got < float64(nocacheSent) {
		t.Errorf("promgate_dropped_params_total{param=\"nocache\"} grew by %v, want at least %d (one per answered request with nocache=1)", got, nocacheSent)
	} else {
		t.Logf("nocache=1 dropped from %d answered requests; promgate_dropped_params_total{param=\"nocache\"} grew by %v", nocacheSent, got)
	}
}

// dropinCheckGrafana checks the answer to one of Grafana's requests.
func dropinCheckGrafana(t *testing.T, who caller, call grafanaCall, res *result) {
	t.Helper()
	if res.status != http.StatusOK {
		t.Errorf("%s as %s: %s: want 200", call.name, who.name, res)
		return
	}
	for _, f := range res.fwd {
		if strings.Contains(f.RequestURI+f.Body, "nocache") {
			t.Errorf("%s as %s: nocache reached the upstream: %s %s %s", call.name, who.name, f.Method, f.RequestURI, f.Body)
		}
		if who.allowed == nil {
			continue
		}
		query, match := f.exprs()
		for _, e := range append(query, match...) {
			if err := checkConfined(e, who.allowed); err != nil {
				t.Errorf("%s as %s: %s: LEAK upstream: %v", call.name, who.name, res.req, err)
			}
		}
	}
	if who.allowed != nil {
		for _, n := range dropinLeakNeedles {
			if bytes.Contains(res.body, []byte(n)) {
				t.Errorf("%s as %s: LEAK: the answer contains %q: %s", call.name, who.name, n, res)
			}
		}
	}
	switch {
	case call.scalar2:
		var d struct {
			ResultType string `json:"resultType"`
			Result     []any  `json:"result"`
		}
		if err := dataOf(res.body, &d); err != nil || d.ResultType != "scalar" || len(d.Result) != 2 || d.Result[1] != "2" {
			t.Errorf("%s as %s: %s: want the scalar 2 (%v)", call.name, who.name, res, err)
		}
	case call.ex == nil:
		var raw json.RawMessage
		if err := dataOf(res.body, &raw); err != nil {
			t.Errorf("%s as %s: %s: %v", call.name, who.name, res, err)
		}
	case who.allowed != nil:
		own := ""
		if call.own {
			own = who.own
		}
		res.checkSeen(t, call.ex, who.allowed, own, nil)
	default:
		var mustSee []string
		if call.own {
			mustSee = []string{nsTeamA, nsTeamB}
		}
		res.checkSeen(t, call.ex, nil, "", mustSee)
	}
}

// TestDropInGrafanaHealthCheckNoAccess: a caller whose group the policy
// gives nothing fails Grafana's "Save & test": the health check's instant
// query of 1+1 at time 4 (healthcheck.go), POST as the backend sends it by
// default and GET, is refused with 403 in Prometheus' JSON shape, nothing
// reaches the upstream, and the message names no group of the policy.
func TestDropInGrafanaHealthCheckNoAccess(t *testing.T) {
	c := newClient(t, env.main, env.pki, "nobody")
	health := grafanaCall{name: "health check 1+1", data: true, path: "/api/v1/query",
		params: [][2]string{{"query", "1+1"}, {"time", "4"}}}
	for _, ds := range grafanaDataSources {
		req := ds.queryRequest(health)
		t.Run(ds.name, func(t *testing.T) {
			res := c.do(t, req)
			res.wantError(t, http.StatusForbidden, "forbidden")
			for _, g := range []string{"admins", "scrapers", "team-a", "team-b"} {
				if strings.Contains(string(res.body), g) {
					t.Errorf("%s: the refusal names the group %q", res, g)
				}
			}
			t.Logf("%s: %d %s", req, res.status, res.body)
		})
	}
}
