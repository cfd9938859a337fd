package authz

import (
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Alertmanager operations, input.alertmanager.operation.
const (
	// AMCreate is a new silence (POST /api/v2/silences without an id).
	AMCreate = "create"
	// AMUpdate replaces an existing silence (POST with an id).
	AMUpdate = "update"
	// AMExpire expires a silence (DELETE /api/v2/silence/{id}).
	AMExpire = "expire"
	// AMPush is a sender pushing alerts (POST /api/v2/alerts).
	AMPush = "push"
)

// Alertmanager is what a silence or alert push puts before the policy, as
// input.alertmanager:
//
//	operation  create | update | expire | push
//	silence    the silence as the caller sent it (create, update), or
//	           {id} alone (expire)
//	existing   the silence an update or expire replaces, as the gateway
//	           read it from the Alertmanager; absent on the first decision
//	alerts     [{labels}] of a push
//
// A silence is {id, matchers: [{name, type, value}], comment, created_by,
// starts_at, ends_at (RFC 3339), duration_seconds}; type is =, !=, =~ or
// !~. The policy is asked once before the gateway reads an existing
// silence (which it reads with the decision's tenant) and once after, with
// existing set: both must allow.
type Alertmanager struct {
	Operation string
	Silence   *Silence
	Existing  *Silence
	Alerts    []map[string]string
}

// Silence is an Alertmanager silence as the policy sees it.
type Silence struct {
	ID        string
	Matchers  []Matcher
	Comment   string
	CreatedBy string
	StartsAt  time.Time
	EndsAt    time.Time
}

var keyAlertmanager = ast.StringTerm("alertmanager")

func (s *Silence) doc() map[string]any {
	ms := make([]any, len(s.Matchers))
	for i, m := range s.Matchers {
		ms[i] = map[string]any{"name": m.Name, "type": m.Type, "value": m.Value}
	}
	d := map[string]any{
		"id": s.ID, "matchers": ms, "comment": s.Comment, "created_by": s.CreatedBy,
		"starts_at": "", "ends_at": "", "duration_seconds": 0,
	}
	if !s.StartsAt.IsZero() && !s.EndsAt.IsZero() {
		d["starts_at"] = s.StartsAt.UTC().Format(time.RFC3339Nano)
		d["ends_at"] = s.EndsAt.UTC().Format(time.RFC3339Nano)
		d["duration_seconds"] = s.EndsAt.Sub(s.StartsAt).Seconds()
	}
	return d
}

// value builds input.alertmanager.
func (a *Alertmanager) value() (ast.Value, error) {
	d := map[string]any{"operation": a.Operation}
	if a.Silence != nil {
		d["silence"] = a.Silence.doc()
	}
	if a.Existing != nil {
		d["existing"] = a.Existing.doc()
	}
	if a.Alerts != nil {
		alerts := make([]any, len(a.Alerts))
		for i, ls := range a.Alerts {
			m := make(map[string]any, len(ls))
			for k, v := range ls {
				m[k] = v
			}
			alerts[i] = map[string]any{"labels": m}
		}
		d["alerts"] = alerts
	}
	v, err := ast.InterfaceToValue(d)
	if err != nil {
		return nil, fmt.Errorf("convert alertmanager input: %w", err)
	}
	return v, nil
}
