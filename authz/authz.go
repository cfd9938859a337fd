package authz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	opametrics "github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/config"
)

// noMetrics discards OPA's per-evaluation timers and counters: the gateway
// keeps its own histogram, and building OPA's would cost every request an
// allocation-heavy map.
var noMetrics = opametrics.NoOp()

// Authorizer evaluates the policy of one folder. It is safe for concurrent
// use. The compiled policy is an immutable snapshot that Reload replaces as a
// whole, so a request is decided by exactly one revision.
type Authorizer struct {
	dir      string
	fsys     fs.FS
	decision ast.Ref
	logger   *slog.Logger
	metrics  *metrics

	current  atomic.Pointer[snapshot]
	reloadMu sync.Mutex // serialises Reload

	// bundle is the signed bundle the policy comes from, or nil for a
	// folder (bundle.go).
	bundle *bundleSource
}

// snapshot is one compiled policy folder.
type snapshot struct {
	query    rego.PreparedEvalQuery
	revision string
	files    []string
	// readsQuery: some module refers to input.query, or to input as a
	// whole or by a computed key, so the input must carry the query.
	readsQuery bool
	// cache holds this revision's decisions when they depend on the input
	// alone (cache.go); nil otherwise.
	cache *decisionCache
	// compiled holds this revision's allowed decisions by value, each
	// parsed and compiled once (cache.go).
	compiled *compiledDecisions
}

// New loads and compiles the policy folder cfg.Policies and prepares the
// query cfg.Decision.
//
// Every *.rego file is a module, except *_test.rego, which only Test runs.
// Every *.json, *.yaml and *.yml file is data: a file in the top folder is
// merged at the data root, a file in a sub-folder a/b at data.a.b, as
// `opa run` does with plain files. Names starting with a dot are skipped.
//
// Modules are Rego v1, compiled in strict mode with the capabilities of this
// OPA version minus the built-ins removedBuiltin lists (http.send, net.*,
// opa.runtime); calling one is a compile error. Built-in errors (a division by
// zero, sprintf of a bad argument) end the evaluation with an error instead of
// making the expression undefined as OPA does by default: an undefined
// expression under `not` or before an `else` could turn a failed check into an
// allow.
//
// Errors name the file and line and start with "authz.policies: ", or with
// "authz.decision: " when the decision reference is not a ground data
// reference that some rule or data defines.
//
// The logger and registerer may be nil. When New is called twice with one
// registerer (as `promgate check` and serve may), the metrics are shared.
func New(cfg config.Authz, logger *slog.Logger, reg prometheus.Registerer) (*Authorizer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Policies == "" && cfg.Bundle.URL == "" {
		return nil, errors.New("authz.policies: required: a folder of .rego and data files")
	}
	ref, err := parseDecisionRef(cfg.Decision)
	if err != nil {
		return nil, err
	}
	if cfg.Bundle.URL != "" {
		return newFromBundle(cfg, ref, logger, reg)
	}
	info, err := os.Stat(cfg.Policies)
	if err != nil {
		return nil, fmt.Errorf("authz.policies: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("authz.policies: %s is not a folder", cfg.Policies)
	}
	a := &Authorizer{
		dir:      cfg.Policies,
		fsys:     os.DirFS(cfg.Policies),
		decision: ref,
		logger:   logger.With("component", "authz"),
	}
	s, err := a.build(context.Background())
	if err != nil {
		return nil, err
	}
	if a.metrics, err = newMetrics(reg); err != nil {
		return nil, err
	}
	a.current.Store(s)
	a.metrics.reloaded(true)
	a.logger.Info("policy loaded", "revision", s.revision, "files", len(s.files))
	return a, nil
}

func parseDecisionRef(s string) (ast.Ref, error) {
	ref, err := ast.ParseRef(s)
	if err != nil || !ref.HasPrefix(ast.DefaultRootRef) || len(ref) < 2 || !ref.IsGround() {
		return nil, fmt.Errorf("authz.decision: %q is not a ground Rego reference such as data.promgate.authz.decision", s)
	}
	return ref, nil
}

// build reads, compiles and prepares the folder.
func (a *Authorizer) build(ctx context.Context) (*snapshot, error) {
	return a.buildFrom(ctx, a.fsys, a.dir, "authz.policies: ", "")
}

// buildFrom reads, compiles and prepares the policy in fsys (the folder dir,
// or a bundle's files). rev names the revision; empty means the hash of the
// files. Errors start with prefix.
func (a *Authorizer) buildFrom(ctx context.Context, fsys fs.FS, dir, prefix, rev string) (*snapshot, error) {
	files, err := readFiles(fsys, false)
	if err != nil {
		return nil, fmt.Errorf("%sread %s: %w", prefix, dir, err)
	}
	p, err := parse(dir, files)
	if err != nil {
		return nil, prefixed(prefix, err)
	}
	pq, err := prepare(ctx, p, a.decision)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.name
	}
	if rev == "" {
		rev = revision(files)
	}
	s := &snapshot{query: pq, revision: rev, files: names, readsQuery: readsQuery(p.modules), compiled: newCompiledDecisions()}
	if !s.readsQuery && deterministic(p.modules) {
		s.cache = newDecisionCache()
	}
	return s, nil
}

