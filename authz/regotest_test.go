package authz

import (
	"bytes"
	"strings"
	"testing"
	"testing/fstest"
)

func TestTest(t *testing.T) {
	const mod = "package promgate.authz\n\ndecision := {\"allow\": input.ok == true}\n"
	tests := []struct {
		name    string
		fs      fstest.MapFS
		verbose bool
		wantOK  bool
		wantErr string
		output  []string // substrings of the output
	}{
		{
			name: "passing",
			fs: fstest.MapFS{
				"policy.rego":      {Data: []byte(mod)},
				"policy_test.rego": {Data: []byte("package promgate.authz_test\n\ntest_allow if data.promgate.authz.decision.allow with input as {\"ok\": true}\n\ntest_deny if not data.promgate.authz.decision.allow with input as {}\n")},
			},
			verbose: true,
			wantOK:  true,
			output:  []string{"policy_test.rego:3:", "test_allow: PASS", "test_deny: PASS", "PASS: 2/2"},
		},
		{
			name: "quiet passing lists no test",
			fs: fstest.MapFS{
				"policy.rego":      {Data: []byte(mod)},
				"policy_test.rego": {Data: []byte("package promgate.authz_test\n\ntest_allow if data.promgate.authz.decision.allow with input as {\"ok\": true}\n")},
			},
			wantOK: true,
			output: []string{"PASS: 1/1"},
		},
		{
			name: "failing",
			fs: fstest.MapFS{
				"policy.rego":      {Data: []byte(mod)},
				"policy_test.rego": {Data: []byte("package promgate.authz_test\n\ntest_allow if data.promgate.authz.decision.allow with input as {}\n\ntest_ok if true\n")},
			},
			output: []string{"test_allow: FAIL", "FAIL: 1/2"},
		},
		{
			name: "erroring",
			fs: fstest.MapFS{
				"policy.rego":      {Data: []byte(mod)},
				"policy_test.rego": {Data: []byte("package promgate.authz_test\n\ntest_div if to_number(concat(\"\", [\"x\", input.y])) == 1 with input.y as \"z\"\n")},
			},
			output: []string{"eval_builtin_error: to_number", "ERROR: 1/1"},
		},
		{
			name:   "no tests",
			fs:     fstest.MapFS{"policy.rego": {Data: []byte(mod)}},
			output: []string{"no tests found"},
		},
		{
			name: "uses data files",
			fs: fstest.MapFS{
				"policy.rego":      {Data: []byte("package promgate.authz\n\ndecision := {\"allow\": data.x.enabled}\n")},
				"data.yaml":        {Data: []byte("x:\n  enabled: true\n")},
				"policy_test.rego": {Data: []byte("package promgate.authz_test\n\ntest_data if data.promgate.authz.decision.allow\n")},
			},
			wantOK: true,
		},
		{
			name: "refused built-in in a test",
			fs: fstest.MapFS{
				"policy.rego":      {Data: []byte(mod)},
				"policy_test.rego": {Data: []byte("package promgate.authz_test\n\ntest_net if http.send({\"method\": \"GET\", \"url\": \"http://x\"})\n")},
			},
			wantErr: "policy_test.rego:3: rego_type_error: undefined function http.send",
		},
		{
			name: "parse error",
			fs: fstest.MapFS{
				"policy.rego":      {Data: []byte(mod)},
				"policy_test.rego": {Data: []byte("package promgate.authz_test\n\ntest_x if {\n")},
			},
			wantErr: "policy_test.rego:",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			ok, err := Test(t.Context(), tc.fs, &out, tc.verbose)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Test() error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Test() error = %v", err)
			}
			if ok != tc.wantOK {
				t.Errorf("Test() ok = %v, want %v; output:\n%s", ok, tc.wantOK, out.String())
			}
			for _, s := range tc.output {
				if !strings.Contains(out.String(), s) {
					t.Errorf("Test() output does not contain %q:\n%s", s, out.String())
				}
			}
		})
	}
}
