//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/promgate/promgate/demo"
)

// The console's end-to-end test: the demo's upstream (its synthetic day of
// data, attacks included) behind a gateway with the detector evaluator and
// the browser login against the real provider (scripts/idp), and headless
// Chromium (scripts/idp/console.mjs) logging in as alice (team-a) and as
// root (admins), visiting every page, saving screenshots to
// e2e/artifacts/console/ and running axe-core on each.

const consoleGatewayConfig = `listen: %[1]s
internal_listen: %[2]s
tls:
  cert_file: %[3]s/server.crt
  key_file: %[3]s/server.key
  client_ca_file: %[3]s/ca.crt
  client_auth_type: VerifyClientCertIfGiven
upstream:
  url: %[4]s
authn:
  login:
    issuer: %[5]s
    client_id: promgate
    client_secret_file: client-secret
    redirect_url: https://%[1]s/oauth2/callback
    cookie_secret_file: cookie-secret
authz:
  policies: %[6]s
audit:
  path: audit.log
detectors:
  enabled: true
  interval: 15s
limits:
  requests_per_second: 1000
  burst: 1000
`

// consolePage is what console.mjs reports of one page.
type consolePage struct {
	Name          string     `json:"name"`
	Path          string     `json:"path"`
	Status        int        `json:"status"`
	CSP           string     `json:"csp"`
	Title         string     `json:"title"`
	HTML          string     `json:"html"`
	Text          string     `json:"text"`
	Detectors     [][]string `json:"detectors"`
	NewEdges      [][]string `json:"newEdges"`
	Scripts       int        `json:"scripts"`
	Pwned         bool       `json:"pwned"`
	FirstFocus    string     `json:"firstFocus"`
	AfterSkip     string     `json:"afterSkip"`
	ConsoleErrors []string   `json:"consoleErrors"`
	Violations    []struct {
		ID     string   `json:"id"`
		Impact string   `json:"impact"`
		Help   string   `json:"help"`
		Nodes  []string `json:"nodes"`
	} `json:"violations"`
}

type consoleRun struct {
	Landed      string        `json:"landed"`
	Pages       []consolePage `json:"pages"`
	PhoneScroll int           `json:"phoneScroll"`
	Phone       [][2]any      `json:"phone"`
	Error       string        `json:"error"`
}

// xssLabel is a label value that would run script if rendered as HTML.
const xssLabel = `<script>window.__pwned=1</script>`

