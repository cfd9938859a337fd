package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// harness is one run: the processes it started and what it measured.
type harness struct {
	root string
	o    options
	work string // temporary folder: logs, PKI, TSDB, configs, audit file
	bin  string // bench/.bin: promgate, bareproxy, prom-label-proxy
	ps   *procs

	pki     string
	caPool  *x509.CertPool
	ds      dataSet
	prom    *proc
	promURL string
	issuer  *issuer
	// otlp receives the spans of promgate-mtls-traced.
	otlp *otlpSink
	// dash is the dashboard workload's own stack (dashboard.go).
	dash *dashStack

	targets []*target // the Prometheus API targets, in table order
	sidecar []*target // the exporter-sidecar targets (case 6)
	pending []string

	cells       []cell
	sidecarCell []cell
	paired      []pairedResult
	idle        []idleResult

	started            time.Time
	loadStart, loadEnd string
	gitRev             string
}

func newHarness(root string, o options) (*harness, error) {
	work, err := os.MkdirTemp("", "promgate-bench-")
	if err != nil {
		return nil, err
	}
	return &harness{root: root, o: o, work: work, bin: filepath.Join(root, "bench", ".bin"),
		ps: &procs{dir: work}, started: time.Now()}, nil
}

func (h *harness) cleanup() {
	h.ps.stopAll()
	if h.dash != nil && h.dash.exporter != nil {
		_ = h.dash.exporter.Close()
	}
	if h.issuer != nil {
		h.issuer.close()
	}
	h.otlp.close()
	if h.o.keep {
		logf("kept the work folder %s", h.work)
		return
	}
	_ = os.RemoveAll(h.work)
}

func (h *harness) dumpLogs() {
	h.ps.mu.Lock()
	defer h.ps.mu.Unlock()
	for _, p := range h.ps.all {
		if t := p.tail(15); t != "" {
			fmt.Fprintf(os.Stderr, "--- %s (last lines of %s)\n%s\n", p.name, p.log, t)
		}
	}
}

