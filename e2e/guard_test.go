//go:build e2e

package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests of this file cover issue 15: the holes through which a caller
// could exhaust Prometheus, learn of other groups, lock other callers out,
// or turn its own bad input into an upstream failure.

// Cost attacks: a one-day subquery at a 1 ms step is 86,400,000 evaluation
// points per step. Before the cost limits, twenty of them took Prometheus
// from 76 MB to 3.7 GB of resident memory.
var costAttacks = []string{
	`count_over_time(vector(1)[1d:1ms])`,
	`count_over_time(up[1d:1ms])`,
}

// costLimits are the names the refusal of a too expensive query may cite.
var costLimits = []string{"max_subquery_points", "max_query_points", "max_samples_estimate"}

// rssGrowthBudget is how much Prometheus' resident memory may grow while the
// cost attacks are sent.
const rssGrowthBudget = 100 << 20

// TestGuardQueryCost: the admin, who is unrestricted, and team-a send
// queries whose estimated cost is far over the limits, GET and POST. Each is
// refused with 400 bad_data naming the limit (or 403) before anything is
// forwarded, and Prometheus' resident memory stays flat while twenty of them
// are sent.
func TestGuardQueryCost(t *testing.T) {
	type attempt struct {
		who    caller
		method string
		expr   string
	}
	var attempts []attempt
	for _, who := range []caller{callerAdmin, callerTeamA} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			for _, expr := range costAttacks {
				attempts = append(attempts, attempt{who, method, expr})
			}
		}
	}
	const sends = 20
	before := env.rec.count()
	rssBefore := promRSS(t)
	refusals := map[int]int{}
	for i := range sends {
		a := attempts[i%len(attempts)]
		req := request{method: a.method, path: "/api/v1/query"}
		params := url.Values{"query": {a.expr}}
		if a.method == http.MethodPost {
			req.form = params
		} else {
			req.query = params
		}
		res := a.who.client(t).do(t, req)
		refusals[res.status]++
		switch res.status {
		case http.StatusBadRequest:
			res.wantError(t, http.StatusBadRequest, "bad_data")
			if !containsAny(string(res.body), costLimits) {
				t.Errorf("%s as %s: the refusal names none of the limits %v", res, a.who.name, costLimits)
			}
		case http.StatusForbidden:
			res.wantError(t, http.StatusForbidden, "forbidden")
		default:
			t.Errorf("%s as %s: want 400 bad_data naming a cost limit (or 403)", res, a.who.name)
		}
	}
	rssAfter := promRSS(t)
	fwd := env.rec.since(before)
	for _, f := range fwd {
		if strings.Contains(f.RequestURI+f.Body, "1ms") {
			t.Errorf("a cost attack reached the upstream: %s %s %s", f.Method, f.RequestURI, f.Body)
		}
	}
	growth := rssAfter - rssBefore
	t.Logf("%d cost attacks: answers by status %v; %d requests reached the upstream meanwhile; Prometheus RSS %.1f MB before, %.1f MB after (growth %.1f MB)",
		sends, refusals, len(fwd), rssBefore/(1<<20), rssAfter/(1<<20), growth/(1<<20))
	if len(fwd) != 0 {
		t.Errorf("%d requests reached the upstream during the cost attacks, want 0", len(fwd))
	}
	if growth >= rssGrowthBudget {
		t.Errorf("Prometheus RSS grew by %.1f MB (%.1f -> %.1f MB) during the cost attacks, want under %d MB",
			growth/(1<<20), rssBefore/(1<<20), rssAfter/(1<<20), rssGrowthBudget>>20)
	}
}

// TestGuardNoAccessGroup: a caller with a verified certificate whose group
// the policy grants nothing gets 403 for Grafana's health check (1+1 at time
// 4), GET and POST, and the refusal names no other group.
func TestGuardNoAccessGroup(t *testing.T) {
	// The groups of policies/data.json that are not the caller's.
	others := []string{"admins", "scrapers", "team-a", "team-b"}
	c := newClient(t, env.main, env.pki, "nobody")
	params := url.Values{"query": {"1+1"}, "time": {"4"}}
	for _, req := range []request{
		{path: "/api/v1/query", query: params},
		{method: http.MethodPost, path: "/api/v1/query", form: params},
	} {
		t.Run(req.String(), func(t *testing.T) {
			res := c.do(t, req)
			res.wantError(t, http.StatusForbidden, "forbidden")
			for _, g := range others {
				if strings.Contains(string(res.body), g) {
					t.Errorf("%s: the refusal names the group %q", res, g)
				}
			}
		})
	}
}

