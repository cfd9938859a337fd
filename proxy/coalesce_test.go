package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// heldUpstream answers every request with body once release is closed, and
// counts the requests that reached it.
type heldUpstream struct {
	release chan struct{}
	body    []byte
	calls   atomic.Int32
	// status is the answer's status code (200 when zero).
	status int
}

func (u *heldUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	u.calls.Add(1)
	select {
	case <-u.release:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	code := u.status
	if code == 0 {
		code = http.StatusOK
	}
	return &http.Response{
		Status: http.StatusText(code), StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"application/json"}},
		Body:    io.NopCloser(bytes.NewReader(u.body)),
		Request: req, ContentLength: -1,
	}, nil
}

func coalesceRequest(t *testing.T, ctx context.Context, method, target, id, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-Id", id)
	req.Header.Set("Accept", "application/json")
	return req
}

// waitJoined waits until the flight of req's key exists and n requests
// have joined it.
func waitJoined(t *testing.T, c *coalescer, req *http.Request, n int) {
	t.Helper()
	key, ok := flightKey(req)
	if !ok {
		t.Fatal("request cannot be coalesced")
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		f := c.flights[key]
		got := -1
		if f != nil {
			got = f.waiters
		}
		c.mu.Unlock()
		if got == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d requests did not join the flight", n)
}

type result struct {
	body   string
	status int
	err    error
}

func roundTrip(c http.RoundTripper, req *http.Request) result {
	resp, err := c.RoundTrip(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{body: string(b), status: resp.StatusCode, err: err}
}

// TestCoalesceShares checks that identical requests waiting at the same
// time reach the upstream once and all get the whole answer, each with its
// own response carrying its own request.
func TestCoalesceShares(t *testing.T) {
	for _, tc := range []struct {
		name, method, body string
	}{
		{"GET", http.MethodGet, ""},
		{"POST", http.MethodPost, "query=up%7Bnamespace%3D%22a%22%7D"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &heldUpstream{release: make(chan struct{}), body: bytes.Repeat([]byte("x"), 100<<10)}
			var joined atomic.Int32
			c := newCoalescer(up, func(*http.Request) { joined.Add(1) })
			const n = 8
			results := make([]result, n)
			reqs := make([]*http.Request, n)
			var wg sync.WaitGroup
			for i := range n {
				reqs[i] = coalesceRequest(t, t.Context(), tc.method, "http://up/api/v1/query?x=1", "id-"+string(rune('a'+i)), tc.body)
			}
			wg.Go(func() { results[0] = roundTrip(c, reqs[0]) })
			waitJoined(t, c, reqs[0], 0)
			for i := 1; i < n; i++ {
				wg.Go(func() { results[i] = roundTrip(c, reqs[i]) })
			}
			waitJoined(t, c, reqs[0], n-1)
			close(up.release)
			wg.Wait()
			if got := up.calls.Load(); got != 1 {
				t.Errorf("upstream saw %d requests, want 1", got)
			}
			if got := joined.Load(); got != n-1 {
				t.Errorf("joined = %d, want %d", got, n-1)
			}
			for i, r := range results {
				if r.err != nil || r.status != http.StatusOK || r.body != string(up.body) {
					t.Errorf("request %d: status %d, %d bytes, err %v", i, r.status, len(r.body), r.err)
				}
			}
		})
	}
}

// TestCoalesceKeys checks that requests differing in anything the upstream
// sees (the request id and trace context aside) never share an answer.
func TestCoalesceKeys(t *testing.T) {
	base := func() *http.Request {
		return coalesceRequest(t, t.Context(), http.MethodGet, "http://up/api/v1/query?query=up%7Bns%3D%22a%22%7D", "1", "")
	}
	key0, _ := flightKey(base())
	for _, tc := range []struct {
		name   string
		change func(*http.Request)
		same   bool
	}{
		{"request id", func(r *http.Request) { r.Header.Set("X-Request-Id", "2") }, true},
		{"trace context", func(r *http.Request) {
			r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			r.Header.Set("Tracestate", "a=b")
		}, true},
		{"query", func(r *http.Request) { r.URL.RawQuery = "query=up%7Bns%3D%22b%22%7D" }, false},
		{"path", func(r *http.Request) { r.URL.Path = "/api/v1/series" }, false},
		{"tenant", func(r *http.Request) { r.Header.Set("X-Scope-OrgID", "b") }, false},
		{"accept-encoding", func(r *http.Request) { r.Header.Set("Accept-Encoding", "gzip") }, false},
		{"authorization", func(r *http.Request) { r.Header.Set("Authorization", "Bearer x") }, false},
		{"header value moved", func(r *http.Request) { r.Header.Set("Accept", "application/json\x00X") }, false},
		{"method", func(r *http.Request) { r.Method = http.MethodHead }, false},
	} {
		r := base()
		tc.change(r)
		key, ok := flightKey(r)
		if !ok {
			t.Errorf("%s: not coalescable", tc.name)
			continue
		}
		if (key == key0) != tc.same {
			t.Errorf("%s: same key = %v, want %v", tc.name, key == key0, tc.same)
		}
	}
	post := func(body string) string {
		r := coalesceRequest(t, t.Context(), http.MethodPost, "http://up/api/v1/query", "1", body)
		k, ok := flightKey(r)
		if !ok {
			t.Fatalf("POST %q not coalescable", body)
		}
		return k
	}
	if post("query=a") == post("query=b") {
		t.Error("POST bodies query=a and query=b share a key")
	}
	r := coalesceRequest(t, t.Context(), http.MethodPost, "http://up/api/v1/query", "1", "")
	r.Body, r.GetBody = io.NopCloser(strings.NewReader("query=a")), nil
	if _, ok := flightKey(r); ok {
		t.Error("a POST whose body cannot be read twice was coalescable")
	}
	r = coalesceRequest(t, t.Context(), http.MethodPut, "http://up/api/v1/query", "1", "")
	if _, ok := flightKey(r); ok {
		t.Error("PUT was coalescable")
	}
}

// TestCoalesceFallback checks that the requests that joined a flight ask the
// upstream themselves when the first request cannot share its answer, and
// that nobody inherits another's cancellation.
func TestCoalesceFallback(t *testing.T) {
	const target = "http://up/api/v1/query?query=up"
	for _, tc := range []struct {
		name string
		body []byte
		// cancelFirst cancels the first request while it waits for the
		// upstream; otherwise the upstream answers and first reads it.
		cancelFirst bool
		first       func(t *testing.T, c *coalescer, req *http.Request)
	}{{
		name:        "first cancelled while waiting",
		body:        []byte(`{"status":"success"}`),
		cancelFirst: true,
		first: func(t *testing.T, c *coalescer, req *http.Request) {
			if r := roundTrip(c, req); !errors.Is(r.err, context.Canceled) {
				t.Errorf("first request: %+v, want context.Canceled", r)
			}
		},
	}, {
		name: "answer larger than the share bound",
		body: bytes.Repeat([]byte("y"), maxSharedBody+1),
		first: func(t *testing.T, c *coalescer, req *http.Request) {
			if r := roundTrip(c, req); r.err != nil || len(r.body) != maxSharedBody+1 {
				t.Errorf("first request: %d bytes, %v; want the whole answer", len(r.body), r.err)
			}
		},
	}, {
		name: "first closes the body early",
		body: bytes.Repeat([]byte("z"), 1<<20),
		first: func(t *testing.T, c *coalescer, req *http.Request) {
			resp, err := c.RoundTrip(req)
			if err != nil {
				t.Errorf("first request: %v", err)
				return
			}
			_, _ = io.ReadFull(resp.Body, make([]byte, 10))
			resp.Body.Close()
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			up := &heldUpstream{release: make(chan struct{}), body: tc.body}
			c := newCoalescer(up, nil)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			first := coalesceRequest(t, ctx, http.MethodGet, target, "first", "")
			var firstWG, wg sync.WaitGroup
			firstWG.Go(func() { tc.first(t, c, first) })
			waitJoined(t, c, first, 0)
			results := make([]result, 2)
			for i := range results {
				wg.Go(func() {
					results[i] = roundTrip(c, coalesceRequest(t, t.Context(), http.MethodGet, target, "other", ""))
				})
			}
			waitJoined(t, c, first, 2)
			if tc.cancelFirst {
				cancel()
				firstWG.Wait()
			}
			close(up.release)
			firstWG.Wait()
			wg.Wait()
			for i, r := range results {
				if r.err != nil || r.status != http.StatusOK || r.body != string(tc.body) {
					t.Errorf("joined request %d: status %d, %d bytes, err %v; want its own whole answer", i, r.status, len(r.body), r.err)
				}
			}
			// The first request, then each joined one on its own.
			if got := up.calls.Load(); got != 3 {
				t.Errorf("upstream saw %d requests, want 3", got)
			}
		})
	}
}

// TestCoalesceJoinedCancel checks that a joined request that gives up
// returns at once and leaves the flight to the others.
func TestCoalesceJoinedCancel(t *testing.T) {
	up := &heldUpstream{release: make(chan struct{}), body: []byte("ok")}
	c := newCoalescer(up, nil)
	first := coalesceRequest(t, t.Context(), http.MethodGet, "http://up/q", "1", "")
	var wg sync.WaitGroup
	var firstResult result
	wg.Go(func() { firstResult = roundTrip(c, first) })
	waitJoined(t, c, first, 0)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan result)
	go func() { done <- roundTrip(c, coalesceRequest(t, ctx, http.MethodGet, "http://up/q", "2", "")) }()
	waitJoined(t, c, first, 1)
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Errorf("cancelled joined request: %+v, want context.Canceled", r)
	}
	close(up.release)
	wg.Wait()
	if firstResult.err != nil || firstResult.body != "ok" {
		t.Errorf("first request: %+v", firstResult)
	}
	// Nothing is cached: the next request asks again.
	if r := roundTrip(c, coalesceRequest(t, t.Context(), http.MethodGet, "http://up/q", "3", "")); r.body != "ok" || up.calls.Load() != 2 {
		t.Errorf("later request: %+v after %d upstream requests, want a second upstream request", r, up.calls.Load())
	}
}