func (h *harness) run(ctx context.Context) error {
	h.loadStart = loadAvg()
	logf("mode %s, load average %s on %d CPUs", h.o.mode, h.loadStart, numCPU())
	if err := h.build(); err != nil {
		return err
	}
	if h.o.only == "dashboards" {
		return h.onlyDashboards(ctx)
	}
	if err := h.startPrometheus(); err != nil {
		return err
	}
	if err := h.startProxies(); err != nil {
		return err
	}
	if h.o.gzip {
		for _, t := range h.targets {
			if t.header == nil {
				t.header = http.Header{}
			}
			t.header.Set("Accept-Encoding", "gzip")
		}
	}
	wls := workloads(h.ds)
	if h.o.mode == "smoke" {
		wls = []workload{wls[0], wls[2]}
	}
	if len(h.o.workloads) > 0 {
		var keep []workload
		for _, w := range wls {
			if slices.Contains(h.o.workloads, w.name) {
				keep = append(keep, w)
			}
		}
		if len(keep) != len(h.o.workloads) {
			return fmt.Errorf("-workloads %q: not every name is a workload of this mode", strings.Join(h.o.workloads, ","))
		}
		wls = keep
	}
	// Every target answers every workload with 200 and the same bytes
	// before anything is measured.
	for _, w := range wls {
		var want int64 = -1
		for _, t := range h.targets {
			c, err := measure(ctx, t, w, 1, 0, 50*time.Millisecond)
			if err != nil {
				return err
			}
			if c.requests == 0 {
				return fmt.Errorf("%s %s: no successful request: %s", t.name, w.name, c.firstErr)
			}
			if want >= 0 && c.respBytes != want {
				logf("warning: %s %s answered %d bytes, %s answered %d", t.name, w.name, c.respBytes, h.targets[0].name, want)
			}
			if want < 0 {
				want = c.respBytes
				logf("workload %s: %d bytes per answer", w.name, want)
			}
		}
	}
	if h.o.only == "tracing" || h.o.only == "tracing-aa" {
		return h.tracingAB(ctx, wls)
	}
	// The idle-connection RSS is taken twice: on fresh processes, and
	// after the load has grown their heaps.
	if h.o.only == "sidecar" {
		wls = nil
	} else if err := h.idleCheck(ctx, wls[0], "fresh"); err != nil {
		return err
	}
	for _, w := range wls {
		for _, conc := range h.o.conc {
			for _, t := range h.targets {
				c, err := measure(ctx, t, w, conc, h.o.warmup, h.o.duration)
				if err != nil {
					return fmt.Errorf("%s %s c=%d: %w", t.name, w.name, conc, err)
				}
				if t.proc.exited() {
					return fmt.Errorf("%s exited during %s c=%d", t.name, w.name, conc)
				}
				logf("%-16s %-10s c=%-3d %8.0f req/s  p50 %7.2f ms  p99 %7.2f ms  cpu/1k %.3f s  rss %5.1f MiB  errors %d %s",
					t.name, w.name, conc, c.rps(), ms(c.p50), ms(c.p99), c.cpuPer1k, c.rss, c.errors, c.firstErr)
				h.cells = append(h.cells, c)
			}
		}
	}
	// Added latency is judged on interleaved c=1 loops: on a shared 2-CPU
	// machine, cells measured one after the other drift by more than the
	// gateway adds.
	if slices.Contains(h.o.conc, 1) {
		// prom-label-proxy is left out: on range-1MB one of its answers
		// takes as long as all the others together, which would cut the
		// rounds, and the target compares promgate with the bare proxy.
		var ts []*target
		for _, t := range h.targets {
			if t.name != "prom-label-proxy" {
				ts = append(ts, t)
			}
		}
		for _, w := range wls {
			r, err := interleave(ctx, ts, w, h.o.warmup, 2*h.o.duration)
			if err != nil {
				return fmt.Errorf("interleaved %s: %w", w.name, err)
			}
			logf("interleaved %-10s %d rounds: %v", w.name, r.rounds, r.p50)
			h.paired = append(h.paired, r)
		}
	}
	if len(h.sidecar) > 0 {
		scrape := workload{name: "scrape", desc: "GET /metrics of node_exporter", path: func(bool) string { return "/metrics" }}
		for _, conc := range h.o.conc {
			for _, t := range h.sidecar {
				c, err := measure(ctx, t, scrape, conc, h.o.warmup, h.o.duration)
				if err != nil {
					return fmt.Errorf("%s scrape c=%d: %w", t.name, conc, err)
				}
				logf("%-16s scrape     c=%-3d %8.0f req/s  p50 %7.2f ms  p99 %7.2f ms  errors %d %s",
					t.name, conc, c.rps(), ms(c.p50), ms(c.p99), c.errors, c.firstErr)
				h.sidecarCell = append(h.sidecarCell, c)
			}
		}
	}
	if h.o.only == "sidecar" {
		if len(h.sidecar) == 0 {
			return errors.New("-only sidecar: the exporter sidecar is pending")
		}
	} else if h.o.mode != "smoke" {
		// The smoke pass checks idle connections once, on fresh
		// processes, to stay well under its minute.
		if err := h.idleCheck(ctx, wls[0], "after load"); err != nil {
			return err
		}
	}
	if h.o.only != "sidecar" {
		if err := h.startDashboards(); err != nil {
			return err
		}
		if err := h.runDashboards(ctx); err != nil {
			return err
		}
	}
	h.loadEnd = loadAvg()
	report := h.report() + h.dashReport()
	if h.o.mode == "smoke" {
		fmt.Println(report)
		logf("smoke pass done in %v", time.Since(h.started).Round(time.Millisecond))
		return nil
	}
	return h.write(report)
}

// idleCheck holds h.o.idle idle keep-alive connections to promgate and to
// the bare proxy, one after the other, and records their RSS.
func (h *harness) idleCheck(ctx context.Context, w workload, phase string) error {
	for _, name := range []string{"promgate-mtls", "bare-tls"} {
		t := h.target(name)
		r, err := holdIdle(ctx, t, w.path(t.explicit), phase, h.o.idle)
		if err != nil {
			return fmt.Errorf("idle connections to %s (%s): %w", name, phase, err)
		}
		logf("%s (%s): RSS %.1f MiB before, %.1f MiB with %d/%d idle keep-alive connections %s", name, phase, r.before, r.rss, r.opened, r.n, r.firstErr)
		if r.opened < r.n {
			return fmt.Errorf("idle connections to %s (%s): opened %d of %d: %s", name, phase, r.opened, r.n, r.firstErr)
		}
		h.idle = append(h.idle, r)
	}
	// Let the servers notice the closed connections before the next step.
	time.Sleep(time.Second)
	return nil
}

