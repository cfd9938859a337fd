package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
)

const benchQuery = `sum by (pod) (rate(container_cpu_usage_seconds_total{namespace="team-a",container!=""}[5m]))`

func benchUpstream(b *testing.B) *httptest.Server {
	body := []byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchRequest(c *x509.Certificate) *http.Request {
	return benchRequestFor(c, benchQuery)
}

// benchQuery20 is a Grafana-style sum of 20 selectors.
var benchQuery20 = func() string {
	parts := make([]string, 20)
	for i := range parts {
		parts[i] = fmt.Sprintf(`sum(rate(container_cpu_usage_seconds_total{pod="pod-%d"}[5m]))`, i)
	}
	return strings.Join(parts, " + ")
}()

func benchRequestFor(c *x509.Certificate, query string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/api/v1/query?"+url.Values{"query": {query}}.Encode(), nil)
	if c != nil {
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
	}
	return r
}

// BenchmarkBareReverseProxy is the baseline: a ReverseProxy with the same
// tuned Transport and nothing else.
func BenchmarkBareReverseProxy(b *testing.B) {
	up := benchUpstream(b)
	target, _ := url.Parse(up.URL)
	cfg := config.Default()
	cfg.Upstream.URL = up.URL
	tr, err := NewTransport(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }, Transport: tr}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			rp.ServeHTTP(w, benchRequest(nil))
			if w.Code != 200 {
				b.Fatal(w.Code)
			}
		}
	})
}

// BenchmarkGateway runs the whole chain with the default Rego policy: mTLS
// identity, parse, decision, rewrite, forward and audit (to a discarding
// auditor).
func BenchmarkGateway(b *testing.B) {
	b.Run("1-selector", func(b *testing.B) { benchmarkGateway(b, benchQuery) })
	b.Run("20-selectors", func(b *testing.B) { benchmarkGateway(b, benchQuery20) })
}

func benchmarkGateway(b *testing.B, query string) {
	h, cert := benchGateway(b, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, benchRequestFor(cert, query))
			if w.Code != 200 {
				b.Fatal(w.Code, w.Body.String())
			}
		}
	})
}

// benchGateway is the gateway the whole-chain benchmarks run: the default
// Rego policy, a discarding auditor, no coalescing, the given tracer (nil:
// tracing off), and alice's certificate as a team-a member.
func benchGateway(b *testing.B, tracer trace.Tracer) (*Handler, *x509.Certificate) {
	f := newFixture(b)
	up := benchUpstream(b)
	az, err := authz.New(config.Authz{Policies: "../policies", Decision: "data.promgate.authz.decision"},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	cfg := *f.h.cfg
	cfg.Upstream.URL = up.URL
	// The parallel loops repeat one query: coalescing would share upstream
	// answers and hide the gateway's own cost, which they measure.
	cfg.Upstream.Coalesce = false
	h, err := New(Options{Config: &cfg, Authn: f.h.authn, Authz: az, Audit: discard{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(), Tracer: tracer})
	if err != nil {
		b.Fatal(err)
	}
	cert := f.certs["alice"]
	cert.Subject.OrganizationalUnit = []string{"team-a"}
	return h, cert
}

type discard struct{}

func (discard) Write(*audit.Record) error { return nil }
func (discard) Healthy() bool             { return true }
