package demo

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// newRuleUpstream returns an Upstream with an empty store and the given
// rule groups, and no scenario: the test appends the samples and evaluates
// the groups itself.
func newRuleUpstream(t *testing.T, rules string) *Upstream {
	t.Helper()
	u := &Upstream{
		log:      slog.New(slog.DiscardHandler),
		rulesLog: slog.New(slog.DiscardHandler),
		store:    newStore(),
		parser:   parser.NewParser(parser.Options{}),
	}
	u.engine = promql.NewEngine(promql.EngineOpts{
		MaxSamples:    1_000_000,
		Timeout:       time.Minute,
		LookbackDelta: 5 * time.Minute,
		Parser:        u.parser,
	})
	t.Cleanup(func() { _ = u.engine.Close() })
	groups, err := loadRules(rules, u.parser, u.rulesLog)
	if err != nil {
		t.Fatal(err)
	}
	u.groups = groups
	return u
}

// instant returns the samples of qs at ts as "labels value" lines.
func instant(t *testing.T, u *Upstream, qs string, ts time.Time) []string {
	t.Helper()
	vec, err := u.ruleQuery(context.Background(), qs, ts)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range vec {
		out = append(out, s.Metric.String()+" "+strconv.FormatFloat(s.F, 'g', -1, 64))
	}
	return out
}

