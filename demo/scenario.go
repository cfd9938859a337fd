package demo

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Step is the interval between two samples of every series.
const Step = 15 * time.Second

// History is how much data the scenario has before its start time.
const History = 24 * time.Hour

// Metric types, as OpenMetrics and the metadata route name them.
const (
	typeCounter = "counter"
	typeGauge   = "gauge"
)

// family describes one metric name.
type family struct {
	name, typ, help, unit string
}

// series is one synthetic time series. A counter accumulates rate(t)·Step
// from initial; a gauge is value(t). from, when set, is the first timestamp
// the series has a sample at (milliseconds).
type series struct {
	fam     *family
	lset    labels.Labels
	initial float64
	fn      func(t int64) float64
	from    int64
	hasFrom bool
}

// Attack names one simulated attack, where it happens and the detectors
// (ids of the built-in catalog) that catch it.
type Attack struct {
	Name      string
	Namespace string // "" for cluster-wide series
	Metric    string
	Detectors []string
	Since     time.Duration // how long before the scenario's start it began
}

// Attacks lists the simulated attacks. Each goes on for as long as the demo
// runs, except the new ingress: k8s_new_ingress fires for ten minutes after
// its creation, that is for the first eight minutes of the demo.
var Attacks = []Attack{
	{Name: "API server 401/403 burst (credential stuffing, RBAC probing)", Metric: "apiserver_request_total",
		Detectors: []string{"k8s_apiserver_unauthorized", "k8s_sensitive_resource_forbidden"}, Since: 45 * time.Minute},
	{Name: "ingress 404 fingerprinting burst on shop.team-a.example", Namespace: "team-a", Metric: "nginx_ingress_controller_requests",
		Detectors: []string{"ingress_404_ratio"}, Since: 30 * time.Minute},
	{Name: "crypto-mining in one replica of Deployment team-a/worker", Namespace: "team-a", Metric: "container_cpu_usage_seconds_total",
		Detectors: []string{"pod_cpu_over_one_core", "pod_cpu_outlier_in_workload"}, Since: 40 * time.Minute},
	{Name: "network exfiltration from one pod of Deployment team-b/api", Namespace: "team-b", Metric: "container_network_transmit_bytes_total",
		Detectors: []string{"pod_egress_volume_high", "pod_egress_outlier_in_workload"}, Since: 90 * time.Minute},
	{Name: "new ingress team-b/backdoor", Namespace: "team-b", Metric: "kube_ingress_created",
		Detectors: []string{"k8s_new_ingress"}, Since: 2 * time.Minute},
	{Name: "lateral movement: the mining pod's workload team-a/worker starts calling team-b/db", Namespace: "team-b", Metric: "istio_requests_total",
		Detectors: []string{"service_edge_new"}, Since: 20 * time.Minute},
}

// Scenario is the synthetic cluster: its series and how each evolves.
type Scenario struct {
	start    int64 // milliseconds, a multiple of Step
	families []*family
	series   []*series
}

// NewScenario returns the scenario whose history ends at start, rounded down
// to a multiple of Step. The same start gives the same samples.
func NewScenario(start time.Time) *Scenario {
	step := Step.Milliseconds()
	s := &Scenario{start: start.UnixMilli() / step * step}
	s.build()
	return s
}

// Start returns the end of the history: the timestamp of its last sample.
func (s *Scenario) Start() time.Time { return time.UnixMilli(s.start) }

// HistoryStart returns the timestamp of the first sample.
func (s *Scenario) HistoryStart() time.Time { return time.UnixMilli(s.start - History.Milliseconds()) }

// NumSeries returns how many series the scenario has.
func (s *Scenario) NumSeries() int { return len(s.series) }

// noise returns a deterministic value in [0, 1) for a series and a time.
func noise(id uint64, t int64) float64 {
	x := id*0x9E3779B97F4A7C15 ^ uint64(t) //nolint:gosec // G115: hash mixing: the bits of t are wanted as they are
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// diurnal is 1 ± 0.3 over a day, highest in the afternoon (UTC).
func diurnal(t int64) float64 {
	day := float64(24 * time.Hour / time.Millisecond)
	return 1 + 0.3*math.Sin(2*math.Pi*(float64(t)/day-0.375))
}

type builder struct {
	s   *Scenario
	fam map[string]*family
}

func (b *builder) family(name, typ, help, unit string) *family {
	if f, ok := b.fam[name]; ok {
		return f
	}
	f := &family{name: name, typ: typ, help: help, unit: unit}
	b.fam[name] = f
	b.s.families = append(b.s.families, f)
	return f
}

// add appends a series. fn gets the series' own noise source.
func (b *builder) add(f *family, initial float64, fn func(t int64, n func(int64) float64) float64, kv ...string) *series {
	// An empty value is no label at all, as in Prometheus.
	pairs := []string{model.MetricNameLabel, f.name}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			pairs = append(pairs, kv[i], kv[i+1])
		}
	}
	lset := labels.FromStrings(pairs...)
	id := lset.Hash()
	sr := &series{fam: f, lset: lset, initial: initial, fn: func(t int64) float64 {
		return fn(t, func(t int64) float64 { return noise(id, t) })
	}}
	b.s.series = append(b.s.series, sr)
	return sr
}

