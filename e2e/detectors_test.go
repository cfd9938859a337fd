//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
	"github.com/promgate/promgate/enforce"
)

// detectorsLive are the detectors whose attack data is backfilled into a
// fresh Prometheus. They have for: 0m (a real Prometheus would otherwise have
// to wait out for: in real time), read disjoint metrics, do not compare
// values with time() (backfilling shifts timestamps, not values), and keep
// firing for a minute or two after their data ends.
var detectorsLive = []string{
	"falco_critical_events",
	"prometheus_admin_api_use",
	"gateway_audit_write_failure",
	"container_restart_burst",
	"gateway_cross_tenant_probe",
}

// detectorBudget bounds each wait of the detectors test for an alert.
const detectorBudget = 40 * time.Second

// TestDetectorsExport checks the exported rules with the real promtool: the
// whole catalog passes `promtool check rules`, the PrometheusRule manifest
// is refused by it only for being a manifest, and the generated unit tests
// pass `promtool test rules` for a selection (the whole catalog is run by
// TestDetectorsPromtoolFull).
func TestDetectorsExport(t *testing.T) {
	needCommands(t, "promtool")
	cat, err := detect.Load()
	if err != nil {
		t.Fatal(err)
	}
	records := func(ds []detect.Detector) int {
		names := map[string]bool{}
		for _, d := range ds {
			for _, r := range d.Records {
				names[r.Name] = true
			}
		}
		return len(names)
	}
	dir := t.TempDir()

	// By default the export targets a 3.x Prometheus without feature
	// flags: the smoothing detector is left out, and says so.
	all := filepath.Join(dir, "all.rules.yml")
	out, err := env.promgate("detectors", "export", "--format", "rules", "--out", all)
	if err != nil || !strings.Contains(string(out), "left out for Prometheus 3.x: gateway_query_rate_forecast") {
		t.Fatalf("detectors export: %v\n%s", err, out)
	}
	want := fmt.Sprintf("SUCCESS: %d rules found", records(cat.Portable().List())+len(cat.Portable().List()))
	if out, err := exec.Command("promtool", "check", "rules", all).CombinedOutput(); err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}

	// Asked, the real Prometheus 2.42 says it is 2.x: every detector is
	// exported, the smoothing one as holt_winters, and promtool 2.42
	// accepts it.
	legacy := filepath.Join(dir, "legacy.rules.yml")
	if out, err := env.promgate("detectors", "export", "--upstream", env.promURL, "--out", legacy); err != nil || !strings.Contains(string(out), "for Prometheus 2.x") {
		t.Fatalf("detectors export --upstream: %v\n%s", err, out)
	}
	want = fmt.Sprintf("SUCCESS: %d rules found", records(cat.List())+len(cat.List()))
	if out, err := exec.Command("promtool", "check", "rules", legacy).CombinedOutput(); err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("promtool check rules (2.x): %v\n%s", err, out)
	}
	if b, err := os.ReadFile(legacy); err != nil || !strings.Contains(string(b), "holt_winters(") || strings.Contains(string(b), "double_exponential_smoothing") {
		t.Errorf("2.x export does not use holt_winters: %v", err)
	}

	rules := filepath.Join(dir, "quick.rules.yml")
	tests := filepath.Join(dir, "tests", "quick.test.yml")
	if err := os.MkdirAll(filepath.Dir(tests), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := env.promgate("detectors", "export", "--severity", "critical,info", "--out", rules, "--test-file", tests); err != nil {
		t.Fatalf("detectors export --test-file: %v\n%s", err, out)
	}
	start := time.Now()
	out, err = exec.Command("promtool", "test", "rules", tests).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	b, err := os.ReadFile(tests)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "alertname:"); n != 20 {
		t.Errorf("test file has %d alert tests, want 20 (10 detectors, fire and benign)", n)
	}
	t.Logf("promtool test rules: %d alert tests passed in %v", strings.Count(string(b), "alertname:"), time.Since(start).Round(time.Millisecond))

	// A PrometheusRule manifest and the selection flags.
	out, err = env.promgate("detectors", "export", "--format", "prometheusrule", "--namespace", "monitoring", "--source", "promgate")
	if err != nil || !strings.Contains(string(out), "kind: PrometheusRule") || !strings.Contains(string(out), "alert: gateway_audit_write_failure") || strings.Contains(string(out), "alert: falco_critical_events") {
		t.Errorf("export --format prometheusrule --source promgate: %v\n%s", err, out)
	}
	if out, err := env.promgate("detectors", "export", "--severity", "urgent"); err == nil || !strings.Contains(string(out), `unknown severity "urgent"`) {
		t.Errorf("export --severity urgent: %v\n%s", err, out)
	}
	// The coverage view, as a team would ask it: what enabling cadvisor
	// buys on top of node-exporter and promgate.
	out, err = env.promgate("detectors", "coverage", "--have", "node-exporter,promgate")
	if err != nil || !strings.Contains(string(out), "With data sources node-exporter,promgate:") || !strings.Contains(string(out), "namespace_egress_weekly_forecast") {
		t.Errorf("detectors coverage: %v\n%s", err, out)
	}
	out, err = env.promgate("detectors", "list", "--output", "json")
	var list []detect.Summary
	if err != nil || json.Unmarshal(out, &list) != nil || len(list) != len(cat.List()) {
		t.Errorf("detectors list --output json: %v, %d entries\n%.400s", err, len(list), out)
	}
}

