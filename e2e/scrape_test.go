//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The exporter sidecar end to end: a real node_exporter (Debian
// prometheus-node-exporter) and a test exporter serving two teams' series
// behind a gateway with upstream.kind metrics, scraped by a real Prometheus
// with client certificates and with OAuth2 client credentials from the real
// OpenID provider of the OIDC test.

const scrapeBudget = 30 * time.Second // until every scrape job has run twice

// scrapeGatewayConfig is the sidecar: node_exporter at /metrics, the test
// exporter at /teams/metrics, certificates optional so that OAuth2 bearer
// tokens work too.
const scrapeGatewayConfig = `listen: %[1]s
internal_listen: %[2]s
tls:
  cert_file: %[3]s/server.crt
  key_file: %[3]s/server.key
  client_ca_file: %[3]s/ca.crt
  client_auth_type: VerifyClientCertIfGiven
upstream:
  kind: metrics
  url: http://%[4]s/metrics
  exporters:
    - path: /teams/metrics
      url: %[5]s/metrics
authn:
  mtls:
    subject: cn
    groups: ou
  oidc:
    - issuer: %[6]s
      audiences: [%[7]s]
      required_scopes: [metrics:read]
authz:
  policies: policies
audit:
  path: audit.log
limits:
  requests_per_second: 1000
  burst: 1000
  query_timeout: 20s
detectors:
  enabled: false
`

// scrapeData is the default policy's data for the sidecar: the scrapers
// group (Prometheus' certificate) and the provider's scraper-b client
// (group team-b) scrape unrestricted; team-a may scrape, filtered to its
// namespaces.
const scrapeData = `{"promgate": {
  "admin_groups": ["admins"],
  "scrape_groups": ["scrapers", "team-b"],
  "filtered_scrape_groups": ["team-a"],
  "group_namespaces": {"team-a": ["team-a", "team-a-staging"], "team-b": ["team-b"], "team-x": ["team-x"]}
}}`

// teamsExposition is what the test exporter serves: both teams' series, a
// histogram per team, and a series without a namespace.
const teamsExposition = `# HELP e2e_team_requests_total Requests per team.
# TYPE e2e_team_requests_total counter
e2e_team_requests_total{namespace="team-a",code="200"} 10
e2e_team_requests_total{namespace="team-a-staging",code="200"} 11
e2e_team_requests_total{namespace="team-b",code="200"} 20
e2e_team_requests_total{code="500"} 1
# HELP e2e_team_latency_seconds Latency per team.
# TYPE e2e_team_latency_seconds histogram
e2e_team_latency_seconds_bucket{namespace="team-b",le="1"} 1
e2e_team_latency_seconds_bucket{namespace="team-b",le="+Inf"} 2
e2e_team_latency_seconds_sum{namespace="team-b"} 3
e2e_team_latency_seconds_count{namespace="team-b"} 2
e2e_team_latency_seconds_bucket{namespace="team-a",le="1"} 4
e2e_team_latency_seconds_bucket{namespace="team-a",le="+Inf"} 5
e2e_team_latency_seconds_sum{namespace="team-a"} 6
e2e_team_latency_seconds_count{namespace="team-a"} 5
`

