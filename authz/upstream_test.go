package authz

import (
	"context"
	"errors"
	"testing"
)

func TestDecisionUpstream(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
		err              error
	}{
		{"named", `decision := {"allow": true, "upstream": "global"}`, "global", nil},
		{"none", `decision := {"allow": true}`, "", nil},
		{"not a string", `decision := {"allow": true, "upstream": 1}`, "", ErrMalformed},
		{"not a name", `decision := {"allow": true, "upstream": "Global Querier"}`, "", ErrMalformed},
		{"denial drops it", `decision := {"allow": false, "upstream": "global"}`, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthorizer(t, writeFolder(t, policy(tc.body)), nil)
			d, err := a.Decide(context.Background(), queryInput(alice))
			if !errors.Is(err, tc.err) || d.Upstream != tc.want {
				t.Errorf("Decide = %q, %v; want %q, %v", d.Upstream, err, tc.want, tc.err)
			}
		})
	}
}
