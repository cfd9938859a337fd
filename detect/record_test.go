package detect

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/teststorage"
)

func TestInlineRecords(t *testing.T) {
	recs := map[string]string{
		"promgate:x:rate5m":  `sum by (job) (rate(x_total[5m]))`,
		"promgate:y:minus_t": `y - time()`,
	}
	tests := []struct{ in, want, wantErr string }{
		{`promgate:x:rate5m > 1`, `(sum by (job) (rate(x_total[5m]))) > 1`, ""},
		{`promgate:x:rate5m offset 1w`, `(sum by (job) (rate(x_total[5m] offset 1w)))`, ""},
		{`avg_over_time(promgate:x:rate5m[1h] offset 20m)`, `avg_over_time((sum by (job) (rate(x_total[5m])))[1h:1m] offset 20m)`, ""},
		{`avg_over_time(promgate:x:rate5m[6h])`, `avg_over_time((sum by (job) (rate(x_total[5m])))[6h:5m])`, ""},
		{`predict_linear(promgate:y:minus_t[6h], 3600) < 0`, `predict_linear((y - time())[6h:5m], 3600) < 0`, ""},
		{`max_over_time(promgate:x:rate5m[1h:5m])`, `max_over_time((sum by (job) (rate(x_total[5m])))[1h:5m])`, ""},
		{`other_metric + on (job) promgate:x:rate5m`, `other_metric + on (job) (sum by (job) (rate(x_total[5m])))`, ""},
		{`promgate:x:rate5m{job="a"}`, "", "select it by name only"},
	}
	parsed, err := parseRecords([]Record{{"promgate:x:rate5m", recs["promgate:x:rate5m"]}, {"promgate:y:minus_t", recs["promgate:y:minus_t"]}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		e, err := stockParser.ParseExpr(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := inlineRecords(e, parsed)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("inline(%s) = %v, want error %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("inline(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
		if _, err := stockParser.ParseExpr(got.String()); err != nil {
			t.Errorf("inline(%s) does not parse back: %v", tc.in, err)
		}
	}
}

func TestParseCatalogRefusesRecords(t *testing.T) {
	doc := `
detectors:
- id: x
  title: t
  description: d
  severity: warning
  attack: [T1110]
  sources: [app]
  scope: cluster
  for: 0m
  record:
  - {record: '%s', expr: '%s'}
  expr: '%s'
  summary: s
  runbook: r
  test:
    fire: {description: f, eval: 5m, series: [{series: 'up{job="a"}', values: '0x5'}], alerts: [{job: a}]}
    benign: {description: b, eval: 5m, series: [{series: 'up{job="a"}', values: '1x5'}]}
`
	tests := []struct{ name, record, rexpr, expr, want string }{
		{"valid", "promgate:up:min", "min by (job) (up)", "promgate:up:min == 0", ""},
		{"bad name", "up_min", "min by (job) (up)", "up_min == 0", "must be named promgate:"},
		{"unused", "promgate:up:min", "min by (job) (up)", "up == 0", "is not read by expr"},
		{"matcher on a record", "promgate:up:min", "min by (job) (up)", `promgate:up:min{job="a"} == 0`, "select it by name only"},
		{"time with offset", "promgate:up:age", "time() - up", "promgate:up:age offset 1h > 0", "calls time()"},
		{"experimental in a record", "promgate:up:mad", "mad_over_time(up[5m])", "promgate:up:mad > 0", "does not parse with the stock parser"},
		{"record of a record", "promgate:up:min", "promgate:other:x", "promgate:up:min == 0", "reads another recorded series"},
		{"other experimental function", "promgate:up:min", "min by (job) (up)", "mad_over_time(promgate:up:min[5m]) > 0", "does not parse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCatalog(fmt.Appendf(nil, doc, tc.record, tc.rexpr, tc.expr))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("parseCatalog = %v, want success", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("parseCatalog = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestRecordsMatchInlined evaluates every detector with recording rules the
// way the exported rules run: the records at every sample time from t=0, written back
// into the TSDB as Prometheus' rule manager does, then the alert expression
// over the recorded series. At the evaluation time of both scenarios it must
// return the same series as the self-contained expression that the proofs
// and the gateway evaluate.
func TestRecordsMatchInlined(t *testing.T) {
	for _, d := range mustLoad(t).List() {
		if len(d.Records) == 0 {
			continue
		}
		t.Run(d.ID, func(t *testing.T) {
			t.Parallel()
			for name, s := range map[string]Scenario{"fire": d.Test.Fire, "benign": d.Test.Benign} {
				ctx := context.Background()
				st := teststorage.New(t)
				eng := newEngine(t, d.parser())
				query := func(q string, at time.Time) []string {
					qq, err := eng.NewInstantQuery(ctx, st, nil, q, at)
					if err != nil {
						t.Fatal(err)
					}
					defer qq.Close()
					res := qq.Exec(ctx)
					vec, err := res.Vector()
					if err != nil {
						t.Fatalf("%s at %v: %v", q, at, err)
					}
					var out []string
					for _, smp := range vec {
						out = append(out, smp.Metric.DropReserved(func(n string) bool { return n == model.MetricNameLabel }).String())
					}
					return out
				}
				// The scenario's samples and the recorded ones are
				// appended in time order, as scraping and the rule
				// manager would.
				type point struct {
					lbls labels.Labels
					Sample
				}
				var points []point
				for _, in := range s.Series {
					lbls, samples, err := in.Samples(s.step())
					if err != nil {
						t.Fatal(err)
					}
					for _, smp := range samples {
						points = append(points, point{lbls, smp})
					}
				}
				slices.SortStableFunc(points, func(a, b point) int { return cmp.Compare(a.Offset, b.Offset) })
				start := time.Unix(0, 0).UTC()
				at := start.Add(s.Eval)
				// Records are evaluated at the scenario's sample
				// interval, as a rule group of that interval would.
				for ts := start; !ts.After(at); ts = ts.Add(s.step()) {
					app := st.Appender(ctx)
					for len(points) > 0 && points[0].Offset <= ts.Sub(start) {
						if _, err := app.Append(0, points[0].lbls, points[0].Offset.Milliseconds(), points[0].Value); err != nil {
							t.Fatal(err)
						}
						points = points[1:]
					}
					if err := app.Commit(); err != nil {
						t.Fatal(err)
					}
					app = st.Appender(ctx)
					for _, r := range d.Records {
						qq, err := eng.NewInstantQuery(ctx, st, nil, r.Expr, ts)
						if err != nil {
							t.Fatal(err)
						}
						vec, err := qq.Exec(ctx).Vector()
						if err != nil {
							t.Fatal(err)
						}
						for _, smp := range vec {
							b := labels.NewBuilder(smp.Metric)
							b.Set(model.MetricNameLabel, r.Name)
							if _, err := app.Append(0, b.Labels(), ts.UnixMilli(), smp.F); err != nil {
								t.Fatal(err)
							}
						}
						qq.Close()
					}
					if err := app.Commit(); err != nil {
						t.Fatal(err)
					}
				}
				rule, inlined := query(d.RuleExpr, at), query(d.Expr, at)
				if diff := gocmp.Diff(inlined, rule); diff != "" {
					t.Errorf("%s at %v: rule form (-inlined +recorded):\n%s", name, s.Eval, diff)
				}
				if name == "fire" && len(rule) == 0 {
					t.Errorf("fire at %v: the rule form returns nothing", s.Eval)
				}
			}
		})
	}
}
