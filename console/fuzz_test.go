package console

import (
	"testing"
)

// FuzzThreshold: Threshold never panics, and a value it returns is an
// expression that parses.
func FuzzThreshold(f *testing.F) {
	for _, s := range []string{
		`sum by (namespace, pod) (rate(x[5m])) > 1`,
		`(a / b) > 0.3 and c > 0.2`,
		`a > 3 unless b`,
		`1 < a`,
		`a > bool 1`,
		`((a)) >= (2)`,
		`sum(`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		if len(expr) > 4096 {
			return
		}
		value, _, ok := Threshold(expr)
		if !ok {
			return
		}
		if _, err := stockParser.ParseExpr(value); err != nil {
			t.Errorf("Threshold(%q) = %q, which does not parse: %v", expr, value, err)
		}
	})
}
