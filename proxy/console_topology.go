package proxy

import (
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/console"
	"github.com/promgate/promgate/enforce"
)

// The topology page's queries. Edges come from Istio's request metric as
// the destination's proxy reports it (its namespace label is the
// destination's, which is what namespace enforcement confines), summed by
// the source and destination workloads.
const (
	meshEdgeLabels = `source_workload_namespace, source_workload, destination_workload_namespace, destination_workload`
	topoEdgesNow   = `sum by (` + meshEdgeLabels + `) (rate(istio_requests_total{reporter="destination"}[5m])) > 0`
	// An edge is new when it carried no traffic in the hour a day ago.
	topoEdgesDayAgo = `sum by (` + meshEdgeLabels + `) (increase(istio_requests_total{reporter="destination"}[1h] offset 23h)) > 0`
	topoPodsAdded   = `count by (namespace, created_by_name) (kube_pod_info unless on (namespace, pod) (kube_pod_info offset %s))`
	topoPodsRemoved = `count by (namespace, created_by_name) ((kube_pod_info offset %s) unless on (namespace, pod) kube_pod_info)`
	// topoPodsThen tells "no pod changed" from "no data that far back".
	topoPodsThen = `count(kube_pod_info offset %s)`
)

var topoCompares = []string{"1d", "1w"}

// serveTopology serves /ui/topology?compare=1d|1w.
func (h *Handler) serveTopology(w http.ResponseWriter, r *http.Request, st *state, params url.Values) error {
	compare := params.Get("compare")
	if compare != "1w" {
		compare = "1d"
	}
	texts := []string{topoEdgesNow, topoEdgesDayAgo, sprintf(topoPodsAdded, compare), sprintf(topoPodsRemoved, compare), sprintf(topoPodsThen, compare)}
	qs := make([]*enforce.Query, len(texts))
	for i, t := range texts {
		q, err := h.queries.parse(t)
		if err != nil {
			return err
		}
		qs[i] = q
	}
	run, err := h.consoleAdmit(r, st, qs)
	if err != nil {
		return h.consoleRefusal(w, r, st, err)
	}
	defer run.release()
	page := console.TopologyPage{Base: h.consoleBase(st, run.g, "Service topology", "topology"), Compare: compare, Compares: topoCompares}
	now := h.now()
	vecs := make([]model.Vector, len(qs))
	for i, q := range qs {
		v, _, err := run.instant(q, now)
		if err != nil {
			page.Error, _ = errText(err, st.id)
			break
		}
		vecs[i], _ = v.(model.Vector)
	}
	wl := func(m model.Metric, side string) string {
		return string(m[model.LabelName(side+"_workload_namespace")]) + "/" + string(m[model.LabelName(side+"_workload")])
	}
	before := map[string]bool{}
	for _, s := range vecs[1] {
		before[wl(s.Metric, "source")+" "+wl(s.Metric, "destination")] = true
	}
	for _, s := range vecs[0] {
		e := console.Edge{From: wl(s.Metric, "source"), To: wl(s.Metric, "destination"), Rate: console.FormatValue(float64(s.Value))}
		e.New = !before[e.From+" "+e.To]
		if e.New {
			page.NewEdges++
		}
		page.Edges = append(page.Edges, e)
	}
	sort.Slice(page.Edges, func(i, j int) bool {
		a, b := page.Edges[i], page.Edges[j]
		if a.New != b.New {
			return a.New
		}
		if a.From != b.From {
			return a.From < b.From
		}
		return a.To < b.To
	})
	page.Graph = console.TopologyGraph(page.Edges)
	if len(vecs[4]) == 0 && page.Error == "" {
		page.PodsMissing = true
		return writePage(w, r, http.StatusOK, "topology", page)
	}
	pods := map[string]*console.PodChange{}
	get := func(m model.Metric) *console.PodChange {
		k := string(m["namespace"]) + "/" + string(m["created_by_name"])
		if pods[k] == nil {
			pods[k] = &console.PodChange{Workload: k}
		}
		return pods[k]
	}
	for _, s := range vecs[2] {
		get(s.Metric).Appeared += int(s.Value)
	}
	for _, s := range vecs[3] {
		get(s.Metric).Removed += int(s.Value)
	}
	for _, p := range pods {
		page.Pods = append(page.Pods, *p)
	}
	sort.Slice(page.Pods, func(i, j int) bool { return page.Pods[i].Workload < page.Pods[j].Workload })
	return writePage(w, r, http.StatusOK, "topology", page)
}

// sprintf puts one of topoCompares, never input, into a query.
func sprintf(format, offset string) string { return strings.ReplaceAll(format, "%s", offset) }