// prepare compiles the modules and data of p and prepares the query ref.
func prepare(ctx context.Context, p parsed, ref ast.Ref) (rego.PreparedEvalQuery, error) {
	store := inmem.NewFromObjectWithOpts(p.data, inmem.OptReturnASTValuesOnRead(true))
	var compiler *ast.Compiler
	opts := []func(*rego.Rego){
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(ref)))),
		rego.Store(store),
		rego.StoreReadAST(true),
		rego.Capabilities(capabilities()),
		rego.Strict(true),
		rego.StrictBuiltinErrors(true),
		rego.SetRegoVersion(ast.RegoV1),
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
		rego.CompilerHook(func(c *ast.Compiler) { compiler = c }),
	}
	for _, name := range slices.Sorted(maps.Keys(p.modules)) {
		opts = append(opts, rego.ParsedModule(p.modules[name]))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return rego.PreparedEvalQuery{}, prefixed("authz.policies: ", regoError(err))
	}
	if compiler != nil && len(compiler.GetRules(ref)) == 0 && !dataDefines(p.data, ref) {
		return rego.PreparedEvalQuery{}, fmt.Errorf("authz.decision: %s is defined by no rule of the policies", ref)
	}
	return pq, nil
}

// readsQuery reports whether any module may read input.query. Any reference
// to input as a whole, or with a key that is not a constant string, counts
// as reading it, and so does input used as a plain term (x := input, or as
// a function argument): the answer errs towards building the query.
func readsQuery(modules map[string]*ast.Module) bool {
	for _, m := range modules {
		refs, vars, found := 0, 0, false
		ast.WalkRefs(m, func(r ast.Ref) bool {
			if !r.HasPrefix(ast.InputRootRef) {
				return false
			}
			refs++
			if len(r) == 1 {
				found = true
			} else if key, ok := r[1].Value.(ast.String); !ok || key == "query" {
				found = true
			}
			return false
		})
		ast.WalkVars(m, func(v ast.Var) bool {
			if v.Equal(ast.InputRootDocument.Value) {
				vars++
			}
			return false
		})
		// Every reference to input has input as its head variable; any
		// other occurrence of that variable is input used whole.
		if found || vars != refs {
			return true
		}
	}
	return false
}

// dataDefines reports whether the data documents hold a value at ref.
func dataDefines(data map[string]any, ref ast.Ref) bool {
	var cur any = data
	for _, t := range ref[1:] {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		key, ok := t.Value.(ast.String)
		if !ok {
			return false
		}
		if cur, ok = m[string(key)]; !ok {
			return false
		}
	}
	return true
}

// regoError strips OPA's wrapping ("bundle activation failed: 1 error
// occurred: ") from compile errors, leaving one "file:line: code: message"
// per problem.
func regoError(err error) error {
	if errs, ok := errors.AsType[ast.Errors](err); ok && len(errs) > 0 {
		lines := make([]error, len(errs))
		for i, e := range errs {
			lines[i] = e
		}
		return errors.Join(lines...)
	}
	return err
}

