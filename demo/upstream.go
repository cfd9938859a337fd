package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// rulesFile is the rule group the demo's rule manager evaluates, so that the
// rules and alerts routes have something to show (and to filter).
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

// Options configures an Upstream.
type Options struct {
	// Start is the end of the generated history. Default: now.
	Start time.Time
	// Logger receives the TSDB's, the engine's and the rule manager's logs.
	// Default: discard.
	Logger *slog.Logger
	// Registerer receives the TSDB's, engine's and rule manager's metrics.
	// Default: a private registry.
	Registerer prometheus.Registerer
}

// Upstream is the embedded Prometheus: a TSDB filled by a [Scenario], the
// PromQL engine and a rule manager.
type Upstream struct {
	scenario *Scenario
	log      *slog.Logger
	dir      string
	db       *tsdb.DB
	engine   *promql.Engine
	parser   parser.Parser
	rules    *rules.Manager
	started  time.Time

	mu      sync.Mutex // serialises appends
	sampler *sampler
	refs    []storage.SeriesRef

	runOnce  sync.Once
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// New opens a TSDB in a new temporary folder, appends the scenario's
// history and loads the rule group. Call Run to keep appending and to
// evaluate rules, and Close to remove everything.
func New(opts Options) (_ *Upstream, err error) {
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	u := &Upstream{
		scenario: NewScenario(opts.Start),
		log:      logger,
		parser:   parser.NewParser(parser.Options{}),
		started:  time.Now(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if u.dir, err = os.MkdirTemp("", "promgate-demo-tsdb-"); err != nil {
		return nil, fmt.Errorf("create the TSDB folder: %w", err)
	}
	defer func() {
		if err != nil {
			u.closeStorage()
		}
	}()

	topts := tsdb.DefaultOptions()
	// The data is regenerated at every start: no write-ahead log, and no
	// compaction, so the day of history stays in the head (a few MB).
	topts.WALSegmentSize = -1
	topts.RetentionDuration = 0
	if u.db, err = tsdb.Open(filepath.Join(u.dir, "data"), logger.With("component", "tsdb"), reg, topts, nil); err != nil {
		return nil, fmt.Errorf("open the TSDB: %w", err)
	}
	u.db.DisableCompactions()

	u.engine = promql.NewEngine(promql.EngineOpts{
		Logger:               logger.With("component", "query engine"),
		Reg:                  reg,
		MaxSamples:           50_000_000,
		Timeout:              2 * time.Minute,
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		Parser:               u.parser,
	})

	if err := u.backfill(); err != nil {
		return nil, err
	}

	path := filepath.Join(u.dir, "demo-rules.yml")
	if err := os.WriteFile(path, []byte(rulesFile), 0o600); err != nil {
		return nil, fmt.Errorf("write the rule file: %w", err)
	}
	u.rules = rules.NewManager(&rules.ManagerOptions{
		QueryFunc:  rules.EngineQueryFunc(u.engine, u.db),
		NotifyFunc: func(context.Context, string, ...*rules.Alert) {},
		Context:    context.Background(),
		Appendable: u.db,
		Queryable:  u.db,
		Logger:     logger.With("component", "rule manager"),
		Registerer: reg,
		Parser:     u.parser,
	})
	if err := u.rules.Update(Step, []string{path}, labels.EmptyLabels(), "", nil); err != nil {
		return nil, fmt.Errorf("load the rule group: %w", err)
	}
	// Evaluate once at the start, so that alerts show at once; the manager
	// then evaluates every Step.
	for _, g := range u.rules.RuleGroups() {
		rules.DefaultEvalIterationFunc(context.Background(), g, u.scenario.Start())
	}
	go u.rules.Run()
	return u, nil
}

// Scenario returns the data the upstream serves.
func (u *Upstream) Scenario() *Scenario { return u.scenario }

// backfill appends the history up to and including the scenario's start, in
// batches of one hour.
func (u *Upstream) backfill() error {
	u.sampler = u.scenario.newSampler()
	u.refs = make([]storage.SeriesRef, u.scenario.NumSeries())
	batch := int(time.Hour / Step)
	for u.sampler.t <= u.scenario.start {
		if err := u.appendSteps(batch, u.scenario.start); err != nil {
			return err
		}
	}
	return nil
}

// appendSteps appends at most n steps whose timestamps are <= until, in one
// transaction.
func (u *Upstream) appendSteps(n int, until int64) error {
	app := u.db.Appender(context.Background())
	var err error
	for i := 0; i < n && u.sampler.t <= until && err == nil; i++ {
		u.sampler.next(func(i int, lset labels.Labels, t int64, v float64) {
			if err != nil {
				return
			}
			var ref storage.SeriesRef
			ref, err = app.Append(u.refs[i], lset, t, v)
			if err == nil {
				u.refs[i] = ref
			}
		})
	}
	if err != nil {
		_ = app.Rollback()
		return fmt.Errorf("append synthetic samples: %w", err)
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("commit synthetic samples: %w", err)
	}
	return nil
}

// tick appends every step up to now, in batches of one hour.
func (u *Upstream) tick(now time.Time) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	for u.sampler.t <= now.UnixMilli() {
		if err := u.appendSteps(int(time.Hour/Step), now.UnixMilli()); err != nil {
			return err
		}
	}
	return nil
}

// Run appends the samples of every Step that has passed, until ctx is done or
// Close is called. The rule group is evaluated every Step from New on.
func (u *Upstream) Run(ctx context.Context) {
	u.runOnce.Do(func() {
		defer close(u.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-u.stop:
				return
			case now := <-t.C:
				if err := u.tick(now); err != nil {
					u.log.Error("append synthetic samples", "err", err)
				}
			}
		}
	})
}

// Close stops Run, the rule manager and the TSDB, and removes the TSDB
// folder.
func (u *Upstream) Close() error {
	u.stopOnce.Do(func() { close(u.stop) })
	u.runOnce.Do(func() { close(u.done) })
	<-u.done
	u.rules.Stop()
	return u.closeStorage()
}

func (u *Upstream) closeStorage() error {
	var errs []error
	if u.db != nil {
		if err := u.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the TSDB: %w", err))
		}
	}
	if u.engine != nil {
		_ = u.engine.Close()
	}
	if err := os.RemoveAll(u.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", u.dir, err))
	}
	return errors.Join(errs...)
}

// Listen listens on addr, which must be a loopback address (port 0 picks a
// free port).
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("upstream address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("upstream address %q: the embedded upstream has no authentication and listens only on a loopback IP address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln, nil
}

// Serve answers the Prometheus API on ln until ctx is done.
func (u *Upstream) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           u.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(u.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		return err
	}
}
