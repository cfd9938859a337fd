package enforce

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// costT0 is the evaluation time of the cost tests: @ 1699996400 is an hour
// before it.
var costT0 = time.Unix(1_700_000_000, 0).UTC()

// instantAt returns the parameters of an instant query at t.
func instantAt(t time.Time) CostParams { return CostParams{Start: t, End: t} }

// rangeOver returns the parameters of a range query over the d before
// costT0.
func rangeOver(d, step time.Duration) CostParams {
	return CostParams{Start: costT0.Add(-d), End: costT0, Step: step}
}

// maxSpanPoints is the number of points of a subquery at 1ms whose span
// saturates a time.Duration.
const maxSpanPoints = math.MaxInt64/int64(time.Millisecond) + 1

func TestCost(t *testing.T) {
	instant := instantAt(costT0)
	hour := rangeOver(time.Hour, 15*time.Second)
	for _, tc := range []struct {
		name  string
		query string
		p     CostParams
		want  Cost
	}{
		{
			name:  "instant selector",
			query: `up`,
			p:     instant,
			want:  Cost{Steps: 1, Points: 1, Samples: 20, Lookback: 5 * time.Minute},
		},
		{
			name:  "instant selector over a range reads the lookback once, then one sample a step",
			query: `up`,
			p:     hour,
			want:  Cost{Steps: 241, Points: 241, Samples: 20 + 240, Lookback: 5 * time.Minute},
		},
		{
			name:  "rate over an hour at 15s",
			query: `rate(up[5m])`,
			p:     hour,
			want:  Cost{Steps: 241, Points: 241, Samples: 241 * 20, Lookback: 5 * time.Minute},
		},
		{
			name:  "no selectors, a day at 1ms",
			query: `count_over_time(vector(1)[1d:1ms])`,
			p:     instant,
			want:  Cost{Steps: 1, Points: 1 + 86_400_000, SubqueryPoints: 86_400_000, Samples: 86_400_000},
		},
		{
			name:  "selector, a day at 1ms",
			query: `count_over_time(up[1d:1ms])`,
			p:     instant,
			want: Cost{
				Steps: 1, Points: 1 + 86_400_000, SubqueryPoints: 86_400_000,
				// The function reads every point; up is read at every point:
				// the lookback window at the first, one sample at each other.
				Samples:  86_400_000 + 20 + 86_399_999,
				Lookback: day + 5*time.Minute,
			},
		},
		{
			name:  "nested subqueries add their spans",
			query: `max_over_time(rate(up[5m])[1h:1m])[1d:5m]`,
			p:     instant,
			want: Cost{
				// [1d:5m] has 288 points, 5m apart; [1h:1m] spans those 287*5m
				// plus its hour: 1495 points.
				Steps: 1, Points: 1 + 288 + 1495, SubqueryPoints: 1495,
				Samples:  288 + 288*60 + 1495*20,
				Lookback: day + time.Hour + 5*time.Minute,
			},
		},
		{
			name:  "subquery under a range query spans the range",
			query: `max_over_time(rate(up[5m])[1h:1m])`,
			p:     hour,
			want: Cost{
				Steps: 241, Points: 241 + 120, SubqueryPoints: 120,
				Samples:  241*60 + 120*20,
				Lookback: time.Hour + 5*time.Minute,
			},
		},
		{
			name:  "subquery with a small range under a large step",
			query: `count_over_time(vector(1)[1m:1ms])`,
			p:     rangeOver(90*day, day),
			want: Cost{
				// Outer steps times points would say 91*60,000.
				Steps: 91, Points: 91 + 7_776_060_000, SubqueryPoints: 7_776_060_000,
				Samples: 91 * 60_000,
			},
		},
		{
			name:  "subquery without a step takes EvalInterval",
			query: `sum_over_time(up[5m:])`,
			p:     instant,
			want: Cost{
				Steps: 1, Points: 1 + 5, SubqueryPoints: 5,
				Samples:  5 + 20 + 4*4,
				Lookback: 10 * time.Minute,
			},
		},
		{
			name:  "offset",
			query: `up offset 1w`,
			p:     instant,
			want:  Cost{Steps: 1, Points: 1, Samples: 20, Lookback: week + 5*time.Minute},
		},
		{
			name:  "negative offset",
			query: `up offset -1h`,
			p:     instant,
			want:  Cost{Steps: 1, Points: 1, Samples: 20},
		},
		{
			name:  "pinned an hour before the evaluation",
			query: `up @ 1699996400`,
			p:     instant,
			want:  Cost{Steps: 1, Points: 1, Samples: 20, Lookback: time.Hour + 5*time.Minute},
		},
		{
			name:  "pinned selector is read once in a range query",
			query: `rate(up[5m] @ 1699996400)`,
			p:     hour,
			want:  Cost{Steps: 241, Points: 241, Samples: 20, Lookback: 5 * time.Minute},
		},
		{
			name:  "pinned at end() reads after the start",
			query: `rate(up[5m] @ end())`,
			p:     hour,
			want:  Cost{Steps: 241, Points: 241, Samples: 20},
		},
		{
			name:  "pinned at start()",
			query: `sum(up @ start()) + rate(up[5m])`,
			p:     hour,
			want:  Cost{Steps: 241, Points: 241, Samples: 20 + 241*20, Lookback: 5 * time.Minute},
		},
		{
			name:  "timestamp of a pinned selector is step-invariant",
			query: `timestamp(up @ end())`,
			p:     hour,
			want:  Cost{Steps: 241, Points: 241, Samples: 20},
		},
		{
			name:  "predict_linear is never step-invariant",
			query: `predict_linear(up[5m] @ end(), 60)`,
			p:     hour,
			want:  Cost{Steps: 241, Points: 241, Samples: 241 * 20},
		},
		{
			name:  "pinned subquery is evaluated once",
			query: `max_over_time(rate(up[5m])[1h:1m] @ 1699996400)`,
			p:     hour,
			want: Cost{
				Steps: 241, Points: 241 + 60, SubqueryPoints: 60,
				Samples:  60 + 60*20,
				Lookback: time.Hour + 5*time.Minute,
			},
		},
		{
			name:  "pinned subquery under predict_linear spans the range",
			query: `predict_linear(rate(up[5m])[1h:1m] @ 1699996400, 60)`,
			p:     hour,
			want: Cost{
				Steps: 241, Points: 241 + 120, SubqueryPoints: 120,
				Samples:  241*60 + 120*20,
				Lookback: time.Hour + 5*time.Minute,
			},
		},
		{
			name:  "aggregation parameter",
			query: `topk(scalar(up), up)`,
			p:     instant,
			want:  Cost{Steps: 1, Points: 1, Samples: 40, Lookback: 5 * time.Minute},
		},
		{
			name:  "no selectors",
			query: `1 + 1`,
			p:     hour,
			want:  Cost{Steps: 241, Points: 241},
		},
		{
			name:  "subqueries nested thrice saturate",
			query: `max_over_time(max_over_time(max_over_time(rate(up[100000d])[100000d:1ms])[100000d:1ms])[100000d:1ms])`,
			p:     instant,
			want: Cost{
				// The outer subquery has 8.64e12 points; the spans of the
				// inner ones pass the 292 years a time.Duration holds and
				// saturate there.
				Steps: 1, Points: 1 + 8_640_000_000_000 + 2*maxSpanPoints,
				SubqueryPoints: maxSpanPoints,
				Samples:        math.MaxInt64,
				Lookback:       math.MaxInt64,
			},
		},
		{
			name:  "one nanosecond steps over centuries saturate",
			query: `count_over_time(up[1d:1ms])`,
			p:     CostParams{Start: time.Unix(0, 0), End: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), Step: 1},
			want: Cost{
				Steps: math.MaxInt64, Points: math.MaxInt64,
				SubqueryPoints: maxSpanPoints,
				Samples:        math.MaxInt64,
				Lookback:       day + 5*time.Minute,
			},
		},
		{
			name:  "defaults can be changed",
			query: `up`,
			p:     CostParams{Start: costT0, End: costT0, ScrapeInterval: time.Minute, LookbackDelta: 10 * time.Minute},
			want:  Cost{Steps: 1, Points: 1, Samples: 10, Lookback: 10 * time.Minute},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, q.Cost(tc.p)); diff != "" {
				t.Errorf("ParseQuery(%q).Cost() mismatch (-want +got):\n%s", tc.query, diff)
			}
		})
	}
}

