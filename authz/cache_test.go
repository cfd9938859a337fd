package authz

import (
	"strconv"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestCompiledDecisionsShared checks that a policy the decision cache cannot
// serve (it reads input.query) still compiles one answer once: two requests
// given the same decision share its Enforcer, and another answer gets its
// own.
func TestCompiledDecisionsShared(t *testing.T) {
	a := newAuthorizer(t, writeFolder(t, policy(`decision := {"allow": true, "enforce": {"namespace": [ns]}} if {
	ns := "team-a"
	count(input.query.expressions) < 2
} else := {"allow": true, "enforce": {"namespace": ["team-b"]}}`)), nil)
	if a.current.Load().cache != nil {
		t.Fatal("a policy reading input.query has a decision cache")
	}
	first, err := a.Decide(t.Context(), queryInput(alice))
	if err != nil {
		t.Fatal(err)
	}
	in := queryInput(alice)
	in.Request.RemoteAddr = "10.9.9.9"
	second, err := a.Decide(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if first.Enforcer() == nil || second.Enforcer() != first.Enforcer() {
		t.Errorf("same decision, Enforcers %p and %p; want one shared", first.Enforcer(), second.Enforcer())
	}
	in.Query = &Query{Expressions: []string{"up", "up"}}
	other, err := a.Decide(t.Context(), in)
	if err != nil || other.Enforce["namespace"][0] != "team-b" || other.Enforcer() == first.Enforcer() {
		t.Errorf("other decision = %+v (Enforcer %p), %v; want team-b with its own Enforcer", other, other.Enforcer(), err)
	}
}

// TestCompiledDecisionsBounded checks what compiledDecisions keeps: allowed
// decisions only, no more than maxCompiled of them, and the answer
// parseDecision gives.
func TestCompiledDecisionsBounded(t *testing.T) {
	c := newCompiledDecisions()
	value := func(s string) ast.Value { return ast.MustParseTerm(s).Value }

	d, err := c.parse(value(`{"allow": false, "reason": "no"}`))
	if err != nil || d.Allow || d.Reason != "no" || c.n != 0 {
		t.Errorf("denial: %+v, %v, kept %d; want it parsed and not kept", d, err, c.n)
	}
	if _, err := c.parse(value(`{"allow": true, "matchers": ["up"]}`)); err == nil || c.n != 0 {
		t.Errorf("malformed: error %v, kept %d; want an error and nothing kept", err, c.n)
	}
	// Equal values compare by content, not by identity.
	d1, err1 := c.parse(value(`{"allow": true, "enforce": {"namespace": ["a", "b"]}}`))
	d2, err2 := c.parse(value(`{"enforce": {"namespace": ["a", "b"]}, "allow": true}`))
	if err1 != nil || err2 != nil || d1.Enforcer() == nil || d1.Enforcer() != d2.Enforcer() || c.n != 1 {
		t.Errorf("equal values: %v, %v, Enforcers %p %p, kept %d; want one shared", err1, err2, d1.Enforcer(), d2.Enforcer(), c.n)
	}
	for i := range maxCompiled + 10 {
		if _, err := c.parse(value(`{"allow": true, "reason": "r` + strconv.Itoa(i) + `"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if c.n > maxCompiled {
		t.Errorf("kept %d decisions, want at most %d", c.n, maxCompiled)
	}
}