func TestConsole(t *testing.T) {
	start := time.Now()
	for _, c := range []string{"node", "chromium"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found in PATH: run scripts/install-deps.sh", c)
		}
	}
	o := &oidcStack{dir: filepath.Join(env.tmp, "console"), idpDir: filepath.Join(env.root, "scripts", "idp")}
	for _, m := range []string{"oidc-provider", "playwright-core", "axe-core"} {
		if _, err := os.Stat(filepath.Join(o.idpDir, "node_modules", m)); err != nil {
			t.Fatalf("scripts/idp/node_modules/%s is missing: run scripts/install-deps.sh (it runs npm install there)", m)
		}
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shots := filepath.Join(env.root, "e2e", "artifacts", "console")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	// The demo's upstream, in this process.
	up, err := demo.New(demo.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Close() })
	ln, err := demo.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = up.Serve(ctx, ln) }()
	go up.Run(ctx)

	if o.idpAddr, err = freePort(); err != nil {
		t.Fatal(err)
	}
	o.issuer = "http://" + o.idpAddr
	g := &gateway{name: "console", upstream: "http://" + ln.Addr().String()}
	if g.addr, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if g.internal, err = freePort(); err != nil {
		t.Fatal(err)
	}
	g.dir = filepath.Join(o.dir, "gw")
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g.config = filepath.Join(g.dir, "promgate.yml")
	g.audit = filepath.Join(g.dir, "audit.log")
	cookieSecret := make([]byte, 48)
	_, _ = rand.Read(cookieSecret)
	for name, content := range map[string]string{
		"promgate.yml":  fmt.Sprintf(consoleGatewayConfig, g.addr, g.internal, env.pki, g.upstream, o.issuer, filepath.Join(env.root, "policies")),
		"client-secret": oidcSecret + "\n",
		"cookie-secret": base64.StdEncoding.EncodeToString(cookieSecret) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(g.dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o.gw = g
	o.newKey(t)
	o.startIdP(t)
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
	// The evaluator's first round, which restores the for: clocks.
	waitMetric(t, "http://"+g.internal+"/metrics", regexp.MustCompile(`(?m)^promgate_detector_last_evaluation_timestamp_seconds [1-9]`), 60*time.Second)
	firstRound := time.Since(start)

	xss := "/ui/query?query=" + url.QueryEscape(`label_replace(vector(1), "note", "`+xssLabel+`", "", "")`)
	common := [][2]string{
		{"overview", "/ui/"},
		{"detector", "/ui/detectors/pod_cpu_over_one_core?window=24h"},
		{"detector-1h", "/ui/detectors/ingress_404_ratio?window=1h"},
		{"detector-cluster", "/ui/detectors/k8s_apiserver_unauthorized?window=7d"},
		{"query", "/ui/query?query=" + url.QueryEscape(`sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!=""}[5m]))`)},
		{"query-refused", "/ui/query?query=" + url.QueryEscape(`up{namespace="kube-system"}`)},
		{"query-xss", xss},
		{"topology", "/ui/topology"},
		{"topology-1w", "/ui/topology?compare=1w"},
	}
	alice := o.console(t, "alice", append(common, [2]string{"admin-refused", "/ui/admin"}), shots)
	root := o.console(t, "root", append(common, [2]string{"admin", "/ui/admin?subject=bob&groups=team-b&method=session"}), shots)

	for _, run := range []struct {
		user string
		out  *consoleRun
	}{{"alice", alice}, {"root", root}} {
		if run.out.Landed != "/ui/" {
			t.Errorf("%s: after the login the browser is on %q, want /ui/", run.user, run.out.Landed)
		}
		if run.out.PhoneScroll > 400 {
			t.Errorf("%s: the overview is %dpx wide at a phone's 390px", run.user, run.out.PhoneScroll)
		}
		if len(run.out.Phone) != len(run.out.Pages) {
			t.Errorf("%s: %d pages measured at a phone's width, want %d", run.user, len(run.out.Phone), len(run.out.Pages))
		}
		for _, ph := range run.out.Phone {
			if w, _ := ph[1].(float64); w > 400 {
				t.Errorf("%s %v: %vpx wide at a phone's 390px", run.user, ph[0], w)
			}
		}
		for _, p := range run.out.Pages {
			where := run.user + " " + p.Name
			want := http.StatusOK
			if (p.Name == "query-refused" || p.Name == "admin-refused") && run.user == "alice" {
				want = http.StatusForbidden
			}
			if p.Status != want {
				t.Errorf("%s: status %d, want %d", where, p.Status, want)
			}
			if !strings.Contains(p.CSP, "default-src 'none'") || strings.Contains(p.CSP, "unsafe") || strings.Contains(p.CSP, "script-src") {
				t.Errorf("%s: CSP %q", where, p.CSP)
			}
			if p.FirstFocus != "Skip to content" || p.AfterSkip != "#main" {
				t.Errorf("%s: the first Tab reaches %q and Enter goes to %q, want the skip link to #main", where, p.FirstFocus, p.AfterSkip)
			}
			if p.Scripts != 0 || p.Pwned {
				t.Errorf("%s: %d script elements, injected script ran: %v", where, p.Scripts, p.Pwned)
			}
			if want != http.StatusOK && len(p.ConsoleErrors) == 1 && strings.Contains(p.ConsoleErrors[0], "status of 403") {
				p.ConsoleErrors = nil // the page's own status, as Chromium logs it
			}
			if len(p.ConsoleErrors) > 0 {
				t.Errorf("%s: console errors %q", where, p.ConsoleErrors)
			}
			if p.Name != "admin-refused" && (!strings.Contains(p.Text, "Signed in as "+run.user) || !strings.Contains(p.HTML, `action="/oauth2/sign_out"`)) {
				t.Errorf("%s: no header with the user and sign-out", where)
			}
			for _, v := range p.Violations {
				if v.Impact == "serious" || v.Impact == "critical" {
					t.Errorf("%s: axe %s violation %s (%s) at %v", where, v.Impact, v.ID, v.Help, v.Nodes)
				}
			}
			if run.user == "alice" && strings.Contains(strings.ToLower(p.HTML), "team-b") {
				i := strings.Index(strings.ToLower(p.HTML), "team-b")
				t.Errorf("%s: the DOM names team-b: ...%s...", where, p.HTML[max(0, i-150):min(len(p.HTML), i+60)])
			}
			switch p.Name {
			case "query-xss":
				if !strings.Contains(p.Text, xssLabel) {
					t.Errorf("%s: the label value is not shown as text", where)
				}
			case "query-refused":
				if !strings.Contains(p.Text, "Refused") && run.user == "alice" {
					t.Errorf("%s: no refusal explained:\n%s", where, p.Text)
				}
			case "detector":
				for _, s := range []string{"As enforced for you", "Runbook", "Rule export", "T1496"} {
					if !strings.Contains(p.Text, s) {
						t.Errorf("%s: lacks %q", where, s)
					}
				}
				if !strings.Contains(p.HTML, `<svg class="chart"`) || !strings.Contains(p.HTML, `class="threshold"`) {
					t.Errorf("%s: no graph with its threshold", where)
				}
			}
		}
	}

	// alice: her scope, and the cluster-wide detectors hidden.
	if p := pageOf(alice, "overview"); p != nil {
		if !strings.Contains(p.Text, "hidden:") {
			t.Errorf("alice overview: no line about the hidden detectors")
		}
		if !hasRow(p.Detectors, "pod_cpu_over_one_core", "firing") {
			t.Errorf("alice overview: the mining attack in team-a is not firing: %v", p.Detectors)
		}
	}
	if p := pageOf(alice, "query"); p != nil && !strings.Contains(p.Text, `namespace="team-a"`) && !strings.Contains(p.Text, `namespace=~"team-a`) {
		t.Errorf("alice query: the enforced query is not shown:\n%s", p.Text)
	}
	if p := pageOf(alice, "detector-cluster"); p != nil && !strings.Contains(p.Text, "runs only for unrestricted callers") {
		t.Errorf("alice, cluster detector: not explained:\n%s", p.Text)
	}

	// root: every attack's detectors firing and counted.
	if p := pageOf(root, "overview"); p != nil {
		firing := 0
		for _, a := range demo.Attacks {
			for _, id := range a.Detectors {
				if !hasRow(p.Detectors, id, "firing") {
					t.Errorf("root overview: %s (%s) is not firing %v after start: %v", id, a.Name, firstRound.Round(time.Second), p.Detectors)
				}
			}
		}
		for _, r := range p.Detectors {
			if r[1] == "firing" {
				firing++
			}
		}
		if m := regexp.MustCompile(`(\d+)\s+firing`).FindStringSubmatch(p.Text); m == nil || m[1] != strconv.Itoa(firing) {
			t.Errorf("root overview: the firing count %v does not match the %d firing rows", m, firing)
		}
		t.Logf("root overview: %d detectors firing, first evaluation %v after the test started", firing, firstRound.Round(time.Second))
	}
	if p := pageOf(root, "admin"); p != nil {
		for _, s := range []string{"Refused requests", "Audit chain", "last hash", "revision deciding now", `namespace="team-b"`} {
			if !strings.Contains(p.Text, s) {
				t.Errorf("root admin: lacks %q", s)
			}
		}
	}
	if p := pageOf(alice, "admin-refused"); p != nil && !strings.Contains(p.Text, "unrestricted callers only") {
		t.Errorf("alice admin: not refused:\n%s", p.Text)
	}
	if p := pageOf(root, "topology"); p != nil {
		found := false
		for _, e := range p.NewEdges {
			if len(e) >= 2 && e[0] == "team-a/worker" && e[1] == "team-b/db" {
				found = true
			}
		}
		if !found {
			t.Errorf("root topology: the attack's edge team-a/worker -> team-b/db is not shown new: %v", p.NewEdges)
		}
	}
	t.Logf("console e2e took %v; screenshots in %s", time.Since(start).Round(time.Millisecond), shots)
}

// TestDemoConsole follows promgate demo's printed console URL in Chromium,
// signs in as admin at the demo's development login and wants every
// simulated attack firing on the overview within a minute of the start.
func TestDemoConsole(t *testing.T) {
	begin := time.Now()
	r := startDemo(t, t.TempDir())
	defer r.stop(t)
	var base string
	for _, l := range r.out.all {
		if u, ok := strings.CutPrefix(l, "Open the security console in a browser: "); ok {
			base = strings.TrimSuffix(strings.TrimSpace(u), "/ui/")
		}
	}
	if base == "" {
		t.Fatalf("the demo prints no console URL:\n%s", strings.Join(r.out.all, "\n"))
	}
	o := &oidcStack{dir: t.TempDir(), idpDir: filepath.Join(env.root, "scripts", "idp"), gw: &gateway{addr: strings.TrimPrefix(base, "https://")}}
	shots := filepath.Join(env.root, "e2e", "artifacts", "console")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	out := o.console(t, "admin", [][2]string{{"demo-overview", "/ui/"}}, shots, "DEV_LOGIN=1")
	if out.Landed != "/ui/" {
		t.Errorf("after the development login the browser is on %q, want /ui/", out.Landed)
	}
	p := pageOf(out, "demo-overview")
	for _, a := range demo.Attacks {
		for _, id := range a.Detectors {
			if !hasRow(p.Detectors, id, "firing") {
				t.Errorf("%s (%s) is not firing: %v", id, a.Name, p.Detectors)
			}
		}
	}
	if d := time.Since(begin); d > time.Minute {
		t.Errorf("the console was checked %v after the demo started, want within a minute", d.Round(time.Second))
	}
	t.Logf("demo started, signed in and every attack seen firing in %v", time.Since(begin).Round(time.Millisecond))
}

func pageOf(run *consoleRun, name string) *consolePage {
	for i := range run.Pages {
		if run.Pages[i].Name == name {
			return &run.Pages[i]
		}
	}
	return nil
}

func hasRow(rows [][]string, id, state string) bool {
	for _, r := range rows {
		if len(r) == 2 && r[0] == id && r[1] == state {
			return true
		}
	}
	return false
}

// console runs console.mjs as user over pages.
func (o *oidcStack) console(t *testing.T, user string, pages [][2]string, shots string, extraEnv ...string) *consoleRun {
	t.Helper()
	profile, err := os.MkdirTemp(o.dir, "chromium-")
	if err != nil {
		t.Fatal(err)
	}
	list, _ := json.Marshal(pages)
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "console.mjs")
	cmd.Dir = o.idpDir
	cmd.Env = append(os.Environ(), "GATEWAY=https://"+o.gw.addr, "LOGIN_USER="+user, "PAGES="+string(list), "SHOTS="+shots, "USER_DATA_DIR="+profile)
	cmd.Env = append(cmd.Env, extraEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node console.mjs: %v\n%s\n%s", err, lastLines(string(stdout), 5), lastLines(stderr.String(), 30))
	}
	var out consoleRun
	line := bytes.TrimSpace(stdout)
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal(line, &out); err != nil {
		t.Fatalf("console.mjs output: %v", err)
	}
	if out.Error != "" {
		t.Fatalf("console.mjs as %s: %s", user, out.Error)
	}
	if len(out.Pages) != len(pages) {
		t.Fatalf("console.mjs as %s visited %d of %d pages", user, len(out.Pages), len(pages))
	}
	return &out
}

// waitMetric waits until the exposition at u matches re.
func waitMetric(t *testing.T, u string, re *regexp.Regexp, budget time.Duration) {
	t.Helper()
	deadline := time.Now().Add(budget)
	for {
		resp, err := http.Get(u) //nolint:gosec // G107: the test gateway's own internal listener
		if err == nil {
			b, _ := readAll(resp.Body)
			resp.Body.Close()
			if re.Match(b) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not match %s after %v", u, re, budget)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
