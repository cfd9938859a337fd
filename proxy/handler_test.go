package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tlsutil"
)

// upstreamLog records every request that reached the fake upstream.
type upstreamLog struct {
	mu   sync.Mutex
	reqs []*http.Request
	body []string
}

func (u *upstreamLog) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *upstreamLog) last() (*http.Request, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reqs[len(u.reqs)-1], u.body[len(u.body)-1]
}

// fakeDecider allows admins unrestricted, team-a to namespace a, and denies
// everyone else.
type fakeDecider struct {
	err error
	// limits are set on team-a's decisions.
	limits authz.Limits
	// rateKey is set on team-a's decisions.
	rateKey string
}

func (f *fakeDecider) Decide(ctx context.Context, in authz.Input) (authz.Decision, error) {
	d, err := f.decide(ctx, in)
	d.Revision = "rev1"
	if err != nil {
		return d, err
	}
	return authz.Compile(d)
}

func (f *fakeDecider) decide(_ context.Context, in authz.Input) (authz.Decision, error) {
	if f.err != nil {
		return authz.Decision{}, f.err
	}
	for _, g := range in.Identity.Groups {
		switch g {
		case "admins":
			return authz.Decision{Allow: true, Reason: "admin"}, nil
		case "team-a":
			return authz.Decision{Allow: true, Reason: "team-a", Enforce: map[string][]string{"namespace": {"a"}}, Tenant: "tenant-a", Limits: f.limits, RateKey: f.rateKey}, nil
		}
	}
	return authz.Decision{Allow: false, Reason: "no group of " + in.Identity.Subject + " is known"}, nil
}

type fakeAuditor struct {
	mu      sync.Mutex
	records []*audit.Record
	broken  bool
}

func (f *fakeAuditor) Write(r *audit.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records = append(f.records, r)
	if f.broken {
		return errors.New("disk full")
	}
	return nil
}

func (f *fakeAuditor) Healthy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.broken
}

type fixture struct {
	h     *Handler
	up    *upstreamLog
	aud   *fakeAuditor
	dec   *fakeDecider
	certs map[string]*x509.Certificate
	reg   *prometheus.Registry
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureTransport(t, nil)
}

