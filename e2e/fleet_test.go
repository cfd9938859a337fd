//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// The fleet test (issue 21): three `promgate serve` replicas behind a real
// HAProxy (Debian haproxy) in TCP mode with TLS passthrough and
// send-proxy-v2, health-checked on each replica's internal /-/ready, under a
// steady load of mixed reads, while one replica gets SIGTERM and another
// SIGKILL and is restarted.
const (
	// fleetRate is the offered load, requests per second, open loop.
	fleetRate = 200
	// fleetMaxInFlight bounds the load generator; a tick that finds it
	// full is counted as not sent, and the test fails on any.
	fleetMaxInFlight = 200
	// fleetGrace is how long after the SIGKILL requests may still fail:
	// those in flight on the killed replica, until HAProxy's health check
	// (inter 500ms, fall 2) takes it out.
	fleetGrace = 3 * time.Second
	// fleetClientIP is the load's source address: not HAProxy's, so that
	// the audit shows the PROXY protocol at work.
	fleetClientIP = "127.0.0.2"
)

// fleetDuration is the load's length: 60 s as the issue asks, or
// PROMGATE_FLEET_DURATION (a Go duration, at least 20s) to shorten it.
func fleetDuration(t *testing.T) time.Duration {
	d := 60 * time.Second
	if s := os.Getenv("PROMGATE_FLEET_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v < 20*time.Second {
			t.Fatalf("PROMGATE_FLEET_DURATION=%q: want a duration of at least 20s", s)
		}
		d = v
	}
	return d
}

const fleetGatewayConfig = `listen: %[1]s
internal_listen: %[2]s
trusted_proxies: [127.0.0.1/32]
proxy_protocol: true
tls:
  cert_file: %[3]s/server.crt
  key_file: %[3]s/server.key
  client_ca_file: %[3]s/ca.crt
  client_auth_type: RequireAndVerifyClientCert
upstream:
  url: %[4]s
authz:
  policies: %[5]s
audit:
  path: %[6]s/audit.log
  on_failure: deny
limits:
  requests_per_second: 1000
  burst: 1000
`

const fleetHAProxyConfig = `global
  maxconn 4000
defaults
  mode tcp
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  retries 3
  option redispatch
frontend promgate
  bind 127.0.0.1:%[1]s
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /-/ready
  http-check expect status 200
  default-server inter 500ms fall 2 rise 1 send-proxy-v2
%[2]s`

// replica is one promgate serve process of the fleet.
type replica struct {
	id       string
	addr     string
	internal string
	config   string
	proc     *process
	starts   int
}

type fleet struct {
	dir      string
	replicas []*replica
	lb       string // HAProxy's frontend
	haproxy  *process
}

func (f *fleet) start(t *testing.T, r *replica) {
	t.Helper()
	r.starts++
	var err error
	r.proc, err = env.start(fmt.Sprintf("fleet-%s-%d", r.id, r.starts), f.dir,
		env.bin, "serve", "-config", r.config, "-replica-id", r.id)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.waitGateway(&gateway{name: "fleet-" + r.id, addr: r.addr, internal: r.internal, proc: r.proc}); err != nil {
		t.Fatal(err)
	}
}

