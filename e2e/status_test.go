//go:build e2e

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
	"strings"
	"testing"
)

// statusPaths are the status routes of routes.status, by name.
var statusPaths = map[string]string{
	"buildinfo":   "/api/v1/status/buildinfo",
	"runtimeinfo": "/api/v1/status/runtimeinfo",
	"flags":       "/api/v1/status/flags",
	"tsdb":        "/api/v1/status/tsdb",
	"config":      "/api/v1/status/config",
	"walreplay":   "/api/v1/status/walreplay",
	"targets":     "/api/v1/targets",
}

// statusUnrestrictedOnly are the status routes that describe the whole
// server: a confined caller gets 403.
var statusUnrestrictedOnly = []string{"runtimeinfo", "flags", "tsdb", "config", "walreplay"}

// promGet returns the body of a GET to the real Prometheus itself.
func promGet(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get(env.promURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("prometheus %s: %d %v", path, resp.StatusCode, err)
	}
	return b
}

// TestStatusRoutesDefault: the shared gateway runs the default routes.status,
// [buildinfo]. Grafana's flavour detection works for every caller the
// policy allows; every other status route is not found, as an unknown path,
// and never reaches the upstream.
func TestStatusRoutesDefault(t *testing.T) {
	for _, who := range []caller{callerAdmin, callerTeamA} {
		res := who.client(t).do(t, request{path: statusPaths["buildinfo"]})
		var bi struct {
			Version string `json:"version"`
		}
		if res.status != http.StatusOK || dataOf(res.body, &bi) != nil || bi.Version == "" {
			t.Errorf("%s as %s: want Prometheus' buildinfo", res, who.name)
		}
	}
	for name, path := range statusPaths {
		if name == "buildinfo" {
			continue
		}
		res := callerAdmin.client(t).do(t, request{path: path})
		res.wantError(t, http.StatusNotFound, "not_found")
		if !strings.Contains(string(res.body), "not served") {
			t.Errorf("%s: want the unknown route's message", res)
		}
	}
}

