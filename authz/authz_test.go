package authz

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/config"
)

const decisionRef = "data.promgate.authz.decision"

// writeFolder writes files (name → content) into a new folder.
func writeFolder(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, dir, name, content)
	}
	return dir
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newAuthorizer(t *testing.T, dir string, reg prometheus.Registerer) *Authorizer {
	t.Helper()
	a, err := New(config.Authz{Policies: dir, Decision: decisionRef}, nil, reg)
	if err != nil {
		t.Fatalf("New(%s) = %v", dir, err)
	}
	return a
}

// policy is a module in package promgate.authz with the given body.
func policy(body string) map[string]string {
	return map[string]string{"policy.rego": "package promgate.authz\n\n" + body + "\n"}
}

var alice = &authn.Identity{Method: authn.MethodMTLS, Subject: "alice@example.com", Groups: []string{"team-a"}}

func queryInput(id *authn.Identity) Input {
	return Input{
		Identity: id,
		Request:  Request{Method: "GET", Path: "/api/v1/query", Route: "query", RemoteAddr: "10.0.0.7"},
		Query: &Query{
			Expressions: []string{`up{namespace="b"}`},
			Selectors: []Selector{{Metric: "up", Matchers: []Matcher{
				{Name: "__name__", Type: "=", Value: "up"},
				{Name: "namespace", Type: "=", Value: "b"},
			}}},
		},
	}
}

