//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The remote write and read end-to-end test runs real Prometheus 2.42
// processes only, around one gateway with write.routes [write, read]:
//
//   - a receiver, Prometheus with --web.enable-remote-write-receiver, which
//     also scrapes the test's target itself as namespace team-a and team-b,
//     so that remote read has both to confine;
//   - four Prometheus agents (--enable-feature=agent), each scraping the
//     same target three times, relabelled namespace="team-a",
//     namespace="team-b" and without namespace, and writing through the
//     gateway: three with team-a client certificates whose policy decision
//     names the write mode (inject, reject, drop), one with OAuth2 client
//     credentials from the real IdP (scripts/idp, client scraper-a of group
//     team-a) under the configuration's mode, drop;
//   - a Prometheus whose remote_read points at the gateway as team-a.
//
// The policy is the test's own: team-a may write and read namespace team-a
// only, and data.e2e.write_modes gives each writer certificate its mode.

const (
	writeBudget = 40 * time.Second // until every agent's team-a series reached the receiver

	// writePolicy allows group team-a, confined to namespace team-a, with the
	// write mode data names for its subject, if any.
	writePolicy = `package promgate.authz

default decision := {"allow": false, "reason": "denied: only team-a may use this gateway"}

decision := object.union(
	{"allow": true, "reason": "team-a writer", "enforce": {"namespace": ["team-a"]}},
	mode_of(input.identity.subject),
) if {
	input.identity.authenticated == true
	"team-a" in input.identity.groups
}

mode_of(s) := {"write_mode": m} if {
	m := data.e2e.write_modes[s]
} else := {}
`
	writeData = `{"e2e": {"write_modes": {"writer-inject": "inject", "writer-reject": "reject", "writer-drop": "drop"}}}`

	writeGatewayConfig = `listen: %[1]s
internal_listen: %[2]s
tls:
  cert_file: %[3]s/server.crt
  key_file: %[3]s/server.key
  client_ca_file: %[3]s/ca.crt
  client_auth_type: VerifyClientCertIfGiven
upstream:
  url: %[4]s
authn:
  oidc:
    - issuer: %[5]s
      audiences: [%[6]s]
      required_scopes: [metrics:read]
authz:
  policies: %[7]s
audit:
  path: audit.log
limits:
  requests_per_second: 1000
  burst: 1000
write:
  routes: [write, read]
  mode: drop
`

	// receiverConfig scrapes the target as team-a and team-b itself.
	receiverConfig = `global:
  scrape_interval: 1s
scrape_configs:
  - job_name: recv-team-a
    static_configs: [{targets: ['%[1]s'], labels: {namespace: team-a, source: receiver}}]
  - job_name: recv-team-b
    static_configs: [{targets: ['%[1]s'], labels: {namespace: team-b, source: receiver}}]
`

	// agentConfig is one agent: the target scraped three times, relabelled
	// into namespace team-a, team-b and none, and remote write through the
	// gateway with %[3]s as its credentials and %[4]s as its queue.
	agentConfig = `global:
  scrape_interval: 1s
  external_labels: {agent: %[1]s}
scrape_configs:
  - job_name: team-a
    static_configs: [{targets: ['%[2]s']}]
    relabel_configs: [{target_label: namespace, replacement: team-a}]
  - job_name: team-b
    static_configs: [{targets: ['%[2]s']}]
    relabel_configs: [{target_label: namespace, replacement: team-b}]
  - job_name: unlabelled
    static_configs: [{targets: ['%[2]s']}]
remote_write:
  - url: https://%[5]s/api/v1/write
%[3]s
    queue_config: {%[4]s batch_send_deadline: 500ms, min_backoff: 100ms, max_backoff: 1s}
`

	readerConfig = `global:
  scrape_interval: 1m
remote_read:
  - url: https://%[1]s/api/v1/read
    read_recent: true
    tls_config: {ca_file: %[2]s/ca.crt, cert_file: %[2]s/client-reader.crt, key_file: %[2]s/client-reader.key}
`
)

// writeStack is what the test runs.
type writeStack struct {
	dir      string
	pki      string
	target   string // host:port of the scraped target
	recvURL  string
	issuer   string
	gw       *gateway
	agents   map[string]string // agent label -> its web address
	agentPrc map[string]*process
}

