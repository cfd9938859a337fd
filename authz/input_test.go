package authz

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/promgate/promgate/authn"
)

// TestInputDocument checks that the input document has exactly the DESIGN.md
// shape, built without a JSON round trip.
func TestInputDocument(t *testing.T) {
	request := Request{Method: "GET", Path: "/api/v1/query", Route: "query", RemoteAddr: "10.0.0.7"}
	requestDoc := `{"method": "GET", "path": "/api/v1/query", "route": "query", "remote_addr": "10.0.0.7"}`
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{
			name: "oidc identity with query",
			in: Input{
				Identity: &authn.Identity{
					Method:  authn.MethodOIDC,
					Subject: "alice@example.com",
					Groups:  []string{"team-a", "team-b"},
					Issuer:  "https://idp.example",
					Claims:  map[string]any{"email": "alice@example.com", "n": json.Number("3"), "f": 1.5, "nested": map[string]any{"x": []any{true, nil}}},
				},
				Request: request,
				Query: &Query{
					Expressions: []string{"sum(rate(http_requests_total[5m]))"},
					Selectors: []Selector{{Metric: "http_requests_total", Matchers: []Matcher{
						{Name: "__name__", Type: "=", Value: "http_requests_total"},
					}}},
				},
			},
			want: `{
				"identity": {
					"authenticated": true, "method": "oidc", "subject": "alice@example.com",
					"groups": ["team-a", "team-b"], "issuer": "https://idp.example",
					"claims": {"email": "alice@example.com", "n": 3, "f": 1.5, "nested": {"x": [true, null]}},
					"certificate": {"subject": "", "sans": [], "spiffe_id": "", "fingerprint_sha256": ""}
				},
				"request": ` + requestDoc + `,
				"query": {
					"expressions": ["sum(rate(http_requests_total[5m]))"],
					"selectors": [{"metric": "http_requests_total", "matchers": [{"name": "__name__", "type": "=", "value": "http_requests_total"}]}]
				}
			}`,
		},
		{
			name: "mtls identity without query",
			in: Input{
				Identity: &authn.Identity{
					Method:  authn.MethodMTLS,
					Subject: "prometheus",
					Issuer:  "CN=clients CA",
					Certificate: &authn.Certificate{
						Subject:           "CN=prometheus,OU=scrapers",
						SANs:              []string{"spiffe://example/prometheus"},
						SPIFFEID:          "spiffe://example/prometheus",
						FingerprintSHA256: "abcd",
					},
				},
				Request: request,
			},
			want: `{
				"identity": {
					"authenticated": true, "method": "mtls", "subject": "prometheus",
					"groups": [], "issuer": "CN=clients CA", "claims": {},
					"certificate": {"subject": "CN=prometheus,OU=scrapers", "sans": ["spiffe://example/prometheus"], "spiffe_id": "spiffe://example/prometheus", "fingerprint_sha256": "abcd"}
				},
				"request": ` + requestDoc + `
			}`,
		},
		{
			name: "unauthenticated",
			in:   Input{Request: request, Query: &Query{}},
			want: `{
				"identity": {
					"authenticated": false, "method": "", "subject": "", "groups": [], "issuer": "", "claims": {},
					"certificate": {"subject": "", "sans": [], "spiffe_id": "", "fingerprint_sha256": ""}
				},
				"request": ` + requestDoc + `,
				"query": {"expressions": [], "selectors": []}
			}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatalf("MarshalJSON() error = %v", err)
			}
			var got, want any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("input document mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInputBadClaims(t *testing.T) {
	a := newAuthorizer(t, writeFolder(t, policy(`decision := {"allow": true}`)), nil)
	in := queryInput(&authn.Identity{Method: authn.MethodOIDC, Subject: "x", Claims: map[string]any{"c": make(chan int)}})
	d, err := a.Decide(t.Context(), in)
	if err == nil || d.Allow {
		t.Errorf("Decide(unconvertible claims) = %+v, %v; want a denial and an error", d, err)
	}
}

// TestInputUncommonValues checks the input document for values that the
// builder does not share (an unusual method, route and matcher) and for a
// selector without matchers.
func TestInputUncommonValues(t *testing.T) {
	in := Input{
		Identity: &authn.Identity{Method: "custom", Subject: "s", Groups: []string{""}},
		Request:  Request{Method: "PROPFIND", Path: "", Route: "custom_route", RemoteAddr: ""},
		Query: &Query{
			Expressions: []string{"a", ""},
			Selectors: []Selector{
				{Metric: "a"},
				{Matchers: []Matcher{{Name: "job", Type: "=~", Value: ""}, {Name: "x", Type: "?", Value: "y"}}},
			},
		},
	}
	want := `{
		"identity": {
			"authenticated": true, "method": "custom", "subject": "s", "groups": [""], "issuer": "", "claims": {},
			"certificate": {"subject": "", "sans": [], "spiffe_id": "", "fingerprint_sha256": ""}
		},
		"request": {"method": "PROPFIND", "path": "", "route": "custom_route", "remote_addr": ""},
		"query": {
			"expressions": ["a", ""],
			"selectors": [
				{"metric": "a", "matchers": []},
				{"metric": "", "matchers": [{"name": "job", "type": "=~", "value": ""}, {"name": "x", "type": "?", "value": "y"}]}
			]
		}
	}`
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("MarshalJSON() error = %v", err)
	}
	var got, wantDoc any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &wantDoc); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantDoc, got); diff != "" {
		t.Errorf("input document mismatch (-want +got):\n%s", diff)
	}
}

// TestTermBuilderOverflow checks that a builder whose slab is full keeps
// handing out distinct terms.
func TestTermBuilderOverflow(t *testing.T) {
	b := &termBuilder{}
	var terms []*ast.Term
	for i := range 40 {
		terms = append(terms, b.str(strconv.Itoa(i)))
	}
	for i, term := range terms {
		if want := ast.String(strconv.Itoa(i)); ast.Compare(term.Value, want) != 0 {
			t.Errorf("term %d = %v, want %v", i, term, want)
		}
	}
}

// TestInputSharedTermsStayUnchanged evaluates, from many goroutines at once,
// a policy that overrides parts of the input the builder shares between
// requests (the empty certificate, claims, groups and strings), and checks
// that later inputs still see them empty: a request must never see another
// request's values. Run with -race.
func TestInputSharedTermsStayUnchanged(t *testing.T) {
	a := newAuthorizer(t, writeFolder(t, policy(`decision := {"allow": true, "reason": r} if {
	r := json.marshal(input.identity) with input.identity.certificate.subject as "mutated"
		with input.identity.certificate.sans as ["mutated"]
		with input.identity.claims.x as "mutated"
		with input.identity.groups as ["mutated"]
		with input.identity.issuer as "mutated"
		with input.request.method as "mutated"
}`)), nil)
	id := &authn.Identity{Method: authn.MethodMTLS, Subject: "s"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				in := Input{Identity: id, Request: Request{Method: "GET", Route: "query", RemoteAddr: strconv.Itoa(g*1000 + i)}}
				d, err := a.Decide(t.Context(), in)
				if err != nil || !strings.Contains(d.Reason, "mutated") {
					t.Errorf("Decide() = %+v, %v; want the overridden identity", d, err)
					return
				}
			}
		})
	}
	wg.Wait()
	b, err := json.Marshal(Input{Identity: id, Request: Request{Method: "GET"}})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("mutated")) {
		t.Errorf("input after overriding evaluations = %s; want no overridden value", b)
	}
	if ast.InternedEmptyObject.Value.(ast.Object).Len() != 0 || ast.InternedEmptyArray.Value.(*ast.Array).Len() != 0 {
		t.Error("OPA's shared empty object or array was modified")
	}
}
