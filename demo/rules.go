package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/template"
)

// rulesFile is the rule group the demo evaluates, so that the rules and
// alerts routes have something to show (and to filter).
const rulesFile = `groups:
  - name: demo-security
    interval: 15s
    rules:
      - record: namespace_pod:container_cpu_usage_seconds:sum_rate5m
        expr: sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="", image!=""}[5m]))
      - alert: PodCPUOverOneCore
        expr: namespace_pod:container_cpu_usage_seconds:sum_rate5m > 1
        labels: {severity: warning}
        annotations:
          summary: 'Pod {{ $labels.namespace }}/{{ $labels.pod }} burns {{ printf "%.2f" $value }} CPU cores (crypto-mining?)'
      - alert: PodEgressVolumeHigh
        expr: sum by (namespace, pod) (increase(container_network_transmit_bytes_total{pod!=""}[1h])) > 2e9
        labels: {severity: warning}
        annotations:
          summary: 'Pod {{ $labels.namespace }}/{{ $labels.pod }} sent {{ humanize $value }}B in the last hour (exfiltration?)'
      - alert: Ingress404Ratio
        expr: |
          (sum by (namespace, host, path) (rate(nginx_ingress_controller_requests{status="404"}[5m]))
            / sum by (namespace, host, path) (rate(nginx_ingress_controller_requests[5m]))) > 0.3
          and sum by (namespace, host, path) (rate(nginx_ingress_controller_requests[5m])) > 0.2
        labels: {severity: warning}
        annotations:
          summary: 'More than 30% 404s on {{ $labels.host }}{{ $labels.path }} (fingerprinting?)'
      - alert: APIServerUnauthorized
        expr: sum by (job, instance, code) (rate(apiserver_request_total{code=~"401|403"}[5m])) > 0.5
        labels: {severity: warning}
        annotations:
          summary: 'The API server answers {{ printf "%.1f" $value }} requests/s with {{ $labels.code }}'
`

// ruleFile is the file the rules API names for the embedded groups, which
// are never written to disk.
const ruleFile = "demo-rules.yml"

// Rule health, as the rules API spells it.
const (
	healthUnknown = "unknown"
	healthGood    = "ok"
	healthBad     = "err"
)

// Names of the series an alerting rule writes, as Prometheus names them.
const (
	alertsMetric         = "ALERTS"
	alertsForStateMetric = "ALERTS_FOR_STATE"
	alertStateLabel      = "alertstate"
)

// alertState is the state of one alert; the order is the one of a rule's
// state (the highest of its alerts').
type alertState int

const (
	stateInactive alertState = iota
	statePending
	stateFiring
)

func (s alertState) String() string {
	switch s {
	case statePending:
		return "pending"
	case stateFiring:
		return "firing"
	}
	return "inactive"
}

// ruleGroup is a group of recording and alerting rules evaluated in order
// every interval. Its mutex guards the evaluation state of the group and of
// its rules; an evaluation holds it from start to end, so that the API
// never shows half of one.
type ruleGroup struct {
	name        string
	file        string
	interval    time.Duration
	queryOffset time.Duration
	limit       int
	rules       []*rule

	mu           sync.Mutex
	evaluations  int
	evalTime     time.Time // the timestamp of the last evaluation
	evalDuration time.Duration
	lastEval     time.Time // when the last evaluation started
}

// rule is a recording rule (alerting false) or an alerting rule.
type rule struct {
	name          string
	alerting      bool
	expr          parser.Expr
	labels        labels.Labels
	annotations   labels.Labels // alerting only
	holdDuration  time.Duration // alerting only: "for"
	keepFiringFor time.Duration // alerting only

	health       string
	lastErr      error
	evalDuration time.Duration
	lastEval     time.Time                // when the last evaluation started
	written      map[string]labels.Labels // series the last evaluation wrote
	active       map[uint64]*alert        // alerting only: pending and firing
}

