//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Namespaces of the Prometheus self-scrape jobs. noNamespace stands for the
// series that carry no namespace label at all.
const (
	nsTeamA      = "team-a"
	nsTeamAStage = "team-a-staging"
	nsTeamB      = "team-b"
	nsKube       = "kube-system"
	noNamespace  = ""
)

// allNamespaces are what an unrestricted caller must see.
var allNamespaces = []string{nsTeamA, nsTeamB, nsKube, noNamespace}

// Budgets. The whole run should stay well under 90 s.
const (
	dataBudget    = 60 * time.Second // until Prometheus has scraped every job
	startBudget   = 30 * time.Second // until a process listens
	stopBudget    = 10 * time.Second // until a process exits after SIGTERM
	requestBudget = 15 * time.Second // one HTTP request
)

// env is the running stack, built once by TestMain.
var env *stack

// stack is everything TestMain starts: one Prometheus, the recording proxy in
// front of it and three gateways.
type stack struct {
	root string // module root
	tmp  string
	bin  string // the promgate binary

	pki     string // `certs dev` output trusted by the gateways
	foreign string // a second, untrusted `certs dev` output

	promAddr string // 127.0.0.1:port of Prometheus
	promURL  string
	rec      *recorder

	// main requires and verifies client certificates and proxies to rec.
	main *gateway
	// ifGiven verifies client certificates only when given.
	ifGiven *gateway
	// down points at a closed port.
	down *gateway

	mu    sync.Mutex
	procs []*process
}

// process is one child process with its output in files.
type process struct {
	name   string
	cmd    *exec.Cmd
	stderr string
	done   chan struct{}
	err    error // set when done is closed
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) (code int) {
	start := time.Now()
	s := &stack{}
	defer s.killAll()
	if err := s.setup(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: e2e setup: %v\n", err)
		s.dumpLogs()
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: stack ready in %v (prometheus %s, gateway %s)\n",
		time.Since(start).Round(time.Millisecond), s.promAddr, s.main.addr)
	env = s
	code = m.Run()
	// The audit and log checks read what the whole suite left behind, so they
	// run after it, once the gateways have shut down gracefully.
	if problems := s.afterSuite(); len(problems) > 0 {
		fmt.Fprintln(os.Stderr, "--- FAIL: e2e post-suite checks (audit log, gateway logs, shutdown)")
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "    "+p)
		}
		code = 1
	} else {
		fmt.Fprintln(os.Stderr, "--- PASS: e2e post-suite checks (audit log, gateway logs, shutdown)")
	}
	fmt.Fprintf(os.Stderr, "e2e: total %v\n", time.Since(start).Round(time.Millisecond))
	if code != 0 {
		s.dumpLogs()
	}
	return code
}

// setup builds the binary, writes the PKI and starts every process.
func (s *stack) setup() error {
	for _, c := range []string{"prometheus"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s not found in PATH: run scripts/install-deps.sh (it installs the Debian packages prometheus and testssl.sh)", c)
		}
	}
	var err error
	if s.root, err = moduleRoot(); err != nil {
		return err
	}
	if s.tmp, err = os.MkdirTemp("", "promgate-e2e-"); err != nil {
		return err
	}
	s.bin = filepath.Join(s.tmp, "promgate")
	build := exec.Command("go", "build", "-o", s.bin, "./cmd/promgate")
	build.Dir = s.root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/promgate: %w\n%s", err, out)
	}

	// Prometheus starts first: it needs the longest to have data.
	if err := s.startPrometheus(); err != nil {
		return err
	}

	s.pki = filepath.Join(s.tmp, "pki")
	s.foreign = filepath.Join(s.tmp, "foreign-pki")
	if out, err := s.promgate("certs", "dev", "--out", s.pki,
		"--client", "admin:admins", "--client", "team-a:team-a", "--client", "team-b:team-b",
		"--client", "nobody:nobody"); err != nil {
		return fmt.Errorf("promgate certs dev: %w\n%s", err, out)
	}
	if out, err := s.promgate("certs", "dev", "--out", s.foreign); err != nil {
		return fmt.Errorf("promgate certs dev (foreign CA): %w\n%s", err, out)
	}

	s.rec, err = newRecorder(s.promURL)
	if err != nil {
		return err
	}
	closed, err := freePort()
	if err != nil {
		return err
	}
	s.main = &gateway{name: "main", authType: "RequireAndVerifyClientCert", upstream: s.rec.url}
	s.ifGiven = &gateway{name: "ifgiven", authType: "VerifyClientCertIfGiven", upstream: s.rec.url}
	s.down = &gateway{name: "down", authType: "RequireAndVerifyClientCert", upstream: "http://" + closed}
	gws := []*gateway{s.main, s.ifGiven, s.down}
	for _, g := range gws {
		if err := s.writeGateway(g); err != nil {
			return err
		}
		if err := s.startGateway(g); err != nil {
			return err
		}
	}
	for _, g := range gws {
		if err := s.waitGateway(g); err != nil {
			return err
		}
	}
	return s.waitForData()
}

