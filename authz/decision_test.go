package authz

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
)

// TestParseDecisionFields checks the decision fields added for richer
// confinement (enforce_regex, matchers) and the tenant alphabet, on decision
// values as a policy would return them.
func TestParseDecisionFields(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    Decision
		wantErr string // substring of the ErrMalformed error
	}{
		{
			name:  "enforce_regex sorted and deduplicated",
			value: `{"allow": true, "enforce_regex": {"namespace": ["team-.*", "dev-[0-9]+", "team-.*"]}}`,
			want:  Decision{Allow: true, Reason: reasonAllowed, EnforceRegex: map[string][]string{"namespace": {"dev-[0-9]+", "team-.*"}}},
		},
		{
			name:  "enforce and enforce_regex on one label",
			value: `{"allow": true, "enforce": {"namespace": ["kube-public"]}, "enforce_regex": {"namespace": ["team-.+"]}}`,
			want: Decision{Allow: true, Reason: reasonAllowed,
				Enforce:      map[string][]string{"namespace": {"kube-public"}},
				EnforceRegex: map[string][]string{"namespace": {"team-.+"}}},
		},
		{
			name:  "regex list empty but literals given",
			value: `{"allow": true, "enforce": {"namespace": ["a"]}, "enforce_regex": {"namespace": []}}`,
			want: Decision{Allow: true, Reason: reasonAllowed,
				Enforce: map[string][]string{"namespace": {"a"}}, EnforceRegex: map[string][]string{"namespace": {}}},
		},
		{
			name:  "label allowed nothing through either list denies",
			value: `{"allow": true, "enforce": {"namespace": []}, "enforce_regex": {"namespace": []}}`,
			want:  Decision{Reason: `denied: the policy allows no value of label "namespace"`},
		},
		{
			name:  "regex-only label with no regex denies",
			value: `{"allow": true, "enforce_regex": {"env": []}}`,
			want:  Decision{Reason: `denied: the policy allows no value of label "env"`},
		},
		{name: "regex matching empty", value: `{"allow": true, "enforce_regex": {"namespace": ["team-.*|"]}}`, wantErr: "matches the empty string"},
		{name: "regex star", value: `{"allow": true, "enforce_regex": {"namespace": [".*"]}}`, wantErr: "matches the empty string"},
		{name: "regex optional", value: `{"allow": true, "enforce_regex": {"namespace": ["(team-a)?"]}}`, wantErr: "matches the empty string"},
		{name: "regex escaping its group", value: `{"allow": true, "enforce_regex": {"namespace": ["a)|(b"]}}`, wantErr: "does not compile"},
		{name: "regex unparsable", value: `{"allow": true, "enforce_regex": {"namespace": ["team-(["]}}`, wantErr: "does not compile"},
		{name: "regex on __name__", value: `{"allow": true, "enforce_regex": {"__name__": ["up"]}}`, wantErr: "not a label name that can be enforced"},
		{name: "enforce on __name__", value: `{"allow": true, "enforce": {"__name__": ["up"]}}`, wantErr: "not a label name that can be enforced"},
		{name: "regex not a string", value: `{"allow": true, "enforce_regex": {"namespace": [1]}}`, wantErr: "want a string"},
		{
			name:  "matchers sorted and deduplicated",
			value: `{"allow": true, "matchers": ["{secret!=\"true\"}", "{__name__!~\"kube_secret_.*\", env=\"prod\"}", "{secret!=\"true\"}"]}`,
			want:  Decision{Allow: true, Reason: reasonAllowed, Matchers: []string{`{__name__!~"kube_secret_.*", env="prod"}`, `{secret!="true"}`}},
		},
		{name: "matchers empty", value: `{"allow": true, "matchers": []}`, want: Decision{Allow: true, Reason: reasonAllowed}},
		{name: "matcher bare metric name", value: `{"allow": true, "matchers": ["kube_secret_info"]}`, wantErr: "not a selector in braces"},
		{name: "matcher metric with braces", value: `{"allow": true, "matchers": ["up{secret=\"x\"}"]}`, wantErr: "not a selector in braces"},
		{name: "matcher unparsable", value: `{"allow": true, "matchers": ["{secret!=}"]}`, wantErr: `"matchers"`},
		{name: "matcher expression", value: `{"allow": true, "matchers": ["{a=\"b\"} or {c=\"d\"}"]}`, wantErr: `"matchers"`},
		{name: "matcher empty braces", value: `{"allow": true, "matchers": ["{}"]}`, wantErr: `"matchers"`},
		{name: "matchers not a list", value: `{"allow": true, "matchers": "{a=\"b\"}"}`, wantErr: `"matchers"`},
		{name: "deny drops matchers and regexes", value: `{"allow": false, "reason": "no", "matchers": ["{a=\"b\"}"], "enforce_regex": {"n": ["x.+"]}}`, want: Decision{Reason: "no"}},
		{name: "tenant Mimir alphabet", value: `{"allow": true, "tenant": "Team_a-1.prod!*'()"}`, want: Decision{Allow: true, Reason: reasonAllowed, Tenant: "Team_a-1.prod!*'()"}},
		{name: "tenant 150 bytes", value: `{"allow": true, "tenant": "` + strings.Repeat("a", 150) + `"}`, want: Decision{Allow: true, Reason: reasonAllowed, Tenant: strings.Repeat("a", 150)}},
		{name: "tenant 151 bytes", value: `{"allow": true, "tenant": "` + strings.Repeat("a", 151) + `"}`, wantErr: "longer than 150"},
		{name: "tenant dot", value: `{"allow": true, "tenant": "."}`, wantErr: `tenant "." is not allowed`},
		{name: "tenant dot dot", value: `{"allow": true, "tenant": ".."}`, wantErr: `tenant ".." is not allowed`},
		{name: "tenant empty", value: `{"allow": true, "tenant": ""}`, wantErr: "tenant is empty"},
		{name: "tenant slash", value: `{"allow": true, "tenant": "a/b"}`, wantErr: "use letters, digits"},
		{name: "tenant pipe", value: `{"allow": true, "tenant": "a|b"}`, wantErr: "use letters, digits"},
		{name: "tenant colon", value: `{"allow": true, "tenant": "a:b"}`, wantErr: "use letters, digits"},
		{name: "tenant non-ASCII", value: `{"allow": true, "tenant": "é"}`, wantErr: "use letters, digits"},
		{name: "tenant CRLF", value: `{"allow": true, "tenant": "a\r\nX-Evil: 1"}`, wantErr: "use letters, digits"},
		{
			name:  "limits",
			value: `{"allow": true, "limits": {"max_range": "1d", "max_lookback": "2d", "min_step": "1m"}}`,
			want:  Decision{Allow: true, Reason: reasonAllowed, Limits: Limits{MaxRange: 24 * time.Hour, MaxLookback: 48 * time.Hour, MinStep: time.Minute}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := parseDecision(ast.MustParseTerm(tc.value).Value)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseDecision() error = %v, want ErrMalformed containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseDecision() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, d); diff != "" {
				t.Errorf("parseDecision() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecideRefusesEmptyMatchingRegex goes through Decide: a decision whose
// regex would expose series without the label is a denial with an error.
func TestDecideRefusesEmptyMatchingRegex(t *testing.T) {
	a := newAuthorizer(t, writeFolder(t, policy(`decision := {"allow": true, "enforce_regex": {"namespace": ["team-a|.*"]}}`)), nil)
	d, err := a.Decide(t.Context(), queryInput(alice))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("Decide() error = %v, want ErrMalformed", err)
	}
	if diff := cmp.Diff(Decision{Reason: reasonMalformed}, d); diff != "" {
		t.Errorf("Decide() mismatch (-want +got):\n%s", diff)
	}
}

func TestValidateTenant(t *testing.T) {
	for _, s := range []string{"a", "team-a", "A_b.c", "x!y", "(x)", "'*'", "...", ".a", strings.Repeat("z", 150)} {
		if err := ValidateTenant(s); err != nil {
			t.Errorf("ValidateTenant(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range []string{"", ".", "..", "a b", "a/b", "a\\b", "a\x00", "a\tb", "a\"b", "a%2F", "a,b", "a;b", "ü", strings.Repeat("z", 151)} {
		if err := ValidateTenant(s); err == nil {
			t.Errorf("ValidateTenant(%q) = nil, want an error", s)
		}
	}
}
