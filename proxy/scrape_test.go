package proxy

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/config"
)

const (
	scrapeText = `# HELP requests_total Requests.
# TYPE requests_total counter
requests_total{namespace="a",code="200"} 10
requests_total{namespace="b",code="200"} 20
requests_total{code="500"} 1
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{namespace="b",le="1"} 1
latency_seconds_bucket{namespace="b",le="+Inf"} 2
latency_seconds_sum{namespace="b"} 3
latency_seconds_count{namespace="b"} 2
latency_seconds_bucket{namespace="a",le="1"} 4
latency_seconds_bucket{namespace="a",le="+Inf"} 5
latency_seconds_sum{namespace="a"} 6
latency_seconds_count{namespace="a"} 5
`
	scrapeTextFilteredA = `# HELP requests_total Requests.
# TYPE requests_total counter
requests_total{code="200",namespace="a"} 10
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{le="1.0",namespace="a"} 4
latency_seconds_bucket{le="+Inf",namespace="a"} 5
latency_seconds_sum{namespace="a"} 6
latency_seconds_count{namespace="a"} 5
`
	scrapeOM = `# TYPE requests counter
requests_total{namespace="a"} 10 # {trace_id="t-a"} 1 1700000000.5
requests_total{namespace="b"} 20 # {trace_id="t-b"} 1
# EOF
`
	scrapeOMFilteredA = `# TYPE requests counter
requests_total{namespace="a"} 10 # {trace_id="t-a"} 1 1700000000.5005
# EOF
`
	textType    = "text/plain; version=0.0.4; charset=utf-8"
	omType      = "application/openmetrics-text; version=1.0.0; charset=utf-8"
	promAccept  = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	protoAccept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.9," + promAccept
)

// fakeExporter answers scrapes with a configured body and records every
// request.
type fakeExporter struct {
	mu      sync.Mutex
	reqs    []*http.Request
	status  int
	ctype   string
	body    string
	gzipAll bool          // gzip even when not asked to
	badGzip bool          // claim gzip, send garbage
	delay   time.Duration // before answering
	chunked bool          // no Content-Length
	srv     *httptest.Server
}

func newFakeExporter(t testing.TB) *fakeExporter {
	e := &fakeExporter{status: http.StatusOK, ctype: textType, body: scrapeText}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.reqs = append(e.reqs, r)
		status, ctype, body, gz, delay, chunked := e.status, e.ctype, e.body, e.gzipAll, e.delay, e.chunked
		bad := e.badGzip
		e.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		b := []byte(body)
		if gz || strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			var zb bytes.Buffer
			zw := gzip.NewWriter(&zb)
			_, _ = zw.Write(b)
			_ = zw.Close()
			b = zb.Bytes()
			w.Header().Set("Content-Encoding", "gzip")
		}
		if bad {
			b = append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, b...)
			w.Header().Set("Content-Encoding", "gzip")
		}
		w.Header().Set("Content-Type", ctype)
		if !chunked {
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		}
		w.WriteHeader(status)
		if chunked {
			for len(b) > 0 {
				n := min(len(b), 4096)
				_, _ = w.Write(b[:n])
				w.(http.Flusher).Flush()
				b = b[n:]
			}
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *fakeExporter) set(f func(e *fakeExporter)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e)
}

func (e *fakeExporter) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.reqs)
}

func (e *fakeExporter) last() *http.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reqs[len(e.reqs)-1]
}

// scrapeFixture is a sidecar gateway in front of two fake exporters: node
// at /metrics (upstream.url) and app at /app/metrics with its own token.
type scrapeFixture struct {
	*fixture
	node, app *fakeExporter
}