// TestGuardWindowLimits runs a gateway with limits.max_lookback 1h and
// max_range 2h in front of the real Prometheus: lookback_delta counts toward
// max_lookback, so no caller reads further back by widening it, and the
// metadata routes' missing start is clamped to the window's edge (header
// and audit record) rather than reaching back to the beginning of time.
func TestGuardWindowLimits(t *testing.T) {
	auditPath := filepath.Join(env.tmp, "gw-guard-window", "audit.log") // the folder startGatewayWithLimits makes
	g := startGatewayWithLimits(t, "guard-window", env.promURL, auditPath, "100MiB", "deny",
		"  max_lookback: 1h\n  max_range: 2h\n")
	for _, who := range []string{"admin", "team-a"} {
		c := newClient(t, g, env.pki, who)
		res := c.do(t, request{path: "/api/v1/query", query: url.Values{"query": {"up"}, "lookback_delta": {"2h"}}})
		res.wantError(t, http.StatusBadRequest, "bad_data")
		if !strings.Contains(string(res.body), "lookback") {
			t.Errorf("%s as %s: the refusal does not name the lookback", res, who)
		}
		if res := c.do(t, request{path: "/api/v1/query", query: url.Values{"query": {"up"}, "lookback_delta": {"1m"}}}); res.status != http.StatusOK {
			t.Errorf("%s as %s: want 200", res, who)
		}
		res = c.do(t, request{path: "/api/v1/series", query: url.Values{"match[]": {"up"}}})
		if res.status != http.StatusOK || res.header.Get("X-Promgate-Clamped") != "start" {
			t.Errorf("%s as %s: want 200 with X-Promgate-Clamped: start, got %q", res, who, res.header.Values("X-Promgate-Clamped"))
		}
		var series []map[string]string
		if err := dataOf(res.body, &series); err != nil || (who == "admin" && len(series) == 0) {
			t.Errorf("%s as %s: %v, %d series; want the recent ones", res, who, err, len(series))
		}
		for _, s := range series {
			if who == "team-a" && !slices.Contains(callerTeamA.allowed, s["namespace"]) {
				t.Errorf("%s as team-a: series %v outside team-a's namespaces", res, s)
			}
		}
	}
	// The audit writer flushes on shutdown; killAll ends it if a check
	// above stopped the test first.
	if err := g.proc.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	recs, _ := readAuditLines(t, auditFiles(t, g))
	clamped := 0
	for _, r := range recs {
		if r.Route == "series" && len(r.Clamped) > 0 && strings.HasPrefix(r.Clamped[0], "start=") {
			clamped++
		}
	}
	if clamped != 2 {
		t.Errorf("%d series records list a clamped start, want 2", clamped)
	}
}

// Failure flood: the rate and length of the flood, and how often each valid
// caller asks meanwhile.
const (
	floodRate     = 50 // requests a second, anonymous and bad-certificate together
	floodFor      = 30 * time.Second
	validInterval = 100 * time.Millisecond
)

