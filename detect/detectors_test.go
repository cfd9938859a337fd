package detect

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
)

func mustLoad(t testing.TB) *Catalog {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	return c
}

// TestQueriesParseWithStockParser checks every expression, and every
// recording rule, with the parser an upstream Prometheus uses without feature
// flags: no experimental functions, no duration expressions, no extended
// range selectors, and an instant vector as the result. The one exception is
// a detector whose Dialect is double_exponential_smoothing: it may call that
// function and no other experimental one.
func TestQueriesParseWithStockParser(t *testing.T) {
	stock := parser.NewParser(parser.Options{})
	experimental := parser.NewParser(parser.Options{EnableExperimentalFunctions: true})
	for _, d := range mustLoad(t).List() {
		p := stock
		if d.Dialect != "" {
			if d.Dialect != FuncSmoothing {
				t.Errorf("%s: dialect %q", d.ID, d.Dialect)
			}
			p = experimental
		}
		for _, q := range []string{d.Expr, d.RuleExpr} {
			expr, err := p.ParseExpr(q)
			if err != nil {
				t.Errorf("%s: ParseExpr = %v", d.ID, err)
				continue
			}
			if expr.Type() != parser.ValueTypeVector {
				t.Errorf("%s: expression returns %s, want vector", d.ID, expr.Type())
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if c, ok := n.(*parser.Call); ok && c.Func.Experimental && (d.Dialect == "" || c.Func.Name != FuncSmoothing) {
					t.Errorf("%s: uses experimental function %s", d.ID, c.Func.Name)
				}
				return nil
			})
		}
		for _, r := range d.Records {
			if _, err := stock.ParseExpr(r.Expr); err != nil {
				t.Errorf("%s: record %s: %v", d.ID, r.Name, err)
			}
		}
	}
}

// TestCatalogShape pins what the issue asks of the catalog as a whole.
func TestCatalogShape(t *testing.T) {
	c := mustLoad(t)
	if got := len(c.List()); got != 52 {
		t.Errorf("catalog has %d detectors, want 52", got)
	}
	// Issue 22: at least six forecast or exhaustion detectors.
	forecasts := 0
	for _, d := range c.List() {
		if strings.Contains(d.RuleExpr, "predict_linear") || d.Dialect != "" || strings.Contains(d.RuleExpr, "offset 2w") {
			forecasts++
		}
	}
	if forecasts < 6 {
		t.Errorf("catalog has %d forecast or exhaustion detectors, want at least 6", forecasts)
	}
	for _, d := range c.List() {
		if got, ok := c.Get(d.ID); !ok || got.ID != d.ID {
			t.Errorf("Get(%q) = %v, %v", d.ID, got.ID, ok)
		}
	}
	if _, ok := c.Get("no_such_detector"); ok {
		t.Error(`Get("no_such_detector") found something`)
	}
	// Finding 6: absent() fires when enforcement hides a series.
	d, _ := c.Get("security_sensor_down")
	if !d.UsesAbsent || d.Scope != ScopeCluster {
		t.Errorf("security_sensor_down: UsesAbsent = %v, scope = %q; want true, cluster", d.UsesAbsent, d.Scope)
	}
	// Exporter flags that are off by default must be named.
	for id, flag := range map[string]string{
		"critical_daemon_restart":       "--collector.systemd",
		"node_remote_login":             "--collector.logind",
		"k8s_new_cluster_admin_binding": "clusterrolebindings",
	} {
		if d, _ := c.Get(id); !strings.Contains(d.Requires, flag) {
			t.Errorf("%s: requires = %q, want it to name %s", id, d.Requires, flag)
		}
	}
}

