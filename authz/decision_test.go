package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/promgate/promgate/enforce"
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
		{
			name:  "receivers",
			value: `{"allow": true, "enforce": {"namespace": ["a"]}, "receivers": ["team-a"]}`,
			want:  Decision{Allow: true, Reason: reasonAllowed, Enforce: map[string][]string{"namespace": {"a"}}, Receivers: []string{"team-a"}},
		},
		{name: "receivers not strings", value: `{"allow": true, "receivers": [1]}`, wantErr: `"receivers"`},
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
		{
			name: "numeric limits",
			value: `{"allow": true, "limits": {"max_query_points": 1000000, "max_subquery_points": 5000, "max_samples_estimate": 50000000,
				"max_concurrency": 4, "requests_per_second": 2.5, "burst": 10}}`,
			want: Decision{Allow: true, Reason: reasonAllowed, Limits: Limits{MaxQueryPoints: 1000000, MaxSubqueryPoints: 5000,
				MaxSamplesEstimate: 50000000, MaxConcurrency: 4, RequestsPerSecond: 2.5, Burst: 10}},
		},
		{
			name:  "whole numbers written with a fraction or exponent",
			value: `{"allow": true, "limits": {"max_query_points": 1e6, "burst": 10.0, "requests_per_second": 3}}`,
			want:  Decision{Allow: true, Reason: reasonAllowed, Limits: Limits{MaxQueryPoints: 1000000, Burst: 10, RequestsPerSecond: 3}},
		},
		{
			name:  "zero numeric limits are not set",
			value: `{"allow": true, "limits": {"max_query_points": 0, "requests_per_second": 0, "burst": 0}}`,
			want:  Decision{Allow: true, Reason: reasonAllowed},
		},
		{name: "limit negative", value: `{"allow": true, "limits": {"max_query_points": -1}}`, wantErr: `"limits.max_query_points" is -1`},
		{name: "limit negative concurrency", value: `{"allow": true, "limits": {"max_concurrency": -4}}`, wantErr: `"limits.max_concurrency" is -4`},
		{name: "limit negative rate", value: `{"allow": true, "limits": {"requests_per_second": -0.5}}`, wantErr: `"limits.requests_per_second" is -0.5`},
		{name: "limit negative burst", value: `{"allow": true, "limits": {"burst": -1}}`, wantErr: `"limits.burst" is -1`},
		{name: "limit fraction", value: `{"allow": true, "limits": {"max_samples_estimate": 2.5}}`, wantErr: "want a whole number"},
		{name: "limit a string", value: `{"allow": true, "limits": {"max_subquery_points": "100"}}`, wantErr: "has type string, want a whole number"},
		{name: "rate a string", value: `{"allow": true, "limits": {"requests_per_second": "5"}}`, wantErr: "has type string, want a number"},
		{name: "limit too large", value: `{"allow": true, "limits": {"max_query_points": 1e30}}`, wantErr: "want a whole number"},
		{name: "burst beyond int32", value: `{"allow": true, "limits": {"burst": 3000000000}}`, wantErr: "more than 2147483647"},
		{name: "limit unknown key", value: `{"allow": true, "limits": {"max_points": 1}}`, wantErr: `"limits" key "max_points" is unknown`},
		{name: "rate_key", value: `{"allow": true, "rate_key": "group:team-a"}`, want: Decision{Allow: true, Reason: reasonAllowed, RateKey: "group:team-a"}},
		{name: "rate_key 128 bytes", value: `{"allow": true, "rate_key": "` + strings.Repeat("k", 128) + `"}`, want: Decision{Allow: true, Reason: reasonAllowed, RateKey: strings.Repeat("k", 128)}},
		{name: "rate_key with spaces and symbols", value: `{"allow": true, "rate_key": "team a/b ~!"}`, want: Decision{Allow: true, Reason: reasonAllowed, RateKey: "team a/b ~!"}},
		{name: "rate_key 129 bytes", value: `{"allow": true, "rate_key": "` + strings.Repeat("k", 129) + `"}`, wantErr: "longer than 128"},
		{name: "rate_key empty", value: `{"allow": true, "rate_key": ""}`, wantErr: "rate key is empty"},
		{name: "write_mode", value: `{"allow": true, "write_mode": "inject"}`, want: Decision{Allow: true, Reason: reasonAllowed, WriteMode: "inject"}},
		{name: "write_mode unknown", value: `{"allow": true, "write_mode": "append"}`, wantErr: `"write_mode" "append" is not inject, reject or drop`},
		{name: "write_mode a boolean", value: `{"allow": true, "write_mode": true}`, wantErr: `"write_mode" has type boolean`},
		{name: "deny drops write_mode", value: `{"allow": false, "reason": "no", "write_mode": "drop"}`, want: Decision{Reason: "no"}},
		{name: "rate_key newline", value: `{"allow": true, "rate_key": "a\nb"}`, wantErr: "use printable ASCII"},
		{name: "rate_key DEL", value: `{"allow": true, "rate_key": "a\u007f"}`, wantErr: "use printable ASCII"},
		{name: "rate_key non-ASCII", value: `{"allow": true, "rate_key": "é"}`, wantErr: "use printable ASCII"},
		{name: "rate_key a number", value: `{"allow": true, "rate_key": 1}`, wantErr: `"rate_key" has type number`},
		{name: "deny drops rate_key", value: `{"allow": false, "reason": "no", "rate_key": "team-a"}`, want: Decision{Reason: "no"}},
		{name: "enforce empty value", value: `{"allow": true, "enforce": {"namespace": ["a", ""]}}`, wantErr: "enforced label namespace has an empty value"},
		{name: "deny with a bad matcher is malformed", value: `{"allow": false, "matchers": ["up"]}`, wantErr: `"matchers": decision matcher "up" is not a selector in braces`},
		{name: "deny with a bad regex is malformed", value: `{"allow": false, "enforce_regex": {"namespace": [".*"]}}`, wantErr: "matches the empty string"},
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
			checkEnforcer(t, d)
			if diff := cmp.Diff(tc.want, d, ignoreEnforcer); diff != "" {
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
	checkEnforcer(t, d)
	if diff := cmp.Diff(Decision{Reason: reasonMalformed}, d, ignoreEnforcer); diff != "" {
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

// TestDecideCompilesEnforcer checks that an allowed decision comes with its
// Enforcer, compiled from the whole confinement, and that a cached decision
// hands out the one compiled when the policy answered.
func TestDecideCompilesEnforcer(t *testing.T) {
	a := newAuthorizer(t, writeFolder(t, policy(`decision := {"allow": true, "enforce": {"namespace": ["shared"]}, "enforce_regex": {"namespace": ["team-.*"]}, "matchers": ["{secret!=\"true\"}"]}`)), nil)
	d, err := a.Decide(t.Context(), queryInput(alice))
	if err != nil {
		t.Fatal(err)
	}
	en := d.Enforcer()
	if en == nil {
		t.Fatal("Enforcer() = nil for an allowed decision")
	}
	q, err := enforce.ParseQuery("up")
	if err != nil {
		t.Fatal(err)
	}
	got, err := en.Rewrite(q)
	if want := `up{namespace=~"shared|(?:team-.*)",secret!="true"}`; err != nil || got != want {
		t.Errorf("Rewrite(up) = %q, %v; want %q", got, err, want)
	}
	again, err := a.Decide(t.Context(), queryInput(alice))
	if err != nil || again.Enforcer() != en {
		t.Errorf("cached Decide() = %p, %v; want the Enforcer compiled the first time, %p", again.Enforcer(), err, en)
	}
}

func TestDecideUnrestrictedEnforcer(t *testing.T) {
	a := newAuthorizer(t, writeFolder(t, policy(`decision := {"allow": true}`)), nil)
	d, err := a.Decide(t.Context(), queryInput(alice))
	if err != nil || d.Enforcer() == nil || !d.Enforcer().Unrestricted() {
		t.Errorf("Decide() = %+v (Enforcer %v), %v; want an unrestricted Enforcer", d, d.Enforcer(), err)
	}
}

func TestCompile(t *testing.T) {
	tests := []struct {
		name    string
		d       Decision
		want    Decision
		wantErr string
	}{
		{name: "unrestricted", d: Decision{Allow: true}, want: Decision{Allow: true, Reason: reasonAllowed}},
		{
			name: "confined",
			d:    Decision{Allow: true, Reason: "team-a", Enforce: map[string][]string{"namespace": {"a"}}, Tenant: "tenant-a", RateKey: "team-a", Limits: Limits{Burst: 3}},
			want: Decision{Allow: true, Reason: "team-a", Enforce: map[string][]string{"namespace": {"a"}}, Tenant: "tenant-a", RateKey: "team-a", Limits: Limits{Burst: 3}},
		},
		{name: "deny keeps its reason only", d: Decision{Reason: "no", Tenant: "x", Limits: Limits{Burst: -1}}, want: Decision{Reason: "no"}},
		{name: "deny without reason", d: Decision{}, want: Decision{Reason: reasonDenied}},
		{name: "label allowed nothing", d: Decision{Allow: true, Enforce: map[string][]string{"namespace": {}}}, want: Decision{Reason: `denied: the policy allows no value of label "namespace"`}},
		{name: "repeated value", d: Decision{Allow: true, Enforce: map[string][]string{"namespace": {"a", "a"}}}, wantErr: `lists value "a" twice`},
		{name: "bad matcher", d: Decision{Allow: true, Matchers: []string{"up"}}, wantErr: `"matchers"`},
		{name: "bad regex", d: Decision{Allow: true, EnforceRegex: map[string][]string{"namespace": {"a|"}}}, wantErr: "matches the empty string"},
		{name: "bad tenant", d: Decision{Allow: true, Tenant: "a/b"}, wantErr: `"tenant"`},
		{name: "bad rate key", d: Decision{Allow: true, RateKey: "a\nb"}, wantErr: `"rate_key"`},
		{name: "negative limit", d: Decision{Allow: true, Limits: Limits{MaxQueryPoints: -1}}, wantErr: `"limits.max_query_points" is out of range`},
		{name: "negative duration", d: Decision{Allow: true, Limits: Limits{MaxRange: -time.Second}}, wantErr: `"limits.max_range" is out of range`},
		{name: "negative rate", d: Decision{Allow: true, Limits: Limits{RequestsPerSecond: -1}}, wantErr: `"limits.requests_per_second" is out of range`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Compile(tc.d)
			checkEnforcer(t, d)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Compile() error = %v, want ErrMalformed containing %q", err, tc.wantErr)
				}
				if diff := cmp.Diff(Decision{Reason: reasonMalformed}, d, ignoreEnforcer); diff != "" {
					t.Errorf("Compile() mismatch (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Compile() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, d, ignoreEnforcer); diff != "" {
				t.Errorf("Compile() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLimitsJSON(t *testing.T) {
	l := Limits{MaxRange: time.Hour, MaxQueryPoints: 1000, MaxSubqueryPoints: 10, MaxSamplesEstimate: 5e7, MaxConcurrency: 4, RequestsPerSecond: 2.5, Burst: 10}
	b, err := json.Marshal(Decision{Allow: true, Reason: "ok", RateKey: "team-a", Limits: l})
	want := `{"allow":true,"reason":"ok","rate_key":"team-a","limits":{"burst":10,"max_concurrency":4,"max_query_points":1000,"max_range":"1h","max_samples_estimate":50000000,"max_subquery_points":10,"requests_per_second":2.5}}`
	if err != nil || string(b) != want {
		t.Errorf("json.Marshal() = %s, %v; want %s", b, err, want)
	}
	// What the gateway prints is what a policy may write back.
	var round Decision
	v, err := ast.ValueFromReader(bytes.NewReader(b))
	if err == nil {
		round, err = parseDecision(v)
	}
	if err != nil || round.Limits != l || round.RateKey != "team-a" {
		t.Errorf("parseDecision(%s) = %+v, %v", b, round, err)
	}
}