// TestCoalesceAlone checks that a request nobody joined gets the upstream's
// body untouched, without a copy.
func TestCoalesceAlone(t *testing.T) {
	up := &heldUpstream{release: make(chan struct{}), body: []byte("ok")}
	close(up.release)
	c := newCoalescer(up, nil)
	resp, err := c.RoundTrip(coalesceRequest(t, t.Context(), http.MethodGet, "http://up/q", "1", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, ok := resp.Body.(*teeBody); ok {
		t.Error("a request nobody joined has its body copied")
	}
	if len(c.flights) != 0 {
		t.Errorf("%d flights left behind", len(c.flights))
	}
}

// recordingHeld is a heldUpstream that also records the URLs it was asked.
type recordingHeld struct {
	heldUpstream
	mu   sync.Mutex
	urls []string
}

func (u *recordingHeld) RoundTrip(req *http.Request) (*http.Response, error) {
	u.mu.Lock()
	u.urls = append(u.urls, req.URL.RawQuery)
	u.mu.Unlock()
	return u.heldUpstream.RoundTrip(req)
}

// TestHandlerCoalesce checks coalescing through the whole handler: two
// members of team-a asking the same question at once share one upstream
// request, each gets its own audit record, and the admin, whose request is
// not enforced, never shares theirs.
func TestHandlerCoalesce(t *testing.T) {
	up := &recordingHeld{heldUpstream: heldUpstream{release: make(chan struct{}), body: []byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`)}}
	f := newFixtureTransport(t, up)
	c := f.h.up.rt.(*coalescer)
	const target = "/api/v1/query?query=up"
	codes := make(map[string]int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	ask := func(user string) {
		wg.Go(func() {
			w := f.do(t, request{target: target, user: user})
			mu.Lock()
			codes[user] = w.Code
			mu.Unlock()
		})
	}
	waitFlights := func(n int) {
		t.Helper()
		for range 5000 {
			c.mu.Lock()
			got := 0
			for _, fl := range c.flights {
				got += 1 + fl.waiters
			}
			c.mu.Unlock()
			if got == n {
				return
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("%d requests did not reach the coalescer", n)
	}
	ask("alice")
	waitFlights(1)
	ask("bob")
	ask("root")
	waitFlights(3)
	close(up.release)
	wg.Wait()
	for _, u := range []string{"alice", "bob", "root"} {
		if codes[u] != http.StatusOK {
			t.Errorf("%s: status %d, want 200", u, codes[u])
		}
	}
	if got := up.calls.Load(); got != 2 {
		t.Errorf("upstream saw %d requests (%q), want 2: team-a's shared one and root's", got, up.urls)
	}
	if len(f.aud.records) != 3 {
		t.Errorf("%d audit records, want 3", len(f.aud.records))
	}
	shared := 0
	for _, r := range f.aud.records {
		if r.Status != http.StatusOK {
			t.Errorf("audit record of %s: status %d", r.Identity.Subject, r.Status)
		}
		if r.Coalesced {
			shared++
			if r.Identity.Subject == "root" {
				t.Errorf("root's record says coalesced: root shares no answer with team-a")
			}
		}
	}
	if shared != 1 {
		t.Errorf("%d audit records say coalesced, want 1 (alice's or bob's)", shared)
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			route := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					route = l.GetValue()
				}
			}
			if route == "query" {
				counts[mf.GetName()] += m.GetCounter().GetValue()
			}
		}
	}
	if counts["promgate_upstream_coalesced_total"] != 1 || counts["promgate_upstream_requests_total"] != 2 {
		t.Errorf("query route counters: coalesced %v, upstream %v; want 1 and 2", counts["promgate_upstream_coalesced_total"], counts["promgate_upstream_requests_total"])
	}
}
