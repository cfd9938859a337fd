//go:build e2e

package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// forwarded is one request that reached the recording proxy, that is, the
// upstream.
type forwarded struct {
	Method     string
	RequestURI string
	Path       string
	URLQuery   url.Values
	Form       url.Values // the parsed body, for form POSTs
	Body       string
	Header     http.Header
}

// recorder is a reverse proxy in front of Prometheus that keeps every request
// it sees.
type recorder struct {
	url string
	srv *httptest.Server

	mu   sync.Mutex
	reqs []forwarded
	// slowMarker, when set, holds back every request whose URL query or
	// body contains it for slowDelay before Prometheus sees it, so that
	// requests can overlap in flight.
	slowMarker string
}

// slowDelay is how long the recorder holds back a request with slowMarker.
const slowDelay = 700 * time.Millisecond

func newRecorder(target string) (*recorder, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readAll(r.Body)
		if err != nil {
			http.Error(w, "recorder: read body", http.StatusBadRequest)
			return
		}
		f := forwarded{
			Method:     r.Method,
			RequestURI: r.RequestURI,
			Path:       r.URL.Path,
			URLQuery:   r.URL.Query(),
			Body:       string(body),
			Header:     r.Header.Clone(),
		}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			f.Form, _ = url.ParseQuery(string(body))
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, f)
		marker := rec.slowMarker
		rec.mu.Unlock()
		if marker != "" && (strings.Contains(r.URL.RawQuery, marker) || strings.Contains(string(body), marker)) {
			time.Sleep(slowDelay)
		}
		r.Body = httpBody(body)
		r.ContentLength = int64(len(body))
		rp.ServeHTTP(w, r)
	}))
	rec.url = rec.srv.URL
	return rec, nil
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

func (rec *recorder) since(n int) []forwarded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.reqs[n:])
}

func (rec *recorder) all() []forwarded { return rec.since(0) }

type bodyReader struct{ *bytes.Reader }

func (bodyReader) Close() error { return nil }

func httpBody(b []byte) bodyReader { return bodyReader{bytes.NewReader(b)} }

// exchange is one response a client got from a gateway's public listener.
type exchange struct {
	Method string
	Status int
}

// exchangeLog counts the requests that got a response, that is, that passed
// the TLS handshake and that the gateway must have audited.
type exchangeLog struct {
	mu   sync.Mutex
	list []exchange
}

func (l *exchangeLog) add(e exchange) {
	l.mu.Lock()
	l.list = append(l.list, e)
	l.mu.Unlock()
}

func (l *exchangeLog) all() []exchange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.list)
}

// countingTransport logs every response of a gateway.
type countingTransport struct {
	gw   *gateway
	base http.RoundTripper
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil {
		c.gw.log.add(exchange{Method: r.Method, Status: resp.StatusCode})
	}
	return resp, err
}

// client is a caller of one gateway with one client certificate (or none).
type client struct {
	name string
	gw   *gateway
	hc   *http.Client
}

var (
	clientsMu sync.Mutex
	clients   = map[string]*client{}
)