func startFleet(t *testing.T) *fleet {
	t.Helper()
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/haproxy"); serr != nil {
			t.Fatal("haproxy not found: run scripts/install-deps.sh (it installs the Debian package haproxy)")
		}
		haproxy = "/usr/sbin/haproxy"
	}
	f := &fleet{dir: filepath.Join(env.tmp, "fleet")}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var servers strings.Builder
	for i := 1; i <= 3; i++ {
		r := &replica{id: "r" + strconv.Itoa(i)}
		if r.addr, err = freePort(); err != nil {
			t.Fatal(err)
		}
		if r.internal, err = freePort(); err != nil {
			t.Fatal(err)
		}
		// One file for every replica, as a Deployment would mount it;
		// -replica-id tells them apart.
		r.config = filepath.Join(f.dir, "promgate-"+r.id+".yml")
		cfg := fmt.Sprintf(fleetGatewayConfig, r.addr, r.internal, env.pki, env.promURL, filepath.Join(env.root, "policies"), f.dir)
		if err := os.WriteFile(r.config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(r.internal)
		fmt.Fprintf(&servers, "  server %s %s check port %s\n", r.id, r.addr, port)
		f.replicas = append(f.replicas, r)
	}
	for _, r := range f.replicas {
		f.start(t, r)
	}
	if f.lb, err = freePort(); err != nil {
		t.Fatal(err)
	}
	_, lbPort, _ := net.SplitHostPort(f.lb)
	hcfg := filepath.Join(f.dir, "haproxy.cfg")
	if err := os.WriteFile(hcfg, []byte(fmt.Sprintf(fleetHAProxyConfig, lbPort, servers.String())), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxy, "-c", "-f", hcfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	if f.haproxy, err = env.start("fleet-haproxy", f.dir, haproxy, "-db", "-f", hcfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, r := range f.replicas {
			if !r.proc.exited() {
				_ = r.proc.stop()
			}
		}
		if !f.haproxy.exited() {
			_ = f.haproxy.stop()
		}
	})
	deadline := time.Now().Add(startBudget)
	for {
		c, err := net.Dial("tcp", f.lb)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || f.haproxy.exited() {
			t.Fatalf("haproxy does not listen on %s: %v", f.lb, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return f
}

// fleetClient is team-a's HTTP/1.1 client from fleetClientIP: one
// connection per request in flight, so that HAProxy spreads them.
func fleetClient(t *testing.T) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fleetClientIP)}, Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		TLSClientConfig:     clientTLS(t, env.pki, env.pki, "team-a"),
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1: one replica per connection
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: requestBudget}
}

// fleetResult is one request of the load.
type fleetResult struct {
	clientID string
	at       time.Duration // since the load began
	status   int           // 0: no answer
	serverID string        // the answer's X-Request-Id: its audit record's id
	err      string
}

// fleetPaths are the mixed reads, taken in turn.
func fleetPaths() []string {
	now := time.Now()
	rng := url.Values{"query": {"sum by (job) (rate(prometheus_http_requests_total[1m]))"},
		"start": {strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10)}, "end": {strconv.FormatInt(now.Unix(), 10)}, "step": {"15"}}
	return []string{
		"/api/v1/query?" + url.Values{"query": {"up"}}.Encode(),
		"/api/v1/query_range?" + rng.Encode(),
		"/api/v1/series?" + url.Values{"match[]": {"up"}}.Encode(),
		"/api/v1/labels",
		"/api/v1/label/job/values",
	}
}

