package detect

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/config"
)

// TestEvaluatorRestoresForState: at the first evaluation, a series that the
// history shows active for the whole for: fires at once; one active for
// part of it stays pending until the rest has passed; a failed or empty
// restore query leaves the clock at zero.
func TestEvaluatorRestoresForState(t *testing.T) {
	const restore = "count_over_time((slow_metric > 0)[2m:1m])"
	tests := []struct {
		name        string
		count       float64 // steps of history the series was returned at
		firingAfter int     // ticks until it fires
	}{
		{name: "whole for: in history", count: 2, firingAfter: 1},
		{name: "half of for: in history", count: 1, firingAfter: 3},
		{name: "no history", count: 0, firingAfter: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat, err := parseCatalog([]byte(testCatalog))
			if err != nil {
				t.Fatal(err)
			}
			q := &fakeQuerier{}
			e, err := NewEvaluator(config.Detectors{Enabled: true, Interval: model.Duration(time.Minute)}, cat, q, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			e.now = func() time.Time { return now }
			answers := map[string]model.Vector{"slow_metric > 0": vec("slow_metric", "instance", "a")}
			if tc.count > 0 {
				answers[restore] = model.Vector{{Metric: model.Metric{"instance": "a"}, Value: model.SampleValue(tc.count)}}
			}
			q.set(answers, nil)
			for i := 1; i <= 3; i++ {
				e.Tick(context.Background())
				got := e.State()["slow"].State
				want := StatePending
				if i >= tc.firingAfter {
					want = StateFiring
				}
				if got != want {
					t.Errorf("tick %d: state %q, want %q", i, got, want)
				}
				now = now.Add(time.Minute)
			}
			n := 0
			for _, a := range q.asked {
				if a == restore {
					n++
				}
			}
			if n != 1 {
				t.Errorf("the restore query was asked %d times, want once", n)
			}
		})
	}
}
