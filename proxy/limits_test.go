package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
)

func TestRateLimitPerIdentity(t *testing.T) {
	f := newFixture(t)
	f.h.cfg.Limits.RequestsPerSecond, f.h.cfg.Limits.Burst = 1, 2
	codes := map[string][]int{}
	for _, user := range []string{"alice", "alice", "alice", "root"} {
		w := f.do(t, request{user: user, target: "/api/v1/query?query=up"})
		codes[user] = append(codes[user], w.Code)
	}
	if got := codes["alice"]; got[0] != 200 || got[1] != 200 || got[2] != http.StatusTooManyRequests {
		t.Errorf("alice got %v, want 200 200 429", got)
	}
	if got := codes["root"]; got[0] != 200 {
		t.Errorf("root got %v: another identity's bucket must not be shared", got)
	}
	if n := f.up.count(); n != 3 {
		t.Errorf("upstream saw %d requests, want 3", n)
	}
}

// TestRateLimitByDecision: a decision's rate_key puts the callers it names
// into one bucket, its requests_per_second and burst replace the configured
// rate, and every 429 is audited with its route.
func TestRateLimitByDecision(t *testing.T) {
	f := newFixture(t)
	f.h.cfg.Limits.RequestsPerSecond, f.h.cfg.Limits.Burst = 1, 1
	f.dec.rateKey = "team-a"
	// alice and bob (both team-a) share one bucket of burst 1.
	if w := f.do(t, request{user: "alice", target: "/api/v1/query?query=up"}); w.Code != 200 {
		t.Fatalf("alice: %d", w.Code)
	}
	w := f.do(t, request{user: "bob", target: "/api/v1/query?query=up"})
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("bob after alice in one bucket: %d, want 429 with Retry-After", w.Code)
	}
	if rec := f.aud.records[len(f.aud.records)-1]; rec.Route != RouteQuery || rec.Status != http.StatusTooManyRequests {
		t.Errorf("429 audited as route %q status %d, want query 429", rec.Route, rec.Status)
	}
	// root has its own bucket.
	if w := f.do(t, request{user: "root", target: "/api/v1/query?query=up"}); w.Code != 200 {
		t.Errorf("root: %d, want its own bucket", w.Code)
	}
	// A decision's rate replaces the configured one for its bucket.
	f.dec.limits.RequestsPerSecond, f.dec.limits.Burst = 1, 5
	f.dec.rateKey = "team-a-dashboards"
	codes := []int{}
	for range 6 {
		codes = append(codes, f.do(t, request{user: "bob", target: "/api/v1/query?query=up"}).Code)
	}
	if codes[0] != 200 || codes[4] != 200 || codes[5] != http.StatusTooManyRequests {
		t.Errorf("decision burst 5: %v, want five 200 then 429", codes)
	}
	// A path no route serves draws from the identity's own bucket.
	f.h.cfg.Limits.Burst = 1
	f.h.limiter = newBuckets(1, 1)
	if w := f.do(t, request{user: "root", target: "/api/v1/nope"}); w.Code != http.StatusNotFound {
		t.Errorf("unknown path: %d, want 404", w.Code)
	}
	if w := f.do(t, request{user: "root", target: "/api/v1/nope"}); w.Code != http.StatusTooManyRequests {
		t.Errorf("second unknown path: %d, want 429", w.Code)
	}
}

// TestRateLimitCountsDenials: a caller the policy refuses draws from its
// bucket too, so that its policy evaluations are bounded; its 404 probes
// draw from the same bucket.
func TestRateLimitCountsDenials(t *testing.T) {
	f := newFixture(t)
	f.h.cfg.Limits.RequestsPerSecond, f.h.cfg.Limits.Burst = 1, 2
	f.h.limiter = newBuckets(1, 2)
	codes := []int{}
	for _, target := range []string{"/api/v1/query?query=up", "/api/v1/nope", "/api/v1/query?query=up"} {
		codes = append(codes, f.do(t, request{user: "mallory", target: target}).Code)
	}
	if codes[0] != http.StatusForbidden || codes[1] != http.StatusNotFound || codes[2] != http.StatusTooManyRequests {
		t.Errorf("mallory got %v, want 403 404 429", codes)
	}
	// Malformed requests, refused before the policy answers, empty the
	// identity's bucket too, and then nothing more is parsed.
	codes = codes[:0]
	for _, target := range []string{"/api/v1/query?query=up%7B", "/api/v1/query?query=up%7B", "/api/v1/query?query=up"} {
		codes = append(codes, f.do(t, request{user: "alice", target: target}).Code)
	}
	if codes[0] != http.StatusBadRequest || codes[1] != http.StatusBadRequest || codes[2] != http.StatusTooManyRequests {
		t.Errorf("alice got %v, want 400 400 429", codes)
	}
}

