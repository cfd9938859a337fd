package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// target is one thing under test.
type target struct {
	name string
	// base is the scheme and address, e.g. https://127.0.0.1:1234.
	base string
	// tls is the client's TLS configuration (nil for plain HTTP).
	tls *tls.Config
	// header is added to every request (the bearer token).
	header http.Header
	// explicit says the target does not enforce: the caller's namespace
	// matcher is written into the request.
	explicit bool
	// proc is the process under test; upstream is the process behind it
	// (nil for direct Prometheus).
	proc, upstream *proc
	// metrics is promgate's own /metrics URL (its internal listener), or
	// empty.
	metrics string
}

// cell is the measurement of one target, workload and concurrency.
type cell struct {
	target, workload string
	conc             int
	requests, errors int
	firstErr         string
	elapsed          time.Duration
	p50, p99         time.Duration
	cpuPer1k         float64 // process under test, seconds per 1,000 requests
	upCPUPer1k       float64 // the upstream, seconds per 1,000 requests
	rss              float64 // MiB, after the cell
	respBytes        int64   // body size of one answer
}

func (c cell) rps() float64 {
	if c.elapsed <= 0 {
		return 0
	}
	return float64(c.requests) / c.elapsed.Seconds()
}

// newTransport is the load generator's HTTP/1.1 client: one keep-alive
// connection per worker, no transparent compression (the same bytes for
// every target), HTTP/2 off (wrk and hey speak HTTP/1.1, and one multiplexed
// connection would measure something else).
func newTransport(tc *tls.Config, conc int) *http.Transport {
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conc,
		MaxIdleConnsPerHost: conc,
		MaxConnsPerHost:     conc,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	if tc != nil {
		c := tc.Clone()
		c.NextProtos = []string{"http/1.1"}
		t.TLSClientConfig = c
	}
	return t
}

// drive runs conc closed-loop workers against u for d and returns the
// latencies of the successful requests, the error count and the first error.
func drive(ctx context.Context, client *http.Client, u string, header http.Header, conc int, d time.Duration) (lat []time.Duration, errs int, firstErr string, bodyBytes int64, elapsed time.Duration) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var my []time.Duration
			myErrs := 0
			myFirst := ""
			var myBytes int64
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				mu.Lock()
				errs++
				firstErr = err.Error()
				mu.Unlock()
				return
			}
			for k, v := range header {
				req.Header[k] = v
			}
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					myErrs++
					if myFirst == "" {
						myFirst = err.Error()
					}
					continue
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					myErrs++
					if myFirst == "" {
						myFirst = fmt.Sprintf("status %d (%v)", resp.StatusCode, err)
					}
					continue
				}
				my = append(my, time.Since(t0))
				myBytes = n
			}
			mu.Lock()
			lat = append(lat, my...)
			errs += myErrs
			if firstErr == "" {
				firstErr = myFirst
			}
			if myBytes > 0 {
				bodyBytes = myBytes
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lat, errs, firstErr, bodyBytes, time.Since(start)
}

// measure runs one cell: a warm-up, then d of measured load.
func measure(ctx context.Context, t *target, w workload, conc int, warmup, d time.Duration) (cell, error) {
	tr := newTransport(t.tls, conc)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	u := t.base + w.path(t.explicit)
	if warmup > 0 {
		drive(ctx, client, u, t.header, conc, warmup)
	}
	c := cell{target: t.name, workload: w.name, conc: conc}
	cpu0, err := cpuSeconds(t.proc.pid())
	if err != nil {
		return c, err
	}
	var up0 float64
	if t.upstream != nil {
		if up0, err = cpuSeconds(t.upstream.pid()); err != nil {
			return c, err
		}
	}
	lat, errs, first, body, elapsed := drive(ctx, client, u, t.header, conc, d)
	cpu1, err := cpuSeconds(t.proc.pid())
	if err != nil {
		return c, err
	}
	c.requests, c.errors, c.firstErr, c.respBytes, c.elapsed = len(lat), errs, first, body, elapsed
	if c.requests > 0 {
		c.cpuPer1k = (cpu1 - cpu0) / float64(c.requests) * 1000
	}
	if t.upstream != nil {
		up1, err := cpuSeconds(t.upstream.pid())
		if err != nil {
			return c, err
		}
		if c.requests > 0 {
			c.upCPUPer1k = (up1 - up0) / float64(c.requests) * 1000
		}
	}
	if c.rss, err = rssMiB(t.proc.pid()); err != nil {
		return c, err
	}
	slices.Sort(lat)
	c.p50, c.p99 = quantile(lat, 0.50), quantile(lat, 0.99)
	return c, ctx.Err()
}