// TestDetectorsPromtoolFull runs the generated unit tests of the whole
// catalog under the real promtool, as a user's CI would: every detector's
// attack and benign scenario, in one file. The file is kept fast (coarse
// evaluation steps, compact series notation), so CI runs all of it.
func TestDetectorsPromtoolFull(t *testing.T) {
	needCommands(t, "promtool")
	cat, err := detect.Load()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rules, tests := filepath.Join(dir, "rules.yml"), filepath.Join(dir, "tests.yml")
	// The version comes from the real Prometheus 2.42, the same Debian
	// release as promtool, so the smoothing detector is tested too.
	if out, err := env.promgate("detectors", "export", "--upstream", env.promURL, "--out", rules, "--test-file", tests); err != nil {
		t.Fatalf("detectors export: %v\n%s", err, out)
	}
	b, err := os.ReadFile(tests)
	if err != nil {
		t.Fatal(err)
	}
	if n, want := strings.Count(string(b), "alertname:"), 2*len(cat.List()); n != want {
		t.Errorf("test file has %d alert tests, want %d (fire and benign for every detector)", n, want)
	}
	start := time.Now()
	out, err := exec.Command("promtool", "test", "rules", tests).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	t.Logf("promtool test rules: %d scenarios passed in %v", 2*len(cat.List()), time.Since(start).Round(time.Millisecond))
}

