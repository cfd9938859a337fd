package config

import (
	"strings"
	"testing"

	"github.com/alecthomas/units"
	"github.com/google/go-cmp/cmp"
)

const sidecar = `
listen: 127.0.0.1:9443
internal_listen: 127.0.0.1:9091
tls:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: ca.crt
upstream:
  kind: metrics
  url: http://127.0.0.1:9100/metrics
  exporters:
    - path: /app/metrics
      url: https://127.0.0.1:8443/metrics
      tls: {ca_file: app-ca.crt, server_name: app.local}
      bearer_token_file: app-token
authz:
  policies: policies
`

// TestParseSidecar checks that upstream.kind metrics with exporters
// parses, with the exporters' paths resolved and the body cap defaulted.
func TestParseSidecar(t *testing.T) {
	c, err := Parse([]byte(sidecar), "/etc/promgate")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []Exporter{{ //nolint:gosec // G101: BearerTokenFile is a file path, not a credential
		Path:            "/app/metrics",
		URL:             "https://127.0.0.1:8443/metrics",
		TLS:             UpstreamTLS{CAFile: "/etc/promgate/app-ca.crt", ServerName: "app.local"},
		BearerTokenFile: "/etc/promgate/app-token",
	}}
	if diff := cmp.Diff(want, c.Upstream.Exporters); diff != "" {
		t.Errorf("exporters (-want +got):\n%s", diff)
	}
	if c.Upstream.MaxScrapeBody != 64*units.MiB {
		t.Errorf("max_scrape_body = %v, want 64MiB", c.Upstream.MaxScrapeBody)
	}
}

func TestParseSidecarBad(t *testing.T) {
	tests := []struct {
		name    string
		replace [2]string // applied to sidecar
		want    []string
	}{
		{name: "exporters need kind metrics", replace: [2]string{"  kind: metrics\n", ""},
			want: []string{"upstream.exporters: only for kind metrics"}},
		{name: "no url and no exporters", replace: [2]string{"  url: http://127.0.0.1:9100/metrics\n  exporters:\n    - path: /app/metrics\n      url: https://127.0.0.1:8443/metrics\n      tls: {ca_file: app-ca.crt, server_name: app.local}\n      bearer_token_file: app-token\n", ""},
			want: []string{"upstream.url: required"}},
		{name: "relative path", replace: [2]string{"path: /app/metrics", "path: app/metrics"}, want: []string{`upstream.exporters[0].path: "app/metrics" is not an absolute path`}},
		{name: "trailing slash", replace: [2]string{"path: /app/metrics", "path: /app/metrics/"}, want: []string{"upstream.exporters[0].path"}},
		{name: "dot-dot segment", replace: [2]string{"path: /app/metrics", "path: /app/../metrics"}, want: []string{"upstream.exporters[0].path"}},
		{name: "encoded path", replace: [2]string{"path: /app/metrics", "path: /app%2Fmetrics"}, want: []string{"upstream.exporters[0].path"}},
		{name: "query in path", replace: [2]string{"path: /app/metrics", "path: /app/metrics?x=1"}, want: []string{"upstream.exporters[0].path"}},
		{name: "path of upstream.url", replace: [2]string{"path: /app/metrics", "path: /metrics"}, want: []string{"upstream.exporters[0].path: /metrics is already served by upstream.url"}},
		{name: "exporter without url", replace: [2]string{"      url: https://127.0.0.1:8443/metrics\n", ""}, want: []string{"upstream.exporters[0].url: required"}},
		{name: "exporter url with query", replace: [2]string{"https://127.0.0.1:8443/metrics", "https://127.0.0.1:8443/probe?target=x"}, want: []string{"upstream.exporters[0].url: must not carry a query"}},
		{name: "exporter url with credentials", replace: [2]string{"https://127.0.0.1:8443/metrics", "https://u:p@127.0.0.1:8443/metrics"}, want: []string{"upstream.exporters[0].url: must not carry credentials"}},
		{name: "tls on http", replace: [2]string{"https://127.0.0.1:8443/metrics", "http://127.0.0.1:8080/metrics"}, want: []string{"upstream.exporters[0].tls: set, but the url is not https"}},
		{name: "cert without key", replace: [2]string{"server_name: app.local", "server_name: app.local, cert_file: c.crt"}, want: []string{"upstream.exporters[0].tls: cert_file and key_file go together"}},
		{name: "tenant header", replace: [2]string{"  kind: metrics\n", "  kind: metrics\n  tenant_header: X-Scope-OrgID\n"}, want: []string{"upstream.tenant_header: has no meaning for kind metrics"}},
		{name: "zero body cap", replace: [2]string{"  kind: metrics\n", "  kind: metrics\n  max_scrape_body: 0\n"}, want: []string{"upstream.max_scrape_body: must be positive"}},
		{name: "unknown exporter key", replace: [2]string{"      bearer_token_file: app-token\n", "      token: x\n"}, want: []string{"upstream.exporters[0].token: unknown key"}},
		{name: "unknown kind", replace: [2]string{"kind: metrics", "kind: exporter"}, want: []string{`upstream.kind: unknown value "exporter"; use prometheus-api or metrics`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(sidecar, tc.replace[0]) {
				t.Fatalf("replace %q not in the base config", tc.replace[0])
			}
			_, err := Parse([]byte(strings.Replace(sidecar, tc.replace[0], tc.replace[1], 1)), "/etc/promgate")
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

// TestParseSidecarExportersOnly checks that upstream.url may be left out
// when exporters name every path, and that two exporters cannot share one.
func TestParseSidecarExportersOnly(t *testing.T) {
	base := strings.Replace(sidecar, "  url: http://127.0.0.1:9100/metrics\n", "", 1)
	if _, err := Parse([]byte(base), "/etc/promgate"); err != nil {
		t.Fatalf("Parse without upstream.url: %v", err)
	}
	twice := base + "    - path: /app/metrics\n      url: http://127.0.0.1:8080/metrics\n"
	twice = strings.Replace(twice, "authz:\n  policies: policies\n", "", 1) + "authz:\n  policies: policies\n"
	_, err := Parse([]byte(twice), "/etc/promgate")
	if err == nil || !strings.Contains(err.Error(), "upstream.exporters[1].path: /app/metrics is listed twice") {
		t.Errorf("Parse with a repeated path = %v, want it refused", err)
	}
}
