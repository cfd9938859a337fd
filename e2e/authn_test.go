//go:build e2e

package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestNoClientCertificate: with VerifyClientCertIfGiven a caller without a
// certificate completes the handshake and gets 401 with WWW-Authenticate:
// Bearer on every route, known or not, and nothing is forwarded.
func TestNoClientCertificate(t *testing.T) {
	c := newClient(t, env.ifGiven, env.pki, "")
	cases := []request{
		{path: "/api/v1/query", query: url.Values{"query": {"up"}}},
		{method: http.MethodPost, path: "/api/v1/query", form: url.Values{"query": {"up"}}},
		{path: "/api/v1/series", query: url.Values{"match[]": {"up"}}},
		{path: "/federate", query: url.Values{"match[]": {"up"}}},
		{path: "/api/v1/query", query: url.Values{"query": {"1+1"}, "time": {"4"}}},
		// Spoofed identity headers (X-Forwarded-User and the like) do not
		// authenticate.
		{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: map[string][]string{
			"X-Forwarded-User": {"admin"}, "X-Remote-User": {"admin"}, "X-Scope-OrgID": {"team-a"},
		}},
	}
	for _, req := range cases {
		t.Run(req.String(), func(t *testing.T) {
			res := c.do(t, req)
			res.wantError(t, http.StatusUnauthorized, "unauthorized")
			if h := res.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
				t.Errorf("%s: WWW-Authenticate %q, want Bearer", res, h)
			}
		})
	}

	// The same gateway serves a verified certificate normally.
	res := newClient(t, env.ifGiven, env.pki, "team-a").do(t, request{path: "/api/v1/query", query: url.Values{"query": {"up"}}})
	res.checkSeen(t, vectorNS, callerTeamA.allowed, nsTeamA, nil)
}

// TestRefusedHandshakes: a certificate from another CA fails the handshake on
// both gateways, with no fallback to an anonymous connection, and so does no
// certificate where one is required.
func TestRefusedHandshakes(t *testing.T) {
	cases := []struct {
		name string
		gw   *gateway
		pki  string
		cert string
	}{
		{name: "foreign CA, RequireAndVerifyClientCert", gw: env.main, pki: env.foreign, cert: "team-a"},
		{name: "foreign CA admin, RequireAndVerifyClientCert", gw: env.main, pki: env.foreign, cert: "admin"},
		{name: "foreign CA, VerifyClientCertIfGiven", gw: env.ifGiven, pki: env.foreign, cert: "team-a"},
		{name: "no certificate, RequireAndVerifyClientCert", gw: env.main, pki: env.pki, cert: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, tc.gw, tc.pki, tc.cert)
			before := env.rec.count()
			res, err := c.try(request{path: "/api/v1/query", query: url.Values{"query": {"up"}}})
			if err == nil {
				t.Fatalf("handshake succeeded: %s", res)
			}
			if !strings.Contains(err.Error(), "tls") && !strings.Contains(err.Error(), "certificate") {
				t.Errorf("error %q does not look like a refused handshake", err)
			}
			if n := env.rec.count() - before; n != 0 {
				t.Errorf("%d requests reached the upstream", n)
			}
		})
	}
}

// TestUnknownGroup: a verified certificate whose groups the policy does not
// know is denied with 403 and nothing is forwarded.
func TestUnknownGroup(t *testing.T) {
	c := newClient(t, env.main, env.pki, "nobody")
	for _, req := range []request{
		{path: "/api/v1/query", query: url.Values{"query": {"up"}}},
		{path: "/api/v1/labels"},
		{path: "/federate", query: url.Values{"match[]": {"up"}}},
	} {
		c.do(t, req).wantError(t, http.StatusForbidden, "forbidden")
	}
}