func TestCostNil(t *testing.T) {
	var q *Query
	if got := q.Cost(instantAt(costT0)); got != (Cost{}) {
		t.Errorf("(*Query)(nil).Cost() = %+v, want zero", got)
	}
}

func TestSaturating(t *testing.T) {
	for _, tc := range []struct {
		a, b, sum, product int64
	}{
		{0, 0, 0, 0},
		{3, 4, 7, 12},
		{math.MaxInt64, 1, math.MaxInt64, math.MaxInt64},
		{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64},
		{1 << 31, 1 << 31, 1 << 32, 1 << 62},
		{1 << 32, 1 << 31, 1<<32 + 1<<31, math.MaxInt64},
		{1 << 32, 1 << 32, 1 << 33, math.MaxInt64},
	} {
		if got := satAdd(tc.a, tc.b); got != tc.sum {
			t.Errorf("satAdd(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.sum)
		}
		if got := satMul(tc.a, tc.b); got != tc.product {
			t.Errorf("satMul(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.product)
		}
	}
}

// costParams are the evaluations every fuzzed query is costed under: an
// instant query, a Grafana panel over an hour and over 90 days, a range
// query with a step larger than most subqueries, and degenerate parameters
// (a 1ns step over centuries, an end before the start, 1ns intervals).
var costParams = []CostParams{
	instantAt(costT0),
	rangeOver(time.Hour, 15*time.Second),
	rangeOver(90*day, time.Hour),
	rangeOver(90*day, day),
	{Start: time.Unix(0, 0), End: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), Step: 1},
	{Start: costT0, End: costT0.Add(-time.Hour), Step: -time.Second},
	{Start: costT0.Add(-time.Hour), End: costT0, Step: time.Minute, ScrapeInterval: 1, EvalInterval: 1, LookbackDelta: 1},
}

// FuzzCost checks that Cost never panics on a query ParseQuery accepts, that
// no field is negative, that points and steps are consistent, and that the
// Lookback of an instant query is at least Query.Lookback's, which counts
// neither the lookback delta nor anything Cost does not.
func FuzzCost(f *testing.F) {
	for _, c := range loadGolden(f) {
		f.Add(c.query)
	}
	f.Add(query20())
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > maxFuzzInput {
			t.Skip()
		}
		q, err := ParseQuery(s)
		if err != nil {
			return
		}
		for _, p := range costParams {
			c := q.Cost(p)
			if c.Steps < 1 || c.Points < c.Steps || c.SubqueryPoints < 0 || c.SubqueryPoints > c.Points ||
				c.Samples < 0 || c.Lookback < 0 {
				t.Fatalf("ParseQuery(%q).Cost(%+v) = %+v", s, p, c)
			}
			if p.Start.Equal(p.End) {
				if lb := q.Lookback(p.Start); c.Lookback < lb {
					t.Fatalf("ParseQuery(%q).Cost(%+v).Lookback = %v, less than Lookback() = %v", s, p, c.Lookback, lb)
				}
			}
		}
	})
}

