package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The dashboard workload (issue 23): three teams each keep one Grafana
// dashboard of 20 panels open, ten people per team, refreshing it. It has
// its own Prometheus: a day of backfilled history and a live scrape of the
// same series from an exporter in the harness, so that the newest part of
// every range is still arriving, as on a real server.
//
// How the requests are shaped follows Grafana's Prometheus data source
// (pkg/promlib/models/query.go and the interval calculator of Grafana 12,
// main branch at package.json 12.2.0-pre):
//
//   - step: the range divided by the panel's max data points (1,000 here),
//     at least the data source's scrape interval (15s, Grafana's default),
//     rounded down to a "nice" interval (15s, 20s, 30s, 1m, ...): 15s for
//     1h, 20s for 6h, 1m for 24h;
//   - start and end: both rounded down to a multiple of the step
//     (AlignTimeRange, with a UTC browser: no offset);
//   - $__rate_interval: max(step + scrape interval, 4 x scrape interval);
//   - stat panels: instant queries at the aligned end;
//   - template variables: label_values(metric, label) as
//     /api/v1/label/<label>/values?match[]=metric&start&end.
//
// A dashboard load is the two variable queries, then the 20 panels at once,
// at most six requests in flight per person (a browser's connections per
// host over HTTP/1.1). In each refresh round every person loads the
// dashboard once, at a random moment within the refresh interval; rounds
// go through the targets in turn (interleaved), for a fixed number of
// rounds. The clock is compressed: the
// refresh interval is seconds, not Grafana's 30s, so that a run takes
// minutes; the ranges still move with the real clock, as Grafana moves
// them.
var dashTeams = []string{"team-a", "team-b", "team-c"}

const (
	dashPods          = 10
	dashHistoryStep   = 30 * time.Second // backfill interval and scrape interval
	dashMaxDataPoints = 1000
	dashScrape        = 15 * time.Second // the data source's scrape interval setting
	dashBrowserConns  = 6
)

// dashOptions size the dashboard run.
type dashOptions struct {
	history time.Duration
	users   int // per team
	rounds  int
	refresh time.Duration
	jitter  time.Duration
}

func dashOptionsFor(mode string) dashOptions {
	if mode == "smoke" {
		// Enough to see every target answer every panel; bench-smoke
		// stays near its minute.
		return dashOptions{history: time.Hour, users: 1, rounds: 2, refresh: 500 * time.Millisecond, jitter: 100 * time.Millisecond}
	}
	return dashOptions{history: 24 * time.Hour, users: 10, rounds: 4, refresh: 15 * time.Second, jitter: 3 * time.Second}
}

// dashExposition writes every series at Unix time ts; with withTS it writes
// OpenMetrics sample lines with timestamps and the target's job and
// instance labels, for the backfill. Values are functions of time, so the
// history and the live scrape are one continuous series.
func dashExposition(w *bufio.Writer, family int, ts int64, withTS bool, instance string) {
	out := func(format string, args ...any) {
		fmt.Fprintf(w, format, args...) //nolint:errcheck // bufio.Writer keeps the first write error; its Flush is checked
	}
	suffix := ""
	extra := ""
	if withTS {
		suffix = " " + strconv.FormatInt(ts, 10)
		extra = fmt.Sprintf(`instance=%q,job="dash",`, instance)
	}
	t := float64(ts)
	for ti, team := range dashTeams {
		for p := range dashPods {
			l := fmt.Sprintf(`%snamespace=%q,pod="pod-%d"`, extra, team, p)
			k := float64(ti*dashPods + p + 1)
			switch family {
			case 0:
				out("dash_cpu_seconds_total{%s} %g%s\n", l, t*0.01*k, suffix)
			case 1:
				out("dash_memory_bytes{%s} %g%s\n", l, math.Round(1e8+2e7*math.Sin(t/3600+k)), suffix)
			case 2:
				out("dash_http_requests_total{%s,code=\"200\"} %g%s\n", l, t*k, suffix)
				out("dash_http_requests_total{%s,code=\"500\"} %g%s\n", l, math.Floor(t*k/97), suffix)
			case 3:
				for j, le := range []string{"0.05", "0.1", "0.5", "+Inf"} {
					out("dash_http_request_duration_seconds_bucket{%s,le=%q} %g%s\n", l, le, t*k*float64(j+1)/4, suffix)
				}
				out("dash_http_request_duration_seconds_sum{%s} %g%s\n", l, t*k*0.08, suffix)
				out("dash_http_request_duration_seconds_count{%s} %g%s\n", l, t*k, suffix)
			}
		}
	}
}