// steady is base·diurnal·(1 ± jitter/2).
func steady(base, jitter float64) func(int64, func(int64) float64) float64 {
	return func(t int64, n func(int64) float64) float64 {
		return base * diurnal(t) * (1 + jitter*(n(t)-0.5))
	}
}

// after adds extra (with ±10% jitter) to base from since on.
func after(base func(int64, func(int64) float64) float64, since int64, extra float64) func(int64, func(int64) float64) float64 {
	return func(t int64, n func(int64) float64) float64 {
		v := base(t, n)
		if t >= since {
			v += extra * (0.95 + 0.1*n(t+1))
		}
		return v
	}
}

func constant(v float64) func(int64, func(int64) float64) float64 {
	return func(int64, func(int64) float64) float64 { return v }
}

type workload struct {
	namespace, kind, name, hash string
	replicas                    int
	containers                  []string
	cpu                         float64 // cores per container
	mem                         float64 // bytes per container
	tx, rx                      float64 // bytes per second per pod
}

var nodes = []string{"node-1", "node-2", "node-3"}

var workloads = []workload{
	{namespace: "team-a", kind: "Deployment", name: "web", hash: "5d8f7c9b6", replicas: 3, containers: []string{"web", "envoy"}, cpu: 0.12, mem: 180e6, tx: 40e3, rx: 25e3},
	{namespace: "team-a", kind: "Deployment", name: "worker", hash: "7d9c4f8d5", replicas: 3, containers: []string{"worker"}, cpu: 0.1, mem: 250e6, tx: 8e3, rx: 12e3},
	{namespace: "team-b", kind: "Deployment", name: "api", hash: "5f6b8d7c4", replicas: 12, containers: []string{"api"}, cpu: 0.08, mem: 120e6, tx: 10e3, rx: 9e3},
	{namespace: "team-b", kind: "StatefulSet", name: "db", replicas: 1, containers: []string{"postgres"}, cpu: 0.3, mem: 900e6, tx: 60e3, rx: 30e3},
	{namespace: "kube-system", kind: "Deployment", name: "coredns", hash: "76f75df574", replicas: 2, containers: []string{"coredns"}, cpu: 0.02, mem: 40e6, tx: 20e3, rx: 20e3},
	{namespace: "kube-system", kind: "DaemonSet", name: "kube-proxy", replicas: 3, containers: []string{"kube-proxy"}, cpu: 0.01, mem: 30e6, tx: 2e3, rx: 2e3},
	{namespace: "kube-system", kind: "Deployment", name: "metrics-server", hash: "6d94bc8694", replicas: 1, containers: []string{"metrics-server"}, cpu: 0.015, mem: 50e6, tx: 5e3, rx: 8e3},
}

// podSuffixes are stable, realistic pod name suffixes.
var podSuffixes = []string{"x7k2p", "m4q9z", "c8n3v", "t2w6r", "h5j8d", "p9l4s", "b3f7g", "k6d2m", "r8v5n", "w4z9q", "n7c3x", "g2h8t"}

// The pods the attacks run in.
const (
	minerPod = "worker-7d9c4f8d5-c8n3v"
	exfilPod = "api-5f6b8d7c4-t2w6r"
)

