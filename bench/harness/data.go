package main

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The data set: every namespace has the same pods and series, so that the
// enforced (team-a, team-a-staging) share is a fixed half of the team rows.
var dataNamespaces = []string{"team-a", "team-a-staging", "team-b", "kube-system"}

const (
	dataPods     = 50
	dataInterval = 10 * time.Second
	dataSpan     = time.Hour
	// rangeStep makes the query_range answer about 1 MB: 2 namespaces x 50
	// pods x (span/step + 1) points of ~27 bytes.
	rangeStep = 10 * time.Second
)

// callerMatcher is what every enforcing target injects for the team-a
// caller, and what the non-enforcing targets are sent explicitly, so that all
// targets answer with the same bytes.
const callerMatcher = `namespace=~"team-a|team-a-staging"`

// dataSet is the backfilled TSDB's time range.
type dataSet struct {
	start, end time.Time
}

// writeOpenMetrics writes the data set as an OpenMetrics text file that
// promtool can backfill.
func writeOpenMetrics(path string, ds dataSet) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	n := int(ds.end.Sub(ds.start)/dataInterval) + 1
	w.WriteString("# HELP bench_cpu_seconds CPU time used by a pod.\n")
	w.WriteString("# TYPE bench_cpu_seconds counter\n")
	for ni, ns := range dataNamespaces {
		for p := range dataPods {
			for i := range n {
				ts := ds.start.Add(time.Duration(i) * dataInterval).Unix()
				v := float64(i*(p+1)) * 0.37
				fmt.Fprintf(w, "bench_cpu_seconds_total{namespace=%q,pod=\"pod-%d\",container=\"app\"} %s %d\n", //nolint:errcheck // bufio.Writer keeps the first write error; the checked Flush below returns it
					ns, p, strconv.FormatFloat(v+float64(ni), 'f', 2, 64), ts)
			}
		}
	}
	w.WriteString("# HELP bench_memory_bytes Working set of a pod.\n")
	w.WriteString("# TYPE bench_memory_bytes gauge\n")
	for ni, ns := range dataNamespaces {
		for p := range dataPods {
			for i := range n {
				ts := ds.start.Add(time.Duration(i) * dataInterval).Unix()
				v := 100_000_000 + (i*7919+p*104729+ni*13)%50_000_000
				fmt.Fprintf(w, "bench_memory_bytes{namespace=%q,pod=\"pod-%d\",container=\"app\"} %d %d\n", ns, p, v, ts) //nolint:errcheck // bufio.Writer keeps the first write error; the checked Flush below returns it
			}
		}
	}
	w.WriteString("# EOF\n")
	if err := w.Flush(); err != nil {
		f.Close() //nolint:errcheck // error path: the Flush error is returned
		return err
	}
	return f.Close()
}

// backfill creates the TSDB blocks of the data set in dir/data.
func backfill(dir string, ds dataSet) error {
	om := filepath.Join(dir, "data.om")
	if err := writeOpenMetrics(om, ds); err != nil {
		return fmt.Errorf("write OpenMetrics: %w", err)
	}
	cmd := exec.Command("promtool", "tsdb", "create-blocks-from", "openmetrics", om, filepath.Join(dir, "data"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("promtool tsdb create-blocks-from openmetrics: %w\n%s", err, out)
	}
	return os.Remove(om)
}

// promConfig scrapes nothing: the data is the backfill alone, so that the
// load is the queries and nothing else.
const promConfig = `global:
  scrape_interval: 1m
scrape_configs: []
`

// workload is one request shape, written for a caller confined to
// callerMatcher.
type workload struct {
	name string
	desc string
	// path returns the request path and query; explicit says whether the
	// target needs the caller's namespace matcher written into the request
	// (it does not enforce one itself).
	path func(explicit bool) string
}

// sel writes a selector of metric with the given matchers, adding the
// caller's matcher when explicit.
func sel(metric string, explicit bool, matchers ...string) string {
	if explicit {
		matchers = append([]string{callerMatcher}, matchers...)
	}
	return metric + "{" + strings.Join(matchers, ",") + "}"
}

func workloads(ds dataSet) []workload {
	ts := strconv.FormatInt(ds.end.Unix(), 10)
	start := strconv.FormatInt(ds.start.Unix(), 10)
	return []workload{
		{
			name: "instant-1",
			desc: "instant query, 1 selector: sum by (pod) (rate(bench_cpu_seconds_total[5m])), 50 series",
			path: func(explicit bool) string {
				q := "sum by (pod) (rate(" + sel("bench_cpu_seconds_total", explicit) + "[5m]))"
				return "/api/v1/query?" + url.Values{"query": {q}, "time": {ts}}.Encode()
			},
		},
		{
			name: "instant-20",
			desc: "instant query, 20 selectors: sum(rate(...{pod=\"pod-i\"}[5m])) + ... for 20 pods, 1 series",
			path: func(explicit bool) string {
				parts := make([]string, 20)
				for i := range parts {
					parts[i] = "sum(rate(" + sel("bench_cpu_seconds_total", explicit, fmt.Sprintf("pod=\"pod-%d\"", i)) + "[5m]))"
				}
				return "/api/v1/query?" + url.Values{"query": {strings.Join(parts, " + ")}, "time": {ts}}.Encode()
			},
		},
		{
			name: "range-1MB",
			desc: "query_range of bench_memory_bytes over 1h at a 10s step, 100 series, ~1 MB",
			path: func(explicit bool) string {
				return "/api/v1/query_range?" + url.Values{
					"query": {sel("bench_memory_bytes", explicit)},
					"start": {start}, "end": {ts}, "step": {strconv.Itoa(int(rangeStep.Seconds()))},
				}.Encode()
			},
		},
		{
			name: "series",
			desc: "series with match[]=bench_cpu_seconds_total over the data set, 100 series",
			path: func(explicit bool) string {
				return "/api/v1/series?" + url.Values{
					"match[]": {sel("bench_cpu_seconds_total", explicit)},
					"start":   {start}, "end": {ts},
				}.Encode()
			},
		},
	}
}