var dashFamilies = []string{
	"# TYPE dash_cpu_seconds counter\n",
	"# TYPE dash_memory_bytes gauge\n",
	"# TYPE dash_http_requests counter\n",
	"# TYPE dash_http_request_duration_seconds histogram\n",
}

// dashBackfill writes the history from now-history to now-1m and creates
// its blocks in dir/data.
func dashBackfill(dir, instance string, history time.Duration) error {
	om := filepath.Join(dir, "dash.om")
	f, err := os.Create(om)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	end := time.Now().Add(-time.Minute).Truncate(dashHistoryStep).Unix()
	start := end - int64(history.Seconds())
	for fam, typ := range dashFamilies {
		w.WriteString(typ) //nolint:errcheck // bufio.Writer keeps the first write error; the checked Flush below returns it
		for ts := start; ts <= end; ts += int64(dashHistoryStep.Seconds()) {
			dashExposition(w, fam, ts, true, instance)
		}
	}
	w.WriteString("# EOF\n") //nolint:errcheck // as above
	if err := w.Flush(); err != nil {
		f.Close() //nolint:errcheck // error path: the Flush error is returned
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	cmd := exec.Command("promtool", "tsdb", "create-blocks-from", "openmetrics", om, filepath.Join(dir, "data"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("promtool tsdb create-blocks-from openmetrics: %w\n%s", err, out)
	}
	return os.Remove(om)
}

// dashStack is the dashboard run's Prometheus, exporter and targets.
type dashStack struct {
	o        dashOptions
	prom     *proc
	promURL  string
	exporter *http.Server
	targets  []*dashTarget
	results  []dashResult
}

// dashTarget is one target of the dashboard run. team returns the TLS
// configuration and extra query parameters of a team's users; explicit
// targets get the team's namespace matcher written into the queries.
type dashTarget struct {
	name     string
	base     string
	explicit bool
	plp      bool // prom-label-proxy: the namespace as a query parameter
	tls      map[string]*tls.Config
	proc     *proc
}

// dashResult is one target's run.
type dashResult struct {
	target        string
	loads, errors int
	failedLoads   int
	firstErr      string
	p50, p95      time.Duration
	upCPUPerLoad  float64 // seconds of the upstream Prometheus per load
	ownCPUPerLoad float64 // seconds of the process under test per load
	requests      int
	upCPU, ownCPU float64 // seconds over the whole run
}

func (h *harness) startDashboards() error {
	d := &dashStack{o: dashOptionsFor(h.o.mode)}
	if h.o.dashRefresh > 0 {
		d.o.refresh, d.o.jitter = h.o.dashRefresh, h.o.dashRefresh/5
	}
	if h.o.dashRounds > 0 {
		d.o.rounds = h.o.dashRounds
	}
	h.dash = d
	dir := filepath.Join(h.work, "dash-prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	expAddr, err := freeAddr()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", expAddr)
	if err != nil {
		return err
	}
	d.exporter = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		bw := bufio.NewWriter(w)
		ts := time.Now().Unix()
		for fam, typ := range dashFamilies {
			bw.WriteString(typ) //nolint:errcheck // a failed scrape shows in Prometheus
			dashExposition(bw, fam, ts, false, "")
		}
		bw.Flush() //nolint:errcheck // as above
	})}
	go d.exporter.Serve(ln) //nolint:errcheck // closed at cleanup
	t0 := time.Now()
	if err := dashBackfill(dir, expAddr, d.o.history); err != nil {
		return err
	}
	logf("dashboards: backfilled %v of %d series in %v", d.o.history, len(dashTeams)*dashPods*10, time.Since(t0).Round(time.Millisecond))
	// The live scrape runs every 15s (2s in smoke mode, so that the first
	// one comes soon); the history has a sample every 30s.
	scrape := 15 * time.Second
	if h.o.mode == "smoke" {
		scrape = 2 * time.Second
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\nscrape_configs:\n  - job_name: dash\n    honor_labels: true\n    static_configs:\n      - targets: [%q]\n",
		model(scrape), expAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	d.promURL = "http://" + addr
	if d.prom, err = h.ps.start("dash-prometheus", dir, "prometheus", "--config.file=prometheus.yml",
		"--storage.tsdb.path=data", "--web.listen-address="+addr, "--log.level=warn"); err != nil {
		return err
	}
	if err := waitReady(d.prom, plainClient, d.promURL+"/-/ready", nil, 60*time.Second); err != nil {
		return err
	}

	teams := map[string]*tls.Config{}
	for _, team := range dashTeams {
		if teams[team], err = h.clientTLS(team); err != nil {
			return err
		}
	}
	d.targets = append(d.targets, &dashTarget{name: "prometheus", base: d.promURL, explicit: true, proc: d.prom})

	bareAddr, err := freeAddr()
	if err != nil {
		return err
	}
	bare, err := h.ps.start("dash-bare-tls", h.work, filepath.Join(h.bin, "bareproxy"), "-listen", bareAddr, "-upstream", d.promURL,
		"-cert", filepath.Join(h.pki, "server.crt"), "-key", filepath.Join(h.pki, "server.key"), "-client-ca", filepath.Join(h.pki, "ca.crt"))
	if err != nil {
		return err
	}
	if err := waitReady(bare, tlsClient(teams["team-a"]), "https://"+bareAddr+"/-/ready", nil, 30*time.Second); err != nil {
		return err
	}
	d.targets = append(d.targets, &dashTarget{name: "bare-tls", base: "https://" + bareAddr, explicit: true, tls: teams, proc: bare})

	plpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	// Without -label-value, prom-label-proxy takes the namespace from the
	// request's "namespace" parameter.
	plp, err := h.ps.start("dash-prom-label-proxy", h.work, filepath.Join(h.bin, "prom-label-proxy"), "-insecure-listen-address", plpAddr,
		"-upstream", d.promURL, "-label", "namespace", "-enable-label-apis")
	if err != nil {
		return err
	}
	if err := waitReady(plp, plainClient, "http://"+plpAddr+"/api/v1/query?query=vector(1)&namespace=team-a", nil, 30*time.Second); err != nil {
		return err
	}
	d.targets = append(d.targets, &dashTarget{name: "prom-label-proxy", base: "http://" + plpAddr, plp: true, proc: plp})

	pol := filepath.Join(h.work, "dash-policies")
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
	if err := os.WriteFile(filepath.Join(pol, "data.json"), []byte(dashData), 0o644); err != nil {
		return err
	}
	for _, name := range []string{"promgate-solo", "promgate", "promgate-cache"} {
		listen, internal, err := twoAddrs()
		if err != nil {
			return err
		}
		path, err := h.gatewayConfig("dash-"+name, listen, internal, "RequireAndVerifyClientCert", d.promURL, "prometheus-api", "", pol)
		if err != nil {
			return err
		}
		// Ten people per team share the team's certificate here: no
		// per-identity bound on requests in flight.
		extra := "  max_concurrency: 0\n"
		if name == "promgate-cache" {
			extra += "cache:\n  enabled: true\n"
		}
		if err := appendFile(path, extra); err != nil {
			return err
		}
		if err := h.checkConfig(path); err != nil {
			return fmt.Errorf("promgate check (dash-%s): %w", name, err)
		}
		p, err := h.startGateway("dash-"+name, path, internal)
		if err != nil {
			return err
		}
		d.targets = append(d.targets, &dashTarget{name: name, base: "https://" + listen, tls: teams, proc: p})
	}
	// Wait for a live scrape on top of the history.
	deadline := time.Now().Add(2*scrape + 20*time.Second)
	for {
		resp, err := plainClient.Get(d.promURL + "/api/v1/query?" + url.Values{"query": {`count(count_over_time(dash_cpu_seconds_total[50s]) > 0)`}}.Encode())
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), fmt.Sprintf(`"%d"`, len(dashTeams)*dashPods)) {
				break
			}
		}
		if time.Now().After(deadline) {
			return errors.New("dashboards: Prometheus did not scrape the live exporter")
		}
		time.Sleep(500 * time.Millisecond)
	}
	return nil
}

