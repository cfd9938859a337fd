package enforce

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Query is a parsed PromQL expression. It is immutable once parsed and safe
// for concurrent use.
type Query struct {
	expr      parser.Expr
	str       string
	selectors []Selector

	// Lookback, precomputed at parse time. rel is the furthest reach of
	// selectors not pinned by "@ <timestamp>"; earliest is the earliest
	// instant read by pinned ones, when pinned is set.
	rel      time.Duration
	pinned   bool
	earliest time.Time
}

// Selector is one vector selector of a query, as the policy sees it.
type Selector struct {
	Metric   string    `json:"metric"`
	Matchers []Matcher `json:"matchers"`
}

// Matcher is one label matcher of a selector. Type is "=", "!=", "=~" or "!~".
type Matcher struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// ParseQuery parses s with the stock PromQL parser (no feature flags) and
// checks that every node of the expression is one the rewriter knows. The
// error is an *Error of kind BadData whose message carries the parser's.
func ParseQuery(s string) (*Query, error) {
	expr, err := promql.ParseExpr(s)
	if err != nil {
		return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("invalid parameter %q: %v", "query", err)}
	}
	return newQuery(expr)
}

// newQuery analyses a parsed expression: it collects the selectors and the
// lookback, and refuses node types it does not know.
func newQuery(expr parser.Expr) (*Query, error) {
	q := &Query{expr: expr, selectors: []Selector{}}
	if err := q.analyse(expr, frame{}); err != nil {
		return nil, err
	}
	q.str = format(expr)
	return q, nil
}

// String returns the query as the stock printer writes it.
func (q *Query) String() string {
	if q == nil {
		return ""
	}
	return q.str
}

// Expressions returns the PromQL expressions of the query, for the policy
// input.
func (q *Query) Expressions() []string { return []string{q.String()} }

// Selectors returns every vector selector of the query in the order they
// appear, including those of range selectors, subqueries and function
// arguments. The slice is never nil, so that it encodes as a JSON array; it is
// shared and must not be modified.
func (q *Query) Selectors() []Selector {
	if q == nil {
		return []Selector{}
	}
	return q.selectors
}

// Lookback reports how far before evalTime the query reads data: the maximum
// over its selectors of range plus offset, plus the range and offset of every
// enclosing subquery, plus how far an "@ <timestamp>" lies before evalTime.
// For a range query, evalTime is the start. "@ start()" and "@ end()" count as
// evalTime itself: the request range is checked separately. The lookback delta
// of instant selectors (5m by default) is not included. A negative offset
// shifts the window forward, but the result is never below 0.
func (q *Query) Lookback(evalTime time.Time) time.Duration {
	if q == nil {
		return 0
	}
	d := q.rel
	if q.pinned {
		d = max(d, evalTime.Sub(q.earliest))
	}
	return max(d, 0)
}

// frame is the evaluation context of a node during analysis: how far before
// the evaluation time of the query (or before the pinned instant at) the
// node's own evaluation time may lie.
type frame struct {
	pinned bool
	at     time.Time
	acc    time.Duration
}

// shift returns the frame of the children of a selector or subquery with
// the given @ modifier and own reach (range plus offset).
func (f frame) shift(ts *int64, startOrEnd parser.ItemType, own time.Duration) frame {
	switch {
	case ts != nil:
		return frame{pinned: true, at: time.UnixMilli(*ts), acc: own}
	case startOrEnd == parser.START || startOrEnd == parser.END:
		return frame{acc: own}
	default:
		return frame{pinned: f.pinned, at: f.at, acc: addSat(f.acc, own)}
	}
}

// analyse walks the expression in source order. Every node type is listed:
// an unknown one is an error, never skipped.
func (q *Query) analyse(e parser.Expr, f frame) error {
	switch n := e.(type) {
	case *parser.VectorSelector:
		return q.selector(n, 0, f)
	case *parser.MatrixSelector:
		vs, ok := n.VectorSelector.(*parser.VectorSelector)
		if !ok || n.RangeExpr != nil {
			return unsupported(n)
		}
		return q.selector(vs, n.Range, f)
	case *parser.SubqueryExpr:
		if n.RangeExpr != nil || n.StepExpr != nil || n.OriginalOffsetExpr != nil {
			return unsupported(n)
		}
		return q.analyse(n.Expr, f.shift(n.Timestamp, n.StartOrEnd, addSat(n.Range, n.OriginalOffset)))
	case *parser.AggregateExpr:
		if n.Param != nil {
			if err := q.analyse(n.Param, f); err != nil {
				return err
			}
		}
		return q.analyse(n.Expr, f)
	case *parser.BinaryExpr:
		if err := q.analyse(n.LHS, f); err != nil {
			return err
		}
		return q.analyse(n.RHS, f)
	case *parser.Call:
		for _, a := range n.Args {
			if err := q.analyse(a, f); err != nil {
				return err
			}
		}
		return nil
	case *parser.ParenExpr:
		return q.analyse(n.Expr, f)
	case *parser.UnaryExpr:
		return q.analyse(n.Expr, f)
	case *parser.StepInvariantExpr:
		return q.analyse(n.Expr, f)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return nil
	default:
		return unsupported(n)
	}
}

func (q *Query) selector(vs *parser.VectorSelector, rng time.Duration, f frame) error {
	if vs.OriginalOffsetExpr != nil {
		return unsupported(vs)
	}
	s := Selector{Metric: vs.Name, Matchers: make([]Matcher, 0, len(vs.LabelMatchers))}
	for _, m := range vs.LabelMatchers {
		if m == nil {
			return unsupported(vs)
		}
		if s.Metric == "" && m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			s.Metric = m.Value
		}
		s.Matchers = append(s.Matchers, Matcher{Name: m.Name, Type: m.Type.String(), Value: m.Value})
	}
	q.selectors = append(q.selectors, s)

	g := f.shift(vs.Timestamp, vs.StartOrEnd, addSat(rng, vs.OriginalOffset))
	if g.pinned {
		first := g.at.Add(-max(g.acc, -math.MaxInt64))
		if !q.pinned || first.Before(q.earliest) {
			q.pinned, q.earliest = true, first
		}
		return nil
	}
	q.rel = max(q.rel, g.acc)
	return nil
}

// unsupported is the error for a node the rewriter does not know.
func unsupported(n parser.Node) error {
	return &Error{Kind: BadData, Msg: fmt.Sprintf("unsupported expression type %T", n)}
}

// addSat adds two durations, saturating instead of overflowing.
func addSat(a, b time.Duration) time.Duration {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}