type alert struct {
	labels          labels.Labels
	annotations     labels.Labels
	state           alertState
	activeAt        time.Time
	keepFiringSince time.Time
	value           float64
}

// loadRules parses rule groups in Prometheus' rule file format.
func loadRules(text string, p parser.Parser, logger *slog.Logger) ([]*ruleGroup, error) {
	rgs, errs := rulefmt.Parse([]byte(text), false, model.UTF8Validation, p, logger)
	if len(errs) > 0 {
		return nil, fmt.Errorf("parse the rule groups: %w", errors.Join(errs...))
	}
	var groups []*ruleGroup
	for _, rg := range rgs.Groups {
		g := &ruleGroup{name: rg.Name, file: ruleFile, interval: time.Duration(rg.Interval), limit: rg.Limit}
		if g.interval <= 0 {
			g.interval = Step
		}
		if rg.QueryOffset != nil {
			g.queryOffset = time.Duration(*rg.QueryOffset)
		}
		for _, r := range rg.Rules {
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				return nil, fmt.Errorf("group %q: %w", rg.Name, err)
			}
			lset := map[string]string{}
			maps.Copy(lset, rg.Labels)
			maps.Copy(lset, r.Labels)
			rl := &rule{name: r.Record, expr: expr, labels: labels.FromMap(lset), health: healthUnknown}
			if r.Alert != "" {
				rl.name, rl.alerting = r.Alert, true
				rl.annotations = labels.FromMap(r.Annotations)
				rl.holdDuration = time.Duration(r.For)
				rl.keepFiringFor = time.Duration(r.KeepFiringFor)
				rl.active = map[uint64]*alert{}
			}
			g.rules = append(g.rules, rl)
		}
		groups = append(groups, g)
	}
	return groups, nil
}

// lastEvalTime returns the timestamp of the group's last evaluation.
func (g *ruleGroup) lastEvalTime() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.evalTime
}

// runRules evaluates g every interval at the upstream's clock, until ctx
// is done. An evaluation is skipped when the clock has not moved since the
// last one.
func (u *Upstream) runRules(ctx context.Context, g *ruleGroup) {
	t := time.NewTicker(g.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ts := u.clock(); ts.After(g.lastEvalTime()) {
				u.evalGroup(ctx, g, ts)
			}
		}
	}
}

// evalGroup evaluates every rule of g at ts, in order, so that a rule reads
// what the rules before it wrote.
func (u *Upstream) evalGroup(ctx context.Context, g *ruleGroup, ts time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	start := time.Now()
	// Prometheus writes ALERTS only once it has restored the alerts' "for"
	// state after its first evaluation; the demo keeps that order, so the
	// first evaluation leaves the generated history as it is.
	writeAlerts := g.evaluations > 0
	for _, r := range g.rules {
		u.evalRule(ctx, g, r, ts.Add(-g.queryOffset), writeAlerts)
	}
	g.evaluations++
	g.evalTime = ts
	g.lastEval, g.evalDuration = start, time.Since(start)
}

