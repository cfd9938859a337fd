package tracing

import (
	"context"
	"encoding/hex"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/promgate/promgate/config"
)

// TestGroupsReusedAfterExport runs many concurrent requests' spans through
// the OTLP exporter, which reuses a request's group of spans once they are
// exported or dropped, with a queue small enough to drop some and batches
// small enough to export while the requests run. Every span that reaches
// the collector must be whole and its own request's: its request's
// attribute, its server span as parent, a name of that request. Run with
// -race (make test does), a group reused while still in use is a data
// race as well.
func TestGroupsReusedAfterExport(t *testing.T) {
	col := newCollector(t)
	reg := prometheus.NewRegistry()
	p, err := New(config.Tracing{Enabled: true, Endpoint: col.srv.URL}, Options{
		Logger: discardLogger(), Registerer: reg, Version: "test",
		Getenv: env(map[string]string{
			"OTEL_BSP_SCHEDULE_DELAY":        "1",
			"OTEL_BSP_MAX_QUEUE_SIZE":        "512",
			"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "16",
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.batch.free == nil {
		t.Fatal("the OTLP exporter's batcher does not reuse groups")
	}
	const workers, requests, steps = 6, 300, groupSpans + 1 // one step more than a group holds
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range requests {
				id := strconv.Itoa(w*requests + i)
				srv, ok := StartServer(p.Tracer(), trace.SpanContext{}, "promgate")
				if !ok || !srv.IsRecording() {
					t.Error("the server span is not recorded")
					return
				}
				for s := range steps {
					c := Child(srv, "step"+strconv.Itoa(s), trace.SpanKindInternal)
					SetAttributes(c, attribute.String("req", id), attribute.Int("step", s))
					c.End()
				}
				SetAttributes(srv, attribute.String("req", id))
				srv.End()
				if i%2 == 0 {
					time.Sleep(time.Millisecond) // let exports keep up with most spans
				}
			}
		}()
	}
	wg.Wait()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := col.spans()
	// Each trace's server span: its request and span ID.
	type server struct{ req, spanID string }
	servers := map[string]server{}
	attr := func(kvs []*commonpb.KeyValue, key string) string {
		for _, kv := range kvs {
			if kv.Key == key {
				if s := kv.Value.GetStringValue(); s != "" {
					return s
				}
				return strconv.FormatInt(kv.Value.GetIntValue(), 10)
			}
		}
		return ""
	}
	spanIDs := map[string]bool{}
	for _, s := range spans {
		sid := hex.EncodeToString(s.SpanId)
		if spanIDs[sid] {
			t.Fatalf("span ID %s exported twice", sid)
		}
		spanIDs[sid] = true
		if s.Name == "promgate" {
			servers[hex.EncodeToString(s.TraceId)] = server{attr(s.Attributes, "req"), sid}
		}
	}
	for _, s := range spans {
		if s.Name == "promgate" {
			if len(s.ParentSpanId) != 0 || attr(s.Attributes, "req") == "" || len(s.Attributes) != 1 {
				t.Fatalf("server span %v", s)
			}
			continue
		}
		srv, ok := servers[hex.EncodeToString(s.TraceId)]
		if !ok {
			continue // its server span was dropped
		}
		step := attr(s.Attributes, "step")
		switch {
		case attr(s.Attributes, "req") != srv.req:
			t.Fatalf("span %q of request %s has request %q's attributes", s.Name, srv.req, attr(s.Attributes, "req"))
		case s.Name != "step"+step || len(s.Attributes) != 2:
			t.Fatalf("span %q has attributes %v", s.Name, s.Attributes)
		case hex.EncodeToString(s.ParentSpanId) != srv.spanID:
			t.Fatalf("span %q of request %s has parent %x, want its server span %s", s.Name, srv.req, s.ParentSpanId, srv.spanID)
		case s.EndTimeUnixNano < s.StartTimeUnixNano || s.StartTimeUnixNano == 0:
			t.Fatalf("span %q: times %d, %d", s.Name, s.StartTimeUnixNano, s.EndTimeUnixNano)
		}
	}
	exported, dropped := spansCounted(t, reg, "exported"), spansCounted(t, reg, "dropped")
	if total := workers * requests * (steps + 1); int(exported+dropped) != total || int(exported) != len(spans) {
		t.Errorf("%v exported (the collector got %d) and %v dropped; want %d in all", exported, len(spans), dropped, total)
	}
	if len(servers) == 0 || exported == 0 {
		t.Fatal("nothing exported")
	}
	t.Logf("%d spans exported, %v dropped, %d requests' server spans", len(spans), dropped, len(servers))
}

// spansCounted returns promgate_tracing_spans_total{result} from reg.
func spansCounted(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == "promgate_tracing_spans_total" && l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no promgate_tracing_spans_total{result=%q}", result)
	return 0
}
