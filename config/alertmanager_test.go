package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const withAlertmanager = `
listen: 127.0.0.1:9443
tls:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: ca.crt
upstream:
  url: http://127.0.0.1:9090
alertmanager:
  url: https://127.0.0.1:9093/alertmanager
  tls: {ca_file: am-ca.crt, cert_file: am.crt, key_file: am.key}
  bearer_token_file: am-token
  tenant_header: X-Scope-OrgID
detectors:
  alertmanager_url: https://127.0.0.1:9443
  alertmanager_tls: {ca_file: ca.crt, cert_file: detectors.crt, key_file: detectors.key}
  alertmanager_bearer_token_file: detectors-token
`

// TestParseAlertmanager checks the alertmanager block and the evaluator's
// Alertmanager client settings, with their paths resolved.
func TestParseAlertmanager(t *testing.T) {
	c, err := Parse([]byte(withAlertmanager), "/etc/promgate")
	if err != nil {
		t.Fatal(err)
	}
	want := &Alertmanager{ //nolint:gosec // G101: BearerTokenFile is a file path, not a credential
		URL:             "https://127.0.0.1:9093/alertmanager",
		TLS:             UpstreamTLS{CAFile: "/etc/promgate/am-ca.crt", CertFile: "/etc/promgate/am.crt", KeyFile: "/etc/promgate/am.key"},
		BearerTokenFile: "/etc/promgate/am-token",
		TenantHeader:    "X-Scope-OrgID",
	}
	if diff := cmp.Diff(want, c.Alertmanager); diff != "" {
		t.Errorf("alertmanager (-want +got):\n%s", diff)
	}
	if got := c.Detectors.AlertmanagerTLS.CertFile; got != "/etc/promgate/detectors.crt" {
		t.Errorf("detectors.alertmanager_tls.cert_file = %q", got)
	}
	if got := c.Detectors.AlertmanagerBearerTokenFile; got != "/etc/promgate/detectors-token" {
		t.Errorf("detectors.alertmanager_bearer_token_file = %q", got)
	}
	c, err = Parse([]byte(strings.Split(withAlertmanager, "alertmanager:")[0]), "/etc/promgate")
	if err != nil || c.Alertmanager != nil {
		t.Errorf("without the block: Alertmanager = %v, err %v; want nil", c.Alertmanager, err)
	}
}

func TestParseAlertmanagerBad(t *testing.T) {
	for _, tc := range []struct {
		replace [2]string
		want    string
	}{
		{[2]string{"url: https://127.0.0.1:9093/alertmanager", "url: ''"}, "alertmanager.url: required"},
		{[2]string{"url: https://127.0.0.1:9093/alertmanager", "url: https://u:p@am:9093"}, "alertmanager.url"},
		{[2]string{"url: https://127.0.0.1:9093/alertmanager", "url: http://am:9093"}, "alertmanager.tls: set, but the url is not https"},
		{[2]string{"cert_file: am.crt, ", ""}, "alertmanager.tls: cert_file and key_file go together"},
		{[2]string{"tenant_header: X-Scope-OrgID", "tenant_header: 'a b'"}, "alertmanager.tenant_header"},
		{[2]string{"bearer_token_file: am-token", "token: x"}, "alertmanager.token"},
		{[2]string{"cert_file: detectors.crt, ", ""}, "detectors.alertmanager_tls: cert_file and key_file go together"},
		{[2]string{"alertmanager_url: https://127.0.0.1:9443", "alertmanager_url: http://127.0.0.1:9443"}, "detectors.alertmanager_tls: set, but"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(withAlertmanager, tc.replace[0], tc.replace[1], 1)), "/etc/promgate")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
