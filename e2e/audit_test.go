//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// auditGatewayConfig is a gateway whose audit trail rotates every 2 MiB, so
// that 20,000 records make a rotated set, and whose rate limit does not get
// in the way of the load.
const auditGatewayConfig = `listen: %s
internal_listen: %s
tls:
  cert_file: %[3]s/server.crt
  key_file: %[3]s/server.key
  client_ca_file: %[3]s/ca.crt
  client_auth_type: RequireAndVerifyClientCert
upstream:
  url: %s
authz:
  policies: %s
audit:
  path: %s
  max_size: %s
  max_files: 50
  on_failure: %s
limits:
  requests_per_second: 100000
  burst: 100000
`

// startAuditGateway writes the config of a gateway named name whose audit
// file is auditPath and starts it.
func startAuditGateway(t *testing.T, name, upstream, auditPath, maxSize, onFailure string) *gateway {
	t.Helper()
	return startGatewayWithLimits(t, name, upstream, auditPath, maxSize, onFailure, "")
}

// startGatewayWithLimits is startAuditGateway with more lines for the
// limits block, such as "  max_lookback: 1h\n".
func startGatewayWithLimits(t *testing.T, name, upstream, auditPath, maxSize, onFailure, limits string) *gateway {
	t.Helper()
	g := &gateway{name: name, authType: "RequireAndVerifyClientCert", upstream: upstream}
	var err error
	if g.addr, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if g.internal, err = freePort(); err != nil {
		t.Fatal(err)
	}
	g.dir = filepath.Join(env.tmp, "gw-"+name)
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g.config = filepath.Join(g.dir, "promgate.yml")
	g.audit = auditPath
	cfg := fmt.Sprintf(auditGatewayConfig, g.addr, g.internal, env.pki, upstream,
		filepath.Join(env.root, "policies"), auditPath, maxSize, onFailure) + limits
	if err := os.WriteFile(g.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	restartAuditGateway(t, g)
	return g
}

// restartAuditGateway starts g's process (again) and waits until it is ready.
func restartAuditGateway(t *testing.T, g *gateway) {
	t.Helper()
	var err error
	if g.proc, err = env.start("promgate-"+g.name+"-"+strconv.FormatInt(time.Now().UnixNano(), 36), env.tmp,
		env.bin, "serve", "--config", g.config); err != nil {
		t.Fatal(err)
	}
	if err := env.waitGateway(g); err != nil {
		t.Fatal(err)
	}
}

// auditFiles returns the audit files of g, oldest first.
func auditFiles(t *testing.T, g *gateway) []string {
	t.Helper()
	files := []string{g.audit}
	for i := 1; ; i++ {
		p := g.audit + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append(files, p)
	}
	slices.Reverse(files)
	return files
}

// auditLine is what the load test reads back from each record.
type auditLine struct {
	ID              string   `json:"id"`
	ClientRequestID string   `json:"client_request_id"`
	Method          string   `json:"method"`
	Route           string   `json:"route"`
	Status          int      `json:"status"`
	Clamped         []string `json:"clamped"`
	ChainStart      string   `json:"chain_start"`
	Hash            string   `json:"hash"`
}

// readAuditLines reads every record of files, with where it is.
func readAuditLines(t *testing.T, files []string) (recs []auditLine, where []string) {
	t.Helper()
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for n := 1; sc.Scan(); n++ {
			var r auditLine
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s:%d is not JSON: %v", f, n, err)
			}
			recs = append(recs, r)
			where = append(where, fmt.Sprintf("%s:%d", f, n))
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return recs, where
}

// auditVerify runs `promgate audit verify` and returns its exit code and
// output.
func auditVerify(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := env.promgate(append([]string{"audit", "verify"}, args...)...)
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("promgate audit verify: %v\n%s", err, out)
	}
	return 0, string(out)
}

// loadMix is what the load sends: allowed, denied and malformed requests
// from several callers. want is the status each must get.
var loadMix = []struct {
	caller string
	req    request
	want   int
}{
	{"team-a", q(`up{namespace="team-a"}`), http.StatusOK},
	{"admin", q(`sum(up)`), http.StatusOK},
	{"team-a", request{path: "/api/v1/series", query: url.Values{"match[]": {"up"}}}, http.StatusOK},
	{"team-a", q(`up{namespace="kube-system"}`), http.StatusForbidden},
	{"nobody", q(`up`), http.StatusForbidden},
	{"team-b", q(`sum(rate(up[1m]`), http.StatusBadRequest},
	{"admin", request{path: "/api/v1/query"}, http.StatusBadRequest},
	{"team-b", request{path: "/api/v1/admin/tsdb/delete_series"}, http.StatusNotFound},
}

