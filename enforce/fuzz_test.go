package enforce

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

const maxFuzzInput = 10 << 10

// fuzzPolicies are the policies every fuzzed input is rewritten under: one
// value; several values with regex metacharacters and an injection attempt
// together with a second label; a UTF-8 label; literal values and regular
// expressions (one with a top-level alternation) on one label; a regex label,
// a literal label and exclusion matchers together; and exclusion matchers
// alone.
var fuzzPolicies = []Policy{
	{Enforce: Enforcement{"namespace": {"a"}}},
	{Enforce: Enforcement{"namespace": {"a", "c", `a"} or up{namespace="b`, "a.b"}, "env": {"prod"}}},
	{Enforce: Enforcement{"k8s.namespace.name": {"a", "x|y"}}},
	{Enforce: Enforcement{"namespace": {"a"}}, EnforceRegex: map[string][]string{"namespace": {"team-.*", "x|y.+"}}},
	{
		Enforce:      Enforcement{"namespace": {"a", "b"}},
		EnforceRegex: map[string][]string{"env": {"prod-[0-9]+"}},
		Matchers:     []string{`{secret!="true"}`, `{__name__!~"kube_secret_.*"}`},
	},
	{Matchers: []string{`{secret!="true",team=~".+"}`}},
}

// FuzzQuery checks that no input panics, that every error is an *Error, and
// that a successful rewrite parses, is confined to the allowed set according
// to the independent check in check_test.go, leaves the parsed query as it
// was, and is idempotent.
func FuzzQuery(f *testing.F) {
	for _, c := range loadGolden(f) {
		f.Add(c.query)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > maxFuzzInput {
			t.Skip()
		}
		q, err := ParseQuery(s)
		if err != nil {
			pe, aerr := asError(err)
			if aerr != nil {
				t.Fatal(aerr)
			}
			if pe.Kind != BadData {
				t.Fatalf("ParseQuery(%q) error kind = %v, want BadData", s, pe.Kind)
			}
			return
		}
		if stock := q.expr.String(); q.String() != stock {
			t.Fatalf("format(%q) = %q, the stock printer gives %q", s, q.String(), stock)
		}
		_ = q.Lookback(time.Unix(1_700_000_000, 0))
		if q.Selectors() == nil {
			t.Fatal("Selectors() = nil")
		}
		for _, e := range fuzzPolicies {
			en, err := NewPolicyEnforcer(e)
			if err != nil {
				t.Fatal(err)
			}
			out, err := en.Rewrite(q)
			if err != nil {
				pe, aerr := asError(err)
				if aerr != nil {
					t.Fatal(aerr)
				}
				if pe.Kind != Forbidden && pe.Kind != BadData {
					t.Fatalf("Rewrite(%q) error kind = %v: %v", s, pe.Kind, err)
				}
				continue
			}
			if err := checkRewritten(out, e); err != nil {
				t.Fatalf("Rewrite(%q) under %v: %v", s, e, err)
			}
			q2, err := ParseQuery(out)
			if err != nil {
				t.Fatalf("ParseQuery(%q) of the output: %v", out, err)
			}
			again, err := en.Rewrite(q2)
			if err != nil {
				t.Fatalf("Rewrite(%q) of the output: %v", out, err)
			}
			if again != out {
				t.Fatalf("Rewrite is not idempotent: %q, then %q", out, again)
			}
		}
		if got := q.expr.String(); got != q.String() {
			t.Fatalf("Rewrite modified the query: %q, want %q", got, q.String())
		}
	})
}

// FuzzMatchers checks Matchers the same way for match[] parameters.
func FuzzMatchers(f *testing.F) {
	for _, s := range []string{
		"up", `up{namespace="b"}`, `{namespace=~".+"}`, `{namespace!="a"}`, `{namespace=""}`,
		`{__name__=~".+"}`, `{"namespace"="b","__name__"="up"}`, `{"k8s.namespace.name"=~"x|y"}`,
		`up{namespace="a\"} or up{namespace=\"b"}`, "up{", "",
	} {
		f.Add(s, "up")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if len(a)+len(b) > maxFuzzInput {
			t.Skip()
		}
		p := parser.NewParser(parser.Options{})
		for _, e := range fuzzPolicies {
			en, err := NewPolicyEnforcer(e)
			if err != nil {
				t.Fatal(err)
			}
			out, err := en.Matchers([]string{a, b})
			if err != nil {
				pe, aerr := asError(err)
				if aerr != nil {
					t.Fatal(aerr)
				}
				if pe.Kind != Forbidden && pe.Kind != BadData {
					t.Fatalf("Matchers error kind = %v: %v", pe.Kind, err)
				}
				continue
			}
			if len(out) != 2 {
				t.Fatalf("Matchers returned %d selectors, want 2", len(out))
			}
			for _, s := range out {
				ms, err := p.ParseMetricSelector(s)
				if err != nil {
					t.Fatalf("output %q does not parse: %v", s, err)
				}
				if err := checkConfined(ms, e); err != nil {
					t.Fatalf("output %q: %v", s, err)
				}
			}
			again, err := en.Matchers(out)
			if err != nil || !slices.Equal(again, out) {
				t.Fatalf("Matchers is not idempotent: %q, then %q, %v", out, again, err)
			}
		}
	})
}
