package enforce

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
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

// TestWriteDurationMatchesStock checks writeDuration against
// model.Duration.String on unit boundaries, mixed values and random ones.
func TestWriteDurationMatchesStock(t *testing.T) {
	ds := []time.Duration{0, time.Millisecond, 999 * time.Millisecond, time.Second, 90 * time.Second,
		5 * time.Minute, time.Hour + 30*time.Minute + 15*time.Second + 7*time.Millisecond, 24 * time.Hour,
		7 * 24 * time.Hour, 8 * 24 * time.Hour, 90 * 24 * time.Hour, 365 * 24 * time.Hour, 366 * 24 * time.Hour,
		2 * 365 * 24 * time.Hour, 14 * 24 * time.Hour, -time.Second, -(5*time.Minute + 3*time.Millisecond),
		time.Duration(1<<62) / time.Millisecond * time.Millisecond, 1500 * time.Microsecond}
	rng := rand.New(rand.NewPCG(9, 9)) //nolint:gosec // G404: a fixed seed, so that failures reproduce; nothing secret
	for range 10000 {
		ds = append(ds, time.Duration(rng.Int64N(int64(3*365*24*time.Hour)))/time.Millisecond*time.Millisecond)
	}
	for _, d := range ds {
		var b strings.Builder
		writeDuration(&b, d)
		if want := model.Duration(d).String(); b.String() != want {
			t.Errorf("writeDuration(%d) = %q, want %q", d, b.String(), want)
		}
	}
}
