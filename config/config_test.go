package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
listen: 127.0.0.1:8443
internal_listen: 127.0.0.1:9091
tls:
  cert_file: certs/server.crt
  key_file: certs/server.key
  client_ca_file: /etc/ca.crt
upstream:
  url: http://127.0.0.1:9090
authz:
  policies: policies
audit:
  path: audit.log
limits:
  max_range: 7d
  max_request_body: 2MiB
`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good), "/etc/promgate")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"relative cert", c.TLS.CertFile, "/etc/promgate/certs/server.crt"},
		{"absolute CA", c.TLS.ClientCAFile, "/etc/ca.crt"},
		{"policies", c.Authz.Policies, "/etc/promgate/policies"},
		{"audit", c.Audit.Path, "/etc/promgate/audit.log"},
		{"default client auth", c.TLS.ClientAuthType, VerifyClientCertIfGiven},
		{"default decision", c.Authz.Decision, "data.promgate.authz.decision"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if time.Duration(c.Limits.MaxRange) != 7*24*time.Hour {
		t.Errorf("max_range = %v", c.Limits.MaxRange)
	}
	if c.Limits.MaxRequestBody != 2<<20 {
		t.Errorf("max_request_body = %v", c.Limits.MaxRequestBody)
	}
	if time.Duration(c.Limits.QueryTimeout) != 2*time.Minute {
		t.Errorf("default query_timeout = %v", c.Limits.QueryTimeout)
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name    string
		replace [2]string // applied to good
		append  string
		want    []string
	}{
		{name: "unknown key", append: "bogus: 1\n", want: []string{"bogus: unknown key (line"}},
		{name: "unknown nested key", replace: [2]string{"  key_file:", "  keyfile:"}, want: []string{"tls.keyfile: unknown key (line 6)"}},
		{name: "request client cert", append: "", replace: [2]string{"  client_ca_file: /etc/ca.crt", "  client_ca_file: /etc/ca.crt\n  client_auth_type: RequestClientCert"},
			want: []string{`tls.client_auth_type: "RequestClientCert" does not verify certificates`}},
		{name: "require any", replace: [2]string{"  client_ca_file: /etc/ca.crt", "  client_ca_file: /etc/ca.crt\n  client_auth_type: RequireAnyClientCert"},
			want: []string{`tls.client_auth_type: "RequireAnyClientCert" does not verify`}},
		{name: "old TLS", replace: [2]string{"  client_ca_file: /etc/ca.crt", "  client_ca_file: /etc/ca.crt\n  min_version: TLS10"}, want: []string{"tls.min_version"}},
		{name: "no CA", replace: [2]string{"  client_ca_file: /etc/ca.crt", ""}, want: []string{"tls.client_ca_file: required"}},
		{name: "upstream scheme", replace: [2]string{"http://127.0.0.1:9090", "ftp://x"}, want: []string{"upstream.url"}},
		{name: "upstream credentials", replace: [2]string{"http://127.0.0.1:9090", "http://u:p@x"}, want: []string{"upstream.url: must not carry credentials"}},
		{name: "oidc without audiences", append: "authn:\n  oidc:\n    - issuer: https://idp\n", want: []string{"authn.oidc[0].audiences: required"}},
		{name: "login incomplete", append: "authn:\n  login:\n    issuer: https://idp\n", want: []string{"authn.login.client_id: required", "authn.login.redirect_url"}},
		{name: "bad tenant header", replace: [2]string{"  url: http://127.0.0.1:9090", "  url: http://127.0.0.1:9090\n  tenant_header: X Scope"}, want: []string{"upstream.tenant_header"}},
		{name: "bad duration", replace: [2]string{"max_range: 7d", "max_range: 7 days"}, want: []string{"decode"}},
		{name: "bad size", replace: [2]string{"max_request_body: 2MiB", "max_request_body: lots"}, want: []string{"decode"}},
		{name: "same listeners", replace: [2]string{"internal_listen: 127.0.0.1:9091", "internal_listen: 127.0.0.1:8443"}, want: []string{"internal_listen: must differ"}},
		{name: "bad cidr", append: "trusted_proxies: [10.0.0.0]\n", want: []string{"trusted_proxies[0]"}},
		{name: "bad on_failure", replace: [2]string{"  path: audit.log", "  path: audit.log\n  on_failure: ignore"}, want: []string{"audit.on_failure"}},
		{name: "proxy protocol without trusted proxies", append: "proxy_protocol: true\n", want: []string{"proxy_protocol: needs trusted_proxies"}},
		{name: "bad replica id", append: "replica_id: ../gw\n", want: []string{"replica_id"}},
		{name: "bad audit mode", replace: [2]string{"  path: audit.log", "  path: audit.log\n  mode: lazy"}, want: []string{`audit.mode: unknown value "lazy"`}},
		{name: "buffered audit with deny", replace: [2]string{"  path: audit.log", "  path: audit.log\n  mode: buffered"}, want: []string{"audit.mode: buffered lets a crash lose records"}},
		{name: "several problems at once", replace: [2]string{"http://127.0.0.1:9090", "ftp://x"}, append: "trusted_proxies: [nope]\n",
			want: []string{"upstream.url", "trusted_proxies[0]"}},
		{name: "two documents", append: "---\nlisten: x\n", want: []string{"more than one YAML document"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := good
			if tc.replace[0] != "" {
				if !strings.Contains(in, tc.replace[0]) {
					t.Fatalf("test bug: %q not in good config", tc.replace[0])
				}
				in = strings.Replace(in, tc.replace[0], tc.replace[1], 1)
			}
			in += tc.append
			_, err := Parse([]byte(in), "/etc/promgate")
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadResolvesAgainstFileFolder(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(p, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "certs/server.crt"); c.TLS.CertFile != want {
		t.Errorf("cert_file = %q, want %q", c.TLS.CertFile, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.yml")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestRoutesStatus(t *testing.T) {
	c, err := Parse([]byte(good), "/etc/promgate")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Routes.Status, ","); got != "buildinfo" {
		t.Errorf("default routes.status = %q, want buildinfo", got)
	}
	for _, tc := range []struct {
		yaml, want string // want: the list joined, or an error substring
		ok         bool
	}{
		{yaml: "routes:\n  status: [buildinfo, targets, tsdb]\n", want: "buildinfo,targets,tsdb", ok: true},
		// The list replaces the default: buildinfo is off unless listed.
		{yaml: "routes:\n  status: [targets]\n", want: "targets", ok: true},
		{yaml: "routes:\n  status: []\n", want: "", ok: true},
		{yaml: "routes:\n  status: [buildinfo, runtimeinfo, flags, tsdb, config, walreplay, targets]\n",
			want: "buildinfo,runtimeinfo,flags,tsdb,config,walreplay,targets", ok: true},
		{yaml: "routes:\n  status: [buildinfo, head]\n", want: `routes.status[1]: unknown status route "head"`},
		{yaml: "routes:\n  status: [Targets]\n", want: `routes.status[0]: unknown status route "Targets"`},
		{yaml: "routes:\n  status: [tsdb, tsdb]\n", want: "routes.status[1]: tsdb is listed twice"},
		{yaml: "routes:\n  admin: [tsdb]\n", want: "routes.admin: unknown key"},
	} {
		c, err := Parse([]byte(good+tc.yaml), "/etc/promgate")
		switch {
		case tc.ok && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.ok && strings.Join(c.Routes.Status, ",") != tc.want:
			t.Errorf("%q: routes.status = %q, want %q", tc.yaml, c.Routes.Status, tc.want)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want one containing %q", tc.yaml, err, tc.want)
		}
	}
}
