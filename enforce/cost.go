package enforce

import (
	"math"
	"math/bits"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// Defaults of CostParams, those of a Prometheus server without flags.
const (
	defaultScrapeInterval = 15 * time.Second
	defaultEvalInterval   = time.Minute
	defaultLookbackDelta  = 5 * time.Minute
)

// CostParams describe how a query will be evaluated. A zero or negative
// ScrapeInterval, EvalInterval or LookbackDelta takes its default.
type CostParams struct {
	// Start and End are the evaluation range; they are equal for an instant
	// query.
	Start, End time.Time
	// Step is the step of a range query, 0 for an instant query.
	Step time.Duration
	// ScrapeInterval is the assumed interval between the samples of a
	// series: 15s when 0.
	ScrapeInterval time.Duration
	// EvalInterval is the step of a subquery written without one ([1h:]):
	// Prometheus' global evaluation_interval, 1m when 0.
	EvalInterval time.Duration
	// LookbackDelta is how far back an instant vector selector looks for a
	// sample (Prometheus' --query.lookback-delta): 5m when 0.
	LookbackDelta time.Duration
}

// Cost is the estimated work of evaluating a query, per series read: the
// number of series a selector matches is unknown before the query runs, so
// every figure is to be multiplied by it. All counts saturate at
// math.MaxInt64 instead of overflowing.
type Cost struct {
	// Steps is the number of outer evaluation steps: (End-Start)/Step+1, or
	// 1 for an instant query.
	Steps int64
	// Points is the number of evaluation points over the whole query, each
	// a value Prometheus computes and holds: Steps plus the points of every
	// subquery.
	Points int64
	// SubqueryPoints is the largest number of points of a single subquery
	// (0 without subqueries): the size of the matrix it materialises. For
	// an instant query, [1d:1ms] has 86,400,000.
	SubqueryPoints int64
	// Samples is the estimated number of samples read: those of every
	// selector, plus the points that functions such as max_over_time read
	// from subquery results.
	Samples int64
	// Lookback is how far before Start the query reads data: the furthest
	// reach of its selectors, counting their range and offset, those of
	// every enclosing subquery, and @ modifiers. Unlike Query.Lookback, it
	// counts the lookback delta of instant vector selectors and places
	// @ end() at End. A subquery without selectors reads nothing. It is
	// never negative.
	Lookback time.Duration
}

// Cost estimates the work of evaluating q with p, without touching any
// data. It is an estimate of what the Prometheus engine does per series,
// meant to refuse queries whose shape alone makes them expensive, such as
// count_over_time(vector(1)[1d:1ms]), before they reach the upstream.
//
// Prometheus evaluates each node of a query once, over a range of evaluation
// points: the outer steps at the top, and for a subquery, every multiple of
// its step from its range before the first point of its parent up to the
// last one. A subquery therefore has ceil((S + range)/step) points, where S
// is the span its parent evaluates (0 for an instant query, End-Start for a
// subquery directly under a range query), whatever the parent's step; the
// subqueries inside it span its own points plus their range, so nested
// subqueries add their spans rather than multiply their counts. The engine
// holds each subquery's result as a matrix of that many points per series,
// which is where [1d:1ms] allocates gigabytes; SubqueryPoints bounds that
// matrix and Points the sum of them all. Counting outer steps times subquery
// points instead would overestimate overlapping windows and miss the case
// that matters: a range query whose step is far larger than a subquery's
// range still evaluates the subquery over the whole span.
//
// Samples are counted per evaluation point of the node that reads them. For
// range selectors and subqueries this is what the engine's own samples
// statistic (query_samples_total) counts, windows that overlap included:
//
//	node                        samples per evaluation point
//	selector[r]                 ceil(r/ScrapeInterval), at least 1
//	instant selector            ceil(LookbackDelta/ScrapeInterval) at the
//	                            first point, then ceil(min(LookbackDelta,
//	                            interval)/ScrapeInterval) at the next ones
//	subquery[r:s]               ceil(r/s), read by the function around it
//
// where interval is the distance between the points. For an instant
// selector the engine counts one sample per step, but it decodes the
// lookback window once, then the samples between consecutive steps; that is
// what is counted, 5m/15s = 20 samples for an instant query `up`.
//
// A step-invariant subtree (every selector under it pinned by @, such as
// rate(up[5m] @ 1700000000)) is evaluated once, at the first point of its
// parent, and its value copied to the others; which subtrees Prometheus
// treats so follows its PreprocessExpr, including the functions it never
// treats so (time, timestamp, predict_linear, ...). A subquery under such a
// subtree spans only its own range. A pinned selector whose function is not
// step-invariant is read at every point, as Prometheus does.
//
// Subquery points are an upper bound: Prometheus aligns them to multiples of
// the step, so it may have one fewer. Spans saturate at the 292 years a
// time.Duration holds, and every count at math.MaxInt64. Samples assume
// every series has a sample at every ScrapeInterval and count none of the
// cost of functions, aggregations and binary operators, which is
// proportional to Points.
func (q *Query) Cost(p CostParams) Cost {
	if q == nil || q.expr == nil {
		return Cost{}
	}
	if p.ScrapeInterval <= 0 {
		p.ScrapeInterval = defaultScrapeInterval
	}
	if p.EvalInterval <= 0 {
		p.EvalInterval = defaultEvalInterval
	}
	if p.LookbackDelta <= 0 {
		p.LookbackDelta = defaultLookbackDelta
	}
	steps := int64(1)
	interval := time.Duration(0)
	if p.Step > 0 && p.End.After(p.Start) {
		steps = satAdd(int64(p.End.Sub(p.Start)/p.Step), 1)
		interval = p.Step
	}
	w := coster{p: p}
	top := evalCtx{points: steps, interval: interval}
	w.walk(q.expr, top)
	if w.at {
		// Only @ makes a subtree with selectors or subqueries step-invariant.
		// Find those subtrees, then count again.
		w = coster{p: p, marking: true}
		if _, wrap := w.mark(q.expr); wrap {
			w.wrap(0)
		}
		w.n = 0
		w.walk(q.expr, top)
	}
	w.c.Steps = steps
	w.c.Points = satAdd(w.c.Points, steps)
	w.c.Lookback = max(w.c.Lookback, 0)
	return w.c
}

// evalCtx is the evaluation of a node: at how many points, how far apart,
// and how far before Start its evaluation points may lie (reach).
type evalCtx struct {
	points   int64
	interval time.Duration
	reach    time.Duration
}

// coster walks a query to sum its cost. Nodes are numbered in the order the
// walk enters them; wrapped holds the numbers of the nodes Prometheus
// evaluates once as step-invariant, in inline for the first 512 nodes.
type coster struct {
	p       CostParams
	c       Cost
	n       int
	at      bool // some node has an @ modifier
	marking bool // mark has run: wrapped is valid
	skip    int  // > 0 inside an aggregation parameter, which is never wrapped
	inline  [8]uint64
	more    []uint64
}

func (w *coster) wrap(i int) {
	if w.skip > 0 {
		return
	}
	if i < 64*len(w.inline) {
		w.inline[i/64] |= 1 << (i % 64)
		return
	}
	i -= 64 * len(w.inline)
	for i/64 >= len(w.more) {
		w.more = append(w.more, 0)
	}
	w.more[i/64] |= 1 << (i % 64)
}

func (w *coster) unwrap(i int) {
	if i < 64*len(w.inline) {
		w.inline[i/64] &^= 1 << (i % 64)
		return
	}
	if i -= 64 * len(w.inline); i/64 < len(w.more) {
		w.more[i/64] &^= 1 << (i % 64)
	}
}

func (w *coster) wrapped(i int) bool {
	if !w.marking {
		return false
	}
	if i < 64*len(w.inline) {
		return w.inline[i/64]&(1<<(i%64)) != 0
	}
	i -= 64 * len(w.inline)
	return i/64 < len(w.more) && w.more[i/64]&(1<<(i%64)) != 0
}

// pinned reports whether a selector or subquery has an @ modifier.
func pinned(ts *int64, startOrEnd parser.ItemType) bool {
	return ts != nil || startOrEnd == parser.START || startOrEnd == parser.END
}

// atUnsafe reports whether Prometheus never treats a call of the function
// as step-invariant (promql.AtModifierUnsafeFunctions). info is listed too:
// Prometheus decides it from its arguments' offsets.
func atUnsafe(name string) bool {
	switch name {
	case "days_in_month", "day_of_month", "day_of_week", "day_of_year",
		"end", "hour", "minute", "month", "year",
		"predict_linear", "range", "start", "step", "time",
		"timestamp", "info":
		return true
	}
	return false
}

// isSelector reports whether e is a vector selector, in parentheses or not.
func isSelector(e parser.Expr) bool {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			break
		}
		e = p.Expr
	}
	_, ok := e.(*parser.VectorSelector)
	return ok
}

