package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/detect"
)

// TestNoSelectorsAskThePolicy: an expression without selectors is decided
// like any other, so a caller with no access gets 403 for Grafana's health
// check, and an allowed one gets 200.
func TestNoSelectorsAskThePolicy(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		user string
		want int
	}{{"mallory", http.StatusForbidden}, {"alice", 200}, {"root", 200}} {
		w := f.do(t, request{user: c.user, target: "/api/v1/query?query=1%2B1&time=4"})
		if w.Code != c.want {
			t.Errorf("%s: 1+1 status %d, want %d: %s", c.user, w.Code, c.want, w.Body.String())
		}
	}
	if f.up.count() != 2 {
		t.Errorf("upstream saw %d requests, want the two allowed ones", f.up.count())
	}
	rec := f.aud.records[0]
	if rec.Decision == nil || rec.Decision.Allow {
		t.Errorf("mallory's audit record decision = %+v, want the policy's denial", rec.Decision)
	}
}

// TestCostLimits: subqueries with tiny steps are refused before forwarding,
// whoever asks and whether or not they have selectors.
func TestCostLimits(t *testing.T) {
	f := withDefaultWindows(newFixture(t))
	end := time.Now()
	start := end.Add(-90 * 24 * time.Hour)
	span := "&start=" + strconv.FormatInt(start.Unix(), 10) + "&end=" + strconv.FormatInt(end.Unix(), 10)
	for _, c := range []struct {
		user, path, query, extra, want string
	}{
		{"root", "query", "count_over_time(vector(1)[1d:1ms])", "", "max_subquery_points"},
		{"alice", "query", "count_over_time(kube_ingress_created[1d:1ms])", "", "max_subquery_points"},
		{"root", "query", "max_over_time(max_over_time(up[1h:1s])[1d:1s])", "", "max_samples_estimate"},
		{"root", "query_range", "vector(1)", span + "&step=1", "max_query_points"},
	} {
		w := f.do(t, request{user: c.user, target: "/api/v1/" + c.path + "?query=" + url.QueryEscape(c.query) + c.extra})
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%s %s: status %d %s, want 400 naming %s", c.user, c.query, w.Code, w.Body.String(), c.want)
		}
	}
	// A range query over 90 days at Grafana's automatic step works.
	target := "/api/v1/query_range?query=" + url.QueryEscape("sum(rate(up[$__rate_interval]))") +
		"&start=" + strconv.FormatInt(start.Unix(), 10) + "&end=" + strconv.FormatInt(end.Unix(), 10) + "&step=3600"
	target = strings.ReplaceAll(target, url.QueryEscape("$__rate_interval"), "1h")
	if w := f.do(t, request{user: "root", target: target}); w.Code != 200 {
		t.Errorf("90d dashboard: status %d %s, want 200", w.Code, w.Body.String())
	}
	if f.up.count() != 1 {
		t.Errorf("upstream saw %d requests, want only the dashboard's", f.up.count())
	}
}

// withDefaultWindows drops the fixture's explicit max_range and max_lookback,
// leaving the shipped defaults, which set neither.
func withDefaultWindows(f *fixture) *fixture {
	f.h.cfg.Limits.MaxRange = 0
	f.h.cfg.Limits.MaxLookback = 0
	return f
}

// TestLookbackDeltaCounts: lookback_delta reaches into the past like an
// offset, so it counts toward max_lookback.
func TestLookbackDeltaCounts(t *testing.T) {
	f := newFixture(t)
	f.dec.limits.MaxLookback = time.Hour
	w := f.do(t, request{user: "alice", target: "/api/v1/query?query=up&lookback_delta=30d"})
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "lookback") {
		t.Errorf("lookback_delta=30d under a 1h limit: status %d %s, want 400", w.Code, w.Body.String())
	}
	if w := f.do(t, request{user: "alice", target: "/api/v1/query?query=up&lookback_delta=5m"}); w.Code != 200 {
		t.Errorf("lookback_delta=5m: status %d, want 200", w.Code)
	}
	if w := f.do(t, request{user: "alice", target: "/api/v1/query?query=up&lookback_delta=x"}); w.Code != 400 {
		t.Errorf("lookback_delta=x: status %d, want 400", w.Code)
	}
}

