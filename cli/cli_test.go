package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCertsAndCheck(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := run(t, "certs", "dev", "--out", filepath.Join(dir, "certs"), "--client", "alice:team-a,ops", "--client", "admin:admins"); code != 0 {
		t.Fatalf("certs dev: exit %d: %s", code, stderr)
	}
	for _, f := range []string{"ca.crt", "server.key", "client-alice.crt", "client-admin.key"} {
		if _, err := os.Stat(filepath.Join(dir, "certs", f)); err != nil {
			t.Errorf("certs dev did not write %s: %v", f, err)
		}
	}
	if code, _, _ := run(t, "certs", "dev", "--out", filepath.Join(dir, "certs")); code == 0 {
		t.Error("certs dev overwrote an existing CA")
	}

	policies, err := filepath.Abs("../policies")
	if err != nil {
		t.Fatal(err)
	}
	good := `listen: 127.0.0.1:0
internal_listen: 127.0.0.1:1
tls:
  cert_file: certs/server.crt
  key_file: certs/server.key
  client_ca_file: certs/ca.crt
upstream:
  url: http://127.0.0.1:9
authz:
  policies: ` + policies + `
audit:
  path: audit.log
`
	cfg := writeConfig(t, dir, good)
	if code, out, stderr := run(t, "check", "--config", cfg); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("check good config: exit %d, out %q, err %q", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "audit.log")); err == nil {
		t.Error("check created the audit file")
	}

	bad := strings.NewReplacer(
		"  client_ca_file: certs/ca.crt", "  client_ca_file: certs/ca.crt\n  client_auth_type: RequestClientCert",
	).Replace(good) + "unknown_key: 1\n"
	cfg = writeConfig(t, dir, bad)
	code, out, _ := run(t, "check", "--config", cfg)
	if code != 1 {
		t.Fatalf("check bad config: exit %d, want 1", code)
	}
	if !strings.Contains(out, "unknown_key") || !strings.Contains(out, "tls.client_auth_type") {
		t.Errorf("check output %q does not name both the unknown key and the bad client_auth_type", out)
	}

	bad = strings.NewReplacer(
		"  client_ca_file: certs/ca.crt", "  client_ca_file: certs/ca.crt\n  client_auth_type: RequestClientCert",
		"cert_file: certs/server.crt", "cert_file: certs/missing.crt",
	).Replace(good)
	cfg = writeConfig(t, dir, bad)
	code, out, _ = run(t, "check", "--config", cfg)
	if code != 1 || !strings.Contains(out, `tls.client_auth_type: "RequestClientCert" does not verify certificates`) {
		t.Fatalf("check: exit %d, out %q", code, out)
	}

	bad = strings.Replace(good, "cert_file: certs/server.crt", "cert_file: certs/missing.crt", 1)
	bad = strings.Replace(bad, "policies: "+policies, "policies: "+dir, 1)
	cfg = writeConfig(t, dir, bad)
	code, out, _ = run(t, "check", "--config", cfg)
	if code != 1 || !strings.Contains(out, "tls.cert_file") || !strings.Contains(out, "authz.policies") {
		t.Fatalf("check should list both the certificate and the policy problem: exit %d, out %q", code, out)
	}

	// check reads the exporter's configuration, and sends nothing.
	traced := good + "tracing:\n  enabled: true\n  endpoint: http://127.0.0.1:9/v1/traces\n"
	if code, out, stderr := run(t, "check", "--config", writeConfig(t, dir, traced)); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("check with tracing: exit %d, out %q, err %q", code, out, stderr)
	}
	code, out, _ = run(t, "check", "--config", writeConfig(t, dir, traced+"  headers_file: missing-headers\n"))
	if code != 1 || !strings.Contains(out, "tracing.headers_file") {
		t.Fatalf("check should name the missing tracing.headers_file: exit %d, out %q", code, out)
	}
}

func TestUsage(t *testing.T) {
	if code, _, _ := run(t, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code, out, _ := run(t, "version"); code != 0 || !strings.HasPrefix(out, "promgate ") {
		t.Errorf("version: exit %d, out %q", code, out)
	}
	if code, _, _ := run(t, "policy", "test", "../policies"); code != 0 {
		t.Errorf("policy test ../policies: exit %d", code)
	}
}

// TestPolicyEval checks that policy eval enforces the whole decision:
// literal values, regex values and matchers, as serve does.
func TestPolicyEval(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "pol")
	if err := os.MkdirAll(pol, 0o755); err != nil {
		t.Fatal(err)
	}
	rego := `package promgate.authz

decision := {"allow": true, "enforce": {"namespace": ["shared"]}, "enforce_regex": {"namespace": ["team-.*"]}, "matchers": ["{secret!=\"true\"}"]}
`
	if err := os.WriteFile(filepath.Join(pol, "p.rego"), []byte(rego), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "certs", "dev", "--out", filepath.Join(dir, "certs")); code != 0 {
		t.Fatal(stderr)
	}
	cfg := writeConfig(t, dir, `listen: 127.0.0.1:0
tls:
  cert_file: certs/server.crt
  key_file: certs/server.key
  client_ca_file: certs/ca.crt
upstream:
  url: http://127.0.0.1:9
authz:
  policies: pol
`)
	input := filepath.Join(dir, "input.json")
	if err := os.WriteFile(input, []byte(`{"identity":{"authenticated":true,"subject":"a"},"query":{"expressions":["up"]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "policy", "eval", "--config", cfg, "--input", input)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, `namespace=~\"shared|(?:team-.*)\"`) || !strings.Contains(out, `secret!=\"true\"`) {
		t.Errorf("policy eval did not enforce the whole decision:\n%s", out)
	}
}

// TestPolicyEvalEachExpression checks that every expression of the input is
// reported on its own: one refused expression must not make the ones after
// it report its error.
func TestPolicyEvalEachExpression(t *testing.T) {
	dir := t.TempDir()
	policies, err := filepath.Abs("../policies")
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, `listen: 127.0.0.1:0
tls:
  cert_file: certs/server.crt
  key_file: certs/server.key
  client_ca_file: certs/ca.crt
upstream:
  url: http://127.0.0.1:9
authz:
  policies: `+policies+`
`)
	input := filepath.Join(dir, "input.json")
	doc := `{"identity": {"authenticated": true, "subject": "alice@example.com", "groups": ["team-a"]},
"request": {"method": "GET", "path": "/api/v1/query", "route": "query"},
"query": {"expressions": ["up", "up{namespace=\"team-b\"}", "up"]}}`
	if err := os.WriteFile(input, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "policy", "eval", "--config", cfg, "--input", input)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Enforced []enforced `json:"enforced"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	want := []enforced{
		{Query: "up", Enforced: `up{namespace=~"team-a|team-a-staging"}`},
		{Query: `up{namespace="team-b"}`, Error: `label namespace="team-b" is not allowed`},
		{Query: "up", Enforced: `up{namespace=~"team-a|team-a-staging"}`},
	}
	if diff := cmp.Diff(want, got.Enforced); diff != "" {
		t.Errorf("policy eval enforced mismatch (-want +got):\n%s", diff)
	}
}