// newFixtureTransport is newFixture with rt reaching the upstream in place
// of the fake server, when rt is not nil.
func newFixtureTransport(t testing.TB, rt http.RoundTripper) *fixture {
	t.Helper()
	f := &fixture{up: &upstreamLog{}, aud: &fakeAuditor{}, dec: &fakeDecider{}, certs: map[string]*x509.Certificate{}, reg: prometheus.NewRegistry()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.up.mu.Lock()
		f.up.reqs = append(f.up.reqs, r)
		f.up.body = append(f.up.body, string(b))
		f.up.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/alerts":
			_, _ = w.Write([]byte(testAlerts))
			return
		case "/api/v1/label/__name__/values":
			_, _ = w.Write([]byte(`{"status":"success","data":["up"]}`))
			return
		case "/api/v1/metadata":
			_, _ = w.Write([]byte(`{"status":"success","data":{"up":[{"type":"gauge","help":"","unit":""}],"secret_of_b":[{"type":"gauge","help":"","unit":""}]}}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	}))
	t.Cleanup(srv.Close)

	cfg := config.Default()
	cfg.Upstream.URL = srv.URL
	cfg.Limits.RequestsPerSecond = 0
	// An operator's explicit window limits; the defaults set none.
	cfg.Limits.MaxRange = model.Duration(31 * 24 * time.Hour)
	cfg.Limits.MaxLookback = model.Duration(31 * 24 * time.Hour)
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
		Registerer:    f.reg,
		Transport:     rt,
		UpstreamToken: func() string { return "upstream-secret" },
	})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tlsutil.NewDevCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ cn, ou string }{{"alice", "team-a"}, {"bob", "team-a"}, {"root", "admins"}, {"mallory", "nobody"}} {
		certPEM, _, err := ca.Issue(tlsutil.CertSpec{CommonName: c.cn, OUs: []string{c.ou}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(certPEM)
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		f.certs[c.cn] = cert
	}
	return f
}

type request struct {
	method, target, body, contentType, user string
	header                                  map[string]string
}

func (f *fixture) do(t testing.TB, rq request) *httptest.ResponseRecorder {
	t.Helper()
	method := rq.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	r := httptest.NewRequest(method, "https://gw.example"+rq.target, body)
	if rq.contentType != "" {
		r.Header.Set("Content-Type", rq.contentType)
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	if rq.user != "" {
		r.TLS = verifiedState(f.certs[rq.user])
	} else {
		r.TLS = &tls.ConnectionState{}
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func errorBody(t testing.TB, w *httptest.ResponseRecorder) (errType, msg string) {
	t.Helper()
	var e struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Status != "error" {
		t.Fatalf("body %q is not an API error envelope", w.Body.String())
	}
	return e.ErrorType, e.Error
}

func TestHandler(t *testing.T) {
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name      string
		req       request
		status    int
		errType   string
		msg       string // substring of the error message
		forwarded string // the upstream's `query` or `match[]` values, joined by "|"; "" means not forwarded
	}{
		{name: "no certificate", req: request{target: "/api/v1/query?query=up"}, status: 401, errType: "unauthorized"},
		{name: "E36 probe user agent gets normal auth", req: request{target: "/api/v1/query?query=up", header: map[string]string{"User-Agent": "kube-probe/1.30"}}, status: 401, errType: "unauthorized"},
		{name: "E35 forwarding headers change nothing", req: request{target: "/api/v1/query?query=up", header: map[string]string{
			"X-Forwarded-Uri": "/-/healthy", "X-Forwarded-Host": "internal", "X-Forwarded-Proto": "http", "X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1"}}, status: 401},
		{name: "team-a confined", req: request{user: "alice", target: "/api/v1/query?query=up"}, status: 200, forwarded: `up{namespace="a"}`},
		{name: "admin unrestricted", req: request{user: "root", target: "/api/v1/query?query=up"}, status: 200, forwarded: `up`},
		{name: "unknown group denied", req: request{user: "mallory", target: "/api/v1/query?query=up"}, status: 403, errType: "forbidden", msg: "mallory"},
		// Every request asks the policy: a caller with no access fails
		// Grafana's health check, so "Save & test" tells the truth.
		{name: "health check for the allowed", req: request{user: "alice", target: "/api/v1/query?query=1%2B1&time=4"}, status: 200, forwarded: `1 + 1`},
		{name: "health check denied without access", req: request{user: "mallory", target: "/api/v1/query?query=1%2B1&time=4"}, status: 403, errType: "forbidden"},
		{name: "A1 conflicting equality", req: request{user: "alice", target: "/api/v1/query?" + url.Values{"query": {`up{namespace="b"}`}}.Encode()}, status: 403, msg: "namespace"},
		{name: "A2 regex widening confined", req: request{user: "alice", target: "/api/v1/query?" + url.Values{"query": {`up{namespace=~".+"}`}}.Encode()}, status: 200, forwarded: `up{namespace="a",namespace=~".+"}`},
		{name: "A2 not-equal", req: request{user: "alice", target: "/api/v1/query?" + url.Values{"query": {`up{namespace!="a"}`}}.Encode()}, status: 403},
		{name: "A2 empty value", req: request{user: "alice", target: "/api/v1/query?" + url.Values{"query": {`up{namespace=""}`}}.Encode()}, status: 403},
		{name: "A4 quoted names", req: request{user: "alice", target: "/api/v1/query?" + url.Values{"query": {`{"namespace"="b","__name__"="up"}`}}.Encode()}, status: 403},
		{name: "A6 POST body", req: request{user: "alice", method: "POST", target: "/api/v1/query", body: "query=up", contentType: form}, status: 200, forwarded: `up{namespace="a"}`},
		{name: "A6 URL and body", req: request{user: "alice", method: "POST", target: "/api/v1/query?query=up", body: "query=up", contentType: form}, status: 400},
		{name: "A6 duplicated query", req: request{user: "alice", target: "/api/v1/query?query=up&query=up"}, status: 400},
		{name: "A6 match in URL and body", req: request{user: "alice", method: "POST", target: "/api/v1/series?match[]=up", body: "match[]=up", contentType: form}, status: 400},
		{name: "A7 label parameter dropped", req: request{user: "alice", target: "/api/v1/query?query=up&namespace=b"}, status: 200, forwarded: `up{namespace="a"}`},
		{name: "A8 series without match", req: request{user: "alice", target: "/api/v1/series"}, status: 200, forwarded: `{namespace="a"}`},
		{name: "A8 labels without match", req: request{user: "alice", target: "/api/v1/labels"}, status: 200, forwarded: `{namespace="a"}`},
		{name: "A8 label values", req: request{user: "alice", target: "/api/v1/label/job/values"}, status: 200, forwarded: `{namespace="a"}`},
		{name: "A8 invalid match", req: request{user: "alice", target: "/api/v1/series?match[]=sum(up)"}, status: 400},
		{name: "A8 invalid match in body", req: request{user: "alice", method: "POST", target: "/api/v1/series", body: "match[]=up{", contentType: form}, status: 400},
		{name: "federate", req: request{user: "alice", target: "/federate?" + url.Values{"match[]": {`{job="x"}`}}.Encode()}, status: 200, forwarded: `{job="x",namespace="a"}`},
		{name: "A9 multipart", req: request{user: "alice", method: "POST", target: "/api/v1/query", body: "--x\r\n", contentType: "multipart/form-data; boundary=x"}, status: 415},
		{name: "A9 text/plain", req: request{user: "alice", method: "POST", target: "/api/v1/query", body: "query=up", contentType: "text/plain"}, status: 415},
		{name: "A9 gzip", req: request{user: "alice", method: "POST", target: "/api/v1/query", body: "xx", contentType: form, header: map[string]string{"Content-Encoding": "gzip"}}, status: 415},
		{name: "A10 alerts trailing slash", req: request{user: "alice", target: "/api/v1/alerts/"}, status: 404},
		{name: "A10 alerts restricted are filtered", req: request{user: "alice", target: "/api/v1/alerts"}, status: 200},
		{name: "alerts admin", req: request{user: "root", target: "/api/v1/alerts"}, status: 200},
		{name: "A11 missing query", req: request{user: "alice", target: "/api/v1/query"}, status: 400, msg: "query"},
		{name: "A11 empty query", req: request{user: "alice", target: "/api/v1/query?query="}, status: 400},
		{name: "A12 GET after POST same decision", req: request{user: "alice", target: "/api/v1/query?query=up"}, status: 200, forwarded: `up{namespace="a"}`},
		{name: "A13 delete series", req: request{user: "root", method: "POST", target: "/api/v1/admin/tsdb/delete_series?match[]=up"}, status: 404},
		{name: "A13 snapshot", req: request{user: "root", method: "POST", target: "/api/v1/admin/tsdb/snapshot"}, status: 404},
		{name: "A13 quit", req: request{user: "root", method: "POST", target: "/-/quit"}, status: 404},
		{name: "A13 reload", req: request{user: "root", method: "POST", target: "/-/reload"}, status: 404},
		{name: "A13 write", req: request{user: "root", method: "POST", target: "/api/v1/write"}, status: 404},
		{name: "A13 read", req: request{user: "root", method: "POST", target: "/api/v1/read"}, status: 404},
		{name: "A13 config", req: request{user: "root", target: "/api/v1/status/config"}, status: 404},
		{name: "A13 tsdb", req: request{user: "root", target: "/api/v1/status/tsdb"}, status: 404},
		{name: "A13 targets", req: request{user: "root", target: "/api/v1/targets"}, status: 404},
		{name: "A13 pprof", req: request{user: "root", target: "/debug/pprof/"}, status: 404},
		{name: "A13 own metrics", req: request{user: "root", target: "/metrics"}, status: 404},
		{name: "E37 double slash", req: request{user: "root", target: "/api//v1/query?query=up"}, status: 404},
		{name: "E37 encoded letter", req: request{user: "root", target: "/api/v1/%71uery?query=up"}, status: 404},
		{name: "E37 upper case", req: request{user: "root", target: "/API/v1/query?query=up"}, status: 404},
		{name: "E37 matrix param", req: request{user: "root", target: "/api/v1/query;x=y?query=up"}, status: 404},
		{name: "E37 dot dot", req: request{user: "root", target: "/-/healthy/../api/v1/query?query=up"}, status: 404},
		{name: "E37 encoded slash", req: request{user: "root", target: "/api/v1/label/a%2Fb/values"}, status: 404},
		{name: "E38 method", req: request{user: "root", method: "DELETE", target: "/api/v1/query?query=up"}, status: 405},
		{name: "E38 override", req: request{user: "root", target: "/api/v1/query?query=up", header: map[string]string{"X-HTTP-Method-Override": "DELETE"}}, status: 400},
		{name: "GET with body", req: request{user: "root", method: "GET", target: "/api/v1/query?query=up", body: "query=x", contentType: form}, status: 400},
		{name: "bad PromQL", req: request{user: "alice", target: "/api/v1/query?query=up%7B"}, status: 400, errType: "bad_data"},
		{name: "query range too long", req: request{user: "alice", target: "/api/v1/query_range?query=up&start=0&end=86400000&step=60"}, status: 400, msg: "exceeds"},
		{name: "query range step too small", req: request{user: "alice", target: "/api/v1/query_range?query=up&start=0&end=60&step=0.001"}, status: 400, msg: "step"},
		{name: "far offset", req: request{user: "alice", target: "/api/v1/query?" + url.Values{"query": {`up offset 400d`}}.Encode()}, status: 400, msg: "lookback"},
		{name: "oversized parameter", req: request{user: "alice", target: "/api/v1/query?query=" + strings.Repeat("a", maxParamBytes+1)}, status: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			w := f.do(t, tc.req)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tc.status, w.Body.String())
			}
			if tc.status != 200 {
				errType, msg := errorBody(t, w)
				if tc.errType != "" && errType != tc.errType {
					t.Errorf("errorType = %q, want %q", errType, tc.errType)
				}
				if !strings.Contains(msg, tc.msg) {
					t.Errorf("error %q does not mention %q", msg, tc.msg)
				}
				if tc.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
			if tc.forwarded == "" && tc.status != 200 {
				if n := f.up.count(); n != 0 {
					t.Fatalf("%d requests reached the upstream, want 0", n)
				}
			}
			if tc.forwarded != "" {
				if f.up.count() != 1 {
					t.Fatalf("upstream saw %d requests, want 1", f.up.count())
				}
				r, body := f.up.last()
				vals := r.URL.Query()
				if r.Method == http.MethodPost {
					vals, _ = url.ParseQuery(body)
				}
				got := vals["query"]
				if got == nil {
					got = vals["match[]"]
				}
				if g := strings.Join(got, "|"); g != tc.forwarded {
					t.Errorf("forwarded %q, want %q", g, tc.forwarded)
				}
				if vals.Get("namespace") != "" {
					t.Error("client label parameter reached the upstream")
				}
			}
			if n := len(f.aud.records); n != 1 {
				t.Fatalf("%d audit records, want 1", n)
			}
			if rec := f.aud.records[0]; rec.Status != tc.status {
				t.Errorf("audit status = %d, want %d", rec.Status, tc.status)
			}
		})
	}
}

// TestUpstreamHeaders checks that the upstream request is built from an
// allow-list: credentials, identity, tenant and hop-by-hop tricks never pass,
// and the gateway's own Authorization survives a Connection header naming it.
func TestUpstreamHeaders(t *testing.T) {
	f := newFixture(t)
	hdr := map[string]string{
		"Authorization":        "Bearer client-token",
		"Cookie":               "session=abc",
		"Proxy-Authorization":  "Basic eA==",
		"X-Id-Token":           "id-token",
		"X-Scope-OrgID":        "b",
		"X_Scope_OrgID":        "b",
		"Thanos-Tenant":        "b",
		"X-Prom-Label-Policy":  "b",
		"X-Remote-User":        "admin",
		"X-Forwarded-User":     "admin",
		"X-Auth-Request-Email": "admin@example.com",
		"X-Forwarded-For":      "10.0.0.1",
		"Connection":           "Authorization, X-Request-Id",
		"Accept-Encoding":      "gzip",
		"User-Agent":           "Grafana/11",
	}
	w := f.do(t, request{user: "alice", target: "/api/v1/query?query=up", header: hdr})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	r, _ := f.up.last()
	for k := range hdr {
		switch k {
		case "Accept-Encoding", "User-Agent":
			if r.Header.Get(k) != hdr[k] {
				t.Errorf("%s = %q, want it passed through", k, r.Header.Get(k))
			}
		case "Authorization":
			if got := r.Header.Get(k); got != "Bearer upstream-secret" {
				t.Errorf("Authorization upstream = %q, want the configured token", got)
			}
		default:
			if v := r.Header.Values(k); len(v) > 0 {
				t.Errorf("header %s reached the upstream: %q", k, v)
			}
		}
	}
	if r.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id upstream")
	}
}

func TestAuditFailureDenies(t *testing.T) {
	f := newFixture(t)
	f.aud.broken = true
	w := f.do(t, request{user: "root", target: "/api/v1/query?query=up"})
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", w.Code)
	}
	if f.up.count() != 0 {
		t.Fatal("forwarded while the audit trail is broken")
	}
}

func TestPolicyErrorDenies(t *testing.T) {
	f := newFixture(t)
	f.dec.err = errors.New("rego: eval_conflict_error: secret internals")
	w := f.do(t, request{user: "root", target: "/api/v1/query?query=up"})
	if w.Code != http.StatusForbidden {
		t.Fatalf("status %d, want 403", w.Code)
	}
	if strings.Contains(w.Body.String(), "internals") {
		t.Errorf("policy internals leaked: %s", w.Body.String())
	}
	if f.up.count() != 0 {
		t.Fatal("forwarded after a policy error")
	}
}

func TestUpstreamDown(t *testing.T) {
	f := newFixture(t)
	cfg := *f.h.cfg
	cfg.Upstream.URL = "http://127.0.0.1:1"
	h, err := New(Options{Config: &cfg, Authn: f.h.authn, Authz: f.dec, Audit: f.aud,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	w := f.do(t, request{user: "root", target: "/api/v1/query?query=up"})
	if w.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", w.Code)
	}
	if strings.Contains(w.Body.String(), "127.0.0.1") {
		t.Errorf("upstream address leaked: %s", w.Body.String())
	}
	if rec := f.aud.records[0]; strings.Contains(rec.Error, "127.0.0.1") {
		t.Errorf("upstream address in audit record: %q", rec.Error)
	}
}

func TestPanicIsAudited(t *testing.T) {
	f := newFixture(t)
	f.h.authn = authn.Chain{panicker{}}
	w := f.do(t, request{user: "root", target: "/api/v1/query?query=up"})
	if w.Code != 500 {
		t.Fatalf("status %d, want 500", w.Code)
	}
	if _, msg := errorBody(t, w); !strings.Contains(msg, "request id") || strings.Contains(msg, "boom") {
		t.Errorf("message %q", msg)
	}
	if len(f.aud.records) != 1 || f.aud.records[0].Status != 500 {
		t.Fatalf("records %+v", f.aud.records)
	}
}

type panicker struct{}

func (panicker) Method() authn.Method { return "test" }
func (panicker) Authenticate(*http.Request) (*authn.Identity, error) {
	panic("boom")
}

func verifiedState(c *x509.Certificate) *tls.ConnectionState {
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
}

const testAlerts = `{"status":"success","data":{"alerts":[` +
	`{"labels":{"alertname":"Up","namespace":"a"},"annotations":{},"state":"firing","activeAt":"2026-01-01T00:00:00Z","value":"1e+00"},` +
	`{"labels":{"alertname":"Up","namespace":"b"},"annotations":{"summary":"secret of b"},"state":"firing","activeAt":"2026-01-01T00:00:00Z","value":"1e+00"}]}}`

func TestAlertsFilteredForRestricted(t *testing.T) {
	f := newFixture(t)
	w := f.do(t, request{user: "alice", target: "/api/v1/alerts"})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	if strings.Contains(w.Body.String(), `"b"`) || !strings.Contains(w.Body.String(), `"namespace":"a"`) {
		t.Errorf("alerts for alice = %s, want only namespace a", w.Body.String())
	}
	r, _ := f.up.last()
	if r.Header.Get("Accept-Encoding") != "" {
		t.Error("a filtered route asked the upstream for an encoded body")
	}
	w = f.do(t, request{user: "root", target: "/api/v1/alerts"})
	if !strings.Contains(w.Body.String(), "secret of b") {
		t.Errorf("admin alerts = %s, want everything", w.Body.String())
	}
}

// TestPolicyReadsQuery runs a real policy that reads input.query: the
// selectors reach it (built on demand), for query and match[] routes alike.
func TestPolicyReadsQuery(t *testing.T) {
	dir := t.TempDir()
	rego := `package promgate.authz

default decision := {"allow": false, "reason": "reads a secret metric"}

decision := {"allow": true} if {
	every s in input.query.selectors { s.metric != "secret" }
}
`
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(rego), 0o644); err != nil {
		t.Fatal(err)
	}
	az, err := authz.New(config.Authz{Policies: dir, Decision: "data.promgate.authz.decision"},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.h.authz = az
	for _, tc := range []struct {
		target string
		want   int
	}{
		{"/api/v1/query?query=up", 200},
		{"/api/v1/query?query=sum(secret)", 403},
		{"/api/v1/series?match[]=up", 200},
		{"/api/v1/series?match[]=secret", 403},
	} {
		if w := f.do(t, request{user: "root", target: tc.target}); w.Code != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.target, w.Code, tc.want, w.Body.String())
		}
	}
}
