package detect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/config"
)

const testCatalog = `
detectors:
- id: slow
  title: slow
  description: fires after 2m
  severity: warning
  attack: [T1110]
  sources: [app]
  scope: ns
  for: 2m
  expr: 'slow_metric > 0'
  summary: 'slow on {{ $labels.instance }}'
  runbook: look at it
  test:
    fire: {description: f, eval: 5m, series: [{series: 'slow_metric{instance="a"}', values: '1x5'}], alerts: [{instance: a}]}
    benign: {description: b, eval: 5m, series: [{series: 'slow_metric{instance="a"}', values: '0x5'}]}
- id: fast
  title: fast
  description: fires at once
  severity: critical
  attack: []
  sources: [app]
  scope: cluster
  for: 0m
  expr: 'fast_metric > 0'
  summary: 'fast on {{ $labels.instance }}'
  runbook: act now
  test:
    fire: {description: f, eval: 5m, series: [{series: 'fast_metric{instance="a"}', values: '1x5'}], alerts: [{instance: a}]}
    benign: {description: b, eval: 5m, series: [{series: 'fast_metric{instance="a"}', values: '0x5'}]}
`

// fakeQuerier answers each query from a table that the test changes between
// ticks, and records what it was asked.
type fakeQuerier struct {
	mu      sync.Mutex
	answers map[string]model.Vector
	fail    error
	asked   []string
}

func (f *fakeQuerier) Query(_ context.Context, q string, _ time.Time) (model.Vector, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, q)
	if f.fail != nil {
		return nil, f.fail
	}
	return f.answers[q], nil
}

func (f *fakeQuerier) set(answers map[string]model.Vector, fail error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers, f.fail = answers, fail
}

func vec(metric string, lbls ...string) model.Vector {
	m := model.Metric{model.MetricNameLabel: model.LabelValue(metric)}
	for i := 0; i+1 < len(lbls); i += 2 {
		m[model.LabelName(lbls[i])] = model.LabelValue(lbls[i+1])
	}
	return model.Vector{{Metric: m, Value: 1}}
}

// fakeAlertmanager records every POST /api/v2/alerts and can be told to fail.
type fakeAlertmanager struct {
	mu    sync.Mutex
	posts [][]amAlert
	fail  bool
	srv   *httptest.Server
}

func newFakeAlertmanager(t *testing.T) *fakeAlertmanager {
	am := &fakeAlertmanager{}
	am.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		am.mu.Lock()
		defer am.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/am/api/v2/alerts" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		if am.fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var batch []amAlert
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		am.posts = append(am.posts, batch)
	}))
	t.Cleanup(am.srv.Close)
	return am
}

func (am *fakeAlertmanager) last() []amAlert {
	am.mu.Lock()
	defer am.mu.Unlock()
	if len(am.posts) == 0 {
		return nil
	}
	return am.posts[len(am.posts)-1]
}

func (am *fakeAlertmanager) count() int {
	am.mu.Lock()
	defer am.mu.Unlock()
	return len(am.posts)
}

type sentAlert struct {
	Name, Instance string
	Starts, Ends   time.Duration // from t0
}

func summarize(batch []amAlert, t0 time.Time) []sentAlert {
	var out []sentAlert
	for _, a := range batch {
		out = append(out, sentAlert{string(a.Labels[model.AlertNameLabel]), string(a.Labels["instance"]), a.StartsAt.Sub(t0), a.EndsAt.Sub(t0)})
	}
	return out
}