func (s *Scenario) build() {
	b := &builder{s: s, fam: map[string]*family{}}
	since := func(d time.Duration) int64 { return s.start - d.Milliseconds() }
	hours := func(h float64) float64 { return h * 3600 }

	up := b.family("up", typeGauge, "1 if the target was scraped successfully.", "")
	cpu := b.family("container_cpu_usage_seconds_total", typeCounter, "Cumulative cpu time consumed in seconds.", "seconds")
	mem := b.family("container_memory_working_set_bytes", typeGauge, "Current working set in bytes.", "bytes")
	tx := b.family("container_network_transmit_bytes_total", typeCounter, "Cumulative count of bytes transmitted.", "bytes")
	rx := b.family("container_network_receive_bytes_total", typeCounter, "Cumulative count of bytes received.", "bytes")
	owner := b.family("kube_pod_owner", typeGauge, "Information about the Pod's owner.", "")
	info := b.family("kube_pod_info", typeGauge, "Information about pod.", "")
	restarts := b.family("kube_pod_container_status_restarts_total", typeCounter, "The number of container restarts per container.", "")
	rsOwner := b.family("kube_replicaset_owner", typeGauge, "Information about the ReplicaSet's owner.", "")

	for _, w := range workloads {
		ownerKind, ownerName := w.kind, w.name
		if w.kind == "Deployment" {
			ownerKind, ownerName = "ReplicaSet", w.name+"-"+w.hash
			b.add(rsOwner, 0, constant(1), "job", "kube-state-metrics", "namespace", w.namespace,
				"replicaset", ownerName, "owner_kind", "Deployment", "owner_name", w.name, "owner_is_controller", "true")
		}
		for i := 0; i < w.replicas; i++ {
			var pod string
			switch w.kind {
			case "Deployment":
				pod = ownerName + "-" + podSuffixes[i]
			case "StatefulSet":
				pod = fmt.Sprintf("%s-%d", w.name, i)
			default:
				pod = w.name + "-" + podSuffixes[len(podSuffixes)-1-i][:5]
			}
			node := nodes[i%len(nodes)]
			if w.kind == "DaemonSet" {
				node = nodes[i]
			}
			kubelet := []string{"job", "kubelet", "metrics_path", "/metrics/cadvisor", "instance", node, "namespace", w.namespace, "pod", pod}
			ksm := []string{"job", "kube-state-metrics", "namespace", w.namespace, "pod", pod}

			b.add(up, 0, constant(1), "job", w.name, "instance", fmt.Sprintf("10.1.%d.%d:8080", i%3+1, 10+i), "namespace", w.namespace, "pod", pod)
			podCPU := make([]func(int64, func(int64) float64) float64, 0, len(w.containers))
			for ci, c := range w.containers {
				rate := steady(w.cpu/float64(ci+1), 0.2)
				if pod == minerPod {
					rate = after(rate, since(Attacks[2].Since), 2.2)
				}
				podCPU = append(podCPU, rate)
				image := "registry.example/" + w.namespace + "/" + c + ":1.4.2"
				b.add(cpu, hours(30)*w.cpu, rate, append(kubelet, "container", c, "image", image, "cpu", "total")...)
				b.add(mem, 0, steady(w.mem, 0.1), append(kubelet, "container", c, "image", image)...)
				b.add(restarts, float64(i%2), constant(0), append(ksm, "container", c)...)
			}
			// The pod-level cgroup series (container="", image="") that the
			// detectors' filters must not double-count.
			b.add(cpu, hours(30)*w.cpu*float64(len(w.containers)), func(t int64, n func(int64) float64) float64 {
				var sum float64
				for _, f := range podCPU {
					sum += f(t, n)
				}
				return sum
			}, append(kubelet, "cpu", "total")...)
			txRate := steady(w.tx, 0.3)
			if pod == exfilPod {
				txRate = after(txRate, since(Attacks[3].Since), 2e6)
			}
			b.add(tx, hours(30)*w.tx, txRate, append(kubelet, "interface", "eth0")...)
			b.add(rx, hours(30)*w.rx, steady(w.rx, 0.3), append(kubelet, "interface", "eth0")...)
			b.add(owner, 0, constant(1), append(ksm, "owner_kind", ownerKind, "owner_name", ownerName, "owner_is_controller", "true")...)
			b.add(info, 0, constant(1), append(ksm, "node", node, "host_network", strconv.FormatBool(w.kind == "DaemonSet"),
				"created_by_kind", ownerKind, "created_by_name", ownerName, "pod_ip", fmt.Sprintf("10.1.%d.%d", i%3+1, 10+i))...)
		}
	}

	// Nodes.
	cond := b.family("kube_node_status_condition", typeGauge, "The condition of a cluster node.", "")
	for _, n := range nodes {
		for _, st := range []string{"true", "false", "unknown"} {
			v := 0.0
			if st == "true" {
				v = 1
			}
			b.add(cond, 0, constant(v), "job", "kube-state-metrics", "node", n, "condition", "Ready", "status", st)
		}
	}

	// The API server: the usual traffic, then 401s and 403s on secrets.
	api := b.family("apiserver_request_total", typeCounter, "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.", "")
	type req struct {
		verb, group, resource, subresource, scope, code string
		rate, attack                                    float64
	}
	for _, r := range []req{
		{"GET", "", "pods", "", "resource", "200", 20, 0},
		{"LIST", "", "pods", "", "namespace", "200", 4, 0},
		{"WATCH", "", "configmaps", "", "namespace", "200", 0.5, 0},
		{"GET", "", "secrets", "", "resource", "200", 0.5, 0},
		{"POST", "", "events", "", "resource", "201", 2, 0},
		{"GET", "", "nodes", "", "resource", "200", 3, 0},
		{"PATCH", "apps", "deployments", "", "resource", "200", 0.05, 0},
		{"GET", "", "pods", "", "resource", "401", 0.01, 3},
		{"GET", "", "configmaps", "", "resource", "403", 0.005, 0},
		{"LIST", "", "secrets", "", "namespace", "403", 0, 1},
		{"POST", "rbac.authorization.k8s.io", "clusterrolebindings", "", "cluster", "201", 0, 0},
	} {
		rate := steady(r.rate, 0.2)
		if r.attack > 0 {
			rate = after(rate, since(Attacks[0].Since), r.attack)
		}
		version := "v1"
		b.add(api, hours(30)*r.rate, rate, "job", "apiserver", "instance", "10.0.0.10:6443", "component", "apiserver",
			"verb", r.verb, "dry_run", "", "group", r.group, "version", version, "resource", r.resource,
			"subresource", r.subresource, "scope", r.scope, "code", r.code)
	}

	// Ingress traffic; a 404 scan on team-a's shop.
	nginx := b.family("nginx_ingress_controller_requests", typeCounter, "The total number of client requests", "")
	type ing struct {
		namespace, ingress, host, path, service, status string
		rate, attack                                    float64
	}
	for _, r := range []ing{
		{"team-a", "shop", "shop.team-a.example", "/", "web", "200", 8, 0},
		{"team-a", "shop", "shop.team-a.example", "/", "web", "404", 0.1, 6},
		{"team-a", "shop", "shop.team-a.example", "/", "web", "500", 0.02, 0},
		{"team-b", "api", "api.team-b.example", "/v1", "api", "200", 5, 0},
		{"team-b", "api", "api.team-b.example", "/v1", "api", "404", 0.05, 0},
		{"team-b", "api", "api.team-b.example", "/v1", "api", "401", 0.03, 0},
	} {
		rate := steady(r.rate, 0.2)
		if r.attack > 0 {
			rate = after(rate, since(Attacks[1].Since), r.attack)
		}
		b.add(nginx, hours(30)*r.rate, rate, "job", "ingress-nginx", "controller_class", "k8s.io/ingress-nginx",
			"controller_namespace", "ingress-nginx", "controller_pod", "ingress-nginx-controller-7c9d8f6b5-q4x2z",
			"namespace", r.namespace, "ingress", r.ingress, "host", r.host, "path", r.path, "method", "GET",
			"service", r.service, "status", r.status, "canary", "")
	}

	// Ingress objects; team-b/backdoor appears two minutes before the start.
	ingInfo := b.family("kube_ingress_info", typeGauge, "Information about ingress.", "")
	ingCreated := b.family("kube_ingress_created", typeGauge, "Unix creation timestamp", "seconds")
	for _, o := range []struct {
		namespace, ingress string
		created            int64 // milliseconds
	}{
		{"team-a", "shop", s.start - (40 * 24 * time.Hour).Milliseconds()},
		{"team-b", "api", s.start - (100 * 24 * time.Hour).Milliseconds()},
		{"team-b", "backdoor", since(Attacks[4].Since)},
	} {
		created := float64(o.created / 1000)
		a := b.add(ingInfo, 0, constant(1), "job", "kube-state-metrics", "namespace", o.namespace, "ingress", o.ingress, "ingressclass", "nginx")
		c := b.add(ingCreated, 0, constant(created), "job", "kube-state-metrics", "namespace", o.namespace, "ingress", o.ingress)
		if o.created > s.start-History.Milliseconds() {
			for _, sr := range []*series{a, c} {
				sr.from, sr.hasFrom = o.created, true
			}
		}
	}

	b.buildMesh(since)
}