// loadResult counts what clients got.
type loadResult struct {
	sent      atomic.Int64
	answered  sync.Map // client request id -> status
	nAnswered atomic.Int64
	errors    atomic.Int64
	wrong     atomic.Int64
	firstErr  atomic.Value
}

// load sends requests from workers concurrent clients until n were sent or
// stop is closed. Each carries a unique X-Request-Id, which the audit record
// keeps as client_request_id.
func load(t *testing.T, g *gateway, prefix string, workers, n int, stop <-chan struct{}) *loadResult {
	t.Helper()
	res := &loadResult{}
	clients := map[string]*client{}
	for _, m := range loadMix {
		if clients[m.caller] == nil {
			clients[m.caller] = newClient(t, g, env.pki, m.caller)
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; ; i += workers {
				if n > 0 && i >= n {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				m := loadMix[i%len(loadMix)]
				id := fmt.Sprintf("%s-%06d", prefix, i)
				req := m.req
				req.header = map[string][]string{"X-Request-Id": {id}}
				res.sent.Add(1)
				r, err := clients[m.caller].try(req)
				if err != nil {
					res.errors.Add(1)
					res.firstErr.CompareAndSwap(nil, err.Error())
					if stop == nil && res.errors.Load() > 20 {
						return
					}
					continue
				}
				res.answered.Store(id, r.status)
				res.nAnswered.Add(1)
				if r.status != m.want {
					if res.wrong.Add(1) <= 3 {
						t.Errorf("%s as %s: status %d, want %d: %s", req, m.caller, r.status, m.want, r.body)
					}
				}
			}
		})
	}
	wg.Wait()
	return res
}

// TestAuditTrailUnderLoad sends 20,000 requests through a gateway in front of
// the real Prometheus, which also scrapes the gateway's own metrics, and
// checks one record per request, the hash chain over the rotated files,
// tamper detection, the published last hash, and that SIGTERM during load
// loses no record of an answered request.
func TestAuditTrailUnderLoad(t *testing.T) {
	const total = 20000
	dir := filepath.Join(env.tmp, "audit-load")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g := startAuditGateway(t, "audit-load", env.promURL, filepath.Join(dir, "audit.log"), "2MiB", "deny")
	scraper := startScraper(t, g)

	start := time.Now()
	res := load(t, g, "load", 8, total, nil)
	elapsed := time.Since(start)
	t.Logf("%d requests in %v (%.0f/s), %d transport errors", res.sent.Load(), elapsed.Round(time.Millisecond),
		float64(res.sent.Load())/elapsed.Seconds(), res.errors.Load())
	if res.nAnswered.Load() != total {
		t.Fatalf("%d of %d requests answered; first error: %v", res.nAnswered.Load(), total, res.firstErr.Load())
	}

	// The real Prometheus scraped the gateway's own series.
	published := scraper.waitSeries(t, g)

	// Stop, so that everything is flushed, and check one record per request.
	if err := g.proc.stop(); err != nil {
		t.Fatal(err)
	}
	files := auditFiles(t, g)
	if len(files) < 3 {
		t.Errorf("want a rotated set of at least 3 files, got %q", files)
	}
	recs, where := readAuditLines(t, files)
	checkOneRecordEach(t, recs, where, &res.answered, int(res.nAnswered.Load()), true)

	code, out := auditVerify(t, files...)
	if code != 0 || !strings.HasPrefix(lastLine(out), "OK: ") || !strings.Contains(out, "starts a new chain") {
		t.Fatalf("audit verify of the rotated set: exit %d\n%s", code, out)
	}
	// The hash Prometheus scraped is in the chain; a tail cut after it is
	// found with it and not without it.
	if code, out := auditVerify(t, append([]string{"-last-hash", published}, files...)...); code != 0 {
		t.Errorf("audit verify -last-hash %s (scraped): exit %d\n%s", published, code, out)
	}
	checkTamper(t, files, published)

	// SIGTERM during load: every answered request has its record.
	restartAuditGateway(t, g)
	stop := make(chan struct{})
	var during *loadResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		during = load(t, g, "sigterm", 8, 0, stop)
	}()
	time.Sleep(1500 * time.Millisecond)
	if err := g.proc.stop(); err != nil {
		t.Errorf("SIGTERM under load: %v", err)
	}
	close(stop)
	<-done
	t.Logf("SIGTERM under load: %d answered, %d transport errors (%v)", during.nAnswered.Load(), during.errors.Load(), during.firstErr.Load())
	if during.nAnswered.Load() < 100 {
		t.Fatalf("only %d requests answered before SIGTERM", during.nAnswered.Load())
	}
	files = auditFiles(t, g)
	recs, where = readAuditLines(t, files)
	var after []auditLine
	var afterWhere []string
	for i, r := range recs {
		if strings.HasPrefix(r.ClientRequestID, "sigterm-") {
			after, afterWhere = append(after, r), append(afterWhere, where[i])
		}
	}
	// Requests in flight when the connection closed may have a record
	// without the client seeing the answer; never the other way round.
	checkOneRecordEach(t, after, afterWhere, &during.answered, int(during.nAnswered.Load()), false)
	// The restarted gateway continued the chain: the whole set verifies
	// without a restart.
	if code, out := auditVerify(t, files...); code != 0 || strings.Contains(out, "chain restarts") {
		t.Errorf("audit verify across the restart: exit %d\n%s", code, out)
	}
	checkNoSecrets(t, files)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// checkOneRecordEach checks that every answered request has exactly one
