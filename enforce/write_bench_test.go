package enforce

import (
	"fmt"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// benchWriteBody is a remote write body shaped like a Prometheus agent's:
// n series of eight labels with one sample each (max_samples_per_send is
// 2000 by default in current Prometheus), every tenth in another namespace.
func benchWriteBody(b *testing.B, n int) []byte {
	b.Helper()
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, n)}
	for i := range req.Timeseries {
		ns := "a"
		if i%10 == 0 {
			ns = "b"
		}
		req.Timeseries[i] = prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: fmt.Sprintf("http_requests_%d_total", i%50)},
				{Name: "code", Value: "200"},
				{Name: "container", Value: "app"},
				{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250)},
				{Name: "job", Value: "kubernetes-pods"},
				{Name: "method", Value: "GET"},
				{Name: "namespace", Value: ns},
				{Name: "pod", Value: fmt.Sprintf("app-%d", i)},
			},
			Samples: []prompb.Sample{{Value: float64(i), Timestamp: 1_700_000_000_000}},
		}
	}
	body, err := EncodeWrite(req, nil)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkWriteDecodeCheckEncode measures the remote write path's own
// work on one core: snappy decode, protobuf unmarshal, the checks and the
// confinement in drop mode, protobuf marshal and snappy encode. It reports
// samples/s (received samples).
func BenchmarkWriteDecodeCheckEncode(b *testing.B) {
	const n = 2000
	body := benchWriteBody(b, n)
	en, err := NewEnforcer(Enforcement{"namespace": {"a", "c"}})
	if err != nil {
		b.Fatal(err)
	}
	lim := WriteLimits{MaxSeries: 20000, MaxSamples: 100000, MaxLabels: 64}
	buf := make([]byte, 0, len(body)*2)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req, err := DecodeWrite(body, 64<<20)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := en.ConfineWrite(req, WriteDrop, lim); err != nil {
			b.Fatal(err)
		}
		if buf, err = EncodeWrite(req, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkWriteWire is BenchmarkWriteDecodeCheckEncode on the wire path
// the gateway uses (ConfineWriteWire), with its buffers reused as the
// gateway reuses them.
func BenchmarkWriteWire(b *testing.B) {
	const n = 2000
	body := benchWriteBody(b, n)
	en, err := NewEnforcer(Enforcement{"namespace": {"a", "c"}})
	if err != nil {
		b.Fatal(err)
	}
	lim := WriteLimits{MaxSeries: 20000, MaxSamples: 100000, MaxLabels: 64}
	var (
		raw, out, enc []byte
		wb            WireBuffers
	)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		raw, err = DecodeSnappy(body, 64<<20, raw)
		if err != nil {
			b.Fatal(err)
		}
		out, _, err = en.ConfineWriteWire(raw, WriteDrop, lim, &wb, out[:0])
		if err != nil {
			b.Fatal(err)
		}
		enc = snappy.Encode(enc[:cap(enc)], out)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}