// clientTLS is a client's TLS configuration: it trusts caDir's ca.crt and,
// unless name is empty, presents the certificate client-<name> of certDir.
func clientTLS(t testing.TB, caDir, certDir, name string) *tls.Config {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(caDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in", filepath.Join(caDir, "ca.crt"))
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if name != "" {
		cert, err := tls.LoadX509KeyPair(
			filepath.Join(certDir, "client-"+name+".crt"),
			filepath.Join(certDir, "client-"+name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc
}

// newClient returns a client of gw presenting the certificate client-<name>
// from pkiDir; an empty name presents no certificate. Clients are cached so
// that tests reuse connections.
func newClient(t testing.TB, gw *gateway, pkiDir, name string) *client {
	t.Helper()
	key := gw.name + "|" + pkiDir + "|" + name
	clientsMu.Lock()
	defer clientsMu.Unlock()
	if c, ok := clients[key]; ok {
		return c
	}
	tr := &http.Transport{TLSClientConfig: clientTLS(t, env.pki, pkiDir, name), MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	c := &client{
		name: name,
		gw:   gw,
		hc: &http.Client{
			Transport: countingTransport{gw: gw, base: tr},
			Timeout:   requestBudget,
			// A redirect is an answer to check, never to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	clients[key] = c
	return c
}

// request describes one call to the gateway's public listener.
type request struct {
	method string     // GET when empty
	path   string     // sent byte for byte
	query  url.Values // the URL query
	raw    string     // a verbatim URL query, instead of query
	form   url.Values // a form body (POST)
	body   string     // a raw body, with contentType
	ctype  string
	header map[string][]string // sent with the keys exactly as written
}

func (r request) String() string {
	m := r.method
	if m == "" {
		m = http.MethodGet
	}
	s := m + " " + r.path
	if q := r.rawQuery(); q != "" {
		s += "?" + q
	}
	if r.form != nil {
		s += " body " + r.form.Encode()
	}
	if r.body != "" {
		s += fmt.Sprintf(" body %q (%s)", r.body, r.ctype)
	}
	return s
}

func (r request) rawQuery() string {
	if r.raw != "" {
		return r.raw
	}
	return r.query.Encode()
}

// result is the gateway's answer and what reached the upstream meanwhile.
type result struct {
	req    request
	status int
	header http.Header
	body   []byte
	fwd    []forwarded
}

// forbiddenUpstreamHeaders must never reach the upstream: the client's
// credentials, session, tenant and identity headers, which a component
// behind the gateway could believe (see "Tenant and identity header
// spoofing" in docs/threat-model.md). Keys compare case-insensitively with
// "_" as "-".
var forbiddenUpstreamHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "X-Id-Token",
	"X-Scope-OrgID", "Thanos-Tenant", "X-Prom-Label-Policy",
	"X-Forwarded-User", "X-Remote-User", "X-Auth-Request-Email", "X-Auth-Request-User",
	"X-HTTP-Method-Override",
}

func headerForbidden(k string) bool {
	k = strings.ReplaceAll(k, "_", "-")
	for _, f := range forbiddenUpstreamHeaders {
		if strings.EqualFold(k, f) {
			return true
		}
	}
	return false
}

// do sends req and returns the answer. It fails the test on a transport
// error, and whenever a forbidden header reaches the upstream.
func (c *client) do(t testing.TB, req request) *result {
	t.Helper()
	res, err := c.try(req)
	if err != nil {
		t.Fatalf("%s as %s: %v", req, c.label(), err)
	}
	for _, f := range res.fwd {
		for k := range f.Header {
			if headerForbidden(k) {
				t.Errorf("%s as %s: header %s reached the upstream", req, c.label(), k)
			}
		}
	}
	return res
}

func (c *client) label() string {
	if c.name == "" {
		return "anonymous"
	}
	return c.name
}

// try sends req and returns the transport error, if any, instead of failing.
func (c *client) try(req request) (*result, error) {
	method := req.method
	if method == "" {
		method = http.MethodGet
	}
	u := &url.URL{Scheme: "https", Host: c.gw.addr, Opaque: req.path, RawQuery: req.rawQuery()}
	var body *bytes.Reader
	ctype := req.ctype
	switch {
	case req.form != nil:
		body = bytes.NewReader([]byte(req.form.Encode()))
		if ctype == "" {
			ctype = "application/x-www-form-urlencoded"
		}
	case req.body != "":
		body = bytes.NewReader([]byte(req.body))
	}
	var hr *http.Request
	var err error
	if body != nil {
		hr, err = http.NewRequest(method, "https://"+c.gw.addr+"/", body)
	} else {
		hr, err = http.NewRequest(method, "https://"+c.gw.addr+"/", nil)
	}
	if err != nil {
		return nil, err
	}
	hr.URL = u
	if ctype != "" {
		hr.Header.Set("Content-Type", ctype)
	}
	for k, vs := range req.header {
		hr.Header[k] = vs
	}
	before := env.rec.count()
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := readAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode >= 400 {
		errorBodies.add(b)
	}
	return &result{req: req, status: resp.StatusCode, header: resp.Header, body: b, fwd: env.rec.since(before)}, nil
}

// errorBodies keeps every error body the suite received, for the leak check
// after the suite.
var errorBodies bodyLog

type bodyLog struct {
	mu   sync.Mutex
	list [][]byte
}

func (l *bodyLog) add(b []byte) {
	l.mu.Lock()
	l.list = append(l.list, slices.Clone(b))
	l.mu.Unlock()
}

func (l *bodyLog) all() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.list)
}

func (r *result) String() string {
	b := r.body
	if len(b) > 300 {
		b = append(b[:300:300], "..."...)
	}
	return fmt.Sprintf("%s: status %d, body %s", r.req, r.status, b)
}

// wantError checks Prometheus' error envelope with the status and errorType,
// and that nothing reached the upstream.
func (r *result) wantError(t testing.TB, status int, errType string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: want status %d", r, status)
		return
	}
	r.wantEnvelope(t, errType)
	r.wantNotForwarded(t)
}

// wantEnvelope checks the JSON error shape of DESIGN.md "Errors".
func (r *result) wantEnvelope(t testing.TB, errType string) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", r, ct)
	}
	var e apiResponse
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Errorf("%s: not a JSON error envelope: %v", r, err)
		return
	}
	if e.Status != "error" || e.ErrorType != errType || e.Error == "" {
		t.Errorf("%s: want {status: error, errorType: %s, error: <message>}", r, errType)
	}
}

