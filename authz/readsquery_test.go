package authz

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/prometheus/client_golang/prometheus"
)

func TestReadsQuery(t *testing.T) {
	tests := []struct {
		name, rego string
		want       bool
	}{
		{"identity only", `allow if input.identity.subject == "a"`, false},
		{"route", `allow if input.request.route == "query"`, false},
		{"query selectors", `allow if { some s in input.query.selectors; s.metric == "up" }`, true},
		{"query expressions", `allow if count(input.query.expressions) > 0`, true},
		{"whole input", `x := input`, true},
		{"input as argument", `allow if object.get(input, ["query"], null) != null`, true},
		{"computed key", `k := "query"
allow if input[k]`, true},
		{"walk", `allow if { walk(input, [p, v]); v == "x" }`, true},
		// Replacing input whole counts as reading it: the check errs safe.
		{"with input", `allow if { y with input as {"query": 1} }
y if input.identity`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ast.ParseModuleWithOpts("p.rego", "package p\n"+tc.rego, ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				t.Fatal(err)
			}
			if got := readsQuery(map[string]*ast.Module{"p": m}); got != tc.want {
				t.Errorf("readsQuery = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDefaultPolicyReadsNoQuery(t *testing.T) {
	a := newAuthorizer(t, "../policies", prometheus.NewRegistry())
	if a.current.Load().readsQuery {
		t.Error("the default policy reads input.query; the input would carry every selector for nothing")
	}
}
