package enforce

import (
	"fmt"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/prometheus/prometheus/promql/parser"
)

// Rewrite returns the PromQL text of q with every vector selector confined to
// e. It never modifies q. An unrestricted e returns q.String(). The error is
// an *Error: Invalid for a malformed e, Forbidden for a selector that can only
// match values outside the allowed set, BadData for an expression it does not
// know.
func Rewrite(q *Query, e Enforcement) (string, error) {
	en, err := NewEnforcer(e)
	if err != nil {
		return "", err
	}
	return en.Rewrite(q)
}

// Rewrite is the package-level Rewrite with a prepared enforcement.
func (en *Enforcer) Rewrite(q *Query) (string, error) {
	if q == nil || q.expr == nil {
		return "", &Error{Kind: BadData, Msg: "empty query"}
	}
	if en.Unrestricted() {
		return q.str, nil
	}
	out, err := en.rewrite(q.expr)
	if err != nil {
		return "", err
	}
	return format(out), nil
}

// rewrite returns a copy of e with every selector confined. Unchanged leaves
// are shared with e; no node of e is modified. Every node type is listed: an
// unknown one is an error, never skipped.
func (en *Enforcer) rewrite(e parser.Expr) (parser.Expr, error) {
	switch n := e.(type) {
	case *parser.VectorSelector:
		return en.vectorSelector(n)
	case *parser.MatrixSelector:
		vs, ok := n.VectorSelector.(*parser.VectorSelector)
		if !ok || n.RangeExpr != nil {
			return nil, unsupported(n)
		}
		nvs, err := en.vectorSelector(vs)
		if err != nil {
			return nil, err
		}
		c := *n
		c.VectorSelector = nvs
		return &c, nil
	case *parser.SubqueryExpr:
		if n.RangeExpr != nil || n.StepExpr != nil || n.OriginalOffsetExpr != nil {
			return nil, unsupported(n)
		}
		inner, err := en.rewrite(n.Expr)
		if err != nil {
			return nil, err
		}
		c := *n
		c.Expr = inner
		return &c, nil
	case *parser.AggregateExpr:
		c := *n
		if n.Param != nil {
			p, err := en.rewrite(n.Param)
			if err != nil {
				return nil, err
			}
			c.Param = p
		}
		inner, err := en.rewrite(n.Expr)
		if err != nil {
			return nil, err
		}
		c.Expr = inner
		return &c, nil
	case *parser.BinaryExpr:
		lhs, err := en.rewrite(n.LHS)
		if err != nil {
			return nil, err
		}
		rhs, err := en.rewrite(n.RHS)
		if err != nil {
			return nil, err
		}
		c := *n
		c.LHS, c.RHS = lhs, rhs
		return &c, nil
	case *parser.Call:
		args := make(parser.Expressions, len(n.Args))
		for i, a := range n.Args {
			r, err := en.rewrite(a)
			if err != nil {
				return nil, err
			}
			args[i] = r
		}
		c := *n
		c.Args = args
		return &c, nil
	case *parser.ParenExpr:
		inner, err := en.rewrite(n.Expr)
		if err != nil {
			return nil, err
		}
		c := *n
		c.Expr = inner
		return &c, nil
	case *parser.UnaryExpr:
		inner, err := en.rewrite(n.Expr)
		if err != nil {
			return nil, err
		}
		c := *n
		c.Expr = inner
		return &c, nil
	case *parser.StepInvariantExpr:
		inner, err := en.rewrite(n.Expr)
		if err != nil {
			return nil, err
		}
		return &parser.StepInvariantExpr{Expr: inner}, nil
	case *parser.NumberLiteral, *parser.StringLiteral:
		return n, nil
	default:
		return nil, unsupported(n)
	}
}

func (en *Enforcer) vectorSelector(vs *parser.VectorSelector) (*parser.VectorSelector, error) {
	if vs.OriginalOffsetExpr != nil {
		return nil, unsupported(vs)
	}
	for _, m := range vs.LabelMatchers {
		if m == nil {
			return nil, unsupported(vs)
		}
	}
	ms, err := en.confine(vs.LabelMatchers, vs.String)
	if err != nil {
		return nil, err
	}
	c := *vs
	c.LabelMatchers = ms
	return &c, nil
}

// anyMetric matches every series: each has a non-empty name.
var anyMetric = labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")

// Matchers confines the match[] parameters of the series, labels, label
// values and federate routes to e. Each selector is parsed with the stock
// parser, confined like a selector of a query and printed again. Without
// match[], an enforced e gives the one selector that confines every enforced
// label, and an unrestricted e gives nil.
func Matchers(match []string, e Enforcement) ([]string, error) {
	en, err := NewEnforcer(e)
	if err != nil {
		return nil, err
	}
	return en.Matchers(match)
}

// Matchers is the package-level Matchers with a prepared enforcement.
func (en *Enforcer) Matchers(match []string) ([]string, error) {
	if len(match) == 0 {
		if en.Unrestricted() {
			return nil, nil
		}
		// The one selector is the confinement of the empty selector. When
		// only exclusions apply, every matcher may match the empty string,
		// which Prometheus refuses; __name__=~".+" matches every series and
		// makes the selector acceptable.
		vs := &parser.VectorSelector{}
		ms, err := en.confine(nil, func() string { return "{}" })
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches("") }) {
			ms = append(ms, anyMetric)
		}
		vs.LabelMatchers = ms
		return []string{vs.String()}, nil
	}
	out := make([]string, 0, len(match))
	for _, s := range match {
		ms, err := promql.ParseMetricSelector(s)
		if err != nil {
			return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("invalid parameter %q: %v", "match[]", err)}
		}
		if slices.Contains(ms, nil) {
			return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("invalid parameter %q: unparsable matcher", "match[]")}
		}
		vs := &parser.VectorSelector{LabelMatchers: ms}
		confined, err := en.confine(ms, vs.String)
		if err != nil {
			return nil, err
		}
		out = append(out, (&parser.VectorSelector{LabelMatchers: confined}).String())
	}
	return out, nil
}