// buildMesh adds Istio's request metric as the destination's sidecar
// reports it (namespace is the destination's), one series per edge of the
// service graph, and the lateral-movement attack's new edge, which has no
// sample before the attack began.
func (b *builder) buildMesh(since func(time.Duration) int64) {
	mesh := b.family("istio_requests_total", typeCounter, "Total requests handled by an Istio proxy.", "")
	type edge struct {
		srcNS, src, dstNS, dst string
		rate                   float64
		attack                 bool
	}
	for _, e := range []edge{
		{"ingress-nginx", "ingress-nginx-controller", "team-a", "web", 8, false},
		{"team-a", "web", "team-a", "worker", 3, false},
		{"team-a", "web", "kube-system", "coredns", 1, false},
		{"ingress-nginx", "ingress-nginx-controller", "team-b", "api", 5, false},
		{"team-b", "api", "team-b", "db", 12, false},
		{"team-b", "api", "kube-system", "coredns", 1, false},
		{"team-a", "worker", "team-b", "db", 2, true},
	} {
		sr := b.add(mesh, 0, steady(e.rate, 0.2), "job", "istio-mesh", "namespace", e.dstNS, "reporter", "destination",
			"source_workload_namespace", e.srcNS, "source_workload", e.src,
			"destination_workload_namespace", e.dstNS, "destination_workload", e.dst,
			"destination_service", e.dst+"."+e.dstNS+".svc.cluster.local", "response_code", "200")
		if e.attack {
			sr.from, sr.hasFrom = since(Attacks[5].Since), true
		}
	}
}

