//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/detect"
)

// amGateway is a gateway of the Alertmanager test's own, with its own PKI
// (adding the security and alert-senders identities) in front of a real
// Alertmanager.
type amGateway struct {
	g   *gateway
	pki string
	am  string // the Alertmanager's host:port, reached without the gateway
	dir string
}

// amGatewayConfig serves the Prometheus API (the recording proxy) and,
// beside it, the Alertmanager under the default policy.
const amGatewayConfig = `listen: %s
internal_listen: %s
tls:
  cert_file: %[3]s/server.crt
  key_file: %[3]s/server.key
  client_ca_file: %[3]s/ca.crt
  client_auth_type: RequireAndVerifyClientCert
upstream:
  url: %s
alertmanager:
  url: http://%s
authz:
  policies: %s
audit:
  path: audit.log
limits:
  requests_per_second: 1000
  burst: 1000
`

// amReceivers names a receiver whose webhook URL carries a secret, which
// status' config.original would show a restricted caller.
const amConfig = `route: {receiver: blackhole, group_wait: 1s, group_interval: 1s, repeat_interval: 1h}
receivers:
- name: blackhole
- name: team-a-pager
  webhook_configs: [{url: 'http://127.0.0.1:9/hook?token=am-webhook-secret'}]
`

func startAMGateway(t *testing.T) *amGateway {
	t.Helper()
	dir := t.TempDir()
	a := &amGateway{dir: dir, pki: filepath.Join(dir, "pki")}
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	amDir := filepath.Join(dir, "am")
	if err := os.MkdirAll(amDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(amDir, "alertmanager.yml"), []byte(amConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := env.start("am-gateway-alertmanager", amDir, "prometheus-alertmanager",
		"--config.file=alertmanager.yml", "--storage.path=data",
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.stop() })
	waitHTTP(t, p, "http://"+addr+"/-/ready")
	a.am = addr

	if out, err := env.promgate("certs", "dev", "--out", a.pki,
		"--client", "admin:admins", "--client", "team-a:team-a", "--client", "team-b:team-b",
		"--client", "security:security", "--client", "detectors:alert-senders"); err != nil {
		t.Fatalf("promgate certs dev: %v\n%s", err, out)
	}
	g := &gateway{name: "alertmanager", authType: "RequireAndVerifyClientCert", upstream: env.rec.url, dir: filepath.Join(dir, "gw")}
	if g.addr, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if g.internal, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g.config = filepath.Join(g.dir, "promgate.yml")
	g.audit = filepath.Join(g.dir, "audit.log")
	cfg := fmt.Sprintf(amGatewayConfig, g.addr, g.internal, a.pki, env.rec.url, a.am, filepath.Join(env.root, "policies"))
	if err := os.WriteFile(g.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := env.startGateway(g); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.proc.stop() })
	if err := env.waitGateway(g); err != nil {
		t.Fatal(err)
	}
	a.g = g
	// amtool's HTTP client configuration per identity: the gateway's CA
	// and the identity's client certificate.
	for _, who := range []string{"admin", "team-a", "team-b", "security", "detectors"} {
		hc := fmt.Sprintf("tls_config:\n  ca_file: %s\n  cert_file: %s\n  key_file: %s\n",
			filepath.Join(a.pki, "ca.crt"), filepath.Join(a.pki, "client-"+who+".crt"), filepath.Join(a.pki, "client-"+who+".key"))
		if err := os.WriteFile(filepath.Join(dir, "amtool-"+who+".yml"), []byte(hc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// amtool runs the Debian amtool as who through the gateway, or, with who
// "", directly against the Alertmanager (as a sender such as Prometheus).
func (a *amGateway) amtool(t *testing.T, who string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestBudget)
	defer cancel()
	base := []string{"--alertmanager.url=http://" + a.am}
	if who != "" {
		base = []string{"--alertmanager.url=https://" + a.g.addr, "--http.config.file=" + filepath.Join(a.dir, "amtool-"+who+".yml")}
	}
	cmd := exec.CommandContext(ctx, "amtool", append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("amtool %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// httpClient returns an HTTP client presenting who's certificate.
func (a *amGateway) httpClient(t *testing.T, who string) *http.Client {
	t.Helper()
	return &http.Client{Timeout: requestBudget, Transport: &http.Transport{TLSClientConfig: clientTLS(t, a.pki, a.pki, who)}}
}

// amSilence is the part of a silence the test reads.
type amSilence struct {
	ID       string `json:"id"`
	Matchers []struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual *bool  `json:"isEqual"`
	} `json:"matchers"`
	CreatedBy string `json:"createdBy"`
	Comment   string `json:"comment"`
	Status    struct {
		State string `json:"state"`
	} `json:"status"`
}

func (s amSilence) matcher(name string) string {
	for _, m := range s.Matchers {
		if m.Name == name {
			op := "="
			if m.IsEqual != nil && !*m.IsEqual {
				op = "!="
			}
			if m.IsRegex {
				op = strings.Replace(op, "=", "=~", 1)
				if op == "!=~" {
					op = "!~"
				}
			}
			return name + op + m.Value
		}
	}
	return ""
}

// amState reads the Alertmanager's own view, as its admin, without the
// gateway.
func (a *amGateway) silences(t *testing.T) map[string]amSilence {
	t.Helper()
	var ss []amSilence
	getJSON(t, "http://"+a.am+"/api/v2/silences", &ss)
	out := map[string]amSilence{}
	for _, s := range ss {
		out[s.ID] = s
	}
	return out
}

func (a *amGateway) alertStates(t *testing.T) map[string]string {
	t.Helper()
	var alerts []amAlert
	getJSON(t, "http://"+a.am+"/api/v2/alerts", &alerts)
	out := map[string]string{}
	for _, al := range alerts {
		key := al.Labels["alertname"] + "/" + al.Labels["namespace"]
		out[key] = al.Status.State
	}
	return out
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u) //nolint:gosec // G107: the Alertmanager this test started on loopback
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := readAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, b)
	}
}

// silenceIDs returns the ids of the active silences.
func activeIDs(m map[string]amSilence) []string {
	var ids []string
	for id, s := range m {
		if s.Status.State == "active" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestAlertmanager drives a real Alertmanager through the gateway with the
// Debian amtool (0.25, with --http.config.file and a client certificate),
// with the requests Grafana's Alertmanager data source makes, and with the
// gateway's own detector evaluator, under the default policy; every
// refusal is checked against the Alertmanager's own state.
func TestAlertmanager(t *testing.T) {
	needCommands(t, "prometheus-alertmanager", "amtool")
	if out, err := exec.Command("amtool", "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), "version 0.") {
		t.Fatalf("amtool --version: %v %s", err, out)
	}
	a := startAMGateway(t)

	// A sender (as Prometheus would) pushes team-a's and team-b's alerts
	// straight to the Alertmanager.
	for _, ns := range []string{nsTeamA, nsTeamB} {
		if out, err := a.amtool(t, "", "alert", "add", "HighLatency", "namespace="+ns, "severity=warning", "--annotation=summary=slow"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}

	t.Run("the detector evaluator pushes through the gateway with its client certificate", func(t *testing.T) {
		cat, err := detect.Load()
		if err != nil {
			t.Fatal(err)
		}
		d, ok := cat.Get("critical_daemon_restart")
		if !ok {
			t.Fatal("detector critical_daemon_restart not in the catalog")
		}
		q := querierFunc(func(_ context.Context, query string, ts time.Time) (model.Vector, error) {
			if query != d.Expr {
				return nil, nil
			}
			return model.Vector{{Metric: model.Metric{"namespace": "kube-system", "pod": "kube-proxy-x"}, Value: 3, Timestamp: model.TimeFromUnixNano(ts.UnixNano())}}, nil
		})
		ctx, cancel := context.WithCancel(context.Background())
		ev, err := detect.NewEvaluator(config.Detectors{
			Enabled: true, Interval: model.Duration(time.Second),
			AlertmanagerURL: "https://" + a.g.addr,
			AlertmanagerTLS: config.UpstreamTLS{CAFile: filepath.Join(a.pki, "ca.crt"),
				CertFile: filepath.Join(a.pki, "client-detectors.crt"), KeyFile: filepath.Join(a.pki, "client-detectors.key")},
		}, cat, q, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { ev.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		alerts := waitAlerts(t, a.am, []string{"critical_daemon_restart", "HighLatency"})
		for _, al := range alerts {
			if al.Labels["alertname"] == "critical_daemon_restart" && al.Labels["detector"] != "critical_daemon_restart" {
				t.Errorf("detector alert labels = %v", al.Labels)
			}
		}
	})

	t.Run("team-a cannot forge a detector alert", func(t *testing.T) {
		out, err := a.amtool(t, "team-a", "alert", "add", "critical_daemon_restart", "detector=critical_daemon_restart", "namespace=team-a")
		if err == nil || !strings.Contains(out, "403") {
			t.Errorf("forged detector alert: err %v, output %s", err, out)
		}
		if st := a.alertStates(t); st["critical_daemon_restart/team-a"] != "" {
			t.Errorf("the forged alert reached the Alertmanager: %v", st)
		}
	})

	t.Run("team-a sees only its alerts", func(t *testing.T) {
		out, err := a.amtool(t, "team-a", "alert", "query", "-o", "json")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var alerts []amAlert
		if err := json.Unmarshal([]byte(out), &alerts); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if len(alerts) != 1 || alerts[0].Labels["namespace"] != nsTeamA {
			t.Errorf("team-a's alerts = %+v, want only team-a's HighLatency", alerts)
		}
		out, err = a.amtool(t, "admin", "alert", "query", "-o", "json")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &alerts); err != nil || len(alerts) != 3 {
			t.Errorf("admin's alerts = %d (%v), want 3", len(alerts), err)
		}
	})

	var ownID string
	t.Run("team-a's silence without a namespace is confined, createdBy is its subject", func(t *testing.T) {
		out, err := a.amtool(t, "team-a", "silence", "add", "HighLatency", "--comment=deploy", "--duration=1h", "--author=mallory")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		ownID = out
		s, ok := a.silences(t)[ownID]
		if !ok {
			t.Fatalf("silence %q not in the Alertmanager", ownID)
		}
		if got := s.matcher("namespace"); got != "namespace=~team-a|team-a-staging" {
			t.Errorf("namespace matcher = %q, want the team's namespaces", got)
		}
		if got := s.matcher("detector"); got != "detector=" {
			t.Errorf("detector matcher = %q, want detector=\"\"", got)
		}
		if s.CreatedBy != "team-a" {
			t.Errorf("createdBy = %q, want team-a (amtool said mallory)", s.CreatedBy)
		}
		st := a.alertStates(t)
		if st["HighLatency/team-a"] != "suppressed" || st["HighLatency/team-b"] != "active" {
			t.Errorf("alert states = %v, want team-a's suppressed and team-b's active", st)
		}
	})

	t.Run("team-a cannot silence team-b", func(t *testing.T) {
		before := activeIDs(a.silences(t))
		out, err := a.amtool(t, "team-a", "silence", "add", "HighLatency", "namespace=team-b", "--comment=x", "--duration=1h")
		if err == nil || !strings.Contains(out, "403") {
			t.Errorf("team-b silence: err %v, output %s", err, out)
		}
		if after := activeIDs(a.silences(t)); !slices.Equal(before, after) {
			t.Errorf("silences changed: %v -> %v", before, after)
		}
	})

	var bID string
	t.Run("team-a cannot update or expire team-b's silence", func(t *testing.T) {
		out, err := a.amtool(t, "admin", "silence", "add", "HighLatency", "namespace=team-b", "--comment=team-b maintenance", "--duration=1h")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		bID = out
		if out, err := a.amtool(t, "team-a", "silence", "update", "--duration=3h", bID); err == nil {
			t.Errorf("team-a updated team-b's silence: %s", out)
		}
		if out, err := a.amtool(t, "team-a", "silence", "expire", bID); err == nil || !strings.Contains(out, "403") {
			t.Errorf("team-a expired team-b's silence: err %v, output %s", err, out)
		}
		s := a.silences(t)[bID]
		if s.Status.State != "active" || s.Comment != "team-b maintenance" {
			t.Errorf("team-b's silence = %+v, want it active and unchanged", s)
		}
		if len(activeIDs(a.silences(t))) != 2 {
			t.Errorf("active silences = %v, want team-a's and team-b's", activeIDs(a.silences(t)))
		}
	})

	t.Run("team-a sees only its silences", func(t *testing.T) {
		out, err := a.amtool(t, "team-a", "silence", "query", "-o", "json")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var ss []amSilence
		if err := json.Unmarshal([]byte(out), &ss); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if len(ss) != 1 || ss[0].ID != ownID {
			t.Errorf("team-a's silences = %+v, want only %s", ss, ownID)
		}
	})

	var detID string
	t.Run("only security silences the detector alert", func(t *testing.T) {
		for _, who := range []string{"team-a", "admin"} {
			out, err := a.amtool(t, who, "silence", "add", "detector=critical_daemon_restart", "--comment=noise", "--duration=1h")
			if err == nil || !strings.Contains(out, "status 403") {
				t.Errorf("%s silenced the detector: err %v, output %s", who, err, out)
			}
		}
		// amtool shows the status only; the gateway's answer says why.
		body := `{"matchers":[{"name":"detector","value":"critical_daemon_restart","isRegex":false}],"startsAt":"` +
			time.Now().UTC().Format(time.RFC3339) + `","endsAt":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","createdBy":"x","comment":"noise"}`
		resp, err := a.httpClient(t, "team-a").Post("https://"+a.g.addr+"/api/v2/silences", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := readAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !bytes.Contains(b, []byte(`"errorType":"forbidden"`)) || !bytes.Contains(b, []byte("only members of a security group may")) {
			t.Errorf("team-a's detector silence: %d %s", resp.StatusCode, b)
		}
		if st := a.alertStates(t); st["critical_daemon_restart/kube-system"] != "active" {
			t.Errorf("detector alert state = %q, want active", st["critical_daemon_restart/kube-system"])
		}
		out, err := a.amtool(t, "security", "silence", "add", "detector=critical_daemon_restart", "--comment=known restart", "--duration=1h")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		detID = out
		if st := a.alertStates(t); st["critical_daemon_restart/kube-system"] != "suppressed" {
			t.Errorf("detector alert state = %q, want suppressed", st["critical_daemon_restart/kube-system"])
		}
		if s := a.silences(t)[detID]; s.CreatedBy != "security" {
			t.Errorf("createdBy = %q", s.CreatedBy)
		}
		// Neither may team-a expire it (it is not confined to team-a,
		// and it covers a detector alert).
		if out, err := a.amtool(t, "team-a", "silence", "expire", detID); err == nil {
			t.Errorf("team-a expired the detector silence: %s", out)
		}
		if s := a.silences(t)[detID]; s.Status.State != "active" {
			t.Errorf("detector silence state = %q, want active", s.Status.State)
		}
	})

	t.Run("team-a's status has no configuration", func(t *testing.T) {
		out, err := a.amtool(t, "team-a", "config", "show")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if strings.Contains(out, "am-webhook-secret") || strings.Contains(out, "team-a-pager") {
			t.Errorf("team-a's amtool config show reveals the configuration: %s", out)
		}
		out, err = a.amtool(t, "admin", "config", "show")
		if err != nil || !strings.Contains(out, "team-a-pager") {
			t.Errorf("admin's config show = %v %s, want the configuration", err, out)
		}
	})

	t.Run("Grafana's Alertmanager data source", func(t *testing.T) {
		grafanaRequests(t, a, ownID, bID)
	})

	t.Run("API v1 and other Alertmanager paths are not found", func(t *testing.T) {
		c := a.httpClient(t, "admin")
		for _, p := range []string{"/api/v1/silences", "/api/v1/status", "/api/v2/silence/" + bID + "/x", "/-/reload", "/#/silences"} {
			resp, err := c.Get("https://" + a.g.addr + p)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := readAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 404 || !bytes.Contains(b, []byte(`"errorType":"not_found"`)) {
				t.Errorf("%s: %d %s, want 404 in the API shape", p, resp.StatusCode, b)
			}
		}
	})

	t.Run("the audit records who silenced what, for how long", func(t *testing.T) {
		if err := a.g.proc.stop(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(a.g.audit)
		if err != nil {
			t.Fatal(err)
		}
		type rec struct {
			Identity struct {
				Subject string `json:"subject"`
			} `json:"identity"`
			Route    string                `json:"route"`
			Status   int                   `json:"status"`
			Op       string                `json:"silence_operation"`
			ID       string                `json:"silence_id"`
			Matchers []string              `json:"silence_matchers"`
			StartsAt string                `json:"silence_starts_at"`
			EndsAt   string                `json:"silence_ends_at"`
			Decision *struct{ Allow bool } `json:"decision"`
		}
		var creates, refusedExpires int
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var r rec
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatal(err)
			}
			if r.Route != "am_silence" {
				continue
			}
			switch {
			case r.Op == "create" && r.ID == ownID:
				creates++
				if r.Identity.Subject != "team-a" || !slices.Contains(r.Matchers, `namespace=~"team-a|team-a-staging"`) || r.StartsAt == "" || r.EndsAt == "" {
					t.Errorf("create record = %+v", r)
				}
				start, _ := time.Parse(time.RFC3339, r.StartsAt)
				end, _ := time.Parse(time.RFC3339, r.EndsAt)
				if d := end.Sub(start); d < 59*time.Minute || d > 61*time.Minute {
					t.Errorf("create record lasts %v, want 1h", d)
				}
			case r.Op == "expire" && r.ID == bID && r.Status == 403:
				refusedExpires++
				if !slices.Contains(r.Matchers, `namespace="team-b"`) {
					t.Errorf("refused expire record = %+v", r)
				}
			}
		}
		if creates != 1 || refusedExpires < 1 {
			t.Errorf("audit: %d create records of %s, %d refused expires of %s", creates, ownID, refusedExpires, bID)
		}
		// Neither the audit log nor the gateway's log holds a secret or
		// the Alertmanager's address.
		for _, f := range []string{a.g.audit, a.g.proc.stderr} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"am-webhook-secret", a.am, "PRIVATE KEY", "Bearer "} {
				if bytes.Contains(b, []byte(n)) {
					t.Errorf("%s contains %q", filepath.Base(f), n)
				}
			}
		}
	})
}

type querierFunc func(ctx context.Context, query string, ts time.Time) (model.Vector, error)

func (f querierFunc) Query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	return f(ctx, query, ts)
}

// grafanaRequests replays the requests Grafana's Alertmanager data source
// and its alerting UI make to an Alertmanager of implementation
// "prometheus", as Grafana 12's source writes them (grafana/grafana,
// public/app/plugins/datasource/alertmanager/DataSource.ts testDatasource;
// features/alerting/unified/api/buildInfo.ts
// discoverAlertmanagerFeaturesByUrl; api/alertmanagerApi.ts
// getAlertmanagerAlerts, with filter, silenced, active, inhibited and
// unprocessed, and getAlertmanagerAlertGroups; api/alertmanager.ts
// fetchStatus, fetchSilences, createOrUpdateSilence and expireSilence), as
// team-a through Grafana's data source proxy with the data source's client
// certificate. Grafana adds its own headers, which the gateway drops.
func grafanaRequests(t *testing.T, a *amGateway, ownID, bID string) {
	t.Helper()
	c := a.httpClient(t, "team-a")
	base := "https://" + a.g.addr
	do := func(method, path, body string) (int, []byte) {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, base+path, r)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/json, text/plain, */*")
		req.Header.Set("User-Agent", "Grafana/12.0.0")
		req.Header.Set("X-Grafana-Org-Id", "1")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := readAll(resp.Body)
		return resp.StatusCode, b
	}

	// Health check ("Save & test"): build info, then the Mimir path must
	// not answer 200, then the status.
	if code, _ := do("GET", "/api/v1/status/buildinfo", ""); code != 200 {
		t.Errorf("buildinfo: %d", code)
	}
	if code, _ := do("GET", "/alertmanager/api/v2/status", ""); code == 200 {
		t.Error("/alertmanager/api/v2/status answered 200: Grafana would report a Mimir endpoint")
	}
	code, b := do("GET", "/api/v2/status", "")
	if code != 200 || bytes.Contains(b, []byte("am-webhook-secret")) || !bytes.Contains(b, []byte(`"versionInfo"`)) {
		t.Errorf("status: %d %s", code, b)
	}

	// The alert list and groups.
	code, b = do("GET", "/api/v2/alerts?filter="+url.QueryEscape(`alertname="HighLatency"`)+"&silenced=true&active=true&inhibited=true&unprocessed=true", "")
	var alerts []amAlert
	if code != 200 || json.Unmarshal(b, &alerts) != nil || len(alerts) != 1 || alerts[0].Labels["namespace"] != nsTeamA {
		t.Errorf("alerts: %d %s", code, b)
	}
	code, b = do("GET", "/api/v2/alerts/groups?active=true", "")
	var groups []struct {
		Alerts []amAlert `json:"alerts"`
	}
	if code != 200 || json.Unmarshal(b, &groups) != nil {
		t.Fatalf("groups: %d %s", code, b)
	}
	for _, g := range groups {
		for _, al := range g.Alerts {
			if al.Labels["namespace"] != nsTeamA && al.Labels["namespace"] != nsTeamAStage {
				t.Errorf("groups show %v", al.Labels)
			}
		}
	}
	if len(groups) == 0 {
		t.Error("groups: none, want team-a's")
	}

	// Silences: the list, an update of team-b's (refused, nothing
	// changes), a new one (isEqual as Grafana sends it), and its expiry.
	code, b = do("GET", "/api/v2/silences", "")
	var ss []amSilence
	if code != 200 || json.Unmarshal(b, &ss) != nil || len(ss) != 1 || ss[0].ID != ownID {
		t.Errorf("silences: %d %s", code, b)
	}
	now := time.Now().UTC()
	payload := func(id, ns string) string {
		p := map[string]any{
			"matchers": []map[string]any{
				{"name": "alertname", "value": "HighLatency", "isEqual": true, "isRegex": false},
				{"name": "namespace", "value": ns, "isEqual": true, "isRegex": false},
			},
			"startsAt": now.Format(time.RFC3339), "endsAt": now.Add(2 * time.Hour).Format(time.RFC3339),
			"createdBy": "admin", "comment": "from Grafana",
		}
		if id != "" {
			p["id"] = id
		}
		out, _ := json.Marshal(p)
		return string(out)
	}
	if code, b := do("POST", "/api/v2/silences", payload(bID, nsTeamA)); code != 403 {
		t.Errorf("update of team-b's silence: %d %s, want 403", code, b)
	}
	if s := a.silences(t)[bID]; s.Status.State != "active" || s.matcher("namespace") != "namespace=team-b" {
		t.Errorf("team-b's silence after the refused update = %+v", s)
	}
	code, b = do("POST", "/api/v2/silences", payload("", nsTeamA))
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	if code != 200 || json.Unmarshal(b, &created) != nil || created.SilenceID == "" {
		t.Fatalf("create: %d %s", code, b)
	}
	if s := a.silences(t)[created.SilenceID]; s.CreatedBy != "team-a" || s.matcher("severity") != `severity!=critical` {
		t.Errorf("Grafana's silence in the Alertmanager = %+v", s)
	}
	if code, b := do("DELETE", "/api/v2/silence/"+url.PathEscape(created.SilenceID), ""); code != 200 {
		t.Errorf("expire: %d %s", code, b)
	}
	if s := a.silences(t)[created.SilenceID]; s.Status.State != "expired" {
		t.Errorf("Grafana's silence after expire = %+v, want expired", s)
	}
}
