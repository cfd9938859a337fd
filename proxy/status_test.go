package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
)

// statusUpstream answers the status routes as Prometheus would, and records
// what reached it.
type statusUpstream struct {
	mu   sync.Mutex
	reqs []*http.Request
}

const testTargets = `{"status":"success","data":{"activeTargets":[` +
	`{"discoveredLabels":{"__address__":"10.0.0.1:80","__meta_kubernetes_pod_annotation_x":"secret-a"},"labels":{"instance":"10.0.0.1:80","job":"a","namespace":"a"},"scrapePool":"a","scrapeUrl":"http://10.0.0.1:80/metrics","health":"up"},` +
	`{"discoveredLabels":{"__address__":"10.0.0.2:80"},"labels":{"instance":"10.0.0.2:80","job":"b","namespace":"b"},"scrapePool":"b","scrapeUrl":"http://10.0.0.2:80/metrics","health":"up"}],` +
	`"droppedTargets":[{"discoveredLabels":{"__address__":"10.0.0.3:80","namespace":"a"}}]}}`

const testStatus = `{"status":"success","data":{"headStats":{"numSeries":42},"yaml":"scrape_configs: [team-b]"}}`

func (u *statusUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	u.mu.Lock()
	u.reqs = append(u.reqs, r)
	u.mu.Unlock()
	body := testStatus
	if r.URL.Path == "/api/v1/targets" {
		body = testTargets
	}
	return &http.Response{
		StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r,
	}, nil
}

func (u *statusUpstream) all() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.reqs)
}

// routeRecorder records the route of every policy input.
type routeRecorder struct {
	Decider
	mu     sync.Mutex
	routes []string
}

func (d *routeRecorder) Decide(ctx context.Context, in authz.Input) (authz.Decision, error) {
	d.mu.Lock()
	d.routes = append(d.routes, in.Request.Route)
	d.mu.Unlock()
	return d.Decider.Decide(ctx, in)
}

var statusPaths = map[string]string{
	RouteBuildInfo:   "/api/v1/status/buildinfo",
	RouteRuntimeInfo: "/api/v1/status/runtimeinfo",
	RouteFlags:       "/api/v1/status/flags",
	RouteTSDB:        "/api/v1/status/tsdb",
	RouteConfig:      "/api/v1/status/config",
	RouteWALReplay:   "/api/v1/status/walreplay",
	RouteTargets:     "/api/v1/targets",
}

// TestStatusRoutesTable: the configuration's status names and the route
// table's status routes are the same set, each at its path, each a route
// name of Routes.
func TestStatusRoutesTable(t *testing.T) {
	var names []string
	for path, rt := range routes {
		if !rt.status {
			continue
		}
		names = append(names, rt.name)
		if statusPaths[rt.name] != path {
			t.Errorf("status route %s at %s, want %s", rt.name, path, statusPaths[rt.name])
		}
		if !slices.Contains(Routes, rt.name) {
			t.Errorf("status route %s is not in Routes", rt.name)
		}
		if rt.kind != kindPlain || !slices.Equal(rt.methods, getOnly) {
			t.Errorf("status route %s: kind %d, methods %v; want plain, GET", rt.name, rt.kind, rt.methods)
		}
	}
	slices.Sort(names)
	want := slices.Sorted(slices.Values(config.StatusRoutes))
	if !slices.Equal(names, want) {
		t.Errorf("status routes %v, configuration accepts %v", names, want)
	}
}

// TestStatusRoutesOff: with the default routes.status only buildinfo is
// served; the others are not found, as a path never served, and reach
// neither the policy nor the upstream. A list without buildinfo turns it
// off too.
func TestStatusRoutesOff(t *testing.T) {
	up := &statusUpstream{}
	f := newFixtureTransport(t, up)
	dec := &routeRecorder{Decider: f.h.authz}
	f.h.authz = dec
	if w := f.do(t, request{user: "alice", target: "/api/v1/status/buildinfo"}); w.Code != http.StatusOK {
		t.Errorf("default buildinfo: %d %s", w.Code, w.Body.String())
	}
	for name, path := range statusPaths {
		if name == RouteBuildInfo {
			continue
		}
		w := f.do(t, request{user: "root", target: path})
		if w.Code != http.StatusNotFound {
			t.Errorf("%s with the default routes.status: %d, want 404", path, w.Code)
			continue
		}
		if errType, msg := errorBody(t, w); errType != "not_found" || !strings.Contains(msg, "not served") {
			t.Errorf("%s: %s %q, want the unknown route's not_found", path, errType, msg)
		}
		rec := f.aud.records[len(f.aud.records)-1]
		if rec.Route != RouteUnknown || rec.Decision != nil {
			t.Errorf("%s audited as route %q with decision %v, want unknown and none", path, rec.Route, rec.Decision)
		}
	}
	if got := dec.routes; !slices.Equal(got, []string{RouteBuildInfo}) {
		t.Errorf("the policy was asked about %v, want buildinfo only", got)
	}
	if n := len(up.all()); n != 1 {
		t.Errorf("%d upstream requests, want 1 (buildinfo)", n)
	}

	f.h.cfg.Routes.Status = []string{RouteTargets}
	if w := f.do(t, request{user: "root", target: "/api/v1/status/buildinfo"}); w.Code != http.StatusNotFound {
		t.Errorf("buildinfo left out of routes.status: %d, want 404", w.Code)
	}
	f.h.cfg.Routes.Status = nil
	if w := f.do(t, request{user: "root", target: "/api/v1/status/buildinfo"}); w.Code != http.StatusNotFound {
		t.Errorf("buildinfo with routes.status empty: %d, want 404", w.Code)
	}
}