func (r *result) wantNotForwarded(t testing.TB) {
	t.Helper()
	if len(r.fwd) != 0 {
		t.Errorf("%s: forwarded upstream as %s, want not forwarded", r, r.fwd[0].RequestURI)
	}
}

// exprs returns every PromQL expression the upstream reads from f: `query`
// and `match[]`, from the URL and from the body.
func (f forwarded) exprs() (query, match []string) {
	query = append(slices.Clone(f.URLQuery["query"]), f.Form["query"]...)
	match = append(slices.Clone(f.URLQuery["match[]"]), f.Form["match[]"]...)
	return query, match
}

// checkConfined checks that every selector of expr has a matcher on
// namespace that can only match allowed values: an equality with an allowed
// value, or a regex that is an alternation of allowed literals.
func checkConfined(expr string, allowed []string) error {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return fmt.Errorf("forwarded query %q does not parse: %w", expr, err)
	}
	sels := parser.ExtractSelectors(e)
	for _, ms := range sels {
		ok := false
		for _, m := range ms {
			if m.Name == "namespace" && matcherConfined(m.Type.String(), m.Value, allowed) {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("forwarded query %q has a selector %v not confined to %v", expr, ms, allowed)
		}
	}
	return nil
}

func matcherConfined(op, value string, allowed []string) bool {
	switch op {
	case "=":
		return slices.Contains(allowed, value)
	case "=~":
		v := strings.TrimSuffix(strings.TrimPrefix(value, "^"), "$")
		if s, ok := strings.CutPrefix(v, "(?:"); ok && strings.HasSuffix(s, ")") {
			v = strings.TrimSuffix(s, ")")
		}
		for _, alt := range strings.Split(v, "|") {
			if !slices.ContainsFunc(allowed, func(a string) bool { return regexp.QuoteMeta(a) == alt || a == alt }) {
				return false
			}
		}
		return true
	}
	return false
}

// checkForwardedConfined checks the upstream request of a restricted caller:
// exactly one request, one unambiguous query (or at least one match[]), each
// confined to allowed.
func (r *result) checkForwardedConfined(t testing.TB, allowed []string, wantPath string) {
	t.Helper()
	if len(r.fwd) != 1 {
		t.Errorf("%s: %d upstream requests, want 1", r, len(r.fwd))
		return
	}
	f := r.fwd[0]
	if wantPath != "" && f.Path != wantPath {
		t.Errorf("%s: forwarded path %q, want %q", r, f.RequestURI, wantPath)
	}
	if rawPath, _, _ := strings.Cut(f.RequestURI, "?"); rawPath != f.Path {
		t.Errorf("%s: forwarded raw path %q differs from the classified path %q", r, f.RequestURI, f.Path)
	}
	query, match := f.exprs()
	var exprs []string
	switch wantPath {
	case "/api/v1/query", "/api/v1/query_range", "/api/v1/query_exemplars":
		if len(query) != 1 {
			t.Errorf("%s: upstream reads %d query values %q, want exactly 1", r, len(query), query)
		}
		exprs = query
	default:
		if len(match) == 0 {
			t.Errorf("%s: upstream got no match[]; an unrestricted request would reach it", r)
		}
		if len(f.URLQuery["match[]"]) > 0 && len(f.Form["match[]"]) > 0 {
			t.Errorf("%s: upstream got match[] in the URL and the body", r)
		}
		exprs = match
	}
	for _, e := range exprs {
		if err := checkConfined(e, allowed); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
}

// Extractors return the namespaces a response reveals ("" for series
// without a namespace label).
type extractor func(body []byte) (map[string]bool, error)

func dataOf(body []byte, v any) error {
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return err
	}
	if env.Status != "success" {
		return fmt.Errorf("status %q", env.Status)
	}
	return json.Unmarshal(env.Data, v)
}

// vectorNS reads instant and range query results.
func vectorNS(body []byte) (map[string]bool, error) {
	var d struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
		} `json:"result"`
	}
	if err := dataOf(body, &d); err != nil {
		return nil, err
	}
	if d.ResultType != "vector" && d.ResultType != "matrix" {
		return nil, fmt.Errorf("result type %q", d.ResultType)
	}
	seen := map[string]bool{}
	for _, s := range d.Result {
		seen[s.Metric["namespace"]] = true
	}
	return seen, nil
}

// seriesNS reads /api/v1/series.
func seriesNS(body []byte) (map[string]bool, error) {
	var d []map[string]string
	if err := dataOf(body, &d); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, s := range d {
		seen[s["namespace"]] = true
	}
	return seen, nil
}

// labelsNS maps the marker label names of /api/v1/labels to their jobs'
// namespaces.
func labelsNS(body []byte) (map[string]bool, error) {
	var d []string
	if err := dataOf(body, &d); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, name := range d {
		if ns, ok := markerNamespace[name]; ok {
			seen[ns] = true
		}
	}
	return seen, nil
}