// mark numbers the nodes as walk does and records those Prometheus wraps in
// a step-invariant expression, following promql.PreprocessExpr: the highest
// step-invariant subtrees, and the expression of a subquery when it is
// step-invariant. It reports whether e is step-invariant and whether its
// parent should wrap it if the parent is not.
func (w *coster) mark(e parser.Expr) (invariant, wrap bool) {
	w.n++
	switch n := e.(type) {
	case *parser.VectorSelector:
		p := pinned(n.Timestamp, n.StartOrEnd)
		return p, p
	case *parser.MatrixSelector:
		vs, ok := n.VectorSelector.(*parser.VectorSelector)
		return ok && pinned(vs.Timestamp, vs.StartOrEnd), false
	case *parser.SubqueryExpr:
		i := w.n
		if inv, _ := w.mark(n.Expr); inv {
			w.wrap(i)
		}
		return pinned(n.Timestamp, n.StartOrEnd), false
	case *parser.AggregateExpr:
		if n.Param != nil {
			w.skip++
			w.mark(n.Param)
			w.skip--
		}
		return w.mark(n.Expr)
	case *parser.BinaryExpr:
		l := w.n
		invL, wrapL := w.mark(n.LHS)
		r := w.n
		invR, wrapR := w.mark(n.RHS)
		if invL && invR {
			return true, true
		}
		if wrapL {
			w.wrap(l)
		}
		if wrapR {
			w.wrap(r)
		}
		return false, false
	case *parser.Call:
		inv := !atUnsafe(n.Func.Name)
		ts := n.Func.Name == "timestamp"
		// The arguments to wrap unless the call is step-invariant: at most
		// three of any function are vectors or scalars. Past four, an argument
		// is left unwrapped, which only overestimates.
		var pending [4]int
		np := 0
		for _, a := range n.Args {
			i := w.n
			invA, wrapA := w.mark(a)
			inv = inv && invA
			if !invA || !isSelector(a) {
				ts = false
			}
			if wrapA && np < len(pending) {
				w.wrap(i)
				pending[np] = i
				np++
			}
		}
		if inv || ts {
			for _, i := range pending[:np] {
				w.unwrap(i)
			}
			return true, true
		}
		return false, false
	case *parser.ParenExpr:
		return w.mark(n.Expr)
	case *parser.UnaryExpr:
		return w.mark(n.Expr)
	case *parser.StepInvariantExpr:
		w.mark(n.Expr)
		return true, true
	case *parser.NumberLiteral, *parser.StringLiteral:
		return true, false
	}
	return false, false
}