// dashData gives each team its own namespace.
const dashData = `{"promgate": {
  "admin_groups": ["admins"],
  "scrape_groups": [],
  "filtered_scrape_groups": [],
  "group_namespaces": {"team-a": ["team-a"], "team-b": ["team-b"], "team-c": ["team-c"]}
}}
`

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close() //nolint:errcheck // error path
		return err
	}
	return f.Close()
}

// grafanaStep is the step Grafana's Prometheus data source sends for a
// panel over rng: rng / max data points, at least the scrape interval,
// rounded to a nice interval.
func grafanaStep(rng time.Duration) time.Duration {
	iv := max(rng/dashMaxDataPoints, dashScrape)
	for _, r := range []struct{ upTo, to time.Duration }{
		{17500 * time.Millisecond, 15 * time.Second}, {25 * time.Second, 20 * time.Second}, {45 * time.Second, 30 * time.Second},
		{90 * time.Second, time.Minute}, {210 * time.Second, 2 * time.Minute}, {450 * time.Second, 5 * time.Minute},
		{750 * time.Second, 10 * time.Minute}, {1050 * time.Second, 15 * time.Minute}, {1500 * time.Second, 20 * time.Minute},
		{2700 * time.Second, 30 * time.Minute}, {5400 * time.Second, time.Hour},
	} {
		if iv <= r.upTo {
			return r.to
		}
	}
	return 2 * time.Hour
}

