package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
)

// upstreamDecider picks the upstream by the caller's subject.
type upstreamDecider struct{}

func (upstreamDecider) Decide(_ context.Context, in authz.Input) (authz.Decision, error) {
	d := authz.Decision{Allow: true}
	switch in.Identity.Subject {
	case "root":
		d.Upstream = "global"
	case "alice":
		d.Upstream, d.Tenant = "tenants", "a"
		d.Enforce = map[string][]string{"namespace": {"a"}}
	case "bob":
		d.Upstream = "nope"
	}
	d.Revision = "rev1"
	return authz.Compile(d)
}

func recordingServer(t *testing.T) (*httptest.Server, *upstreamLog) {
	t.Helper()
	log := &upstreamLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		log.mu.Lock()
		log.reqs = append(log.reqs, r)
		log.body = append(log.body, string(b))
		log.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	}))
	t.Cleanup(srv.Close)
	return srv, log
}

// TestNamedUpstreams checks that the decision picks the upstream by name,
// each with its own token, tenant header and flavour; that an unknown name
// is a denial with nothing forwarded; and that no client tenant header
// reaches any upstream.
func TestNamedUpstreams(t *testing.T) {
	f := newFixture(t)
	global, globalLog := recordingServer(t)
	tenants, tenantsLog := recordingServer(t)
	dir := t.TempDir()
	token := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := *f.h.cfg
	cfg.Upstreams = map[string]config.Upstream{
		"global":  {URL: global.URL, Kind: config.KindPrometheusAPI, Flavor: config.FlavorThanos, BearerTokenFile: token("g", "global-token")},
		"tenants": {URL: tenants.URL, Kind: config.KindPrometheusAPI, Flavor: config.FlavorPrometheus, BearerTokenFile: token("t", "tenants-token"), TenantHeader: "THANOS-TENANT"},
	}
	h, err := New(Options{Config: &cfg, Authn: f.h.authn, Authz: upstreamDecider{}, Audit: f.aud,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(),
		UpstreamToken: func() string { return "default-token" }})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	spoof := map[string]string{"THANOS-TENANT": "b", "X-Scope-OrgID": "b", "Thanos-Tenant": "b"}
	target := "/api/v1/query?query=up&dedup=false"

	if w := f.do(t, request{user: "root", target: target, header: spoof}); w.Code != http.StatusOK {
		t.Fatalf("admin to global: %d %s", w.Code, w.Body.String())
	}
	r, _ := globalLog.last()
	if r == nil || r.Header.Get("Authorization") != "Bearer global-token" || r.URL.Query().Get("dedup") != "false" {
		t.Errorf("global got %v", r)
	}
	if r != nil && (r.Header.Get("THANOS-TENANT") != "" || r.Header.Get("X-Scope-OrgID") != "") {
		t.Errorf("a client's tenant header reached the global upstream: %v", r.Header)
	}

	if w := f.do(t, request{user: "alice", target: target, header: spoof}); w.Code != http.StatusOK {
		t.Fatalf("team-a to tenants: %d %s", w.Code, w.Body.String())
	}
	r, _ = tenantsLog.last()
	switch {
	case r == nil:
		t.Fatal("tenants got nothing")
	case r.Header.Get("Authorization") != "Bearer tenants-token":
		t.Errorf("tenants Authorization %q", r.Header.Get("Authorization"))
	case !slices.Equal(r.Header.Values("Thanos-Tenant"), []string{"a"}) || r.Header.Get("X-Scope-OrgID") != "":
		t.Errorf("tenants headers %v, want THANOS-TENANT: a alone", r.Header)
	case r.URL.Query().Has("dedup"):
		t.Errorf("a Thanos parameter reached the prometheus-flavoured upstream: %s", r.URL.RawQuery)
	case r.URL.Query().Get("query") != `up{namespace="a"}`:
		t.Errorf("tenants query %q", r.URL.Query().Get("query"))
	}
	if rec := f.aud.records[len(f.aud.records)-1]; !slices.Contains(rec.DroppedParams, "dedup") {
		t.Errorf("dropped params %q, want dedup", rec.DroppedParams)
	}

	before := f.up.count() + globalLog.count() + tenantsLog.count()
	w := f.do(t, request{user: "bob", target: target})
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "names an upstream this gateway does not have") {
		t.Errorf("unknown upstream: %d %s", w.Code, w.Body.String())
	}
	if strings.Contains(w.Body.String(), "nope") {
		t.Errorf("the error names the upstream: %s", w.Body.String())
	}
	if after := f.up.count() + globalLog.count() + tenantsLog.count(); after != before {
		t.Errorf("%d requests forwarded for an unknown upstream", after-before)
	}

	if w := f.do(t, request{user: "mallory", target: target, header: spoof}); w.Code != http.StatusOK {
		t.Fatalf("default upstream: %d %s", w.Code, w.Body.String())
	}
	r, _ = f.up.last()
	if r == nil || r.Header.Get("Authorization") != "Bearer default-token" || r.Header.Get("THANOS-TENANT") != "" || r.Header.Get("X-Scope-OrgID") != "" {
		t.Errorf("default upstream got %v", r)
	}
}

func TestNamedUpstreamsConfig(t *testing.T) {
	f := newFixture(t)
	cfg := *f.h.cfg
	cfg.Upstreams = map[string]config.Upstream{"x": {URL: "http://127.0.0.1:1", BearerTokenFile: filepath.Join(t.TempDir(), "missing")}}
	_, err := New(Options{Config: &cfg, Authn: f.h.authn, Authz: upstreamDecider{}, Audit: f.aud,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	if err == nil || !strings.HasPrefix(err.Error(), "upstreams.x: ") {
		t.Errorf("New with a missing token file = %v", err)
	}
}
