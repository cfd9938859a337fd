package authz

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/promgate/promgate/authn"
)

// TestInputAlertmanager checks input.alertmanager as the policy sees it,
// and that such an input is never cached.
func TestInputAlertmanager(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := Input{
		Identity: &authn.Identity{Method: authn.MethodMTLS, Subject: "alice", Groups: []string{"team-a"}},
		Request:  Request{Method: "DELETE", Path: "/api/v2/silence/x", Route: "am_silence"},
		Alertmanager: &Alertmanager{
			Operation: AMExpire,
			Silence:   &Silence{ID: "x"},
			Existing: &Silence{ID: "x", Matchers: []Matcher{{Name: "namespace", Type: "=", Value: "team-a"}},
				Comment: "c", CreatedBy: "bob", StartsAt: start, EndsAt: start.Add(25 * time.Hour)},
		},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Alertmanager map[string]any `json:"alertmanager"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"operation": "expire",
		"silence":   map[string]any{"id": "x", "matchers": []any{}, "comment": "", "created_by": "", "starts_at": "", "ends_at": "", "duration_seconds": float64(0)},
		"existing": map[string]any{
			"id": "x", "matchers": []any{map[string]any{"name": "namespace", "type": "=", "value": "team-a"}},
			"comment": "c", "created_by": "bob", "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-02T01:00:00Z",
			"duration_seconds": float64(90000),
		},
	}
	if diff := cmp.Diff(want, doc.Alertmanager); diff != "" {
		t.Errorf("input.alertmanager (-want +got):\n%s", diff)
	}
	if _, ok := cacheKey(in); ok {
		t.Error("an input with a silence has a cache key")
	}
	in.Alertmanager = &Alertmanager{Operation: AMPush, Alerts: []map[string]string{{"alertname": "X"}}}
	b, err = json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	doc.Alertmanager = nil
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"operation": "push", "alerts": []any{map[string]any{"labels": map[string]any{"alertname": "X"}}}}, doc.Alertmanager); diff != "" {
		t.Errorf("input.alertmanager of a push (-want +got):\n%s", diff)
	}
}
