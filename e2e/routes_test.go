//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// caller is an identity of the default policy (policies/data.json).
type caller struct {
	name    string   // client certificate client-<name>
	allowed []string // namespaces it may read; nil for unrestricted
	own     string   // a namespace it must see
}

var (
	callerAdmin = caller{name: "admin"}
	callerTeamA = caller{name: "team-a", allowed: []string{nsTeamA, nsTeamAStage}, own: nsTeamA}
	callerTeamB = caller{name: "team-b", allowed: []string{nsTeamB}, own: nsTeamB}
)

func (c caller) client(t testing.TB) *client { return newClient(t, env.main, env.pki, c.name) }

func rangeParams(q string) url.Values {
	now := time.Now()
	return url.Values{
		"query": {q},
		"start": {strconv.FormatInt(now.Add(-20*time.Second).Unix(), 10)},
		"end":   {strconv.FormatInt(now.Unix(), 10)},
		"step":  {"2"},
	}
}

// TestRoutesConfineEachCaller runs every enforced route, GET and POST, as the
// admin and the two teams: the admin sees every namespace and the series
// without one, each team only its own, and what reaches the upstream is the
// enforced request.
func TestRoutesConfineEachCaller(t *testing.T) {
	post := http.MethodPost
	cases := []struct {
		name string
		req  request
		ex   extractor
		// adminSees is what the unrestricted caller must see; nil skips the
		// admin (requests Prometheus itself refuses without match[]).
		adminSees []string
		// ownOptional: the route may legitimately return nothing.
		ownOptional bool
	}{
		{name: "query GET", req: request{path: "/api/v1/query", query: url.Values{"query": {"up"}}}, ex: vectorNS, adminSees: allNamespaces},
		{name: "query POST", req: request{method: post, path: "/api/v1/query", form: url.Values{"query": {"up"}}}, ex: vectorNS, adminSees: allNamespaces},
		{name: "query aggregate", req: request{path: "/api/v1/query", query: url.Values{"query": {"count by (namespace) (up)"}}}, ex: vectorNS, adminSees: allNamespaces},
		{name: "query regex all", req: request{path: "/api/v1/query", query: url.Values{"query": {`up{namespace=~".+"}`}}}, ex: vectorNS, adminSees: []string{nsTeamA, nsTeamB, nsKube}},
		{name: "query_range GET", req: request{path: "/api/v1/query_range", query: rangeParams("up")}, ex: vectorNS, adminSees: allNamespaces},
		{name: "query_range POST", req: request{method: post, path: "/api/v1/query_range", form: rangeParams("up")}, ex: vectorNS, adminSees: allNamespaces},
		{name: "query_exemplars GET", req: request{path: "/api/v1/query_exemplars", query: rangeParams("up")}, ex: exemplarsNS, adminSees: []string{}, ownOptional: true},
		{name: "query_exemplars POST", req: request{method: post, path: "/api/v1/query_exemplars", form: rangeParams("up")}, ex: exemplarsNS, adminSees: []string{}, ownOptional: true},
		{name: "series GET", req: request{path: "/api/v1/series", query: url.Values{"match[]": {"up"}}}, ex: seriesNS, adminSees: allNamespaces},
		{name: "series two match[]", req: request{path: "/api/v1/series", query: url.Values{"match[]": {"up", "prometheus_build_info"}}}, ex: seriesNS, adminSees: allNamespaces},
		{name: "series POST", req: request{method: post, path: "/api/v1/series", form: url.Values{"match[]": {"up"}}}, ex: seriesNS, adminSees: allNamespaces},
		{name: "series without match[]", req: request{path: "/api/v1/series"}, ex: seriesNS},
		{name: "labels with match[]", req: request{path: "/api/v1/labels", query: url.Values{"match[]": {"up"}}}, ex: labelsNS, adminSees: allNamespaces},
		{name: "labels POST", req: request{method: post, path: "/api/v1/labels", form: url.Values{"match[]": {"up"}}}, ex: labelsNS, adminSees: allNamespaces},
		{name: "labels without match[]", req: request{path: "/api/v1/labels"}, ex: labelsNS, adminSees: allNamespaces},
		{name: "label namespace values", req: request{path: "/api/v1/label/namespace/values"}, ex: valuesNS, adminSees: []string{nsTeamA, nsTeamB, nsKube}},
		{name: "label namespace values with match[]", req: request{path: "/api/v1/label/namespace/values", query: url.Values{"match[]": {"up"}}}, ex: valuesNS, adminSees: []string{nsTeamA, nsTeamB, nsKube}},
		{name: "label job values", req: request{path: "/api/v1/label/job/values"}, ex: jobValuesNS, adminSees: allNamespaces},
		{name: "federate", req: request{path: "/federate", query: url.Values{"match[]": {"up"}}}, ex: federateNS, adminSees: allNamespaces},
		{name: "federate every metric", req: request{path: "/federate", query: url.Values{"match[]": {`{__name__=~"prometheus_build_info|up"}`}}}, ex: federateNS, adminSees: allNamespaces},
		{name: "federate without match[]", req: request{path: "/federate"}, ex: federateNS},
	}
	for _, who := range []caller{callerAdmin, callerTeamA, callerTeamB} {
		for _, tc := range cases {
			if who.allowed == nil && tc.adminSees == nil {
				continue
			}
			t.Run(who.name+"/"+tc.name, func(t *testing.T) {
				res := who.client(t).do(t, tc.req)
				own := who.own
				if tc.ownOptional {
					own = ""
				}
				res.checkSeen(t, tc.ex, who.allowed, own, tc.adminSees)
				if who.allowed != nil {
					res.checkForwardedConfined(t, who.allowed, tc.req.path)
				}
			})
		}
	}
}

