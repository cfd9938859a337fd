//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
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
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The results cache's data: counters, a classic histogram and a gauge with
// NaN samples, in three namespaces, three pods each. Their value is a
// function of time, so the backfilled history and the live scrape are one
// continuous series.
var cacheNamespaces = []string{nsTeamA, nsTeamB, nsKube}

const cacheInterval = 15 * time.Second

// cacheExposition writes the families at time ts (Unix seconds): in the
// text format when withTS is false (the live scrape), in OpenMetrics with
// timestamps for the backfill, where every 17th gauge sample is NaN.
func cacheExposition(w *bufio.Writer, ts int64, withTS bool, instance string, types bool) {
	lbl := func(ns string, pod int, extra string) string {
		s := fmt.Sprintf(`namespace=%q,pod="p-%d"`, ns, pod)
		if withTS {
			s = fmt.Sprintf(`instance=%q,job="cache-e2e",`, instance) + s
		}
		return s + extra
	}
	suffix := ""
	if withTS {
		suffix = " " + strconv.FormatInt(ts, 10)
	}
	if types {
		w.WriteString("# TYPE cache_e2e_requests counter\n")
	}
	for i, ns := range cacheNamespaces {
		for p := range 3 {
			fmt.Fprintf(w, "cache_e2e_requests_total{%s} %g%s\n", lbl(ns, p, ""), float64(ts)*float64(p+1+i)*0.1, suffix)
		}
	}
	if types {
		w.WriteString("# TYPE cache_e2e_latency_seconds histogram\n")
	}
	for i, ns := range cacheNamespaces {
		for p := range 3 {
			base := float64(ts) * float64(p+1+i)
			for j, le := range []string{"0.1", "0.5", "+Inf"} {
				fmt.Fprintf(w, "cache_e2e_latency_seconds_bucket{%s} %g%s\n", lbl(ns, p, `,le="`+le+`"`), base*float64(j+1), suffix)
			}
			fmt.Fprintf(w, "cache_e2e_latency_seconds_sum{%s} %g%s\n", lbl(ns, p, ""), base*0.7, suffix)
			fmt.Fprintf(w, "cache_e2e_latency_seconds_count{%s} %g%s\n", lbl(ns, p, ""), base*3, suffix)
		}
	}
	if types {
		w.WriteString("# TYPE cache_e2e_temperature gauge\n")
	}
	for i, ns := range cacheNamespaces {
		for p := range 3 {
			v := strconv.FormatFloat(20+10*math.Sin(float64(ts)/600+float64(p+i)), 'g', -1, 64)
			if withTS && (ts/int64(cacheInterval.Seconds()))%17 == int64(p) {
				v = "NaN"
			}
			fmt.Fprintf(w, "cache_e2e_temperature{%s} %s%s\n", lbl(ns, p, ""), v, suffix)
		}
	}
}

// cacheStack is the results cache's own Prometheus (backfilled history and
// a live scrape), a memcached and two gateway replicas sharing it.
type cacheStack struct {
	promURL string
	mc      string // memcached's host:port
	a, b    *gateway
	now     time.Time
}

