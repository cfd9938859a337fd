package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/promgate/promgate/config"
)

// TestUnknownParamsDropped: a parameter the route does not take is dropped,
// never forwarded, counted by route and name, and named in the audit record,
// as Prometheus itself ignores what it does not know. Grafana's custom query
// parameters and nocache then work unchanged.
func TestUnknownParamsDropped(t *testing.T) {
	f := newFixture(t)
	w := f.do(t, request{user: "alice", target: "/api/v1/query?query=up&nocache=1&namespace=b&namespace=c&engine=thanos"})
	if w.Code != 200 {
		t.Fatalf("status %d %s, want 200", w.Code, w.Body.String())
	}
	r, _ := f.up.last()
	for _, k := range []string{"nocache", "namespace", "engine"} {
		if r.URL.Query().Has(k) {
			t.Errorf("%s reached the upstream: %s", k, r.URL.RawQuery)
		}
	}
	if got := r.URL.Query().Get("query"); got != `up{namespace="a"}` {
		t.Errorf("forwarded query %q", got)
	}
	rec := f.aud.records[len(f.aud.records)-1]
	if strings.Join(rec.DroppedParams, ",") != "engine,namespace,nocache" {
		t.Errorf("audit dropped_params = %q", rec.DroppedParams)
	}
	if got := testutil.ToFloat64(f.h.m.dropped.c.WithLabelValues(RouteQuery, "namespace")); got != 1 {
		t.Errorf("promgate_dropped_params_total{route=query,param=namespace} = %v, want 1", got)
	}
	// A POST form drops the same way.
	w = f.do(t, request{user: "alice", method: "POST", target: "/api/v1/query", body: "query=up&custom=x", contentType: "application/x-www-form-urlencoded"})
	if w.Code != 200 {
		t.Fatalf("POST: status %d", w.Code)
	}
	if _, body := f.up.last(); strings.Contains(body, "custom") {
		t.Errorf("POST forwarded %q", body)
	}
}

// TestDroppedParamNamesCapped: callers inventing names cannot grow the
// gateway's metrics past maxDroppedNames label values.
func TestDroppedParamNamesCapped(t *testing.T) {
	f := newFixture(t)
	for i := range maxDroppedNames + 50 {
		f.h.m.dropped.add(RouteQuery, []string{"p" + strings.Repeat("x", i%70) + string(rune('a'+i%26)) + url.QueryEscape(string(rune(i)))})
	}
	f.h.m.dropped.add(RouteQuery, []string{"bad name", strings.Repeat("y", 65)})
	if n := testutil.CollectAndCount(f.h.m.dropped.c); n > maxDroppedNames+1 {
		t.Errorf("%d series, want at most %d names plus other", n, maxDroppedNames)
	}
	if got := testutil.ToFloat64(f.h.m.dropped.c.WithLabelValues(RouteQuery, "other")); got < 2 {
		t.Errorf("other = %v, want the invalid and overflowing names", got)
	}
}

// TestThanosParams: with upstream.flavor thanos the Thanos Query parameters
// are forwarded once their values check out; a bad value is 400, and
// storeMatch[] is refused rather than dropped or forwarded. With the default
// flavor they are dropped like any unknown parameter.
func TestThanosParams(t *testing.T) {
	good := "/api/v1/query?query=up&dedup=true&partial_response=false&replicaLabels[]=replica&replicaLabels[]=rule_replica&engine=thanos&analyze=1&max_source_resolution=auto"
	f := newFixture(t)
	if w := f.do(t, request{user: "alice", target: good}); w.Code != 200 {
		t.Fatalf("prometheus flavor: %d", w.Code)
	}
	if r, _ := f.up.last(); r.URL.Query().Has("dedup") || r.URL.Query().Has("replicaLabels[]") {
		t.Errorf("prometheus flavor forwarded Thanos parameters: %s", r.URL.RawQuery)
	}

	f = newFixture(t)
	f.h.cfg.Upstream.Flavor = config.FlavorThanos
	if w := f.do(t, request{user: "alice", target: good}); w.Code != 200 {
		t.Fatalf("thanos flavor: %d %s", w.Code, w.Body.String())
	}
	r, _ := f.up.last()
	q := r.URL.Query()
	if q.Get("dedup") != "true" || len(q["replicaLabels[]"]) != 2 || q.Get("engine") != "thanos" || q.Get("max_source_resolution") != "auto" {
		t.Errorf("thanos flavor forwarded %s", r.URL.RawQuery)
	}
	if q.Get("query") != `up{namespace="a"}` {
		t.Errorf("thanos flavor query %q, want it confined", q.Get("query"))
	}
	for _, bad := range []string{
		"dedup=maybe", "partial_response=2", "engine=other", "replicaLabels[]=a-b", "max_source_resolution=soon", "analyze=",
	} {
		w := f.do(t, request{user: "alice", target: "/api/v1/query?query=up&" + bad})
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, w.Code)
		}
	}
	w := f.do(t, request{user: "alice", target: "/api/v1/series?match[]=up&storeMatch[]=" + url.QueryEscape(`{__address__="b"}`)})
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "storeMatch") {
		t.Errorf("storeMatch[]: status %d %s, want 400 naming it", w.Code, w.Body.String())
	}
	if w := f.do(t, request{user: "alice", target: "/api/v1/labels?partial_response=true"}); w.Code != 200 {
		t.Errorf("labels with partial_response: %d", w.Code)
	} else if r, _ := f.up.last(); r.URL.Query().Get("partial_response") != "true" {
		t.Errorf("labels forwarded %s", r.URL.RawQuery)
	}
}
