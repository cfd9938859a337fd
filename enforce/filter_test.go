package enforce

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"
)

// TestFilterGolden runs the response filters on the cases of
// testdata/filter/*.txtar: route (rules, alerts, metadata or targets), policy (a
// Policy as JSON), visible (metadata only: the visible metric names), input
// (the upstream body) and want (the filtered body, indented, or "error: ").
// With -update the want sections are rewritten.
func TestFilterGolden(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "filter", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 10 {
		t.Fatalf("found %d filter cases, want at least 10", len(paths))
	}
	for _, p := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(p), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(p)
			if err != nil {
				t.Fatal(err)
			}
			sections := map[string]string{}
			for _, f := range ar.Files {
				sections[f.Name] = strings.TrimSuffix(string(f.Data), "\n")
			}
			var pol struct {
				Enforce      Enforcement         `json:"enforce"`
				EnforceRegex map[string][]string `json:"enforce_regex"`
				Matchers     []string            `json:"matchers"`
			}
			decodeSection(t, p, "policy", sections["policy"], &pol)
			en, err := NewPolicyEnforcer(Policy{Enforce: pol.Enforce, EnforceRegex: pol.EnforceRegex, Matchers: pol.Matchers})
			if err != nil {
				t.Fatal(err)
			}
			body := []byte(sections["input"])
			var out []byte
			switch sections["route"] {
			case "rules":
				out, err = en.FilterRules(body)
			case "alerts":
				out, err = en.FilterAlerts(body)
			case "targets":
				out, err = en.FilterTargets(body)
			case "metadata":
				var names []string
				decodeSection(t, p, "visible", sections["visible"], &names)
				visible := map[string]bool{}
				for _, n := range names {
					visible[n] = true
				}
				out, err = en.FilterMetadata(body, visible)
			default:
				t.Fatalf("unknown route %q", sections["route"])
			}
			var got string
			if err != nil {
				if !errors.Is(err, ErrUpstream) {
					t.Errorf("error %v does not wrap ErrUpstream", err)
				}
				got = "error: " + err.Error()
			} else {
				var b bytes.Buffer
				if err := json.Indent(&b, out, "", "  "); err != nil {
					t.Fatalf("output is not JSON: %v\n%s", err, out)
				}
				got = b.String()
			}
			if *update {
				for i := range ar.Files {
					if ar.Files[i].Name == "want" {
						ar.Files[i].Data = []byte(got + "\n")
					}
				}
				if err := os.WriteFile(p, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if diff := cmp.Diff(sections["want"], got); diff != "" {
				t.Errorf("filter mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFilterUnrestrictedPassesBody checks that an unrestricted Enforcer does
// not even parse the body: the upstream's bytes reach the caller unchanged.
func TestFilterUnrestrictedPassesBody(t *testing.T) {
	en, err := NewEnforcer(nil)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`not json at all`)
	for name, f := range map[string]func([]byte) ([]byte, error){
		"rules":    en.FilterRules,
		"alerts":   en.FilterAlerts,
		"targets":  en.FilterTargets,
		"metadata": func(b []byte) ([]byte, error) { return en.FilterMetadata(b, nil) },
	} {
		got, err := f(body)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s: got %q, %v; want the body unchanged", name, got, err)
		}
	}
}

// TestRuleQueryConfined lists which rule queries count as confined.
func TestRuleQueryConfined(t *testing.T) {
	en, err := NewPolicyEnforcer(Policy{
		Enforce:      Enforcement{"namespace": {"a", "b"}},
		EnforceRegex: map[string][]string{"env": {"prod-.+"}},
		Matchers:     []string{`{secret!="true"}`},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query string
		want  bool
	}{
		{`up{namespace="a",env="prod-1",secret!="true"}`, true},
		{`up{namespace=~"a|b",env=~"prod-.+",secret="false"}`, true},
		{`up{namespace=~"a|(?:b)",env=~"prod-.+",secret!="true"}`, true},
		{`vector(1)`, true},
		{`up{namespace="c",env="prod-1",secret!="true"}`, false},
		{`up{namespace=~"a|c",env="prod-1",secret!="true"}`, false},
		{`up{namespace=~"a.*",env="prod-1",secret!="true"}`, false},
		{`up{namespace!="c",env="prod-1",secret!="true"}`, false},
		{`up{namespace="a",env=~"prod.*",secret!="true"}`, false},
		{`up{namespace="a",env="prod-",secret!="true"}`, false},
		{`up{namespace="a",env="prod-1"}`, false},
		{`up{namespace="a",env="prod-1",secret="true"}`, false},
		{`up{namespace="a",env="prod-1",secret!="true"} / up`, false},
		{`up{namespace="a",env="prod-1",secret!="true"`, false},
	}
	for _, tc := range tests {
		if got := en.queryConfined(tc.query); got != tc.want {
			t.Errorf("queryConfined(%s) = %v, want %v", tc.query, got, tc.want)
		}
	}
}