// record with the status its client saw, and (with exact) no other record.
func checkOneRecordEach(t *testing.T, recs []auditLine, where []string, answered *sync.Map, n int, exact bool) {
	t.Helper()
	seen := map[string]int{}
	bad := 0
	for i, r := range recs {
		if r.ClientRequestID == "" {
			if exact {
				t.Errorf("%s: record without the client's request id: %+v", where[i], r)
			}
			continue
		}
		seen[r.ClientRequestID]++
		st, ok := answered.Load(r.ClientRequestID)
		switch {
		case !ok && exact:
			t.Errorf("%s: record of %s, which no client saw answered", where[i], r.ClientRequestID)
		case ok && st.(int) != r.Status:
			if bad++; bad <= 5 {
				t.Errorf("%s: record of %s has status %d, the client got %d", where[i], r.ClientRequestID, r.Status, st)
			}
		}
	}
	missing := 0
	answered.Range(func(k, _ any) bool {
		switch c := seen[k.(string)]; {
		case c == 0:
			if missing++; missing <= 5 {
				t.Errorf("answered request %s has no audit record", k)
			}
		case c > 1:
			t.Errorf("answered request %s has %d audit records", k, c)
		}
		return true
	})
	if missing > 0 {
		t.Errorf("%d of %d answered requests have no audit record", missing, n)
	}
	if exact && len(recs) != n {
		t.Errorf("%d records for %d answered requests", len(recs), n)
	}
}

// checkTamper edits one byte in the middle of a copy of the set and expects
// audit verify to name that record; and cuts the tail and expects only
// -last-hash to notice.
func checkTamper(t *testing.T, files []string, published string) {
	t.Helper()
	dir := t.TempDir()
	var copies []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(c, b, 0o600); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, c)
	}

	// One byte of a status in the middle record of the middle file.
	mid := copies[len(copies)/2]
	b, _ := os.ReadFile(mid)
	lines := bytes.SplitAfter(b, []byte("\n"))
	n := len(lines) / 2
	var rec auditLine
	if err := json.Unmarshal(lines[n], &rec); err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(lines[n], []byte(`"status":`)) + len(`"status":`)
	lines[n][i] ^= 1 // 2xx <-> 3xx, 4xx <-> 5xx
	if err := os.WriteFile(mid, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := auditVerify(t, copies...)
	want := fmt.Sprintf("%s:%d: hash: the record was changed", mid, n+1)
	if code == 0 || !strings.HasPrefix(out, want) || !strings.Contains(strings.SplitN(out, "\n", 2)[0], rec.ID) {
		t.Errorf("audit verify after one byte changed: exit %d, want non-zero and a first line starting %q naming %s:\n%s", code, want, rec.ID, out)
	}
	lines[n][i] ^= 1
	if err := os.WriteFile(mid, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}

	// The whole last file removed: the chain still verifies, but the
	// scraped hash is gone with it.
	if code, out := auditVerify(t, copies[:len(copies)-1]...); code != 0 {
		t.Errorf("audit verify without the newest file: exit %d, want 0 (truncation is invisible to the chain alone):\n%s", code, out)
	}
	code, out = auditVerify(t, append([]string{"-last-hash", published}, copies[:len(copies)-1]...)...)
	if code == 0 || !strings.Contains(out, "last_hash: no record has the published hash") {
		t.Errorf("audit verify -last-hash without the newest file: exit %d, want a last_hash break:\n%s", code, out)
	}
}