// moduleRoot finds the folder of go.mod through `go env GOMOD`.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside the promgate module")
	}
	return filepath.Dir(gomod), nil
}

// promgate runs a short promgate command and returns its combined output.
func (s *stack) promgate(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Dir = s.tmp
	return cmd.CombinedOutput()
}

// freePort returns a loopback address that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", err
	}
	if strings.HasSuffix(addr, ":9090") {
		return freePort()
	}
	return addr, nil
}

// start launches a child process with stdout and stderr in files under tmp.
// The child gets SIGKILL if the test process dies before cleaning up.
func (s *stack) start(name, dir string, args ...string) (*process, error) {
	stderrPath := filepath.Join(s.tmp, name+".stderr")
	f, err := os.Create(stderrPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, stderr: stderrPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// stop sends SIGTERM and waits for the process to end, killing it after
// stopBudget. It returns the exit error of a graceful stop.
func (p *process) stop() error {
	if p.exited() {
		return fmt.Errorf("%s had already exited: %v", p.name, p.err) //nolint:errorlint // the exit error is nil when the process exited with status 0; %v prints that as <nil>
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(stopBudget):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %v of SIGTERM", p.name, stopBudget)
	}
}

// killAll ends every process still running. It runs on every exit path.
func (s *stack) killAll() {
	s.mu.Lock()
	procs := slices.Clone(s.procs)
	s.mu.Unlock()
	for _, p := range procs {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if s.rec != nil {
		s.rec.srv.Close()
	}
	if s.tmp != "" && os.Getenv("PROMGATE_E2E_KEEP") == "" {
		os.RemoveAll(s.tmp)
	}
}

// dumpLogs prints the tail of every child's output, for failures.
func (s *stack) dumpLogs() {
	s.mu.Lock()
	procs := slices.Clone(s.procs)
	s.mu.Unlock()
	for _, p := range procs {
		b, err := os.ReadFile(p.stderr)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintf(os.Stderr, "=== last lines of %s output:\n%s\n", p.name, strings.Join(lines, "\n"))
	}
}

// Prometheus scrapes itself four times, once per namespace and once without a
// namespace label. Each job also carries a marker label of its own, so that
// the labels route shows which jobs' series a caller could read.
const promConfig = `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: team-a
    static_configs: [{targets: ['%[1]s'], labels: {namespace: team-a, e2e_team_a_only: "1"}}]
  - job_name: team-b
    static_configs: [{targets: ['%[1]s'], labels: {namespace: team-b, e2e_team_b_only: "1"}}]
  - job_name: kube-system
    static_configs: [{targets: ['%[1]s'], labels: {namespace: kube-system, e2e_kube_system_only: "1"}}]
  - job_name: cluster
    static_configs: [{targets: ['%[1]s'], labels: {e2e_no_namespace: "1"}}]
`

// promRules has an alert that always fires in team-b, so that rules and alerts
// have something to leak.
const promRules = `groups:
  - name: e2e
    rules:
      - alert: E2ETeamBAlwaysFiring
        expr: up{namespace="team-b"} > 0
        labels: {severity: none}
      - record: e2e:up:sum
        expr: sum by (namespace) (up)
`

// markerNamespace maps each job's marker label, and each job name, to its
// namespace.
var (
	markerNamespace = map[string]string{
		"e2e_team_a_only":      nsTeamA,
		"e2e_team_b_only":      nsTeamB,
		"e2e_kube_system_only": nsKube,
		"e2e_no_namespace":     noNamespace,
	}
	jobNamespace = map[string]string{
		"team-a":      nsTeamA,
		"team-b":      nsTeamB,
		"kube-system": nsKube,
		"cluster":     noNamespace,
	}
)

func (s *stack) startPrometheus() error {
	var err error
	if s.promAddr, err = freePort(); err != nil {
		return err
	}
	s.promURL = "http://" + s.promAddr
	dir := filepath.Join(s.tmp, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), fmt.Appendf(nil, promConfig, s.promAddr), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(promRules), 0o644); err != nil {
		return err
	}
	p, err := s.start("prometheus", dir, "prometheus",
		"--config.file=prometheus.yml",
		"--storage.tsdb.path=data",
		"--web.listen-address="+s.promAddr,
		"--web.enable-lifecycle",
		"--log.level=warn")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(startBudget)
	for {
		if p.exited() {
			return fmt.Errorf("prometheus exited early: %v", p.err) //nolint:errorlint // the exit error is nil when the process exited with status 0; %v prints that as <nil>
		}
		resp, err := http.Get(s.promURL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prometheus not ready on %s after %v", s.promAddr, startBudget)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitForData polls Prometheus directly (not through the gateway or the
// recorder) until every job has been scraped and the recording rule and the
// alert have been evaluated.
func (s *stack) waitForData() error {
	deadline := time.Now().Add(dataBudget)
	var last string
	for {
		// Four samples each, so that rates, offsets and subqueries over
		// the last seconds have data.
		seen, err := promNamespaces(s.promURL, `count by (namespace) (count_over_time(up[1m]) >= 4)`)
		alerts, aerr := promNamespaces(s.promURL, `ALERTS{alertstate="firing"}`)
		if err == nil && aerr == nil && containsAll(seen, allNamespaces) && alerts[nsTeamB] {
			return nil
		}
		last = fmt.Sprintf("up namespaces %v (%v), firing alert namespaces %v (%v)", keys(seen), err, keys(alerts), aerr)
		if time.Now().After(deadline) {
			return fmt.Errorf("prometheus had no data for every namespace after %v: %s", dataBudget, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// promNamespaces runs an instant query against Prometheus itself and returns
// the namespace values of the result ("" for series without the label).
func promNamespaces(base, query string) (map[string]bool, error) {
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
	}
	if err := json.Unmarshal(body.Data.Result, &vec); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, s := range vec {
		seen[s.Metric["namespace"]] = true
	}
	return seen, nil
}

func containsAll(set map[string]bool, want []string) bool {
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, fmt.Sprintf("%q", k))
	}
	slices.Sort(out)
	return out
}

// gateway is one promgate serve process.
type gateway struct {
	name     string
	authType string
	upstream string

	dir      string
	config   string
	addr     string // public listener
	internal string // internal listener
	audit    string
	proc     *process

	// log holds every exchange a client had with the public listener, for the
	// audit check.
	log exchangeLog
}

// gatewayConfig uses paths relative to the config file's folder (the PKI is
// a sibling folder) while the process runs elsewhere, so that relative path
// resolution is exercised too.
const gatewayConfig = `listen: %s
internal_listen: %s
tls:
  cert_file: ../pki/server.crt
  key_file: ../pki/server.key
  client_ca_file: ../pki/ca.crt
  client_auth_type: %s
upstream:
  url: %s
authz:
  policies: %s
audit:
  path: audit.log
limits:
  requests_per_second: 1000
  burst: 1000
`

func (s *stack) writeGateway(g *gateway) error {
	var err error
	if g.addr, err = freePort(); err != nil {
		return err
	}
	if g.internal, err = freePort(); err != nil {
		return err
	}
	g.dir = filepath.Join(s.tmp, "gw-"+g.name)
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		return err
	}
	g.config = filepath.Join(g.dir, "promgate.yml")
	g.audit = filepath.Join(g.dir, "audit.log")
	cfg := fmt.Sprintf(gatewayConfig, g.addr, g.internal, g.authType, g.upstream, filepath.Join(s.root, "policies"))
	return os.WriteFile(g.config, []byte(cfg), 0o644)
}

func (s *stack) startGateway(g *gateway) error {
	var err error
	g.proc, err = s.start("promgate-"+g.name, s.tmp, s.bin, "serve", "--config", g.config, "--log.level", "debug")
	return err
}

// waitGateway waits for the "public listener started" log line with the
// configured address, and for the internal /-/ready.
func (s *stack) waitGateway(g *gateway) error {
	deadline := time.Now().Add(startBudget)
	for {
		if g.proc.exited() {
			return fmt.Errorf("promgate serve (%s) exited early: %v", g.name, g.proc.err) //nolint:errorlint // the exit error is nil when the process exited with status 0; %v prints that as <nil>
		}
		addr, _ := listenerAddr(g.proc.stderr)
		if addr != "" {
			if addr != g.addr {
				return fmt.Errorf("promgate serve (%s) listens on %s, configured %s", g.name, addr, g.addr)
			}
			resp, err := http.Get("http://" + g.internal + "/-/ready")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("promgate serve (%s) not ready after %v", g.name, startBudget)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listenerAddr returns the addr of the "public listener started" JSON log line.
func listenerAddr(stderr string) (string, error) {
	b, err := os.ReadFile(stderr)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "public listener started" {
			return line.Addr, nil
		}
	}
	return "", nil
}

// apiResponse is Prometheus' response envelope.
type apiResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// readAll reads at most 64 MiB.
func readAll(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, 64<<20))
}

// afterSuite stops the gateways with SIGTERM and checks what they left: one
// audit record per answered request with the contract's fields, and no
// secret or upstream address in the audit logs or the gateways' logs.
func (s *stack) afterSuite() []string {
	var problems []string
	gws := []*gateway{s.main, s.ifGiven, s.down}
	for _, g := range gws {
		if err := g.proc.stop(); err != nil {
			problems = append(problems, fmt.Sprintf("promgate serve (%s) did not shut down cleanly on SIGTERM: %v", g.name, err))
		}
	}
	for _, g := range gws {
		problems = append(problems, checkAudit(g)...)
	}

	// Nothing secret, and no upstream address, in any audit log or log.
	needles := []string{"PRIVATE KEY", "BEGIN CERTIFICATE", "Bearer ", "Cookie", "e2e-secret", s.promAddr, "goroutine ", "panic:"}
	for _, g := range gws {
		if u, err := url.Parse(g.upstream); err == nil {
			needles = append(needles, u.Host)
		}
	}
	var files []string
	for _, g := range gws {
		files = append(files, g.audit, g.proc.stderr)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			problems = append(problems, fmt.Sprintf("read %s: %v", f, err))
			continue
		}
		for _, n := range needles {
			if i := bytes.Index(b, []byte(n)); i >= 0 {
				start, end := max(0, i-120), min(len(b), i+len(n)+120)
				problems = append(problems, fmt.Sprintf("%s contains %q: ...%s...", filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), n, b[start:end]))
			}
		}
	}

	// No error body carries a secret, an upstream address or a stack.
	bodies := errorBodies.all()
	for _, b := range bodies {
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				problems = append(problems, fmt.Sprintf("an error body contains %q: %s", n, b))
			}
		}
	}
	fmt.Fprintf(os.Stderr, "e2e: %d error bodies checked for leaks\n", len(bodies))

	// No identity, session or tenant header ever reached the upstream.
	for _, f := range s.rec.all() {
		for k := range f.Header {
			if headerForbidden(k) {
				problems = append(problems, fmt.Sprintf("header %s reached the upstream in %s %s", k, f.Method, f.RequestURI))
			}
		}
	}
	return problems
}

// auditRecord holds the fields of DESIGN.md "Audit record" that are checked.
type auditRecord struct {
	Time     string `json:"time"`
	ID       string `json:"id"`
	Identity *struct {
		Method  string   `json:"method"`
		Subject string   `json:"subject"`
		Groups  []string `json:"groups"`
	} `json:"identity"`
	RemoteAddr    string   `json:"remote_addr"`
	Method        string   `json:"method"`
	Route         string   `json:"route"`
	Path          string   `json:"path"`
	Query         []string `json:"query"`
	EnforcedQuery []string `json:"enforced_query"`
	Decision      *struct {
		Allow  bool   `json:"allow"`
		Reason string `json:"reason"`
	} `json:"decision"`
	Status int `json:"status"`
}

// checkAudit compares g's audit log with the exchanges its clients had.
func checkAudit(g *gateway) []string {
	var problems []string
	bad := func(format string, args ...any) {
		if len(problems) < 30 {
			problems = append(problems, fmt.Sprintf("audit (%s): ", g.name)+fmt.Sprintf(format, args...))
		}
	}
	b, err := os.ReadFile(g.audit)
	if err != nil {
		return []string{fmt.Sprintf("audit (%s): %v", g.name, err)}
	}
	sent := g.log.all()
	type key struct {
		method string
		status int
	}
	diff := map[key]int{}
	for _, e := range sent {
		diff[key{e.Method, e.Status}]++
	}
	ids := map[string]bool{}
	n, anonymous := 0, 0
	for i, line := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		n++
		var r auditRecord
		if err := json.Unmarshal(line, &r); err != nil {
			bad("line %d is not JSON: %v", i+1, err)
			continue
		}
		var raw map[string]json.RawMessage
		_ = json.Unmarshal(line, &raw)
		for _, f := range []string{"time", "id", "remote_addr", "method", "route", "path", "status"} {
			if _, ok := raw[f]; !ok {
				bad("line %d has no %q: %s", i+1, f, line)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, r.Time); err != nil {
			bad("line %d: time %q: %v", i+1, r.Time, err)
		}
		if r.ID == "" || ids[r.ID] {
			bad("line %d: id %q empty or repeated", i+1, r.ID)
		}
		ids[r.ID] = true
		if !strings.HasPrefix(r.RemoteAddr, "127.0.0.1") {
			bad("line %d: remote_addr %q", i+1, r.RemoteAddr)
		}
		if r.Method == "" || r.Route == "" || !strings.HasPrefix(r.Path, "/") || r.Status < 100 {
			bad("line %d: method %q route %q path %q status %d", i+1, r.Method, r.Route, r.Path, r.Status)
		}
		authenticated := r.Status != http.StatusUnauthorized
		switch {
		case r.Status == http.StatusNotFound || r.Status == http.StatusMethodNotAllowed:
			// Routing and the method check come after authentication
			// (see the proxy package doc), so these records normally carry
			// the caller's identity; the check does not require it, and
			// counts the ones without.
			if r.Identity == nil {
				anonymous++
			}
		case authenticated && (r.Identity == nil || r.Identity.Subject == "" || r.Identity.Method != "mtls"):
			bad("line %d: status %d without an mtls identity: %s", i+1, r.Status, line)
		}
		if !authenticated && r.Identity != nil {
			bad("line %d: 401 with an identity: %s", i+1, line)
		}
		switch r.Status {
		case http.StatusOK, http.StatusBadGateway:
			if r.Decision == nil || !r.Decision.Allow {
				bad("line %d: status %d without an allowing decision: %s", i+1, r.Status, line)
			}
		case http.StatusForbidden:
			if r.Decision == nil {
				bad("line %d: 403 without a decision: %s", i+1, line)
			}
		}
		if r.Status == http.StatusOK && r.Identity != nil && !slices.Contains(r.Identity.Groups, "admins") &&
			slices.Contains([]string{"query", "query_range", "series", "federate"}, r.Route) && len(r.EnforcedQuery) == 0 {
			bad("line %d: restricted %s request without enforced_query: %s", i+1, r.Route, line)
		}
		diff[key{r.Method, r.Status}]--
	}
	if n != len(sent) {
		bad("%d records, but clients got %d responses from the public listener", n, len(sent))
	}
	for k, v := range diff {
		switch {
		case v > 0:
			bad("%d %s requests answered %d have no record", v, k.method, k.status)
		case v < 0:
			bad("%d records of %s %d that no client saw", -v, k.method, k.status)
		}
	}
	fmt.Fprintf(os.Stderr, "e2e: audit (%s): %d records for %d answered requests (%d 404/405 records without identity)\n", g.name, n, len(sent), anonymous)
	return problems
}
