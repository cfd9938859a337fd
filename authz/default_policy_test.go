package authz

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/promgate/promgate/authn"
)

// defaultPolicy is the folder of the shipped default policy.
const defaultPolicy = "../policies"

// TestDefaultPolicy loads the shipped policy and data as the gateway does and
// checks its decisions through Decide.
func TestDefaultPolicy(t *testing.T) {
	a := newAuthorizer(t, defaultPolicy, nil)
	id := func(subject string, groups ...string) *authn.Identity {
		return &authn.Identity{Method: authn.MethodMTLS, Subject: subject, Groups: groups}
	}
	tests := []struct {
		name string
		in   Input
		want Decision
	}{
		{
			name: "admin",
			in:   queryInput(id("root@example.com", "admins")),
			want: Decision{Allow: true, Reason: "allowed: member of an admin group, unrestricted"},
		},
		{
			name: "admin and team member",
			in:   queryInput(id("root@example.com", "team-a", "admins")),
			want: Decision{Allow: true, Reason: "allowed: member of an admin group, unrestricted"},
		},
		{
			name: "team member",
			in:   queryInput(id("alice@example.com", "team-a")),
			want: Decision{
				Allow:   true,
				Reason:  "allowed: confined to the namespaces of the caller's groups",
				Enforce: map[string][]string{"namespace": {"team-a", "team-a-staging"}},
			},
		},
		{
			name: "member of two teams gets the union",
			in:   queryInput(id("carol@example.com", "team-b", "team-a")),
			want: Decision{
				Allow:   true,
				Reason:  "allowed: confined to the namespaces of the caller's groups",
				Enforce: map[string][]string{"namespace": {"team-a", "team-a-staging", "team-b"}},
			},
		},
		{
			name: "unknown group",
			in:   queryInput(id("mallory@example.com", "team-z")),
			want: Decision{Reason: "denied: mallory@example.com (groups: team-z) is in no group with access; ask an administrator to grant one of your groups access in the policy data"},
		},
		{
			name: "no groups",
			in:   queryInput(id("bob@example.com")),
			want: Decision{Reason: "denied: bob@example.com (groups: none) is in no group with access; ask an administrator to grant one of your groups access in the policy data"},
		},
		{
			name: "admin, query without selectors",
			in:   noSelectorsInput(id("root@example.com", "admins"), "1+1"),
			want: Decision{Allow: true, Reason: "allowed: member of an admin group, unrestricted"},
		},
		{
			name: "team member, query without selectors",
			in:   noSelectorsInput(id("alice@example.com", "team-a"), "vector(1)"),
			want: Decision{
				Allow:   true,
				Reason:  "allowed: confined to the namespaces of the caller's groups",
				Enforce: map[string][]string{"namespace": {"team-a", "team-a-staging"}},
			},
		},
		{
			name: "unknown group, query without selectors",
			in:   noSelectorsInput(id("mallory@example.com", "team-z"), "1+1"),
			want: Decision{Reason: "denied: mallory@example.com (groups: team-z) is in no group with access; ask an administrator to grant one of your groups access in the policy data"},
		},
		{
			name: "unauthenticated",
			in:   queryInput(nil),
			want: Decision{Reason: "denied: the request is not authenticated"},
		},
		{
			name: "route without a query",
			in:   Input{Identity: id("alice@example.com", "team-a"), Request: Request{Method: "GET", Path: "/api/v1/labels", Route: "labels"}},
			want: Decision{
				Allow:   true,
				Reason:  "allowed: confined to the namespaces of the caller's groups",
				Enforce: map[string][]string{"namespace": {"team-a", "team-a-staging"}},
			},
		},
		{
			// A caller who forges claims, or asks for other namespaces in
			// the query, still gets the namespaces of its groups: the
			// enforced values come from the policy's data, never from
			// what the caller sent.
			name: "query matchers cannot change enforce",
			in: Input{
				Identity: &authn.Identity{Method: authn.MethodOIDC, Subject: "alice@example.com", Groups: []string{"team-a"},
					Claims: map[string]any{"namespace": "kube-system", "enforce": map[string]any{"namespace": []any{"kube-system"}}}},
				Request: Request{Method: "GET", Path: "/api/v1/query", Route: "query"},
				Query: &Query{
					Expressions: []string{`up{namespace=~"kube-system|team-b"}`},
					Selectors: []Selector{{Metric: "up", Matchers: []Matcher{
						{Name: "namespace", Type: "=~", Value: "kube-system|team-b"},
						{Name: "namespace", Type: "=", Value: "team-b"},
					}}},
				},
			},
			want: Decision{
				Allow:   true,
				Reason:  "allowed: confined to the namespaces of the caller's groups",
				Enforce: map[string][]string{"namespace": {"team-a", "team-a-staging"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := a.Decide(t.Context(), tc.in)
			if err != nil {
				t.Fatalf("Decide() error = %v", err)
			}
			checkEnforcer(t, d)
			if diff := cmp.Diff(tc.want, d, ignoreEnforcer); diff != "" {
				t.Errorf("Decide() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// noSelectorsInput is a query request whose expression has no selector, as
// Grafana's health check sends.
func noSelectorsInput(id *authn.Identity, expr string) Input {
	in := queryInput(id)
	in.Query = &Query{Expressions: []string{expr}}
	return in
}

// BenchmarkDecide measures one decision of the default policy for a team
// member, input building included: the per-request cost of authz.
// BenchmarkDecide measures the decision for a typical input. "cached" is
// the same caller again (the decision cache answers); "evaluated" gives
// every iteration a new remote address, so Rego evaluates each time.
func BenchmarkDecide(b *testing.B) {
	b.Run("evaluated", func(b *testing.B) { benchmarkDecide(b, true) })
	b.Run("cached", func(b *testing.B) { benchmarkDecide(b, false) })
}

func benchmarkDecide(b *testing.B, vary bool) {
	a, err := New(configFor(defaultPolicy), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	in := queryInput(&authn.Identity{Method: authn.MethodMTLS, Subject: "carol@example.com", Groups: []string{"team-a", "team-b"}})
	ctx := b.Context()
	b.ReportAllocs()
	var ds []time.Duration
	i := 0
	for b.Loop() {
		if vary {
			i++
			in.Request.RemoteAddr = "10.0." + strconv.Itoa(i/250%250) + "." + strconv.Itoa(i%250)
		}
		start := time.Now()
		d, err := a.Decide(ctx, in)
		ds = append(ds, time.Since(start))
		if err != nil || !d.Allow {
			b.Fatalf("Decide() = %+v, %v", d, err)
		}
	}
	reportP50(b, ds)
}

// reportP50 reports the median of the per-iteration durations: on a shared
// machine it is steadier than the mean, which GC and preemption skew.
func reportP50(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds()), "p50-ns")
}

// BenchmarkInputValue measures building the input document alone.
func BenchmarkInputValue(b *testing.B) {
	in := queryInput(&authn.Identity{Method: authn.MethodMTLS, Subject: "carol@example.com", Groups: []string{"team-a", "team-b"}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := in.value(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideJSONInput measures the same decision with the input
// marshalled to JSON and parsed back, the round trip Decide avoids.
func BenchmarkDecideJSONInput(b *testing.B) {
	a, err := New(configFor(defaultPolicy), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	in := queryInput(&authn.Identity{Method: authn.MethodMTLS, Subject: "carol@example.com", Groups: []string{"team-a", "team-b"}})
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		raw, err := in.MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		if d, err := a.DecideJSON(ctx, raw); err != nil || !d.Allow {
			b.Fatalf("DecideJSON() = %+v, %v", d, err)
		}
	}
}

// TestDefaultPolicyOddInputs feeds the default policy inputs of the wrong
// shape, as serving evaluates them (strict built-in errors on): each must
// give a defined denial, not an error.
func TestDefaultPolicyOddInputs(t *testing.T) {
	a := newAuthorizer(t, defaultPolicy, nil)
	for _, in := range []string{
		`{}`,
		`{"identity": null}`,
		`{"identity": {"authenticated": true}}`,
		`{"identity": {"authenticated": true, "subject": 1, "groups": "admins"}}`,
		`{"identity": {"authenticated": true, "subject": "x", "groups": {"admins": true}}}`,
		`{"identity": {"authenticated": true, "subject": "x", "groups": [["admins"], null, 1]}}`,
		`{"identity": {"authenticated": "true", "subject": "x", "groups": ["admins"]}}`,
		`[]`,
		`"admins"`,
	} {
		d, err := a.DecideJSON(t.Context(), []byte(in))
		if err != nil || d.Allow {
			t.Errorf("DecideJSON(%s) = %+v, %v; want a denial without error", in, d, err)
		}
	}
}