// TestHealthCheckQuery is Grafana's datasource test: an expression without
// selectors is decided like any other query, so it works for every caller the
// policy allows, and a caller the policy gives nothing gets 403 (DESIGN.md
// "Query cost and limits").
func TestHealthCheckQuery(t *testing.T) {
	res := caller{name: "nobody"}.client(t).do(t, request{path: "/api/v1/query", query: url.Values{"query": {"1+1"}}})
	if res.status != http.StatusForbidden {
		t.Errorf("nobody: %s: want 403", res)
	}
	for _, who := range []caller{callerAdmin, callerTeamA, callerTeamB} {
		t.Run(who.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				req := request{method: method, path: "/api/v1/query"}
				params := url.Values{"query": {"1+1"}, "time": {"4"}}
				if method == http.MethodPost {
					req.form = params
				} else {
					req.query = params
				}
				res := who.client(t).do(t, req)
				if res.status != http.StatusOK {
					t.Fatalf("%s: want 200", res)
				}
				var d struct {
					ResultType string `json:"resultType"`
					Result     []any  `json:"result"`
				}
				if err := dataOf(res.body, &d); err != nil {
					t.Fatalf("%s: %v", res, err)
				}
				if d.ResultType != "scalar" || len(d.Result) != 2 || d.Result[1] != "2" {
					t.Errorf("%s: want scalar 2 at time 4", res)
				}
				if ts, ok := d.Result[0].(float64); !ok || ts != 4 {
					t.Errorf("%s: want time 4", res)
				}
			}
		})
	}
}

// TestRulesAndAlerts: the admin sees every rule and alert; a team sees only
// the groups, rules and alerts whose labels are its own. The real Prometheus
// has an always-firing alert in team-b.
func TestRulesAndAlerts(t *testing.T) {
	for _, path := range []string{"/api/v1/rules", "/api/v1/alerts", "/api/v1/alerts/"} {
		t.Run("admin"+path, func(t *testing.T) {
			res := callerAdmin.client(t).do(t, request{path: path})
			if path == "/api/v1/alerts/" {
				// By route, not by path string: a trailing slash is no route.
				res.wantError(t, http.StatusNotFound, "not_found")
				res.wantNotForwarded(t)
				return
			}
			if res.status != http.StatusOK {
				t.Fatalf("%s: want 200", res)
			}
			var raw json.RawMessage
			if err := dataOf(res.body, &raw); err != nil {
				t.Errorf("%s: %v", res, err)
			}
			if len(res.fwd) != 1 || res.fwd[0].Path != path {
				t.Errorf("%s: want one upstream request to %s, got %d", res, path, len(res.fwd))
			}
			if !bytes.Contains(res.body, []byte("E2ETeamBAlwaysFiring")) {
				t.Errorf("%s: the admin should see team-b's alert", res)
			}
		})
		if path == "/api/v1/alerts/" {
			continue
		}
		for _, who := range []caller{callerTeamA, callerTeamB} {
			t.Run(who.name+path, func(t *testing.T) {
				res := who.client(t).do(t, request{path: path})
				if res.status != http.StatusOK {
					t.Fatalf("%s: want 200", res)
				}
				sawB := bytes.Contains(res.body, []byte("E2ETeamBAlwaysFiring"))
				if who.own == nsTeamB && !sawB {
					t.Errorf("%s: team-b should see its own alert", res)
				}
				if who.own != nsTeamB && (sawB || bytes.Contains(res.body, []byte(`"team-b"`))) {
					t.Errorf("%s: team-b's rule or alert leaked to %s", res, who.name)
				}
			})
		}
	}
}