func TestFleetFailover(t *testing.T) {
	began := time.Now()
	duration := fleetDuration(t)
	f := startFleet(t)
	hc := fleetClient(t)
	paths := fleetPaths()
	base := "https://" + f.lb

	// A first request through the balancer: the address it audits is the
	// client's, not HAProxy's.
	resp, err := hc.Get(base + paths[0])
	if err != nil {
		t.Fatalf("first request through haproxy: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("first request through haproxy: %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}

	var (
		mu       sync.Mutex
		results  []fleetResult
		inFlight atomic.Int64
		notSent  atomic.Int64
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	start := time.Now()
	send := func(n int) {
		defer wg.Done()
		defer inFlight.Add(-1)
		res := fleetResult{clientID: fmt.Sprintf("fleet-%06d", n), at: time.Since(start)}
		req, _ := http.NewRequest(http.MethodGet, base+paths[n%len(paths)], nil)
		req.Header.Set("X-Request-Id", res.clientID)
		resp, err := hc.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil {
				res.status, res.serverID = resp.StatusCode, resp.Header.Get("X-Request-Id")
			}
		}
		if err != nil {
			res.err = err.Error()
		}
		mu.Lock()
		results = append(results, res)
		mu.Unlock()
	}
	// The load runs in the background; the replicas are stopped from here.
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(time.Second / fleetRate)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if inFlight.Load() >= fleetMaxInFlight {
				notSent.Add(1)
				continue
			}
			inFlight.Add(1)
			wg.Add(1)
			go send(n)
		}
	}()

	sleepUntil := func(at time.Duration) { time.Sleep(time.Until(start.Add(at))) }
	// SIGTERM: r1 stops accepting, drains, exits 0, and is started again
	// (a rolling update).
	sleepUntil(duration / 4)
	termAt := time.Since(start)
	if err := f.replicas[0].proc.stop(); err != nil {
		t.Errorf("r1 after SIGTERM: %v", err)
	}
	termDone := time.Since(start)
	f.start(t, f.replicas[0])
	// SIGKILL: r2 dies with requests in flight, and is started again. The
	// load's requests take milliseconds, so a few slow ones are sent to r2
	// itself a second before (as HAProxy would, with a PROXY header), each
	// sending its form body a byte at a time: they are certainly in flight
	// on r2 when it dies.
	r2 := f.replicas[1]
	sleepUntil(duration/2 - time.Second)
	slow := fleetSlowRequests(t, r2, fleetSlowInFlight)
	sleepUntil(duration / 2)
	killAt := time.Since(start)
	_ = r2.proc.cmd.Process.Signal(syscall.SIGKILL)
	<-r2.proc.done
	f.start(t, r2)
	restartedAt := time.Since(start)
	var slowLost, slowAnswered []string
	for range fleetSlowInFlight {
		r := <-slow
		if r.status == 0 {
			slowLost = append(slowLost, r.clientID)
		} else {
			slowAnswered = append(slowAnswered, fmt.Sprintf("%s: %d", r.clientID, r.status))
		}
	}

	<-loadDone
	wg.Wait()
	loadTook := time.Since(start)

	// Every replica stops cleanly, so that its chain is complete on disk.
	for _, r := range f.replicas {
		if err := r.proc.stop(); err != nil {
			t.Errorf("%s after SIGTERM at the end: %v", r.id, err)
		}
	}

	// The audit trail of the whole fleet.
	files, _ := filepath.Glob(filepath.Join(f.dir, "audit-r*.log*"))
	sort.Strings(files)
	byID := map[string][]fleetRecord{}
	byClient := map[string]int{}
	records := 0
	perReplica := map[string]int{}
	for _, file := range files {
		recs := readFleetAudit(t, file)
		records += len(recs)
		perReplica[filepath.Base(file)] += len(recs)
		for _, r := range recs {
			byID[r.ID] = append(byID[r.ID], r)
			if strings.HasPrefix(r.ClientRequestID, "fleet-") {
				byClient[r.ClientRequestID]++
			}
		}
	}
	if len(files) != 3 {
		t.Errorf("audit files %q, want one per replica", files)
	}
	args := append([]string{"audit", "verify"}, files...)
	if out, err := env.promgate(args...); err != nil {
		t.Errorf("promgate audit verify of every replica's chain: %v\n%s", err, out)
	} else {
		t.Logf("promgate audit verify: %s", strings.TrimSpace(string(out)))
	}

	var answered, failed, failedBeforeKill, failedAfterGrace, unaudited, duplicated, wrongAddr, notOK int
	var firstErrs []string
	for _, r := range results {
		if r.status == 0 {
			failed++
			switch {
			case r.at < killAt:
				failedBeforeKill++
			case r.at > restartedAt+fleetGrace:
				failedAfterGrace++
			}
			if len(firstErrs) < 5 {
				firstErrs = append(firstErrs, fmt.Sprintf("%s at %v: %s", r.clientID, r.at.Round(time.Millisecond), r.err))
			}
			continue
		}
		answered++
		if r.status != http.StatusOK {
			notOK++
		}
		recs := byID[r.serverID]
		switch {
		case len(recs) == 0:
			unaudited++
		case len(recs) > 1:
			duplicated++
		case recs[0].ClientRequestID != r.clientID:
			t.Errorf("record %s has client_request_id %q, want %q", r.serverID, recs[0].ClientRequestID, r.clientID)
		case recs[0].RemoteAddr != fleetClientIP:
			wrongAddr++
		}
	}
	// A request the killed replica had read and recorded, and that the
	// client's transport then sent again (an idempotent GET on a reused
	// connection), has two records under two server ids: both real.
	auditedFailures, resent := 0, 0
	for _, r := range results {
		if r.status == 0 && byClient[r.clientID] > 0 {
			auditedFailures++
		}
		if r.status != 0 && byClient[r.clientID] > 1 {
			resent++
		}
	}
	t.Logf("fleet: %v of load at %d req/s offered; SIGTERM r1 at %v (drained and exited by %v), SIGKILL r2 at %v (restarted and ready by %v); load took %v",
		duration, fleetRate, termAt.Round(time.Millisecond), termDone.Round(time.Millisecond),
		killAt.Round(time.Millisecond), restartedAt.Round(time.Millisecond), loadTook.Round(time.Millisecond))
	t.Logf("fleet: sent %d, answered %d (%d not 200), failed %d (%d before the SIGKILL, %d after restart+%v); not sent (generator full) %d",
		len(results), answered, notOK, failed, failedBeforeKill, failedAfterGrace, fleetGrace, notSent.Load())
	t.Logf("fleet: audit records %d across %d files %v; answered without a record %d, with more than one %d, with another address than %s %d; failed requests that have a record %d; answered requests the client's transport sent twice %d",
		records, len(files), perReplica, unaudited, duplicated, fleetClientIP, wrongAddr, auditedFailures, resent)
	if len(firstErrs) > 0 {
		t.Logf("fleet: first failures: %s", strings.Join(firstErrs, "; "))
	}
	slowRecorded := 0
	for _, id := range slowLost {
		slowRecorded += byClient[id]
	}
	t.Logf("fleet: in flight on r2 at the SIGKILL: %d slow requests sent to it directly, %d lost (the client saw a broken connection), %d answered, %d of the lost with an audit record",
		fleetSlowInFlight, len(slowLost), len(slowAnswered), slowRecorded)
	if len(slowAnswered) > 0 {
		t.Errorf("requests in flight on the killed replica were answered: %v", slowAnswered)
	}
	if slowRecorded > 0 {
		t.Errorf("%d requests lost in the SIGKILL have an audit record: a record must describe an answered request", slowRecorded)
	}
	if notSent.Load() > 0 {
		t.Errorf("%d requests not sent: the generator had %d in flight", notSent.Load(), fleetMaxInFlight)
	}
	if len(results) < int(float64(fleetRate)*duration.Seconds()*0.9) {
		t.Errorf("sent %d requests, want about %d", len(results), int(float64(fleetRate)*duration.Seconds()))
	}
	if failedBeforeKill > 0 {
		t.Errorf("%d requests failed before the SIGKILL: SIGTERM must lose none", failedBeforeKill)
	}
	if failedAfterGrace > 0 {
		t.Errorf("%d requests failed more than %v after the killed replica was back", failedAfterGrace, fleetGrace)
	}
	if notOK > 0 {
		t.Errorf("%d answers were not 200", notOK)
	}
	if unaudited > 0 || duplicated > 0 {
		t.Errorf("answered requests without exactly one audit record: %d without, %d with several", unaudited, duplicated)
	}
	if wrongAddr > 0 {
		t.Errorf("%d records name another address than the client's %s: the PROXY protocol was not used", wrongAddr, fleetClientIP)
	}
	t.Logf("fleet e2e took %v", time.Since(began).Round(time.Millisecond))
}

