package policies

import (
	"bytes"
	"testing"

	"github.com/promgate/promgate/authz"
)

// TestRego runs the Rego unit tests of the default policy, as
// `promgate policy test` does, and fails on any failing or erroring test.
func TestRego(t *testing.T) {
	var out bytes.Buffer
	ok, err := authz.Test(t.Context(), FS, &out, true)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatalf("authz.Test: %v", err)
	}
	if !ok {
		t.Fatal("Rego tests of the default policy failed; see the log above")
	}
}
