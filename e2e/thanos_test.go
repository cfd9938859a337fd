//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The Thanos test (issue 21): the gateway in front of a real, multi-tenant
// Thanos: two `thanos receive` nodes in a hashring, a `thanos query` that
// enforces tenancy (the default upstream) and a global one that does not
// (the named upstream "global", for admins). The data comes in through the
// gateway's write path: a Prometheus agent per team scrapes its own target
// and remote-writes to the gateway with the team's client certificate, and
// the decision sends route write to the named upstream "receive" (the
// first receiver's remote-write address) with the team's tenant. Each agent
// also sends the other team's tenant in THANOS-TENANT and X-Scope-OrgID,
// which the gateway strips. Each team reads back only its own tenant's
// data through the gateway, whatever tenant header it sends; the admin
// sees both, and every series is in the tenant of the team that wrote it.
//
// Thanos is built from its pinned module by scripts/build-thanos.sh (make
// deps); the binary is cached in .cache/thanos/<version>.
const thanosVersion = "v0.42.4"

const thanosPolicy = `package promgate.authz

default decision := {"allow": false, "reason": "no access"}

writing if input.request.route == "write"

decision := {"allow": true, "upstream": "global"} if {
	"admins" in input.identity.groups
	not writing
}

decision := {"allow": true, "tenant": "tenant-a"} if {
	"team-a" in input.identity.groups
	not writing
}

decision := {"allow": true, "tenant": "tenant-a", "upstream": "receive"} if {
	"team-a" in input.identity.groups
	writing
}

decision := {"allow": true, "tenant": "tenant-b"} if {
	"team-b" in input.identity.groups
	not writing
}

decision := {"allow": true, "tenant": "tenant-b", "upstream": "receive"} if {
	"team-b" in input.identity.groups
	writing
}
`

const thanosGatewayConfig = `listen: %[1]s
internal_listen: %[2]s
tls:
  cert_file: %[3]s/server.crt
  key_file: %[3]s/server.key
  client_ca_file: %[3]s/ca.crt
  client_auth_type: RequireAndVerifyClientCert
upstream:
  url: %[4]s
  flavor: thanos
  tenant_header: THANOS-TENANT
upstreams:
  global:
    url: %[5]s
    flavor: thanos
  receive:
    url: %[8]s
    flavor: thanos
    tenant_header: THANOS-TENANT
write:
  routes: [write]
  upstream_path: /api/v1/receive
authz:
  policies: %[6]s
audit:
  path: %[7]s/audit.log
limits:
  requests_per_second: 1000
  burst: 1000
  max_range: 31d
  max_lookback: 31d
`

// thanosAgentConfig is a team's Prometheus agent: it scrapes the test's
// target as job thanos-<team> and writes through the gateway with the
// team's certificate, sending the other team's tenant in both tenant
// headers.
const thanosAgentConfig = `global:
  scrape_interval: 1s
scrape_configs:
  - job_name: thanos-%[1]s
    static_configs: [{targets: ['%[2]s'], labels: {team: %[1]s}}]
remote_write:
  - url: https://%[3]s/api/v1/write
    headers: {THANOS-TENANT: %[5]s, X-Scope-OrgID: %[5]s}
    tls_config: {ca_file: %[4]s/ca.crt, cert_file: %[4]s/client-%[1]s.crt, key_file: %[4]s/client-%[1]s.key}
    queue_config: {batch_send_deadline: 500ms, min_backoff: 100ms, max_backoff: 1s}
`

// thanosBinary is the Thanos built by scripts/build-thanos.sh, which make
// deps runs: the script prints the cached binary's path at once, and builds
// it first when it is missing (about 2.5 minutes of two cores).
func thanosBinary(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(env.root, "scripts", "build-thanos.sh")).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("scripts/build-thanos.sh: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("scripts/build-thanos.sh: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	bin := lines[len(lines)-1]
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("thanos %s: %v", thanosVersion, err)
	}
	return bin
}