// prefixed puts prefix before every problem of err, so that each line of a
// joined error names the setting it is about.
func prefixed(prefix string, err error) error {
	var errs []error
	var flatten func(error)
	flatten = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				flatten(e)
			}
			return
		}
		errs = append(errs, fmt.Errorf("%s%w", prefix, err))
	}
	flatten(err)
	return errors.Join(errs...)
}

// Decide evaluates the policy for in and returns its decision.
//
// It fails closed. An undefined decision, an evaluation error, more than one
// result, or a decision that is not an object with a boolean "allow" and
// well-typed optional fields gives a denial with a short, safe Reason and a
// non-nil error wrapping ErrUndefined, ErrEvaluation or ErrMalformed. The
// error text is for logs and the audit record, not for the caller.
//
// An allowed decision carries its compiled Enforcer (Decision.Enforcer); a
// confinement that does not compile is malformed. When the revision's
// decisions depend on the input alone (no input.query, no time, random or
// UUID built-ins), they are cached per revision by input, and allowed
// decisions are kept by value whatever the policy; the returned Decision may
// then be shared and must not be modified.
func (a *Authorizer) Decide(ctx context.Context, in Input) (Decision, error) {
	d, err := a.decide(ctx, in)
	result := "deny"
	switch {
	case err != nil:
		result = "error"
	case d.Allow:
		result = "allow"
	}
	a.metrics.decisions.WithLabelValues(in.Request.Route, result).Inc()
	return d, err
}

func (a *Authorizer) decide(ctx context.Context, in Input) (Decision, error) {
	s := a.current.Load()
	if s.cache != nil {
		if key, ok := cacheKey(in); ok {
			if d, ok := s.cache.get(key); ok {
				a.metrics.cacheHit.Inc()
				return d, nil
			}
			a.metrics.cacheMiss.Inc()
			d, err := a.evalInput(ctx, s, in)
			if err == nil {
				s.cache.put(key, d)
			}
			return d, err
		}
	}
	return a.evalInput(ctx, s, in)
}

// evalInput builds the input for snapshot s and evaluates it.
func (a *Authorizer) evalInput(ctx context.Context, s *snapshot, in Input) (Decision, error) {
	if s.readsQuery && in.Query == nil && in.QueryFunc != nil {
		q, err := in.QueryFunc()
		if err != nil {
			return Decision{Reason: reasonInput, Revision: s.revision}, fmt.Errorf("build policy input: %w", err)
		}
		in.Query = q
	}
	v, err := in.value()
	if err != nil {
		return Decision{Reason: reasonInput, Revision: s.revision}, fmt.Errorf("build policy input: %w", err)
	}
	return a.evalWith(ctx, s, v)
}

// DecideJSON evaluates the policy for a raw JSON input document, for
// `promgate policy eval`. It applies the same checks as Decide but records no
// metrics.
func (a *Authorizer) DecideJSON(ctx context.Context, input []byte) (Decision, error) {
	s := a.current.Load()
	v, err := ast.ValueFromReader(bytes.NewReader(input))
	if err != nil {
		return Decision{Reason: reasonInput, Revision: s.revision}, fmt.Errorf("parse input: %w", err)
	}
	return a.evalWith(ctx, s, v)
}

// evalWith evaluates input with snapshot s, the one the input was built for,
// and stamps the decision with s's revision.
func (a *Authorizer) evalWith(ctx context.Context, s *snapshot, input ast.Value) (Decision, error) {
	d, err := a.evalSnapshot(ctx, s, input)
	d.Revision = s.revision
	return d, err
}