// panel is one dashboard panel: an expression with {ns} where the team's
// selector matchers go and {rate} for $__rate_interval.
type panel struct {
	expr    string
	rng     time.Duration
	instant bool
}

// dashPanels is one team's dashboard: 4 stat panels and 16 graphs, the
// graphs over 1h, 6h and 24h (panel-level relative time).
func dashPanels() []panel {
	graphs := []string{
		`sum by (pod) (rate(dash_cpu_seconds_total{ns}[{rate}]))`,
		`sum by (pod) (dash_memory_bytes{ns})`,
		`sum by (code) (rate(dash_http_requests_total{ns}[{rate}]))`,
		`histogram_quantile(0.99, sum by (le) (rate(dash_http_request_duration_seconds_bucket{ns}[{rate}])))`,
		`sum(rate(dash_http_requests_total{ns,code="500"}[5m])) / sum(rate(dash_http_requests_total{ns}[5m]))`,
		`max by (pod) (max_over_time(dash_memory_bytes{ns}[10m]))`,
		`sum(rate(dash_http_request_duration_seconds_sum{ns}[{rate}])) / sum(rate(dash_http_request_duration_seconds_count{ns}[{rate}]))`,
		`topk(3, sum by (pod) (rate(dash_http_requests_total{ns}[{rate}])))`,
	}
	ranges := []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour}
	var ps []panel
	for i := range 16 {
		ps = append(ps, panel{expr: graphs[i%len(graphs)], rng: ranges[i%len(ranges)]})
	}
	for _, e := range []string{
		`sum(rate(dash_http_requests_total{ns}[5m]))`,
		`sum(dash_memory_bytes{ns})`,
		`count(dash_cpu_seconds_total{ns})`,
		`histogram_quantile(0.5, sum by (le) (rate(dash_http_request_duration_seconds_bucket{ns}[5m])))`,
	} {
		ps = append(ps, panel{expr: e, rng: 6 * time.Hour, instant: true})
	}
	return ps
}

