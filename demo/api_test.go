package demo

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testStart is a fixed scenario start, so that results are reproducible.
var testStart = time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)

// at formats a time 7 s off the sample grid as the API's time parameter.
func at(d time.Duration) string {
	return strconv.FormatFloat(float64(testStart.Add(d).Add(-8*time.Second).UnixMilli())/1000, 'f', 3, 64)
}

// shared is one upstream at testStart for the tests that only read it:
// generating a day of samples is the slow part, under -race especially.
var shared struct {
	once sync.Once
	u    *Upstream
	srv  *httptest.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.u != nil {
		shared.srv.Close()
		_ = shared.u.Close()
	}
	os.Exit(code)
}

func newTestUpstream(t *testing.T) (*Upstream, *httptest.Server) {
	t.Helper()
	shared.once.Do(func() {
		shared.u, shared.err = New(Options{Start: testStart})
		if shared.err == nil {
			shared.srv = httptest.NewServer(shared.u.Handler())
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.u, shared.srv
}

func newTestUpstreamAt(t *testing.T, start time.Time) (*Upstream, *httptest.Server) {
	t.Helper()
	begin := time.Now()
	u, err := New(Options{Start: start})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d series in %v", u.Scenario().NumSeries(), time.Since(begin))
	srv := httptest.NewServer(u.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := u.Close(); err != nil {
			t.Error(err)
		}
	})
	return u, srv
}

type envelopeJSON struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Data      json.RawMessage `json:"data"`
}

func call(t *testing.T, srv *httptest.Server, method, path string, params url.Values) (int, envelopeJSON) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = http.PostForm(srv.URL+path, params)
	} else {
		resp, err = http.Get(srv.URL + path + "?" + params.Encode())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env envelopeJSON
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, b)
	}
	return resp.StatusCode, env
}

type sampleJSON struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
	Values [][]any           `json:"values"`
}

func resultOf(t *testing.T, env envelopeJSON) (string, []sampleJSON) {
	t.Helper()
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(env.Data, &d); err != nil {
		t.Fatalf("data %s: %v", env.Data, err)
	}
	var out []sampleJSON
	if d.ResultType == "vector" || d.ResultType == "matrix" {
		if err := json.Unmarshal(d.Result, &out); err != nil {
			t.Fatalf("result %s: %v", d.Result, err)
		}
	}
	return d.ResultType, out
}

