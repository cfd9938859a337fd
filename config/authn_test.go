package config

import (
	"strings"
	"testing"
)

const goodOIDC = `authn:
  oidc:
    - issuer: https://idp.example
      audiences: [promgate, grafana]
      username_claim: email
      ca_file: idp-ca.crt
    - issuer: http://127.0.0.1:3000
      audiences: [https://promgate.test]
      required_scopes: [metrics:read]
  login:
    issuer: https://idp.example
    client_id: promgate
    client_secret_file: secrets/client
    redirect_url: https://promgate.example/oauth2/callback
    cookie_secret_file: /etc/promgate/cookie
`

func TestParseOIDC(t *testing.T) {
	c, err := Parse([]byte(good+goodOIDC), "/etc/promgate")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(c.Authn.OIDC) != 2 || c.Authn.OIDC[0].CAFile != "/etc/promgate/idp-ca.crt" || c.Authn.OIDC[1].RequiredScopes[0] != "metrics:read" {
		t.Errorf("oidc = %+v", c.Authn.OIDC)
	}
	l := c.Authn.Login
	if l == nil || l.ClientSecretFile != "/etc/promgate/secrets/client" || l.CookieSecretFile != "/etc/promgate/cookie" {
		t.Errorf("login = %+v", l)
	}
	// NoClientCert is fine once tokens can authenticate.
	noCert := strings.Replace(good, "  client_ca_file: /etc/ca.crt", "  client_auth_type: NoClientCert", 1)
	if _, err := Parse([]byte(noCert+goodOIDC), "/etc/promgate"); err != nil {
		t.Errorf("NoClientCert with oidc: %v", err)
	}
}

func TestParseOIDCBad(t *testing.T) {
	tests := []struct {
		name    string
		replace [2]string
		want    string
	}{
		{"trailing data issuer", [2]string{"https://idp.example\n      audiences: [promgate, grafana]", "https://idp.example?x=1\n      audiences: [promgate, grafana]"}, "authn.oidc[0].issuer"},
		{"http issuer", [2]string{"http://127.0.0.1:3000", "http://idp.example"}, "only https issuers"},
		{"no audiences", [2]string{"audiences: [https://promgate.test]", "audiences: []"}, "authn.oidc[1].audiences: required"},
		{"empty audience", [2]string{"audiences: [promgate, grafana]", `audiences: [promgate, ""]`}, "authn.oidc[0].audiences[1]"},
		{"duplicate issuer", [2]string{"http://127.0.0.1:3000", "https://idp.example"}, "listed twice"},
		{"unknown key", [2]string{"username_claim: email", "user_claim: email"}, "unknown key"},
		{"http redirect", [2]string{"https://promgate.example/oauth2/callback", "http://promgate.example/oauth2/callback"}, "authn.login.redirect_url"},
		{"wrong callback path", [2]string{"https://promgate.example/oauth2/callback", "https://promgate.example/callback"}, "must end in /oauth2/callback"},
		{"no openid scope", [2]string{"    cookie_secret_file: /etc/promgate/cookie\n", "    cookie_secret_file: /etc/promgate/cookie\n    scopes: [email]\n"}, "must include openid"},
		{"cookie without __Host-", [2]string{"    cookie_secret_file: /etc/promgate/cookie\n", "    cookie_secret_file: /etc/promgate/cookie\n    cookie_name: session\n"}, "must start with __Host-"},
		{"cookie colliding", [2]string{"    cookie_secret_file: /etc/promgate/cookie\n", "    cookie_secret_file: /etc/promgate/cookie\n    cookie_name: __Host-promgate_csrf\n"}, "collides"},
		{"no cookie secret", [2]string{"    cookie_secret_file: /etc/promgate/cookie\n", ""}, "authn.login.cookie_secret_file: required"},
		{"session too short", [2]string{"    cookie_secret_file: /etc/promgate/cookie\n", "    cookie_secret_file: /etc/promgate/cookie\n    session_lifetime: 30s\n"}, "authn.login.session_lifetime"},
		{"session too long", [2]string{"    cookie_secret_file: /etc/promgate/cookie\n", "    cookie_secret_file: /etc/promgate/cookie\n    session_lifetime: 2d\n"}, "outside 1m to 24h"},
		{"http post-logout", [2]string{"    cookie_secret_file: /etc/promgate/cookie\n", "    cookie_secret_file: /etc/promgate/cookie\n    post_logout_redirect_url: http://gw.example/out\n"}, "authn.login.post_logout_redirect_url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := good + goodOIDC
			if !strings.Contains(in, tc.replace[0]) {
				t.Fatalf("test bug: %q not in config", tc.replace[0])
			}
			in = strings.Replace(in, tc.replace[0], tc.replace[1], 1)
			_, err := Parse([]byte(in), "/etc/promgate")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse error %v, want %q", err, tc.want)
			}
		})
	}
}