func (h *harness) target(name string) *target {
	for _, t := range h.targets {
		if t.name == name {
			return t
		}
	}
	panic("no target " + name)
}

// build compiles promgate and the bare proxy, and installs prom-label-proxy
// when it is missing.
func (h *harness) build() error {
	for _, c := range []string{"prometheus", "promtool"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s not found in PATH: run `make deps` (Debian package prometheus)", c)
		}
	}
	if err := os.MkdirAll(h.bin, 0o755); err != nil {
		return err
	}
	for _, b := range []struct{ out, pkg string }{{"promgate", "./cmd/promgate"}, {"bareproxy", "./bench/bareproxy"}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(h.bin, b.out), b.pkg)
		cmd.Dir = h.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(h.bin, "prom-label-proxy")); err != nil && h.o.only != "write" {
		logf("installing prom-label-proxy v0.11.1 into %s", h.bin)
		cmd := exec.Command("go", "install", "github.com/prometheus-community/prom-label-proxy@v0.11.1")
		cmd.Dir = h.root
		cmd.Env = append(os.Environ(), "GOBIN="+h.bin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go install prom-label-proxy: %w\n%s", err, out)
		}
	}
	if out, err := exec.Command("git", "-C", h.root, "describe", "--always", "--dirty").Output(); err == nil {
		h.gitRev = strings.TrimSpace(string(out))
	}

	h.pki = filepath.Join(h.work, "pki")
	cmd := exec.Command(filepath.Join(h.bin, "promgate"), "certs", "dev", "--out", h.pki,
		"--client", "team-a:team-a", "--client", "admin:admins", "--client", "prometheus:scrapers",
		"--client", "team-b:team-b", "--client", "team-c:team-c")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("promgate certs dev: %w\n%s", err, out)
	}
	ca, err := os.ReadFile(filepath.Join(h.pki, "ca.crt"))
	if err != nil {
		return err
	}
	h.caPool = x509.NewCertPool()
	if !h.caPool.AppendCertsFromPEM(ca) {
		return errors.New("promgate certs dev: ca.crt holds no certificate")
	}
	return nil
}

