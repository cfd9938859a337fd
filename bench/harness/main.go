package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	mode     string
	warmup   time.Duration
	duration time.Duration
	conc     []int
	idle     int
	results  string
	keep     bool
	gzip     bool
	only     string
	// dashRefresh and dashRounds override the dashboard workload's
	// compressed refresh interval and number of rounds.
	dashRefresh time.Duration
	dashRounds  int
	// workloads keeps only the named workloads (all when empty), and
	// rounds sets the tracing A/B's rounds.
	workloads []string
	rounds    int
	// pairing is how the tracing A/B pairs its two gateways: together
	// (both loaded at once in each round) or alternate.
	pairing string
	// solo runs the tracing A/B on gateways with upstream.coalesce off.
	solo bool
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	flag.StringVar(&o.mode, "mode", "full", "full (every cell, writes bench/results) or smoke (a few short cells, writes nothing)")
	flag.DurationVar(&o.duration, "duration", 0, "measured time per cell (default 8s full, 700ms smoke)")
	flag.DurationVar(&o.warmup, "warmup", 0, "unmeasured warm-up per cell (default 1s full, 200ms smoke)")
	concFlag := flag.String("concurrency", "", "comma-separated concurrency levels (default 1,16,128 full; 1,16 smoke)")
	flag.IntVar(&o.idle, "idle", 0, "idle keep-alive connections for the RSS check (default 1000 full, 100 smoke)")
	flag.StringVar(&o.results, "results", "", "results folder (default <module>/bench/results)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work folder (logs, audit file, TSDB) for inspection")
	flag.StringVar(&o.only, "only", "", "sidecar: measure only the exporter-sidecar cases and write bench/results/<date>-sidecar.md, leaving latest.md alone; tracing: promgate with tracing off and on in alternating cells, written to bench/results/<date>-tracing.md; tracing-aa: the same method with tracing off on both sides (two identical gateways), which shows the method's own bias and spread, written to bench/results/<date>-tracing-aa.md; write: only the remote write cells (promgate and the bare TLS proxy into a remote-write receiver), written to bench/results/<date>-write.md; dashboards: only the dashboard workload, written to bench/results/<date>-dashboards.md")
	flag.DurationVar(&o.dashRefresh, "dash-refresh", 0, "dashboard workload: refresh interval, jitter a fifth of it (default 15s full, 500ms smoke; Grafana's own is 30s)")
	flag.IntVar(&o.dashRounds, "dash-rounds", 0, "dashboard workload: loads per person (default 4 full, 2 smoke)")
	wlFlag := flag.String("workloads", "", "comma-separated workloads to measure (default all: instant-1, instant-20, range-1MB, series)")
	flag.IntVar(&o.rounds, "rounds", 9, "tracing and tracing-aa: rounds per cell")
	flag.BoolVar(&o.solo, "solo", false, "tracing and tracing-aa: compare gateways with upstream.coalesce off (promgate-mtls-solo and its traced twin or A/A twin), so that every request goes upstream and how many requests share an answer cannot differ between the two")
	flag.StringVar(&o.pairing, "pairing", "together", "tracing and tracing-aa: together (each round loads both gateways at once, each with its own clients, so that whatever else the machine does falls on both in the same seconds) or alternate (one cell each in turn)")
	flag.BoolVar(&o.gzip, "gzip", false, "send Accept-Encoding: gzip, as Grafana does (default identity: the same bytes through every target)")
	flag.Parse()
	switch o.mode {
	case "full":
		setDefault(&o.duration, 8*time.Second)
		setDefault(&o.warmup, time.Second)
		if o.idle == 0 {
			o.idle = 1000
		}
		if *concFlag == "" {
			*concFlag = "1,16,128"
		}
	case "smoke":
		setDefault(&o.duration, 700*time.Millisecond)
		setDefault(&o.warmup, 200*time.Millisecond)
		if o.idle == 0 {
			o.idle = 100
		}
		if *concFlag == "" {
			*concFlag = "1,16"
		}
	default:
		return fmt.Errorf("-mode %q: use full or smoke", o.mode)
	}
	if o.only != "" && o.only != "sidecar" && o.only != "tracing" && o.only != "tracing-aa" && o.only != "write" && o.only != "dashboards" {
		return fmt.Errorf("-only %q: use sidecar, tracing, tracing-aa, write or dashboards", o.only)
	}
	if *wlFlag != "" {
		o.workloads = strings.Split(*wlFlag, ",")
	}
	if o.pairing != "together" && o.pairing != "alternate" {
		return fmt.Errorf("-pairing %q: use together or alternate", o.pairing)
	}
	if o.rounds < 1 {
		return fmt.Errorf("-rounds %d: want at least 1", o.rounds)
	}
	for _, s := range strings.Split(*concFlag, ",") {
		var c int
		if _, err := fmt.Sscanf(strings.TrimSpace(s), "%d", &c); err != nil || c < 1 {
			return fmt.Errorf("-concurrency: %q is not a positive number", s)
		}
		o.conc = append(o.conc, c)
	}

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if o.results == "" {
		o.results = filepath.Join(root, "bench", "results")
	}
	h, err := newHarness(root, o)
	if err != nil {
		return err
	}
	defer h.cleanup()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if o.only == "write" {
			errc <- h.runWrite(ctx)
			return
		}
		errc <- h.run(ctx)
	}()
	select {
	case err = <-errc:
	case <-ctx.Done():
		err = errors.New("interrupted")
	}
	if err != nil {
		h.dumpLogs()
	}
	return err
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

// moduleRoot finds the folder of go.mod through `go env GOMOD`.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside the promgate module")
	}
	return filepath.Dir(gomod), nil
}

// logf prints a progress line on stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// goVersion is the toolchain that built the harness (and, through go build,
// promgate and the bare proxy).
func goVersion() string { return runtime.Version() }