// TestGuardFailureFlood floods a gateway from 127.0.0.1 with anonymous
// requests (no certificate, no token) and bad-certificate requests (a client
// certificate of a foreign CA) at 50 a second for 30 s, while a valid mTLS
// caller and a valid OIDC bearer caller from the same address query every
// 100 ms. Neither valid caller may be refused once: requests without
// credentials cost nothing to refuse and never count as failures, a
// certificate the handshake verified is never limited, and a foreign
// certificate fails in the TLS handshake. The gateway has authn.oidc and the
// default limits.auth_failures, in front of the real provider.
func TestGuardFailureFlood(t *testing.T) {
	o, tok := startGuardOIDC(t)
	g := o.gw
	mtls := newClient(t, g, env.pki, "team-a")
	var jwt *client
	if tok != "" {
		jwt = oidcClient(t, g)
	}
	query := request{path: "/api/v1/query", query: url.Values{"query": {"up"}}}
	jwtQuery := query
	jwtQuery.header = bearer(tok)

	// Both valid callers are served before the flood.
	mtls.do(t, query).checkSeen(t, vectorNS, callerTeamA.allowed, nsTeamA, nil)
	if jwt != nil {
		jwt.do(t, jwtQuery).checkSeen(t, vectorNS, callerTeamA.allowed, nsTeamA, nil)
	}
	metrics := scrapeInternal(t, g)
	limitedBefore, limitedExposed := sampleSum(metrics, "promgate_authn_failure_limited_total", "")
	anonFailBefore, _ := sampleSum(metrics, "promgate_client_authn_failures_total", `method="none"`)

	stop := make(chan struct{})
	var wg sync.WaitGroup

	// The valid callers.
	type tally struct {
		name     string
		sent, ok int
		statuses map[int]int
		errs     []string
	}
	valid := []*tally{{name: "mtls team-a", statuses: map[int]int{}}}
	calls := []func() (*result, error){func() (*result, error) { return mtls.try(query) }}
	if jwt != nil {
		valid = append(valid, &tally{name: "oidc scraper-a", statuses: map[int]int{}})
		calls = append(calls, func() (*result, error) { return jwt.try(jwtQuery) })
	}
	for i, v := range valid {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(validInterval)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				v.sent++
				res, err := calls[i]()
				switch {
				case err != nil:
					if len(v.errs) < 5 {
						v.errs = append(v.errs, err.Error())
					}
				case res.status == http.StatusOK:
					v.ok++
					v.statuses[res.status]++
				default:
					v.statuses[res.status]++
					if len(v.errs) < 5 {
						v.errs = append(v.errs, res.String())
					}
				}
			}
		}()
	}

	// The flood. Each request runs on its own, so that a slow answer does
	// not lower the rate; at most 200 are in flight, and a tick that finds
	// them all busy is counted as skipped.
	anon := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfigFor(t, "")}}
	foreignTC := tlsConfigFor(t, "")
	cert, err := tls.LoadX509KeyPair(filepath.Join(env.foreign, "client-team-a.crt"), filepath.Join(env.foreign, "client-team-a.key"))
	if err != nil {
		t.Fatal(err)
	}
	foreignTC.Certificates = []tls.Certificate{cert}
	foreign := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: foreignTC, DisableKeepAlives: true}}
	target := "https://" + g.addr + "/api/v1/query?query=up"
	var (
		mu                              sync.Mutex
		anonSent, foreignSent, skipped  int
		anonStatus, foreignStatus       = map[int]int{}, map[int]int{}
		anonErrs, foreignErrs           int
		anonErrSample, foreignErrSample string
	)
	send := func(c *http.Client, status map[int]int, errs *int, sample *string) {
		resp, err := c.Get(target)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			*errs++
			if *sample == "" {
				*sample = err.Error()
			}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status[resp.StatusCode]++
	}
	sem := make(chan struct{}, 200)
	var flood sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(time.Second / floodRate)
	for i := 0; time.Since(start) < floodFor; i++ {
		<-tick.C
		select {
		case sem <- struct{}{}:
		default:
			skipped++
			continue
		}
		flood.Add(1)
		anonymous := i%2 == 0
		mu.Lock()
		if anonymous {
			anonSent++
		} else {
			foreignSent++
		}
		mu.Unlock()
		go func() {
			defer func() { <-sem; flood.Done() }()
			if anonymous {
				send(anon, anonStatus, &anonErrs, &anonErrSample)
			} else {
				send(foreign, foreignStatus, &foreignErrs, &foreignErrSample)
			}
		}()
	}
	tick.Stop()
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	flood.Wait()

	rate := float64(anonSent+foreignSent) / elapsed.Seconds()
	t.Logf("flood: %d anonymous (answers by status %v, %d transport errors) and %d bad-certificate requests (answers %v, %d failed handshakes) in %v: %.1f requests/s, %d ticks skipped",
		anonSent, anonStatus, anonErrs, foreignSent, foreignStatus, foreignErrs, elapsed.Round(time.Millisecond), rate, skipped)
	if anonErrSample != "" {
		t.Logf("first anonymous transport error: %s", anonErrSample)
	}
	if foreignErrSample != "" {
		t.Logf("first bad-certificate error: %s", foreignErrSample)
	}
	for _, v := range valid {
		refused := v.sent - v.ok
		t.Logf("%s: %d queries, %d answered 200, %d refused or failed (answers %v)", v.name, v.sent, v.ok, refused, v.statuses)
		if refused != 0 {
			t.Errorf("%s: %d of %d queries refused or failed during the flood, want 0; first: %q", v.name, refused, v.sent, v.errs)
		}
		if want := int(floodFor / validInterval * 8 / 10); v.sent < want {
			t.Errorf("%s: only %d queries sent during the flood, want at least %d", v.name, v.sent, want)
		}
	}
	if rate < floodRate*0.9 {
		t.Errorf("the flood reached %.1f requests/s, want about %d", rate, floodRate)
	}
	for code, n := range anonStatus {
		if code != http.StatusUnauthorized {
			t.Errorf("%d anonymous requests answered %d, want 401 for each", n, code)
		}
	}
	if n := len(foreignStatus); n != 0 {
		t.Errorf("bad-certificate requests got HTTP answers %v; the handshake must fail", foreignStatus)
	}

	metrics = scrapeInternal(t, g)
	anonFail, _ := sampleSum(metrics, "promgate_client_authn_failures_total", `method="none"`)
	t.Logf("promgate_client_authn_failures_total{method=\"none\"}: %.0f during the flood", anonFail-anonFailBefore)
	if !limitedExposed {
		t.Logf("promgate_authn_failure_limited_total is not on the internal /metrics: not checked")
		return
	}
	limited, _ := sampleSum(metrics, "promgate_authn_failure_limited_total", "")
	t.Logf("promgate_authn_failure_limited_total: %.0f before the flood, %.0f after", limitedBefore, limited)
	if limited != 0 {
		t.Errorf("promgate_authn_failure_limited_total = %.0f after the flood, want 0: requests without credentials never count", limited)
	}
}