// evalRule evaluates r at ts and writes its samples, marking stale the
// series of its last evaluation that it no longer returns.
func (u *Upstream) evalRule(ctx context.Context, g *ruleGroup, r *rule, ts time.Time, writeAlerts bool) {
	start := time.Now()
	defer func() { r.lastEval, r.evalDuration = start, time.Since(start) }()
	var (
		out promql.Vector
		err error
	)
	if r.alerting {
		out, err = u.evalAlerting(ctx, r, ts, g.limit, writeAlerts)
	} else {
		out, err = u.evalRecording(ctx, r, ts, g.limit)
	}
	if err != nil {
		r.health, r.lastErr = healthBad, err
		if !errors.Is(err, context.Canceled) {
			u.rulesLog.Warn("evaluate rule", "group", g.name, "rule", r.name, "err", err)
		}
		return
	}
	r.health, r.lastErr = healthGood, nil

	samples := make([]sample, 0, len(out)+len(r.written))
	returned := make(map[string]labels.Labels, len(out))
	for _, s := range out {
		samples = append(samples, sample{series: u.store.series(s.Metric), t: s.T, v: s.F})
		returned[s.Metric.String()] = s.Metric
	}
	staleAt := ts.UnixMilli()
	for key, lset := range r.written {
		if _, ok := returned[key]; !ok {
			samples = append(samples, sample{series: u.store.series(lset), t: staleAt, v: math.Float64frombits(value.StaleNaN)})
		}
	}
	u.store.append(samples, func(i int, err error) {
		if i >= len(out) {
			// A stale marker behind a newer sample: another rule writes
			// the series.
			return
		}
		r.health, r.lastErr = healthBad, err
		delete(returned, out[i].Metric.String())
		u.rulesLog.Warn("rule sample discarded", "group", g.name, "rule", r.name, "series", out[i].Metric.String(), "err", err)
	})
	r.written = returned
}

// ruleQuery evaluates qs at ts as a rule does: a scalar becomes one sample
// without labels, and any other type is an error.
func (u *Upstream) ruleQuery(ctx context.Context, qs string, ts time.Time) (promql.Vector, error) {
	q, err := u.engine.NewInstantQuery(ctx, u.store, nil, qs, ts)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v, nil
	case promql.Scalar:
		return promql.Vector{{T: v.T, F: v.V, Metric: labels.EmptyLabels()}}, nil
	}
	return nil, errors.New("rule result is not a vector or scalar")
}

// evalRecording returns the samples of a recording rule: its expression's,
// renamed and with the rule's labels.
func (u *Upstream) evalRecording(ctx context.Context, r *rule, ts time.Time, limit int) (promql.Vector, error) {
	vec, err := u.ruleQuery(ctx, r.expr.String(), ts)
	if err != nil {
		return nil, err
	}
	lb := labels.NewBuilder(labels.EmptyLabels())
	for i := range vec {
		if vec[i].H != nil {
			return nil, errors.New("the demo's storage holds no native histograms")
		}
		lb.Reset(vec[i].Metric)
		lb.Set(model.MetricNameLabel, r.name)
		r.labels.Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
		vec[i].Metric = lb.Labels()
	}
	if vec.ContainsSameLabelset() {
		return nil, errors.New("vector contains metrics with the same labelset after applying rule labels")
	}
	if limit > 0 && len(vec) > limit {
		return nil, fmt.Errorf("exceeded limit of %d with %d series", limit, len(vec))
	}
	return vec, nil
}

