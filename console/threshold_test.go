package console

import "testing"

func TestThreshold(t *testing.T) {
	tests := []struct {
		expr, value string
		th          float64
		ok          bool
	}{
		{`sum by (pod) (rate(x[5m])) > 1`, `sum by (pod) (rate(x[5m]))`, 1, true},
		{`(a / b) > 0.3 and c > 0.2`, `(a / b)`, 0.3, true},
		{`a > 3 unless b`, `a`, 3, true},
		{`a > bool 1`, "", 0, false},
		{`1 < a`, "", 0, false},
		{`a`, "", 0, false},
		{`sum(`, "", 0, false},
	}
	for _, tc := range tests {
		v, th, ok := Threshold(tc.expr)
		if v != tc.value || th != tc.th || ok != tc.ok {
			t.Errorf("Threshold(%q) = %q, %v, %v; want %q, %v, %v", tc.expr, v, th, ok, tc.value, tc.th, tc.ok)
		}
	}
}

func TestCompared(t *testing.T) {
	for expr, want := range map[string]string{
		`a > 1`:                       `a`,
		`a > on (x) group_left 3 * b`: `a`,
		`(a > b) unless c`:            `a`,
		`a > bool 1`:                  "",
		`sum(a)`:                      "",
		`1 < a`:                       "",
		`sum(`:                        "",
	} {
		if got := Compared(expr); got != want {
			t.Errorf("Compared(%q) = %q, want %q", expr, got, want)
		}
	}
}
