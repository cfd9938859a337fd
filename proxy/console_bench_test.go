package proxy

import (
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/demo"
	"github.com/promgate/promgate/detect"
)

// BenchmarkConsolePage renders each console page over the demo's data (a
// day of synthetic series, the attacks included), through the default
// policy, as alice (team-a) and as root (admins), with the background
// evaluator's state. It reports the median page time as p50-ms.
func BenchmarkConsolePage(b *testing.B) {
	h, certs := consoleBenchGateway(b)
	pages := []struct{ name, user, target string }{
		{"overview/root", "root", "/ui/"},
		{"overview/alice", "alice", "/ui/"},
		{"detector/root", "root", "/ui/detectors/pod_cpu_outlier_in_workload?window=24h"},
		{"detector/alice", "alice", "/ui/detectors/pod_cpu_over_one_core?window=7d"},
		{"query/alice", "alice", "/ui/query?window=1h&query=" + url.QueryEscape(`sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!=""}[5m]))`)},
		{"topology/root", "root", "/ui/topology"},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			var times []time.Duration
			for b.Loop() {
				r := httptest.NewRequest(http.MethodGet, "https://gw.example"+p.target, nil)
				r.TLS = verifiedState(certs[p.user])
				w := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(w, r)
				times = append(times, time.Since(start))
				if w.Code != http.StatusOK {
					b.Fatalf("%s: status %d: %s", p.target, w.Code, w.Body.String())
				}
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
		})
	}
}

func consoleBenchGateway(b *testing.B) (*Handler, map[string]*x509.Certificate) {
	b.Helper()
	f := newFixture(b)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	up, err := demo.New(demo.Options{Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = up.Close() })
	srv := httptest.NewServer(up.Handler())
	b.Cleanup(srv.Close)
	az, err := authz.New(config.Authz{Policies: "../policies", Decision: "data.promgate.authz.decision"}, logger, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	cat, err := detect.Load()
	if err != nil {
		b.Fatal(err)
	}
	ev, err := detect.NewEvaluator(config.Detectors{Enabled: true, Interval: model.Duration(15 * time.Second)}, cat,
		detect.NewHTTPQuerier(srv.URL, nil, nil), logger, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	ev.Tick(context.Background())
	cfg := *f.h.cfg
	cfg.Upstream.URL = srv.URL
	cfg.Limits.RequestsPerSecond = 0
	h, err := New(Options{Config: &cfg, Authn: f.h.authn, Authz: az, Audit: discard{}, Logger: logger,
		Registerer: prometheus.NewRegistry(), Detectors: cat, DetectorState: ev.State})
	if err != nil {
		b.Fatal(err)
	}
	return h, f.certs
}
