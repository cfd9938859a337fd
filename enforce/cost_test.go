package enforce

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
// no field is negative, that points and steps are consistent, and that an
// instant query's Lookback is at least Query.Lookback plus nothing negative.
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

// BenchmarkCost20 measures the cost of the 20-selector query of
// BenchmarkRewrite20 (target: a few µs at most, next to the rewrite), as an
// instant query, a 90-day Grafana panel, and with @ modifiers, which need
// two more walks.
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