// evalAlerting updates the alerts of an alerting rule from its expression's
// samples at ts, as Prometheus does:
//
//	sample    alert before             alert after
//	present   none                     pending since ts (firing at once without "for")
//	present   pending for >= "for"     firing
//	absent    pending                  gone
//	absent    firing                   firing for keep_firing_for, then gone
//
// It returns the ALERTS and ALERTS_FOR_STATE samples of the pending and
// firing alerts when writeAlerts is set.
func (u *Upstream) evalAlerting(ctx context.Context, r *rule, ts time.Time, limit int, writeAlerts bool) (promql.Vector, error) {
	res, err := u.ruleQuery(ctx, r.expr.String(), ts)
	if err != nil {
		return nil, err
	}
	lb := labels.NewBuilder(labels.EmptyLabels())
	sb := labels.NewScratchBuilder(0)
	found := make(map[uint64]*alert, len(res))
	for _, smpl := range res {
		expand := u.expander(ctx, r.name, smpl, ts)
		lb.Reset(smpl.Metric)
		lb.Del(model.MetricNameLabel)
		r.labels.Range(func(l labels.Label) { lb.Set(l.Name, expand(l.Value)) })
		lb.Set(labels.AlertName, r.name)
		sb.Reset()
		r.annotations.Range(func(a labels.Label) { sb.Add(a.Name, expand(a.Value)) })
		a := &alert{labels: lb.Labels(), annotations: sb.Labels(), state: statePending, activeAt: ts, value: smpl.F}
		h := a.labels.Hash()
		if _, dup := found[h]; dup {
			return nil, errors.New("vector contains metrics with the same labelset after applying alert labels")
		}
		found[h] = a
	}

	for h, a := range found {
		if old, ok := r.active[h]; ok {
			old.value, old.annotations = a.value, a.annotations
			old.keepFiringSince = time.Time{}
			continue
		}
		r.active[h] = a
	}
	var vec promql.Vector
	for h, a := range r.active {
		if _, ok := found[h]; !ok {
			keep := a.state == stateFiring && r.keepFiringFor > 0
			if keep && a.keepFiringSince.IsZero() {
				a.keepFiringSince = ts
			}
			if !keep || ts.Sub(a.keepFiringSince) >= r.keepFiringFor {
				delete(r.active, h)
				continue
			}
		}
		if a.state == statePending && ts.Sub(a.activeAt) >= r.holdDuration {
			a.state = stateFiring
		}
		if writeAlerts {
			vec = append(vec, r.alertSample(a, ts), r.forStateSample(a, ts))
		}
	}
	if limit > 0 && len(r.active) > limit {
		n := len(r.active)
		clear(r.active)
		return nil, fmt.Errorf("exceeded limit of %d with %d alerts", limit, n)
	}
	return vec, nil
}

// expander returns a function that expands a label or annotation template
// of an alert, with $labels, $value and the query function, as Prometheus
// does; a template that fails expands to the error.
func (u *Upstream) expander(ctx context.Context, name string, smpl promql.Sample, ts time.Time) func(string) string {
	data := template.AlertTemplateData(smpl.Metric.Map(), nil, "", smpl)
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	return func(text string) string {
		if !strings.Contains(text, "{{") {
			return text
		}
		tmpl := template.NewTemplateExpander(ctx, defs+text, "__alert_"+name, data,
			model.Time(ts.UnixMilli()), template.QueryFunc(u.ruleQuery), &url.URL{}, nil)
		out, err := tmpl.Expand()
		if err != nil {
			u.rulesLog.Warn("expand alert template", "rule", name, "err", err)
			return fmt.Sprintf("<error expanding template: %s>", err)
		}
		return out
	}
}

func (r *rule) alertSample(a *alert, ts time.Time) promql.Sample {
	lb := labels.NewBuilder(r.labels)
	a.labels.Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
	lb.Set(model.MetricNameLabel, alertsMetric)
	lb.Set(labels.AlertName, r.name)
	lb.Set(alertStateLabel, a.state.String())
	return promql.Sample{Metric: lb.Labels(), T: ts.UnixMilli(), F: 1}
}

func (r *rule) forStateSample(a *alert, ts time.Time) promql.Sample {
	lb := labels.NewBuilder(r.labels)
	a.labels.Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
	lb.Set(model.MetricNameLabel, alertsForStateMetric)
	lb.Set(labels.AlertName, r.name)
	return promql.Sample{Metric: lb.Labels(), T: ts.UnixMilli(), F: float64(a.activeAt.Unix())}
}

// state is the highest state of the rule's alerts, "unknown" before its
// first evaluation.
func (r *rule) state() string {
	if r.lastEval.IsZero() {
		return "unknown"
	}
	s := stateInactive
	for _, a := range r.active {
		s = max(s, a.state)
	}
	return s.String()
}

// activeAlerts returns copies of the rule's pending and firing alerts,
// sorted by their labels.
func (r *rule) activeAlerts() []alert {
	out := make([]alert, 0, len(r.active))
	for _, a := range r.active {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b alert) int { return labels.Compare(a.labels, b.labels) })
	return out
}
