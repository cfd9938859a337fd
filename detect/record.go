package detect

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// Record is a recording rule that a detector's alert reads: the baseline or
// forecast input it would otherwise recompute with a subquery at every
// evaluation. The exported rule file carries it before the alerts of the same
// group, so that an alert sees the sample recorded at the same evaluation.
type Record struct {
	// Name is the recorded metric name, promgate:<what>:<how>.
	Name string `json:"record" yaml:"record"`
	// Expr is the recorded expression, in portable PromQL.
	Expr string `json:"expr" yaml:"expr"`
}

// recordRE follows the level:metric:operations naming of Prometheus'
// recording-rule conventions, with the level fixed to promgate.
var recordRE = regexp.MustCompile(`^promgate:[a-z][a-z0-9_]*:[a-z0-9_]+$`)

// InlineStep is the step of the subqueries that stand for a recorded series
// read over a range in a detector's self-contained expression: the evaluation
// interval a recording rule would have had. Ranges of six hours or more use
// InlineStepLong, to bound the work of one evaluation.
const (
	InlineStep     = time.Minute
	InlineStepLong = 5 * time.Minute
)

// inlineRecords returns expr with every recorded series of recs replaced by
// the expression it records, so that the result runs on an upstream that has
// none of the recording rules (the gateway's own evaluator, the synthetic
// proofs):
//
//	rec              → (expr)
//	rec offset o     → (expr with o added to every selector's offset)
//	rec[r] offset o  → (expr)[r:InlineStep] offset o
//
// A recorded series must be selected by its name alone: another matcher would
// select among the recorded series' labels, which the subquery form cannot
// express in general, so it is refused.
func inlineRecords(e parser.Expr, recs map[string]parser.Expr) (parser.Expr, error) {
	var errs []error
	var walk func(parser.Expr) parser.Expr
	recorded := func(vs *parser.VectorSelector) (parser.Expr, bool) {
		src, ok := recs[vs.Name]
		if !ok {
			return nil, false
		}
		for _, m := range vs.LabelMatchers {
			if m.Name != model.MetricNameLabel {
				errs = append(errs, fmt.Errorf("recorded series %s is selected with %s; select it by name only", vs.Name, m))
			}
		}
		if vs.Timestamp != nil || vs.StartOrEnd != 0 {
			errs = append(errs, fmt.Errorf("recorded series %s is read with @, which the inlined form cannot keep", vs.Name))
		}
		// A fresh copy each time: the caller's tree must not share nodes.
		fresh, err := stockParser.ParseExpr(src.String())
		if err != nil {
			errs = append(errs, err)
			return nil, false
		}
		return fresh, true
	}
	walk = func(n parser.Expr) parser.Expr {
		switch n := n.(type) {
		case *parser.VectorSelector:
			inner, ok := recorded(n)
			if !ok {
				return n
			}
			if n.OriginalOffset != 0 {
				shiftOffsets(inner, n.OriginalOffset)
			}
			return &parser.ParenExpr{Expr: inner}
		case *parser.MatrixSelector:
			vs, ok := n.VectorSelector.(*parser.VectorSelector)
			if !ok {
				return n
			}
			inner, isRec := recorded(vs)
			if !isRec {
				return n
			}
			step := InlineStep
			if n.Range >= 6*time.Hour {
				step = InlineStepLong
			}
			return &parser.SubqueryExpr{Expr: &parser.ParenExpr{Expr: inner}, Range: n.Range, Step: step, OriginalOffset: vs.OriginalOffset}
		case *parser.AggregateExpr:
			n.Expr = walk(n.Expr)
			if n.Param != nil {
				n.Param = walk(n.Param)
			}
		case *parser.BinaryExpr:
			n.LHS, n.RHS = walk(n.LHS), walk(n.RHS)
		case *parser.Call:
			for i, a := range n.Args {
				n.Args[i] = walk(a)
			}
		case *parser.ParenExpr:
			n.Expr = walk(n.Expr)
		case *parser.UnaryExpr:
			n.Expr = walk(n.Expr)
		case *parser.SubqueryExpr:
			n.Expr = walk(n.Expr)
		}
		return n
	}
	out := walk(e)
	return out, errors.Join(errs...)
}

// shiftOffsets moves every selector and subquery of e, outside subqueries,
// back by d: e evaluated at t then reads what it read at t-d. Selectors inside
// a subquery are relative to the subquery's own steps and keep theirs.
func shiftOffsets(e parser.Node, d time.Duration) {
	parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
		for _, p := range path {
			if _, ok := p.(*parser.SubqueryExpr); ok {
				return nil
			}
		}
		switch n := n.(type) {
		case *parser.VectorSelector:
			n.OriginalOffset += d
		case *parser.SubqueryExpr:
			n.OriginalOffset += d
		}
		return nil
	})
}

// usesTime reports whether e calls time(), whose value an offset does not
// move.
func usesTime(e parser.Expr) bool {
	found := false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if c, ok := n.(*parser.Call); ok && c.Func.Name == "time" {
			found = true
		}
		return nil
	})
	return found
}

// offsetRecords returns the names of recorded series that e reads with an
// offset.
func offsetRecords(e parser.Expr, recs map[string]parser.Expr) []string {
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.OriginalOffset != 0 {
			if _, rec := recs[vs.Name]; rec {
				out = append(out, vs.Name)
			}
		}
		return nil
	})
	return out
}

// parseRecords checks a detector's recording rules and returns them by name.
func parseRecords(rs []Record) (map[string]parser.Expr, error) {
	out := map[string]parser.Expr{}
	var errs []error
	for _, r := range rs {
		if !recordRE.MatchString(r.Name) {
			errs = append(errs, fmt.Errorf("record %q must be named promgate:<what>:<how> in lowercase", r.Name))
			continue
		}
		if _, dup := out[r.Name]; dup {
			errs = append(errs, fmt.Errorf("record %s is defined twice", r.Name))
			continue
		}
		e, err := stockParser.ParseExpr(r.Expr)
		if err != nil {
			errs = append(errs, fmt.Errorf("record %s does not parse with the stock parser: %w", r.Name, err))
			continue
		}
		if e.Type() != parser.ValueTypeVector {
			errs = append(errs, fmt.Errorf("record %s returns a %s, not an instant vector", r.Name, e.Type()))
			continue
		}
		var inner error
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && recordRE.MatchString(vs.Name) {
				inner = fmt.Errorf("record %s reads another recorded series (%s); inline it", r.Name, vs.Name)
			}
			return nil
		})
		if inner != nil {
			errs = append(errs, inner)
			continue
		}
		out[r.Name] = e
	}
	return out, errors.Join(errs...)
}
