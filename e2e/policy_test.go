//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// policyRego is a policy whose whole decision comes from data, so that the
// test can change it by rewriting data.json and reloading.
const policyRego = `package promgate.authz

default decision := {"allow": false, "reason": "no rule"}

decision := d if {
	some g in input.identity.groups
	d := data.decisions[g]
}
`

// startPolicyGateway starts a gateway of the test's own with a policy folder
// holding policyRego and the given decisions, and extra config lines.
func startPolicyGateway(t *testing.T, name, upstream string, decisions map[string]any, extra string) (*gateway, string) {
	t.Helper()
	return startPolicyGatewayEdited(t, name, upstream, decisions, extra, nil)
}

// startPolicyGatewayEdited is startPolicyGateway with edit applied to the
// configuration text, when not nil.
func startPolicyGatewayEdited(t *testing.T, name, upstream string, decisions map[string]any, extra string, edit func(string) string) (*gateway, string) {
	t.Helper()
	g := &gateway{name: name, authType: "RequireAndVerifyClientCert", upstream: upstream}
	if err := env.writeGateway(g); err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(g.dir, "policy")
	if err := os.MkdirAll(pol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pol, "policy.rego"), []byte(policyRego), 0o644); err != nil {
		t.Fatal(err)
	}
	writeDecisions(t, pol, decisions)
	cfg, err := os.ReadFile(g.config)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(cfg), "  policies: "+filepath.Join(env.root, "policies"), "  policies: "+pol, 1)
	text = strings.Replace(text, "upstream:\n", "upstream:\n"+extra, 1)
	if edit != nil {
		text = edit(text)
	}
	if err := os.WriteFile(g.config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := env.startGateway(g); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.proc.stop() })
	if err := env.waitGateway(g); err != nil {
		t.Fatal(err)
	}
	return g, pol
}

func writeDecisions(t *testing.T, dir string, decisions map[string]any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"decisions": decisions})
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".data.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "data.json")); err != nil {
		t.Fatal(err)
	}
}

// seriesLabel returns the values of label over a vector result.
func seriesLabel(t *testing.T, body []byte, label string) []string {
	t.Helper()
	var env struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status != "success" {
		t.Fatalf("not a success vector: %s", body)
	}
	set := map[string]bool{}
	for _, r := range env.Data.Result {
		set[r.Metric[label]] = true
	}
	var out []string
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// TestPolicyDepth checks several enforced labels (ANDed), a decision matcher
// and the tenant header through the real stack, against an upstream that
// records headers.
func TestPolicyDepth(t *testing.T) {
	// Its own recorder: this gateway sends a tenant header on purpose, which
	// the shared recorder's checks forbid.
	rec, err := newRecorder(env.promURL)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.srv.Close()
	g, _ := startPolicyGateway(t, "policy-depth", rec.url, map[string]any{
		"team-a": map[string]any{
			"allow":    true,
			"reason":   "team-a, two labels",
			"enforce":  map[string]any{"namespace": []string{"team-a", "team-b"}, "job": []string{"team-a"}},
			"matchers": []string{`{__name__!~"prometheus_tsdb_.*"}`},
			"tenant":   "tenant-a",
		},
	}, "  tenant_header: X-Scope-OrgID\n")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfigFor(t, "team-a")}, Timeout: requestBudget}
	get := func(query string, hdr map[string]string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "https://"+g.addr+"/api/v1/query?"+url.Values{"query": {query}}.Encode(), nil)
		for k, v := range hdr {
			req.Header[k] = []string{v}
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := readAll(resp.Body)
		return resp.StatusCode, b
	}

	before := rec.count()
	code, body := get("up", map[string]string{"X-Scope-OrgID": "tenant-b", "X_Scope_OrgID": "tenant-b"})
	if code != 200 {
		t.Fatalf("up: %d %s", code, body)
	}
	if got := seriesLabel(t, body, "job"); strings.Join(got, ",") != "team-a" {
		t.Errorf("jobs %v, want only team-a (namespace team-b is allowed, job team-b is not)", got)
	}
	fwd := rec.since(before)
	if len(fwd) != 1 {
		t.Fatalf("%d upstream requests, want 1", len(fwd))
	}
	if got := fwd[0].Header.Values("X-Scope-Orgid"); len(got) != 1 || got[0] != "tenant-a" {
		t.Errorf("upstream X-Scope-OrgID = %q, want exactly the decision's tenant-a", got)
	}
	if v := fwd[0].Header.Values("X_scope_orgid"); len(v) > 0 {
		t.Errorf("the client's look-alike tenant header reached the upstream: %q", v)
	}

	// A caller's matcher on either label is intersected: job team-b is outside.
	if code, body := get(`up{job="team-b"}`, nil); code != http.StatusForbidden {
		t.Errorf("up{job=\"team-b\"}: %d %s, want 403", code, body)
	}
	// The decision matcher hides the TSDB metrics, whatever the caller asks.
	code, body = get(`{__name__=~"prometheus_tsdb_head_series|up"}`, nil)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if got := seriesLabel(t, body, "__name__"); strings.Join(got, ",") != "up" {
		t.Errorf("metric names %v, want only up", got)
	}
	if code, body := get(`prometheus_tsdb_head_series`, nil); code != http.StatusForbidden {
		t.Errorf("prometheus_tsdb_head_series: %d %s, want 403", code, body)
	}
}

