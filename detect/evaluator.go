package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/config"
)

// Evaluator evaluates the whole catalog in the background, like a Prometheus
// rule group: each detector's series become alerts that are pending until
// they have been returned for the detector's for: duration, then firing.
// Firing alerts are pushed to Alertmanager every interval; an alert whose
// series disappears is resolved and sent with endsAt until Alertmanager
// accepted it. A failed query leaves the detector's alerts as they were.
type Evaluator struct {
	cat      *Catalog
	q        Querier
	log      *slog.Logger
	interval time.Duration
	am       *url.URL // nil: no Alertmanager
	external string   // generatorURL prefix, may be empty
	client   *http.Client
	now      func() time.Time

	firing         *prometheus.GaugeVec
	failures       *prometheus.CounterVec
	notifyFailures prometheus.Counter
	lastEval       prometheus.Gauge

	mu       sync.Mutex
	alerts   map[string]map[model.Fingerprint]*alert // by detector
	resolved []*alert                                // waiting for delivery
	state    map[string]State
	// restored lists the detectors whose for: clocks were restored from
	// the history (forstate.go), once after start.
	restored map[string]bool
}

type alert struct {
	detector    string
	labels      model.LabelSet
	annotations map[string]string
	activeAt    time.Time
	firedAt     time.Time // zero while pending
	resolvedAt  time.Time
}

// NewEvaluator returns an evaluator of catalog c that queries q, which must
// query the upstream unrestricted with the gateway's own identity. It
// registers promgate_detector_firing{detector,severity} (the number of firing
// alerts, every detector present from the start at 0),
// promgate_detector_evaluation_failures_total{detector},
// promgate_detector_notification_failures_total and
// promgate_detector_last_evaluation_timestamp_seconds on reg.
func NewEvaluator(cfg config.Detectors, c *Catalog, q Querier, logger *slog.Logger, reg prometheus.Registerer) (*Evaluator, error) {
	if c == nil || q == nil || logger == nil || reg == nil {
		return nil, errors.New("detector evaluator needs a catalog, a querier, a logger and a registerer")
	}
	interval := time.Duration(cfg.Interval)
	if interval < time.Second {
		return nil, fmt.Errorf("detectors.interval %v: must be at least 1s", interval)
	}
	e := &Evaluator{
		cat:      c,
		q:        q,
		log:      logger.With("component", "detectors"),
		interval: interval,
		external: strings.TrimSuffix(cfg.ExternalURL, "/"),
		client:   &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		now:      time.Now,
		alerts:   map[string]map[model.Fingerprint]*alert{},
		state:    map[string]State{},
		firing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "promgate_detector_firing",
			Help: "Number of firing alerts of each built-in detector, as evaluated by the gateway.",
		}, []string{"detector", "severity"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_detector_evaluation_failures_total",
			Help: "Detector evaluations that failed because the upstream query failed.",
		}, []string{"detector"}),
		notifyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "promgate_detector_notification_failures_total",
			Help: "Pushes of detector alerts to Alertmanager that failed.",
		}),
		lastEval: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "promgate_detector_last_evaluation_timestamp_seconds",
			Help: "When the last evaluation round of the detector catalog ended.",
		}),
	}
	if cfg.AlertmanagerURL != "" {
		u, err := url.Parse(cfg.AlertmanagerURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("detectors.alertmanager_url %q: not an http or https URL", cfg.AlertmanagerURL)
		}
		u = u.JoinPath("api", "v2", "alerts")
		e.am = u
		if e.client, err = amClient(cfg); err != nil { // TLS and token (amclient.go)
			return nil, err
		}
	}
	for _, d := range c.detectors {
		e.firing.WithLabelValues(d.ID, d.Severity).Set(0)
		e.failures.WithLabelValues(d.ID)
		e.state[d.ID] = State{State: StateUnknown}
	}
	for _, col := range []prometheus.Collector{e.firing, e.failures, e.notifyFailures, e.lastEval} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("register detector metrics: %w", err)
		}
	}
	return e, nil
}

// Run evaluates the catalog at once and then every interval until ctx ends.
func (e *Evaluator) Run(ctx context.Context) {
	e.log.Info("detector evaluator started", "interval", e.interval.String(), "detectors", len(e.cat.detectors), "alertmanager", e.am != nil)
	t := time.NewTicker(e.interval)
	defer t.Stop()
	for {
		e.Tick(ctx)
		select {
		case <-ctx.Done():
			e.log.Info("detector evaluator stopped")
			return
		case <-t.C:
		}
	}
}

// Tick runs one evaluation round and one push to Alertmanager.
func (e *Evaluator) Tick(ctx context.Context) {
	for _, d := range e.cat.detectors {
		if ctx.Err() != nil {
			return
		}
		e.evaluate(ctx, d)
	}
	e.lastEval.Set(float64(e.now().UnixMilli()) / 1000)
	if e.am != nil {
		e.push(ctx)
	}
}