func startCacheStack(t *testing.T) *cacheStack {
	t.Helper()
	for _, c := range []string{"promtool", "memcached"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found in PATH: run scripts/install-deps.sh (Debian packages prometheus and memcached)", c)
		}
	}
	dir := filepath.Join(env.tmp, "cache")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The live target: the same families, now.
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		bw := bufio.NewWriter(w)
		cacheExposition(bw, time.Now().Unix(), false, "", true)
		bw.Flush() //nolint:errcheck // the scrape fails visibly
	}))
	t.Cleanup(exporter.Close)
	instance := strings.TrimPrefix(exporter.URL, "http://")

	// Three hours of history up to two minutes ago, backfilled.
	cs := &cacheStack{now: time.Now()}
	om := filepath.Join(dir, "history.om")
	f, err := os.Create(om)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	end := cs.now.Add(-2 * time.Minute).Truncate(cacheInterval).Unix()
	start := end - int64((3 * time.Hour).Seconds())
	// OpenMetrics wants each family's samples together, in time order.
	var fam [3]strings.Builder
	for ts := start; ts <= end; ts += int64(cacheInterval.Seconds()) {
		var b strings.Builder
		w := bufio.NewWriter(&b)
		cacheExposition(w, ts, true, instance, false)
		w.Flush() //nolint:errcheck // a strings.Builder does not fail
		for line := range strings.SplitSeq(strings.TrimSuffix(b.String(), "\n"), "\n") {
			switch {
			case strings.HasPrefix(line, "cache_e2e_requests"):
				fam[0].WriteString(line + "\n")
			case strings.HasPrefix(line, "cache_e2e_latency"):
				fam[1].WriteString(line + "\n")
			default:
				fam[2].WriteString(line + "\n")
			}
		}
	}
	for i, typ := range []string{"# TYPE cache_e2e_requests counter\n", "# TYPE cache_e2e_latency_seconds histogram\n", "# TYPE cache_e2e_temperature gauge\n"} {
		bw.WriteString(typ)
		bw.WriteString(fam[i].String())
	}
	bw.WriteString("# EOF\n")
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("promtool", "tsdb", "create-blocks-from", "openmetrics", om, filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}

	promAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cs.promURL = "http://" + promAddr
	// The exporter's history and live samples, and Prometheus itself in
	// team-a's and team-b's namespaces, for the Grafana panels of the
	// drop-in test.
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: cache-e2e\n    honor_labels: true\n    static_configs:\n      - targets: [%q]\n", instance)
	for _, ns := range []string{nsTeamA, nsTeamB} {
		cfg += fmt.Sprintf("  - job_name: prometheus-%s\n    static_configs:\n      - targets: [%q]\n        labels: {namespace: %q}\n", ns, promAddr, ns)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom, err := env.start("prometheus-cache", dir, "prometheus", "--config.file=prometheus.yml",
		"--storage.tsdb.path=data", "--web.listen-address="+promAddr, "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prom.stop() })

	mcAddr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cs.mc = mcAddr
	host, port, _ := strings.Cut(mcAddr, ":")
	args := []string{"memcached", "-l", host, "-p", port, "-U", "0", "-m", "64"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	mc, err := env.start("memcached", dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.stop() })

	// Prometheus ready, with the history and a few live samples.
	deadline := time.Now().Add(dataBudget)
	for {
		if prom.exited() {
			t.Fatalf("prometheus (cache) exited: %v", prom.err) //nolint:errorlint // printed, not classified
		}
		hist, _ := promNamespaces(cs.promURL, `count by (namespace) (count_over_time(cache_e2e_requests_total[3h]) > 600)`)
		live, _ := promNamespaces(cs.promURL, `count by (namespace) (count_over_time(cache_e2e_requests_total[20s]) >= 3)`)
		if containsAll(hist, cacheNamespaces) && containsAll(live, cacheNamespaces) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus (cache) has no history and live data after %v: history %v, live %v", dataBudget, keys(hist), keys(live))
		}
		time.Sleep(250 * time.Millisecond)
	}

	// One signing key for both replicas, as one Secret mounted by every
	// pod of a Deployment.
	signingKey := filepath.Join(dir, "memcached.key")
	key := make([]byte, 48)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(signingKey, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cache-a", "cache-b"} {
		g := &gateway{name: name, authType: "RequireAndVerifyClientCert", upstream: cs.promURL}
		if err := env.writeGateway(g); err != nil {
			t.Fatal(err)
		}
		extra := fmt.Sprintf("cache:\n  enabled: true\n  max_freshness: 1m\n  split_interval: 10m\n  memcached:\n    addresses: [%q]\n    signing_key_file: %s\n", mcAddr, signingKey)
		fh, err := os.OpenFile(g.config, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fh.WriteString(extra); err != nil {
			t.Fatal(err)
		}
		fh.Close()
		if err := env.startGateway(g); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := g.proc.stop(); err != nil {
				t.Errorf("promgate serve (%s) did not stop cleanly: %v", g.name, err)
			}
		})
		if err := env.waitGateway(g); err != nil {
			t.Fatal(err)
		}
		if name == "cache-a" {
			cs.a = g
		} else {
			cs.b = g
		}
	}
	return cs
}