func TestLimiterIsBounded(t *testing.T) {
	l := newLimiter(1, 1)
	now := time.Now()
	for i := 0; i < maxLimiters+100; i++ {
		l.allow(string(rune(i)), now)
	}
	if n := l.order.Len(); n != maxLimiters {
		t.Errorf("tracked %d identities, want the cap %d", n, maxLimiters)
	}
}

func TestQueryTimeout(t *testing.T) {
	f := newFixture(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer slow.Close()
	cfg := *f.h.cfg
	cfg.Upstream.URL = slow.URL
	cfg.Limits.QueryTimeout = model.Duration(100 * time.Millisecond)
	h, err := New(Options{Config: &cfg, Authn: f.h.authn, Authz: f.dec, Audit: f.aud,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	w := f.do(t, request{user: "root", target: "/api/v1/query?query=up"})
	if w.Code != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504; body %s", w.Code, w.Body.String())
	}
	if typ, _ := errorBody(t, w); typ != "timeout" {
		t.Errorf("errorType %q, want timeout", typ)
	}
}

func TestClientIP(t *testing.T) {
	c, err := newClientIP([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, remote, xff, want string
	}{
		{"untrusted peer ignores XFF", "192.0.2.7:1", "198.51.100.1", "192.0.2.7"},
		{"trusted peer, one hop", "10.0.0.1:1", "198.51.100.1", "198.51.100.1"},
		{"right-most untrusted hop", "10.0.0.1:1", "6.6.6.6, 198.51.100.1, 10.0.0.2", "198.51.100.1"},
		{"all trusted", "10.0.0.1:1", "10.0.0.3", "10.0.0.3"},
		{"garbage stops the walk", "10.0.0.1:1", "198.51.100.1, nonsense", "10.0.0.1"},
		{"no XFF", "10.0.0.1:1", "", "10.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := c.of(r); got != tc.want {
				t.Errorf("of() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTenantHeader(t *testing.T) {
	f := newFixture(t)
	f.h.cfg.Upstream.TenantHeader = "X-Scope-OrgID"
	w := f.do(t, request{user: "alice", target: "/api/v1/query?query=up", header: map[string]string{
		"X-Scope-OrgID": "b", "x-scope-orgid": "b", "X_Scope_OrgID": "b", "Connection": "X-Scope-OrgID",
	}})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	r, _ := f.up.last()
	if got := r.Header.Values("X-Scope-OrgID"); len(got) != 1 || got[0] != "tenant-a" {
		t.Errorf("X-Scope-OrgID upstream = %q, want exactly the decision's tenant", got)
	}
	if v := r.Header.Values("X_Scope_OrgID"); len(v) > 0 {
		t.Errorf("look-alike header reached the upstream: %q", v)
	}
	// A decision without a tenant cannot reach a tenant-keyed upstream.
	w = f.do(t, request{user: "root", target: "/api/v1/query?query=up"})
	if w.Code != http.StatusForbidden {
		t.Errorf("admin without tenant: status %d, want 403", w.Code)
	}
	if f.up.count() != 1 {
		t.Errorf("upstream saw %d requests, want 1", f.up.count())
	}
}

// TestAuthnFailuresLimitedPerNetwork checks the failure limiter: requests
// without credentials never count, presented-but-invalid credentials do,
// and a caller whose certificate the handshake verified is served from the
// same network while it is limited.
func TestAuthnFailuresLimitedPerNetwork(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 60; i++ {
		if w := f.do(t, request{target: "/api/v1/query?query=up"}); w.Code != http.StatusUnauthorized {
			t.Fatalf("anonymous request %d: status %d, want 401: requests without credentials must never be limited", i, w.Code)
		}
	}
	bad := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/api/v1/query?query=up", nil)
		// A certificate the handshake did not verify is an invalid credential.
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{f.certs["mallory"]}}
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		return w
	}
	var last *httptest.ResponseRecorder
	n401 := 0
	for i := 0; i < 60; i++ {
		if last = bad(); last.Code == http.StatusUnauthorized {
			n401++
		}
	}
	if last.Code != http.StatusTooManyRequests || last.Header().Get("Retry-After") == "" {
		t.Fatalf("after a burst of failures: status %d, Retry-After %q; want 429 with Retry-After", last.Code, last.Header().Get("Retry-After"))
	}
	if n401 != 50 {
		t.Errorf("%d requests got 401 before the network was limited, want the burst of 50", n401)
	}
	if got := testutil.ToFloat64(f.h.failures.refused); got != 10 {
		t.Errorf("promgate_authn_failure_limited_total = %v, want 10", got)
	}
	// A verified certificate from the same network is still served.
	if w := f.do(t, request{user: "root", target: "/api/v1/query?query=up"}); w.Code != 200 {
		t.Errorf("verified caller from the limited network: status %d, want 200", w.Code)
	}
	// And so are authenticated callers from elsewhere.
	r := httptest.NewRequest("GET", "/api/v1/query?query=up", nil)
	r.RemoteAddr = "198.51.100.9:1"
	r.TLS = verifiedState(f.certs["root"])
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Errorf("another network: status %d, want 200", w.Code)
	}
}

func TestSizeCaps(t *testing.T) {
	f := newFixture(t)
	long := "/api/v1/query?query=up&x=" + strings.Repeat("a", maxURIBytes)
	if w := f.do(t, request{user: "root", target: long}); w.Code != http.StatusRequestURITooLong {
		t.Errorf("long URI: status %d, want 414", w.Code)
	}
	many := "/api/v1/query?query=up" + strings.Repeat("&a=1", maxParams)
	if w := f.do(t, request{user: "root", target: many}); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("many params: status %d, want 413", w.Code)
	}
	body := "query=up" + strings.Repeat("&a=1", maxParams)
	if w := f.do(t, request{user: "root", method: "POST", target: "/api/v1/query", body: body, contentType: "application/x-www-form-urlencoded"}); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("many params in body: status %d, want 413", w.Code)
	}
	big := "query=" + strings.Repeat("a", 2<<20)
	if w := f.do(t, request{user: "root", method: "POST", target: "/api/v1/query", body: big, contentType: "application/x-www-form-urlencoded"}); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("big body: status %d, want 413", w.Code)
	}
	if f.up.count() != 0 {
		t.Errorf("%d oversized requests reached the upstream", f.up.count())
	}
}