// valuesNS reads /api/v1/label/namespace/values.
func valuesNS(body []byte) (map[string]bool, error) {
	var d []string
	if err := dataOf(body, &d); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, v := range d {
		seen[v] = true
	}
	return seen, nil
}

// jobValuesNS maps /api/v1/label/job/values to the jobs' namespaces.
func jobValuesNS(body []byte) (map[string]bool, error) {
	var d []string
	if err := dataOf(body, &d); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, v := range d {
		ns, ok := jobNamespace[v]
		if !ok {
			ns = "unknown job " + v
		}
		seen[ns] = true
	}
	return seen, nil
}

// exemplarsNS reads /api/v1/query_exemplars.
func exemplarsNS(body []byte) (map[string]bool, error) {
	var d []struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
	}
	if err := dataOf(body, &d); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, s := range d {
		seen[s.SeriesLabels["namespace"]] = true
	}
	return seen, nil
}

// federateNS parses the text exposition of /federate.
func federateNS(body []byte) (map[string]bool, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse federation: %w", err)
	}
	seen := map[string]bool{}
	for _, mf := range fams {
		for _, m := range mf.GetMetric() {
			ns := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "namespace" {
					ns = l.GetValue()
				}
			}
			seen[ns] = true
		}
	}
	return seen, nil
}

// checkSeen compares what a response revealed with what the caller may see.
// allowed nil means unrestricted; then every namespace of mustSee must show.
// A restricted caller must see own (when non-empty) and nothing outside
// allowed.
func (r *result) checkSeen(t testing.TB, ex extractor, allowed []string, own string, mustSee []string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Errorf("%s: want status 200", r)
		return
	}
	seen, err := ex(r.body)
	if err != nil {
		t.Errorf("%s: %v", r, err)
		return
	}
	if allowed == nil {
		for _, ns := range mustSee {
			if !seen[ns] {
				t.Errorf("%s: unrestricted caller does not see namespace %q (saw %v)", r, ns, keys(seen))
			}
		}
		return
	}
	for ns := range seen {
		if !slices.Contains(allowed, ns) {
			t.Errorf("%s: LEAK: namespace %q outside %v returned", r, ns, allowed)
		}
	}
	if own != "" && !seen[own] {
		t.Errorf("%s: caller does not see its own namespace %q (saw %v)", r, own, keys(seen))
	}
}

// TestOracle checks the test's own confinement oracle, so that a gateway that
// forwarded an unconfined query could not pass.
func TestOracle(t *testing.T) {
	allowed := []string{nsTeamA, nsTeamAStage}
	cases := []struct {
		expr string
		ok   bool
	}{
		{expr: `up{namespace="team-a"}`, ok: true},
		{expr: `up{namespace=~"team-a|team-a-staging"}`, ok: true},
		{expr: `up{namespace=~".+",namespace=~"team-a|team-a-staging"}`, ok: true},
		{expr: `rate(up{namespace="team-a"}[5m]) / on() group_left up{namespace="team-a-staging"}`, ok: true},
		{expr: `1+1`, ok: true},
		{expr: `up`},
		{expr: `up{namespace=~".+"}`},
		{expr: `up{namespace="team-b"}`},
		{expr: `up{namespace!="team-b"}`},
		{expr: `up{namespace=~"team-a|team-b"}`},
		{expr: `up{namespace=~"team-a.*"}`},
		{expr: `up{namespace="team-a"} or up`},
		{expr: `max_over_time(up[1h:1m])`},
		{expr: `up{`},
	}
	for _, tc := range cases {
		if err := checkConfined(tc.expr, allowed); (err == nil) != tc.ok {
			t.Errorf("checkConfined(%q) = %v, want ok %v", tc.expr, err, tc.ok)
		}
	}

	vec := []byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"namespace":"team-a"}},{"metric":{}}]}}`)
	seen, err := vectorNS(vec)
	if err != nil || !seen[noNamespace] || !seen[nsTeamA] {
		t.Errorf("vectorNS = %v, %v; want team-a and the unlabelled series", seen, err)
	}
	fed := []byte("# TYPE up untyped\nup{instance=\"x\",job=\"team-b\",namespace=\"team-b\"} 1 1\nup{instance=\"x\",job=\"cluster\"} 1 1\n")
	if seen, err := federateNS(fed); err != nil || !seen[nsTeamB] || !seen[noNamespace] {
		t.Errorf("federateNS = %v, %v; want team-b and the unlabelled series", seen, err)
	}
	for _, h := range []string{"x_scope_orgid", "AUTHORIZATION", "cookie", "X-Forwarded-User"} {
		if !headerForbidden(h) {
			t.Errorf("headerForbidden(%q) = false", h)
		}
	}
	if headerForbidden("User-Agent") {
		t.Error("headerForbidden(User-Agent) = true")
	}
}