func (e *Evaluator) evaluate(ctx context.Context, d Detector) {
	qctx, cancel := context.WithTimeout(ctx, e.interval)
	ts := e.now()
	vec, err := e.q.Query(qctx, d.Expr, ts)
	cancel()
	var since map[model.Fingerprint]time.Time
	if err == nil && len(vec) > 0 && !e.wasRestored(d.ID) {
		since = e.restoreFor(ctx, d, ts)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.state[d.ID]
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down; not an upstream failure
		}
		e.failures.WithLabelValues(d.ID).Inc()
		e.log.Warn("detector evaluation failed", "detector", d.ID, "err", err)
		// The detail (it may name the upstream) goes to the log only; the
		// state is shown to API callers.
		st.LastError = "upstream query failed; see the gateway log"
		e.state[d.ID] = st
		return // alerts stay as they were: a failure never resolves
	}

	active := e.alerts[d.ID]
	if active == nil {
		active = map[model.Fingerprint]*alert{}
		e.alerts[d.ID] = active
	}
	seen := map[model.Fingerprint]bool{}
	for _, smp := range vec {
		lbls := model.LabelSet{}
		for k, v := range smp.Metric {
			if k != model.MetricNameLabel {
				lbls[k] = v
			}
		}
		for k, v := range d.RuleLabels() {
			lbls[model.LabelName(k)] = model.LabelValue(v)
		}
		lbls[model.AlertNameLabel] = model.LabelValue(d.ID)
		fp := lbls.Fingerprint()
		if seen[fp] {
			continue
		}
		seen[fp] = true
		a := active[fp]
		if a == nil {
			plain := map[string]string{}
			for k, v := range lbls {
				plain[string(k)] = string(v)
			}
			ann, err := d.Annotations(plain)
			if err != nil {
				ann = map[string]string{"summary": d.Title, "description": d.Description, "runbook": d.Runbook}
			}
			a = &alert{detector: d.ID, labels: lbls, annotations: ann, activeAt: ts}
			if at, ok := since[fp]; ok && at.Before(ts) {
				a.activeAt = at
			}
			active[fp] = a
		}
		if a.firedAt.IsZero() && ts.Sub(a.activeAt) >= d.For {
			a.firedAt = ts
			e.log.Info("detector firing", "detector", d.ID, "alert", a.labels.String())
		}
	}
	for fp, a := range active {
		if seen[fp] {
			continue
		}
		delete(active, fp)
		if !a.firedAt.IsZero() {
			a.resolvedAt = ts
			e.resolved = append(e.resolved, a)
			e.log.Info("detector resolved", "detector", d.ID, "alert", a.labels.String())
		}
	}
	firing := 0
	for _, a := range active {
		if !a.firedAt.IsZero() {
			firing++
		}
	}
	st = State{State: StateInactive, Active: len(active), Firing: firing, LastEvaluation: ts}
	switch {
	case firing > 0:
		st.State = StateFiring
	case len(active) > 0:
		st.State = StatePending
	}
	e.state[d.ID] = st
	e.firing.WithLabelValues(d.ID, d.Severity).Set(float64(firing))
}

// wasRestored reports whether id's for: clocks were restored, and marks
// them so: the restore runs at the first evaluation that returns series.
func (e *Evaluator) wasRestored(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.restored == nil {
		e.restored = map[string]bool{}
	}
	done := e.restored[id]
	e.restored[id] = true
	return done
}

// State returns every detector's current state, keyed by detector id.
func (e *Evaluator) State() map[string]State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.state)
}

// amAlert is one alert of the Alertmanager API v2 (postableAlert).
type amAlert struct {
	Labels       model.LabelSet    `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// push sends every firing alert (valid for four intervals, so that
// Alertmanager keeps it through a few failed pushes) and every resolved
// alert not yet delivered.
func (e *Evaluator) push(ctx context.Context) {
	now := e.now()
	e.mu.Lock()
	var batch []amAlert
	for _, id := range slices.Sorted(maps.Keys(e.alerts)) {
		for _, a := range e.alerts[id] {
			if a.firedAt.IsZero() {
				continue
			}
			batch = append(batch, e.amAlert(a, now.Add(4*e.interval)))
		}
	}
	resolved := e.resolved
	for _, a := range resolved {
		batch = append(batch, e.amAlert(a, a.resolvedAt))
	}
	e.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := e.post(ctx, batch); err != nil {
		if ctx.Err() != nil {
			return
		}
		e.notifyFailures.Inc()
		e.log.Error("push detector alerts to alertmanager", "alerts", len(batch), "err", err)
		return
	}
	e.mu.Lock()
	// Resolved alerts added while posting stay queued.
	e.resolved = slices.Clone(e.resolved[len(resolved):])
	e.mu.Unlock()
}

func (e *Evaluator) amAlert(a *alert, endsAt time.Time) amAlert {
	out := amAlert{
		Labels:      a.labels.Clone(),
		Annotations: maps.Clone(a.annotations),
		StartsAt:    a.firedAt,
		EndsAt:      endsAt,
	}
	if e.external != "" {
		out.GeneratorURL = e.external + "/api/promgate/v1/detectors/" + url.PathEscape(a.detector)
	}
	return out
}

func (e *Evaluator) post(ctx context.Context, batch []amAlert) error {
	body, err := json.Marshal(batch)
	if err != nil {
		return fmt.Errorf("encode alerts: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, max(e.interval, 10*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.am.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alertmanager answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