// walk adds the cost of e evaluated in c. It allocates nothing.
func (w *coster) walk(e parser.Expr, c evalCtx) {
	if w.wrapped(w.n) {
		c.points = 1
	}
	w.n++
	switch n := e.(type) {
	case *parser.VectorSelector:
		w.read(c, n, 0)
	case *parser.MatrixSelector:
		if vs, ok := n.VectorSelector.(*parser.VectorSelector); ok {
			w.read(c, vs, max(n.Range, 1))
		}
	case *parser.SubqueryExpr:
		w.at = w.at || pinned(n.Timestamp, n.StartOrEnd)
		step := n.Step
		if step <= 0 {
			step = w.p.EvalInterval
		}
		span := time.Duration(satMul(c.points-1, int64(max(c.interval, 0))))
		pts := max(ceilDiv(addSat(span, n.Range), step), 1)
		w.c.SubqueryPoints = max(w.c.SubqueryPoints, pts)
		w.c.Points = satAdd(w.c.Points, pts)
		w.c.Samples = satAdd(w.c.Samples, satMul(c.points, max(ceilDiv(n.Range, step), 1)))
		w.walk(n.Expr, evalCtx{
			points:   pts,
			interval: step,
			reach:    w.reach(c, n.Timestamp, n.StartOrEnd, addSat(n.Range, n.OriginalOffset)),
		})
	case *parser.AggregateExpr:
		if n.Param != nil {
			w.walk(n.Param, c)
		}
		w.walk(n.Expr, c)
	case *parser.BinaryExpr:
		w.walk(n.LHS, c)
		w.walk(n.RHS, c)
	case *parser.Call:
		for _, a := range n.Args {
			w.walk(a, c)
		}
	case *parser.ParenExpr:
		w.walk(n.Expr, c)
	case *parser.UnaryExpr:
		w.walk(n.Expr, c)
	case *parser.StepInvariantExpr:
		w.at = true
		c.points = 1
		w.walk(n.Expr, c)
	}
}