func newScrapeFixture(t testing.TB, edit func(*config.Config)) *scrapeFixture {
	t.Helper()
	f := &scrapeFixture{fixture: newFixture(t), node: newFakeExporter(t), app: newFakeExporter(t)}
	tokenFile := filepath.Join(t.TempDir(), "app-token")
	if err := os.WriteFile(tokenFile, []byte("app-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Upstream.Kind = config.KindMetrics
	cfg.Upstream.URL = f.node.srv.URL + "/metrics"
	cfg.Upstream.Exporters = []config.Exporter{{Path: "/app/metrics", URL: f.app.srv.URL + "/custom/path", BearerTokenFile: tokenFile}}
	cfg.Limits.RequestsPerSecond = 0
	if edit != nil {
		edit(cfg)
	}
	mtls, err := authn.NewMTLS(cfg.Authn.MTLS)
	if err != nil {
		t.Fatal(err)
	}
	f.h, err = New(Options{
		Config:        cfg,
		Authn:         authn.Chain{mtls},
		Authz:         f.dec,
		Audit:         f.aud,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer:    prometheus.NewRegistry(),
		UpstreamToken: func() string { return "node-secret" },
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *scrapeFixture) lastRecord(t testing.TB) (route string, status int, errText string, enforced []string) {
	t.Helper()
	f.aud.mu.Lock()
	defer f.aud.mu.Unlock()
	if len(f.aud.records) == 0 {
		t.Fatal("no audit record")
	}
	r := f.aud.records[len(f.aud.records)-1]
	return r.Route, r.Status, r.Error, r.EnforcedQuery
}

func gunzip(t testing.TB, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestScrapePassThrough checks an unrestricted scrape: the exporter's
// bytes, status and headers as they are (gzip not decompressed), the
// scrape headers forwarded, the gateway's token sent and nothing else of
// the client's.
func TestScrapePassThrough(t *testing.T) {
	f := newScrapeFixture(t, nil)
	w := f.do(t, request{target: "/metrics", user: "root", header: map[string]string{
		"Accept": protoAccept, "Accept-Encoding": "gzip", "User-Agent": "Prometheus/2.42.0",
		"X-Prometheus-Scrape-Timeout-Seconds": "10", "Authorization": "Bearer client-token", "Cookie": "c=1", "X-Scope-OrgID": "x",
	}})
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if got := w.Header().Get("Content-Encoding"); got != "gzip" {
		t.Errorf("Content-Encoding %q, want gzip passed through", got)
	}
	if got := gunzip(t, w.Body.Bytes()); got != scrapeText {
		t.Errorf("body %q, want the exporter's", got)
	}
	if got := w.Header().Get("Content-Type"); got != textType {
		t.Errorf("Content-Type %q", got)
	}
	r := f.node.last()
	want := map[string]string{
		"Accept": protoAccept, "Accept-Encoding": "gzip", "User-Agent": "Prometheus/2.42.0",
		"X-Prometheus-Scrape-Timeout-Seconds": "10", "Authorization": "Bearer node-secret",
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("exporter got %s %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"Cookie", "X-Scope-Orgid"} {
		if v := r.Header.Get(k); v != "" {
			t.Errorf("exporter got %s %q", k, v)
		}
	}
	if r.URL.Path != "/metrics" || r.URL.RawQuery != "" {
		t.Errorf("exporter got %s", r.URL)
	}
	if route, status, _, enforced := f.lastRecord(t); route != RouteScrape || status != 200 || enforced != nil {
		t.Errorf("audit route %q status %d enforced %q", route, status, enforced)
	}
}

// TestScrapeFiltered checks a restricted scrape in both formats, plain and
// gzip: only namespace a, with its metadata and exemplars, in the format
// and encoding the client negotiated.
func TestScrapeFiltered(t *testing.T) {
	tests := []struct {
		name           string
		ctype, body    string
		acceptEncoding string
		gzipAll        bool
		want           string
	}{
		{name: "text", ctype: textType, body: scrapeText, want: scrapeTextFilteredA},
		{name: "text gzip", ctype: textType, body: scrapeText, acceptEncoding: "gzip", want: scrapeTextFilteredA},
		{name: "openmetrics exemplars", ctype: omType, body: scrapeOM, want: scrapeOMFilteredA},
		{name: "openmetrics gzip", ctype: omType, body: scrapeOM, acceptEncoding: "gzip, deflate", want: scrapeOMFilteredA},
		{name: "gzip unasked, client without gzip", ctype: textType, body: scrapeText, gzipAll: true, want: scrapeTextFilteredA},
		{name: "gzip refused with q=0", ctype: textType, body: scrapeText, acceptEncoding: "gzip;q=0", want: scrapeTextFilteredA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newScrapeFixture(t, nil)
			f.node.set(func(e *fakeExporter) { e.ctype, e.body, e.gzipAll = tc.ctype, tc.body, tc.gzipAll })
			hdr := map[string]string{"Accept": protoAccept}
			if tc.acceptEncoding != "" {
				hdr["Accept-Encoding"] = tc.acceptEncoding
			}
			w := f.do(t, request{target: "/metrics", user: "alice", header: hdr})
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			clientGzip := acceptsGzip([]string{tc.acceptEncoding})
			got := w.Body.String()
			if clientGzip {
				if w.Header().Get("Content-Encoding") != "gzip" {
					t.Fatalf("Content-Encoding %q, want gzip", w.Header().Get("Content-Encoding"))
				}
				got = gunzip(t, w.Body.Bytes())
			} else if ce := w.Header().Get("Content-Encoding"); ce != "" {
				t.Fatalf("Content-Encoding %q for a client without gzip", ce)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("filtered body (-want +got):\n%s", diff)
			}
			if ct := w.Header().Get("Content-Type"); ct != tc.ctype {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if cl := w.Header().Get("Content-Length"); cl != fmt.Sprint(w.Body.Len()) {
				t.Errorf("Content-Length %q for %d bytes", cl, w.Body.Len())
			}
			r := f.node.last()
			if a := r.Header.Get("Accept"); a != promAccept {
				t.Errorf("exporter got Accept %q, want protobuf removed: %q", a, promAccept)
			}
			wantAE := ""
			if clientGzip {
				wantAE = "gzip"
			}
			if ae := r.Header.Get("Accept-Encoding"); ae != wantAE {
				t.Errorf("exporter got Accept-Encoding %q, want %q", ae, wantAE)
			}
			route, status, _, enforced := f.lastRecord(t)
			if route != RouteScrape || status != 200 || !cmp.Equal(enforced, []string{`{namespace="a"}`}) {
				t.Errorf("audit route %q status %d enforced %q", route, status, enforced)
			}
		})
	}
}

// TestScrapeRefusals checks the answers that must not reach the exporter,
// or must not pass its body on, and their audit records.
func TestScrapeRefusals(t *testing.T) {
	tests := []struct {
		name       string
		rq         request
		exporter   func(*fakeExporter)
		cfg        func(*config.Config)
		status     int
		errType    string
		msg        string
		forwarded  bool
		auditError string
	}{
		{name: "no certificate", rq: request{target: "/metrics"}, status: 401, errType: "unauthorized", msg: "authentication required"},
		{name: "policy denies", rq: request{target: "/metrics", user: "mallory"}, status: 403, errType: "forbidden", msg: "access denied for mallory"},
		{name: "unknown path", rq: request{target: "/node/metrics", user: "root"}, status: 404, errType: "not_found"},
		{name: "trailing slash", rq: request{target: "/metrics/", user: "root"}, status: 404, errType: "not_found"},
		{name: "encoded path", rq: request{target: "/app%2Fmetrics", user: "root"}, status: 404, errType: "not_found"},
		{name: "API path", rq: request{target: "/api/v1/query?query=up", user: "root"}, status: 404, errType: "not_found"},
		{name: "query string", rq: request{target: "/metrics?target=10.0.0.1", user: "root"}, status: 400, errType: "bad_data", msg: "query parameters are not forwarded"},
		{name: "POST", rq: request{method: "POST", target: "/metrics", user: "root"}, status: 405, errType: "bad_data"},
		{name: "malformed exposition, restricted", rq: request{target: "/metrics", user: "alice"},
			exporter: func(e *fakeExporter) { e.body = "requests_total{namespace=\"a\"} 1\nbroken{namespace=\"a\" 2\n" },
			status:   502, errType: "unavailable", msg: "exposition is malformed", forwarded: true, auditError: "malformed upstream response"},
		{name: "corrupt gzip, restricted", rq: request{target: "/metrics", user: "alice", header: map[string]string{"Accept-Encoding": "gzip"}},
			exporter: func(e *fakeExporter) { e.badGzip = true },
			status:   502, errType: "unavailable", msg: "gzip body is corrupt", forwarded: true},
		{name: "protobuf answer, restricted", rq: request{target: "/metrics", user: "alice"},
			exporter: func(e *fakeExporter) {
				e.ctype = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
			},
			status: 502, errType: "unavailable", msg: "format cannot be filtered", forwarded: true},
		{name: "exporter error, restricted", rq: request{target: "/metrics", user: "alice"},
			exporter: func(e *fakeExporter) { e.status = 500; e.body = "secret namespace b failed" },
			status:   502, errType: "unavailable", msg: "the exporter answered HTTP 500", forwarded: true},
		{name: "over the cap, restricted", rq: request{target: "/metrics", user: "alice"},
			cfg:    func(c *config.Config) { c.Upstream.MaxScrapeBody = 100 },
			status: 502, errType: "unavailable", msg: "larger than the gateway's limit", forwarded: true},
		{name: "gzip bomb over the cap, restricted", rq: request{target: "/metrics", user: "alice", header: map[string]string{"Accept-Encoding": "gzip"}},
			exporter: func(e *fakeExporter) { e.body = strings.Repeat("# padding comment line\n", 50000) },
			cfg:      func(c *config.Config) { c.Upstream.MaxScrapeBody = 64 << 10 },
			status:   502, errType: "unavailable", msg: "larger than the gateway's limit", forwarded: true},
		{name: "over the cap with length, unrestricted", rq: request{target: "/metrics", user: "root"},
			cfg:    func(c *config.Config) { c.Upstream.MaxScrapeBody = 100 },
			status: 502, errType: "unavailable", msg: "larger than the gateway's limit", forwarded: true},
		{name: "exporter error, unrestricted passes", rq: request{target: "/metrics", user: "root"},
			exporter: func(e *fakeExporter) { e.status = 503; e.body = "collector failed" },
			status:   503, forwarded: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newScrapeFixture(t, tc.cfg)
			if tc.exporter != nil {
				f.node.set(tc.exporter)
			}
			w := f.do(t, tc.rq)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.errType != "" {
				typ, msg := errorBody(t, w)
				if typ != tc.errType || !strings.Contains(msg, tc.msg) {
					t.Errorf("error %s %q, want %s containing %q", typ, msg, tc.errType, tc.msg)
				}
				if strings.Contains(w.Body.String(), "namespace") || strings.Contains(w.Body.String(), "127.0.0.1") {
					t.Errorf("error body leaks the exposition or the exporter: %s", w.Body)
				}
			}
			if got := f.node.count() + f.app.count(); (got > 0) != tc.forwarded {
				t.Errorf("exporter requests %d, want forwarded %v", got, tc.forwarded)
			}
			_, status, errText, _ := f.lastRecord(t)
			if status != tc.status || !strings.Contains(errText, tc.auditError) {
				t.Errorf("audit status %d error %q, want %d with %q", status, errText, tc.status, tc.auditError)
			}
		})
	}
}

// TestScrapeCutOff checks that an unrestricted response without a length
// that grows past the cap is cut off: the handler aborts the connection
// (http.ErrAbortHandler) after auditing, so the client cannot take a
// truncated exposition for a complete one.
func TestScrapeCutOff(t *testing.T) {
	f := newScrapeFixture(t, func(c *config.Config) { c.Upstream.MaxScrapeBody = 10 << 10 })
	f.node.set(func(e *fakeExporter) { e.chunked = true; e.body = strings.Repeat("m 1\n", 20<<10) })
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler { //nolint:errorlint // a recovered panic value, compared by identity as net/http does
				t.Errorf("recovered %v, want http.ErrAbortHandler", p)
			}
		}()
		f.do(t, request{target: "/metrics", user: "root"})
	}()
	_, _, errText, _ := f.lastRecord(t)
	if !strings.Contains(errText, "larger than upstream.max_scrape_body") {
		t.Errorf("audit error %q", errText)
	}
}

// TestScrapeTimeout checks that Prometheus' scrape timeout caps the
// exporter's deadline.
func TestScrapeTimeout(t *testing.T) {
	f := newScrapeFixture(t, nil)
	f.node.set(func(e *fakeExporter) { e.delay = 5 * time.Second })
	start := time.Now()
	w := f.do(t, request{target: "/metrics", user: "root", header: map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "0.2"}})
	if w.Code != http.StatusGatewayTimeout {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("answered after %v, want about 0.2 s", d)
	}
	for _, bad := range []string{"0", "-1", "NaN", "abc", "1e9"} {
		if _, ok := scrapeTimeout(bad); ok {
			t.Errorf("scrapeTimeout(%q) accepted", bad)
		}
	}
}

// TestScrapeSecondExporter checks the per-path table: /app/metrics goes to
// its own URL with its own token, restricted callers filtered there too.
func TestScrapeSecondExporter(t *testing.T) {
	f := newScrapeFixture(t, nil)
	w := f.do(t, request{target: "/app/metrics", user: "alice"})
	if w.Code != http.StatusOK || w.Body.String() != scrapeTextFilteredA {
		t.Fatalf("status %d body %q", w.Code, w.Body)
	}
	r := f.app.last()
	if r.URL.Path != "/custom/path" || r.Header.Get("Authorization") != "Bearer app-secret" {
		t.Errorf("app exporter got %s with Authorization %q", r.URL.Path, r.Header.Get("Authorization"))
	}
	if f.node.count() != 0 {
		t.Errorf("node exporter got %d requests", f.node.count())
	}
}

func TestFilterableAccept(t *testing.T) {
	tests := []struct{ in, want string }{
		{protoAccept, promAccept},
		{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "text/plain;version=0.0.4"},
		{"", "text/plain;version=0.0.4"},
		{"application/openmetrics-text;version=2.0.0,text/plain;version=1.0.0;escaping=allow-utf-8", "text/plain;version=1.0.0;escaping=allow-utf-8"},
	}
	for _, tc := range tests {
		if got := filterableAccept(tc.in); got != tc.want {
			t.Errorf("filterableAccept(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// BenchmarkScrape compares one scrape of a ~1 MB exposition directly from
// the exporter with the same scrape through the gateway, unrestricted
// (pass-through) and filtered, and reports the ratio to the direct scrape.
func BenchmarkScrape(b *testing.B) {
	var body strings.Builder
	for i := 0; body.Len() < 1<<20; i++ {
		fmt.Fprintf(&body, "node_cpu_seconds_total{cpu=\"%d\",mode=\"idle\",namespace=\"%s\"} %d.5\n", i, []string{"a", "b", "c", "d"}[i%4], i)
	}
	f := newScrapeFixture(b, nil)
	f.node.set(func(e *fakeExporter) { e.body = body.String() })
	f.h.tel = newTelemetry(prometheus.NewRegistry(), time.Now)
	direct := func() {
		req, _ := http.NewRequest(http.MethodGet, f.node.srv.URL+"/metrics", nil)
		// As the gateway asks: no transparent gzip from the client.
		req.Header.Set("Accept-Encoding", "identity")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	through := func(user string) {
		w := f.do(b, request{target: "/metrics", user: user})
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
	var tDirect, tPass, tFilter time.Duration
	for b.Loop() {
		s := time.Now()
		direct()
		tDirect += time.Since(s)
		s = time.Now()
		through("root")
		tPass += time.Since(s)
		s = time.Now()
		through("alice")
		tFilter += time.Since(s)
	}
	b.ReportMetric(float64(tDirect.Nanoseconds())/float64(b.N), "ns/direct")
	b.ReportMetric(float64(tPass.Nanoseconds())/float64(b.N), "ns/passthrough")
	b.ReportMetric(float64(tFilter.Nanoseconds())/float64(b.N), "ns/filtered")
	b.ReportMetric(float64(tPass)/float64(tDirect), "passthrough/direct")
	b.ReportMetric(float64(tFilter)/float64(tDirect), "filtered/direct")
}
