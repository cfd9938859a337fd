//go:build e2e

package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/promgate/promgate/demo"
)

// TestDemoMatchesPrometheus backfills a real (Debian) Prometheus with the
// demo's history through `promtool tsdb create-blocks-from openmetrics` and
// compares its JSON with the embedded upstream's for the same queries.
// Evaluation times are off the 15 s sample grid, so that Prometheus 2.x's
// closed and 3.x's left-open range windows select the same samples.
func TestDemoMatchesPrometheus(t *testing.T) {
	start := time.Now().Add(-2 * time.Hour)
	up, err := demo.New(demo.Options{Start: start})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	embedded := httptest.NewServer(up.Handler())
	defer embedded.Close()

	dir := filepath.Join(env.tmp, "demo-compare")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	om := filepath.Join(dir, "history.om")
	f, err := os.Create(om)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Scenario().WriteOpenMetrics(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "tsdb", "create-blocks-from", "openmetrics", om, filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte("global: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.start("prometheus-demo-compare", dir, "prometheus", "--config.file=prometheus.yml",
		"--storage.tsdb.path=data", "--storage.tsdb.retention.time=30d", "--web.listen-address="+addr, "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	real := "http://" + addr
	waitHTTPReady(t, real+"/-/ready", p)

	at := func(d time.Duration) string {
		step := demo.Step.Milliseconds()
		ms := start.UnixMilli()/step*step + d.Milliseconds() - 7000
		return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)
	}
	type req struct {
		path   string
		params url.Values
	}
	var reqs []req
	instant := []string{
		`count by (namespace) (up)`,
		`sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="", image!=""}[5m])) > 1`,
		`sum by (namespace, pod) (increase(container_network_transmit_bytes_total{pod!=""}[1h])) > 2e9`,
		`sum by (job, instance, code) (rate(apiserver_request_total{code=~"401|403"}[5m])) > 0.5`,
		`sum by (resource, subresource, verb) (increase(apiserver_request_total{code="403", resource=~"secrets|serviceaccounts"}[10m])) > 3`,
		`max by (namespace, ingress) (time() - kube_ingress_created) < 600`,
		`(sum by (host, path) (rate(nginx_ingress_controller_requests{status="404"}[5m])) / sum by (host, path) (rate(nginx_ingress_controller_requests[5m]))) > 0.3 and sum by (host, path) (rate(nginx_ingress_controller_requests[5m])) > 0.2`,
		`quantile by (namespace) (0.5, rate(container_network_receive_bytes_total[10m]))`,
		`topk(3, container_memory_working_set_bytes)`,
		`avg_over_time(kube_pod_owner[30m])`,
		`kube_ingress_info[1m]`,
		`1 + 1`,
	}
	for _, q := range instant {
		for _, when := range []time.Duration{0, -20 * time.Minute, -6 * time.Hour} {
			reqs = append(reqs, req{"/api/v1/query", url.Values{"query": {q}, "time": {at(when)}}})
		}
	}
	reqs = append(reqs,
		req{"/api/v1/query_range", url.Values{"query": {`sum by (namespace) (rate(container_cpu_usage_seconds_total{container!=""}[5m]))`},
			"start": {at(-3 * time.Hour)}, "end": {at(0)}, "step": {"300"}}},
		req{"/api/v1/query_range", url.Values{"query": {`sum by (code) (rate(apiserver_request_total[5m]))`},
			"start": {at(-90 * time.Minute)}, "end": {at(0)}, "step": {"60"}}},
		req{"/api/v1/series", url.Values{"match[]": {`kube_ingress_info`, `up{namespace="team-a"}`}, "start": {at(-time.Hour)}, "end": {at(0)}}},
		req{"/api/v1/labels", url.Values{"match[]": {`nginx_ingress_controller_requests`}, "start": {at(-time.Hour)}, "end": {at(0)}}},
		req{"/api/v1/label/pod/values", url.Values{"match[]": {`up{namespace="team-b"}`}, "start": {at(-time.Hour)}, "end": {at(0)}}},
		req{"/api/v1/label/namespace/values", url.Values{"match[]": {`{job="kube-state-metrics"}`}, "start": {at(-time.Hour)}, "end": {at(0)}}},
		req{"/api/v1/query", url.Values{"query": {`sum(`}}},
		req{"/api/v1/series", url.Values{}},
	)
	for _, r := range reqs {
		t.Run(r.path+"?"+r.params.Encode(), func(t *testing.T) {
			want := fetchNormalized(t, real+r.path, r.params)
			got := fetchNormalized(t, embedded.URL+r.path, r.params)
			if diff := cmp.Diff(want, got, cmp.Comparer(closeFloats)); diff != "" {
				t.Errorf("real Prometheus (-) vs embedded upstream (+):\n%s", diff)
			}
		})
	}
}

// closeFloats compares two values of the normalised JSON to a relative 1e-9.
func closeFloats(a, b float64) bool {
	if a == b || math.IsNaN(a) && math.IsNaN(b) {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// normalized is what is compared of a response: the status, the error type
// (messages differ between versions) and the data, with string sample
// values turned into numbers and result lists sorted.
type normalized struct {
	Code      int
	ErrorType string
	Data      any
}

func fetchNormalized(t *testing.T, u string, params url.Values) normalized {
	t.Helper()
	resp, err := http.Get(u + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := readAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Data      any    `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("%s: %v: %s", u, err, b)
	}
	return normalized{Code: resp.StatusCode, ErrorType: env.ErrorType, Data: normalizeJSON(env.Data)}
}

func normalizeJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalizeJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeJSON(e)
		}
		// A sample pair [ts, "value"] stays in order; lists of objects
		// (series, samples) are sorted by their JSON.
		if len(out) == 2 {
			if _, ok := x[1].(string); ok {
				if _, ok := x[0].(float64); ok {
					return out
				}
			}
		}
		sort.SliceStable(out, func(i, j int) bool {
			bi, _ := json.Marshal(out[i])
			bj, _ := json.Marshal(out[j])
			return string(bi) < string(bj)
		})
		return out
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil && x != "" && strings.ContainsAny(x, "0123456789") {
			return f
		}
		return x
	}
	return v
}

func waitHTTPReady(t *testing.T, u string, p *process) {
	t.Helper()
	deadline := time.Now().Add(startBudget)
	for {
		if p.exited() {
			t.Fatalf("%s exited early: %v", p.name, p.err)
		}
		if resp, err := http.Get(u); err == nil { //nolint:gosec // G107: the URL of a server this test started on loopback
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v", u, startBudget)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// demoRun is one `promgate demo` subprocess.
type demoRun struct {
	cmd    *exec.Cmd
	out    *demoOutput
	done   chan error
	dir    string
	listen string
}

// demoOutput collects the subprocess's stdout lines.
type demoOutput struct {
	lines chan string
	all   []string
}

func startDemo(t *testing.T, dir string, extra ...string) *demoRun {
	t.Helper()
	listen, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	internal, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"demo", "--dir", dir, "--listen", listen, "--internal-listen", internal}, extra...)
	cmd := exec.Command(env.bin, args...)
	cmd.Stderr, err = os.Create(filepath.Join(env.tmp, "demo-"+strconv.FormatInt(time.Now().UnixNano(), 10)+".stderr"))
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &demoRun{cmd: cmd, out: &demoOutput{lines: make(chan string, 1000)}, done: make(chan error, 1), dir: dir, listen: listen}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			r.out.lines <- sc.Text()
		}
		close(r.out.lines)
		r.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	deadline := time.After(startBudget)
	for {
		select {
		case l, ok := <-r.out.lines:
			if !ok {
				t.Fatalf("promgate demo exited before it was ready:\n%s", strings.Join(r.out.all, "\n"))
			}
			r.out.all = append(r.out.all, l)
			if strings.HasPrefix(l, "Ctrl-C stops the demo") {
				t.Logf("promgate demo ready in %v", time.Since(begin).Round(time.Millisecond))
				return r
			}
		case <-deadline:
			t.Fatalf("promgate demo not ready after %v:\n%s", startBudget, strings.Join(r.out.all, "\n"))
		}
	}
}

// stop sends SIGINT (Ctrl-C) and wants a clean exit.
func (r *demoRun) stop(t *testing.T) {
	t.Helper()
	_ = r.cmd.Process.Signal(os.Interrupt)
	go func() {
		for l := range r.out.lines {
			r.out.all = append(r.out.all, l)
		}
	}()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("promgate demo exited with %v after Ctrl-C", err)
		}
	case <-time.After(stopBudget):
		_ = r.cmd.Process.Kill()
		t.Errorf("promgate demo did not stop within %v of Ctrl-C", stopBudget)
	}
}

// demoCommand is one printed curl command with the comment above it.
type demoCommand struct {
	comment string
	line    string
}

func (r *demoRun) commands() []demoCommand {
	var out []demoCommand
	comment := ""
	for _, l := range r.out.all {
		switch {
		case strings.HasPrefix(l, "# "):
			comment = l
		case strings.HasPrefix(l, "curl "):
			out = append(out, demoCommand{comment, l})
		}
	}
	return out
}

// shellWords splits a POSIX shell line made of bare words and single-quoted
// words (a quote inside is written quote, backslash, quote, quote), the
// only quoting the demo prints.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '\'':
			quoted, in = true, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case c == ' ':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case strings.IndexByte(`"$;&|<>()`+"`", c) >= 0:
			return nil, fmt.Errorf("unexpected shell character %q in %s", c, s)
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// runCurl runs a printed curl command with Go's client: --cacert, --cert,
// --key, -G, --data-urlencode and -sS are the only options it uses.
func runCurl(t *testing.T, line string) (int, []byte) {
	t.Helper()
	words, err := shellWords(line)
	if err != nil {
		t.Fatal(err)
	}
	var caFile, certFile, keyFile, target string
	form := url.Values{}
	for i := 1; i < len(words); i++ {
		w := words[i]
		next := func() string {
			if i+1 >= len(words) {
				t.Fatalf("%s needs a value in %s", w, line)
			}
			i++
			return words[i]
		}
		switch w {
		case "-sS", "-G":
		case "--cacert":
			caFile = next()
		case "--cert":
			certFile = next()
		case "--key":
			keyFile = next()
		case "--data-urlencode":
			k, v, _ := strings.Cut(next(), "=")
			form.Add(k, v)
		default:
			if strings.HasPrefix(w, "-") || target != "" {
				t.Fatalf("unexpected curl argument %q in %s", w, line)
			}
			target = w
		}
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in", caFile)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: requestBudget}
	defer hc.CloseIdleConnections()
	if len(form) > 0 {
		target += "?" + form.Encode()
	}
	resp, err := hc.Get(target)
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// demoNamespaces returns the namespace values of a vector response.
func demoNamespaces(t *testing.T, body []byte) map[string]bool {
	t.Helper()
	ns, err := vectorNS(body)
	if err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return ns
}

// TestDemoCommand runs `promgate demo` as a user would: it runs every
// printed command and checks its outcome, checks that alice's view of every
// attack is confined to team-a, stops the demo with Ctrl-C, and checks that
// a second run keeps the CA.
func TestDemoCommand(t *testing.T) {
	dir := filepath.Join(env.tmp, "demo-folder")
	run := startDemo(t, dir)
	if !slices.ContainsFunc(run.out.all, func(l string) bool { return strings.HasPrefix(l, "Created a development CA") }) {
		t.Errorf("the first run did not say it created a CA:\n%s", strings.Join(run.out.all, "\n"))
	}
	cmds := run.commands()
	ran := map[string]bool{}
	var alice, admin demoCommand
	var detectorLines []demoCommand
	for _, c := range cmds {
		if strings.Contains(c.line, "/api/promgate/") {
			detectorLines = append(detectorLines, c)
			continue // checked below, once the plain commands ran
		}
		code, body := runCurl(t, c.line)
		switch {
		case strings.Contains(c.comment, "alice (group team-a) works"):
			alice = c
			ran["alice"] = true
			if code != 200 {
				t.Errorf("%s: %d %s", c.comment, code, body)
			} else if ns := demoNamespaces(t, body); !cmp.Equal(ns, map[string]bool{nsTeamA: true}) {
				t.Errorf("%s: namespaces %v", c.comment, keys(ns))
			}
		case strings.Contains(c.comment, "admin (group admins)"):
			admin = c
			ran["admin"] = true
			if code != 200 {
				t.Errorf("%s: %d %s", c.comment, code, body)
			} else if ns := demoNamespaces(t, body); !containsAll(ns, []string{nsTeamA, nsTeamB, nsKube}) {
				t.Errorf("%s: namespaces %v", c.comment, keys(ns))
			}
		case strings.Contains(c.comment, "without a certificate"):
			ran["nocert"] = true
			if code != http.StatusUnauthorized {
				t.Errorf("%s: %d %s", c.comment, code, body)
			}
		case strings.Contains(c.comment, "is refused"):
			ran["refused"] = true
			if code != http.StatusForbidden || !strings.Contains(string(body), `"errorType":"forbidden"`) {
				t.Errorf("%s: %d %s", c.comment, code, body)
			}
		case strings.Contains(c.comment, "simulated attacks"):
			ran["attacks"] = true
			if code != 200 || len(demoNamespaces(t, body)) == 0 {
				t.Errorf("%s: %d %s", c.comment, code, body)
			}
		default:
			t.Errorf("unexpected printed command %q after %q", c.line, c.comment)
		}
	}
	for _, k := range []string{"alice", "admin", "nocert", "refused", "attacks"} {
		if !ran[k] {
			t.Errorf("no printed %s command:\n%s", k, strings.Join(run.out.all, "\n"))
		}
	}

	// Every attack's series, as alice and as admin: alice sees only
	// team-a (her own attacks included), admin sees the attack.
	if alice.line != "" && admin.line != "" {
		allowed := map[string]bool{nsTeamA: true, nsTeamAStage: true}
		for _, a := range demo.Attacks {
			q := shellQuote(`query={__name__="` + a.Metric + `"}`)
			aliceLine := strings.Replace(alice.line, shellQuote("query=count by (namespace) (up)"), q, 1)
			adminLine := strings.Replace(admin.line, shellQuote("query=count by (namespace) (up)"), q, 1)
			code, body := runCurl(t, aliceLine)
			if code != 200 {
				t.Errorf("alice, %s: %d %s", a.Metric, code, body)
				continue
			}
			ns := demoNamespaces(t, body)
			for n := range ns {
				if !allowed[n] {
					t.Errorf("alice sees %s of namespace %q", a.Metric, n)
				}
			}
			if a.Namespace == nsTeamA && !ns[nsTeamA] {
				t.Errorf("alice does not see her own namespace's attack %q", a.Name)
			}
			code, body = runCurl(t, adminLine)
			if code != 200 || !demoNamespaces(t, body)[a.Namespace] {
				t.Errorf("admin does not see the attack %q in namespace %q: %d %s", a.Name, a.Namespace, code, body)
			}
		}
	}

	checkDemoDetectors(t, detectorLines)

	run.stop(t)
	for _, f := range []string{"promgate.yml", "policies", "audit.log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after Ctrl-C without --keep: %v", f, err)
		}
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatalf("the CA did not survive: %v", err)
	}

	// A second run reuses the CA, and --keep keeps the folder.
	run = startDemo(t, dir, "--keep")
	if !slices.ContainsFunc(run.out.all, func(l string) bool { return strings.HasPrefix(l, "Using the development CA") }) {
		t.Errorf("the second run did not reuse the CA:\n%s", strings.Join(run.out.all, "\n"))
	}
	if c := run.commands(); len(c) > 0 {
		if code, body := runCurl(t, c[0].line); code != 200 {
			t.Errorf("second run, %s: %d %s", c[0].comment, code, body)
		}
	}
	run.stop(t)
	if again, err := os.ReadFile(filepath.Join(dir, "ca.crt")); err != nil || string(again) != string(ca) {
		t.Errorf("the CA changed on the second run (%v)", err)
	}
	for _, f := range []string{"promgate.yml", "policies", "audit.log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("--keep did not keep %s: %v", f, err)
		}
	}
}

// shellQuote quotes s the way the demo prints it.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// checkDemoDetectors runs the printed detectors commands, then evaluates
// every detector as admin and as alice: at least four fire for the admin,
// and whatever alice may evaluate is confined to team-a.
func checkDemoDetectors(t *testing.T, lines []demoCommand) {
	t.Helper()
	var listAdmin, evalAdmin, evalAlice string
	for _, c := range lines {
		code, body := runCurl(t, c.line)
		switch {
		case strings.HasSuffix(c.line, "/api/promgate/v1/detectors"):
			listAdmin = c.line
			if code != 200 {
				t.Errorf("%s: %d %s", c.line, code, body)
			}
		case strings.Contains(c.comment, "refused for alice"):
			if code != http.StatusForbidden {
				t.Errorf("%s: %d %s, want 403", c.line, code, body)
			}
		case strings.Contains(c.line, "client-alice"):
			evalAlice = c.line
		default:
			evalAdmin = c.line
		}
	}
	if listAdmin == "" || evalAdmin == "" || evalAlice == "" {
		t.Fatalf("the demo did not print the detectors commands: %v", lines)
	}
	_, body := runCurl(t, listAdmin)
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Data) < 45 {
		t.Fatalf("detectors list: %v (%d detectors)", err, len(list.Data))
	}
	const sample = "/api/promgate/v1/detectors/pod_cpu_over_one_core"
	// The detectors the simulated attacks target (evaluating all 45 twice
	// would run into the demo's per-identity rate limit).
	var ids []string
	for _, a := range demo.Attacks {
		for _, id := range a.Detectors {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	firing := 0
	for _, id := range ids {
		d := struct{ ID string }{id}
		adminLine := strings.Replace(evalAdmin, sample, "/api/promgate/v1/detectors/"+d.ID, 1)
		code, body := runCurl(t, adminLine)
		if code != 200 {
			t.Errorf("admin, detector %s: %d %s", d.ID, code, body)
			continue
		}
		if len(demoNamespacesOrCluster(t, body)) > 0 {
			firing++
		}
		aliceLine := strings.Replace(evalAlice, sample, "/api/promgate/v1/detectors/"+d.ID, 1)
		code, body = runCurl(t, aliceLine)
		switch code {
		case http.StatusForbidden:
		case 200:
			for n := range demoNamespacesOrCluster(t, body) {
				if n != nsTeamA && n != nsTeamAStage {
					t.Errorf("alice, detector %s: sees namespace %q", d.ID, n)
				}
			}
		default:
			t.Errorf("alice, detector %s: %d %s", d.ID, code, body)
		}
	}
	if firing < 4 {
		t.Errorf("%d detectors fire for the admin, want at least 4", firing)
	}
	t.Logf("demo: %d detectors fire for the admin", firing)
}

// demoNamespacesOrCluster returns the namespaces of a vector result, with
// "(cluster)" for series without a namespace label.
func demoNamespacesOrCluster(t *testing.T, body []byte) map[string]bool {
	t.Helper()
	var env struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("not a vector: %s", body)
	}
	out := map[string]bool{}
	for _, r := range env.Data.Result {
		n, ok := r.Metric["namespace"]
		if !ok {
			n = "(cluster)"
		}
		out[n] = true
	}
	return out
}
