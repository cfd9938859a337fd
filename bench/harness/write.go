package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// The write cells (-only write): remote write 1.0 through promgate (mTLS,
// the default policy, write.routes [write], drop mode, the audit file)
// against the bare TLS proxy, into a Prometheus with
// --web.enable-remote-write-receiver, with the same batches and the same
// concurrency. A batch is writeSeries series of team-a with eight labels
// and one sample each, the shape of a Prometheus agent's requests; every
// request sends the same batch, which the receiver takes as duplicates
// after the first.

const writeSeries = 2000

// writeBatch is the snappy-compressed remote write body every request sends.
func writeBatch(ts time.Time) ([]byte, error) {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, writeSeries)}
	for i := range req.Timeseries {
		ns := "team-a"
		if i%2 == 1 {
			ns = "team-a-staging"
		}
		req.Timeseries[i] = prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: fmt.Sprintf("bench_requests_%d_total", i%50)},
				{Name: "code", Value: "200"},
				{Name: "container", Value: "app"},
				{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250)},
				{Name: "job", Value: "kubernetes-pods"},
				{Name: "method", Value: "GET"},
				{Name: "namespace", Value: ns},
				{Name: "pod", Value: fmt.Sprintf("app-%d", i)},
			},
			Samples: []prompb.Sample{{Value: float64(i), Timestamp: ts.UnixMilli()}},
		}
	}
	raw, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	return snappy.Encode(nil, raw), nil
}

// writeCell is one write measurement.
type writeCell struct {
	target           string
	conc             int
	requests, errors int
	firstErr         string
	elapsed          time.Duration
	p50, p99         time.Duration
	cpuPer1k         float64
	upCPUPer1k       float64
}

func (c writeCell) samplesPerSecond() float64 {
	if c.elapsed <= 0 {
		return 0
	}
	return float64(c.requests) * writeSeries / c.elapsed.Seconds()
}

// runWrite is the -only write run.
func (h *harness) runWrite(ctx context.Context) error {
	h.loadStart = loadAvg()
	logf("mode %s, write cells only, load average %s on %d CPUs", h.o.mode, h.loadStart, numCPU())
	if err := h.build(); err != nil {
		return err
	}
	dir := filepath.Join(h.work, "receiver")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(promConfig), 0o644); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	h.promURL = "http://" + addr
	if h.prom, err = h.ps.start("receiver", dir, "prometheus", "--config.file=prometheus.yml", "--storage.tsdb.path=data",
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver", "--log.level=warn"); err != nil {
		return err
	}
	if err := waitReady(h.prom, plainClient, h.promURL+"/-/ready", nil, 60*time.Second); err != nil {
		return err
	}
	teamA, err := h.clientTLS("team-a")
	if err != nil {
		return err
	}
	bareAddr, err := freeAddr()
	if err != nil {
		return err
	}
	bare, err := h.ps.start("bare-tls", h.work, filepath.Join(h.bin, "bareproxy"), "-listen", bareAddr, "-upstream", h.promURL,
		"-cert", filepath.Join(h.pki, "server.crt"), "-key", filepath.Join(h.pki, "server.key"), "-client-ca", filepath.Join(h.pki, "ca.crt"))
	if err != nil {
		return err
	}
	if err := waitReady(bare, tlsClient(teamA), "https://"+bareAddr+"/-/ready", nil, 30*time.Second); err != nil {
		return err
	}
	listen, internal, err := twoAddrs()
	if err != nil {
		return err
	}
	path, err := h.gatewayConfig("promgate-write", listen, internal, "RequireAndVerifyClientCert", h.promURL, "prometheus-api", "", filepath.Join(h.root, "policies"))
	if err != nil {
		return err
	}
	cfg, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	cfg = append(cfg, "write:\n  routes: [write]\n  mode: drop\n"...)
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return err
	}
	if err := h.checkConfig(path); err != nil {
		return fmt.Errorf("promgate check (promgate-write): %w", err)
	}
	pg, err := h.startGateway("promgate-write", path, internal)
	if err != nil {
		return err
	}
	targets := []*target{
		{name: "bare-tls", base: "https://" + bareAddr, tls: teamA, proc: bare, upstream: h.prom},
		{name: "promgate-mtls", base: "https://" + listen, tls: teamA, proc: pg, upstream: h.prom},
	}
	body, err := writeBatch(time.Now())
	if err != nil {
		return err
	}
	logf("write batch: %d series, one sample each, %d bytes compressed", writeSeries, len(body))
	var cells []writeCell
	for _, conc := range h.o.conc {
		for _, t := range targets {
			c, err := measureWrite(ctx, t, body, conc, h.o.warmup, h.o.duration)
			if err != nil {
				return fmt.Errorf("%s write c=%d: %w", t.name, conc, err)
			}
			logf("%-16s write      c=%-3d %10.0f samples/s  p50 %7.2f ms  p99 %7.2f ms  cpu/1k %.3f s  errors %d %s",
				t.name, conc, c.samplesPerSecond(), ms(c.p50), ms(c.p99), c.cpuPer1k, c.errors, c.firstErr)
			cells = append(cells, c)
		}
	}
	h.loadEnd = loadAvg()
	report := h.writeReport(cells)
	if h.o.mode == "smoke" {
		fmt.Println(report)
		return nil
	}
	if err := os.MkdirAll(h.o.results, 0o755); err != nil {
		return err
	}
	out := filepath.Join(h.o.results, h.started.UTC().Format("2006-01-02T1504Z")+"-write.md")
	if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Println(report)
	logf("wrote %s", out)
	return nil
}