// dashRequests are the paths of one load of team's dashboard at now:
// the two variable queries, then the panels.
func (t *dashTarget) dashRequests(team string, now time.Time) (vars, panels []string) {
	ns := ""
	if t.explicit {
		ns = fmt.Sprintf(`namespace=%q`, team)
	}
	sel := func(expr string) string {
		e := strings.ReplaceAll(expr, "{ns,", "{"+ns+map[bool]string{true: ",", false: ""}[ns != ""])
		return strings.ReplaceAll(e, "{ns}", "{"+ns+"}")
	}
	extra := func(v url.Values) string {
		if t.plp {
			v.Set("namespace", team)
		}
		return v.Encode()
	}
	day := 24 * time.Hour
	vstep := grafanaStep(day)
	vs, ve := now.Add(-day).Truncate(vstep), now.Truncate(vstep)
	for _, label := range []string{"pod", "code"} {
		metric := map[string]string{"pod": "dash_memory_bytes", "code": "dash_http_requests_total"}[label]
		v := url.Values{"match[]": {sel(metric + "{ns}")}, "start": {unix(vs)}, "end": {unix(ve)}}
		vars = append(vars, "/api/v1/label/"+label+"/values?"+extra(v))
	}
	for _, p := range dashPanels() {
		step := grafanaStep(p.rng)
		rate := max(step+dashScrape, 4*dashScrape)
		expr := strings.ReplaceAll(sel(p.expr), "{rate}", model(rate))
		// AlignTimeRange: start and end rounded down to a multiple of
		// the step.
		start, end := now.Add(-p.rng).Truncate(step), now.Truncate(step)
		if p.instant {
			panels = append(panels, "/api/v1/query?"+extra(url.Values{"query": {expr}, "time": {unix(end)}}))
			continue
		}
		panels = append(panels, "/api/v1/query_range?"+extra(url.Values{"query": {expr}, "start": {unix(start)}, "end": {unix(end)},
			"step": {strconv.Itoa(int(step.Seconds()))}}))
	}
	return vars, panels
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// model writes a duration as PromQL does (1m, 1m15s).
func model(d time.Duration) string {
	s := strconv.Itoa(int(d.Seconds())) + "s"
	if d%time.Minute == 0 {
		s = strconv.Itoa(int(d.Minutes())) + "m"
	}
	return s
}

// dashClients are one HTTP client per team for t, as its people's
// browsers: keep-alive connections, at most dashBrowserConns each.
func (d *dashStack) dashClients(t *dashTarget) map[string]*http.Client {
	clients := map[string]*http.Client{}
	for _, team := range dashTeams {
		var tc *tls.Config
		if t.tls != nil {
			tc = t.tls[team]
		}
		clients[team] = &http.Client{Transport: newTransport(tc, d.o.users*dashBrowserConns), Timeout: 60 * time.Second}
	}
	return clients
}

// dashRound is one refresh of every person's dashboard on t: each person
// loads it once, at a random moment within the refresh interval (the
// jitter of independent browsers). It adds the loads, errors and CPU
// seconds to res and the load times to loads.
func (d *dashStack) dashRound(ctx context.Context, t *dashTarget, clients map[string]*http.Client, upstream *proc, res *dashResult, loads *[]time.Duration) error {
	up0, err := cpuSeconds(upstream.pid())
	if err != nil {
		return err
	}
	own0, err := cpuSeconds(t.proc.pid())
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	begin := time.Now()
	for _, team := range dashTeams {
		for range d.o.users {
			at := begin.Add(time.Duration(rand.Int64N(int64(d.o.refresh)))) //nolint:gosec // load timing, not security
			wg.Go(func() {
				if !sleepUntil(ctx, at) {
					return
				}
				t0 := time.Now()
				n, errs, first := d.load(ctx, clients[team], t, team, t0)
				el := time.Since(t0)
				mu.Lock()
				defer mu.Unlock()
				res.requests += n
				if errs > 0 {
					res.failedLoads++
					res.errors += errs
					if res.firstErr == "" {
						res.firstErr = first
					}
					return
				}
				*loads = append(*loads, el)
			})
		}
	}
	wg.Wait()
	up1, err := cpuSeconds(upstream.pid())
	if err != nil {
		return err
	}
	own1, err := cpuSeconds(t.proc.pid())
	if err != nil {
		return err
	}
	res.upCPU += up1 - up0
	if t.proc != upstream {
		res.ownCPU += own1 - own0
	}
	// The rest of the refresh interval, with its jitter, before the
	// next target's turn.
	j := time.Duration(rand.Int64N(int64(2*d.o.jitter+1))) - d.o.jitter //nolint:gosec // load timing, not security
	sleepUntil(ctx, begin.Add(d.o.refresh+j))
	return ctx.Err()
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// load is one dashboard load: the variables, then every panel at once, at
// most dashBrowserConns in flight. It returns the requests sent, the failed
// ones and the first failure.
func (d *dashStack) load(ctx context.Context, c *http.Client, t *dashTarget, team string, now time.Time) (n, errs int, first string) {
	vars, panels := t.dashRequests(team, now)
	var mu sync.Mutex
	run := func(paths []string) {
		sem := make(chan struct{}, dashBrowserConns)
		var wg sync.WaitGroup
		for _, p := range paths {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				err := get(ctx, c, t.base+p)
				mu.Lock()
				n++
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
				}
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	run(vars)
	run(panels)
	return n, errs, first
}

func get(ctx context.Context, c *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b[:min(len(b), 40)]), `"success"`) {
		return fmt.Errorf("status %d: %.120s", resp.StatusCode, strings.Join(strings.Fields(string(b)), " "))
	}
	return nil
}

// runDashboards measures the dashboard targets round by round, each round
// going through every target in turn, so that the load of other programs
// on a shared machine spreads over all of them alike rather than over
// whichever target ran at the time.
func (h *harness) runDashboards(ctx context.Context) error {
	d := h.dash
	clients := make([]map[string]*http.Client, len(d.targets))
	results := make([]dashResult, len(d.targets))
	loads := make([][]time.Duration, len(d.targets))
	for i, t := range d.targets {
		clients[i] = d.dashClients(t)
		results[i].target = t.name
	}
	defer func() {
		for _, cs := range clients {
			for _, c := range cs {
				c.CloseIdleConnections()
			}
		}
	}()
	for round := range d.o.rounds {
		for i, t := range d.targets {
			if err := d.dashRound(ctx, t, clients[i], d.prom, &results[i], &loads[i]); err != nil {
				return fmt.Errorf("dashboards %s: %w", t.name, err)
			}
			if t.proc.exited() {
				return fmt.Errorf("dashboards: %s exited", t.name)
			}
		}
		logf("dashboards: round %d of %d done", round+1, d.o.rounds)
	}
	for i, t := range d.targets {
		r := &results[i]
		slices.Sort(loads[i])
		r.loads = len(loads[i])
		r.p50, r.p95 = quantile(loads[i], 0.50), quantile(loads[i], 0.95)
		if all := r.loads + r.failedLoads; all > 0 {
			r.upCPUPerLoad = r.upCPU / float64(all)
			r.ownCPUPerLoad = r.ownCPU / float64(all)
		}
		logf("dashboards %-16s %4d loads  p50 %7.1f ms  p95 %7.1f ms  upstream cpu/load %.4f s  own cpu/load %.4f s  errors %d %s",
			t.name, r.loads, ms(r.p50), ms(r.p95), r.upCPUPerLoad, r.ownCPUPerLoad, r.errors, r.firstErr)
	}
	d.results = results
	return nil
}

// dashReport is the dashboard section of the report.
func (h *harness) dashReport() string {
	d := h.dash
	if d == nil || len(d.results) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Dashboards (issue 23)\n\n")
	fmt.Fprintf(&b, "%d teams x %d people, each loading a 20-panel dashboard (4 stat panels, 16 graphs over 1h/6h/24h at Grafana's auto step, 2 label_values variables) %d times, every %v with +-%v jitter (a compressed clock: Grafana's default is 30s), at most %d requests in flight per person. History: %v backfilled at a %v interval, plus a live scrape. Rounds are interleaved: each round goes through every target in turn, against the same Prometheus; upstream CPU is that Prometheus' utime+stime during a target's rounds divided by its loads.\n\n",
		len(dashTeams), d.o.users, d.o.rounds, d.o.refresh, d.o.jitter, dashBrowserConns, d.o.history, dashHistoryStep)
	b.WriteString("| target | loads answered | load p50 ms | load p95 ms | upstream CPU s/load | own CPU s/load | errors |\n|---|---:|---:|---:|---:|---:|---:|\n")
	var direct dashResult
	for _, r := range d.results {
		if r.target == "prometheus" {
			direct = r
		}
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.1f | %.4f | %.4f | %d requests in %d loads %s |\n", r.target, r.loads, ms(r.p50), ms(r.p95), r.upCPUPerLoad, r.ownCPUPerLoad, r.errors, r.failedLoads, trunc(r.firstErr, 60))
	}
	b.WriteString("\nRatios against direct Prometheus (load p50: direct / target, above 1 is faster; upstream CPU: target / direct):\n\n| target | p50 speed-up | p95 speed-up | upstream CPU ratio |\n|---|---:|---:|---:|\n")
	for _, r := range d.results {
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f |\n", r.target, ratio(float64(direct.p50), float64(r.p50)), ratio(float64(direct.p95), float64(r.p95)), ratio(r.upCPUPerLoad, direct.upCPUPerLoad))
	}
	var bare, solo dashResult
	for _, r := range d.results {
		switch r.target {
		case "bare-tls":
			bare = r
		case "promgate-solo":
			solo = r
		}
	}
	if bare.ownCPUPerLoad > 0 && solo.ownCPUPerLoad > 0 {
		fmt.Fprintf(&b, "\npromgate without coalescing or cache against the bare proxy: load p50 %.2fx (bare/promgate), own CPU per load %.2fx (promgate/bare).\n",
			ratio(float64(bare.p50), float64(solo.p50)), ratio(solo.ownCPUPerLoad, bare.ownCPUPerLoad))
	}
	return b.String()
}

// onlyDashboards runs the dashboard workload alone (-only dashboards) and
// writes bench/results/<date>-dashboards.md in full mode.
func (h *harness) onlyDashboards(ctx context.Context) error {
	if err := h.startDashboards(); err != nil {
		return err
	}
	if err := h.runDashboards(ctx); err != nil {
		return err
	}
	h.loadEnd = loadAvg()
	var b strings.Builder
	fmt.Fprintf(&b, "# promgate dashboard benchmark, %s\n\n", h.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- revision: `%s`, %s, mode %s\n", h.gitRev, goVersion(), h.o.mode)
	fmt.Fprintf(&b, "- machine: %d CPUs (%s), load average %s at start, %s at end\n", numCPU(), cpuModel(), h.loadStart, h.loadEnd)
	if h.loadStart != "" && !strings.HasPrefix(h.loadStart, "0.") {
		b.WriteString("- **the machine was shared while this ran (load average above): absolute figures are noisy; compare ratios taken in the same run, and re-run on a quiet machine before drawing conclusions**\n")
	}
	report := b.String() + h.dashReport()
	if h.o.mode == "smoke" {
		fmt.Println(report)
		return nil
	}
	if err := os.MkdirAll(h.o.results, 0o755); err != nil {
		return err
	}
	path := filepath.Join(h.o.results, h.started.UTC().Format("2006-01-02T1504Z")+"-dashboards.md")
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Println(report)
	logf("wrote %s", path)
	return nil
}