// TestStatusRoutesListed runs a gateway with every status route listed in
// front of the real Prometheus: the admin gets Prometheus' answers; team-a
// gets buildinfo, its own targets without discovered labels, and 403 on the
// routes that describe the whole server; a caller the policy denies gets 403
// everywhere. The audit records name each route.
func TestStatusRoutesListed(t *testing.T) {
	auditPath := filepath.Join(env.tmp, "gw-status", "audit.log") // the folder startGatewayWithLimits makes
	g := startGatewayWithLimits(t, "status", env.rec.url, auditPath, "100MiB", "deny",
		"routes:\n  status: [buildinfo, runtimeinfo, flags, tsdb, config, walreplay, targets]\n")
	t.Cleanup(func() {
		if !g.proc.exited() {
			_ = g.proc.stop()
		}
	})
	admin := newClient(t, g, env.pki, "admin")
	teamA := newClient(t, g, env.pki, "team-a")
	nobody := newClient(t, g, env.pki, "nobody")

	t.Run("admin gets Prometheus' answers", func(t *testing.T) {
		for name, path := range statusPaths {
			res := admin.do(t, request{path: path})
			if res.status != http.StatusOK {
				t.Errorf("%s: want 200", res)
				continue
			}
			if len(res.fwd) != 1 || res.fwd[0].Path != path {
				t.Errorf("%s: want one upstream request to %s", res, path)
			}
			var data map[string]json.RawMessage
			if err := dataOf(res.body, &data); err != nil {
				t.Errorf("%s: %v", res, err)
				continue
			}
			switch name {
			case "buildinfo", "flags", "config":
				// Stable answers: byte for byte what Prometheus says.
				if want := promGet(t, path); !bytes.Equal(bytes.TrimSpace(res.body), bytes.TrimSpace(want)) {
					t.Errorf("%s: differs from Prometheus' own %.300s", res, want)
				}
			case "runtimeinfo":
				if data["storageRetention"] == nil || data["CWD"] == nil {
					t.Errorf("%s: want runtime information", res)
				}
			case "tsdb":
				if data["headStats"] == nil {
					t.Errorf("%s: want headStats", res)
				}
			case "walreplay":
				if data["current"] == nil {
					t.Errorf("%s: want the replay state", res)
				}
			case "targets":
				jobs := targetJobs(t, res.body)
				for job := range jobNamespace {
					if !slices.Contains(jobs, job) {
						t.Errorf("%s: the admin does not see target %s (%v)", res, job, jobs)
					}
				}
				if !bytes.Contains(res.body, []byte("discoveredLabels")) {
					t.Errorf("%s: the admin should get discoveredLabels", res)
				}
			}
		}
		res := admin.do(t, request{path: statusPaths["targets"], query: url.Values{"scrapePool": {"team-b"}, "state": {"active"}}})
		if jobs := targetJobs(t, res.body); !slices.Equal(jobs, []string{"team-b"}) {
			t.Errorf("%s: scrapePool=team-b gave %v", res, jobs)
		}
	})

	t.Run("team-a", func(t *testing.T) {
		res := teamA.do(t, request{path: statusPaths["buildinfo"]})
		if res.status != http.StatusOK {
			t.Errorf("%s: want 200", res)
		}
		for _, name := range statusUnrestrictedOnly {
			res := teamA.do(t, request{path: statusPaths[name]})
			res.wantError(t, http.StatusForbidden, "forbidden")
			if !strings.Contains(string(res.body), "unrestricted callers only") || !strings.Contains(string(res.body), statusPaths[name]) {
				t.Errorf("%s: want a message naming the route and why", res)
			}
			for _, other := range []string{"team-b", "kube-system", "admins"} {
				if strings.Contains(string(res.body), other) {
					t.Errorf("%s: the refusal names %s", res, other)
				}
			}
		}
		res = teamA.do(t, request{path: statusPaths["targets"]})
		if res.status != http.StatusOK {
			t.Fatalf("%s: want 200", res)
		}
		if jobs := targetJobs(t, res.body); !slices.Equal(jobs, []string{"team-a"}) {
			t.Errorf("%s: team-a sees targets %v, want its own job only", res, jobs)
		}
		for _, leak := range []string{"discoveredLabels", "__address__", "team-b", "kube-system", `"cluster"`} {
			if strings.Contains(string(res.body), leak) {
				t.Errorf("%s: contains %q", res, leak)
			}
		}
		var data struct {
			Dropped []json.RawMessage `json:"droppedTargets"`
		}
		if err := dataOf(res.body, &data); err != nil || data.Dropped == nil || len(data.Dropped) != 0 {
			t.Errorf("%s: want droppedTargets [] (%v)", res, err)
		}
		// Asking for another team's pool gives nothing more.
		res = teamA.do(t, request{path: statusPaths["targets"], query: url.Values{"scrapePool": {"team-b"}}})
		if jobs := targetJobs(t, res.body); res.status != http.StatusOK || len(jobs) != 0 {
			t.Errorf("%s: team-a asking for team-b's pool sees %v", res, jobs)
		}
	})

	t.Run("nobody is denied by the policy", func(t *testing.T) {
		for _, path := range statusPaths {
			nobody.do(t, request{path: path}).wantError(t, http.StatusForbidden, "forbidden")
		}
	})

	if err := g.proc.stop(); err != nil {
		t.Errorf("gateway stop: %v", err)
	}
	t.Run("audit names each route", func(t *testing.T) {
		b, err := os.ReadFile(auditPath)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]map[int]bool{}
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var r auditRecord
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			if seen[r.Route] == nil {
				seen[r.Route] = map[int]bool{}
			}
			seen[r.Route][r.Status] = true
			if r.Identity != nil && r.Identity.Subject == "team-a" && slices.Contains(statusUnrestrictedOnly, r.Route) &&
				(r.Status != http.StatusForbidden || r.Decision == nil || !r.Decision.Allow) {
				t.Errorf("team-a's %s record: want 403 after an allowing decision: %s", r.Route, line)
			}
		}
		for name := range statusPaths {
			if !seen[name][http.StatusOK] || !seen[name][http.StatusForbidden] {
				t.Errorf("route %s: audited statuses %v, want 200 and 403", name, seen[name])
			}
		}
	})
}

// targetJobs returns the sorted job labels of a targets answer's active
// targets.
func targetJobs(t *testing.T, body []byte) []string {
	t.Helper()
	var data struct {
		Active []struct {
			Labels map[string]string `json:"labels"`
		} `json:"activeTargets"`
	}
	if err := dataOf(body, &data); err != nil {
		t.Errorf("targets answer %.300s: %v", body, err)
		return nil
	}
	var jobs []string
	for _, a := range data.Active {
		jobs = append(jobs, a.Labels["job"])
	}
	slices.Sort(jobs)
	return jobs
}

// federationPromConfig is a second Prometheus federating through the gateway
// as team-a: one job with an allowed and a refused match[], one with refused
// match[] values only.
const federationPromConfig = `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: fed-mixed
    scheme: https
    metrics_path: /federate
    honor_labels: true
    params:
      'match[]': ['prometheus_build_info', '{namespace="team-b"}']
    static_configs: [{targets: ['%[1]s']}]
    tls_config: {ca_file: %[2]s/ca.crt, cert_file: %[2]s/client-team-a.crt, key_file: %[2]s/client-team-a.key}
  - job_name: fed-refused
    scheme: https
    metrics_path: /federate
    honor_labels: true
    params:
      'match[]': ['{namespace="team-b"}', 'up{namespace="kube-system"}']
    static_configs: [{targets: ['%[1]s']}]
    tls_config: {ca_file: %[2]s/ca.crt, cert_file: %[2]s/client-team-a.crt, key_file: %[2]s/client-team-a.key}
`