func TestCostAllocs(t *testing.T) {
	for _, s := range []string{query20(), pinned20()} {
		q, err := ParseQuery(s)
		if err != nil {
			t.Fatal(err)
		}
		p := rangeOver(90*day, time.Hour)
		if n := testing.AllocsPerRun(100, func() { q.Cost(p) }); n != 0 {
			t.Errorf("Cost(%.40q...) allocates %v times, want 0", s, n)
		}
	}
}

// pinned20 is query20 with every range selector pinned at the end of the
// range, so that Cost looks for step-invariant subtrees.
func pinned20() string { return strings.ReplaceAll(query20(), "[5m]", "[5m] @ end()") }

// BenchmarkCost20 measures Cost of the 20-selector query of
// BenchmarkRewrite20 (target: under 5 µs, without allocating) as an instant
// query and as a 90-day Grafana panel, and of the same query with @
// modifiers, which take two more walks.
func BenchmarkCost20(b *testing.B) {
	for _, tc := range []struct {
		name  string
		query string
		p     CostParams
	}{
		{"instant", query20(), instantAt(costT0)},
		{"range", query20(), rangeOver(90*day, time.Hour)},
		{"pinned", pinned20(), rangeOver(90*day, time.Hour)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			q, err := ParseQuery(tc.query)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				q.Cost(tc.p)
			}
		})
	}
}

// Suggested limits on Cost, per series. Every Grafana time picker up to 90
// days at its automatic step, the detector catalog and subqueries such as
// [1h:1m] fit well under them; [1d:1ms] does not.
const (
	suggestedMaxQueryPoints    = 2_000_000
	suggestedMaxSubqueryPoints = 1_000_000
	suggestedMaxSamples        = 250_000_000
)

// exceeded returns the suggested limits c exceeds.
func exceeded(c Cost) []string {
	var l []string
	if c.Points > suggestedMaxQueryPoints {
		l = append(l, "max_query_points")
	}
	if c.SubqueryPoints > suggestedMaxSubqueryPoints {
		l = append(l, "max_subquery_points")
	}
	if c.Samples > suggestedMaxSamples {
		l = append(l, "max_samples_estimate")
	}
	return l
}

// grafanaLadder is Grafana's roundInterval: an interval in milliseconds
// below the first value is rounded to the second.
var grafanaLadder = [...][2]int64{
	{10, 1}, {15, 10}, {35, 20}, {75, 50}, {150, 100}, {350, 200}, {750, 500},
	{1500, 1000}, {3500, 2000}, {7500, 5000}, {12500, 10000}, {17500, 15000},
	{25000, 20000}, {45000, 30000}, {90000, 60000}, {210000, 120000},
	{450000, 300000}, {750000, 600000}, {1050000, 900000}, {1500000, 1200000},
	{2700000, 1800000}, {5400000, 3600000}, {9000000, 7200000},
	{16200000, 10800000}, {32400000, 21600000}, {86400000, 43200000},
	{604800000, 86400000}, {1814400000, 604800000}, {3628800000, 2592000000},
}