// scrapePromConfig has one job per way of scraping the sidecar.
const scrapePromConfig = `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: node-mtls
    scheme: https
    static_configs: [{targets: ['%[1]s']}]
    tls_config: {ca_file: %[2]s/ca.crt, cert_file: %[2]s/client-prometheus.crt, key_file: %[2]s/client-prometheus.key}
  - job_name: node-no-cert
    scheme: https
    static_configs: [{targets: ['%[1]s']}]
    tls_config: {ca_file: %[2]s/ca.crt}
  - job_name: node-foreign-ca
    scheme: https
    static_configs: [{targets: ['%[1]s']}]
    tls_config: {ca_file: %[2]s/ca.crt, cert_file: %[3]s/client-admin.crt, key_file: %[3]s/client-admin.key}
  - job_name: node-not-allowed
    scheme: https
    static_configs: [{targets: ['%[1]s']}]
    tls_config: {ca_file: %[2]s/ca.crt, cert_file: %[2]s/client-nobody.crt, key_file: %[2]s/client-nobody.key}
  - job_name: node-team-member
    scheme: https
    static_configs: [{targets: ['%[1]s']}]
    tls_config: {ca_file: %[2]s/ca.crt, cert_file: %[2]s/client-team-b-member.crt, key_file: %[2]s/client-team-b-member.key}
  - job_name: teams-mtls-team-a
    scheme: https
    metrics_path: /teams/metrics
    static_configs: [{targets: ['%[1]s']}]
    tls_config: {ca_file: %[2]s/ca.crt, cert_file: %[2]s/client-team-a.crt, key_file: %[2]s/client-team-a.key}
  - job_name: node-oauth2
    scheme: https
    static_configs: [{targets: ['%[1]s']}]
    tls_config: {ca_file: %[2]s/ca.crt}
    oauth2:
      client_id: scraper-b
      client_secret: scraper-b-secret
      token_url: %[4]s/token
      scopes: [metrics:read]
  - job_name: teams-oauth2-team-a
    scheme: https
    metrics_path: /teams/metrics
    static_configs: [{targets: ['%[1]s']}]
    tls_config: {ca_file: %[2]s/ca.crt}
    oauth2:
      client_id: scraper-a
      client_secret: scraper-a-secret
      token_url: %[4]s/token
      scopes: [metrics:read]
`