// startGuardOIDC starts the flood's gateway: the OIDC gateway's
// configuration (certificates optional, bearer tokens of the provider), in a
// folder of its own, and a provider of its own. It returns the stack and a
// client-credentials token of scraper-a (group team-a), or no token, with a
// log line, when the provider cannot run here.
func startGuardOIDC(t *testing.T) (*oidcStack, string) {
	t.Helper()
	o := &oidcStack{dir: filepath.Join(env.tmp, "guard-oidc"), idpDir: filepath.Join(env.root, "scripts", "idp")}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if o.idpAddr, err = freePort(); err != nil {
		t.Fatal(err)
	}
	o.issuer = "http://" + o.idpAddr

	g := &gateway{name: "guard-oidc", authType: "VerifyClientCertIfGiven", upstream: env.rec.url}
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
		"promgate.yml":  fmt.Sprintf(oidcGatewayConfig, g.addr, g.internal, env.pki, g.upstream, o.issuer, oidcAudience, filepath.Join(env.root, "policies")),
		"client-secret": oidcSecret + "\n",
		"cookie-secret": base64.StdEncoding.EncodeToString(cookieSecret) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(g.dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
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
	o.gw = g

	if _, err := exec.LookPath("node"); err != nil {
		t.Logf("node not found in PATH: the flood runs without the OIDC caller (run scripts/install-deps.sh)")
		return o, ""
	}
	if _, err := os.Stat(filepath.Join(o.idpDir, "node_modules", "oidc-provider")); err != nil {
		t.Logf("scripts/idp/node_modules is missing: the flood runs without the OIDC caller (run scripts/install-deps.sh)")
		return o, ""
	}
	o.newKey(t)
	o.startIdP(t)
	o.waitIssuerUp(t, oidcBudget)
	return o, o.clientToken(t, "scraper-a")
}

// TestGuardBadUpgrade: a request asking to upgrade to a protocol with a
// non-ASCII name is the caller's error, 400 bad_data, never 502; it is not
// forwarded and does not count as an upstream error.
func TestGuardBadUpgrade(t *testing.T) {
	g := startOwnGateway(t, "upgrade", "RequireAndVerifyClientCert")
	errorsBefore, _ := sampleSum(scrapeInternal(t, g), "promgate_upstream_requests_total", `code="error"`)
	before := env.rec.count()
	cases := map[string]string{
		"GET":  "GET /api/v1/query?query=up HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: é\r\n\r\n",
		"POST": "POST /api/v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: é\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 8\r\n\r\nquery=up",
	}
	for _, who := range []string{"admin", "team-a"} {
		for name, raw := range cases {
			t.Run(who+"/"+name, func(t *testing.T) {
				c, err := tls.Dial("tcp", g.addr, tlsConfigFor(t, who))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(requestBudget))
				if _, err := io.WriteString(c, raw); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				defer resp.Body.Close()
				body, _ := readAll(resp.Body)
				errorBodies.add(body)
				res := &result{req: request{method: name, path: "/api/v1/query (Upgrade: é)"}, status: resp.StatusCode, header: resp.Header, body: body}
				if res.status != http.StatusBadRequest {
					t.Errorf("%s as %s: want 400", res, who)
					return
				}
				res.wantEnvelope(t, "bad_data")
			})
		}
	}
	if n := env.rec.count() - before; n != 0 {
		t.Errorf("%d upgrade requests reached the upstream, want 0", n)
	}
	errorsAfter, _ := sampleSum(scrapeInternal(t, g), "promgate_upstream_requests_total", `code="error"`)
	if errorsAfter != errorsBefore {
		t.Errorf(`promgate_upstream_requests_total{code="error"} went from %.0f to %.0f, want unchanged`, errorsBefore, errorsAfter)
	}
}