// grafanaStep returns the step Grafana's Prometheus data source sends for a
// panel of maxDataPoints over rng: rng/maxDataPoints rounded by the ladder,
// at least the 15s minimum interval and rng/11000 (Prometheus refuses more
// than 11,000 points), in whole seconds.
func grafanaStep(rng time.Duration, maxDataPoints int64) time.Duration {
	ms := rng.Milliseconds() / maxDataPoints
	r := int64(31536000000)
	for _, l := range grafanaLadder {
		if ms < l[0] {
			r = l[1]
			break
		}
	}
	safe := (rng + 11000*time.Second - 1) / 11000 / time.Second * time.Second
	return max(time.Duration(r)*time.Millisecond, 15*time.Second, safe)
}

// TestCostLimits checks the suggested limits against Grafana panels over
// every time picker range up to 90 days, for panels 1000 and 1500 pixels
// wide and at Grafana's cap of 11,000 points, against detector queries run
// as instant queries, and against queries that must be refused. Run with -v
// to see the figures.
func TestCostLimits(t *testing.T) {
	panels := []string{
		`rate(x[5m])`,
		`sum by (pod) (rate(x[$__rate_interval]))`,
		`max_over_time(x[$__interval])`,
		`max_over_time(x[1h])`,
		`avg_over_time(x[1d] offset 1w)`,
		`max_over_time(rate(x[5m])[1h:1m])`,
		`max_over_time(rate(x[5m])[1h:])`,
		`avg_over_time(rate(x[5m])[1h:15s])`,
		`(sum(rate(x[5m])) - avg_over_time(sum(rate(x[5m]))[1d:5m])) / stddev_over_time(sum(rate(x[5m]))[1d:5m])`,
		query20(),
	}
	ranges := []time.Duration{
		5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour,
		12 * time.Hour, day, 2 * day, week, 30 * day, 90 * day,
	}
	for _, s := range panels {
		var worst Cost
		for _, rng := range ranges {
			for _, width := range []int64{1000, 1500, 11000} {
				step := grafanaStep(rng, width)
				q, err := ParseQuery(strings.NewReplacer(
					"$__rate_interval", model.Duration(max(step+15*time.Second, time.Minute)).String(),
					"$__interval", model.Duration(step).String(),
				).Replace(s))
				if err != nil {
					t.Fatal(err)
				}
				c := q.Cost(rangeOver(rng, step))
				if l := exceeded(c); l != nil {
					t.Errorf("%.60q over %v at %v: %+v exceeds %v", s, rng, step, c, l)
				}
				worst.Steps = max(worst.Steps, c.Steps)
				worst.Points = max(worst.Points, c.Points)
				worst.SubqueryPoints = max(worst.SubqueryPoints, c.SubqueryPoints)
				worst.Samples = max(worst.Samples, c.Samples)
				worst.Lookback = max(worst.Lookback, c.Lookback)
			}
		}
		t.Logf("panel %.60q, worst over the time picker: %+v", s, worst)
	}

	instant := instantAt(costT0)
	for _, tc := range []struct {
		query  string
		p      CostParams
		refuse bool
	}{
		{`rate(x[5m])`, instant, false},
		{`max_over_time(x[1h])`, instant, false},
		{`avg_over_time(x[1d] offset 1w)`, instant, false},
		{`max_over_time(rate(x[5m])[1h:1m])`, instant, false},
		{`max_over_time(rate(x[5m])[1d:1m])`, instant, false},
		{`max_over_time(rate(x[5m])[1h:1m])[1d:5m]`, instant, false},
		{`count_over_time(vector(1)[1d:1ms])`, instant, true},
		{`count_over_time(up[1d:1ms])`, instant, true},
		{`count_over_time(vector(1)[1m:1ms])`, rangeOver(day, time.Hour), true},
		{`max_over_time(x[1y:1s])`, instant, true},
		{`max_over_time(x[90d])`, rangeOver(90*day, time.Hour), true},
	} {
		q, err := ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		c := q.Cost(tc.p)
		l := exceeded(c)
		if (l != nil) != tc.refuse {
			t.Errorf("%q step %v: %+v exceeds %v, want refused %v", tc.query, tc.p.Step, c, l, tc.refuse)
		}
		t.Logf("%q step %v: %+v exceeds %v", tc.query, tc.p.Step, c, l)
	}
}

func ExampleQuery_Cost() {
	q, err := ParseQuery(`count_over_time(vector(1)[1d:1ms])`)
	if err != nil {
		panic(err)
	}
	t := time.Unix(1_700_000_000, 0)
	c := q.Cost(CostParams{Start: t, End: t})
	fmt.Println(c.Steps, c.SubqueryPoints, c.Points)
	// Output: 1 86400000 86400001
}
