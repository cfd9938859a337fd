package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"
)

// tracingAB (-only tracing) measures what tracing costs the gateway:
// promgate-mtls against promgate-mtls-traced (every request sampled, every
// span exported over OTLP/HTTP to the harness's sink), rounds times. With
// -pairing together (the default) each round loads both gateways at once,
// each with its own conc clients, so that whatever else the shared machine
// does in those seconds falls on both alike; with alternate, one cell of
// each in turn. The CPU is the gateway process's own, per 1,000 requests,
// exporter included; the report gives the median of each, their ratio, and
// the ratio of the totals (all rounds' CPU over all their requests). It
// writes bench/results/<date>-tracing.md.
func (h *harness) tracingAB(ctx context.Context, wls []workload) error {
	rounds := h.o.rounds
	pair := []*target{h.target("promgate-mtls"), h.target("promgate-mtls-traced")}
	title, suffix := "Tracing A/B", "tracing"
	what := "promgate-mtls against promgate-mtls-traced (tracing on, every request's five spans sampled and exported over OTLP/HTTP to a sink in the harness)"
	if h.o.only == "tracing-aa" {
		// A/A: the method with nothing to find. Its ratios are the
		// method's own bias and spread on this machine.
		pair[1] = h.target("promgate-mtls-twin")
		title, suffix = "Tracing A/A calibration", "tracing-aa"
		what = "promgate-mtls against promgate-mtls-twin (the same configuration, tracing off on both: an A/A run of the tracing A/B's method; `off` below is promgate-mtls and `on` its twin)"
	}
	if h.o.solo {
		// Coalescing off on both: every request goes upstream, so the
		// share of requests answered from another's flight, which timing
		// moves, cannot differ between the two.
		pair[0], pair[1] = h.target("promgate-mtls-solo"), h.target(strings.Replace(pair[1].name, "promgate-mtls", "promgate-mtls-solo", 1))
		suffix += "-solo"
		what = strings.ReplaceAll(what, "promgate-mtls", "promgate-mtls-solo") + "; upstream.coalesce off on both"
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# %s, %s\n\n", title, h.started.UTC().Format("2006-01-02 15:04Z"))
	// The load average at the end is filled in once the rounds are done.
	const loadEnd = "\x00load-end\x00"
	p("- machine: %d CPUs, load average %s at start, %s at end\n", numCPU(), h.loadStart, loadEnd)
	how := "alternating cells"
	if h.o.pairing == "together" {
		how = "both loaded at once in each round (each with its own clients)"
	}
	p("- %s; %s, %v after %v warm-up, %d rounds; the ratio of the two medians, the ratio of totals (all rounds' CPU over all their requests), and the median of the rounds' own ratios (the paired figure)\n", what, how, h.o.duration, h.o.warmup, rounds)
	p("- CPU is utime+stime of the gateway process per 1,000 successful requests (the span exporter's goroutine included)\n\n")
	p("| workload | c | req/s off | req/s on | on ÷ off | CPU s/1k off | CPU s/1k on | CPU on ÷ off | CPU on ÷ off, totals | CPU ratio, median of rounds | CPU ratio, each round | answered from another's flight, off / on |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, w := range wls {
		for _, conc := range h.o.conc {
			var rps, cpu [2][]float64
			// Totals: CPU seconds and requests over every round.
			var cpuSum, reqSum [2]float64
			add := func(i int, t *target, c cell, err error) error {
				if err != nil {
					return fmt.Errorf("%s %s c=%d: %w", t.name, w.name, conc, err)
				}
				if c.errors > 0 {
					return fmt.Errorf("%s %s c=%d: %d errors: %s", t.name, w.name, conc, c.errors, c.firstErr)
				}
				rps[i] = append(rps[i], c.rps())
				cpu[i] = append(cpu[i], c.cpuPer1k)
				cpuSum[i] += c.cpuPer1k * float64(c.requests) / 1000
				reqSum[i] += float64(c.requests)
				return nil
			}
			// How many requests went upstream and how many shared another's
			// flight (upstream.coalesce), from each gateway's own counters.
			var upBefore [2][2]float64
			for i, t := range pair {
				upBefore[i] = upstreamCounts(t)
			}
			for r := range rounds {
				if h.o.pairing == "together" {
					var cells [2]cell
					var errs [2]error
					var wg sync.WaitGroup
					for i, t := range pair {
						wg.Add(1)
						go func() {
							defer wg.Done()
							cells[i], errs[i] = measure(ctx, t, w, conc, h.o.warmup, h.o.duration)
						}()
					}
					wg.Wait()
					for i, t := range pair {
						if err := add(i, t, cells[i], errs[i]); err != nil {
							return err
						}
					}
					continue
				}
				for i, t := range pair {
					// Alternate which goes first, so neither always
					// follows the other.
					if r%2 == 1 {
						t = pair[1-i]
						i = 1 - i
					}
					c, err := measure(ctx, t, w, conc, h.o.warmup, h.o.duration)
					if err := add(i, t, c, err); err != nil {
						return err
					}
				}
			}
			ro, rn, co, cn := median(rps[0]), median(rps[1]), median(cpu[0]), median(cpu[1])
			tot := (cpuSum[1] / reqSum[1]) / (cpuSum[0] / reqSum[0])
			// Each round's own CPU ratio: their median is the paired
			// figure, and their range the spread the medians hide.
			lo, hi := math.Inf(1), math.Inf(-1)
			ratios := make([]float64, len(cpu[0]))
			for r := range cpu[0] {
				q := cpu[1][r] / cpu[0][r]
				ratios[r] = q
				lo, hi = math.Min(lo, q), math.Max(hi, q)
			}
			paired := median(ratios)
			var shared [2]float64
			for i, t := range pair {
				after := upstreamCounts(t)
				up, co := after[0]-upBefore[i][0], after[1]-upBefore[i][1]
				shared[i] = co / math.Max(1, up+co)
			}
			logf("%s %-10s c=%-3d req/s %.0f → %.0f (%.3f×), CPU s/1k %.3f → %.3f (%.3f×, totals %.3f×, rounds' median %.3f×, rounds %.3f–%.3f), shared answers %.0f%% → %.0f%%", suffix, w.name, conc, ro, rn, rn/ro, co, cn, cn/co, tot, paired, lo, hi, 100*shared[0], 100*shared[1])
			p("| %s | %d | %.0f | %.0f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f–%.3f | %.0f %% / %.0f %% |\n", w.name, conc, ro, rn, rn/ro, co, cn, cn/co, tot, paired, lo, hi, 100*shared[0], 100*shared[1])
		}
	}
	p("\n%d OTLP exports, %.1f MiB received by the sink.\n", h.otlp.exports.Load(), float64(h.otlp.bytes.Load())/(1<<20))
	out := strings.Replace(b.String(), loadEnd, loadAvg(), 1)
	b.Reset()
	b.WriteString(out)
	fmt.Print(b.String())
	if err := os.MkdirAll(h.o.results, 0o755); err != nil {
		return err
	}
	path := filepath.Join(h.o.results, h.started.UTC().Format("2006-01-02T1504Z")+"-"+suffix+".md")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil { //nolint:gosec // a results file, meant to be read
		return err
	}
	logf("wrote %s", path)
	return nil
}

// upstreamCounts reads t's promgate_upstream_requests_total and
// promgate_upstream_coalesced_total, summed over their labels; zeros when
// they cannot be read (the report then shows no share).
func upstreamCounts(t *target) [2]float64 {
	var n [2]float64
	if t.metrics == "" {
		return n
	}
	resp, err := plainClient.Get(t.metrics)
	if err != nil {
		return n
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return n
	}
	for i, name := range []string{"promgate_upstream_requests_total", "promgate_upstream_coalesced_total"} {
		if f := fams[name]; f != nil {
			for _, m := range f.GetMetric() {
				n[i] += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