// cacheE2EQueries are the query shapes checked through the cache against
// the real Prometheus: every matcher type, rates, offsets, @ with a
// timestamp, subqueries with and without a step, a classic histogram's
// quantile, NaN samples, and aggregations.
func cacheE2EQueries(at time.Time) []string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return []string{
		`cache_e2e_requests_total`,
		`rate(cache_e2e_requests_total{pod="p-1"}[5m])`,
		`sum by (namespace) (rate(cache_e2e_requests_total{pod=~"p-[12]"}[2m]))`,
		`cache_e2e_requests_total{pod!="p-1"} offset 10m`,
		`rate(cache_e2e_requests_total{pod!~"p-0"}[5m] offset -2m)`,
		`cache_e2e_temperature @ ` + ts,
		`max_over_time(cache_e2e_temperature[10m:1m])`,
		`avg_over_time(rate(cache_e2e_requests_total[1m])[15m:])`,
		`histogram_quantile(0.9, sum by (le, namespace) (rate(cache_e2e_latency_seconds_bucket[5m])))`,
		`cache_e2e_temperature`,
		`{__name__=~"cache_e2e_(temperature|requests_total)",namespace!~"kube.*"}`,
		`topk(2, cache_e2e_temperature)`,
		`time() - timestamp(cache_e2e_temperature)`,
	}
}

