package authz

import (
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/promgate/promgate/authn"
	"os"
	"path/filepath"
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

func TestDecisionCache(t *testing.T) {
	dir := t.TempDir()
	write := func(rego string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(rego), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`package promgate.authz

decision := {"allow": true, "enforce": {"namespace": [input.identity.subject]}}
`)
	reg := prometheus.NewRegistry()
	a := newAuthorizer(t, dir, reg)
	if a.current.Load().cache == nil {
		t.Fatal("a deterministic policy without input.query has no cache")
	}
	in := func(subject string) Input {
		return Input{Identity: &authn.Identity{Method: authn.MethodMTLS, Subject: subject}, Request: Request{Route: "query"}}
	}
	for _, s := range []string{"a", "b", "a", "b", "a"} {
		d, err := a.Decide(t.Context(), in(s))
		if err != nil || d.Enforce["namespace"][0] != s {
			t.Fatalf("Decide(%s) = %+v, %v", s, d, err)
		}
	}
	if hits := testutil.ToFloat64(a.metrics.cache.WithLabelValues("hit")); hits != 3 {
		t.Errorf("cache hits = %v, want 3", hits)
	}
	// A reload starts a new revision with an empty cache.
	write(`package promgate.authz

decision := {"allow": true, "enforce": {"namespace": ["reloaded"]}}
`)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if d, _ := a.Decide(t.Context(), in("a")); d.Enforce["namespace"][0] != "reloaded" {
		t.Errorf("after reload: %+v, a stale cached decision", d)
	}
	// Non-deterministic built-ins disable the cache.
	write(`package promgate.authz

decision := {"allow": time.now_ns() > 0}
`)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if a.current.Load().cache != nil {
		t.Error("a policy calling time.now_ns is cached")
	}
}

func TestCacheKeyDistinct(t *testing.T) {
	base := Input{Identity: &authn.Identity{Method: "mtls", Subject: "ab", Groups: []string{"c"}}, Request: Request{Method: "GET", Route: "query"}}
	variants := []Input{
		{Identity: &authn.Identity{Method: "mtls", Subject: "a", Groups: []string{"bc"}}, Request: base.Request},
		{Identity: &authn.Identity{Method: "mtls", Subject: "ab", Groups: []string{"c", ""}}, Request: base.Request},
		{Identity: &authn.Identity{Method: "oidc", Subject: "ab", Groups: []string{"c"}}, Request: base.Request},
		{Identity: &authn.Identity{Method: "mtls", Subject: "ab", Groups: []string{"c"}, Claims: map[string]any{"x": 1}}, Request: base.Request},
		{Identity: &authn.Identity{Method: "mtls", Subject: "ab", Groups: []string{"c"}, Certificate: &authn.Certificate{}}, Request: base.Request},
		{Identity: base.Identity, Request: Request{Method: "POST", Route: "query"}},
		{Identity: nil, Request: base.Request},
	}
	k0, _ := cacheKey(base)
	for i, v := range variants {
		if k, _ := cacheKey(v); k == k0 {
			t.Errorf("variant %d shares the key of the base input", i)
		}
	}
}