// TestStatusRoutesOn: every status route asks the policy under its own
// name. An unrestricted caller gets the upstream's answer as is; a confined
// caller gets buildinfo, its own targets without discovered labels, and 403
// on the routes that describe the whole server, which never reach the
// upstream; a caller the policy denies gets the policy's 403.
func TestStatusRoutesOn(t *testing.T) {
	up := &statusUpstream{}
	f := newFixtureTransport(t, up)
	f.h.cfg.Routes.Status = slices.Clone(config.StatusRoutes)
	dec := &routeRecorder{Decider: f.h.authz}
	f.h.authz = dec
	for name, path := range statusPaths {
		t.Run(name, func(t *testing.T) {
			dec.routes = nil
			n := len(up.all())
			w := f.do(t, request{user: "root", target: path})
			if w.Code != http.StatusOK {
				t.Fatalf("root: %d %s", w.Code, w.Body.String())
			}
			want := testStatus
			if name == RouteTargets {
				want = testTargets
			}
			if w.Body.String() != want {
				t.Errorf("root got %s, want the upstream's body unchanged", w.Body.String())
			}
			reqs := up.all()
			if len(reqs) != n+1 || reqs[n].URL.Path != path {
				t.Fatalf("root: upstream requests %d, want one to %s", len(reqs)-n, path)
			}
			if !slices.Equal(dec.routes, []string{name}) {
				t.Errorf("policy asked about routes %v, want [%s]", dec.routes, name)
			}

			n = len(up.all())
			w = f.do(t, request{user: "alice", target: path})
			rec := f.aud.records[len(f.aud.records)-1]
			switch name {
			case RouteBuildInfo:
				if w.Code != http.StatusOK || w.Body.String() != testStatus {
					t.Errorf("alice: %d %s, want the upstream's answer", w.Code, w.Body.String())
				}
			case RouteTargets:
				if w.Code != http.StatusOK {
					t.Fatalf("alice: %d %s", w.Code, w.Body.String())
				}
				var body struct {
					Data struct {
						Active  []map[string]json.RawMessage `json:"activeTargets"`
						Dropped []json.RawMessage            `json:"droppedTargets"`
					} `json:"data"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
					t.Fatal(err)
				}
				if len(body.Data.Active) != 1 || len(body.Data.Dropped) != 0 {
					t.Errorf("alice's targets %s, want namespace a's only and no dropped target", w.Body.String())
				}
				for _, leak := range []string{"discoveredLabels", "secret-a", `"b"`, "10.0.0.2", "10.0.0.3"} {
					if strings.Contains(w.Body.String(), leak) {
						t.Errorf("alice's targets contain %q: %s", leak, w.Body.String())
					}
				}
			default:
				if w.Code != http.StatusForbidden {
					t.Fatalf("alice: %d %s, want 403", w.Code, w.Body.String())
				}
				errType, msg := errorBody(t, w)
				if errType != "forbidden" || !strings.Contains(msg, "alice") || !strings.Contains(msg, path) ||
					!strings.Contains(msg, "unrestricted callers only") {
					t.Errorf("alice: %s %q, want a forbidden naming the route and the caller", errType, msg)
				}
				if len(up.all()) != n {
					t.Error("a confined caller's request reached the upstream")
				}
				if rec.Decision == nil || !rec.Decision.Allow || rec.Status != http.StatusForbidden || rec.Error == "" {
					t.Errorf("audit: decision %+v, status %d, error %q; want the allowing decision, 403 and why", rec.Decision, rec.Status, rec.Error)
				}
			}
			if rec.Route != name {
				t.Errorf("audited route %q, want %q", rec.Route, name)
			}

			w = f.do(t, request{user: "mallory", target: path})
			if w.Code != http.StatusForbidden {
				t.Errorf("mallory: %d, want the policy's 403", w.Code)
			}
		})
	}
}

// TestStatusRouteParams: targets forwards state and scrapePool, tsdb its
// limit; every other parameter is dropped.
func TestStatusRouteParams(t *testing.T) {
	up := &statusUpstream{}
	f := newFixtureTransport(t, up)
	f.h.cfg.Routes.Status = slices.Clone(config.StatusRoutes)
	for _, tc := range []struct{ target, forwarded string }{
		{"/api/v1/targets?state=active&scrapePool=a&namespace=b", "scrapePool=a&state=active"},
		{"/api/v1/status/tsdb?limit=5&match[]=up", "limit=5"},
		{"/api/v1/status/flags?x=1", ""},
	} {
		if w := f.do(t, request{user: "root", target: tc.target}); w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.target, w.Code, w.Body.String())
		}
		reqs := up.all()
		if got := reqs[len(reqs)-1].URL.RawQuery; got != tc.forwarded {
			t.Errorf("%s forwarded %q, want %q", tc.target, got, tc.forwarded)
		}
	}
	if w := f.do(t, request{user: "root", method: http.MethodPost, target: "/api/v1/targets"}); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST targets: %d, want 405", w.Code)
	}
}