// read adds the samples and lookback of a selector: a range selector when
// rng > 0, else an instant selector.
func (w *coster) read(c evalCtx, vs *parser.VectorSelector, rng time.Duration) {
	w.at = w.at || pinned(vs.Timestamp, vs.StartOrEnd)
	var s int64
	if rng > 0 {
		s = satMul(c.points, max(ceilDiv(rng, w.p.ScrapeInterval), 1))
	} else {
		rng = w.p.LookbackDelta
		s = max(ceilDiv(rng, w.p.ScrapeInterval), 1)
		if c.points > 1 {
			next := max(ceilDiv(min(rng, c.interval), w.p.ScrapeInterval), 1)
			s = satAdd(s, satMul(c.points-1, next))
		}
	}
	w.c.Samples = satAdd(w.c.Samples, s)
	w.c.Lookback = max(w.c.Lookback, w.reach(c, vs.Timestamp, vs.StartOrEnd, addSat(rng, vs.OriginalOffset)))
}

// reach returns how far before Start a selector or subquery evaluated in c
// reads, given its @ modifier and own reach (range plus offset): an @
// modifier replaces the reach of c by how far the instant it names lies
// before Start.
func (w *coster) reach(c evalCtx, ts *int64, startOrEnd parser.ItemType, own time.Duration) time.Duration {
	switch {
	case ts != nil:
		return addSat(w.p.Start.Sub(time.UnixMilli(*ts)), own)
	case startOrEnd == parser.START:
		return own
	case startOrEnd == parser.END:
		return addSat(w.p.Start.Sub(w.p.End), own)
	}
	return addSat(c.reach, own)
}

// ceilDiv returns ceil(d/step) for d >= 0 and step > 0, and 0 for d <= 0.
func ceilDiv(d, step time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	q := int64(d / step)
	if d%step != 0 {
		q++
	}
	return q
}

// satAdd adds two non-negative counts, saturating at math.MaxInt64.
func satAdd(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxInt64
}

// satMul multiplies two non-negative counts, saturating at math.MaxInt64.
func satMul(a, b int64) int64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(lo)
}