func TestThanos(t *testing.T) {
	began := time.Now()
	bin := thanosBinary(t)
	dir := filepath.Join(env.tmp, "thanos")
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := func() string {
		a, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	type node struct{ grpc, http, write, capnp string }
	recv := []node{{port(), port(), port(), port()}, {port(), port(), port(), port()}}
	hashring := fmt.Sprintf(`[{"hashring": "default", "endpoints": [%q, %q]}]`, recv[0].grpc, recv[1].grpc)
	ringFile := filepath.Join(dir, "hashring.json")
	if err := os.WriteFile(ringFile, []byte(hashring), 0o644); err != nil {
		t.Fatal(err)
	}
	var procs []*process
	// Stopped together: each Thanos component waits out its grace
	// periods (set short below) before it exits.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, p := range procs {
			if !p.exited() {
				wg.Go(func() { _ = p.stop() })
			}
		}
		wg.Wait()
	})
	grace := []string{"--http-grace-period=1s", "--grpc-grace-period=1s"}
	for i, n := range recv {
		p, err := env.start(fmt.Sprintf("thanos-receive-%d", i), dir, bin, "receive",
			"--tsdb.path="+filepath.Join(dir, fmt.Sprintf("receive-%d", i)),
			"--grpc-address="+n.grpc, "--http-address="+n.http, "--remote-write.address="+n.write,
			"--receive.capnproto-address="+n.capnp,
			"--receive.local-endpoint="+n.grpc, "--receive.hashrings-file="+ringFile,
			"--receive.tenant-header=THANOS-TENANT", "--receive.tenant-label-name=tenant_id",
			"--receive.replication-factor=1", fmt.Sprintf(`--label=receive_replica="%d"`, i), grace[0], grace[1])
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	query := func(name string, tenancy bool) string {
		h := port()
		args := []string{"query", "--http-address=" + h, "--grpc-address=" + port(),
			"--endpoint=" + recv[0].grpc, "--endpoint=" + recv[1].grpc,
			"--query.replica-label=receive_replica", grace[0], grace[1]}
		if tenancy {
			args = append(args, "--query.tenant-header=THANOS-TENANT", "--query.enforce-tenancy", "--query.tenant-label-name=tenant_id")
		}
		p, err := env.start("thanos-"+name, dir, append([]string{bin}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
		return "http://" + h
	}
	tenantQuery, globalQuery := query("query-tenants", true), query("query-global", false)

	policies := filepath.Join(dir, "policies")
	if err := os.WriteFile(filepath.Join(policies, "policy.rego"), []byte(thanosPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &gateway{name: "thanos", authType: "RequireAndVerifyClientCert", upstream: tenantQuery, dir: dir}
	g.addr, g.internal = port(), port()
	g.config = filepath.Join(dir, "promgate.yml")
	g.audit = filepath.Join(dir, "audit.log")
	cfg := fmt.Sprintf(thanosGatewayConfig, g.addr, g.internal, env.pki, tenantQuery, globalQuery, policies, dir, "http://"+recv[0].write)
	if err := os.WriteFile(g.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := env.startGateway(g); err != nil {
		t.Fatal(err)
	}
	if err := env.waitGateway(g); err != nil {
		t.Fatal(err)
	}
	procs = append(procs, g.proc)

	// Each team's agent scrapes the same target and writes through the
	// gateway, claiming the other team's tenant in its headers.
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "# TYPE fleet_thanos_metric gauge\nfleet_thanos_metric{pod=\"p-0\"} 1\nfleet_thanos_metric{pod=\"p-1\"} 2\n")
	}))
	t.Cleanup(target.Close)
	for _, team := range []struct{ name, spoof string }{{"team-a", "tenant-b"}, {"team-b", "tenant-a"}} {
		adir := filepath.Join(dir, "agent-"+team.name)
		if err := os.MkdirAll(adir, 0o755); err != nil {
			t.Fatal(err)
		}
		acfg := fmt.Sprintf(thanosAgentConfig, team.name, strings.TrimPrefix(target.URL, "http://"), g.addr, env.pki, team.spoof)
		if err := os.WriteFile(filepath.Join(adir, "agent.yml"), []byte(acfg), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := env.start("prometheus-agent-thanos-"+team.name, adir, "prometheus", "--enable-feature=agent",
			"--config.file=agent.yml", "--storage.agent.path=data", "--web.listen-address="+port(), "--log.level=warn")
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}

	// tenantsOf asks req as c and returns the tenants in the answer.
	tenantsOf := func(c *client, req request) ([]string, error) {
		res, err := c.try(req)
		if err != nil {
			return nil, err
		}
		if res.status != http.StatusOK {
			return nil, fmt.Errorf("%d %.200s", res.status, res.body)
		}
		var body struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(res.body, &body); err != nil {
			return nil, err
		}
		return teamsIn(body.Data), nil
	}
	teams := func(c *client, req request) []string {
		t.Helper()
		got, err := tenantsOf(c, req)
		if err != nil {
			t.Fatalf("%s: %v", req, err)
		}
		return got
	}
	instant := func(extra url.Values) request {
		q := url.Values{"query": {"fleet_thanos_metric"}}
		for k, v := range extra {
			q[k] = v
		}
		return request{path: "/api/v1/query", query: q}
	}
	admin := newClient(t, g, env.pki, "admin")
	teamA, teamB := newClient(t, g, env.pki, "team-a"), newClient(t, g, env.pki, "team-b")
	// The agents' first writes land, and both queriers find the
	// receivers' stores, within a few seconds. Until then the queriers may
	// answer with an error, which is not yet a failure.
	waiting := func(c *client) string {
		got, err := tenantsOf(c, instant(nil))
		if err != nil {
			return err.Error()
		}
		return strings.Join(got, ",")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		a, ta, tb := waiting(admin), waiting(teamA), waiting(teamB)
		if a == "tenant-a,tenant-b" && ta != "" && tb != "" && !strings.Contains(ta+tb, " ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway does not answer for both tenants after 60 s: admin %q, team-a %q, team-b %q", a, ta, tb)
		}
		time.Sleep(500 * time.Millisecond)
	}
	now := time.Now()
	rng := url.Values{"query": {"fleet_thanos_metric"}, "start": {strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10)},
		"end": {strconv.FormatInt(now.Add(time.Minute).Unix(), 10)}, "step": {"30"}}
	match := url.Values{"match[]": {"fleet_thanos_metric"}}
	spoof := map[string][]string{"THANOS-TENANT": {"tenant-b"}, "X-Scope-OrgID": {"tenant-b"}}
	for _, tc := range []struct {
		user, want string
	}{{"team-a", "tenant-a"}, {"team-b", "tenant-b"}} {
		c := newClient(t, g, env.pki, tc.user)
		for _, req := range []request{
			instant(nil),
			instant(url.Values{"dedup": {"true"}, "partial_response": {"false"}, "replicaLabels[]": {"receive_replica"}}),
			{path: "/api/v1/query_range", query: rng},
			{path: "/api/v1/series", query: match},
			{path: "/api/v1/label/tenant_id/values"},
			{path: "/api/v1/query", query: url.Values{"query": {"fleet_thanos_metric"}}, header: spoof},
		} {
			if got := teams(c, req); !slices.Equal(got, []string{tc.want}) {
				t.Errorf("%s %s: tenants %v, want only %s", tc.user, req, got, tc.want)
			}
		}
		res := c.do(t, request{path: "/api/v1/labels"})
		if res.status != http.StatusOK {
			t.Errorf("%s labels: %s", tc.user, res)
		}
		// Thanos Query serves no /federate: its 404 passes through as the
		// upstream's answer, carrying nothing of either tenant.
		res = c.do(t, request{path: "/federate", query: match})
		if res.status != http.StatusNotFound || bytes.Contains(res.body, []byte("tenant")) {
			t.Errorf("%s federate: %d %s, want Thanos Query's 404", tc.user, res.status, res.body)
		}
	}
	if got := teams(admin, request{path: "/api/v1/label/tenant_id/values"}); !slices.Equal(got, []string{"tenant-a", "tenant-b"}) {
		t.Errorf("admin tenant_id values %v, want both", got)
	}
	// Every series is in the tenant of the team whose agent wrote it,
	// although each agent claimed the other tenant in its headers.
	res := admin.do(t, request{path: "/api/v1/series", query: url.Values{"match[]": {`{job=~"thanos-team-.*"}`}}})
	var written struct {
		Data []map[string]string `json:"data"`
	}
	if err := json.Unmarshal(res.body, &written); res.status != http.StatusOK || err != nil {
		t.Fatalf("admin series: %s %v", res, err)
	}
	perTenant := map[string]int{}
	for _, s := range written.Data {
		perTenant[s["tenant_id"]]++
		if want := "tenant-" + strings.TrimPrefix(s["team"], "team-"); s["tenant_id"] != want {
			t.Errorf("series %v written by %s's agent is in tenant %q, want %q", s, s["team"], s["tenant_id"], want)
		}
	}
	if perTenant["tenant-a"] == 0 || perTenant["tenant-b"] == 0 {
		t.Errorf("series written through the gateway per tenant: %v, want both", perTenant)
	}
	t.Logf("series written through the gateway by the agents, per tenant: %v", perTenant)
	t.Logf("thanos e2e took %v", time.Since(began).Round(time.Millisecond))
}

// teamsIn returns the sorted distinct tenant_id values in an API answer's
// data: a vector or matrix, a series list, or a list of label values.
func teamsIn(data json.RawMessage) []string {
	seen := map[string]bool{}
	var res struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
		} `json:"result"`
	}
	var list []map[string]string
	var values []string
	switch {
	case json.Unmarshal(data, &res) == nil && res.Result != nil:
		for _, r := range res.Result {
			seen[r.Metric["tenant_id"]] = true
		}
	case json.Unmarshal(data, &list) == nil:
		for _, m := range list {
			seen[m["tenant_id"]] = true
		}
	case json.Unmarshal(data, &values) == nil:
		for _, v := range values {
			seen[v] = true
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