// rangeQuery is one query_range through a gateway; noCache adds
// Cache-Control: no-cache.
func rangeQuery(t *testing.T, g *gateway, who caller, q string, start, end time.Time, step time.Duration, noCache bool) []byte {
	t.Helper()
	req := request{path: "/api/v1/query_range", query: url.Values{"query": {q},
		"start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}}
	if noCache {
		req.header = map[string][]string{"Cache-Control": {"no-cache"}}
	}
	res, err := newClient(t, g, env.pki, who.name).try(req)
	if err != nil {
		t.Fatalf("%s as %s via %s: %v", q, who.name, g.name, err)
	}
	if res.status != http.StatusOK {
		t.Fatalf("%s as %s via %s: %d %s", q, who.name, g.name, res.status, res.body)
	}
	return res.body
}

// cacheNormalized decodes an answer and sorts its series by their labels.
func cacheNormalized(t *testing.T, b []byte) any {
	t.Helper()
	var v struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string           `json:"resultType"`
			Result     []map[string]any `json:"result"`
		} `json:"data"`
		Warnings []string `json:"warnings"`
		Infos    []string `json:"infos"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("answer is not JSON: %v: %.200s", err, b)
	}
	key := func(m map[string]any) string { s, _ := json.Marshal(m["metric"]); return string(s) }
	sort.Slice(v.Data.Result, func(i, j int) bool { return key(v.Data.Result[i]) < key(v.Data.Result[j]) })
	return v
}

// tamperMemcached changes one byte of the series in every promgate item
// held by the memcached at addr, as someone who can write to it but has no
// signing key would, and returns how many it changed. Items are listed
// with memcached's lru_crawler metadump and rewritten with its text
// protocol.
func tamperMemcached(t *testing.T, addr string) int {
	t.Helper()
	// The replicas store in the background: give the last ones a moment.
	time.Sleep(500 * time.Millisecond)
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	rd := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("lru_crawler metadump all\r\n")); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("memcached metadump: %v", err)
		}
		line = strings.TrimSpace(line)
		if line == "END" {
			break
		}
		for f := range strings.FieldsSeq(line) {
			if k, ok := strings.CutPrefix(f, "key="); ok {
				if k, err = url.QueryUnescape(k); err == nil && strings.HasPrefix(k, "promgate:") {
					keys = append(keys, k)
				}
			}
		}
	}
	changed := 0
	for _, k := range keys {
		fmt.Fprintf(conn, "get %s\r\n", k)
		head, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(head) == "END" {
			continue // expired or evicted since the listing
		}
		var name string
		var flags, size int
		if _, err := fmt.Sscanf(head, "VALUE %s %d %d", &name, &flags, &size); err != nil {
			t.Fatalf("memcached get %s: %q: %v", k, head, err)
		}
		v := make([]byte, size+2)
		if _, err := io.ReadFull(rd, v); err != nil {
			t.Fatal(err)
		}
		if end, err := rd.ReadString('\n'); err != nil || strings.TrimSpace(end) != "END" {
			t.Fatalf("memcached get %s: %q %v", k, end, err)
		}
		v = v[:size]
		// The last digit of the series' JSON: a value, or a timestamp.
		i := bytes.LastIndexAny(v, "0123456789")
		if i < 0 {
			continue
		}
		v[i] = '0' + (v[i]-'0'+1)%10
		fmt.Fprintf(conn, "set %s %d 3600 %d\r\n%s\r\n", k, flags, len(v), v)
		if res, err := rd.ReadString('\n'); err != nil || strings.TrimSpace(res) != "STORED" {
			t.Fatalf("memcached set %s: %q %v", k, res, err)
		}
		changed++
	}
	return changed
}

// stableRound asks Prometheus straight (Cache-Control: no-cache) before
// and after the cached requests, and returns its answer and theirs from a
// round in which Prometheus' own answer held still. The windows end a few
// seconds ago, inside the live scrape: on a loaded machine a scrape stamped
// before the window's end can be stored a few seconds late, and then
// Prometheus itself answers differently from one request to the next. Such
// a round says nothing about the cache, so it is repeated (up to five
// times). Samples are only ever added, so when the answers before and after
// are equal, every request in between saw the same data.
func stableRound(t *testing.T, uncached func() []byte, cached func() map[string][]byte) (any, map[string][]byte) {
	t.Helper()
	for round := 1; ; round++ {
		before := cacheNormalized(t, uncached())
		got := cached()
		after := cacheNormalized(t, uncached())
		if cmp.Equal(before, after) || round == 5 {
			if round == 5 {
				t.Logf("Prometheus' own answer changed during each of %d rounds; comparing with the last one", round)
			}
			return after, got
		}
		t.Logf("round %d: Prometheus' own answer changed while the cached requests ran (a late scrape); asking again", round)
		time.Sleep(time.Second)
	}
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// namespacesOf returns the namespaces of an answer's series.
func namespacesOf(t *testing.T, b []byte) []string {
	t.Helper()
	var v apiResponse
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var series []struct {
		Metric map[string]string `json:"metric"`
	}
	if err := json.Unmarshal(v.Data.Result, &series); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range series {
		if ns, ok := s.Metric["namespace"]; ok && !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return out
}

// TestResultsCache runs two gateway replicas with the results cache on and
// one memcached in front of a real Prometheus that holds three hours of
// backfilled history and scrapes the same series every second. Through the
// cache, every query shape answers as it does with Cache-Control: no-cache
// (straight to Prometheus), cold and warm, for the admin and two confined
// callers, over windows that cross part boundaries at several steps; each
// confined caller sees only its namespaces although all three ask the same
// panels; while new samples arrive, a sliding window keeps answering as
// Prometheus does and shows them; and replica B answers from the parts
// replica A stored in memcached.
func TestResultsCache(t *testing.T) {
	cs := startCacheStack(t)
	now := time.Now()
	step := func(d time.Duration, s time.Duration) (time.Time, time.Time) {
		// Grafana aligns start and end down to a multiple of the step.
		end := now.Add(-5 * time.Second).Truncate(s)
		return now.Add(-d).Truncate(s), end
	}
	type window struct {
		name       string
		start, end time.Time
		step       time.Duration
	}
	var windows []window
	for _, w := range []struct {
		name  string
		rng   time.Duration
		step  time.Duration
		shift time.Duration
	}{
		{"1h at 15s", time.Hour, 15 * time.Second, 0},
		{"2h at 1m, unaligned", 2 * time.Hour, time.Minute, 7 * time.Second},
		{"150m at 37s", 150 * time.Minute, 37 * time.Second, 0},
	} {
		s, e := step(w.rng, w.step)
		windows = append(windows, window{w.name, s.Add(w.shift), e, w.step})
	}
	callers := []caller{callerAdmin, callerTeamA, callerTeamB}
	queries := cacheE2EQueries(now.Add(-90 * time.Minute))
	for _, w := range windows {
		for _, q := range queries {
			for _, who := range callers {
				want, got := stableRound(t, func() []byte {
					return rangeQuery(t, cs.a, who, q, w.start, w.end, w.step, true)
				}, func() map[string][]byte {
					return map[string][]byte{
						"cold":      rangeQuery(t, cs.a, who, q, w.start, w.end, w.step, false),
						"warm":      rangeQuery(t, cs.a, who, q, w.start, w.end, w.step, false),
						"replica B": rangeQuery(t, cs.b, who, q, w.start, w.end, w.step, false),
					}
				})
				warm := got["warm"]
				for name, got := range got {
					if d := cmp.Diff(want, cacheNormalized(t, got)); d != "" {
						t.Errorf("%s, %s as %s, %s: cached answer differs from Prometheus' (-want +got):\n%s", w.name, q, who.name, name, d)
					}
				}
				if who.name != callerAdmin.name {
					for _, ns := range namespacesOf(t, warm) {
						if !slices.Contains(who.allowed, ns) {
							t.Errorf("%s, %s as %s: the cached answer holds namespace %q", w.name, q, who.name, ns)
						}
					}
				}
			}
		}
	}

	// New samples arrive every second: a sliding 30-minute window, moved
	// as Grafana moves it, answers as Prometheus does each time and ends
	// later each time.
	var lastEnd float64
	for i := range 4 {
		end := time.Now().Add(-2 * time.Second).Truncate(time.Second)
		start := end.Add(-30 * time.Minute)
		q := `rate(cache_e2e_requests_total[1m])`
		for _, who := range []caller{callerTeamA, callerTeamB} {
			want, got := stableRound(t, func() []byte {
				return rangeQuery(t, cs.a, who, q, start, end, time.Second, true)
			}, func() map[string][]byte {
				return map[string][]byte{"cached": rangeQuery(t, cs.a, who, q, start, end, time.Second, false)}
			})
			cached := got["cached"]
			if d := cmp.Diff(want, cacheNormalized(t, cached)); d != "" {
				t.Errorf("sliding window %d as %s: cached answer differs (-want +got):\n%s", i, who.name, d)
			}
			if who.name == callerTeamA.name {
				var v struct {
					Data struct {
						Result []struct {
							Values [][2]any `json:"values"`
						} `json:"result"`
					} `json:"data"`
				}
				if err := json.Unmarshal(cached, &v); err != nil || len(v.Data.Result) == 0 {
					t.Fatalf("sliding window %d: no series: %v %.200s", i, err, cached)
				}
				vals := v.Data.Result[0].Values
				last, _ := vals[len(vals)-1][0].(float64)
				if last <= lastEnd {
					t.Errorf("sliding window %d: last point at %v, not after the previous window's %v: new samples not shown", i, last, lastEnd)
				}
				lastEnd = last
			}
		}
		time.Sleep(1500 * time.Millisecond)
	}

	// The drop-in test's Grafana panels, as each of its data sources sends
	// them (POST by default, GET with nocache, POST with a timeout), over
	// the last 30 minutes at 15s: the cached answer (the second one) equals
	// Prometheus' through no-cache, and a confined caller sees only its
	// namespaces.
	pend := time.Now().Add(-3 * time.Second).Truncate(15 * time.Second)
	pstart := pend.Add(-30 * time.Minute)
	for _, ds := range grafanaDataSources {
		for _, panel := range grafanaPanels {
			q := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s").Replace(panel)
			for _, who := range []caller{callerAdmin, callerTeamA} {
				params := url.Values{"query": {q}, "start": {unix(pstart)}, "end": {unix(pend)}, "step": {"15"}}
				if ds.timeout != "" {
					params.Set("timeout", ds.timeout)
				}
				send := func(noCache bool) []byte {
					r := ds.queryRequest(grafanaCall{path: "/api/v1/query_range"})
					r.query, r.form = nil, nil
					if r.method == http.MethodPost {
						r.form = params
					} else {
						r.query = url.Values{}
						for k, v := range params {
							r.query[k] = v
						}
						for k, v := range ds.custom {
							r.query[k] = v
						}
					}
					if noCache {
						r.header = map[string][]string{"Cache-Control": {"no-cache"}}
					}
					res, err := newClient(t, cs.a, env.pki, who.name).try(r)
					if err != nil || res.status != http.StatusOK {
						t.Fatalf("%s, %s as %s: %v %v", ds.name, q, who.name, err, res)
					}
					return res.body
				}
				send(false)
				want, got := stableRound(t, func() []byte { return send(true) },
					func() map[string][]byte { return map[string][]byte{"cached": send(false)} })
				cached := got["cached"]
				if d := cmp.Diff(want, cacheNormalized(t, cached)); d != "" {
					t.Errorf("%s, %s as %s: cached answer differs (-want +got):\n%s", ds.name, q, who.name, d)
				}
				if who.name == callerTeamA.name {
					for _, ns := range namespacesOf(t, cached) {
						if !slices.Contains(who.allowed, ns) {
							t.Errorf("%s, %s as team-a: the cached answer holds namespace %q", ds.name, q, ns)
						}
					}
				}
			}
		}
	}

	memHits := metricValue(t, cs.a, `promgate_results_cache_hits_total{tier="memory"}`)
	misses := metricValue(t, cs.a, `promgate_results_cache_misses_total`)
	bHits := metricValue(t, cs.b, `promgate_results_cache_hits_total{tier="memcached"}`)
	bMisses := metricValue(t, cs.b, `promgate_results_cache_misses_total`)
	noCache := metricValue(t, cs.a, `promgate_results_cache_bypassed_total{reason="no_cache"}`)
	t.Logf("replica A: %v parts from memory, %v missed, %v no-cache requests; replica B: %v parts from memcached, %v missed",
		memHits, misses, noCache, bHits, bMisses)
	if memHits == 0 || misses == 0 {
		t.Errorf("replica A: hits %v, misses %v; want both > 0", memHits, misses)
	}
	if bHits == 0 {
		t.Errorf("replica B served no part from memcached")
	}
	if bMisses > misses/4 {
		t.Errorf("replica B missed %v parts against A's %v: it did not share A's through memcached", bMisses, misses)
	}
	if noCache == 0 {
		t.Errorf("Cache-Control: no-cache was not counted as a bypass")
	}
	// Replica A's audit records say which answers the cache put together,
	// and from how many parts of its own.
	fh, err := os.Open(cs.a.audit)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ranges, assembled, partsHit int
	for sc.Scan() {
		var rec struct {
			Route        string `json:"route"`
			ResultsCache *struct {
				PartsHit     int `json:"parts_hit"`
				PartsFetched int `json:"parts_fetched"`
			} `json:"results_cache"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("replica A audit: %v", err)
		}
		if rec.Route != "query_range" {
			continue
		}
		ranges++
		if rc := rec.ResultsCache; rc != nil {
			assembled++
			partsHit += rc.PartsHit
			if rc.PartsHit+rc.PartsFetched == 0 {
				t.Errorf("an audit record says the cache assembled an answer of no part")
			}
		}
	}
	t.Logf("replica A audit: %d query_range records, %d assembled by the cache from %d parts it held", ranges, assembled, partsHit)
	if assembled == 0 || partsHit == 0 || ranges-assembled < int(noCache) {
		t.Errorf("replica A audit: %d query_range records, %d assembled (%d parts hit); want some assembled from hits, and the %v no-cache ones not", ranges, assembled, partsHit, noCache)
	}
	// Integrity: someone who can write to memcached but has no signing
	// key changes every item replica A stored for a new panel. Replica B
	// refuses them all, asks Prometheus instead, and answers as Prometheus
	// does.
	// The window ends before the live samples, so that Prometheus' answer
	// holds still and one round is enough.
	pend = time.Now().Add(-5 * time.Minute).Truncate(time.Minute)
	pstart = pend.Add(-2 * time.Hour)
	const tamperedPanel = `sum by (namespace) (cache_e2e_temperature)`
	rangeQuery(t, cs.a, callerAdmin, tamperedPanel, pstart, pend, time.Minute, false)
	rejectedBefore := metricValue(t, cs.b, `promgate_results_cache_memcached_rejected_total`)
	hitsBefore := metricValue(t, cs.b, `promgate_results_cache_hits_total{tier="memcached"}`)
	missesBefore := metricValue(t, cs.b, `promgate_results_cache_misses_total`)
	changed := tamperMemcached(t, cs.mc)
	want, got := stableRound(t, func() []byte {
		return rangeQuery(t, cs.b, callerAdmin, tamperedPanel, pstart, pend, time.Minute, true)
	}, func() map[string][]byte {
		return map[string][]byte{"replica B": rangeQuery(t, cs.b, callerAdmin, tamperedPanel, pstart, pend, time.Minute, false)}
	})
	if d := cmp.Diff(want, cacheNormalized(t, got["replica B"])); d != "" {
		t.Errorf("after memcached was tampered with, replica B's answer differs from Prometheus' (-want +got):\n%s", d)
	}
	rejected := metricValue(t, cs.b, `promgate_results_cache_memcached_rejected_total`) - rejectedBefore
	tHits := metricValue(t, cs.b, `promgate_results_cache_hits_total{tier="memcached"}`) - hitsBefore
	tMisses := metricValue(t, cs.b, `promgate_results_cache_misses_total`) - missesBefore
	t.Logf("memcached tampered with: %d items changed without the signing key; replica B read the panel's %v cacheable parts, refused %v, took %v", changed, tMisses+tHits, rejected, tHits)
	if changed == 0 || rejected == 0 || tHits != 0 || rejected != tMisses {
		t.Errorf("tampering: %d items changed; replica B refused %v parts, took %v from memcached, fetched %v; want every part it read refused and fetched", changed, rejected, tHits, tMisses)
	}

	// POST bodies (Grafana's default) are read, and no answer of the real
	// Prometheus was found unfit to cache.
	for _, reason := range []string{"request", "answer"} {
		if v := metricValue(t, cs.a, `promgate_results_cache_bypassed_total{reason="`+reason+`"}`); v != 0 {
			t.Errorf("bypassed{reason=%q} = %v, want 0", reason, v)
		}
	}
}