func (a *Authorizer) evalSnapshot(ctx context.Context, s *snapshot, input ast.Value) (Decision, error) {
	if err := ctx.Err(); err != nil {
		// OPA checks for cancellation only now and then while evaluating;
		// a request that is already gone gets no decision at all.
		return Decision{Reason: reasonEvaluation}, fmt.Errorf("%w (revision %s): %w", ErrEvaluation, s.revision, err)
	}
	start := time.Now()
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	rs, err := s.query.Eval(ctx,
		rego.EvalParsedInput(input),
		rego.EvalMetrics(noMetrics),
		rego.EvalExternalCancel(cancel),
	)
	stop()
	a.metrics.evalDuration.Observe(time.Since(start).Seconds())
	switch {
	case err != nil:
		return Decision{Reason: reasonEvaluation}, fmt.Errorf("%w (revision %s): %w", ErrEvaluation, s.revision, err)
	case len(rs) == 0:
		return Decision{Reason: reasonUndefined}, fmt.Errorf("%w (revision %s)", ErrUndefined, s.revision)
	case len(rs) > 1 || len(rs[0].Expressions) != 1:
		return Decision{Reason: reasonMalformed}, fmt.Errorf("%w (revision %s): %d results, want one", ErrMalformed, s.revision, len(rs))
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return Decision{Reason: reasonMalformed}, fmt.Errorf("%w (revision %s): unexpected result %T", ErrMalformed, s.revision, rs[0].Expressions[0].Value)
	}
	d, err := s.compiled.parse(t.Value)
	if err != nil {
		return Decision{Reason: reasonMalformed}, fmt.Errorf("%w (revision %s)", err, s.revision)
	}
	return d, nil
}

// Revision is a short hex SHA-256 over the names and contents of the policy
// and data files in use (test modules excluded), for the audit record.
func (a *Authorizer) Revision() string {
	return a.current.Load().revision
}

// Files lists the policy and data files in use, as slash-separated paths
// relative to the policy folder, sorted.
func (a *Authorizer) Files() []string {
	return slices.Clone(a.current.Load().files)
}

// Reload reads and compiles the policy folder again and, only if all of it
// succeeds, swaps the new policy in. On failure the policy in use stays, the
// error is logged and returned, and promgate_policy_reloads_total{result=
// "failure"} counts it.
func (a *Authorizer) Reload() error {
	if a.bundle != nil {
		return a.pollBundle(context.Background())
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	old := a.current.Load()
	s, err := a.build(context.Background())
	if err != nil {
		a.metrics.reloaded(false)
		a.logger.Error("policy reload failed; keeping the policy in use", "err", err, "revision", old.revision)
		return err
	}
	a.current.Store(s)
	a.metrics.reloaded(true)
	a.logger.Info("policy reloaded", "revision", s.revision, "previous_revision", old.revision, "files", len(s.files))
	return nil
}

// InitRoutes sets promgate_authz_decisions_total to 0 for each route and
// result, so that increase() sees the first decision of each kind.
func (a *Authorizer) InitRoutes(routes []string) {
	for _, r := range routes {
		for _, result := range []string{"allow", "deny", "error"} {
			a.metrics.decisions.WithLabelValues(r, result)
		}
	}
}

type metrics struct {
	evalDuration prometheus.Histogram
	decisions    *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	lastReload   prometheus.Gauge
	cache        *prometheus.CounterVec
	// cacheHit and cacheMiss are cache's two series, looked up once.
	cacheHit, cacheMiss prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		evalDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "promgate_policy_eval_duration_seconds",
			Help:    "Time spent evaluating the authorization policy for one request.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 8), // 50µs to 0.8s
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_authz_decisions_total",
			Help: "Policy decisions by route and result (allow, deny, error).",
		}, []string{"route", "result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_policy_reloads_total",
			Help: "Policy loads by result (success, failure).",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "promgate_policy_last_reload_timestamp_seconds",
			Help: "Time the policy in use was loaded.",
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_policy_decision_cache_lookups_total",
			Help: "Decision cache lookups by result (hit, miss); only policies whose decision depends on the input alone are cached.",
		}, []string{"result"}),
	}
	if reg != nil {
		var errs [5]error
		m.evalDuration, errs[0] = register(reg, m.evalDuration)
		m.decisions, errs[1] = register(reg, m.decisions)
		m.reloads, errs[2] = register(reg, m.reloads)
		m.lastReload, errs[3] = register(reg, m.lastReload)
		m.cache, errs[4] = register(reg, m.cache)
		if err := errors.Join(errs[:]...); err != nil {
			return nil, fmt.Errorf("register authz metrics: %w", err)
		}
	}
	m.cacheHit = m.cache.WithLabelValues("hit")
	m.cacheMiss = m.cache.WithLabelValues("miss")
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

func (m *metrics) reloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
		m.lastReload.SetToCurrentTime()
		return
	}
	m.reloads.WithLabelValues("failure").Inc()
}