// quantile is the nearest-rank quantile of sorted latencies.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// idleResult is the RSS of a server before and while it holds n idle
// keep-alive connections.
type idleResult struct {
	target      string
	phase       string // "fresh" (before any load) or "after load"
	n, opened   int
	before, rss float64
	firstErr    string
}

// holdIdle opens n keep-alive connections to t, sends one request on each
// (so that each is a served, idle HTTP/1.1 connection, handshake done),
// waits for the server to settle, and reads its RSS while they are held.
func holdIdle(ctx context.Context, t *target, path, phase string, n int) (idleResult, error) {
	res := idleResult{target: t.name, phase: phase, n: n}
	var err error
	if res.before, err = rssMiB(t.proc.pid()); err != nil {
		return res, err
	}
	host := t.base[len("https://"):]
	tc := t.tls.Clone()
	tc.NextProtos = []string{"http/1.1"}
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close() //nolint:errcheck // the run is over; the connections are only let go
		}
	}()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := oneRequest(ctx, host, tc, path, t.header)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if res.firstErr == "" {
					res.firstErr = err.Error()
				}
				return
			}
			conns = append(conns, c)
		}()
	}
	wg.Wait()
	res.opened = len(conns)
	time.Sleep(2 * time.Second)
	if t.proc.exited() {
		return res, fmt.Errorf("%s exited while holding idle connections", t.name)
	}
	res.rss, err = rssMiB(t.proc.pid())
	return res, err
}

// oneRequest dials host, sends GET path with keep-alive, reads the answer and
// returns the open connection.
func oneRequest(ctx context.Context, host string, tc *tls.Config, path string, header http.Header) (net.Conn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: tc}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: "https", Host: host}, Host: host, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	req.URL, err = url.Parse("https://" + host + path)
	if err != nil {
		c.Close() //nolint:errcheck // error path: the parse error is returned
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := req.Write(c); err != nil {
		c.Close() //nolint:errcheck // error path: the write error is returned
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		c.Close() //nolint:errcheck // error path: the read error is returned
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		c.Close() //nolint:errcheck // error path: the status error is returned
		return nil, fmt.Errorf("status %d, close=%v", resp.StatusCode, resp.Close)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// pairedResult is the interleaved c=1 measurement of one workload: every
// target's latencies taken in the same rounds, so that a busy moment of the
// shared machine falls on all of them alike.
type pairedResult struct {
	workload string
	rounds   int
	p50      map[string]time.Duration
	errors   map[string]int
	firstErr map[string]string
}

// interleave runs one closed loop for d that sends one request at a time to
// each target in turn, in a new random order each round, each target over
// its own keep-alive connection. The per-target p50s it returns differ only
// by what the targets do, not by when they were measured.
func interleave(ctx context.Context, ts []*target, w workload, warmup, d time.Duration) (pairedResult, error) {
	res := pairedResult{workload: w.name, p50: map[string]time.Duration{}, errors: map[string]int{}, firstErr: map[string]string{}}
	type one struct {
		t      *target
		client *http.Client
		req    *http.Request
		lat    []time.Duration
	}
	var all []*one
	for _, t := range ts {
		tr := newTransport(t.tls, 1)
		defer tr.CloseIdleConnections()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+w.path(t.explicit), nil)
		if err != nil {
			return res, err
		}
		for k, v := range t.header {
			req.Header[k] = v
		}
		all = append(all, &one{t: t, client: &http.Client{Transport: tr, Timeout: 60 * time.Second}, req: req})
	}
	rng := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // G404: a fixed seed, so that every run sends the same order; nothing secret
	order := make([]int, len(all))
	for i := range order {
		order[i] = i
	}
	start := time.Now()
	for time.Since(start) < warmup+d && ctx.Err() == nil {
		measured := time.Since(start) >= warmup
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			o := all[i]
			t0 := time.Now()
			resp, err := o.client.Do(o.req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if !measured {
				continue
			}
			if err != nil {
				res.errors[o.t.name]++
				if res.firstErr[o.t.name] == "" {
					res.firstErr[o.t.name] = err.Error()
				}
				continue
			}
			o.lat = append(o.lat, time.Since(t0))
		}
		if measured {
			res.rounds++
		}
	}
	for _, o := range all {
		slices.Sort(o.lat)
		res.p50[o.t.name] = quantile(o.lat, 0.5)
	}
	return res, ctx.Err()
}