// fleetSlowInFlight is how many slow requests are in flight on the killed
// replica.
const fleetSlowInFlight = 4

// fleetSlowRequests sends n POST /api/v1/query to replica r directly, as
// HAProxy would (a PROXY v2 header naming fleetClientIP, then TLS), each
// sending its 13-byte form body a byte every 250 ms; their results arrive
// on the channel as they end.
func fleetSlowRequests(t *testing.T, r *replica, n int) <-chan fleetResult {
	t.Helper()
	dst, err := net.ResolveTCPAddr("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			src := &net.TCPAddr{IP: net.ParseIP(fleetClientIP), Port: c.LocalAddr().(*net.TCPAddr).Port}
			if _, err := proxyproto.HeaderProxyFromAddrs(2, src, dst).WriteTo(c); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
		TLSClientConfig:   clientTLS(t, env.pki, env.pki, "team-a"),
		TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
		DisableKeepAlives: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: requestBudget}
	out := make(chan fleetResult, n)
	for i := range n {
		go func() {
			res := fleetResult{clientID: fmt.Sprintf("fleet-slow-%d", i)}
			body := "query=sum(up)"
			req, _ := http.NewRequest(http.MethodPost, "https://"+r.addr+"/api/v1/query", &slowReader{b: []byte(body), every: 250 * time.Millisecond})
			req.ContentLength = int64(len(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Request-Id", res.clientID)
			resp, err := hc.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil {
					res.status = resp.StatusCode
				}
			}
			if err != nil {
				res.err = err.Error()
			}
			out <- res
		}()
	}
	return out
}

// slowReader yields one byte of b per read, every interval.
type slowReader struct {
	b     []byte
	every time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.every)
	p[0] = s.b[0]
	s.b = s.b[1:]
	return 1, nil
}

// fleetRecord is what the fleet test reads of an audit record.
type fleetRecord struct {
	ID              string `json:"id"`
	ClientRequestID string `json:"client_request_id"`
	RemoteAddr      string `json:"remote_addr"`
	Status          int    `json:"status"`
}

func readFleetAudit(t *testing.T, path string) []fleetRecord {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []fleetRecord
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r fleetRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Errorf("%s: a line is not a record: %v", path, err)
			continue
		}
		out = append(out, r)
	}
	return out
}