// checkNoSecrets greps the audit files for credentials and keys.
func checkNoSecrets(t *testing.T, files []string) {
	t.Helper()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, needle := range []string{"PRIVATE KEY", "BEGIN CERTIFICATE", "Bearer ", "Cookie", env.promAddr} {
			if bytes.Contains(b, []byte(needle)) {
				t.Errorf("%s contains %q", f, needle)
			}
		}
	}
}

// scraper is a second Prometheus that scrapes one gateway's internal
// listener. The shared Prometheus is left alone: its series are what the
// other tests' confinement checks count.
type scraper struct {
	url string
}

const scraperConfig = `global:
  scrape_interval: 1s
scrape_configs:
  - job_name: promgate
    static_configs: [{targets: ['%s']}]
`

func startScraper(t *testing.T, g *gateway) *scraper {
	t.Helper()
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(env.tmp, "prometheus-"+g.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), fmt.Appendf(nil, scraperConfig, g.internal), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := env.start("prometheus-"+g.name, dir, "prometheus", "--config.file=prometheus.yml",
		"--storage.tsdb.path=data", "--web.listen-address="+addr, "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.stop() })
	return &scraper{url: "http://" + addr}
}

// hashLabel matches the hash label of promgate_audit_last_hash_info.
var hashLabel = regexp.MustCompile(`^[0-9a-f]{16}$`)

// waitSeries waits until the scraper has the gateway's own series, after
// the load, and returns the last audit hash it scraped.
func (s *scraper) waitSeries(t *testing.T, g *gateway) string {
	t.Helper()
	queries := []string{
		`up{job="promgate"} == 1`,
		`sum(promgate_requests_total{job="promgate"}) >= 20000`,
		`promgate_identity_requests_total{job="promgate",subject="team-a",route="query"} > 0`,
		`promgate_audit_records_total{job="promgate"} >= 20000`,
		`promgate_build_info{job="promgate"}`,
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, q := range queries {
		for {
			vec, err := promVector(s.url, q)
			if err == nil && len(vec) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("the scraping Prometheus has no result for %s (err %v)", q, err)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	// The newest hash label scraped after the load has ended.
	for {
		vec, err := promVector(s.url, `promgate_audit_last_hash_info{job="promgate"}`)
		if err == nil && len(vec) == 1 && hashLabel.MatchString(vec[0]["hash"]) {
			return vec[0]["hash"]
		}
		if time.Now().After(deadline) {
			t.Fatalf("promgate_audit_last_hash_info: %v %v", vec, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promVector runs an instant query and returns the label sets of the result.
func promVector(base, query string) ([]map[string]string, error) {
	resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {query}}.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body apiResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", body.ErrorType, body.Error)
	}
	var vec []struct {
		Metric map[string]string `json:"metric"`
	}
	if err := json.Unmarshal(body.Data.Result, &vec); err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(vec))
	for i, v := range vec {
		out[i] = v.Metric
	}
	return out, nil
}

// breakAuditDir makes the folder of an audit file unwritable for real: a
// 64 KiB tmpfs filled to the last byte, or, where mounting is not allowed,
// the file replaced by a folder. It returns the function that repairs it.
func breakAuditDir(t *testing.T, dir, path string, tmpfs bool) (repair func()) {
	t.Helper()
	if tmpfs {
		filler := filepath.Join(dir, "filler")
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		chunk := make([]byte, 4096)
		for {
			if _, err := f.Write(chunk); err != nil {
				break
			}
		}
		for {
			if _, err := f.Write(chunk[:1]); err != nil {
				break
			}
		}
		f.Close()
		return func() { os.Remove(filler) }
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	return func() { os.Remove(path) }
}

// mountTmpfs mounts a 64 KiB tmpfs on dir, reporting whether it could.
func mountTmpfs(t *testing.T, dir string) bool {
	t.Helper()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Logf("no tmpfs (%v: %s); replacing the audit file with a folder instead", err, bytes.TrimSpace(out))
		return false
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return true
}

// TestAuditOnFailure breaks the audit folder of two gateways for real: with
// on_failure: deny, requests get 503 unavailable and nothing is forwarded
// until writing works again; with log, requests go on and
// promgate_audit_failures_total counts the failures.
func TestAuditOnFailure(t *testing.T) {
	for _, mode := range []string{"deny", "log"} {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(env.tmp, "audit-"+mode)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tmpfs := mountTmpfs(t, dir)
			path := filepath.Join(dir, "audit.log")
			g := startAuditGateway(t, "audit-"+mode, env.rec.url, path, "100MiB", mode)
			defer g.proc.stop()
			c := newClient(t, g, env.pki, "team-a")
			ok := q(`up{namespace="team-a"}`)
			if res := c.do(t, ok); res.status != http.StatusOK {
				t.Fatalf("before the failure: %s", res)
			}

			repair := breakAuditDir(t, dir, path, tmpfs)
			// With on_failure: deny (audit.mode durable) the allowed request
			// whose record cannot be written is aborted, never answered;
			// those after it get 503. With log the answer goes out and the
			// failure is counted.
			deadline := time.Now().Add(10 * time.Second)
			failures := 0.0
			aborted := 0
			for {
				res, err := c.try(ok)
				if err != nil {
					if mode != "deny" {
						t.Fatalf("with on_failure: log a broken audit trail broke a response: %v", err)
					}
					aborted++
					if time.Now().After(deadline) {
						t.Fatalf("no 503 after 10 s of aborted responses (%d)", aborted)
					}
					continue
				}
				if mode == "deny" && res.status == http.StatusServiceUnavailable {
					// Not wantError: the allowed attempt before it, whose
					// record failed, was forwarded and then aborted, and
					// the client's transport may have sent the GET again
					// on a new connection, within this result's window.
					// The five requests below check that nothing goes
					// upstream while the trail is broken.
					res.wantEnvelope(t, "unavailable")
					break
				}
				if mode == "log" {
					if res.status != http.StatusOK {
						t.Fatalf("with on_failure: log a broken audit trail refused a request: %s", res)
					}
					if failures = metricValue(t, g, "promgate_audit_failures_total"); failures > 0 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("no sign of the audit failure after 10 s (last: %s)", res)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if mode == "deny" {
				t.Logf("responses aborted because their record could not be written: %d", aborted)
				before := env.rec.count()
				for range 5 {
					res := c.do(t, ok)
					if res.status != http.StatusServiceUnavailable {
						t.Errorf("with the audit folder broken: %s, want 503", res)
					}
				}
				if n := env.rec.count() - before; n != 0 {
					t.Errorf("%d requests reached the upstream while the audit trail was failing", n)
				}
				resp, err := http.Get("http://" + g.internal + "/-/ready")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("/-/ready = %d while the audit trail fails, want 503", resp.StatusCode)
				}
			}

			repair()
			deadline = time.Now().Add(10 * time.Second)
			for {
				res := c.do(t, ok)
				if res.status == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("requests still refused 10 s after the audit folder was repaired: %s", res)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := g.proc.stop(); err != nil {
				t.Fatal(err)
			}
			// What was stored still verifies (a record refused by a
			// failed write is not part of the chain); a tmpfs that
			// filled up may have cut a buffered record, which verify
			// reports as such and nothing else.
			code, out := auditVerify(t, path)
			if code != 0 && !(tmpfs && onlyFormatBreaks(out)) {
				t.Errorf("audit verify after the failure: exit %d\n%s", code, out)
			}
		})
	}
}

// onlyFormatBreaks reports whether every break verify printed is a cut
// record and the chain restart that follows it.
func onlyFormatBreaks(out string) bool {
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "FAIL:") || strings.HasPrefix(l, "OK:") {
			continue
		}
		if !strings.Contains(l, ": format: ") && !strings.Contains(l, ": prev_hash: ") {
			return false
		}
	}
	return true
}

// metricValue scrapes g's internal /metrics for an unlabelled sample.
func metricValue(t *testing.T, g *gateway, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.internal + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("%s not in /metrics", name)
	return 0
}