// promRSS reads process_resident_memory_bytes from Prometheus' own /metrics,
// directly, not through a gateway.
func promRSS(t *testing.T) float64 {
	t.Helper()
	body := scrape(t, env.promURL+"/metrics")
	v, ok := sampleSum(body, "process_resident_memory_bytes", "")
	if !ok {
		t.Fatal("process_resident_memory_bytes is not in Prometheus' /metrics")
	}
	return v
}

// scrapeInternal returns g's internal /metrics.
func scrapeInternal(t *testing.T, g *gateway) string {
	t.Helper()
	return scrape(t, "http://"+g.internal+"/metrics")
}

// scrape GETs a text exposition.
func scrape(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u) //nolint:gosec // G107: the URL of a server this test started on loopback
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := readAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", u, resp.StatusCode)
	}
	return string(b)
}

// sampleSum adds up the samples of the metric name in a text exposition
// whose labels contain the text label (every sample when it is empty). It
// reports whether any sample matched.
func sampleSum(exposition, name, label string) (float64, bool) {
	var sum float64
	found := false
	for _, line := range strings.Split(exposition, "\n") {
		var labels, rest string
		switch {
		case strings.HasPrefix(line, name+"{"):
			i := strings.LastIndex(line, "}")
			if i < 0 {
				continue
			}
			labels, rest = line[len(name):i+1], line[i+1:]
		case strings.HasPrefix(line, name+" "):
			rest = line[len(name):]
		default:
			continue
		}
		if label != "" && !strings.Contains(labels, label) {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestGuardAuditBound: a caller the policy refuses POSTs a megabyte of
// match[] values to /api/v1/series in front of the real Prometheus. The
// answer is 403, the record it leaves adds at most 16 KiB to the audit file
// and proves what was asked (the full list's length and SHA-256), and
// `promgate audit verify` still passes.
func TestGuardAuditBound(t *testing.T) {
	auditPath := filepath.Join(env.tmp, "gw-guard-audit", "audit.log") // the folder startAuditGateway makes
	g := startAuditGateway(t, "guard-audit", env.promURL, auditPath, "100MiB", "deny")
	c := newClient(t, g, env.pki, "nobody")
	// Warm up: the first record carries the chain start.
	c.do(t, request{path: "/api/v1/query", query: url.Values{"query": {"up"}}})
	if err := g.proc.stop(); err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, auditPath)
	restartAuditGateway(t, g)
	c = newClient(t, g, env.pki, "nobody")
	form := url.Values{}
	for i := 0; i < 972; i++ {
		form.Add("match[]", fmt.Sprintf(`{__name__="m%03d",namespace="%s"}`, i, strings.Repeat("x", 980)))
	}
	body := form.Encode()
	if len(body) < 1_000_000 {
		t.Fatalf("body %d bytes, want a megabyte", len(body))
	}
	res := c.do(t, request{method: http.MethodPost, path: "/api/v1/series", body: body, ctype: "application/x-www-form-urlencoded"})
	res.wantError(t, http.StatusForbidden, "forbidden")
	if err := g.proc.stop(); err != nil {
		t.Fatal(err)
	}
	added := fileSize(t, auditPath) - before
	t.Logf("a %d-byte match[] request added %d bytes to the audit file", len(body), added)
	if added > 16<<10 {
		t.Errorf("the refused request added %d bytes to the audit file, want at most 16 KiB", added)
	}
	b, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	last := lastLine(string(b))
	var rec struct {
		Route     string `json:"route"`
		Status    int    `json:"status"`
		Truncated map[string]struct {
			Bytes  int    `json:"bytes"`
			Count  int    `json:"count"`
			SHA256 string `json:"sha256"`
		} `json:"truncated"`
	}
	if err := json.Unmarshal([]byte(last), &rec); err != nil {
		t.Fatalf("last record %q: %v", truncateForLog(last), err)
	}
	if cut, ok := rec.Truncated["query"]; rec.Route != "series" || rec.Status != 403 || !ok || cut.Count != 972 || len(cut.SHA256) != 64 {
		t.Errorf("last record: route %q status %d truncated %+v; want series 403 with query cut from 972 entries", rec.Route, rec.Status, rec.Truncated)
	}
	if code, out := auditVerify(t, auditPath); code != 0 {
		t.Errorf("audit verify: exit %d\n%s", code, out)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func truncateForLog(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