func TestScrape(t *testing.T) {
	start := time.Now()
	for _, c := range []string{"prometheus-node-exporter", "node"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found in PATH: run scripts/install-deps.sh", c)
		}
	}
	dir := filepath.Join(env.tmp, "scrape")
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Its own PKI: prometheus (group scrapers), a team-a member, a member
	// of team-x (a team the data does not let scrape), and nobody.
	if out, err := env.promgate("certs", "dev", "--out", pki, "--client", "prometheus:scrapers",
		"--client", "team-a:team-a", "--client", "team-b-member:team-x", "--client", "nobody:nobody"); err != nil {
		t.Fatalf("promgate certs dev: %v\n%s", err, out)
	}
	policy, err := os.ReadFile(filepath.Join(env.root, "policies", "policy.rego"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"policies/policy.rego": string(policy), "policies/data.json": scrapeData} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The exporters: node_exporter on a free loopback port, and the test
	// exporter of both teams.
	nodeAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ne, err := env.start("node-exporter", dir, "prometheus-node-exporter", "--web.listen-address="+nodeAddr,
		"--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.loadavg", "--collector.time")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ne.stop() })
	waitScrapeExporter(t, "http://"+nodeAddr+"/metrics", ne)
	teams := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte(teamsExposition))
	}))
	t.Cleanup(teams.Close)

	// The provider, then the gateway.
	o := &oidcStack{dir: dir, idpDir: filepath.Join(env.root, "scripts", "idp")}
	if o.idpAddr, err = freePort(); err != nil {
		t.Fatal(err)
	}
	o.issuer = "http://" + o.idpAddr
	g := &gateway{name: "scrape", authType: "VerifyClientCertIfGiven", upstream: "http://" + nodeAddr + "/metrics"}
	if g.addr, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if g.internal, err = freePort(); err != nil {
		t.Fatal(err)
	}
	g.dir = dir
	g.config = filepath.Join(dir, "promgate.yml")
	g.audit = filepath.Join(dir, "audit.log")
	o.gw = g
	o.newKey(t)
	o.startIdP(t)
	cfg := fmt.Sprintf(scrapeGatewayConfig, g.addr, g.internal, pki, nodeAddr, teams.URL, o.issuer, oidcAudience)
	if err := os.WriteFile(g.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := env.promgate("check", "--config", g.config); err != nil {
		t.Fatalf("promgate check: %v\n%s", err, out)
	}
	if err := env.startGateway(g); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !g.proc.exited() {
			_ = g.proc.stop()
		}
	})
	if err := env.waitGateway(g); err != nil {
		t.Fatal(err)
	}
	o.waitIssuerUp(t, oidcBudget)

	t.Run("anonymous probe answers nothing", func(t *testing.T) {
		hc := &http.Client{Timeout: requestBudget, Transport: &http.Transport{TLSClientConfig: clientTLS(t, pki, "", "")}}
		for _, path := range []string{"/metrics", "/teams/metrics", "/-/healthy", "/api/v1/query?query=up"} {
			resp, err := hc.Get("https://" + g.addr + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := readAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || bytes.Contains(b, []byte("e2e_team")) || bytes.Contains(b, []byte("node_")) {
				t.Errorf("anonymous GET %s: %d %s", path, resp.StatusCode, b)
			}
		}
		resp, err := http.Get("http://" + g.internal + "/-/healthy")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("internal /-/healthy: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
	})

	// A Prometheus of its own: the shared one's series are what the other
	// tests count.
	promAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	promDir := filepath.Join(dir, "prometheus")
	if err := os.MkdirAll(promDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(promDir, "prometheus.yml"),
		fmt.Appendf(nil, scrapePromConfig, g.addr, pki, env.foreign, o.issuer), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := env.start("prometheus-scrape", promDir, "prometheus", "--config.file=prometheus.yml",
		"--storage.tsdb.path=data", "--web.listen-address="+promAddr, "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.stop() })
	promURL := "http://" + promAddr

	wantUp := map[string]string{
		"node-mtls": "1", "node-no-cert": "0", "node-foreign-ca": "0", "node-not-allowed": "0",
		"node-team-member": "0", "teams-mtls-team-a": "1", "node-oauth2": "1", "teams-oauth2-team-a": "1",
	}
	up := waitScrapes(t, promURL, len(wantUp))
	t.Run("up per job", func(t *testing.T) {
		for job, want := range wantUp {
			if up[job] != want {
				t.Errorf("up{job=%q} = %q, want %s (last error: %s)", job, up[job], want, targetError(promURL, job))
			}
		}
	})

	t.Run("node_exporter series through mTLS and OAuth2", func(t *testing.T) {
		for _, job := range []string{"node-mtls", "node-oauth2"} {
			vec, err := promVector(promURL, fmt.Sprintf(`node_cpu_seconds_total{job=%q}`, job))
			if err != nil || len(vec) == 0 {
				t.Errorf("no node_cpu_seconds_total from job %s: %v", job, err)
			}
		}
	})

	t.Run("filtered scrape stores only team-a series", func(t *testing.T) {
		for _, job := range []string{"teams-mtls-team-a", "teams-oauth2-team-a"} {
			vec, err := promVector(promURL, fmt.Sprintf(`{job=%q,__name__=~"e2e_team_.*"}`, job))
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			names := map[string]bool{}
			for _, m := range vec {
				seen[m["namespace"]] = true
				names[m["__name__"]] = true
			}
			if !seen[nsTeamA] || !seen[nsTeamAStage] || len(seen) != 2 {
				t.Errorf("job %s stored namespaces %v, want exactly team-a and team-a-staging", job, keys(seen))
			}
			// The team's histogram arrived whole.
			for _, n := range []string{"e2e_team_latency_seconds_bucket", "e2e_team_latency_seconds_sum", "e2e_team_latency_seconds_count", "e2e_team_requests_total"} {
				if !names[n] {
					t.Errorf("job %s stored no %s", job, n)
				}
			}
		}
		vec, err := promVector(promURL, `{namespace="team-b"}`)
		if err != nil || len(vec) != 0 {
			t.Errorf("team-b series stored: %v (%v)", vec, err)
		}
	})

	t.Run("foreign CA refused in the handshake", func(t *testing.T) {
		// Under TLS 1.3 the client sends its certificate after the server's
		// Finished and may already be writing its request when the refusal
		// arrives, so Prometheus sees either the alert or a reset; the
		// gateway's log below shows that the handshake was what failed.
		e := strings.ToLower(targetError(promURL, "node-foreign-ca"))
		if !strings.Contains(e, "certificate") && !strings.Contains(e, "tls") &&
			!strings.Contains(e, "connection reset by peer") && !strings.Contains(e, "broken pipe") {
			t.Errorf("node-foreign-ca last error %q, want a TLS certificate failure or the reset that follows one", e)
		}
		logs, _ := os.ReadFile(g.proc.stderr)
		if !bytes.Contains(logs, []byte("handshake")) {
			t.Errorf("the gateway's log does not record the refused handshake")
		}
	})

	if err := g.proc.stop(); err != nil {
		t.Errorf("gateway stop: %v", err)
	}
	t.Run("audit shows why", func(t *testing.T) {
		b, err := os.ReadFile(g.audit)
		if err != nil {
			t.Fatal(err)
		}
		type rec struct {
			auditRecord
			Error string `json:"error"`
		}
		var noCert, denied, teamMember, filtered, allowed, oidc int
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var r rec
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("audit line %q: %v", line, err)
			}
			if r.Path != "/metrics" && r.Path != "/teams/metrics" {
				continue
			}
			switch {
			case r.Status == http.StatusUnauthorized && r.Identity == nil && strings.Contains(r.Error, "authentication required"):
				noCert++
			case r.Status == http.StatusForbidden && r.Identity != nil && r.Identity.Subject == "nobody":
				if r.Route != "scrape" || r.Decision == nil || r.Decision.Allow || !strings.Contains(r.Decision.Reason, "may not scrape") {
					t.Errorf("denied scrape record: %s", line)
				}
				denied++
			case r.Status == http.StatusForbidden && r.Identity != nil && r.Identity.Subject == "team-b-member":
				teamMember++
			case r.Status == http.StatusOK && r.Route == "scrape" && r.Path == "/teams/metrics":
				if len(r.EnforcedQuery) == 0 || !strings.Contains(r.EnforcedQuery[0], "team-a") {
					t.Errorf("filtered scrape without its confinement: %s", line)
				}
				filtered++
			case r.Status == http.StatusOK && r.Route == "scrape":
				allowed++
			}
			if r.Identity != nil && r.Identity.Method == "oidc" && r.Status == http.StatusOK {
				oidc++
			}
		}
		if noCert == 0 || denied == 0 || teamMember == 0 || filtered == 0 || allowed == 0 || oidc == 0 {
			t.Errorf("audit: %d no-certificate 401s, %d nobody 403s, %d team-member 403s, %d filtered, %d unrestricted, %d oidc scrapes; want each > 0",
				noCert, denied, teamMember, filtered, allowed, oidc)
		}
		for _, needle := range []string{"eyJ", "scraper-b-secret", "PRIVATE KEY", nodeAddr, strings.TrimPrefix(teams.URL, "http://")} {
			if bytes.Contains(b, []byte(needle)) {
				t.Errorf("audit log contains %q", needle)
			}
		}
	})
	t.Logf("scrape e2e took %v", time.Since(start).Round(time.Millisecond))
}

// waitScrapeExporter waits for a 200 from u.
func waitScrapeExporter(t *testing.T, u string, p *process) {
	t.Helper()
	deadline := time.Now().Add(startBudget)
	for {
		if p.exited() {
			b, _ := os.ReadFile(p.stderr)
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, b)
		}
		resp, err := http.Get(u) //nolint:gosec // G107: the URL of a server this test started on loopback
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not answering after %v", u, startBudget)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitScrapes waits until every job has been scraped at least twice and
// returns the latest up value per job.
func waitScrapes(t *testing.T, promURL string, jobs int) map[string]string {
	t.Helper()
	deadline := time.Now().Add(scrapeBudget)
	for {
		vec, err := promQueryValues(promURL, `count_over_time(up[1m]) >= 2`)
		if err == nil && len(vec) >= jobs {
			up, err := promQueryValues(promURL, `up`)
			if err == nil {
				return up
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus scraped %d of %d jobs twice after %v (%v)", len(vec), jobs, scrapeBudget, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// promQueryValues runs an instant query and maps each series' job to its
// value.
func promQueryValues(base, query string) (map[string]string, error) {
	resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {query}}.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body apiResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	var vec []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	if err := json.Unmarshal(body.Data.Result, &vec); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range vec {
		out[s.Metric["job"]] = fmt.Sprint(s.Value[1])
	}
	return out, nil
}

// targetError returns the last scrape error Prometheus reports for job.
func targetError(base, job string) string {
	resp, err := http.Get(base + "/api/v1/targets?state=active")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			ActiveTargets []struct {
				ScrapePool string `json:"scrapePool"`
				LastError  string `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return err.Error()
	}
	for _, tg := range body.Data.ActiveTargets {
		if tg.ScrapePool == job {
			return tg.LastError
		}
	}
	return "(no target " + job + ")"
}
