package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/promgate/promgate/enforce"
)

// BenchmarkServeWrite is one remote write request of 2000 series with one
// sample each through the whole handler (team-a's certificate, the fake
// policy, drop mode) to an upstream that answers 204 in memory. It reports
// samples/s.
func BenchmarkServeWrite(b *testing.B) {
	f := newFixtureTransport(b, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		_, _ = io.Copy(io.Discard, r.Body)
		return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
	}))
	f.h.cfg.Write.Routes = []string{"write"}
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 2000)}
	for i := range req.Timeseries {
		req.Timeseries[i] = prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: fmt.Sprintf("http_requests_%d_total", i%50)},
				{Name: "code", Value: "200"}, {Name: "container", Value: "app"},
				{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250)},
				{Name: "job", Value: "kubernetes-pods"}, {Name: "method", Value: "GET"},
				{Name: "namespace", Value: "a"}, {Name: "pod", Value: fmt.Sprintf("app-%d", i)},
			},
			Samples: []prompb.Sample{{Value: float64(i), Timestamp: 1_700_000_000_000}},
		}
	}
	body, err := enforce.EncodeWrite(req, nil)
	if err != nil {
		b.Fatal(err)
	}
	cert := f.certs["alice"]
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "https://gw.example/api/v1/write", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/x-protobuf")
		r.Header.Set("Content-Encoding", "snappy")
		r.TLS = verifiedState(cert)
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(2000*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}
