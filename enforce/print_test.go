package enforce

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"golang.org/x/tools/txtar"
)

// TestFormatMatchesStock checks the fast printer against the stock one on
// every golden query and a few shapes the goldens may lack.
func TestFormatMatchesStock(t *testing.T) {
	queries := []string{
		`sum by (job) (rate(http_requests_total{code=~"5.."}[5m] offset 1h)) / ignoring (code) group_left (team) sum(rate(x[5m] @ 1700000000))`,
		`-max_over_time(rate(x{a="b",c!="d"}[5m])[1h:1m] @ end() offset -5m) or on (a) vector(1) unless bool y`,
		`topk(3, count_values("v", up)) > bool 1`,
		`quantile(0.9, {__name__=~"a|b",z="1"}) * -(time())`,
		`label_replace(up, "dst", "$1", "src", "(.*)")`,
		`{"k8s.ns"="a","__name__"="up"}`,
		`up @ start()`,
		`absent(nonexistent{job="x"} offset 1d)`,
		`"str"`,
		`1e3 + 0x10 - Inf`,
	}
	files, err := filepath.Glob("testdata/rewrite/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range txtar.Parse(b).Files {
			if file.Name == "query" || (file.Name == "want" && !strings.HasPrefix(string(file.Data), "error:")) {
				queries = append(queries, strings.TrimSpace(string(file.Data)))
			}
		}
	}
	p := parser.NewParser(parser.Options{})
	n := 0
	for _, q := range queries {
		expr, err := p.ParseExpr(q)
		if err != nil {
			continue
		}
		n++
		if got, want := format(expr), expr.String(); got != want {
			t.Errorf("format(%q) = %q, stock printer %q", q, got, want)
		}
	}
	if n < 50 {
		t.Errorf("only %d queries compared", n)
	}
}