// sampler produces the samples of every series in time order. It keeps the
// running value of each counter.
type sampler struct {
	s   *Scenario
	cum []float64
	t   int64 // next timestamp
}

func (s *Scenario) newSampler() *sampler {
	sp := &sampler{s: s, cum: make([]float64, len(s.series)), t: s.start - History.Milliseconds()}
	for i, sr := range s.series {
		sp.cum[i] = sr.initial
	}
	return sp
}

// next calls fn for every series that has a sample at the next timestamp,
// then advances by Step.
func (sp *sampler) next(fn func(i int, lset labels.Labels, t int64, v float64)) int64 {
	t := sp.t
	for i, sr := range sp.s.series {
		if sr.hasFrom && t < sr.from {
			continue
		}
		fn(i, sr.lset, t, sp.value(i, sr, t))
	}
	sp.t += Step.Milliseconds()
	return t
}

func (sp *sampler) value(i int, sr *series, t int64) float64 {
	if sr.fam.typ == typeCounter {
		sp.cum[i] += sr.fn(t) * Step.Seconds()
		return sp.cum[i]
	}
	return sr.fn(t)
}

// WriteOpenMetrics writes the history (every sample up to and including
// Start) as OpenMetrics text with timestamps, as `promtool tsdb
// create-blocks-from openmetrics` reads it. The samples are the ones
// [Upstream] appends.
func (s *Scenario) WriteOpenMetrics(w io.Writer) error {
	bw := bufio.NewWriter(w)
	byFamily := map[*family][]int{}
	for i, sr := range s.series {
		byFamily[sr.fam] = append(byFamily[sr.fam], i)
	}
	fams := append([]*family(nil), s.families...)
	sort.Slice(fams, func(i, j int) bool { return fams[i].name < fams[j].name })
	for _, f := range fams {
		name := f.name
		if f.typ == typeCounter {
			name = strings.TrimSuffix(name, "_total")
		}
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, f.help, name, f.typ) //nolint:errcheck // bufio.Writer keeps the first write error; the checked Flush at the end returns it
		if f.unit != "" && strings.HasSuffix(name, "_"+f.unit) {
			fmt.Fprintf(bw, "# UNIT %s %s\n", name, f.unit) //nolint:errcheck // as above: Flush returns the error
		}
		for _, i := range byFamily[f] {
			sr := s.series[i]
			var lb strings.Builder
			sr.lset.Range(func(l labels.Label) {
				if l.Name == model.MetricNameLabel {
					return
				}
				if lb.Len() > 0 {
					lb.WriteByte(',')
				}
				lb.WriteString(l.Name)
				lb.WriteString("=")
				lb.WriteString(strconv.Quote(l.Value))
			})
			prefix := sr.lset.Get(model.MetricNameLabel) + "{" + lb.String() + "} "
			sp := &sampler{s: s, cum: []float64{sr.initial}}
			for t := s.start - History.Milliseconds(); t <= s.start; t += Step.Milliseconds() {
				if sr.hasFrom && t < sr.from {
					continue
				}
				var v float64
				if sr.fam.typ == typeCounter {
					sp.cum[0] += sr.fn(t) * Step.Seconds()
					v = sp.cum[0]
				} else {
					v = sr.fn(t)
				}
				bw.WriteString(prefix)
				bw.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
				bw.WriteByte(' ')
				bw.WriteString(strconv.FormatFloat(float64(t)/1000, 'f', 3, 64))
				bw.WriteByte('\n')
			}
		}
	}
	bw.WriteString("# EOF\n")
	return bw.Flush()
}