// TestDetectorsAlertmanager backfills the attack data of detectorsLive into
// a fresh Prometheus that loads the exported rules, and checks that their
// alerts reach a real Alertmanager; then promgate's own evaluator, run
// against the same Prometheus, delivers them to a second Alertmanager. It
// also evaluates detectors as two callers through the gateway's enforcement.
func TestDetectorsAlertmanager(t *testing.T) {
	needCommands(t, "promtool", "prometheus-alertmanager")
	cat, err := detect.Load()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(env.tmp, "detectors")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	// Two Alertmanagers: one for Prometheus, one for promgate's evaluator,
	// so that each delivery is seen on its own.
	amProm := startAlertmanager(t, dir, "am-prometheus")
	amGate := startAlertmanager(t, dir, "am-promgate")

	// The attack data, each scenario ending now. container_restart_burst is
	// loaded for two namespaces, for the two-caller check below.
	end := time.Now().Add(-5 * time.Second).Truncate(time.Second)
	var om strings.Builder
	for _, id := range detectorsLive {
		d, ok := cat.Get(id)
		if !ok {
			t.Fatalf("no detector %s", id)
		}
		extras := []map[string]string{nil}
		if id == "container_restart_burst" {
			extras = []map[string]string{{"namespace": nsTeamA}, {"namespace": nsTeamB}}
		}
		for _, extra := range extras {
			b, err := d.Test.Fire.OpenMetrics(end, extra)
			if err != nil {
				t.Fatal(err)
			}
			om.WriteString(strings.TrimSuffix(string(b), "# EOF\n"))
		}
	}
	om.WriteString("# EOF\n")
	input := filepath.Join(dir, "attacks.om")
	if err := os.WriteFile(input, []byte(om.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if out, err := exec.Command("promtool", "tsdb", "create-blocks-from", "openmetrics", input, data).CombinedOutput(); err != nil {
		t.Fatalf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}

	// Prometheus with the exported rules, sending to amProm.
	rules := filepath.Join(dir, "rules.yml")
	if out, err := env.promgate("detectors", "export", "--format", "rules", "--out", rules); err != nil {
		t.Fatalf("detectors export: %v\n%s", err, out)
	}
	promAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	promCfg := fmt.Sprintf("global: {evaluation_interval: 1s}\nrule_files: [%q]\nalerting: {alertmanagers: [{static_configs: [{targets: [%q]}]}]}\n", rules, amProm)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(promCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom, err := env.start("prometheus-detectors", dir, "prometheus",
		"--config.file=prometheus.yml", "--storage.tsdb.path=data",
		"--web.listen-address="+promAddr, "--log.level=warn",
		// Alerts of the first evaluations are dropped until the notifier
		// has discovered the Alertmanager; resend them soon after.
		"--rules.alert.resend-delay=1s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prom.stop() })
	promURL := "http://" + promAddr
	waitHTTP(t, prom, promURL+"/-/ready")

	t.Run("prometheus rule evaluation reaches alertmanager", func(t *testing.T) {
		alerts := waitAlerts(t, amProm, detectorsLive)
		for _, a := range alerts {
			checkDetectorAlert(t, cat, a)
		}
	})

	t.Run("promgate evaluator reaches alertmanager", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		reg := prometheus.NewRegistry()
		// The portable catalog, as promgate serve runs it: the
		// smoothing detector would fail on this 2.42 upstream.
		ev, err := detect.NewEvaluator(config.Detectors{
			Enabled: true, Interval: model.Duration(time.Second),
			AlertmanagerURL: "http://" + amGate, ExternalURL: "https://promgate.e2e.test",
		}, cat.Portable(), detect.NewHTTPQuerier(promURL, nil, nil), slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), reg)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { ev.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		alerts := waitAlerts(t, amGate, detectorsLive)
		for _, a := range alerts {
			checkDetectorAlert(t, cat, a)
			if want := "https://promgate.e2e.test/api/promgate/v1/detectors/" + a.Labels["alertname"]; a.GeneratorURL != want {
				t.Errorf("generatorURL = %q, want %q", a.GeneratorURL, want)
			}
		}
		state := ev.State()
		for _, id := range detectorsLive {
			if state[id].State != detect.StateFiring {
				t.Errorf("evaluator state of %s = %+v, want firing", id, state[id])
			}
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		series := 0
		for _, mf := range mfs {
			if mf.GetName() == "promgate_detector_firing" {
				series = len(mf.GetMetric())
			}
		}
		if want := len(cat.Portable().List()); series != want {
			t.Errorf("promgate_detector_firing has %d series, want %d (the portable detectors)", series, want)
		}
	})

	t.Run("two callers", func(t *testing.T) {
		q := detect.NewHTTPQuerier(promURL, nil, nil)
		teamA := func(s string) (string, error) {
			pq, err := enforce.ParseQuery(s)
			if err != nil {
				return "", err
			}
			return enforce.Rewrite(pq, enforce.Enforcement{"namespace": {nsTeamA}})
		}
		ctx := context.Background()
		// An ns detector: team-a sees only its own namespace, the admin
		// (unrestricted) sees both.
		for _, tc := range []struct {
			who     string
			rewrite func(string) (string, error)
			want    []string
		}{
			{"team-a", teamA, []string{nsTeamA}},
			{"admin", nil, []string{nsTeamA, nsTeamB}},
		} {
			vec, err := cat.Evaluate(ctx, "container_restart_burst", tc.rewrite, q)
			if err != nil {
				t.Fatalf("%s: Evaluate(container_restart_burst) = %v", tc.who, err)
			}
			var got []string
			for _, s := range vec {
				got = append(got, string(s.Metric["namespace"]))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: container_restart_burst namespaces = %v, want %v", tc.who, got, tc.want)
			}
		}
		// A cluster detector: refused for team-a, evaluated for the admin.
		_, err := cat.Evaluate(ctx, "falco_critical_events", teamA, q)
		var de *detect.Error
		if !errors.As(err, &de) || de.Kind != detect.Forbidden {
			t.Errorf("team-a: Evaluate(falco_critical_events) = %v, want a Forbidden *detect.Error", err)
		}
		if vec, err := cat.Evaluate(ctx, "falco_critical_events", nil, q); err != nil || len(vec) == 0 {
			t.Errorf("admin: Evaluate(falco_critical_events) = %v, %v; want the node's alert", vec, err)
		}
	})
}

// needCommands fails the test when a command is missing.
func needCommands(t *testing.T, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found in PATH: run scripts/install-deps.sh", c)
		}
	}
}

// startAlertmanager runs a single-node Alertmanager with clustering off and
// returns its host:port.
func startAlertmanager(t *testing.T, dir, name string) string {
	t.Helper()
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	amDir := filepath.Join(dir, name)
	if err := os.MkdirAll(amDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := "route: {receiver: blackhole, group_wait: 1s, group_interval: 1s, repeat_interval: 1h}\nreceivers: [{name: blackhole}]\n"
	if err := os.WriteFile(filepath.Join(amDir, "alertmanager.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := env.start(name, amDir, "prometheus-alertmanager",
		"--config.file=alertmanager.yml", "--storage.path=data",
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.stop() })
	waitHTTP(t, p, "http://"+addr+"/-/ready")
	return addr
}

// waitHTTP waits until url answers 200 while p runs.
func waitHTTP(t *testing.T, p *process, url string) {
	t.Helper()
	deadline := time.Now().Add(startBudget)
	for {
		if p.exited() {
			t.Fatalf("%s exited early: %v", p.name, p.err)
		}
		if resp, err := http.Get(url); err == nil { //nolint:gosec // G107: the URL of a server this test started on loopback
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s after %v", p.name, url, startBudget)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// amAlert is the part of Alertmanager's GET /api/v2/alerts answer checked.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

// waitAlerts polls the Alertmanager at addr until an active alert of every
// name in want is there, and returns those alerts.
func waitAlerts(t *testing.T, addr string, want []string) []amAlert {
	t.Helper()
	deadline := time.Now().Add(detectorBudget)
	var seen []string
	for {
		var alerts []amAlert
		resp, err := http.Get("http://" + addr + "/api/v2/alerts?active=true")
		if err == nil {
			body, _ := readAll(resp.Body)
			resp.Body.Close()
			err = json.Unmarshal(body, &alerts)
		}
		seen = seen[:0]
		var got []amAlert
		for _, a := range alerts {
			if slices.Contains(want, a.Labels["alertname"]) {
				got = append(got, a)
				if !slices.Contains(seen, a.Labels["alertname"]) {
					seen = append(seen, a.Labels["alertname"])
				}
			}
		}
		if len(seen) == len(want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager %s has alerts %v after %v, want all of %v (last error %v)", addr, seen, detectorBudget, want, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkDetectorAlert checks the labels and annotations the catalog promises.
func checkDetectorAlert(t *testing.T, cat *detect.Catalog, a amAlert) {
	t.Helper()
	d, ok := cat.Get(a.Labels["alertname"])
	if !ok {
		t.Errorf("alert %v is not a detector", a.Labels)
		return
	}
	for k, v := range d.RuleLabels() {
		if a.Labels[k] != v {
			t.Errorf("alert %s: label %s = %q, want %q", d.ID, k, a.Labels[k], v)
		}
	}
	want, err := d.Annotations(a.Labels)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if a.Annotations[k] != v {
			t.Errorf("alert %s: annotation %s = %q, want %q", d.ID, k, a.Annotations[k], v)
		}
	}
}
