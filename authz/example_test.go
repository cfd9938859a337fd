package authz_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
)

func Example() {
	dir, err := os.MkdirTemp("", "policies")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	policy := `package promgate.authz

default decision := {"allow": false, "reason": "denied"}

decision := {
	"allow": true,
	"reason": sprintf("%s reads its team's namespaces", [input.identity.subject]),
	"enforce": {"namespace": data.teams[input.identity.groups[0]]},
	"limits": {"max_range": "7d"},
} if input.identity.authenticated
`
	data := `{"teams": {"team-a": ["team-a", "team-a-staging"]}}`
	if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte(policy), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.json"), []byte(data), 0o644); err != nil {
		log.Fatal(err)
	}

	a, err := authz.New(config.Authz{Policies: dir, Decision: "data.promgate.authz.decision"}, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	d, err := a.Decide(context.Background(), authz.Input{
		Identity: &authn.Identity{Method: authn.MethodMTLS, Subject: "alice", Groups: []string{"team-a"}},
		Request:  authz.Request{Method: "GET", Path: "/api/v1/query", Route: "query"},
		Query:    &authz.Query{Expressions: []string{"up"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.Allow, d.Reason)
	fmt.Println(d.Enforce["namespace"], d.Limits.MaxRange)

	d, err = a.Decide(context.Background(), authz.Input{Request: authz.Request{Route: "query"}})
	fmt.Println(d.Allow, d.Reason, err)
	// Output:
	// true alice reads its team's namespaces
	// [team-a team-a-staging] 168h0m0s
	// false denied <nil>
}