// measureWrite runs one write cell: a warm-up, then d of closed-loop POSTs.
func measureWrite(ctx context.Context, t *target, body []byte, conc int, warmup, d time.Duration) (writeCell, error) {
	tr := newTransport(t.tls, conc)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	u := t.base + "/api/v1/write"
	if warmup > 0 {
		driveWrite(ctx, client, u, body, conc, warmup)
	}
	c := writeCell{target: t.name, conc: conc}
	cpu0, err := cpuSeconds(t.proc.pid())
	if err != nil {
		return c, err
	}
	up0, err := cpuSeconds(t.upstream.pid())
	if err != nil {
		return c, err
	}
	lat, errs, first, elapsed := driveWrite(ctx, client, u, body, conc, d)
	cpu1, err := cpuSeconds(t.proc.pid())
	if err != nil {
		return c, err
	}
	up1, err := cpuSeconds(t.upstream.pid())
	if err != nil {
		return c, err
	}
	c.requests, c.errors, c.firstErr, c.elapsed = len(lat), errs, first, elapsed
	if c.requests > 0 {
		c.cpuPer1k = (cpu1 - cpu0) / float64(c.requests) * 1000
		c.upCPUPer1k = (up1 - up0) / float64(c.requests) * 1000
	}
	slices.Sort(lat)
	c.p50, c.p99 = quantile(lat, 0.50), quantile(lat, 0.99)
	return c, ctx.Err()
}

// driveWrite runs conc closed-loop workers POSTing body to u for d. A
// request counts when it is answered 2xx.
func driveWrite(ctx context.Context, client *http.Client, u string, body []byte, conc int, d time.Duration) (lat []time.Duration, errs int, firstErr string, elapsed time.Duration) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range conc {
		wg.Go(func() {
			var my []time.Duration
			myErrs, myFirst := 0, ""
			for time.Now().Before(deadline) && ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
				if err != nil {
					myErrs++
					myFirst = err.Error()
					break
				}
				req.Header.Set("Content-Type", "application/x-protobuf")
				req.Header.Set("Content-Encoding", "snappy")
				req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					myErrs++
					if myFirst == "" {
						myFirst = err.Error()
					}
					continue
				}
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					myErrs++
					if myFirst == "" {
						myFirst = fmt.Sprintf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
					}
					continue
				}
				my = append(my, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, my...)
			errs += myErrs
			if firstErr == "" {
				firstErr = myFirst
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return lat, errs, firstErr, time.Since(start)
}

// writeReport is the write cells' Markdown table and ratios.
func (h *harness) writeReport(cells []writeCell) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# promgate remote write benchmark (%s)\n\n", h.started.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), load average %s at start, %s at end; %s; git %s.\n\n",
		numCPU(), cpuModel(), h.loadStart, h.loadEnd, goVersion(), h.gitRev)
	fmt.Fprintf(&b, "Each request: one remote write 1.0 batch of %d team-a series with one sample each, "+
		"through the target into Prometheus 2.42 with --web.enable-remote-write-receiver. promgate: mTLS, "+
		"the default policy (team-a confined to its namespaces, drop mode, nothing to drop), the audit file. "+
		"%v measured per cell after %v of warm-up.\n\n", writeSeries, h.o.duration, h.o.warmup)
	b.WriteString("| target | c | samples/s | p50 ms | p99 ms | CPU s/1k req (target) | CPU s/1k req (receiver) | errors |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, c := range cells {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.2f | %.3f | %.3f | %d %s |\n", c.target, c.conc, c.samplesPerSecond(),
			ms(c.p50), ms(c.p99), c.cpuPer1k, c.upCPUPer1k, c.errors, trunc(c.firstErr, 60))
	}
	b.WriteString("\n| c | promgate / bare samples/s |\n| --- | --- |\n")
	for _, conc := range h.o.conc {
		var bare, pg float64
		for _, c := range cells {
			if c.conc != conc {
				continue
			}
			switch c.target {
			case "bare-tls":
				bare = c.samplesPerSecond()
			case "promgate-mtls":
				pg = c.samplesPerSecond()
			}
		}
		fmt.Fprintf(&b, "| %d | %.2f |\n", conc, ratio(pg, bare))
	}
	return b.String()
}