// rulesJSON returns the data of the rules route with params.
func rulesJSON(t *testing.T, u *Upstream, params url.Values) string {
	t.Helper()
	r := httptest.NewRequest("GET", "/api/v1/rules?"+params.Encode(), nil)
	if err := r.ParseForm(); err != nil {
		t.Fatal(err)
	}
	data, _, aerr := u.rulesRoute(r)
	if aerr != nil {
		t.Fatal(aerr)
	}
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEmbeddedRulesLoad(t *testing.T) {
	groups, err := loadRules(rulesFile, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || len(groups[0].rules) != 5 || groups[0].interval != Step {
		t.Errorf("loaded %d groups; want one of five rules every %v", len(groups), Step)
	}
}

func TestLoadRulesRefusesInvalid(t *testing.T) {
	for _, text := range []string{
		"groups:\n  - name: g\n    rules:\n      - record: r\n        expr: sum(\n",
		"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        annotations: {s: '{{ .Nope'}\n",
		"groups:\n  - name: g\n    unknown_field: 1\n",
	} {
		if _, err := loadRules(text, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("loadRules(%q) succeeded", text)
		}
	}
}

// TestAlertingRuleStates follows one alert with "for" and keep_firing_for
// through pending, firing, kept firing and gone, with the ALERTS series and
// the rules and alerts routes at every step.
func TestAlertingRuleStates(t *testing.T) {
	u := newRuleUpstream(t, `groups:
  - name: g
    interval: 15s
    rules:
      - alert: High
        expr: x > 1
        for: 30s
        keep_firing_for: 30s
        labels: {severity: page}
        annotations: {summary: 'x is {{ $value }} on {{ $labels.instance }}'}
`)
	g := u.groups[0]
	x := u.store.series(labels.FromStrings("__name__", "x", "instance", "i1"))
	t0 := time.Unix(1_000_000, 0)
	steps := []struct {
		x          float64
		wantState  string // of the rule
		wantAlerts []string
	}{
		{x: 5, wantState: "pending"},                                  // first evaluation: no ALERTS yet
		{x: 5, wantState: "pending", wantAlerts: []string{"pending"}}, // 15 s < 30 s
		{x: 5, wantState: "firing", wantAlerts: []string{"firing"}},   // 30 s
		{x: 0, wantState: "firing", wantAlerts: []string{"firing"}},   // kept since 45 s
		{x: 0, wantState: "firing", wantAlerts: []string{"firing"}},   // kept 15 s
		{x: 0, wantState: "inactive"},                                 // kept 30 s: gone
		{x: 5, wantState: "pending", wantAlerts: []string{"pending"}}, // a new alert
	}
	for i, st := range steps {
		ts := t0.Add(time.Duration(i) * 15 * time.Second)
		u.store.append([]sample{{series: x, t: ts.UnixMilli(), v: st.x}}, nil)
		u.evalGroup(context.Background(), g, ts)
		r := g.rules[0]
		if r.health != healthGood || r.state() != st.wantState {
			t.Fatalf("step %d: health %q (%v), state %q; want ok, %q", i, r.health, r.lastErr, r.state(), st.wantState)
		}
		vec, err := u.ruleQuery(context.Background(), `ALERTS{alertname="High", instance="i1", severity="page"}`, ts)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range vec {
			got = append(got, s.Metric.Get("alertstate"))
		}
		if diff := cmp.Diff(st.wantAlerts, got); diff != "" {
			t.Errorf("step %d: alertstate of ALERTS (-want +got):\n%s", i, diff)
		}
	}

	// The rules route shows the rule as Prometheus does.
	var res struct {
		Groups []struct {
			Name  string `json:"name"`
			File  string `json:"file"`
			Rules []struct {
				State         string            `json:"state"`
				Name          string            `json:"name"`
				Query         string            `json:"query"`
				Duration      float64           `json:"duration"`
				KeepFiringFor float64           `json:"keepFiringFor"`
				Labels        map[string]string `json:"labels"`
				Health        string            `json:"health"`
				Type          string            `json:"type"`
				Alerts        []struct {
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
					State       string            `json:"state"`
					ActiveAt    time.Time         `json:"activeAt"`
					Value       string            `json:"value"`
				} `json:"alerts"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(rulesJSON(t, u, nil)), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 1 || len(res.Groups[0].Rules) != 1 || len(res.Groups[0].Rules[0].Alerts) != 1 {
		t.Fatalf("rules: %+v", res)
	}
	rl := res.Groups[0].Rules[0]
	a := rl.Alerts[0]
	if rl.State != "pending" || rl.Name != "High" || rl.Query != "x > 1" || rl.Duration != 30 || rl.KeepFiringFor != 30 ||
		rl.Health != "ok" || rl.Type != "alerting" || res.Groups[0].File != ruleFile {
		t.Errorf("rule %+v", rl)
	}
	wantLabels := map[string]string{"alertname": "High", "instance": "i1", "severity": "page"}
	if diff := cmp.Diff(wantLabels, a.Labels); diff != "" {
		t.Errorf("alert labels (-want +got):\n%s", diff)
	}
	if a.Annotations["summary"] != "x is 5 on i1" || a.State != "pending" || a.Value != "5e+00" ||
		!a.ActiveAt.Equal(t0.Add(6*15*time.Second)) {
		t.Errorf("alert %+v", a)
	}
	data, _, _ := u.alerts(nil)
	b, _ := json.Marshal(data)
	if !strings.Contains(string(b), `"state":"pending"`) || !strings.Contains(string(b), `"alertname":"High"`) {
		t.Errorf("alerts route: %s", b)
	}
}

// TestRecordingRuleWritesBack checks that a recording rule's samples are
// written back with its name and labels, that the next rule of the group
// reads them, and that a series it no longer returns is marked stale.
func TestRecordingRuleWritesBack(t *testing.T) {
	u := newRuleUpstream(t, `groups:
  - name: g
    rules:
      - record: ns:x:sum
        expr: sum by (ns) (x)
        labels: {source: demo}
      - alert: NamespaceHigh
        expr: ns:x:sum > 2
`)
	g := u.groups[0]
	a := u.store.series(labels.FromStrings("__name__", "x", "ns", "a", "pod", "1"))
	b := u.store.series(labels.FromStrings("__name__", "x", "ns", "b", "pod", "1"))
	t0 := time.Unix(1_000_000, 0)

	u.store.append([]sample{{series: a, t: t0.UnixMilli(), v: 3}, {series: b, t: t0.UnixMilli(), v: 1}}, nil)
	u.evalGroup(context.Background(), g, t0)
	want := []string{`{__name__="ns:x:sum", ns="a", source="demo"} 3`, `{__name__="ns:x:sum", ns="b", source="demo"} 1`}
	if diff := cmp.Diff(want, instant(t, u, `ns:x:sum`, t0)); diff != "" {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}
	if got := g.rules[1].activeAlerts(); len(got) != 1 || got[0].labels.Get("ns") != "a" {
		t.Errorf("alerts from the recorded series: %+v", got)
	}

	// b goes away (a scrape would write a stale marker): its recorded
	// series is stale at once, not 5 minutes later.
	t1 := t0.Add(15 * time.Second)
	u.store.append([]sample{{series: a, t: t1.UnixMilli(), v: 3}, {series: b, t: t1.UnixMilli(), v: math.Float64frombits(value.StaleNaN)}}, nil)
	u.evalGroup(context.Background(), g, t1)
	if diff := cmp.Diff(want[:1], instant(t, u, `ns:x:sum`, t1.Add(time.Second))); diff != "" {
		t.Errorf("after b is gone (-want +got):\n%s", diff)
	}
	if rec := rulesJSON(t, u, url.Values{"type": {"record"}}); !strings.Contains(rec, `"name":"ns:x:sum"`) ||
		!strings.Contains(rec, `"health":"ok"`) || strings.Contains(rec, "NamespaceHigh") {
		t.Errorf("recording rules: %s", rec)
	}
}

// TestRuleErrorHealth checks that a failing rule is reported with its error
// and does not stop the rules after it.
func TestRuleErrorHealth(t *testing.T) {
	u := newRuleUpstream(t, `groups:
  - name: g
    rules:
      - record: dup
        expr: x
        labels: {pod: same}
      - record: ok
        expr: vector(1)
`)
	g := u.groups[0]
	for _, pod := range []string{"1", "2"} {
		s := u.store.series(labels.FromStrings("__name__", "x", "pod", pod))
		u.store.append([]sample{{series: s, t: 1000, v: 1}}, nil)
	}
	u.evalGroup(context.Background(), g, time.UnixMilli(1000))
	if r := g.rules[0]; r.health != healthBad || r.lastErr == nil {
		t.Errorf("dup: health %q, error %v", r.health, r.lastErr)
	}
	if r := g.rules[1]; r.health != healthGood {
		t.Errorf("ok: health %q, error %v", r.health, r.lastErr)
	}
	if rec := rulesJSON(t, u, nil); !strings.Contains(rec, `"health":"err","lastError":"vector contains metrics with the same labelset after applying rule labels"`) {
		t.Errorf("rules: %s", rec)
	}
}

// TestQueriesDuringAppends runs queries and rule evaluations while samples
// are appended; under -race it checks that a query reads a snapshot.
func TestQueriesDuringAppends(t *testing.T) {
	u := newRuleUpstream(t, `groups:
  - name: g
    rules:
      - record: total
        expr: sum(rate(c[1m]))
`)
	var series []*memSeries
	for i := range 20 {
		series = append(series, u.store.series(labels.FromStrings("__name__", "c", "i", strconv.Itoa(i))))
	}
	const steps = 400
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range int64(steps) {
			batch := make([]sample, len(series))
			for i, sr := range series {
				batch[i] = sample{series: sr, t: s * 15_000, v: float64(s)}
			}
			u.store.append(batch, func(_ int, err error) { t.Error(err) })
		}
	}()
	for i := 0; ; i++ {
		ts := time.UnixMilli(int64(i%steps) * 15_000)
		u.evalGroup(context.Background(), u.groups[0], ts)
		if _, err := u.ruleQuery(context.Background(), `count(c)`, ts); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
			got := instant(t, u, `count(c)`, time.UnixMilli((steps-1)*15_000))
			if diff := cmp.Diff([]string{"{} 20"}, got); diff != "" {
				t.Errorf("count(c) at the end (-want +got):\n%s", diff)
			}
			return
		default:
		}
	}
}
