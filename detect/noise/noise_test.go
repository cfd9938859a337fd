package noise

import (
	"context"
	"testing"
	"time"

	"github.com/promgate/promgate/detect"
)

// TestRun runs the benchmark on two detectors: one with a counter attack
// and one whose attack is a new series.
func TestRun(t *testing.T) {
	cat, err := detect.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"gateway_audit_write_failure", "k8s_new_ingress"} {
		d, _ := cat.Get(id)
		r, err := Run(context.Background(), d, 22)
		if err != nil {
			t.Fatal(err)
		}
		if r.FalseAlerts != 0 || !r.Detected || r.TimeToDetect > 10*time.Minute {
			t.Errorf("%s: %+v, want no false alert and the attack seen within 10 minutes", id, r)
		}
		again, err := Run(context.Background(), d, 22)
		if err != nil || again != r {
			t.Errorf("%s: a second run gave %+v, %v; want the same (deterministic)", id, again, err)
		}
	}
}

// TestGenerate checks the shapes of the generated traffic.
func TestGenerate(t *testing.T) {
	cat, err := detect.Load()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := cat.Get("k8s_apiserver_unauthorized")
	var ss []noiseSeries
	for i, in := range d.Test.Benign.Series {
		s, err := classify(in, d.Test.Benign.Step(), uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if s.kind != kindCounter || s.rate <= 0 {
			t.Fatalf("%s: kind %d rate %v, want a growing counter", in.Series, s.kind, s.rate)
		}
		ss = append(ss, s)
	}
	points := generate(ss[:1], nil, nil)
	byMinute := map[int]float64{}
	for _, p := range points {
		byMinute[int(p.t/time.Minute.Milliseconds())] = p.v
	}
	if _, ok := byMinute[720]; ok {
		t.Error("no scrape gap on Monday 12:00")
	}
	if deployMin := 1*1440 + 600; byMinute[deployMin] != 0 || byMinute[deployMin-1] == 0 {
		t.Errorf("no counter reset at the Tuesday deploy: %v then %v", byMinute[1*1440+599], byMinute[1*1440+600])
	}
	rate := func(from int) float64 { return byMinute[from+60] - byMinute[from] }
	lastWeek := (Weeks - 1) * 7 * 1440
	// Afternoon over night, weekday over weekend, normal Thursday over the
	// holiday.
	if rate(15*60) <= rate(4*60) || rate(2*1440+15*60) <= rate(5*1440+15*60) || rate(3*1440+15*60) <= rate(lastWeek+3*1440+15*60) {
		t.Errorf("seasonality missing: afternoon %v night %v weekend %v holiday %v",
			rate(15*60), rate(4*60), rate(5*1440+15*60), rate(lastWeek+3*1440+15*60))
	}
}