func TestParseCatalogRefuses(t *testing.T) {
	valid := `
detectors:
- id: x
  title: t
  description: d
  severity: warning
  attack: [T1110]
  sources: [app]
  scope: %s
  for: 0m
  expr: '%s'
  summary: '%s'
  runbook: r
  test:
    fire: {description: f, eval: 5m, series: [{series: 'up{job="a"}', values: '0x5'}], alerts: [{job: a}]}
    benign: {description: b, eval: 5m, series: [{series: 'up{job="a"}', values: '1x5'}]}
`
	tests := []struct {
		name, scope, expr, summary, want string
	}{
		{"valid", "cluster", `up == 0`, `{{ $labels.job }}`, ""},
		{"parse error", "cluster", `up ==`, `s`, "does not parse"},
		{"experimental function", "cluster", `mad_over_time(up[5m]) > 1`, `s`, "does not parse"},
		{"scalar result", "cluster", `scalar(up)`, `s`, "not an instant vector"},
		{"range result", "cluster", `up[5m]`, `s`, "not an instant vector"},
		{"absent outside cluster scope", "ns", `absent(up{job="a"})`, `s`, "scope must be cluster"},
		{"unknown scope", "tenant", `up == 0`, `s`, "is not ns, ns* or cluster"},
		{"value in summary", "cluster", `up == 0`, `{{ $value }}`, "must not use $value"},
		{"template function", "cluster", `up == 0`, `{{ humanize 1 }}`, "summary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCatalog(fmt.Appendf(nil, valid, tc.scope, tc.expr, tc.summary))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("parseCatalog = %v, want success", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("parseCatalog = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// newEngine has the options of an upstream Prometheus without feature flags,
// with budgets large enough for 1d and 7d baselines, and parses with p.
func newEngine(t testing.TB, p parser.Parser) *promql.Engine {
	return promqltest.NewTestEngineWithOpts(t, promql.EngineOpts{
		MaxSamples:               50_000_000,
		Timeout:                  time.Minute,
		LookbackDelta:            5 * time.Minute,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		Parser:                   p,
	})
}

// loadScenario stores a scenario's samples in a fresh TSDB. The samples of
// all series are appended in time order: promqltest's load command appends
// series in map order, which the head refuses as out of bounds when a series
// that starts late (a new service edge after a day of traffic) comes first.
func loadScenario(t testing.TB, s Scenario) storage.Storage {
	t.Helper()
	st := teststorage.New(t)
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
	app := st.Appender(context.Background())
	for _, p := range points {
		if _, err := app.Append(0, p.lbls, p.Offset.Milliseconds(), p.Value); err != nil {
			t.Fatalf("append %s at %v: %v", p.lbls, p.Offset, err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDetectors proves every detector: it fires on its attack data, with
// for: honoured by the Prometheus rules package (pending first, firing once
// the condition held for its duration), and stays silent on its benign data.
func TestDetectors(t *testing.T) {
	for _, d := range mustLoad(t).List() {
		t.Run(d.ID, func(t *testing.T) {
			t.Parallel()
			t.Run("fires", func(t *testing.T) { runScenario(t, d, d.Test.Fire, true) })
			t.Run("silent", func(t *testing.T) { runScenario(t, d, d.Test.Benign, false) })
		})
	}
}

func runScenario(t *testing.T, d Detector, s Scenario, fire bool) {
	ctx := context.Background()
	st := loadScenario(t, s)
	eng := newEngine(t, d.parser())
	at := time.Unix(0, 0).UTC().Add(s.Eval)

	// The bare expression at the evaluation time.
	q, err := eng.NewInstantQuery(ctx, st, nil, d.Expr, at)
	if err != nil {
		t.Fatalf("NewInstantQuery: %v", err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		t.Fatalf("query at %v: %v", s.Eval, res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		t.Fatalf("query at %v: %v", s.Eval, err)
	}
	var got []map[string]string
	for _, smp := range vec {
		got = append(got, smp.Metric.DropReserved(func(n string) bool { return n == model.MetricNameLabel }).Map())
	}
	want := s.Alerts
	sortLabelSets(got)
	sortLabelSets(want)
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("%s at %v returned (-want +got):\n%s", d.ID, s.Eval, diff)
	}

	// The same expression as an alerting rule, evaluated every minute
	// from the start of the for: window up to the evaluation time.
	expr, err := d.parser().ParseExpr(d.Expr)
	if err != nil {
		t.Fatal(err)
	}
	rule := rules.NewAlertingRule(d.ID, expr, d.For, 0,
		labels.FromMap(d.RuleLabels()),
		labels.FromStrings("summary", d.Summary, "description", d.Description, "runbook", d.Runbook),
		labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler))
	query := rules.EngineQueryFunc(eng, st)
	start := at.Add(-d.For)
	if start.Before(time.Unix(0, 0)) {
		start = time.Unix(0, 0).UTC()
	}
	for ts := start; !ts.After(at); ts = ts.Add(ScenarioInterval) {
		if _, err := rule.Eval(ctx, 0, ts, query, nil, 0); err != nil {
			t.Fatalf("rule eval at %v: %v", ts.Sub(time.Unix(0, 0)), err)
		}
		if fire && d.For > 0 && ts.Equal(start) {
			for _, a := range rule.ActiveAlerts() {
				if a.State != rules.StatePending {
					t.Errorf("at the start of the for: window (%v) alert %s is %v, want pending", ts.Sub(time.Unix(0, 0)), a.Labels, a.State)
				}
			}
			if len(rule.ActiveAlerts()) == 0 {
				t.Errorf("at the start of the for: window (%v) no alert is pending", ts.Sub(time.Unix(0, 0)))
			}
		}
	}
	var firing []map[string]string
	for _, a := range rule.ActiveAlerts() {
		if !fire {
			t.Errorf("benign data left alert %s %v at %v", a.Labels, a.State, s.Eval)
			continue
		}
		if a.State != rules.StateFiring {
			t.Errorf("alert %s is %v at %v, want firing", a.Labels, a.State, s.Eval)
			continue
		}
		lbls := a.Labels.Map()
		firing = append(firing, lbls)
		// The annotations Prometheus expands must be the ones the
		// exported test file expects.
		wantAnn, err := d.Annotations(lbls)
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(wantAnn, a.Annotations.Map()); diff != "" {
			t.Errorf("annotations of %s (-detect +prometheus):\n%s", a.Labels, diff)
		}
	}
	if fire {
		wantFiring := expectedAlerts(d, s)
		sortLabelSets(firing)
		if diff := gocmp.Diff(wantFiring, firing); diff != "" {
			t.Errorf("firing alerts at %v (-want +got):\n%s", s.Eval, diff)
		}
	}
}

func sortLabelSets(s []map[string]string) {
	slices.SortFunc(s, func(a, b map[string]string) int {
		return strings.Compare(labels.FromMap(a).String(), labels.FromMap(b).String())
	})
}

// TestScenariosAtExportSteps evaluates every detector as the exported
// promtool file does: the alerting rule every TestEvaluationInterval from
// t=0, the alerts compared at the last step at or before the scenario's eval
// time. A scenario that only works with one-minute steps fails here, before
// the e2e test runs promtool on the whole file.
func TestScenariosAtExportSteps(t *testing.T) {
	for _, d := range mustLoad(t).List() {
		t.Run(d.ID, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				s    Scenario
				fire bool
			}{{d.Test.Fire, true}, {d.Test.Benign, false}} {
				ctx := context.Background()
				st := loadScenario(t, tc.s)
				eng := newEngine(t, d.parser())
				expr, err := d.parser().ParseExpr(d.Expr)
				if err != nil {
					t.Fatal(err)
				}
				rule := rules.NewAlertingRule(d.ID, expr, d.For, 0,
					labels.FromMap(d.RuleLabels()), labels.EmptyLabels(), labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler))
				query := rules.EngineQueryFunc(eng, st)
				start := time.Unix(0, 0).UTC()
				for ts := start; !ts.After(start.Add(tc.s.Eval)); ts = ts.Add(TestEvaluationInterval) {
					if _, err := rule.Eval(ctx, 0, ts, query, nil, 0); err != nil {
						t.Fatalf("rule eval at %v: %v", ts.Sub(start), err)
					}
				}
				var firing []map[string]string
				for _, a := range rule.ActiveAlerts() {
					if a.State == rules.StateFiring {
						firing = append(firing, a.Labels.Map())
					}
				}
				var want []map[string]string
				if tc.fire {
					want = expectedAlerts(d, tc.s)
				}
				sortLabelSets(firing)
				if diff := gocmp.Diff(want, firing); diff != "" {
					t.Errorf("%s at %v with %v steps: firing alerts (-want +got):\n%s", map[bool]string{true: "fire", false: "benign"}[tc.fire], tc.s.Eval, TestEvaluationInterval, diff)
				}
			}
		})
	}
}
