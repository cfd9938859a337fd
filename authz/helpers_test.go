package authz

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/promgate/promgate/config"
)

func configFor(dir string) config.Authz {
	return config.Authz{Policies: dir, Decision: decisionRef}
}

// ignoreEnforcer lets cmp compare decisions by what the policy said. The
// compiled Enforcer has no state cmp can read; checkEnforcer checks it. The
// revision differs with every policy folder; TestReload and
// TestReloadConcurrentDecide check it.
var ignoreEnforcer = cmp.Options{cmpopts.IgnoreUnexported(Decision{}), cmpopts.IgnoreFields(Decision{}, "Revision")}

// checkEnforcer reports a decision whose Enforcer is not there exactly when
// it allows.
func checkEnforcer(t *testing.T, d Decision) {
	t.Helper()
	if (d.Enforcer() != nil) != d.Allow {
		t.Errorf("Decision{Allow: %v}.Enforcer() = %v, want it non-nil exactly when allowed", d.Allow, d.Enforcer())
	}
}
