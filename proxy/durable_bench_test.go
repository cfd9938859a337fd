package proxy

import (
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/alecthomas/units"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/config"
)

// BenchmarkGatewayAudit is BenchmarkGateway/1-selector with a real audit
// writer to a file instead of the discarding auditor: buffered (records
// written every second) and durable (each response waits for its record's
// group-committed write and fsync). The parallelism is raised to what a
// loaded gateway has in flight, since group commit shares an fsync among
// the requests that arrive during one.
func BenchmarkGatewayAudit(b *testing.B) {
	for _, mode := range []string{"discard", config.AuditBuffered, config.AuditDurable} {
		b.Run(mode, func(b *testing.B) {
			h, cert := benchGateway(b, nil)
			if mode != "discard" {
				cfg := config.Audit{Path: filepath.Join(b.TempDir(), "audit.log"), MaxSize: 100 * units.MiB, MaxFiles: 2, Mode: mode}
				w, err := audit.NewWriter(cfg, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = w.Close() })
				h.audit, h.hold = w, holdsBack(w)
			}
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, benchRequestFor(cert, benchQuery))
					if w.Code != 200 {
						b.Fatal(w.Code, w.Body.String())
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
