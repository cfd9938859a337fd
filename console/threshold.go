package console

import (
	"github.com/prometheus/prometheus/promql/parser"
)

var stockParser = parser.NewParser(parser.Options{})

// Threshold splits a detector's expression "value > N" into the value it
// compares and the threshold N, looking through parentheses and the left
// side of and/unless (a detector's "value > N unless baseline"). ok is false
// when the expression has no such comparison; the graph then draws the
// expression itself.
func Threshold(expr string) (value string, threshold float64, ok bool) {
	e, err := stockParser.ParseExpr(expr)
	if err != nil {
		return "", 0, false
	}
	for {
		switch n := e.(type) {
		case *parser.ParenExpr:
			e = n.Expr
			continue
		case *parser.BinaryExpr:
			switch n.Op {
			case parser.LAND, parser.LUNLESS:
				e = n.LHS
				continue
			case parser.GTR, parser.GTE, parser.LSS, parser.LTE:
				num, isNum := unparen(n.RHS).(*parser.NumberLiteral)
				if !isNum || n.ReturnBool || n.LHS.Type() != parser.ValueTypeVector {
					return "", 0, false
				}
				return n.LHS.String(), num.Val, true
			}
		}
		return "", 0, false
	}
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// Compared returns the left side of a detector's comparison, "value" of
// "value > N" or of "value > on (...) baseline", looking through
// parentheses and the left side of and/unless; "" when the expression is
// no comparison of a vector. The overview's sparklines draw it: unlike the
// detector's own result, it exists before and after the anomaly.
func Compared(expr string) string {
	e, err := stockParser.ParseExpr(expr)
	if err != nil {
		return ""
	}
	for {
		switch n := e.(type) {
		case *parser.ParenExpr:
			e = n.Expr
			continue
		case *parser.BinaryExpr:
			switch n.Op {
			case parser.LAND, parser.LUNLESS:
				e = n.LHS
				continue
			case parser.GTR, parser.GTE, parser.LSS, parser.LTE:
				if n.ReturnBool || n.LHS.Type() != parser.ValueTypeVector {
					return ""
				}
				return n.LHS.String()
			}
		}
		return ""
	}
}