// detectors are the queries of the built-in detectors that the attacks
// must trigger (shared/detectors.md section 1), with the namespaces of the
// samples they must return ("" for cluster-wide samples).
var detectors = []struct {
	id    string
	query string
	ns    []string
}{
	{"pod_cpu_over_one_core", `sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="", image!=""}[5m])) > 1`, []string{"team-a"}},
	{"pod_egress_volume_high", `sum by (namespace, pod) (increase(container_network_transmit_bytes_total{pod!=""}[1h])) > 2e9`, []string{"team-b"}},
	{"k8s_apiserver_unauthorized", `sum by (job, instance, code) (rate(apiserver_request_total{code=~"401|403"}[5m])) > 0.5`, []string{""}},
	{"k8s_sensitive_resource_forbidden", `sum by (resource, subresource, verb) (increase(apiserver_request_total{code="403", resource=~"secrets|serviceaccounts|roles|rolebindings|clusterroles|clusterrolebindings|certificatesigningrequests"}[10m])) > 3
or sum by (resource, subresource, verb) (increase(apiserver_request_total{code="403", resource="pods", subresource=~"exec|attach|portforward|ephemeralcontainers"}[10m])) > 0`, []string{""}},
	{"k8s_new_ingress", `max by (namespace, ingress) (time() - kube_ingress_created) < 600`, []string{"team-b"}},
	{"service_edge_new", `sum by (source_workload_namespace, source_workload, destination_workload_namespace, destination_workload) (rate(istio_requests_total{reporter="destination"}[5m]))
> 0
unless on (source_workload_namespace, source_workload, destination_workload_namespace, destination_workload) sum by (source_workload_namespace, source_workload, destination_workload_namespace, destination_workload) (increase(istio_requests_total{reporter="destination"}[1d] offset 1h)) > 0`, []string{""}},
	{"ingress_404_ratio", `(sum by (host, path) (rate(nginx_ingress_controller_requests{status="404"}[5m])) / sum by (host, path) (rate(nginx_ingress_controller_requests[5m]))) > 0.3
and sum by (host, path) (rate(nginx_ingress_controller_requests[5m])) > 0.2`, []string{""}},
	{"pod_cpu_outlier_in_workload", `(sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="", image!=""}[5m])) * on (namespace, pod) group_left (owner_kind, owner_name) max by (namespace, pod, owner_kind, owner_name) (kube_pod_owner{owner_is_controller="true"}))
> on (namespace, owner_kind, owner_name) group_left 3 * quantile by (namespace, owner_kind, owner_name) (0.5, sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="", image!=""}[5m])) * on (namespace, pod) group_left (owner_kind, owner_name) max by (namespace, pod, owner_kind, owner_name) (kube_pod_owner{owner_is_controller="true"}))
and (sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="", image!=""}[5m])) * on (namespace, pod) group_left (owner_kind, owner_name) max by (namespace, pod, owner_kind, owner_name) (kube_pod_owner{owner_is_controller="true"})) > 0.5`, []string{"team-a"}},
	{"pod_egress_outlier_in_workload", `sum by (namespace, pod) (rate(container_network_transmit_bytes_total{pod!=""}[5m])) * on (namespace, pod) group_left (owner_name, owner_kind) kube_pod_owner
> on (owner_name, owner_kind, namespace) group_left avg by (owner_name, owner_kind, namespace) (sum by (namespace, pod) (rate(container_network_transmit_bytes_total{pod!=""}[5m])) * on (namespace, pod) group_left (owner_name, owner_kind) kube_pod_owner)
+ 3 * stddev by (owner_name, owner_kind, namespace) (sum by (namespace, pod) (rate(container_network_transmit_bytes_total{pod!=""}[5m])) * on (namespace, pod) group_left (owner_name, owner_kind) kube_pod_owner)`, []string{"team-b"}},
}

