package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alecthomas/units"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/demo"
	"github.com/promgate/promgate/promapi"
)

// normalize decodes a query answer and sorts its series by their labels, so
// that two answers compare equal when they hold the same data.
func normalize(t testing.TB, b []byte) any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("answer is not JSON: %v: %.200s", err, b)
	}
	if d, ok := v["data"].(map[string]any); ok {
		if r, ok := d["result"].([]any); ok {
			sort.Slice(r, func(i, j int) bool {
				a, _ := json.Marshal(r[i].(map[string]any)["metric"])
				b, _ := json.Marshal(r[j].(map[string]any)["metric"])
				return string(a) < string(b)
			})
		}
	}
	return v
}

// countingTransport counts the requests it forwards, and the points they
// ask for.
type countingTransport struct {
	next     http.RoundTripper
	requests atomic.Int64
	mu       sync.Mutex
	ranges   [][2]string
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	q := r.URL.Query()
	c.mu.Lock()
	c.ranges = append(c.ranges, [2]string{q.Get("start"), q.Get("end")})
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func testCacheConfig() config.Cache {
	c := config.DefaultCache()
	c.Enabled = true
	c.MaxBytes = 64 * units.MiB
	return c
}

func newRangeReq(t testing.TB, base, query string, start, end time.Time, step time.Duration, hdr http.Header) *http.Request {
	t.Helper()
	v := url.Values{"query": {query}, "start": {formatMillis(start.UnixMilli())}, "end": {formatMillis(end.UnixMilli())},
		"step": {model.Duration(step).String()}}
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/query_range?"+v.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	return req
}

func rcRoundTrip(t testing.TB, rt http.RoundTripper, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

var (
	demoOnce sync.Once
	demoSrv  *httptest.Server
	demoUp   *demo.Upstream
	demoErr  error
)

// demoUpstream is Prometheus' PromQL engine over the demo's synthetic day
// of data, served over HTTP as Prometheus serves it.
func demoUpstream(t testing.TB) (*demo.Upstream, *httptest.Server) {
	t.Helper()
	demoOnce.Do(func() {
		demoUp, demoErr = demo.New(demo.Options{Start: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)})
		if demoErr == nil {
			demoSrv = httptest.NewServer(demoUp.Handler())
		}
	})
	if demoErr != nil {
		t.Fatal(demoErr)
	}
	return demoUp, demoSrv
}

// cacheQueries is every shape of query the results cache must answer as
// the engine does: selectors of every matcher type, ranges, offsets, @ with
// a timestamp, subqueries, aggregations, binary operations, scalars and
// functions whose value depends on the evaluation time.
var cacheQueries = []string{
	`container_cpu_usage_seconds_total`,
	`container_cpu_usage_seconds_total{namespace="team-a"}`,
	`container_cpu_usage_seconds_total{namespace!="team-a",pod=~"api.*"}`,
	`container_cpu_usage_seconds_total{namespace=~"team-.*",pod!~"worker.*"}`,
	`{__name__=~"container_(cpu|memory).*",namespace="team-b"}`,
	`rate(container_cpu_usage_seconds_total{namespace="team-a"}[5m])`,
	`sum by (namespace) (rate(container_cpu_usage_seconds_total[5m]))`,
	`sum by (pod) (rate(container_network_transmit_bytes_total[1m] offset 30m))`,
	`rate(container_cpu_usage_seconds_total[5m] offset -5m)`,
	`container_memory_working_set_bytes @ 1772359200`,
	`rate(container_cpu_usage_seconds_total[10m] @ 1772355600 offset 1h)`,
	`max_over_time(rate(container_cpu_usage_seconds_total[5m])[30m:1m])`,
	`max_over_time(sum(container_memory_working_set_bytes)[1h:2m])`,
	`avg_over_time(container_memory_working_set_bytes[17m:45s] offset 3m)`,
	`topk(3, rate(container_network_transmit_bytes_total[5m]))`,
	`count(up) or vector(0)`,
	`time() - container_memory_working_set_bytes * 0`,
	`scalar(sum(up))`,
	`vector(1)`,
	`absent(nonexistent_metric)`,
	`increase(apiserver_request_total{code=~"4.."}[15m]) > 0`,
	`container_memory_working_set_bytes / on (namespace, pod) group_left kube_pod_owner`,
	`timestamp(container_memory_working_set_bytes)`,
	`changes(kube_ingress_created[1h])`,
	`histogram_quantile(0.9, sum by (le) (rate(nonexistent_bucket[5m])))`,
	`label_replace(up, "x", "$1", "job", "(.*)")`,
}

// TestResultsCacheMatchesEngine asks the engine every query over ranges
// that cross part boundaries, at several steps and grid offsets, with all of
// the range old and with its end inside the freshness limit, directly and
// through the cache twice (cold, then warm): the answers must be equal.
func TestResultsCacheMatchesEngine(t *testing.T) {
	u, srv := demoUpstream(t)
	end0 := u.Scenario().Start()
	type window struct {
		name       string
		start, end time.Time
		step       time.Duration
		now        time.Time
	}
	windows := []window{
		{"2h at 20s, end fresh", end0.Add(-2 * time.Hour), end0, 20 * time.Second, end0.Add(2 * time.Minute)},
		{"70m at 15s, unaligned start", end0.Add(-71*time.Minute - 7*time.Second), end0.Add(-7 * time.Second), 15 * time.Second, end0},
		{"3h at 37s, odd step", end0.Add(-3*time.Hour - 11*time.Second), end0.Add(-20 * time.Minute), 37 * time.Second, end0},
		{"20h at 5m", end0.Add(-20 * time.Hour), end0.Add(-2 * time.Hour), 5 * time.Minute, end0},
	}
	for _, w := range windows {
		t.Run(w.name, func(t *testing.T) {
			ct := &countingTransport{next: http.DefaultTransport}
			c, err := newResultsCache(testCacheConfig(), ct, func() time.Time { return w.now }, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range cacheQueries {
				code, want := rcRoundTrip(t, http.DefaultTransport, (newRangeReq(t, srv.URL, q, w.start, w.end, w.step, nil)))
				if code != http.StatusOK {
					t.Fatalf("%s: direct answer %d: %s", q, code, want)
				}
				for _, pass := range []string{"cold", "warm"} {
					code, got := rcRoundTrip(t, c, (newRangeReq(t, srv.URL, q, w.start, w.end, w.step, nil)))
					if code != http.StatusOK {
						t.Fatalf("%s (%s): cached answer %d: %s", q, pass, code, got)
					}
					if d := cmp.Diff(normalize(t, want), normalize(t, got)); d != "" {
						t.Errorf("%s (%s): cached answer differs from the engine's (-want +got):\n%s", q, pass, d)
					}
				}
			}
			hits := testutil.ToFloat64(c.m.hits.WithLabelValues("memory"))
			if hits == 0 {
				t.Errorf("no part was served from the cache")
			}
			t.Logf("%d upstream requests for %d queries asked twice, %v parts hit, %v missed", ct.requests.Load(), len(cacheQueries), hits, testutil.ToFloat64(c.m.misses))
		})
	}
}

// fakeRange answers query_range with one series per tenant whose value at
// t is t/1000 plus the current version for points after "late": samples
// that are still arriving there. It can add warnings and fail.
type fakeRange struct {
	late     atomic.Int64 // ms; points after it change with version
	version  atomic.Int64
	warn     atomic.Bool
	requests atomic.Int64
}

func (f *fakeRange) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s, err1 := parseFloatMillis(r.Form.Get("start"))
	e, err2 := parseFloatMillis(r.Form.Get("end"))
	step, err3 := promapi.ParseDuration(r.Form.Get("step"))
	if err1 != nil || err2 != nil || err3 != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"bad range"}`)
		return
	}
	tenant := r.Header.Get("X-Scope-OrgID")
	var b strings.Builder
	b.WriteString(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"tenant":"` + tenant + `"},"values":[`)
	first := true
	var hist strings.Builder
	for ts := s; ts <= e; ts += step.Milliseconds() {
		v := float64(ts) / 1000
		if ts > f.late.Load() {
			v += float64(f.version.Load())
		}
		if !first {
			b.WriteByte(',')
			hist.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, `[%s,"%g"]`, formatMillis(ts), v)
		fmt.Fprintf(&hist, `[%s,{"count":"3","sum":"%g","buckets":[[0,"-0.5","0.5","1"],[0,"0.5","1","2"]]}]`, formatMillis(ts), v)
	}
	b.WriteString(`]},{"metric":{"__name__":"h"},"histograms":[` + hist.String() + `]}]}}`)
	if f.warn.Load() {
		s := b.String()
		b.Reset()
		b.WriteString(strings.TrimSuffix(s, "}") + `,"warnings":["something"]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, b.String()) //nolint:errcheck // test server
}

func parseFloatMillis(s string) (int64, error) {
	var f float64
	_, err := fmt.Sscanf(s, "%g", &f)
	return int64(f*1000 + 0.5), err
}

func newFakeCache(t *testing.T, now time.Time) (*fakeRange, *httptest.Server, *resultsCache) {
	t.Helper()
	f := &fakeRange{}
	f.late.Store(now.Add(-5 * time.Minute).UnixMilli())
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := newResultsCache(testCacheConfig(), http.DefaultTransport, func() time.Time { return now }, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return f, srv, c
}

// TestResultsCacheFreshData checks that samples still arriving (newer than
// max_freshness) are always asked of the upstream: the answer changes
// between two requests, and the cached answer follows it.
func TestResultsCacheFreshData(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 34, 56, 0, time.UTC)
	f, srv, c := newFakeCache(t, now)
	start, end := now.Add(-6*time.Hour).Truncate(15*time.Second), now.Truncate(15*time.Second)
	for v := range int64(3) {
		f.version.Store(v)
		_, want := rcRoundTrip(t, http.DefaultTransport, (newRangeReq(t, srv.URL, "x", start, end, 15*time.Second, nil)))
		_, got := rcRoundTrip(t, c, (newRangeReq(t, srv.URL, "x", start, end, 15*time.Second, nil)))
		if d := cmp.Diff(normalize(t, want), normalize(t, got)); d != "" {
			t.Fatalf("version %d: cached answer differs (-want +got):\n%s", v, d)
		}
	}
	if h := testutil.ToFloat64(c.m.hits.WithLabelValues("memory")); h == 0 {
		t.Errorf("hits = 0, want the old parts served from the cache")
	}
}

// TestResultsCacheTenant checks that two upstream requests that differ only
// in their tenant header never share a part.
func TestResultsCacheTenant(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	_, srv, c := newFakeCache(t, now)
	start, end := now.Add(-24*time.Hour), now.Add(-2*time.Hour)
	for range 2 {
		for _, tenant := range []string{"team-a", "team-b"} {
			_, b := rcRoundTrip(t, c, (newRangeReq(t, srv.URL, "x", start, end, time.Minute, http.Header{"X-Scope-Orgid": {tenant}})))
			if strings.Contains(string(b), `"tenant":"team-a"`) != (tenant == "team-a") || !strings.Contains(string(b), `"tenant":"`+tenant+`"`) {
				t.Fatalf("tenant %s got another tenant's answer: %.120s", tenant, b)
			}
		}
	}
}

// TestResultsCacheBypass lists what is sent to the upstream unchanged, and
// checks that an answer with warnings is returned as the upstream gave it
// and never cached.
func TestResultsCacheBypass(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	start, end := now.Add(-24*time.Hour), now.Add(-2*time.Hour)
	for _, tc := range []struct {
		name, query, extra, reason string
	}{
		{"at start", "x @ start()", "", "at_modifier"},
		{"at end", "rate(x[5m] @ end())", "", "at_modifier"},
		{"stats", "x", "&stats=all", "params"},
		{"limit", "x", "&limit=1", "params"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, srv, c := newFakeCache(t, now)
			req := newRangeReq(t, srv.URL, tc.query, start, end, time.Minute, nil)
			req.URL.RawQuery += tc.extra
			rcRoundTrip(t, c, (req))
			rcRoundTrip(t, c, (req))
			if n := f.requests.Load(); n != 2 {
				t.Errorf("upstream requests = %d, want 2 (one per request, unchanged)", n)
			}
			if got := testutil.ToFloat64(c.m.bypassed.WithLabelValues(tc.reason)); got != 2 {
				t.Errorf("bypassed{reason=%q} = %v, want 2", tc.reason, got)
			}
		})
	}
	t.Run("short and fresh", func(t *testing.T) {
		f, srv, c := newFakeCache(t, now)
		rcRoundTrip(t, c, (newRangeReq(t, srv.URL, "x", now.Add(-30*time.Minute), now, 15*time.Second, nil)))
		rcRoundTrip(t, c, (newRangeReq(t, srv.URL, "x", now.Add(-5*time.Hour), now.Add(-4*time.Hour-30*time.Minute), 15*time.Second, nil)))
		if n := f.requests.Load(); n != 2 {
			t.Errorf("upstream requests = %d, want 2", n)
		}
	})
	t.Run("warnings", func(t *testing.T) {
		f, srv, c := newFakeCache(t, now)
		f.warn.Store(true)
		for range 2 {
			_, b := rcRoundTrip(t, c, (newRangeReq(t, srv.URL, "x", start, end, time.Minute, nil)))
			if !strings.Contains(string(b), `"warnings":["something"]`) {
				t.Fatalf("answer lost the upstream's warnings: %.200s", b)
			}
		}
		if got := testutil.ToFloat64(c.m.bypassed.WithLabelValues("answer")); got != 2 {
			t.Errorf("bypassed{reason=answer} = %v, want 2", got)
		}
		if got := testutil.ToFloat64(c.m.hits.WithLabelValues("memory")); got != 0 {
			t.Errorf("hits = %v, want 0: an answer with warnings was cached", got)
		}
	})
	t.Run("upstream error", func(t *testing.T) {
		_, srv, c := newFakeCache(t, now)
		req := newRangeReq(t, srv.URL, "x", start, end, time.Minute, nil)
		q := req.URL.Query()
		q.Set("step", "1m")
		req.URL.RawQuery = q.Encode()
		code, _ := rcRoundTrip(t, c, (req))
		if code != http.StatusOK {
			t.Fatalf("code = %d", code)
		}
	})
}

// TestResultsCachePOST checks that a POST request (Grafana's default) is
// split and answered like a GET.
func TestResultsCachePOST(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f, srv, c := newFakeCache(t, now)
	start, end := now.Add(-24*time.Hour), now.Add(-time.Minute)
	body := url.Values{"query": {"x"}, "start": {formatMillis(start.UnixMilli())}, "end": {formatMillis(end.UnixMilli())}, "step": {"60"}}.Encode()
	post := func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/query_range", strings.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}
	_, want := rcRoundTrip(t, http.DefaultTransport, (post()))
	for range 2 {
		_, got := rcRoundTrip(t, c, (post()))
		if d := cmp.Diff(normalize(t, want), normalize(t, got)); d != "" {
			t.Fatalf("cached answer differs (-want +got):\n%s", d)
		}
	}
	if n := f.requests.Load(); n != 3 {
		t.Errorf("upstream requests = %d, want 3 (direct, the cold fill, the fresh tail)", n)
	}
}

// TestResultsCacheEviction checks the memory bound and the eviction count.
func TestResultsCacheEviction(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := &fakeRange{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := testCacheConfig()
	cfg.MaxBytes = units.MiB
	c, err := newResultsCache(cfg, http.DefaultTransport, func() time.Time { return now }, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		rcRoundTrip(t, c, (newRangeReq(t, srv.URL, fmt.Sprintf("x%d", i), now.Add(-24*time.Hour), now.Add(-time.Hour), time.Minute, nil)))
	}
	if b := testutil.ToFloat64(c.m.bytes); b > float64(units.MiB) || b == 0 {
		t.Errorf("bytes = %v, want between 0 and 1MiB", b)
	}
	if e := testutil.ToFloat64(c.m.evictions); e == 0 {
		t.Errorf("evictions = 0, want some beyond 1MiB")
	}
}

func TestPartPlan(t *testing.T) {
	c := &resultsCache{split: time.Hour, freshness: 10 * time.Minute,
		now: func() time.Time { return time.UnixMilli(36_000_000) }} // 10:00
	rr := &rangeRequest{start: 3_600_000 + 15_000*3 + 7_000, end: 36_000_000, step: 15_000}
	parts := c.plan(rr)
	if len(parts) != 9 {
		t.Fatalf("len(parts) = %d, want 9", len(parts))
	}
	o := int64(7_000)
	for i, p := range parts {
		if (p.start-o)%rr.step != 0 || (p.last-o)%rr.step != 0 {
			t.Errorf("part %d [%d, %d] is off the step grid", i, p.start, p.last)
		}
		if p.last-p.start != 3_600_000-rr.step {
			t.Errorf("part %d is %d ms long", i, p.last-p.start)
		}
		if want := p.start+3_600_000 <= 36_000_000-600_000; p.cacheable != want {
			t.Errorf("part %d cacheable = %v, want %v", i, p.cacheable, want)
		}
	}
	if got := partLength(time.Hour, 7_000); got != 3_605_000 {
		t.Errorf("partLength(1h, 7s) = %d, want 3605000", got)
	}
	if got := partLength(time.Hour, 300_000); got != 18_000_000 {
		t.Errorf("partLength(1h, 5m) = %d, want 60 steps", got)
	}
}

func TestNoCache(t *testing.T) {
	for _, tc := range []struct {
		v    []string
		want bool
	}{
		{nil, false}, {[]string{"no-cache"}, true}, {[]string{"max-age=0, No-Cache"}, true}, {[]string{"no-store"}, false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Cache-Control"] = tc.v
		if got := noCache(r); got != tc.want {
			t.Errorf("noCache(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// TestResultsCacheLargeRange checks that a range near Prometheus' 11,000
// points is fetched in requests that each stay within it, once the parts
// at its ends are widened to whole parts.
func TestResultsCacheLargeRange(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := &fakeRange{}
	f.late.Store(now.UnixMilli())
	var widest atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		s, _ := parseFloatMillis(r.Form.Get("start"))
		e, _ := parseFloatMillis(r.Form.Get("end"))
		step, _ := promapi.ParseDuration(r.Form.Get("step"))
		if n := (e-s)/step.Milliseconds() + 1; n > widest.Load() {
			widest.Store(n)
		}
		f.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := newResultsCache(testCacheConfig(), http.DefaultTransport, func() time.Time { return now }, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	start := now.Add(-72 * time.Hour).Add(-17 * time.Minute).Truncate(30 * time.Second)
	end := start.Add(10999 * 20 * time.Second)
	_, want := rcRoundTrip(t, http.DefaultTransport, newRangeReq(t, srv.URL, "x", start, end, 20*time.Second, nil))
	_, got := rcRoundTrip(t, c, newRangeReq(t, srv.URL, "x", start, end, 20*time.Second, nil))
	if d := cmp.Diff(normalize(t, want), normalize(t, got)); d != "" {
		t.Fatalf("cached answer differs (-want +got):\n%s", d)
	}
	if n := widest.Load(); n > cacheMaxPoints {
		t.Errorf("an upstream request asked for %d points, over %d", n, cacheMaxPoints)
	}
	if b := testutil.ToFloat64(c.m.bypassed.WithLabelValues("answer")); b != 0 {
		t.Errorf("bypassed{reason=answer} = %v, want 0", b)
	}
}

// TestResultsCacheAudited checks what the audit record learns of a cached
// answer: the first request fetches every part, the second reads the
// cacheable ones from the cache and fetches only the fresh one.
func TestResultsCacheAudited(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 34, 56, 0, time.UTC)
	_, srv, c := newFakeCache(t, now)
	start, end := now.Add(-3*time.Hour).Truncate(time.Minute), now.Truncate(time.Minute)
	var got []audit.ResultsCache
	for range 2 {
		st := &state{}
		rcRoundTrip(t, cacheFor{c: c, st: st}, newRangeReq(t, srv.URL, "x", start, end, time.Minute, nil))
		if st.cache == nil {
			t.Fatal("a cache-assembled answer left no results_cache for the audit record")
		}
		got = append(got, *st.cache)
	}
	cold, warm := got[0], got[1]
	if cold.PartsHit != 0 || cold.PartsFetched == 0 {
		t.Errorf("cold: %+v, want every part fetched", cold)
	}
	if warm.PartsHit == 0 || warm.PartsFetched == 0 || warm.PartsHit+warm.PartsFetched != cold.PartsFetched {
		t.Errorf("warm: %+v after cold %+v, want the cacheable parts hit and the fresh one fetched", warm, cold)
	}
	// A request the cache does not take (no-cache comes before it; here a
	// step it cannot split) leaves no trace of it.
	st := &state{}
	rcRoundTrip(t, cacheFor{c: c, st: st}, newRangeReq(t, srv.URL, "x", now.Add(-10*time.Minute), now, time.Minute, nil))
	if st.cache != nil {
		t.Errorf("a request sent on unchanged was recorded as assembled by the cache: %+v", *st.cache)
	}
}