func TestTimeoutParamCapped(t *testing.T) {
	f := newFixture(t)
	if w := f.do(t, request{user: "root", target: "/api/v1/query?query=up&timeout=1h"}); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	r, _ := f.up.last()
	if got := r.URL.Query().Get("timeout"); got != "2m" {
		t.Errorf("timeout upstream = %q, want capped to query_timeout 2m", got)
	}
	if w := f.do(t, request{user: "root", target: "/api/v1/query?query=up&timeout=-1"}); w.Code != 400 {
		t.Errorf("negative timeout: status %d, want 400", w.Code)
	}
}

func TestChunkedBodyRefused(t *testing.T) {
	f := newFixture(t)
	r := httptest.NewRequest("POST", "/api/v1/query", strings.NewReader("query=up"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.TransferEncoding = []string{"chunked"}
	r.ContentLength = -1
	r.TLS = verifiedState(f.certs["root"])
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if w.Code != http.StatusLengthRequired || f.up.count() != 0 {
		t.Errorf("chunked body: status %d, forwarded %d; want 411 and nothing forwarded", w.Code, f.up.count())
	}
}

// TestMetadataWithTenant checks that the metadata filter's own upstream
// request carries the decision's tenant, and that the answer is confined.
func TestMetadataWithTenant(t *testing.T) {
	f := newFixture(t)
	f.h.cfg.Upstream.TenantHeader = "X-Scope-OrgID"
	w := f.do(t, request{user: "alice", target: "/api/v1/metadata"})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	if strings.Contains(w.Body.String(), "secret_of_b") || !strings.Contains(w.Body.String(), `"up"`) {
		t.Errorf("metadata for alice = %s, want only up", w.Body.String())
	}
	f.up.mu.Lock()
	defer f.up.mu.Unlock()
	if len(f.up.reqs) != 2 {
		t.Fatalf("upstream saw %d requests, want the label values lookup and the metadata", len(f.up.reqs))
	}
	for _, r := range f.up.reqs {
		if got := r.Header.Get("X-Scope-OrgID"); got != "tenant-a" {
			t.Errorf("%s: X-Scope-OrgID = %q, want tenant-a", r.URL.Path, got)
		}
	}
}