// TestDetectorsFireOnAttacks checks every attack against the detectors'
// own PromQL: each fires at the start (its "for" duration included) and
// none fires three hours earlier, before any attack began.
func TestDetectorsFireOnAttacks(t *testing.T) {
	_, srv := newTestUpstream(t)
	for _, d := range detectors {
		t.Run(d.id, func(t *testing.T) {
			for _, tc := range []struct {
				when time.Duration
				fire bool
			}{{0, true}, {-15 * time.Minute, d.id != "k8s_new_ingress"}, {-3 * time.Hour, false}} {
				code, env := call(t, srv, http.MethodGet, "/api/v1/query", url.Values{"query": {d.query}, "time": {at(tc.when)}})
				if code != http.StatusOK {
					t.Fatalf("status %d: %s", code, env.Error)
				}
				_, res := resultOf(t, env)
				if (len(res) > 0) != tc.fire {
					t.Errorf("at start%+v: %d samples, want firing=%v: %+v", tc.when, len(res), tc.fire, res)
				}
				if !tc.fire {
					continue
				}
				var ns []string
				for _, s := range res {
					if !slices.Contains(ns, s.Metric["namespace"]) {
						ns = append(ns, s.Metric["namespace"])
					}
				}
				if diff := cmp.Diff(d.ns, ns); diff != "" {
					t.Errorf("namespaces of the firing samples (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestAPIResponses(t *testing.T) {
	_, srv := newTestUpstream(t)
	tests := []struct {
		name       string
		method     string
		path       string
		params     url.Values
		wantCode   int
		wantErr    string // errorType
		wantType   string // resultType of query routes
		wantLen    int    // samples, or -1 to skip
		wantData   string // exact data JSON, when set
		wantSubstr string // in the data JSON, when set
	}{
		{name: "instant vector", path: "/api/v1/query", params: url.Values{"query": {`count by (namespace) (up)`}, "time": {at(0)}},
			wantCode: 200, wantType: "vector", wantLen: 3},
		{name: "instant POST", method: http.MethodPost, path: "/api/v1/query", params: url.Values{"query": {`up{namespace="team-a"}`}, "time": {at(0)}},
			wantCode: 200, wantType: "vector", wantLen: 6},
		{name: "scalar", path: "/api/v1/query", params: url.Values{"query": {`1+1`}, "time": {"100"}},
			wantCode: 200, wantData: `{"resultType":"scalar","result":[100,"2"]}`},
		{name: "empty vector is a list", path: "/api/v1/query", params: url.Values{"query": {`up{namespace="nowhere"}`}, "time": {at(0)}},
			wantCode: 200, wantData: `{"resultType":"vector","result":[]}`},
		{name: "range vector", path: "/api/v1/query", params: url.Values{"query": {`up{pod="web-5d8f7c9b6-x7k2p"}[1m]`}, "time": {at(0)}},
			wantCode: 200, wantType: "matrix", wantLen: 1},
		{name: "subquery without a step", path: "/api/v1/query", params: url.Values{"query": {`max_over_time(up{pod="web-5d8f7c9b6-x7k2p"}[10m:])`}, "time": {at(0)}},
			wantCode: 200, wantType: "vector", wantLen: 1},
		{name: "limit truncates", path: "/api/v1/query", params: url.Values{"query": {`up`}, "time": {at(0)}, "limit": {"2"}},
			wantCode: 200, wantType: "vector", wantLen: 2},
		{name: "parse error", path: "/api/v1/query", params: url.Values{"query": {`sum(`}},
			wantCode: 400, wantErr: "bad_data"},
		{name: "bad time", path: "/api/v1/query", params: url.Values{"query": {`up`}, "time": {"yesterday"}},
			wantCode: 400, wantErr: "bad_data"},
		{name: "execution error", path: "/api/v1/query", params: url.Values{"query": {`label_replace(up, "x", "1", "namespace", "(")`}, "time": {at(0)}},
			wantCode: 422, wantErr: "execution"},
		{name: "range", path: "/api/v1/query_range", params: url.Values{"query": {`sum(rate(apiserver_request_total[5m]))`}, "start": {at(-time.Hour)}, "end": {at(0)}, "step": {"60"}},
			wantCode: 200, wantType: "matrix", wantLen: 1},
		{name: "range end before start", path: "/api/v1/query_range", params: url.Values{"query": {`up`}, "start": {at(0)}, "end": {at(-time.Hour)}, "step": {"60"}},
			wantCode: 400, wantErr: "bad_data"},
		{name: "range zero step", path: "/api/v1/query_range", params: url.Values{"query": {`up`}, "start": {at(-time.Hour)}, "end": {at(0)}, "step": {"0"}},
			wantCode: 400, wantErr: "bad_data"},
		{name: "range too many points", path: "/api/v1/query_range", params: url.Values{"query": {`up`}, "start": {at(-24 * time.Hour)}, "end": {at(0)}, "step": {"1"}},
			wantCode: 400, wantErr: "bad_data"},
		{name: "series", path: "/api/v1/series", params: url.Values{"match[]": {`kube_ingress_info`}},
			wantCode: 200, wantLen: -1, wantSubstr: `"ingress":"backdoor"`},
		{name: "series needs match", path: "/api/v1/series", params: url.Values{},
			wantCode: 400, wantErr: "bad_data"},
		{name: "series refuses empty matchers", path: "/api/v1/series", params: url.Values{"match[]": {`{namespace=~".*"}`}},
			wantCode: 400, wantErr: "bad_data"},
		{name: "labels", path: "/api/v1/labels", params: url.Values{"match[]": {`kube_ingress_info`}},
			wantCode: 200, wantData: `["__name__","ingress","ingressclass","job","namespace"]`},
		{name: "label values", path: "/api/v1/label/namespace/values", params: url.Values{"match[]": {`up`}},
			wantCode: 200, wantData: `["kube-system","team-a","team-b"]`},
		{name: "label values limit", path: "/api/v1/label/namespace/values", params: url.Values{"match[]": {`up`}, "limit": {"1"}},
			wantCode: 200, wantData: `["kube-system"]`},
		{name: "exemplars", path: "/api/v1/query_exemplars", params: url.Values{"query": {`up`}},
			wantCode: 200, wantData: `[]`},
		{name: "exemplars bad query", path: "/api/v1/query_exemplars", params: url.Values{"query": {`up{`}},
			wantCode: 400, wantErr: "bad_data"},
		{name: "recording rules only", path: "/api/v1/rules", params: url.Values{"type": {"record"}},
			wantCode: 200, wantSubstr: `"type":"recording"`},
		{name: "rules bad type", path: "/api/v1/rules", params: url.Values{"type": {"nope"}},
			wantCode: 400, wantErr: "bad_data"},
		{name: "alerts", path: "/api/v1/alerts", params: url.Values{},
			wantCode: 200, wantSubstr: `"alertname":"PodCPUOverOneCore"`},
		{name: "metadata", path: "/api/v1/metadata", params: url.Values{"metric": {"container_cpu_usage_seconds_total"}},
			wantCode: 200, wantData: `{"container_cpu_usage_seconds_total":[{"type":"counter","help":"Cumulative cpu time consumed in seconds.","unit":"seconds"}]}`},
		{name: "metadata limit", path: "/api/v1/metadata", params: url.Values{"limit": {"0"}},
			wantCode: 200, wantData: `{}`},
		{name: "buildinfo", path: "/api/v1/status/buildinfo", params: url.Values{},
			wantCode: 200, wantSubstr: `"revision":"promgate-demo"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			code, env := call(t, srv, method, tc.path, tc.params)
			if code != tc.wantCode || env.ErrorType != tc.wantErr {
				t.Fatalf("status %d %q (%s), want %d %q", code, env.ErrorType, env.Error, tc.wantCode, tc.wantErr)
			}
			if tc.wantErr != "" {
				if env.Status != "error" || env.Error == "" {
					t.Errorf("error envelope %+v", env)
				}
				return
			}
			if env.Status != "success" {
				t.Errorf("status %q", env.Status)
			}
			if tc.wantData != "" && string(env.Data) != tc.wantData {
				t.Errorf("data %s, want %s", env.Data, tc.wantData)
			}
			if tc.wantSubstr != "" && !strings.Contains(string(env.Data), tc.wantSubstr) {
				t.Errorf("data %s lacks %s", env.Data, tc.wantSubstr)
			}
			if tc.wantType != "" {
				typ, res := resultOf(t, env)
				if typ != tc.wantType || tc.wantLen >= 0 && len(res) != tc.wantLen {
					t.Errorf("%s with %d results, want %s with %d: %s", typ, len(res), tc.wantType, tc.wantLen, env.Data)
				}
			}
		})
	}
}

func TestUnknownPath(t *testing.T) {
	_, srv := newTestUpstream(t)
	for _, p := range []string{"/api/v1/admin/tsdb/delete_series", "/api/v1/write", "/api/v1/status/config", "/"} {
		resp, err := http.Post(srv.URL+p, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 404 or 405", p, resp.StatusCode)
		}
	}
}

// TestFederateAndLiveSamples appends live samples past the history and
// checks that federate serves the newest one in the text format.
func TestFederateAndLiveSamples(t *testing.T) {
	u, srv := newTestUpstreamAt(t, time.Now().Add(-10*time.Minute))
	resp, err := http.Get(srv.URL + "/federate?" + url.Values{"match[]": {`kube_ingress_info{namespace="team-b"}`}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The history ended ten minutes ago, so nothing is within the lookback
	// of now.
	if resp.StatusCode != 200 || len(bytes.TrimSpace(b)) != 0 {
		t.Fatalf("federate before live samples: %d %q", resp.StatusCode, b)
	}
	if err := u.tick(time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(srv.URL + "/federate?" + url.Values{"match[]": {`kube_ingress_info{namespace="team-b"}`}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) == 3 && !strings.HasPrefix(l, "#") {
			lines = append(lines, f[0])
		}
	}
	want := []string{
		`kube_ingress_info{ingress="api",ingressclass="nginx",job="kube-state-metrics",namespace="team-b"}`,
		`kube_ingress_info{ingress="backdoor",ingressclass="nginx",job="kube-state-metrics",namespace="team-b"}`,
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("federated series (-want +got):\n%s\n%s", diff, b)
	}
	code, env := call(t, srv, http.MethodGet, "/api/v1/query", url.Values{"query": {`count(up)`}})
	if _, res := resultOf(t, env); code != 200 || len(res) != 1 {
		t.Errorf("query at now after live samples: %d %s", code, env.Data)
	}
	if err := u.tick(time.Now()); err != nil {
		t.Errorf("a second tick in the same step: %v", err)
	}
}

// TestOpenMetricsMatchesStorage checks that WriteOpenMetrics writes exactly
// the samples the upstream appended.
func TestOpenMetricsMatchesStorage(t *testing.T) {
	u, srv := newTestUpstream(t)
	var buf bytes.Buffer
	if err := u.Scenario().WriteOpenMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	n := 0
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		n++
		i := strings.LastIndexByte(l, ' ')
		ts := l[i+1:]
		if ts != strconv.FormatFloat(float64(testStart.UnixMilli())/1000, 'f', 3, 64) {
			continue
		}
		j := strings.LastIndexByte(l[:i], ' ')
		want[l[:j]] = l[j+1 : i]
	}
	if n < u.Scenario().NumSeries()*5000 {
		t.Errorf("%d samples, want about %d per series", n, int(History/Step))
	}
	code, env := call(t, srv, http.MethodGet, "/api/v1/query", url.Values{"query": {`{job!=""}`}, "time": {strconv.FormatInt(testStart.Unix(), 10)}})
	_, res := resultOf(t, env)
	if code != 200 {
		t.Fatal(code)
	}
	got := map[string]string{}
	for _, s := range res {
		name := s.Metric["__name__"]
		var kv []string
		for k, v := range s.Metric {
			if k != "__name__" {
				kv = append(kv, k+"="+strconv.Quote(v))
			}
		}
		sort.Strings(kv)
		f, _ := strconv.ParseFloat(s.Value[1].(string), 64)
		got[name+"{"+strings.Join(kv, ",")+"}"] = strconv.FormatFloat(f, 'g', -1, 64)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("samples at the start, OpenMetrics (-) vs TSDB (+):\n%s", diff)
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "localhost:0", "192.0.2.1:0"} {
		if ln, err := Listen(addr); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) succeeded", addr)
		}
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

func TestScenarioDeterministic(t *testing.T) {
	// The first few MiB cover whole series over the whole day; writing all of
	// it twice takes half a minute under -race.
	a, b := &prefixWriter{max: 4 << 20}, &prefixWriter{max: 4 << 20}
	_ = NewScenario(testStart).WriteOpenMetrics(a)
	_ = NewScenario(testStart.Add(5 * time.Second)).WriteOpenMetrics(b)
	if a.buf.Len() < 1<<20 || !bytes.Equal(a.buf.Bytes(), b.buf.Bytes()) {
		t.Errorf("the same start (within a step) gave different samples (%d and %d bytes compared)", a.buf.Len(), b.buf.Len())
	}
}

// prefixWriter keeps the first max bytes, then fails to stop the writer.
type prefixWriter struct {
	buf bytes.Buffer
	max int
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		return 0, errors.New("enough")
	}
	return w.buf.Write(p)
}