// TestMetadataClamped: a metadata request without start (all of history to
// the upstream) or with one before the allowed window is clamped to the
// window's edge, and says so.
func TestMetadataClamped(t *testing.T) {
	f := withDefaultWindows(newFixture(t))
	f.dec.limits.MaxLookback = time.Hour
	now := time.Now()
	for _, target := range []string{
		"/api/v1/series?match[]=up",
		"/api/v1/labels?start=0",
		"/api/v1/label/job/values?start=" + strconv.FormatInt(now.Add(-48*time.Hour).Unix(), 10),
		"/api/v1/query_exemplars?query=up",
	} {
		w := f.do(t, request{user: "alice", target: target})
		if w.Code != 200 {
			t.Fatalf("%s: status %d %s", target, w.Code, w.Body.String())
		}
		if got := w.Header().Get(clampedHeader); got != "start" {
			t.Errorf("%s: %s = %q, want start", target, clampedHeader, got)
		}
		r, _ := f.up.last()
		start, err := strconv.ParseFloat(r.URL.Query().Get("start"), 64)
		if err != nil {
			t.Fatalf("%s: upstream start %q", target, r.URL.Query().Get("start"))
		}
		if edge := float64(now.Add(-time.Hour).Unix()); start < edge-5 || start > edge+5 {
			t.Errorf("%s: upstream start %v, want about %v", target, start, edge)
		}
		rec := f.aud.records[len(f.aud.records)-1]
		if len(rec.Clamped) == 0 || rec.Clamped[0] != "start="+r.URL.Query().Get("start") {
			t.Errorf("%s: audit clamped = %q, want start=%s first", target, rec.Clamped, r.URL.Query().Get("start"))
		}
	}
	// Within the window nothing moves.
	w := f.do(t, request{user: "alice", target: "/api/v1/labels?start=" + strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)})
	if w.Code != 200 || w.Header().Get(clampedHeader) != "" {
		t.Errorf("start within the window: status %d, clamped %q", w.Code, w.Header().Get(clampedHeader))
	}
	// Unrestricted by limits: nothing moves either.
	if w := f.do(t, request{user: "root", target: "/api/v1/series?match[]=up"}); w.Header().Get(clampedHeader) != "" {
		t.Errorf("no limits: clamped %q", w.Header().Get(clampedHeader))
	}
}

// TestDetectorsHonourLimits: the detectors API applies the decision's
// limits to the detector's expression as the query API does.
func TestDetectorsHonourLimits(t *testing.T) {
	f := newFixture(t)
	cat, err := detect.Load()
	if err != nil {
		t.Fatal(err)
	}
	f.h.detectors = cat
	var id string
	for _, d := range cat.List() {
		if d.RestrictedOK() && strings.Contains(d.Expr, "offset 1w") {
			id = d.ID
			break
		}
	}
	if id == "" {
		t.Skip("the catalog has no namespace-scoped detector reading offset 1w")
	}
	f.dec.limits.MaxLookback = time.Hour
	w := f.do(t, request{user: "alice", target: "/api/promgate/v1/detectors/" + id})
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "lookback") {
		t.Errorf("detector %s under a 1h lookback: status %d %s, want 400", id, w.Code, w.Body.String())
	}
	if f.up.count() != 0 {
		t.Errorf("upstream saw %d requests, want none", f.up.count())
	}
}