func TestEvaluator(t *testing.T) {
	cat, err := parseCatalog([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	am := newFakeAlertmanager(t)
	q := &fakeQuerier{}
	reg := prometheus.NewPedanticRegistry()
	e, err := NewEvaluator(config.Detectors{
		Enabled: true, Interval: model.Duration(time.Minute),
		AlertmanagerURL: am.srv.URL + "/am", ExternalURL: "https://promgate.example/",
	}, cat, q, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	e.now = func() time.Time { return now }
	ctx := context.Background()
	tick := func() { e.Tick(ctx); now = now.Add(time.Minute) }

	// Every detector is exported at 0 before the first evaluation.
	if err := testutil.CollectAndCompare(reg, strings.NewReader(`
# HELP promgate_detector_firing Number of firing alerts of each built-in detector, as evaluated by the gateway.
# TYPE promgate_detector_firing gauge
promgate_detector_firing{detector="fast",severity="critical"} 0
promgate_detector_firing{detector="slow",severity="warning"} 0
# HELP promgate_detector_evaluation_failures_total Detector evaluations that failed because the upstream query failed.
# TYPE promgate_detector_evaluation_failures_total counter
promgate_detector_evaluation_failures_total{detector="fast"} 0
promgate_detector_evaluation_failures_total{detector="slow"} 0
`), "promgate_detector_firing", "promgate_detector_evaluation_failures_total"); err != nil {
		t.Fatal(err)
	}
	if got := e.State()["slow"].State; got != StateUnknown {
		t.Errorf("state before the first evaluation = %q, want unknown", got)
	}

	both := map[string]model.Vector{
		"slow_metric > 0": vec("slow_metric", "instance", "a"),
		"fast_metric > 0": vec("fast_metric", "instance", "b"),
	}
	// t0: fast fires at once, slow is pending.
	q.set(both, nil)
	tick()
	want := []sentAlert{{"fast", "b", 0, 4 * time.Minute}}
	if diff := gocmp.Diff(want, summarize(am.last(), t0)); diff != "" {
		t.Errorf("push at t0 (-want +got):\n%s", diff)
	}
	if st := e.State()["slow"]; st.State != StatePending || st.Active != 1 || st.Firing != 0 {
		t.Errorf("slow at t0 = %+v, want pending", st)
	}
	first := am.last()[0]
	wantFirst := amAlert{
		Labels: model.LabelSet{"alertname": "fast", "detector": "fast", "severity": "critical", "technique": "none", "instance": "b"},
		Annotations: map[string]string{
			"summary": "fast on b", "description": "fires at once", "runbook": "act now",
		},
		StartsAt: t0, EndsAt: t0.Add(4 * time.Minute),
		GeneratorURL: "https://promgate.example/api/promgate/v1/detectors/fast",
	}
	if diff := gocmp.Diff(wantFirst, first); diff != "" {
		t.Errorf("first alert (-want +got):\n%s", diff)
	}

	// t0+1m: still pending; fast re-sent with a later endsAt.
	tick()
	want = []sentAlert{{"fast", "b", 0, 5 * time.Minute}}
	if diff := gocmp.Diff(want, summarize(am.last(), t0)); diff != "" {
		t.Errorf("push at t0+1m (-want +got):\n%s", diff)
	}
	// t0+2m: slow has been active for 2m and fires.
	tick()
	if st := e.State()["slow"]; st.State != StateFiring || st.Firing != 1 {
		t.Errorf("slow at t0+2m = %+v, want firing", st)
	}
	want = []sentAlert{{"fast", "b", 0, 6 * time.Minute}, {"slow", "a", 2 * time.Minute, 6 * time.Minute}}
	if diff := gocmp.Diff(want, summarize(am.last(), t0)); diff != "" {
		t.Errorf("push at t0+2m (-want +got):\n%s", diff)
	}

	// t0+3m: the upstream fails. Nothing resolves, the failures are
	// counted, and the firing alerts are re-sent.
	q.set(nil, errors.New("connection refused"))
	tick()
	want = []sentAlert{{"fast", "b", 0, 7 * time.Minute}, {"slow", "a", 2 * time.Minute, 7 * time.Minute}}
	if diff := gocmp.Diff(want, summarize(am.last(), t0)); diff != "" {
		t.Errorf("push during an upstream failure (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(e.failures.WithLabelValues("slow")); got != 1 {
		t.Errorf("failures{slow} = %v, want 1", got)
	}
	if st := e.State()["slow"]; st.State != StateFiring || st.LastError == "" || strings.Contains(st.LastError, "connection refused") {
		t.Errorf("slow during the failure = %+v, want still firing with a generic error", st)
	}

	// t0+4m: slow's series is gone: resolved with endsAt = now. Alertmanager
	// is down, so the resolution is kept and re-sent.
	q.set(map[string]model.Vector{"fast_metric > 0": vec("fast_metric", "instance", "b")}, nil)
	am.mu.Lock()
	am.fail = true
	am.mu.Unlock()
	posts := am.count()
	tick()
	if am.count() != posts {
		t.Errorf("a failed push was recorded")
	}
	if got := testutil.ToFloat64(e.notifyFailures); got != 1 {
		t.Errorf("notification failures = %v, want 1", got)
	}
	am.mu.Lock()
	am.fail = false
	am.mu.Unlock()
	tick()
	want = []sentAlert{{"fast", "b", 0, 9 * time.Minute}, {"slow", "a", 2 * time.Minute, 4 * time.Minute}}
	if diff := gocmp.Diff(want, summarize(am.last(), t0)); diff != "" {
		t.Errorf("push after the resolution (-want +got):\n%s", diff)
	}
	// Delivered: the resolved alert is not sent again.
	tick()
	want = []sentAlert{{"fast", "b", 0, 10 * time.Minute}}
	if diff := gocmp.Diff(want, summarize(am.last(), t0)); diff != "" {
		t.Errorf("push after delivery (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(e.firing.WithLabelValues("slow", "warning")); got != 0 {
		t.Errorf("firing{slow} = %v, want 0", got)
	}
	if got := testutil.ToFloat64(e.firing.WithLabelValues("fast", "critical")); got != 1 {
		t.Errorf("firing{fast} = %v, want 1", got)
	}
	if st := e.State()["slow"]; st.State != StateInactive || st.LastError != "" {
		t.Errorf("slow after resolution = %+v, want inactive", st)
	}
}

func TestEvaluatorRunStopsAndSurvivesFailures(t *testing.T) {
	cat := mustLoad(t)
	q := &fakeQuerier{fail: errors.New("upstream down")}
	e, err := NewEvaluator(config.Detectors{Enabled: true, Interval: model.Duration(time.Second)}, cat, q, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q.mu.Lock()
		n := len(q.asked)
		q.mu.Unlock()
		if n >= len(cat.List()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d queries after 10s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for id, st := range e.State() {
		if st.State != StateUnknown || st.LastError == "" {
			t.Errorf("%s = %+v, want unknown with an error", id, st)
		}
	}
}

func TestNewEvaluatorRefuses(t *testing.T) {
	cat := mustLoad(t)
	q := &fakeQuerier{}
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name string
		cfg  config.Detectors
		want string
	}{
		{"zero interval", config.Detectors{}, "at least 1s"},
		{"bad alertmanager", config.Detectors{Interval: model.Duration(time.Minute), AlertmanagerURL: "ftp://am"}, "not an http or https URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewEvaluator(tc.cfg, cat, q, log, prometheus.NewRegistry())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewEvaluator = %v, want %q", err, tc.want)
			}
		})
	}
	reg := prometheus.NewRegistry()
	if _, err := NewEvaluator(config.Detectors{Interval: model.Duration(time.Minute)}, cat, q, log, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEvaluator(config.Detectors{Interval: model.Duration(time.Minute)}, cat, q, log, reg); err == nil {
		t.Error("a second evaluator registered the same metrics")
	}
}

func TestEvaluate(t *testing.T) {
	cat := mustLoad(t)
	confine := func(q string) (string, error) { return "confined(" + q + ")", nil }
	tests := []struct {
		name     string
		id       string
		rewrite  func(string) (string, error)
		fail     error
		wantKind Kind
		wantErr  string
		wantSent string
	}{
		{name: "ns detector confined", id: "pod_cpu_over_one_core", rewrite: confine},
		{name: "cluster detector unrestricted", id: "k8s_new_cluster_admin_binding"},
		{name: "cluster detector restricted", id: "k8s_new_cluster_admin_binding", rewrite: confine, wantKind: Forbidden, wantErr: "scope cluster"},
		{name: "ns* detector restricted", id: "ingress_404_ratio", rewrite: confine, wantKind: Forbidden, wantErr: "scope ns*"},
		{name: "absent detector restricted", id: "security_sensor_down", rewrite: confine, wantKind: Forbidden, wantErr: "absent()"},
		{name: "unknown detector", id: "nope", wantKind: NotFound, wantErr: `no detector "nope"`},
		{name: "upstream failure", id: "pod_cpu_over_one_core", fail: errors.New("dial tcp 10.0.0.1:9090: refused"), wantKind: Upstream, wantErr: "upstream query failed"},
		{name: "rewrite refuses", id: "pod_cpu_over_one_core", rewrite: func(string) (string, error) { return "", errRewrite }, wantErr: "enforce detector"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := &fakeQuerier{fail: tc.fail}
			d, _ := cat.Get(tc.id)
			q.answers = map[string]model.Vector{d.Expr: vec("x", "namespace", "shop"), "confined(" + d.Expr + ")": vec("x", "namespace", "team-a")}
			got, err := cat.Evaluate(context.Background(), tc.id, tc.rewrite, q)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Evaluate = %v, want error %q", err, tc.wantErr)
				}
				var de *Error
				if tc.wantKind != 0 && (!errors.As(err, &de) || de.Kind != tc.wantKind) {
					t.Fatalf("Evaluate error %v is not an *Error of kind %v", err, tc.wantKind)
				}
				if tc.wantKind == Upstream && strings.Contains(de.Msg, "10.0.0.1") {
					t.Errorf("caller-facing message %q names the upstream", de.Msg)
				}
				if tc.wantKind == 0 && !errors.Is(err, errRewrite) {
					t.Errorf("rewrite error not wrapped: %v", err)
				}
				if tc.wantKind == Forbidden && len(q.asked) != 0 {
					t.Errorf("a refused detector queried the upstream: %v", q.asked)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantQuery := d.Expr
			if tc.rewrite != nil {
				wantQuery = "confined(" + d.Expr + ")"
			}
			if diff := gocmp.Diff([]string{wantQuery}, q.asked); diff != "" {
				t.Errorf("queries sent (-want +got):\n%s", diff)
			}
			if len(got) != 1 {
				t.Errorf("Evaluate returned %v", got)
			}
		})
	}
}

var errRewrite = errors.New("query can only match outside the allowed namespaces")

func TestSummaries(t *testing.T) {
	cat := mustLoad(t)
	s := cat.Summaries(nil)
	if len(s) != len(cat.List()) || s[0].State != nil {
		t.Fatalf("Summaries(nil): %d entries, first state %v", len(s), s[0].State)
	}
	s = cat.Summaries(map[string]State{"failed_login_spike": {State: StateFiring, Active: 2, Firing: 1}})
	if s[0].State == nil || s[0].State.State != StateFiring || s[1].State.State != StateUnknown {
		t.Errorf("Summaries(state) = %+v, %+v", s[0].State, s[1].State)
	}
	b, err := json.Marshal(s[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"id":"failed_login_spike"`, `"for":"2m"`, `"scope":"cluster"`, `"restricted_ok":false`, `"query":`, `"runbook":`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("summary JSON %s lacks %s", b, k)
		}
	}
}

func TestHTTPQuerier(t *testing.T) {
	var gotForm, gotHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		gotForm = r.PostForm.Get("query") + "@" + r.PostForm.Get("time")
		gotHeader = r.Header.Get("X-Scope-OrgID")
		switch r.PostForm.Get("query") {
		case "vector":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000000,"1"]}]}}`)
		case "empty":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		case "scalar":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"1"]}}`)
		case "bad":
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, `<html>proxy error</html>`)
		}
	}))
	defer srv.Close()
	q := NewHTTPQuerier(srv.URL+"/", nil, http.Header{"X-Scope-OrgID": {"tenant-1"}})
	ts := time.Unix(1700000000, 500_000_000)
	got, err := q.Query(context.Background(), "vector", ts)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Metric["job"] != "a" || got[0].Value != 1 {
		t.Errorf("vector = %v", got)
	}
	if gotForm != "vector@1700000000.500" || gotHeader != "tenant-1" {
		t.Errorf("request form %q header %q", gotForm, gotHeader)
	}
	if got, err := q.Query(context.Background(), "empty", ts); err != nil || got == nil || len(got) != 0 {
		t.Errorf("empty = %v, %v; want an empty non-nil vector", got, err)
	}
	for query, want := range map[string]string{
		"scalar": `"scalar" result`,
		"bad":    "bad_data: parse error",
		"html":   "without a Prometheus API envelope",
	} {
		if _, err := q.Query(context.Background(), query, ts); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Query(%q) = %v, want %q", query, err, want)
		}
	}
}