// TestFederationDropsRefusedMatch: a real Prometheus federates through the
// gateway as team-a. With one allowed and one refused match[] the scrape
// succeeds with only team-a's series and the audit record names the dropped
// matcher; with refused match[] values only the scrape fails with 403, and
// the gateway's body names the refused matcher.
func TestFederationDropsRefusedMatch(t *testing.T) {
	dir := filepath.Join(env.tmp, "federation")
	auditPath := filepath.Join(env.tmp, "gw-federation", "audit.log") // the folder startGatewayWithLimits makes
	g := startGatewayWithLimits(t, "federation", env.promURL, auditPath, "100MiB", "deny", "")
	t.Cleanup(func() {
		if !g.proc.exited() {
			_ = g.proc.stop()
		}
	})

	t.Run("the 403 names the refused match[]", func(t *testing.T) {
		res := newClient(t, g, env.pki, "team-a").do(t, request{path: "/federate",
			query: url.Values{"match[]": {`{namespace="team-b"}`, `up{namespace="kube-system"}`}}})
		res.wantEnvelope(t, "forbidden")
		var e apiResponse
		_ = json.Unmarshal(res.body, &e)
		want := `match[] {namespace="team-b"} is refused: label namespace="team-b" is not allowed, and so is the other match[]; no match[] is left to federate for team-a`
		if res.status != http.StatusForbidden || e.Error != want {
			t.Errorf("%s: want 403 with %q", res, want)
		}
		t.Logf("the gateway answers: %d %s", res.status, e.Error)
	})

	promAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	promDir := filepath.Join(dir, "prometheus")
	if err := os.MkdirAll(promDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(promDir, "prometheus.yml"), fmt.Appendf(nil, federationPromConfig, g.addr, env.pki), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := env.start("prometheus-federation", promDir, "prometheus", "--config.file=prometheus.yml",
		"--storage.tsdb.path=data", "--web.listen-address="+promAddr, "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.stop() })
	promURL := "http://" + promAddr
	up := waitScrapes(t, promURL, 2)

	t.Run("allowed match[] federated, refused one dropped", func(t *testing.T) {
		if up["fed-mixed"] != "1" {
			t.Errorf("up{job=fed-mixed} = %q, want 1 (last error: %s)", up["fed-mixed"], targetError(promURL, "fed-mixed"))
		}
		vec, err := promVector(promURL, `prometheus_build_info`)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, m := range vec {
			seen[m["namespace"]] = true
		}
		if !slices.Equal(keys(seen), []string{`"team-a"`}) {
			t.Errorf("federated prometheus_build_info namespaces %v, want team-a only", keys(seen))
		}
		for _, q := range []string{`{namespace="team-b"}`, `{namespace="kube-system"}`} {
			if vec, err := promVector(promURL, q); err != nil || len(vec) != 0 {
				t.Errorf("%s: %d series federated (%v), want none", q, len(vec), err)
			}
		}
	})

	t.Run("only refused match[]: the scrape fails", func(t *testing.T) {
		if up["fed-refused"] != "0" {
			t.Errorf("up{job=fed-refused} = %q, want 0", up["fed-refused"])
		}
		// Prometheus 2 puts the status line in lastError, not the body.
		lastError := targetError(promURL, "fed-refused")
		t.Logf("Prometheus' lastError for fed-refused: %q", lastError)
		if lastError != "server returned HTTP status 403 Forbidden" {
			t.Errorf("lastError %q, want the 403's status line", lastError)
		}
	})

	if err := p.stop(); err != nil {
		t.Errorf("prometheus stop: %v", err)
	}
	if err := g.proc.stop(); err != nil {
		t.Errorf("gateway stop: %v", err)
	}
	t.Run("audit names the refused match[]", func(t *testing.T) {
		b, err := os.ReadFile(auditPath)
		if err != nil {
			t.Fatal(err)
		}
		var mixed, refused int
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var r struct {
				auditRecord
				RefusedMatch []string `json:"refused_match"`
				Error        string   `json:"error"`
			}
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			if r.Route != "federate" || r.Identity == nil || r.Identity.Subject != "team-a" {
				continue
			}
			switch r.Status {
			case http.StatusOK:
				if !slices.Equal(r.RefusedMatch, []string{`{namespace="team-b"}`}) || len(r.EnforcedQuery) != 1 ||
					!strings.Contains(r.EnforcedQuery[0], "prometheus_build_info") || len(r.Query) != 2 {
					t.Errorf("federation record: %s", line)
				}
				mixed++
			case http.StatusForbidden:
				if !slices.Equal(r.RefusedMatch, []string{`{namespace="team-b"}`, `up{namespace="kube-system"}`}) ||
					len(r.EnforcedQuery) != 0 || !strings.Contains(r.Error, "is refused") {
					t.Errorf("refused federation record: %s", line)
				}
				refused++
			default:
				t.Errorf("federation record with status %d: %s", r.Status, line)
			}
		}
		if mixed < 2 || refused < 2 {
			t.Errorf("%d partial and %d refused federation records, want at least 2 each", mixed, refused)
		}
	})
}