// TestConcurrencyPerIdentity: one identity's slow queries cannot hold more
// than limits.max_concurrency upstream requests; others are still served.
func TestConcurrencyPerIdentity(t *testing.T) {
	block := make(chan struct{})
	var mu sync.Mutex
	arrived := 0
	slow := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		arrived++
		mu.Unlock()
		if r.URL.Query().Get("query") == "slow" {
			<-block
		}
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})
	f := withDefaultWindows(newFixtureTransport(t, slow))
	f.h.inflight.max = 2
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { f.do(t, request{user: "root", target: "/api/v1/query?query=slow&time=" + strconv.Itoa(i+1)}) })
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		mu.Lock()
		n := arrived
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			close(block)
			t.Fatalf("only %d of the two slow requests reached the upstream", n)
		}
		time.Sleep(time.Millisecond)
	}
	w := f.do(t, request{user: "root", target: "/api/v1/query?query=slow&time=3"})
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("third concurrent request: status %d, want 429 with Retry-After", w.Code)
	}
	if w := f.do(t, request{user: "alice", target: "/api/v1/query?query=up"}); w.Code != 200 {
		t.Errorf("another identity: status %d, want 200", w.Code)
	}
	close(block)
	wg.Wait()
	if w := f.do(t, request{user: "root", target: "/api/v1/query?query=up"}); w.Code != 200 {
		t.Errorf("after the slow ones finished: status %d, want 200", w.Code)
	}
	if got := testutil.ToFloat64(f.h.inflight.refused); got != 1 {
		t.Errorf("promgate_concurrency_limited_total = %v, want 1", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestUpgradeIsCallersError: a request asking for a protocol upgrade is the
// caller's error (400), never forwarded nor counted as an upstream failure.
func TestUpgradeIsCallersError(t *testing.T) {
	f := newFixture(t)
	w := f.do(t, request{user: "root", target: "/api/v1/query?query=up", header: map[string]string{"Connection": "Upgrade", "Upgrade": "\u00e9t\u00e9"}})
	if w.Code != http.StatusBadRequest {
		t.Errorf("odd Upgrade: status %d %s, want 400", w.Code, w.Body.String())
	}
	if f.up.count() != 0 {
		t.Errorf("upstream saw %d requests", f.up.count())
	}
	if n := testutil.CollectAndCount(f.h.tel.upstreamC); n == 0 {
		return
	}
	if got := testutil.ToFloat64(f.h.tel.upstreamC.WithLabelValues(RouteQuery, "error")); got != 0 {
		t.Errorf("upstream errors counted: %v", got)
	}
}

// TestRateKeyHasIssuer: the same subject from two issuers is two callers.
func TestRateKeyHasIssuer(t *testing.T) {
	a := &authn.Identity{Method: authn.MethodOIDC, Issuer: "https://a.example", Subject: "alice"}
	b := &authn.Identity{Method: authn.MethodOIDC, Issuer: "https://b.example", Subject: "alice"}
	if rateKey(a) == rateKey(b) {
		t.Errorf("rate keys of alice from two issuers are equal: %q", rateKey(a))
	}
}

// TestMetadataLookupIsAnUpstreamRequest: the label-values lookup that
// filters a restricted caller's metadata carries the caller's trace
// context, is counted like any upstream request, and happens inside the
// caller's concurrency slot.
func TestMetadataLookupIsAnUpstreamRequest(t *testing.T) {
	f := newFixture(t)
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	w := f.do(t, request{user: "alice", target: "/api/v1/metadata", header: map[string]string{"traceparent": tp}})
	if w.Code != 200 {
		t.Fatalf("metadata: %d %s", w.Code, w.Body.String())
	}
	f.up.mu.Lock()
	reqs := slices.Clone(f.up.reqs)
	f.up.mu.Unlock()
	if len(reqs) != 2 {
		t.Fatalf("upstream saw %d requests, want the lookup and the metadata", len(reqs))
	}
	for _, r := range reqs {
		if r.Header.Get("traceparent") != tp {
			t.Errorf("%s reached the upstream without the caller's traceparent", r.URL.Path)
		}
	}
	if got := testutil.ToFloat64(f.h.tel.upstreamC.WithLabelValues(RouteMetadata, "200")); got != 2 {
		t.Errorf("upstream requests counted for metadata = %v, want 2", got)
	}
	f.h.inflight.max = 1
	cert := f.certs["alice"]
	alice := &authn.Identity{Method: authn.MethodMTLS, Issuer: cert.Issuer.String(), Subject: "alice"}
	f.h.inflight.n[bucketOf(alice, &authz.Decision{})] = 1
	if w := f.do(t, request{user: "alice", target: "/api/v1/metadata"}); w.Code != http.StatusTooManyRequests {
		t.Errorf("metadata with no slot free: %d, want 429 before any lookup", w.Code)
	}
	if f.up.count() != 2 {
		t.Errorf("upstream saw %d requests, want no new lookup", f.up.count())
	}
}
