package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// Options configures an Upstream.
type Options struct {
	// Start is the end of the generated history. Default: now.
	Start time.Time
	// Logger receives the engine's and the rule evaluation's logs.
	// Default: discard.
	Logger *slog.Logger
	// Registerer receives the engine's metrics. Default: a private
	// registry.
	Registerer prometheus.Registerer
}

// Upstream is the embedded Prometheus: an in-memory store filled by a
// [Scenario], the PromQL engine and the evaluation of a rule group.
type Upstream struct {
	scenario *Scenario
	log      *slog.Logger
	rulesLog *slog.Logger
	store    *store
	engine   *promql.Engine
	parser   parser.Parser
	groups   []*ruleGroup
	started  time.Time

	mu      sync.Mutex // serialises appends
	sampler *sampler
	refs    []*memSeries
	batch   []sample

	// ctx ends at Close; it bounds the rule evaluation.
	ctx       context.Context
	cancel    context.CancelFunc
	rulesDone sync.WaitGroup

	runOnce  sync.Once
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// New fills an in-memory store with the scenario's history, evaluates the
// rule group once at the scenario's start and starts evaluating it every
// interval. Call Run to keep appending, and Close to stop.
func New(opts Options) (*Upstream, error) {
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
		rulesLog: logger.With("component", "rules"),
		store:    newStore(),
		parser:   parser.NewParser(parser.Options{}),
		started:  time.Now(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	u.engine = promql.NewEngine(promql.EngineOpts{
		Logger:               logger.With("component", "query engine"),
		Reg:                  reg,
		MaxSamples:           50_000_000,
		Timeout:              2 * time.Minute,
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		Parser:               u.parser,
		// A subquery without a step ([1h:]) takes the global evaluation
		// interval, as Prometheus' default of one minute; without it the
		// engine panics on such a query.
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
	})
	if err := u.backfill(); err != nil {
		_ = u.engine.Close()
		return nil, err
	}
	groups, err := loadRules(rulesFile, u.parser, u.rulesLog)
	if err != nil {
		_ = u.engine.Close()
		return nil, err
	}
	u.groups = groups
	u.ctx, u.cancel = context.WithCancel(context.Background())
	// Evaluate once at the start, so that alerts show at once; each group
	// is then evaluated every interval.
	for _, g := range u.groups {
		u.evalGroup(u.ctx, g, u.clock())
		u.rulesDone.Go(func() { u.runRules(u.ctx, g) })
	}
	return u, nil
}

// Scenario returns the data the upstream serves.
func (u *Upstream) Scenario() *Scenario { return u.scenario }

// backfill appends the history up to and including the scenario's start, in
// batches of one hour.
func (u *Upstream) backfill() error {
	u.sampler = u.scenario.newSampler()
	u.refs = make([]*memSeries, u.scenario.NumSeries())
	batch := int(time.Hour / Step)
	for u.sampler.t <= u.scenario.start {
		if err := u.appendSteps(batch, u.scenario.start); err != nil {
			return err
		}
	}
	return nil
}

// appendSteps appends at most n steps whose timestamps are <= until, in one
// batch.
func (u *Upstream) appendSteps(n int, until int64) error {
	u.batch = u.batch[:0]
	for i := 0; i < n && u.sampler.t <= until; i++ {
		u.sampler.next(func(i int, lset labels.Labels, t int64, v float64) {
			if u.refs[i] == nil {
				u.refs[i] = u.store.series(lset)
			}
			u.batch = append(u.batch, sample{series: u.refs[i], t: t, v: v})
		})
	}
	var err error
	u.store.append(u.batch, func(i int, e error) {
		if err == nil {
			err = fmt.Errorf("append synthetic samples: %s at %d: %w", u.batch[i].series.lset, u.batch[i].t, e)
		}
	})
	return err
}

// clock returns the timestamp of the newest appended step: the upstream's
// now, at which rules are evaluated.
func (u *Upstream) clock() time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return time.UnixMilli(u.sampler.t - Step.Milliseconds())
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
// Close is called. The rule group is evaluated every interval from New on.
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

// Close stops Run, the rule evaluation and the engine. The samples go with
// the Upstream.
func (u *Upstream) Close() error {
	u.stopOnce.Do(func() { close(u.stop) })
	u.runOnce.Do(func() { close(u.done) })
	<-u.done
	u.cancel()
	u.rulesDone.Wait()
	return u.engine.Close()
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
