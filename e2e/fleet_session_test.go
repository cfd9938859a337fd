//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// startLoginReplica starts another replica of the OIDC gateway, as a fleet
// would run it: the same configuration, its own ports, and cookieSecret as
// its cookie_secret_file, with accept as accept_cookie_secret_files.
func (o *oidcStack) startLoginReplica(t *testing.T, name, cookieSecret string, accept ...string) *gateway {
	t.Helper()
	g := &gateway{name: name, authType: "VerifyClientCertIfGiven", upstream: env.rec.url}
	var err error
	if g.addr, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if g.internal, err = freePort(); err != nil {
		t.Fatal(err)
	}
	g.dir = filepath.Join(o.dir, name)
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g.config = filepath.Join(g.dir, "promgate.yml")
	g.audit = filepath.Join(g.dir, "audit.log")
	// The redirect URL stays the first replica's: the public name of the
	// fleet, which logins come back to.
	cfg := fmt.Sprintf(oidcGatewayConfig, o.gw.addr, g.internal, env.pki, g.upstream, o.issuer, oidcAudience, filepath.Join(env.root, "policies"))
	cfg = strings.Replace(cfg, "listen: "+o.gw.addr+"\n", "listen: "+g.addr+"\n", 1)
	files := map[string]string{"client-secret": oidcSecret + "\n", "cookie-secret": cookieSecret}
	const anchor = "    cookie_secret_file: cookie-secret\n"
	if len(accept) > 0 {
		block := "    accept_cookie_secret_files:\n"
		for i, a := range accept {
			n := fmt.Sprintf("accepted-secret-%d", i)
			files[n] = a
			block += "      - " + n + "\n"
		}
		if !strings.Contains(cfg, anchor) {
			t.Fatal("the OIDC gateway configuration has no cookie_secret_file line to extend")
		}
		cfg = strings.Replace(cfg, anchor, anchor+block, 1)
	}
	files["promgate.yml"] = cfg
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(g.dir, n), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.startGateway(g); err != nil {
		t.Fatal(err)
	}
	if err := env.waitGateway(g); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !g.proc.exited() {
			_ = g.proc.stop()
		}
	})
	return g
}

// testSessionAcrossReplicas logs in on the first replica and uses the
// session on others (issue 21): one sharing its cookie key, one that seals
// with a new key and accepts the old (a rotation in progress), and one
// with an unrelated key, which must refuse it.
func (o *oidcStack) testSessionAcrossReplicas(t *testing.T) {
	shared, err := os.ReadFile(filepath.Join(o.gw.dir, "cookie-secret"))
	if err != nil {
		t.Fatal(err)
	}
	newKey := func() string {
		b := make([]byte, 48)
		_, _ = rand.Read(b)
		return base64.StdEncoding.EncodeToString(b) + "\n"
	}
	cookies := o.codeLogin(t, "alice")
	query := request{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: map[string][]string{"Cookie": {cookieHeader(cookies)}}}
	for _, tc := range []struct {
		name   string
		secret string
		accept []string
		ok     bool
	}{
		{"replica-shared-key", string(shared), nil, true},
		{"replica-rotated-key", newKey(), []string{string(shared)}, true},
		{"replica-other-key", newKey(), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := o.startLoginReplica(t, tc.name, tc.secret, tc.accept...)
			res := oidcClient(t, g).do(t, query)
			if tc.ok {
				res.checkSeen(t, vectorNS, []string{nsTeamA, nsTeamAStage}, nsTeamA, nil)
				return
			}
			res.wantError(t, http.StatusUnauthorized, "unauthorized")
		})
	}
}
