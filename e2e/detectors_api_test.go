//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestDetectorsAPI exercises GET /api/promgate/v1/detectors[/<id>] through
// the main gateway and the real Prometheus: the catalog for every caller, an
// ns detector evaluated as a team (the query that reaches Prometheus is
// confined) and as the admin (unrestricted), a cluster detector refused for
// a team and nothing forwarded, and an unknown id.
func TestDetectorsAPI(t *testing.T) {
	const base = "/api/promgate/v1/detectors"
	t.Run("catalog", func(t *testing.T) {
		for _, who := range []caller{callerAdmin, callerTeamA} {
			res := who.client(t).do(t, request{path: base})
			if res.status != http.StatusOK {
				t.Fatalf("%s: want 200", res)
			}
			var list []map[string]any
			if err := dataOf(res.body, &list); err != nil {
				t.Fatalf("%s: %v", res, err)
			}
			if len(list) < 45 {
				t.Errorf("%s: %d detectors, want the 45 of the catalog", res, len(list))
			}
			for _, d := range list {
				if _, ok := d["state"]; ok && who.allowed != nil {
					// The evaluator runs unrestricted; its state is not shown
					// to a restricted caller.
					t.Errorf("%s: detector %v carries evaluator state for a restricted caller", res, d["id"])
				}
			}
			res.wantNotForwarded(t)
		}
	})
	t.Run("ns detector as team-a is confined", func(t *testing.T) {
		res := callerTeamA.client(t).do(t, request{path: base + "/pod_cpu_over_one_core"})
		if res.status != http.StatusOK {
			t.Fatalf("%s: want 200", res)
		}
		var data struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		}
		if err := dataOf(res.body, &data); err != nil || data.ResultType != "vector" {
			t.Fatalf("%s: want a vector (%v)", res, err)
		}
		res.checkForwardedConfined(t, callerTeamA.allowed, "/api/v1/query")
	})
	t.Run("ns detector as admin is not rewritten", func(t *testing.T) {
		res := callerAdmin.client(t).do(t, request{path: base + "/pod_cpu_over_one_core"})
		if res.status != http.StatusOK || len(res.fwd) != 1 {
			t.Fatalf("%s: want 200 and one upstream query", res)
		}
	})
	t.Run("cluster detector refused for team-a", func(t *testing.T) {
		res := callerTeamA.client(t).do(t, request{path: base + "/k8s_apiserver_unauthorized"})
		res.wantError(t, http.StatusForbidden, "forbidden")
		res.wantNotForwarded(t)
	})
	t.Run("unknown detector", func(t *testing.T) {
		res := callerAdmin.client(t).do(t, request{path: base + "/no_such_detector"})
		res.wantError(t, http.StatusNotFound, "not_found")
		res.wantNotForwarded(t)
	})
	t.Run("POST refused", func(t *testing.T) {
		res := callerAdmin.client(t).do(t, request{method: http.MethodPost, path: base})
		res.wantError(t, http.StatusMethodNotAllowed, "bad_data")
		res.wantNotForwarded(t)
	})
}