// TestDecideFailsClosed checks that every way a policy can go wrong at
// evaluation time is a denial with a safe reason and an error: a policy bug
// (a conflict, a built-in error, a misspelt key) must never let a request
// through, nor show the caller Rego internals.
func TestDecideFailsClosed(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr error
		reason  string
	}{
		{"undefined decision", `decision := {"allow": true} if input.nope`, ErrUndefined, reasonUndefined},
		{"complete rule conflict", "decision := {\"allow\": true} if input.identity.authenticated\ndecision := {\"allow\": false} if input.request.route == \"query\"", ErrEvaluation, reasonEvaluation},
		{"object comprehension key conflict", `decision := {"allow": v | some v in [true, input.identity.subject == ""]}`, ErrEvaluation, reasonEvaluation},
		{"partial object key conflict", "decision[\"allow\"] := true if input.identity.authenticated\ndecision[\"allow\"] := false if input.request.route == \"query\"", ErrEvaluation, reasonEvaluation},
		{"division by zero", `decision := {"allow": 1 / (count(input.identity.groups) - 1) > 0}`, ErrEvaluation, reasonEvaluation},
		{"builtin error under not", "decision := {\"allow\": true} if not blocked\nblocked if to_number(input.identity.subject) > 0", ErrEvaluation, reasonEvaluation},
		{"not an object", `decision := true`, ErrMalformed, reasonMalformed},
		{"array", `decision := [{"allow": true}]`, ErrMalformed, reasonMalformed},
		{"allow as string", `decision := {"allow": "true"}`, ErrMalformed, reasonMalformed},
		{"allow as number", `decision := {"allow": 1}`, ErrMalformed, reasonMalformed},
		{"allow missing", `decision := {"reason": "fine", "enforce": {"namespace": ["a"]}}`, ErrMalformed, reasonMalformed},
		{"empty object", `decision := {}`, ErrMalformed, reasonMalformed},
		{"enforce with a number value", `decision := {"allow": true, "enforce": {"namespace": [1]}}`, ErrMalformed, reasonMalformed},
		{"enforce as a number", `decision := {"allow": true, "enforce": 1}`, ErrMalformed, reasonMalformed},
		{"enforce as an array", `decision := {"allow": true, "enforce": ["namespace"]}`, ErrMalformed, reasonMalformed},
		{"enforce value a string", `decision := {"allow": true, "enforce": {"namespace": "a"}}`, ErrMalformed, reasonMalformed},
		{"enforce empty label", `decision := {"allow": true, "enforce": {"": ["a"]}}`, ErrMalformed, reasonMalformed},
		{"enforce non-string label", `decision := {"allow": true, "enforce": {1: ["a"]}}`, ErrMalformed, reasonMalformed},
		{"misspelt enforce", `decision := {"allow": true, "enforced": {"namespace": ["a"]}}`, ErrMalformed, reasonMalformed},
		{"reason a number", `decision := {"allow": true, "reason": 1}`, ErrMalformed, reasonMalformed},
		{"tenant a number", `decision := {"allow": true, "tenant": 1}`, ErrMalformed, reasonMalformed},
		{"tenant with CRLF", `decision := {"allow": true, "tenant": "a\r\nX-Evil: 1"}`, ErrMalformed, reasonMalformed},
		{"tenant with space", `decision := {"allow": true, "tenant": "a b"}`, ErrMalformed, reasonMalformed},
		{"tenant too long", `decision := {"allow": true, "tenant": concat("", ["a" | some _ in numbers.range(1, 151)])}`, ErrMalformed, reasonMalformed},
		{"limits unparsable", `decision := {"allow": true, "limits": {"max_range": "7 days"}}`, ErrMalformed, reasonMalformed},
		{"limits a number", `decision := {"allow": true, "limits": {"max_range": 7}}`, ErrMalformed, reasonMalformed},
		{"limits unknown key", `decision := {"allow": true, "limits": {"max_rnage": "7d"}}`, ErrMalformed, reasonMalformed},
		{"limits not an object", `decision := {"allow": true, "limits": "7d"}`, ErrMalformed, reasonMalformed},
		{"malformed deny", `decision := {"allow": false, "enforce": 1}`, ErrMalformed, reasonMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthorizer(t, writeFolder(t, policy(tc.body)), nil)
			d, err := a.Decide(t.Context(), queryInput(alice))
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Decide() error = %v, want %v", err, tc.wantErr)
			}
			checkEnforcer(t, d)
			if diff := cmp.Diff(Decision{Reason: tc.reason}, d, ignoreEnforcer); diff != "" {
				t.Errorf("Decide() decision mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideCancelledContext(t *testing.T) {
	a := newAuthorizer(t, writeFolder(t, policy(`decision := {"allow": true}`)), nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	d, err := a.Decide(ctx, queryInput(alice))
	if !errors.Is(err, ErrEvaluation) || d.Allow {
		t.Errorf("Decide(cancelled) = %+v, %v; want a denial and ErrEvaluation", d, err)
	}
}

func TestDecideParsesDecision(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Decision
	}{
		{
			name: "allow without enforce is unrestricted",
			body: `decision := {"allow": true, "reason": "ok"}`,
			want: Decision{Allow: true, Reason: "ok"},
		},
		{
			name: "empty enforce is unrestricted",
			body: `decision := {"allow": true, "reason": "ok", "enforce": {}}`,
			want: Decision{Allow: true, Reason: "ok"},
		},
		{
			name: "enforce values sorted and deduplicated",
			body: `decision := {"allow": true, "reason": "ok", "enforce": {"namespace": ["b", "a", "b"], "cluster": ["x"]}}`,
			want: Decision{Allow: true, Reason: "ok", Enforce: map[string][]string{"namespace": {"a", "b"}, "cluster": {"x"}}},
		},
		{
			name: "enforce from a set",
			body: `decision := {"allow": true, "reason": "ok", "enforce": {"namespace": {ns | some ns in ["b", "a"]}}}`,
			want: Decision{Allow: true, Reason: "ok", Enforce: map[string][]string{"namespace": {"a", "b"}}},
		},
		{
			name: "label with no values denies",
			body: `decision := {"allow": true, "reason": "ok", "enforce": {"namespace": []}}`,
			want: Decision{Reason: `denied: the policy allows no value of label "namespace"`},
		},
		{
			name: "tenant and limits",
			body: `decision := {"allow": true, "reason": "ok", "tenant": "team-a", "limits": {"max_range": "7d", "max_lookback": "31d", "min_step": "15s"}}`,
			want: Decision{Allow: true, Reason: "ok", Tenant: "team-a", Limits: Limits{MaxRange: 7 * 24 * time.Hour, MaxLookback: 31 * 24 * time.Hour, MinStep: 15 * time.Second}},
		},
		{
			name: "zero limit is not set",
			body: `decision := {"allow": true, "reason": "ok", "limits": {"max_range": "0s"}}`,
			want: Decision{Allow: true, Reason: "ok"},
		},
		{
			name: "deny drops enforce, tenant and limits",
			body: `decision := {"allow": false, "reason": "no", "enforce": {"namespace": ["a"]}, "tenant": "a", "limits": {"max_range": "1h"}}`,
			want: Decision{Reason: "no"},
		},
		{
			name: "missing reason on deny",
			body: `decision := {"allow": false}`,
			want: Decision{Reason: reasonDenied},
		},
		{
			name: "missing reason on allow",
			body: `decision := {"allow": true}`,
			want: Decision{Allow: true, Reason: reasonAllowed},
		},
		{
			name: "reason returned as written",
			body: `decision := {"allow": false, "reason": sprintf("%s may not <read> \"this\"", [input.identity.subject])}`,
			want: Decision{Reason: `alice@example.com may not <read> "this"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthorizer(t, writeFolder(t, policy(tc.body)), nil)
			d, err := a.Decide(t.Context(), queryInput(alice))
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

// TestNewRefuses checks that problems are found when the policy is loaded,
// named by file and line, and never left for request time.
func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		decision string
		want     []string // substrings of the error
	}{
		{
			name:  "http.send",
			files: policy(`decision := {"allow": http.send({"method": "GET", "url": "http://169.254.169.254/"}).status_code == 200}`),
			want:  []string{"authz.policies: ", "policy.rego:3:", "undefined function http.send"},
		},
		{
			name:  "net.lookup_ip_addr",
			files: policy(`decision := {"allow": count(net.lookup_ip_addr("example.com")) > 0}`),
			want:  []string{"authz.policies: ", "policy.rego:3:", "undefined function net.lookup_ip_addr"},
		},
		{
			name:  "net.cidr_contains",
			files: policy(`decision := {"allow": net.cidr_contains("10.0.0.0/8", input.request.remote_addr)}`),
			want:  []string{"policy.rego:3:", "undefined function net.cidr_contains"},
		},
		{
			name:  "opa.runtime",
			files: policy(`decision := {"allow": true, "reason": opa.runtime().env.HOME}`),
			want:  []string{"policy.rego:3:", "undefined function opa.runtime"},
		},
		{
			name:  "parse error",
			files: policy("decision := {\"allow\": true\n"),
			want:  []string{"authz.policies: ", "policy.rego:", "rego_parse_error"},
		},
		{
			name:  "rego v0 syntax",
			files: policy(`decision = {"allow": true} { true }`),
			want:  []string{"authz.policies: ", "policy.rego:3:", "rego_parse_error"},
		},
		{
			name:  "strict mode unused variable",
			files: policy("decision := {\"allow\": true} if {\n\tx := 1\n}"),
			want:  []string{"authz.policies: ", "policy.rego:4:", "assigned var x unused"},
		},
		{
			name:  "decision defined nowhere",
			files: policy(`other := {"allow": true}`),
			want:  []string{"authz.decision: ", "data.promgate.authz.decision is defined by no rule"},
		},
		{
			name:     "decision not a reference",
			files:    policy(`decision := {"allow": true}`),
			decision: "data.promgate.authz.decision; true",
			want:     []string{"authz.decision: ", "not a ground Rego reference"},
		},
		{
			name:     "decision with a variable",
			files:    policy(`decision := {"allow": true}`),
			decision: "data.promgate.authz[x]",
			want:     []string{"authz.decision: "},
		},
		{
			name:  "no modules",
			files: map[string]string{"data.json": `{}`},
			want:  []string{"authz.policies: ", "no .rego policy files"},
		},
		{
			name:  "only test modules",
			files: map[string]string{"policy_test.rego": "package x\n\ntest_a if true\n"},
			want:  []string{"no .rego policy files"},
		},
		{
			name: "data file not an object",
			files: withFiles(policy(`decision := {"allow": true}`), map[string]string{
				"data.json": `["admins"]`,
			}),
			want: []string{"authz.policies: ", "data.json: a data file must hold an object"},
		},
		{
			name: "data file broken JSON",
			files: withFiles(policy(`decision := {"allow": true}`), map[string]string{
				"data.json": `{"promgate": `,
			}),
			want: []string{"data.json: decode data"},
		},
		{
			name: "data files setting the same key",
			files: withFiles(policy(`decision := {"allow": true}`), map[string]string{
				"a.json": `{"promgate": {"admin_groups": ["admins"]}}`,
				"b.yaml": "promgate:\n  admin_groups: [root]\n",
			}),
			want: []string{"b.yaml: data at promgate.admin_groups is set by more than one file"},
		},
		{
			name: "data overriding the decision rule",
			files: withFiles(policy(`decision := {"allow": false}`), map[string]string{
				"data.json": `{"promgate": {"authz": {"decision": {"allow": true}}}}`,
			}),
			want: []string{"authz.policies: ", "conflict"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			decision := tc.decision
			if decision == "" {
				decision = decisionRef
			}
			_, err := New(config.Authz{Policies: writeFolder(t, tc.files), Decision: decision}, nil, nil)
			if err == nil {
				t.Fatal("New() = nil error, want one")
			}
			t.Logf("New() error: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New() error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func withFiles(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestNewMissingFolder(t *testing.T) {
	for _, dir := range []string{"", filepath.Join(t.TempDir(), "missing")} {
		if _, err := New(config.Authz{Policies: dir, Decision: decisionRef}, nil, nil); err == nil || !strings.HasPrefix(err.Error(), "authz.policies: ") {
			t.Errorf("New(%q) error = %v, want an authz.policies error", dir, err)
		}
	}
}

// TestLoadLayout checks which files are loaded and where data goes.
func TestLoadLayout(t *testing.T) {
	dir := writeFolder(t, map[string]string{
		"policy.rego": `package promgate.authz

decision := {"allow": true, "reason": concat(" ", [
	data.root_key,
	data.teams.extra.key,
	data.from_yaml,
	data.promgate.authz.helper,
])}
`,
		"helper.rego":             "package promgate.authz\n\nhelper := \"helper\"\n",
		"policy_test.rego":        "this is not Rego, and New must not read it",
		"data.json":               `{"root_key": "root"}`,
		"other.yml":               "from_yaml: yaml\n",
		"teams/extra/x.json":      `{"key": "nested"}`,
		".hidden.rego":            "not Rego either",
		".git/config.json":        "not JSON",
		"README.md":               "# not loaded",
		"embed.go":                "package policies",
		"..data/policy.rego":      "package shadow\n",
		"teams/notes.txt":         "ignored",
		"teams/.swp.yaml":         ": not yaml",
		"teams/extra/y.yaml":      "other: 1\n",
		"teams/extra/z.rego":      "package teams.z\n\nz := 1\n",
		"teams/extra/t_test.rego": "broken",
	})
	a := newAuthorizer(t, dir, nil)
	d, err := a.Decide(t.Context(), queryInput(alice))
	if err != nil {
		t.Fatal(err)
	}
	if want := "root nested yaml helper"; d.Reason != want {
		t.Errorf("Reason = %q, want %q", d.Reason, want)
	}
	wantFiles := []string{"data.json", "helper.rego", "other.yml", "policy.rego", "teams/extra/x.json", "teams/extra/y.yaml", "teams/extra/z.rego"}
	if diff := cmp.Diff(wantFiles, a.Files()); diff != "" {
		t.Errorf("Files() mismatch (-want +got):\n%s", diff)
	}
}

// TestLoadFollowsFileSymlinks mimics a Kubernetes ConfigMap mount: the files
// are symlinks into a hidden "..data" folder.
func TestLoadFollowsFileSymlinks(t *testing.T) {
	dir := writeFolder(t, map[string]string{
		"..2026_01_01/policy.rego": "package promgate.authz\n\ndecision := {\"allow\": true, \"reason\": \"from configmap\"}\n",
	})
	if err := os.Symlink("..2026_01_01", filepath.Join(dir, "..data")); err != nil {
		t.Skipf("symlinks unsupported: %v", err)
	}
	if err := os.Symlink(filepath.Join("..data", "policy.rego"), filepath.Join(dir, "policy.rego")); err != nil {
		t.Fatal(err)
	}
	a := newAuthorizer(t, dir, nil)
	if diff := cmp.Diff([]string{"policy.rego"}, a.Files()); diff != "" {
		t.Errorf("Files() mismatch (-want +got):\n%s", diff)
	}
	d, err := a.Decide(t.Context(), queryInput(alice))
	if err != nil || d.Reason != "from configmap" {
		t.Errorf("Decide() = %+v, %v", d, err)
	}
}

func TestRevision(t *testing.T) {
	files := policy(`decision := {"allow": true}`)
	a1 := newAuthorizer(t, writeFolder(t, files), nil)
	a2 := newAuthorizer(t, writeFolder(t, files), nil)
	if a1.Revision() != a2.Revision() {
		t.Errorf("same files, revisions %q and %q differ", a1.Revision(), a2.Revision())
	}
	if len(a1.Revision()) != 16 {
		t.Errorf("Revision() = %q, want 16 hex digits", a1.Revision())
	}
	// The test module is not part of the revision; another name is.
	withTest := newAuthorizer(t, writeFolder(t, withFiles(files, map[string]string{"policy_test.rego": "package x\n"})), nil)
	if withTest.Revision() != a1.Revision() {
		t.Errorf("a test module changed the revision")
	}
	renamed := newAuthorizer(t, writeFolder(t, map[string]string{"other.rego": files["policy.rego"]}), nil)
	if renamed.Revision() == a1.Revision() {
		t.Errorf("a renamed file kept the revision")
	}
	// Moving bytes between name and content must change the hash.
	if revision([]file{{name: "ab", data: []byte("c")}}) == revision([]file{{name: "a", data: []byte("bc")}}) {
		t.Errorf("revision is ambiguous between name and content")
	}
}

func TestReload(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	dir := writeFolder(t, policy(`decision := {"allow": true, "reason": "v1"}`))
	a := newAuthorizer(t, dir, reg)
	rev1 := a.Revision()

	check := func(wantReason string) {
		t.Helper()
		d, err := a.Decide(t.Context(), queryInput(alice))
		if err != nil || d.Reason != wantReason {
			t.Errorf("Decide() = %+v, %v; want reason %q", d, err, wantReason)
		}
		if d.Revision != a.Revision() {
			t.Errorf("Decide() names revision %q, the policy in use is %q", d.Revision, a.Revision())
		}
	}

	// A broken policy keeps the old one.
	writeFile(t, dir, "policy.rego", "package promgate.authz\n\ndecision := {\"allow\": http.send({}).body}\n")
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "undefined function http.send") {
		t.Errorf("Reload(broken) = %v, want the http.send error", err)
	}
	if a.Revision() != rev1 {
		t.Errorf("Revision() after failed reload = %q, want %q", a.Revision(), rev1)
	}
	check("v1")

	// Broken data keeps the old one too.
	writeFile(t, dir, "policy.rego", "package promgate.authz\n\ndecision := {\"allow\": true, \"reason\": \"v2\"}\n")
	writeFile(t, dir, "data.json", "{")
	if err := a.Reload(); err == nil {
		t.Error("Reload(broken data) = nil, want an error")
	}
	check("v1")

	// A good change swaps.
	if err := os.Remove(filepath.Join(dir, "data.json")); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatalf("Reload(good) = %v", err)
	}
	if a.Revision() == rev1 {
		t.Error("Revision() unchanged after a good reload")
	}
	check("v2")

	want := `
# HELP promgate_policy_reloads_total Policy loads by result (success, failure).
# TYPE promgate_policy_reloads_total counter
promgate_policy_reloads_total{result="failure"} 2
promgate_policy_reloads_total{result="success"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "promgate_policy_reloads_total"); err != nil {
		t.Error(err)
	}
}

// TestReloadConcurrentDecide runs Decide while Reload swaps policies, for the
// race detector: every decision comes from one whole revision, and names
// the revision that made it (the audit record's policy_revision).
func TestReloadConcurrentDecide(t *testing.T) {
	dir := writeFolder(t, policy(`decision := {"allow": true, "reason": "v0"}`))
	a := newAuthorizer(t, dir, nil)
	reasonOf := map[string]string{a.Revision(): "v0"}
	seen := map[[2]string]bool{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			d, err := a.Decide(ctx, queryInput(alice))
			if err != nil && ctx.Err() == nil {
				t.Errorf("Decide() error during reload: %v", err)
				return
			}
			if err == nil && !strings.HasPrefix(d.Reason, "v") {
				t.Errorf("Decide() reason = %q", d.Reason)
				return
			}
			if err == nil {
				seen[[2]string{d.Revision, d.Reason}] = true
			}
		}
	}()
	for i := 1; i <= 5; i++ {
		reason := "v" + string(rune('0'+i))
		writeFile(t, dir, "policy.rego", "package promgate.authz\n\ndecision := {\"allow\": true, \"reason\": \""+reason+"\"}\n")
		if err := a.Reload(); err != nil {
			t.Fatal(err)
		}
		reasonOf[a.Revision()] = reason
	}
	cancel()
	<-done
	for pair := range seen {
		if want, ok := reasonOf[pair[0]]; !ok || want != pair[1] {
			t.Errorf("decision %q names revision %q, which decided %q", pair[1], pair[0], want)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	dir := writeFolder(t, policy(`decision := {"allow": input.request.route == "query", "reason": "x"} if input.request.route != "boom"
decision := {"allow": "nope"} if input.request.route == "boom"`))
	a := newAuthorizer(t, dir, reg)
	a.InitRoutes([]string{"query", "series"})
	for _, route := range []string{"query", "query", "series", "boom"} {
		in := queryInput(alice)
		in.Request.Route = route
		_, _ = a.Decide(t.Context(), in)
	}
	want := `
# HELP promgate_authz_decisions_total Policy decisions by route and result (allow, deny, error).
# TYPE promgate_authz_decisions_total counter
promgate_authz_decisions_total{result="allow",route="query"} 2
promgate_authz_decisions_total{result="deny",route="query"} 0
promgate_authz_decisions_total{result="error",route="query"} 0
promgate_authz_decisions_total{result="allow",route="series"} 0
promgate_authz_decisions_total{result="deny",route="series"} 1
promgate_authz_decisions_total{result="error",route="series"} 0
promgate_authz_decisions_total{result="error",route="boom"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "promgate_authz_decisions_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "promgate_policy_eval_duration_seconds"); n != 1 {
		t.Errorf("promgate_policy_eval_duration_seconds series = %d, want 1", n)
	}
	// A second Authorizer on the same registry shares the metrics.
	b := newAuthorizer(t, dir, reg)
	_, _ = b.Decide(t.Context(), queryInput(alice))
	if got := testutil.ToFloat64(b.metrics.decisions.WithLabelValues("query", "allow")); got != 3 {
		t.Errorf("shared counter = %v, want 3", got)
	}
}

func TestDecideJSON(t *testing.T) {
	a := newAuthorizer(t, writeFolder(t, policy(`decision := {"allow": input.identity.subject == "alice", "reason": "r"}`)), nil)
	d, err := a.DecideJSON(t.Context(), []byte(`{"identity": {"subject": "alice"}}`))
	if err != nil || !d.Allow {
		t.Errorf("DecideJSON() = %+v, %v; want allow", d, err)
	}
	d, err = a.DecideJSON(t.Context(), []byte(`{"identity": `))
	if err == nil || d.Allow {
		t.Errorf("DecideJSON(broken) = %+v, %v; want a denial and an error", d, err)
	}
}

func TestDecisionFromDataOnly(t *testing.T) {
	dir := writeFolder(t, withFiles(policy(`other := 1`), map[string]string{
		"data.json": `{"static": {"decision": {"allow": false, "reason": "maintenance"}}}`,
	}))
	a, err := New(config.Authz{Policies: dir, Decision: "data.static.decision"}, nil, nil)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	d, err := a.Decide(t.Context(), queryInput(alice))
	if err != nil || !cmp.Equal(d, Decision{Reason: "maintenance"}, ignoreEnforcer) {
		t.Errorf("Decide() = %+v, %v", d, err)
	}
}

func TestDecisionJSON(t *testing.T) {
	tests := []struct {
		d    Decision
		want string
	}{
		{Decision{Reason: "no"}, `{"allow":false,"reason":"no"}`},
		{
			Decision{Allow: true, Reason: "ok", Enforce: map[string][]string{"namespace": {"a"}}, Tenant: "a", Limits: Limits{MaxRange: 7 * 24 * time.Hour, MinStep: 15 * time.Second}},
			`{"allow":true,"reason":"ok","enforce":{"namespace":["a"]},"tenant":"a","limits":{"max_range":"1w","min_step":"15s"}}`,
		},
	}
	for _, tc := range tests {
		b, err := json.Marshal(tc.d)
		if err != nil || string(b) != tc.want {
			t.Errorf("json.Marshal(%+v) = %s, %v; want %s", tc.d, b, err, tc.want)
		}
	}
}

func TestLoadRefusesOversizedFile(t *testing.T) {
	dir := writeFolder(t, policy(`decision := {"allow": true}`))
	writeFile(t, dir, "big.json", `{"x": "`+strings.Repeat("a", maxFileSize)+`"}`)
	_, err := New(configFor(dir), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "big.json: larger than 16 MiB") {
		t.Errorf("New(oversized) = %v, want a size error", err)
	}
}