func TestRemoteWriteRead(t *testing.T) {
	start := time.Now()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node not found in PATH: run scripts/install-deps.sh (it installs node and scripts/idp)")
	}
	s := &writeStack{dir: filepath.Join(env.tmp, "remote-write"), agents: map[string]string{}, agentPrc: map[string]*process{}}
	s.pki = filepath.Join(s.dir, "pki")
	if out, err := env.promgate("certs", "dev", "--out", s.pki, "--client", "writer-inject:team-a", "--client", "writer-reject:team-a",
		"--client", "writer-drop:team-a", "--client", "reader:team-a", "--client", "stranger:team-b"); err != nil {
		t.Fatalf("certs dev: %v\n%s", err, out)
	}
	// The target every Prometheus scrapes: two series of its own.
	tgt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# HELP e2e_write_target_info A constant.\n# TYPE e2e_write_target_info gauge\ne2e_write_target_info 1\n"+
			"# HELP e2e_write_requests_total A counter.\n# TYPE e2e_write_requests_total counter\ne2e_write_requests_total 5\n")
	}))
	t.Cleanup(tgt.Close)
	s.target = strings.TrimPrefix(tgt.URL, "http://")

	s.startReceiver(t)
	s.startIdP(t)
	s.startGateway(t)
	certs := func(name string) string {
		return fmt.Sprintf("    tls_config: {ca_file: %[1]s/ca.crt, cert_file: %[1]s/client-%[2]s.crt, key_file: %[1]s/client-%[2]s.key}", s.pki, name)
	}
	// Reject mode gets one sample per request, so that the requests
	// holding team-a's samples alone pass while the others are refused.
	s.startAgent(t, "inject", certs("writer-inject"), "")
	s.startAgent(t, "reject", certs("writer-reject"), "max_samples_per_send: 1,")
	s.startAgent(t, "drop", certs("writer-drop"), "")
	s.startAgent(t, "oauth", fmt.Sprintf(`    tls_config: {ca_file: %s/ca.crt}
    oauth2: {client_id: scraper-a, client_secret: scraper-a-secret, token_url: %s/token, scopes: [metrics:read]}`, s.pki, s.issuer), "")

	// Every agent's team-a series reach the receiver.
	want := map[string][]string{
		"inject": {"team-a/team-a", "unlabelled/team-a"},
		"reject": {"team-a/team-a"},
		"drop":   {"team-a/team-a"},
		"oauth":  {"team-a/team-a"},
	}
	got := s.waitReceived(t, want)
	// A few more seconds, so that a forged series had every chance to land.
	time.Sleep(3 * time.Second)
	got = s.received(t)

	t.Run("the receiver holds team-a's series only, per mode", func(t *testing.T) {
		for agent, w := range want {
			if !slices.Equal(got[agent], w) {
				t.Errorf("agent %s: the receiver holds job/namespace %v, want %v", agent, got[agent], w)
			}
		}
		vec, err := promVector(s.recvURL, `{agent!="",namespace!="team-a"} or {agent!="",namespace=""}`)
		if err != nil || len(vec) != 0 {
			t.Errorf("series written through the gateway outside team-a: %v (%v)", vec, err)
		}
		// The injected series carry every label they were sent with.
		vec, err = promVector(s.recvURL, `e2e_write_target_info{agent="inject",job="unlabelled"}`)
		if err != nil || len(vec) != 1 || vec[0]["namespace"] != "team-a" || vec[0]["instance"] != s.target {
			t.Errorf("injected series: %v (%v)", vec, err)
		}
	})

	t.Run("the agents' own metrics show the outcome", func(t *testing.T) {
		for _, agent := range []string{"inject", "reject", "drop", "oauth"} {
			m := agentMetrics(t, s.agents[agent])
			t.Logf("agent %-6s samples sent %v, failed %v, retried %v, dropped %v, metadata failed %v",
				agent, m["prometheus_remote_storage_samples_total"], m["prometheus_remote_storage_samples_failed_total"],
				m["prometheus_remote_storage_samples_retried_total"], m["prometheus_remote_storage_samples_dropped_total"],
				m["prometheus_remote_storage_metadata_failed_total"])
			if m["prometheus_remote_storage_samples_total"] == 0 {
				t.Errorf("agent %s sent no samples", agent)
			}
			if m["prometheus_remote_storage_samples_retried_total"] != 0 {
				t.Errorf("agent %s retried %v samples, want none: the gateway answers a refusal with 400, never 5xx", agent, m["prometheus_remote_storage_samples_retried_total"])
			}
			failed := m["prometheus_remote_storage_samples_failed_total"]
			if agent == "reject" && failed == 0 {
				t.Errorf("agent reject: no failed samples, want team-b's and the unlabelled ones refused with 400")
			}
			if agent != "reject" && failed != 0 {
				t.Errorf("agent %s: %v failed samples, want none (forged series are dropped, the request succeeds)", agent, failed)
			}
		}
	})

	t.Run("remote read as team-a sees team-a only", func(t *testing.T) {
		s.testRemoteRead(t)
	})

	t.Run("audit and gateway metrics", func(t *testing.T) {
		dropped := gatewayMetrics(t, s.gw)
		t.Logf("gateway: %v", dropped)
		if dropped[`promgate_write_dropped_series_total{reason="foreign_value"}`] == 0 || dropped[`promgate_write_dropped_series_total{reason="missing_label"}`] == 0 ||
			dropped[`promgate_write_injected_series_total`] == 0 {
			t.Errorf("gateway write metrics %v, want foreign and missing drops and injections", dropped)
		}
		for _, agent := range []string{"inject", "reject", "drop", "oauth"} {
			_ = s.agentPrc[agent].stop()
		}
		if err := s.gw.proc.stop(); err != nil {
			t.Errorf("gateway stop: %v", err)
		}
		s.checkAudit(t)
	})
	t.Logf("remote write/read e2e took %v", time.Since(start).Round(time.Millisecond))
}

