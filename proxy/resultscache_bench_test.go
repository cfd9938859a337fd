package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkResultsCache is one 24h panel at a 1m step (Grafana's auto step
// for 24h) with ten series, answered by a fake upstream that costs almost
// nothing: "hit" has every old part cached and asks only the fresh tail,
// "pass" sends the same request through the cache's bypass (no-cache
// path), which is what the gateway costs without the cache.
func BenchmarkResultsCache(b *testing.B) {
	now := time.Date(2026, 3, 1, 12, 34, 0, 0, time.UTC)
	f := &fakeRange{}
	f.late.Store(now.UnixMilli())
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := newResultsCache(testCacheConfig(), http.DefaultTransport, func() time.Time { return now }, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	start, end := now.Add(-24*time.Hour).Truncate(time.Minute), now.Truncate(time.Minute)
	for _, mode := range []string{"hit", "pass"} {
		b.Run(mode, func(b *testing.B) {
			var rt http.RoundTripper = c
			if mode == "pass" {
				rt = http.DefaultTransport
			}
			for b.Loop() {
				req := newRangeReq(b, srv.URL, "x", start, end, time.Minute, nil)
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck // benchmark
				resp.Body.Close()
			}
		})
	}
}
