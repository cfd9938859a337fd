//go:build e2e && thanos

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// The Thanos test (issue 21): the gateway in front of a real, multi-tenant
// Thanos: two `thanos receive` nodes in a hashring, a `thanos query` that
// enforces tenancy (the default upstream) and a global one that does not
// (the named upstream "global", for admins). Each team reads back only its
// own tenant's data through the gateway, whatever tenant header it sends;
// the admin sees both. The write path is another issue's, so the test data
// is written to a receiver directly, with its tenant header.
//
// Thanos is built from its module by scripts/build-thanos.sh (make deps);
// the binary is cached in .cache/thanos/<version>.
const thanosVersion = "v0.42.4"

const thanosPolicy = `package promgate.authz

default decision := {"allow": false, "reason": "no access"}

decision := {"allow": true, "upstream": "global"} if "admins" in input.identity.groups

decision := {"allow": true, "tenant": "tenant-a"} if "team-a" in input.identity.groups

decision := {"allow": true, "tenant": "tenant-b"} if "team-b" in input.identity.groups
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

func thanosBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(env.root, ".cache", "thanos", thanosVersion, "thanos")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("thanos %s is not built: run scripts/build-thanos.sh (make deps runs it): %v", thanosVersion, err)
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
	t.Cleanup(func() {
		for _, p := range procs {
			if !p.exited() {
				_ = p.stop()
			}
		}
	})
	for i, n := range recv {
		p, err := env.start(fmt.Sprintf("thanos-receive-%d", i), dir, bin, "receive",
			"--tsdb.path="+filepath.Join(dir, fmt.Sprintf("receive-%d", i)),
			"--grpc-address="+n.grpc, "--http-address="+n.http, "--remote-write.address="+n.write,
			"--receive.capnproto-address="+n.capnp,
			"--receive.local-endpoint="+n.grpc, "--receive.hashrings-file="+ringFile,
			"--receive.tenant-header=THANOS-TENANT", "--receive.tenant-label-name=tenant_id",
			"--receive.replication-factor=1", fmt.Sprintf(`--label=receive_replica="%d"`, i))
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	query := func(name string, tenancy bool) string {
		h := port()
		args := []string{"query", "--http-address=" + h, "--grpc-address=" + port(),
			"--endpoint=" + recv[0].grpc, "--endpoint=" + recv[1].grpc,
			"--query.replica-label=receive_replica"}
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

	// Receivers answer writes once the hashring is loaded.
	series := func(team string) []map[string]string {
		return []map[string]string{
			{"__name__": "fleet_thanos_metric", "team": team, "pod": team + "-0"},
			{"__name__": "fleet_thanos_metric", "team": team, "pod": team + "-1"},
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := true
		for _, tenant := range []string{"tenant-a", "tenant-b"} {
			if err := tryRemoteWrite("http://"+recv[0].write, tenant, series(tenant)); err != nil {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("thanos receive did not accept writes within 60 s")
		}
		time.Sleep(500 * time.Millisecond)
	}

	policies := filepath.Join(dir, "policies")
	if err := os.WriteFile(filepath.Join(policies, "policy.rego"), []byte(thanosPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &gateway{name: "thanos", authType: "RequireAndVerifyClientCert", upstream: tenantQuery, dir: dir}
	g.addr, g.internal = port(), port()
	g.config = filepath.Join(dir, "promgate.yml")
	g.audit = filepath.Join(dir, "audit.log")
	cfg := fmt.Sprintf(thanosGatewayConfig, g.addr, g.internal, env.pki, tenantQuery, globalQuery, policies, dir)
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

	teams := func(c *client, req request) []string {
		t.Helper()
		res := c.do(t, req)
		if res.status != http.StatusOK {
			t.Fatalf("%s: %s", req, res)
		}
		var body struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(res.body, &body); err != nil {
			t.Fatalf("%s: %v", req, err)
		}
		return teamsIn(body.Data)
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
	// Both queriers find the receivers' stores within a few seconds.
	deadline = time.Now().Add(60 * time.Second)
	for !slices.Equal(teams(admin, instant(nil)), []string{"tenant-a", "tenant-b"}) ||
		len(teams(teamA, instant(nil))) == 0 || len(teams(teamB, instant(nil))) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the queriers do not answer for both tenants after 60 s: admin %v, team-a %v, team-b %v",
				teams(admin, instant(nil)), teams(teamA, instant(nil)), teams(teamB, instant(nil)))
		}
		time.Sleep(time.Second)
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
	t.Logf("thanos e2e took %v", time.Since(began).Round(time.Millisecond))
}

func tryRemoteWrite(receiveURL, tenant string, series []map[string]string) error {
	now := time.Now().UnixMilli()
	var wr prompb.WriteRequest
	for _, s := range series {
		var ls []prompb.Label
		for k, v := range s {
			ls = append(ls, prompb.Label{Name: k, Value: v})
		}
		sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: 1, Timestamp: now}}})
	}
	raw, err := wr.Marshal()
	if err != nil {
		return err
	}
	req, _ := http.NewRequest(http.MethodPost, receiveURL+"/api/v1/receive", bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("THANOS-TENANT", tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s", resp.Status, b)
	}
	return nil
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