func (s *writeStack) startReceiver(t *testing.T) {
	t.Helper()
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.dir, "receiver")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), fmt.Appendf(nil, receiverConfig, s.target), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := env.start("prometheus-receiver", dir, "prometheus", "--config.file=prometheus.yml", "--storage.tsdb.path=data",
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver", "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.stop() })
	s.recvURL = "http://" + addr
	waitHTTPReady(t, s.recvURL+"/-/ready", p)
}

func (s *writeStack) startIdP(t *testing.T) {
	t.Helper()
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(addr, ":")
	s.issuer = "http://" + addr
	p, err := env.start("idp-remote-write", filepath.Join(env.root, "scripts", "idp"), "env", "PORT="+port, "AUDIENCE="+oidcAudience, "node", "idp.mjs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.stop()
		}
	})
	waitHTTPReady(t, s.issuer+"/.well-known/openid-configuration", p)
}

func (s *writeStack) startGateway(t *testing.T) {
	t.Helper()
	g := &gateway{name: "remote-write", upstream: s.recvURL}
	var err error
	if g.addr, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if g.internal, err = freePort(); err != nil {
		t.Fatal(err)
	}
	g.dir = filepath.Join(s.dir, "gw")
	policies := filepath.Join(s.dir, "policies")
	for _, d := range []string{g.dir, policies} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for path, content := range map[string]string{
		filepath.Join(policies, "policy.rego"): writePolicy,
		filepath.Join(policies, "data.json"):   writeData,
		filepath.Join(g.dir, "promgate.yml"):   fmt.Sprintf(writeGatewayConfig, g.addr, g.internal, s.pki, s.recvURL, s.issuer, oidcAudience, policies),
	} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g.config = filepath.Join(g.dir, "promgate.yml")
	g.audit = filepath.Join(g.dir, "audit.log")
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
	s.gw = g
}

// startAgent starts a Prometheus agent labelled agent=name.
func (s *writeStack) startAgent(t *testing.T, name, auth, queue string) {
	t.Helper()
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.dir, "agent-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(agentConfig, name, s.target, auth, queue, s.gw.addr)
	if err := os.WriteFile(filepath.Join(dir, "agent.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := env.start("prometheus-agent-"+name, dir, "prometheus", "--enable-feature=agent", "--config.file=agent.yml",
		"--storage.agent.path=data", "--web.listen-address="+addr, "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.stop()
		}
	})
	s.agents[name] = addr
	s.agentPrc[name] = p
	waitHTTPReady(t, "http://"+addr+"/-/ready", p)
}

