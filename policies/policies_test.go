package policies

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
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

// TestExamples runs the Rego tests of every example policy under
// examples/policies and loads each folder as serving would, so that an
// example that stops compiling or passing fails the build.
func TestExamples(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "examples", "policies", "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range dirs {
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var out bytes.Buffer
			ok, err := authz.Test(t.Context(), os.DirFS(dir), &out, true)
			t.Log("\n" + out.String())
			if err != nil {
				t.Fatalf("authz.Test: %v", err)
			}
			if !ok {
				t.Fatal("Rego tests failed; see the log above")
			}
			if _, err := authz.New(config.Authz{Policies: dir, Decision: "data.promgate.authz.decision"}, nil, nil); err != nil {
				t.Fatalf("authz.New: %v", err)
			}
		})
	}
	if n != 3 {
		t.Errorf("found %d example policies, want 3", n)
	}
}