// TestPolicyHotReloadUnderLoad reloads the policy (SIGHUP) while clients
// query, and checks that no request fails and that every answer reflects
// exactly one policy revision: team-a's series before, team-b's after, never
// a mix.
func TestPolicyHotReloadUnderLoad(t *testing.T) {
	decide := func(ns string) map[string]any {
		return map[string]any{"team-a": map[string]any{"allow": true, "reason": "to " + ns, "enforce": map[string]any{"namespace": []string{ns}}}}
	}
	// The four clients repeat one query, so with coalescing (on by default)
	// they share upstream answers and outrun the stack's per-identity rate
	// limit of 1,000/s: lift it, the reload is what is tested. A request
	// never joins a flight of the other revision, since the enforced query
	// differs.
	g, pol := startPolicyGatewayEdited(t, "policy-reload", env.rec.url, decide(nsTeamA), "", func(cfg string) string {
		return strings.Replace(cfg, "  requests_per_second: 1000\n  burst: 1000\n", "  requests_per_second: 0\n", 1)
	})
	if cfg, err := os.ReadFile(g.config); err != nil || !strings.Contains(string(cfg), "requests_per_second: 0\n") {
		t.Fatalf("the rate limit of the reload gateway was not lifted (%v)", err)
	}
	c := newClient(t, g, env.pki, "team-a")

	var mu sync.Mutex
	seen := map[string]int{}
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := c.try(request{path: "/api/v1/query", query: url.Values{"query": {"count by (namespace) (up)"}}})
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case res.status != 200:
					failures = append(failures, res.String())
				default:
					var ns []string
					func() {
						defer func() { _ = recover() }()
						ns = seriesLabel(t, res.body, "namespace")
					}()
					seen[strings.Join(ns, ",")]++
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	writeDecisions(t, pol, decide(nsTeamB))
	if err := g.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := seen[nsTeamB]
		mu.Unlock()
		if n > 20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	if len(failures) > 0 {
		t.Errorf("%d requests failed during the reload, first: %s", len(failures), failures[0])
	}
	for k, n := range seen {
		if k != nsTeamA && k != nsTeamB {
			t.Errorf("%d answers saw namespaces %q: a mixed or empty state", n, k)
		}
	}
	if seen[nsTeamA] == 0 || seen[nsTeamB] == 0 {
		t.Errorf("answers per namespace %v: want both the old and the new policy seen", seen)
	}
	t.Logf("hot reload under load: answers per namespace %v, %d failures", seen, len(failures))
}