// clientTLS is the TLS configuration of a caller with the named client
// certificate ("" for none).
func (h *harness) clientTLS(client string) (*tls.Config, error) {
	tc := &tls.Config{RootCAs: h.caPool, MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(0)}
	if client != "" {
		cert, err := tls.LoadX509KeyPair(filepath.Join(h.pki, "client-"+client+".crt"), filepath.Join(h.pki, "client-"+client+".key"))
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (h *harness) startPrometheus() error {
	dir := filepath.Join(h.work, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	end := time.Now().Add(-5 * time.Minute).Truncate(dataInterval)
	h.ds = dataSet{start: end.Add(-dataSpan), end: end}
	t0 := time.Now()
	if err := backfill(dir, h.ds); err != nil {
		return err
	}
	logf("backfilled %d series x %d samples in %v", len(dataNamespaces)*dataPods*2, int(dataSpan/dataInterval)+1, time.Since(t0).Round(time.Millisecond))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(promConfig), 0o644); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	h.promURL = "http://" + addr
	h.prom, err = h.ps.start("prometheus", dir, "prometheus",
		"--config.file=prometheus.yml", "--storage.tsdb.path=data", "--web.listen-address="+addr, "--log.level=warn")
	if err != nil {
		return err
	}
	if err := waitReady(h.prom, plainClient, h.promURL+"/-/ready", nil, 60*time.Second); err != nil {
		return err
	}
	h.targets = append(h.targets, &target{name: "prometheus", base: h.promURL, explicit: true, proc: h.prom})
	return nil
}

// gatewayConfig writes a promgate configuration and returns its path.
func (h *harness) gatewayConfig(name, listen, internal, authType, upstreamURL, kind, oidc, policies string) (string, error) {
	cfg := fmt.Sprintf(`# Written by bench/harness for the %s case.
listen: %s
internal_listen: %s
tls:
  cert_file: %[4]s/server.crt
  key_file: %[4]s/server.key
  client_ca_file: %[4]s/ca.crt
  client_auth_type: %s
  min_version: TLS12
upstream:
  url: %s
  kind: %s
authn:
  mtls:
    subject: cn
    groups: ou
%s
authz:
  policies: %s
  decision: data.promgate.authz.decision
audit:
  path: %s
  on_failure: deny
detectors:
  enabled: false
limits:
  # No per-identity rate limit and no per-network connection bound: the
  # load generator is one identity on one loopback network.
  requests_per_second: 0
  max_connections_per_network: 0
  max_range: 31d
  max_lookback: 31d
  min_step: 1s
  query_timeout: 2m
  max_request_body: 1MiB
`, name, listen, internal, h.pki, authType, upstreamURL, kind, oidc,
		policies, filepath.Join(h.work, name+"-audit.log"))
	if strings.HasSuffix(name, "-solo") || strings.Contains(name, "-solo-") {
		// The same gateway with upstream.coalesce off: every request asks
		// the upstream itself, as it does when no two requests are alike.
		cfg = strings.Replace(cfg, "\n  kind: "+kind+"\n", "\n  kind: "+kind+"\n  coalesce: false\n", 1)
	}
	if strings.HasSuffix(name, "-traced") {
		// The same gateway with tracing on, every span sampled and
		// exported to the harness' sink.
		cfg += "tracing:\n  enabled: true\n  endpoint: " + h.otlp.url + "\n  sample_ratio: 1\n"
	}
	path := filepath.Join(h.work, name+".yml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// checkConfig runs `promgate check`; a refusal is returned as an error with
// promgate's own words.
func (h *harness) checkConfig(path string) error {
	out, err := exec.Command(filepath.Join(h.bin, "promgate"), "check", "--config", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s", strings.Join(strings.Fields(strings.TrimSpace(string(out))), " "))
	}
	return nil
}

// startGateway starts promgate with the config at path and waits for its
// internal readiness endpoint.
func (h *harness) startGateway(name, path, internal string) (*proc, error) {
	p, err := h.ps.start(name, h.work, filepath.Join(h.bin, "promgate"), "serve", "--config", path)
	if err != nil {
		return nil, err
	}
	return p, waitReady(p, plainClient, "http://"+internal+"/-/ready", nil, 30*time.Second)
}

// startMTLSGateway starts promgate in front of Prometheus, requiring client
// certificates, and adds it as a target called name.
func (h *harness) startMTLSGateway(name string, client *tls.Config) error {
	listen, internal, err := twoAddrs()
	if err != nil {
		return err
	}
	path, err := h.gatewayConfig(name, listen, internal, "RequireAndVerifyClientCert", h.promURL, "prometheus-api", "", filepath.Join(h.root, "policies"))
	if err != nil {
		return err
	}
	if err := h.checkConfig(path); err != nil {
		return fmt.Errorf("promgate check (%s): %w", name, err)
	}
	p, err := h.startGateway(name, path, internal)
	if err != nil {
		return err
	}
	h.targets = append(h.targets, &target{name: name, base: "https://" + listen, tls: client, proc: p, upstream: h.prom, metrics: "http://" + internal + "/metrics"})
	return nil
}

func (h *harness) startProxies() error {
	// (2) The bare TLS reverse proxy, requiring the same client certificate.
	bareAddr, err := freeAddr()
	if err != nil {
		return err
	}
	bare, err := h.ps.start("bare-tls", h.work, filepath.Join(h.bin, "bareproxy"), "-listen", bareAddr, "-upstream", h.promURL,
		"-cert", filepath.Join(h.pki, "server.crt"), "-key", filepath.Join(h.pki, "server.key"), "-client-ca", filepath.Join(h.pki, "ca.crt"))
	if err != nil {
		return err
	}
	teamA, err := h.clientTLS("team-a")
	if err != nil {
		return err
	}
	if err := waitReady(bare, tlsClient(teamA), "https://"+bareAddr+"/-/ready", nil, 30*time.Second); err != nil {
		return err
	}
	h.targets = append(h.targets, &target{name: "bare-tls", base: "https://" + bareAddr, tls: teamA, explicit: true, proc: bare, upstream: h.prom})

	// (3) prom-label-proxy, enforcing the same namespaces as a fixed union.
	plpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	plp, err := h.ps.start("prom-label-proxy", h.work, filepath.Join(h.bin, "prom-label-proxy"), "-insecure-listen-address", plpAddr,
		"-upstream", h.promURL, "-label", "namespace", "-label-value", "team-a", "-label-value", "team-a-staging")
	if err != nil {
		return err
	}
	if err := waitReady(plp, plainClient, "http://"+plpAddr+"/api/v1/query?query=vector(1)", nil, 30*time.Second); err != nil {
		return err
	}
	h.targets = append(h.targets, &target{name: "prom-label-proxy", base: "http://" + plpAddr, proc: plp, upstream: h.prom})

	// (4) promgate with mTLS, the default policy, enforcement and audit;
	// (4b) the same with upstream.coalesce off (gatewayConfig keys it on
	// the -solo suffix): what a load of distinct queries gets, since the
	// workloads repeat one query; (4c) the same as (4) with tracing on
	// (the -traced suffix), every span exported over OTLP/HTTP to a sink.
	if h.otlp, err = startOTLPSink(); err != nil {
		return err
	}
	names := []string{"promgate-mtls", "promgate-mtls-solo", "promgate-mtls-traced"}
	if h.o.only == "tracing-aa" {
		// (4d) a twin of (4), the same configuration in another process:
		// the A/A calibration of the tracing A/B.
		names = append(names, "promgate-mtls-twin")
	}
	if h.o.solo && (h.o.only == "tracing" || h.o.only == "tracing-aa") {
		// (4e) the tracing A/B's pair with coalescing off (-solo).
		names = append(names, "promgate-mtls-solo-traced", "promgate-mtls-solo-twin")
	}
	for _, name := range names {
		if err := h.startMTLSGateway(name, teamA); err != nil {
			return err
		}
	}

	// (5) promgate with a bearer JWT from a local issuer.
	if err := h.startBearer(); err != nil {
		return err
	}
	// (6) promgate as the exporter sidecar.
	return h.startSidecar()
}

func twoAddrs() (string, string, error) {
	a, err := freeAddr()
	if err != nil {
		return "", "", err
	}
	b, err := freeAddr()
	return a, b, err
}

func (h *harness) pend(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Println("pending: " + msg)
	h.pending = append(h.pending, msg)
}

func (h *harness) startBearer() error {
	var err error
	if h.issuer, err = newIssuer(); err != nil {
		return err
	}
	listen, internal, err := twoAddrs()
	if err != nil {
		return err
	}
	oidc := fmt.Sprintf("  oidc:\n    - issuer: %s\n      audiences: [promgate]\n      username_claim: email\n      groups_claim: groups", h.issuer.url)
	path, err := h.gatewayConfig("promgate-jwt", listen, internal, "VerifyClientCertIfGiven", h.promURL, "prometheus-api", oidc, filepath.Join(h.root, "policies"))
	if err != nil {
		return err
	}
	if err := h.checkConfig(path); err != nil {
		h.pend("OIDC not wired: promgate check refused authn.oidc: %s", err)
		return nil
	}
	p, err := h.startGateway("promgate-jwt", path, internal)
	if err != nil {
		h.pend("OIDC not wired: promgate did not start with authn.oidc: %v", err)
		return nil
	}
	tok, err := h.issuer.token("promgate", "team-a@bench.example", []string{"team-a"}, 3*time.Hour)
	if err != nil {
		return err
	}
	tc, err := h.clientTLS("")
	if err != nil {
		return err
	}
	hdr := http.Header{"Authorization": {"Bearer " + tok}}
	// Discovery runs in the background; the first tokens may meet
	// "issuer unavailable" for a moment.
	wait := 10 * time.Second
	if h.o.mode == "smoke" {
		wait = 3 * time.Second
	}
	if err := waitReady(p, tlsClient(tc), "https://"+listen+"/api/v1/query?query=vector(1)", hdr, wait); err != nil {
		h.pend("OIDC not wired: a valid token was not accepted: %v", err)
		p.stop()
		return nil
	}
	h.targets = append(h.targets, &target{name: "promgate-jwt", base: "https://" + listen, tls: tc, header: hdr, proc: p, upstream: h.prom})
	return nil
}

func (h *harness) startSidecar() error {
	listen, internal, err := twoAddrs()
	if err != nil {
		return err
	}
	nodeAddr, err := freeAddr()
	if err != nil {
		return err
	}
	// The default policy with one change of data: team-a may scrape,
	// filtered to its namespaces (filtered_scrape_groups); the scrapers
	// group scrapes unrestricted.
	pol := filepath.Join(h.work, "sidecar-policies")
	if err := os.MkdirAll(pol, 0o755); err != nil {
		return err
	}
	rego, err := os.ReadFile(filepath.Join(h.root, "policies", "policy.rego"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pol, "policy.rego"), rego, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pol, "data.json"), []byte(sidecarData), 0o644); err != nil {
		return err
	}
	path, err := h.gatewayConfig("promgate-sidecar", listen, internal, "RequireAndVerifyClientCert", "http://"+nodeAddr+"/metrics", "metrics", "", pol)
	if err != nil {
		return err
	}
	if err := h.checkConfig(path); err != nil {
		h.pend("exporter sidecar not wired: promgate check refused upstream.kind metrics: %s", err)
		return nil
	}
	bin, err := nodeExporter()
	if err != nil {
		h.pend("exporter sidecar: %v", err)
		return nil
	}
	textDir := filepath.Join(h.work, "textfile")
	if err := writeTextfile(textDir); err != nil {
		return err
	}
	node, err := h.ps.start("node_exporter", h.work, bin, "--web.listen-address="+nodeAddr, "--collector.textfile.directory="+textDir, "--web.max-requests=0")
	if err != nil {
		return err
	}
	if err := waitReady(node, plainClient, "http://"+nodeAddr+"/metrics", nil, 30*time.Second); err != nil {
		return err
	}
	pg, err := h.startGateway("promgate-sidecar", path, internal)
	if err != nil {
		h.pend("exporter sidecar not wired: promgate did not start with upstream.kind metrics: %v", err)
		return nil
	}
	bareAddr, err := freeAddr()
	if err != nil {
		return err
	}
	bare, err := h.ps.start("bare-node", h.work, filepath.Join(h.bin, "bareproxy"), "-listen", bareAddr, "-upstream", "http://"+nodeAddr,
		"-cert", filepath.Join(h.pki, "server.crt"), "-key", filepath.Join(h.pki, "server.key"), "-client-ca", filepath.Join(h.pki, "ca.crt"))
	if err != nil {
		return err
	}
	scraper, err := h.clientTLS("prometheus")
	if err != nil {
		return err
	}
	teamA, err := h.clientTLS("team-a")
	if err != nil {
		return err
	}
	if err := waitReady(bare, tlsClient(scraper), "https://"+bareAddr+"/metrics", nil, 30*time.Second); err != nil {
		return err
	}
	for _, tc := range []*tls.Config{scraper, teamA} {
		if err := waitReady(pg, tlsClient(tc), "https://"+listen+"/metrics", nil, 5*time.Second); err != nil {
			h.pend("exporter sidecar: a scrape through promgate failed: %v", err)
			pg.stop()
			return nil
		}
	}
	h.sidecar = []*target{
		{name: "node_exporter", base: "http://" + nodeAddr, proc: node},
		{name: "bare-tls-node", base: "https://" + bareAddr, tls: scraper, proc: bare, upstream: node},
		{name: "sidecar-unfiltered", base: "https://" + listen, tls: scraper, proc: pg, upstream: node},
		{name: "sidecar-filtered", base: "https://" + listen, tls: teamA, proc: pg, upstream: node},
	}
	return nil
}

// sidecarData is the default policy's data with team-a as a filtered
// scrape group.
const sidecarData = `{"promgate": {
  "admin_groups": ["admins"],
  "scrape_groups": ["scrapers"],
  "filtered_scrape_groups": ["team-a"],
  "group_namespaces": {"team-a": ["team-a", "team-a-staging"], "team-b": ["team-b"]}
}}
`

// writeTextfile writes a node_exporter textfile with 2,000 samples spread
// over the data set's namespaces (half of them team-a's), so that the
// filtered scrape keeps a share of the exposition instead of nothing.
func writeTextfile(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# HELP bench_pod_restarts_total Restarts of a pod.\n# TYPE bench_pod_restarts_total counter\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "bench_pod_restarts_total{namespace=%q,pod=\"pod-%d\"} %d\n", dataNamespaces[i%len(dataNamespaces)], i, i%7)
	}
	return os.WriteFile(filepath.Join(dir, "bench.prom"), []byte(b.String()), 0o644)
}

// nodeExporter finds node_exporter, installing Debian's
// prometheus-node-exporter when it is missing and the harness runs as root.
func nodeExporter() (string, error) {
	for _, name := range []string{"prometheus-node-exporter", "node_exporter"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	if os.Geteuid() != 0 {
		return "", errors.New("node_exporter not found: apt-get install prometheus-node-exporter")
	}
	logf("installing prometheus-node-exporter (Debian)")
	cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "prometheus-node-exporter")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get install prometheus-node-exporter: %w\n%s", err, out)
	}
	return exec.LookPath("prometheus-node-exporter")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
