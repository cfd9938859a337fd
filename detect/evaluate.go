package detect

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
)

// Querier runs an instant query against a Prometheus-compatible API.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time) (model.Vector, error)
}

// Kind classifies an *Error for the HTTP layer.
type Kind int

const (
	// NotFound means no detector has the id (404).
	NotFound Kind = iota + 1
	// Forbidden means the detector cannot run for a restricted caller (403).
	Forbidden
	// Upstream means the upstream query failed or answered something other
	// than a vector (502).
	Upstream
)

func (k Kind) String() string {
	switch k {
	case NotFound:
		return "not found"
	case Forbidden:
		return "forbidden"
	case Upstream:
		return "upstream"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Error is a refusal or failure of Evaluate. Msg is safe to show the caller;
// Err, if any, is for logs only (it may name the upstream).
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Evaluate runs detector id now and returns the series it flags.
//
// rewrite is the caller's enforcement: nil means the caller is unrestricted
// and the query runs as written. For a restricted caller, detectors of scope
// cluster or ns*, and any detector using absent(), are refused with an *Error
// of kind Forbidden: under a label matcher they would return nothing, or fire
// because enforcement hid a series, and either would be a lie. ns detectors
// run with rewrite applied to the query before it is sent. An error from
// rewrite is returned wrapped, unchanged for errors.As.
func (c *Catalog) Evaluate(ctx context.Context, id string, rewrite func(string) (string, error), q Querier) (model.Vector, error) {
	d, ok := c.Get(id)
	if !ok {
		return nil, &Error{Kind: NotFound, Msg: fmt.Sprintf("no detector %q; promgate detectors list shows the catalog", id)}
	}
	query := d.Expr
	if rewrite != nil {
		if msg := d.restrictedRefusal(); msg != "" {
			return nil, &Error{Kind: Forbidden, Msg: msg}
		}
		rewritten, err := rewrite(query)
		if err != nil {
			return nil, fmt.Errorf("enforce detector %s: %w", id, err)
		}
		query = rewritten
	}
	vec, err := q.Query(ctx, query, time.Now())
	if err != nil {
		return nil, &Error{Kind: Upstream, Msg: fmt.Sprintf("evaluate detector %s: upstream query failed", id), Err: err}
	}
	return vec, nil
}

// RestrictedOK reports whether d may run for a caller whose queries are
// confined by enforcement.
func (d Detector) RestrictedOK() bool { return d.restrictedRefusal() == "" }

func (d Detector) restrictedRefusal() string {
	switch {
	case d.UsesAbsent:
		return fmt.Sprintf("detector %s uses absent(), which fires whenever enforcement hides a series; it runs only for callers with unrestricted access", d.ID)
	case d.Scope == ScopeCluster:
		return fmt.Sprintf("detector %s reads cluster-wide metrics (scope cluster) and runs only for callers with unrestricted access", d.ID)
	case d.Scope == ScopeExportedNamespace:
		return fmt.Sprintf("detector %s reads the object's namespace from exported_namespace (scope ns*), which namespace enforcement cannot confine reliably; it runs only for callers with unrestricted access", d.ID)
	case d.Scope != ScopeNamespace:
		return fmt.Sprintf("detector %s has scope %q and runs only for callers with unrestricted access", d.ID, d.Scope)
	}
	return ""
}

// State is a detector's current state in the background evaluator.
type State struct {
	// State is inactive, pending or firing; unknown before the first
	// successful evaluation.
	State string `json:"state"`
	// Active counts the detector's pending and firing alerts.
	Active int `json:"active"`
	// Firing counts its firing alerts.
	Firing int `json:"firing"`
	// LastEvaluation is when the detector was last evaluated successfully.
	LastEvaluation time.Time `json:"last_evaluation,omitzero"`
	// LastError is set while the latest evaluation failed. It never names
	// the upstream; the gateway log has the detail.
	LastError string `json:"last_error,omitempty"`
}

// States of a detector.
const (
	StateUnknown  = "unknown"
	StateInactive = "inactive"
	StatePending  = "pending"
	StateFiring   = "firing"
)

// Summary is the JSON view of one detector for GET /api/promgate/v1/detectors.
type Summary struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Severity    string   `json:"severity"`
	Attack      []string `json:"attack"`
	Sources     []string `json:"sources"`
	Requires    string   `json:"requires,omitempty"`
	Scope       string   `json:"scope"`
	Query       string   `json:"query"`
	For         string   `json:"for"`
	Runbook     string   `json:"runbook"`
	// Restricted reports whether the detector may be evaluated for a caller
	// whose queries are confined by enforcement.
	Restricted bool `json:"restricted_ok"`
	// State is the background evaluator's state, present only when the
	// caller passed one.
	State *State `json:"state,omitempty"`
}

// Summaries returns the catalog as JSON-ready summaries. state, from
// Evaluator.State, is attached per detector when non-nil; the evaluator runs
// unrestricted, so pass nil for callers that must not learn about series
// outside their enforcement.
func (c *Catalog) Summaries(state map[string]State) []Summary {
	out := make([]Summary, 0, len(c.detectors))
	for _, d := range c.detectors {
		s := Summary{
			ID: d.ID, Title: d.Title, Description: d.Description, Severity: d.Severity,
			Attack: d.Attack, Sources: d.Sources, Requires: d.Requires, Scope: d.Scope,
			Query: d.Expr, For: d.forString(), Runbook: d.Runbook,
			Restricted: d.RestrictedOK(),
		}
		if s.Attack == nil {
			s.Attack = []string{}
		}
		if state != nil {
			st, ok := state[d.ID]
			if !ok {
				st = State{State: StateUnknown}
			}
			s.State = &st
		}
		out = append(out, s)
	}
	return out
}
