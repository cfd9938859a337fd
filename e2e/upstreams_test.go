//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// namedUpstreamsPolicy sends admins to the global querier, team-a to the
// tenant-enforcing one as tenant team-a, and team-b to an upstream the
// gateway does not have.
const namedUpstreamsPolicy = `package promgate.authz

default decision := {"allow": false, "reason": "no access"}

decision := {"allow": true, "upstream": "global"} if "admins" in input.identity.groups

decision := {"allow": true, "enforce": {"namespace": ["team-a"]}, "upstream": "tenants", "tenant": "team-a"} if "team-a" in input.identity.groups

decision := {"allow": true, "upstream": "missing"} if "team-b" in input.identity.groups
`

const namedUpstreamsConfig = `
upstreams:
  global:
    url: %s
    bearer_token_file: %s
  tenants:
    url: %s
    tenant_header: THANOS-TENANT
`

// TestNamedUpstreams runs a gateway with two named upstreams in front of the
// real Prometheus (each behind a recorder of its own): the decision picks
// the upstream, each gets its own token and tenant header, a client's
// tenant headers never arrive, and a decision naming an unknown upstream
// is a 403 with nothing forwarded.
func TestNamedUpstreams(t *testing.T) {
	global, err := newRecorder(env.promURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(global.srv.Close)
	tenants, err := newRecorder(env.promURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tenants.srv.Close)
	dir := filepath.Join(env.tmp, "named-upstreams")
	policies := filepath.Join(dir, "policies")
	if err := os.MkdirAll(policies, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(policies, "policy.rego"), []byte(namedUpstreamsPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "global-token")
	if err := os.WriteFile(token, []byte("global-querier-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gateway{name: "named-upstreams", authType: "RequireAndVerifyClientCert", upstream: env.rec.url, dir: dir}
	if g.addr, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if g.internal, err = freePort(); err != nil {
		t.Fatal(err)
	}
	g.config = filepath.Join(dir, "promgate.yml")
	g.audit = filepath.Join(dir, "audit.log")
	cfg := fmt.Sprintf(auditGatewayConfig, g.addr, g.internal, env.pki, env.rec.url, policies, g.audit, "100MiB", "deny") +
		fmt.Sprintf(namedUpstreamsConfig, global.url, token, tenants.url)
	if err := os.WriteFile(g.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	restartAuditGateway(t, g)
	t.Cleanup(func() { _ = g.proc.stop() })

	spoof := map[string][]string{"THANOS-TENANT": {"team-b"}, "X-Scope-OrgID": {"team-b"}}
	query := request{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: spoof}
	before := [3]int{env.rec.count(), global.count(), tenants.count()}

	// The admin, through the global querier, sees every namespace.
	res := newClient(t, g, env.pki, "admin").do(t, query)
	res.checkSeen(t, vectorNS, allNamespaces, "", allNamespaces)
	if fw := global.since(before[1]); len(fw) != 1 || fw[0].Header.Get("Authorization") != "Bearer global-querier-token" ||
		fw[0].Header.Get("THANOS-TENANT") != "" || fw[0].Header.Get("X-Scope-OrgID") != "" {
		t.Errorf("global querier got %+v, want one request with its token and no tenant header", fw)
	}

	// team-a, through the tenant-enforcing one, as tenant team-a only.
	res = newClient(t, g, env.pki, "team-a").do(t, query)
	res.checkSeen(t, vectorNS, []string{nsTeamA}, nsTeamA, nil)
	if fw := tenants.since(before[2]); len(fw) != 1 || !slices.Equal(fw[0].Header.Values("Thanos-Tenant"), []string{"team-a"}) ||
		fw[0].Header.Get("X-Scope-OrgID") != "" || fw[0].Header.Get("Authorization") != "" {
		t.Errorf("tenant querier got %+v, want THANOS-TENANT: team-a alone and no token", fw)
	}

	// team-b's decision names an upstream the gateway does not have.
	mid := [3]int{env.rec.count(), global.count(), tenants.count()}
	newClient(t, g, env.pki, "team-b").do(t, query).wantError(t, http.StatusForbidden, "forbidden")
	if after := [3]int{env.rec.count(), global.count(), tenants.count()}; after != mid {
		t.Errorf("forwarded for an unknown upstream: before %v, after %v", mid, after)
	}
	if n := env.rec.count() - before[0]; n != 0 {
		t.Errorf("the default upstream got %d requests; every decision named another", n)
	}
}
