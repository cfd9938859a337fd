package proxy

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeClock is a settable clock for the telemetry tables.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestTelemetry(t *testing.T) (*telemetry, *prometheus.Registry, *fakeClock) {
	t.Helper()
	reg := prometheus.NewRegistry()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return newTelemetry(reg, clock.Now), reg, clock
}

// exposition builds the expected text of one counter family: HELP, TYPE and
// the given series lines, plus the zero series every family starts with.
func exposition(t *testing.T, reg *prometheus.Registry, name string, series ...string) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return "# HELP " + name + " " + f.GetHelp() + "\n# TYPE " + name + " counter\n" + strings.Join(series, "\n") + "\n"
		}
	}
	t.Fatalf("%s not registered", name)
	return ""
}

// zeroSeries returns the series a family starts with, with overrides.
func zeroSeries(name string, labels func(add func(l string))) []string {
	var out []string
	labels(func(l string) { out = append(out, name+"{"+l+"} 0") })
	return out
}

// with replaces the value of the series named by prefix, or adds the line.
func with(series []string, lines ...string) []string {
	out := append([]string(nil), series...)
	for _, l := range lines {
		key := l[:strings.LastIndexByte(l, ' ')]
		found := false
		for i, s := range out {
			if s[:strings.LastIndexByte(s, ' ')] == key {
				out[i], found = l, true
			}
		}
		if !found {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

func TestTelemetryStartsAtZero(t *testing.T) {
	_, reg, _ := newTestTelemetry(t)
	byRoute := func(name string) []string {
		return zeroSeries(name, func(add func(string)) {
			for _, rt := range Routes {
				add(fmt.Sprintf(`route=%q,subject="other"`, rt))
			}
		})
	}
	upstream := zeroSeries("promgate_upstream_requests_total", func(add func(string)) {
		for _, rt := range Routes {
			for _, c := range upstreamCodes {
				add(fmt.Sprintf(`code=%q,route=%q`, c, rt))
			}
		}
	})
	clients := zeroSeries("promgate_client_authn_failures_total", func(add func(string)) {
		for _, m := range authnMethods {
			add(fmt.Sprintf(`client="other",method=%q`, m))
		}
	})
	for _, tc := range []struct {
		name   string
		series []string
	}{
		{"promgate_identity_requests_total", with(byRoute("promgate_identity_requests_total"))},
		{"promgate_identity_response_bytes_total", with(byRoute("promgate_identity_response_bytes_total"))},
		{"promgate_upstream_requests_total", with(upstream)},
		{"promgate_client_authn_failures_total", with(clients)},
	} {
		want := exposition(t, reg, tc.name, tc.series...)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), tc.name); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// No refusal has a fixed label combination: the labels come from the
	// policy.
	if n := testutil.CollectAndCount(prometheusVec(t, reg, "promgate_enforcement_refusals_total")); n != 0 {
		t.Errorf("promgate_enforcement_refusals_total has %d series before any refusal", n)
	}
}

// prometheusVec returns a collector that gathers only the family name.
func prometheusVec(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return gathererCollector{reg: reg, name: name}
}

type gathererCollector struct {
	reg  *prometheus.Registry
	name string
}

func (gathererCollector) Describe(chan<- *prometheus.Desc) {}
func (g gathererCollector) Collect(ch chan<- prometheus.Metric) {
	fams, _ := g.reg.Gather()
	for _, f := range fams {
		if f.GetName() != g.name {
			continue
		}
		for _, m := range f.GetMetric() {
			var names, values []string
			for _, l := range m.GetLabel() {
				names, values = append(names, l.GetName()), append(values, l.GetValue())
			}
			d := prometheus.NewDesc(g.name, "x", names, nil)
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, m.GetCounter().GetValue(), values...)
		}
	}
}

func TestTelemetryCounts(t *testing.T) {
	tel, reg, _ := newTestTelemetry(t)
	tel.request("alice", RouteQuery, 100)
	tel.request("alice", RouteQuery, 50)
	tel.request("bob", RouteSeries, 0)
	tel.request("mallory", "no-such-route", 7)
	tel.request("other", RouteQuery, 1) // a subject named like the overflow
	tel.request("bad\xffutf8", RouteLabels, 1)
	tel.refusal("alice", "namespace")
	tel.refusal("alice", "namespace")
	tel.refusal("bob", "tenant")
	tel.authnFailure("192.0.2.77", "mtls")
	tel.authnFailure("192.0.2.200", "mtls")
	tel.authnFailure("2001:db8:1:2ff:aaaa::1", "oidc")
	tel.authnFailure("::ffff:198.51.100.9", "none")
	tel.authnFailure("not an address", "mtls")
	tel.authnFailure("203.0.113.1", "password") // not a method
	tel.upstream(RouteQuery, 200)
	tel.upstream(RouteQuery, 200)
	tel.upstream(RouteQueryRange, 418)
	tel.upstream(RouteSeries, 0)
	tel.upstream(RouteSeries, 1000)

	routeZero := func(name string) []string {
		return zeroSeries(name, func(add func(string)) {
			for _, rt := range Routes {
				add(fmt.Sprintf(`route=%q,subject="other"`, rt))
			}
		})
	}
	clientZero := func(client string) []string {
		return zeroSeries("promgate_client_authn_failures_total", func(add func(string)) {
			for _, m := range authnMethods {
				add(fmt.Sprintf(`client=%q,method=%q`, client, m))
			}
		})
	}
	var clients []string
	for _, c := range []string{"other", "192.0.2.0/24", "2001:db8:1:200::/56", "198.51.100.0/24", "203.0.113.0/24"} {
		clients = append(clients, clientZero(c)...)
	}
	var upstream []string
	for _, rt := range Routes {
		for _, c := range upstreamCodes {
			upstream = append(upstream, fmt.Sprintf(`promgate_upstream_requests_total{code=%q,route=%q} 0`, c, rt))
		}
	}
	tests := []struct {
		name   string
		series []string
	}{
		{"promgate_identity_requests_total", with(routeZero("promgate_identity_requests_total"),
			`promgate_identity_requests_total{route="query",subject="alice"} 2`,
			`promgate_identity_requests_total{route="series",subject="bob"} 1`,
			`promgate_identity_requests_total{route="unknown",subject="mallory"} 1`,
			`promgate_identity_requests_total{route="query",subject="other"} 1`,
			`promgate_identity_requests_total{route="labels",subject="bad`+"\uFFFD"+`utf8"} 1`,
		)},
		{"promgate_identity_response_bytes_total", with(routeZero("promgate_identity_response_bytes_total"),
			`promgate_identity_response_bytes_total{route="query",subject="alice"} 150`,
			`promgate_identity_response_bytes_total{route="unknown",subject="mallory"} 7`,
			`promgate_identity_response_bytes_total{route="query",subject="other"} 1`,
			`promgate_identity_response_bytes_total{route="labels",subject="bad`+"\uFFFD"+`utf8"} 1`,
		)},
		{"promgate_enforcement_refusals_total", with(nil,
			`promgate_enforcement_refusals_total{label="namespace",subject="alice"} 2`,
			`promgate_enforcement_refusals_total{label="tenant",subject="bob"} 1`,
		)},
		{"promgate_client_authn_failures_total", with(clients,
			`promgate_client_authn_failures_total{client="192.0.2.0/24",method="mtls"} 2`,
			`promgate_client_authn_failures_total{client="2001:db8:1:200::/56",method="oidc"} 1`,
			`promgate_client_authn_failures_total{client="198.51.100.0/24",method="none"} 1`,
			`promgate_client_authn_failures_total{client="other",method="mtls"} 1`,
			`promgate_client_authn_failures_total{client="203.0.113.0/24",method="unknown"} 1`,
		)},
		{"promgate_upstream_requests_total", with(upstream,
			`promgate_upstream_requests_total{code="200",route="query"} 2`,
			`promgate_upstream_requests_total{code="418",route="query_range"} 1`,
			`promgate_upstream_requests_total{code="error",route="series"} 2`,
		)},
	}
	for _, tc := range tests {
		want := exposition(t, reg, tc.name, tc.series...)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), tc.name); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestTelemetryCaps fills the subject and client tables: newcomers are
// counted as "other" while every tracked entry is active, and take the place
// of an idle one (whose series are deleted) after idleEviction.
func TestTelemetryCaps(t *testing.T) {
	tel, reg, clock := newTestTelemetry(t)
	for i := range maxTrackedSubjects {
		tel.request(fmt.Sprintf("s%04d", i), RouteQuery, 1)
		tel.refusal(fmt.Sprintf("s%04d", i), "namespace")
		tel.authnFailure(fmt.Sprintf("10.%d.%d.1", i/256, i%256), "mtls")
	}
	clock.advance(time.Minute)
	tel.request("newcomer", RouteQuery, 10)
	tel.authnFailure("172.16.0.1", "mtls")
	if got := testutil.ToFloat64(tel.requests.WithLabelValues("other", RouteQuery)); got != 1 {
		t.Errorf("other requests = %v, want 1 (the newcomer)", got)
	}
	if got := testutil.ToFloat64(tel.authnFail.WithLabelValues("other", "mtls")); got != 1 {
		t.Errorf("other authn failures = %v, want 1", got)
	}
	series := func(name string) int {
		return testutil.CollectAndCount(prometheusVec(t, reg, name))
	}
	wantSeries := map[string]int{
		"promgate_identity_requests_total":     maxTrackedSubjects + len(Routes),
		"promgate_enforcement_refusals_total":  maxTrackedSubjects,
		"promgate_client_authn_failures_total": (maxTrackedClients + 1) * len(authnMethods),
	}
	for name, want := range wantSeries {
		if got := series(name); got != want {
			t.Errorf("%s has %d series at the cap, want %d", name, got, want)
		}
	}

	// Everyone but s0001 and one network goes idle; the newcomers then take
	// the places of the least recently used idle entries.
	clock.advance(idleEviction)
	tel.request("s0001", RouteQuery, 1)
	tel.authnFailure("10.0.1.1", "mtls")
	clock.advance(time.Second)
	tel.request("newcomer", RouteQuery, 10)
	tel.authnFailure("172.16.0.1", "mtls")
	if got := testutil.ToFloat64(tel.requests.WithLabelValues("newcomer", RouteQuery)); got != 1 {
		t.Errorf("newcomer requests = %v, want 1 once an idle subject was evicted", got)
	}
	for name, want := range wantSeries {
		if got := series(name); got != want && !(name == "promgate_enforcement_refusals_total" && got == want-1) {
			t.Errorf("%s has %d series after eviction, want %d", name, got, want)
		}
	}
	// s0000 was least recently used: its series are gone, s0001's stay.
	exp, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, f := range exp {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				text.WriteString(l.GetValue() + "\n")
			}
		}
	}
	for _, gone := range []string{"s0000", "10.0.0.0/24"} {
		if strings.Contains(text.String(), "\n"+gone+"\n") || strings.HasPrefix(text.String(), gone+"\n") {
			t.Errorf("series of the evicted %s remain", gone)
		}
	}
	for _, kept := range []string{"s0001", "10.0.1.0/24", "newcomer", "172.16.0.0/24"} {
		if !strings.Contains(text.String(), "\n"+kept+"\n") {
			t.Errorf("series of %s are missing", kept)
		}
	}
}

func TestTelemetryConcurrent(t *testing.T) {
	tel, _, _ := newTestTelemetry(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				s := fmt.Sprintf("g%d-%d", g, i%50)
				tel.request(s, RouteQuery, 1)
				tel.refusal(s, "namespace")
				tel.authnFailure(fmt.Sprintf("10.0.%d.1", i%200), "mtls")
				tel.upstream(RouteQuery, 200)
			}
		})
	}
	wg.Wait()
	if got := testutil.ToFloat64(tel.upstreamC.WithLabelValues(RouteQuery, "200")); got != 4000 {
		t.Errorf("upstream = %v, want 4000", got)
	}
}

func TestLabelValue(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	got := labelValue(long)
	if len(got) > maxLabelValue || !strings.HasPrefix(long, got) || len(got) < maxLabelValue-1 {
		t.Errorf("labelValue(200 bytes) = %d bytes %q", len(got), got)
	}
}