// received maps each agent label to the sorted job/namespace pairs of the
// series written with it.
func (s *writeStack) received(t *testing.T) map[string][]string {
	t.Helper()
	vec, err := promVector(s.recvURL, `count by (agent, job, namespace) ({agent!=""})`)
	if err != nil {
		t.Fatalf("receiver query: %v", err)
	}
	out := map[string][]string{}
	for _, m := range vec {
		out[m["agent"]] = append(out[m["agent"]], m["job"]+"/"+m["namespace"])
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

func (s *writeStack) waitReceived(t *testing.T, want map[string][]string) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(writeBudget)
	for {
		got := s.received(t)
		done := true
		for agent, w := range want {
			for _, pair := range w {
				done = done && slices.Contains(got[agent], pair)
			}
		}
		if done {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the receiver holds %v, want at least %v", writeBudget, got, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// agentMetrics sums the agent's prometheus_remote_storage_* series by name.
func agentMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "prometheus_remote_storage_") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			rest = rest[i+1:]
		} else {
			name, rest, _ = strings.Cut(line, " ")
		}
		v, err := strconv.ParseFloat(rest, 64)
		if err == nil {
			out[name] += v
		}
	}
	return out
}

// gatewayMetrics returns the gateway's promgate_write_* series.
func gatewayMetrics(t *testing.T, g *gateway) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.internal + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "promgate_write_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// remoteAudit is the part of an audit record this test reads.
type remoteAudit struct {
	auditRecord
	Error  string `json:"error"`
	Remote *struct {
		WriteMode       string `json:"write_mode"`
		Series          int    `json:"series"`
		Samples         int    `json:"samples"`
		Chunks          int    `json:"chunks"`
		Queries         int    `json:"queries"`
		DroppedForeign  int    `json:"dropped_foreign"`
		DroppedMissing  int    `json:"dropped_missing"`
		DroppedMetadata int    `json:"dropped_metadata"`
		Injected        int    `json:"injected"`
		Forwarded       bool   `json:"forwarded"`
	} `json:"remote"`
}

func (s *writeStack) checkAudit(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(s.gw.audit)
	if err != nil {
		t.Fatal(err)
	}
	type tally struct{ records, ok, refused, foreign, missing, injected, samples int }
	bySubject := map[string]*tally{}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r remoteAudit
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if r.Route != "write" || r.Identity == nil {
			continue
		}
		// A refusal names the first offending series in its error, as
		// the caller sent it; nothing else of a request is recorded.
		if r.Status != http.StatusBadRequest && bytes.Contains(line, []byte("e2e_write_target_info")) {
			t.Errorf("a write record holds series data: %s", line)
		}
		k := r.Identity.Method + ":" + r.Identity.Subject
		c := bySubject[k]
		if c == nil {
			c = &tally{}
			bySubject[k] = c
		}
		c.records++
		if r.Status/100 == 2 {
			c.ok++
		}
		if r.Status == http.StatusBadRequest {
			c.refused++
		}
		if r.Remote != nil {
			c.foreign += r.Remote.DroppedForeign
			c.missing += r.Remote.DroppedMissing
			c.injected += r.Remote.Injected
			c.samples += r.Remote.Samples
		}
	}
	for k, c := range bySubject {
		t.Logf("audit %s: %+v", k, *c)
	}
	check := func(k string, ok func(*tally) bool, what string) {
		c := bySubject[k]
		if c == nil || !ok(c) {
			t.Errorf("audit of %s: %+v, want %s", k, c, what)
		}
	}
	check("mtls:writer-inject", func(c *tally) bool { return c.ok > 0 && c.injected > 0 && c.foreign > 0 && c.refused == 0 }, "injected and foreign series, no refusal")
	check("mtls:writer-drop", func(c *tally) bool {
		return c.ok > 0 && c.foreign > 0 && c.missing > 0 && c.injected == 0 && c.refused == 0
	}, "foreign and missing drops")
	check("mtls:writer-reject", func(c *tally) bool { return c.ok > 0 && c.refused > 0 && c.foreign == 0 }, "accepted and refused requests")
	check("oidc:scraper-a", func(c *tally) bool { return c.ok > 0 && c.foreign > 0 && c.missing > 0 }, "drops under the configured mode")
}
