package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/prometheus/common/model"
)

// Decision is the policy's answer for one request.
//
//	field    policy JSON                     missing means
//	Allow    "allow": bool (required)        the decision is malformed: deny
//	Reason   "reason": string                "allowed by policy" / "denied by policy"
//	Enforce  "enforce": {label: [string]}    unrestricted (only with allow: true)
//	Tenant   "tenant": string                no tenant
//	Limits   "limits": {max_range, ...}      the configured limits only
//
// Enforce, Tenant and Limits are set only when Allow is true. A label whose
// list is empty allows no value at all, so such a decision is turned into a
// denial rather than handed on as an empty (unrestricted-looking) set.
type Decision struct {
	// Allow says whether the request may go on.
	Allow bool `json:"allow"`
	// Reason is the policy author's explanation, returned as written. It is
	// shown to the caller and recorded in the audit log.
	Reason string `json:"reason"`
	// Enforce maps a label name to the values the caller may see, sorted and
	// without duplicates. Empty with Allow means unrestricted.
	Enforce map[string][]string `json:"enforce,omitempty"`
	// Tenant is the upstream tenant (for X-Scope-OrgID and alike), or "".
	Tenant string `json:"tenant,omitempty"`
	// Limits are per-decision query limits; zero fields are not set.
	Limits Limits `json:"limits,omitzero"`
}

// Limits are the query limits a decision may set. Zero means not set.
type Limits struct {
	MaxRange    time.Duration
	MaxLookback time.Duration
	MinStep     time.Duration
}

// MarshalJSON writes the limits as the policy writes them: Prometheus-style
// durations, set fields only.
func (l Limits) MarshalJSON() ([]byte, error) {
	m := map[string]string{}
	for _, f := range []struct {
		key string
		d   time.Duration
	}{{"max_range", l.MaxRange}, {"max_lookback", l.MaxLookback}, {"min_step", l.MinStep}} {
		if f.d != 0 {
			m[f.key] = model.Duration(f.d).String()
		}
	}
	return json.Marshal(m)
}

// Errors Decide returns, for errors.Is. Each comes with a denial whose Reason
// is the matching safe message below.
var (
	// ErrUndefined means the decision rule produced no value.
	ErrUndefined = errors.New("policy decision is undefined")
	// ErrEvaluation means evaluating the policy failed (a conflict, a
	// built-in error, a cancelled context).
	ErrEvaluation = errors.New("policy evaluation failed")
	// ErrMalformed means the decision does not have the shape DESIGN.md
	// fixes.
	ErrMalformed = errors.New("policy decision is malformed")
)

// Safe reasons for denials that the policy did not write. They carry no
// policy internals, since they reach the caller.
const (
	reasonUndefined  = "denied: the policy returned no decision"
	reasonEvaluation = "denied: the policy could not be evaluated"
	reasonMalformed  = "denied: the policy returned a malformed decision"
	reasonInput      = "denied: the request could not be described to the policy"
	reasonAllowed    = "allowed by policy"
	reasonDenied     = "denied by policy"
)

// maxTenantLength bounds a tenant ID; Mimir and Cortex accept up to 150.
const maxTenantLength = 150

// parseDecision turns the policy's value into a Decision. Unknown keys are
// refused: a misspelt "enforce" must not read as "unrestricted".
func parseDecision(v ast.Value) (Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("%w: got %s, want an object", ErrMalformed, ast.ValueName(v))
	}
	var (
		d        Decision
		hasAllow bool
		err      error
	)
	obj.Foreach(func(k, val *ast.Term) {
		if err != nil {
			return
		}
		key, ok := k.Value.(ast.String)
		if !ok {
			err = fmt.Errorf("%w: key %s is not a string", ErrMalformed, k)
			return
		}
		switch key {
		case "allow":
			b, ok := val.Value.(ast.Boolean)
			if !ok {
				err = fmt.Errorf(`%w: "allow" has type %s, want a boolean`, ErrMalformed, ast.ValueName(val.Value))
				return
			}
			d.Allow, hasAllow = bool(b), true
		case "reason":
			s, ok := val.Value.(ast.String)
			if !ok {
				err = fmt.Errorf(`%w: "reason" has type %s, want a string`, ErrMalformed, ast.ValueName(val.Value))
				return
			}
			d.Reason = string(s)
		case "enforce":
			d.Enforce, err = parseEnforce(val.Value)
		case "tenant":
			d.Tenant, err = parseTenant(val.Value)
		case "limits":
			d.Limits, err = parseLimits(val.Value)
		default:
			err = fmt.Errorf("%w: unknown key %q; a decision has allow, reason, enforce, tenant and limits", ErrMalformed, string(key))
		}
	})
	if err != nil {
		return Decision{}, err
	}
	if !hasAllow {
		return Decision{}, fmt.Errorf(`%w: "allow" is missing`, ErrMalformed)
	}
	if d.Allow {
		for label, values := range d.Enforce {
			if len(values) == 0 {
				return Decision{Reason: fmt.Sprintf("denied: the policy allows no value of label %q", label)}, nil
			}
		}
	}
	if !d.Allow {
		d = Decision{Reason: d.Reason}
	}
	if d.Reason == "" {
		d.Reason = reasonDenied
		if d.Allow {
			d.Reason = reasonAllowed
		}
	}
	return d, nil
}

func parseEnforce(v ast.Value) (map[string][]string, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf(`%w: "enforce" has type %s, want an object of string arrays`, ErrMalformed, ast.ValueName(v))
	}
	if obj.Len() == 0 {
		return nil, nil
	}
	enforce := make(map[string][]string, obj.Len())
	var err error
	obj.Foreach(func(k, val *ast.Term) {
		if err != nil {
			return
		}
		label, ok := k.Value.(ast.String)
		if !ok || label == "" || !utf8.ValidString(string(label)) {
			err = fmt.Errorf(`%w: "enforce" key %s is not a label name`, ErrMalformed, k)
			return
		}
		var values []string
		values, err = stringList(val.Value)
		if err != nil {
			err = fmt.Errorf(`%w: "enforce" label %q: %w`, ErrMalformed, string(label), err)
			return
		}
		enforce[string(label)] = values
	})
	if err != nil {
		return nil, err
	}
	return enforce, nil
}

// stringList accepts an array or a set of strings (a comprehension gives
// either) and returns them sorted, without duplicates, never nil.
func stringList(v ast.Value) ([]string, error) {
	var terms []*ast.Term
	switch x := v.(type) {
	case *ast.Array:
		terms = make([]*ast.Term, 0, x.Len())
		x.Foreach(func(t *ast.Term) { terms = append(terms, t) })
	case ast.Set:
		terms = x.Slice()
	default:
		return nil, fmt.Errorf("has type %s, want an array of strings", ast.ValueName(v))
	}
	values := make([]string, 0, len(terms))
	for _, t := range terms {
		s, ok := t.Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("value %s has type %s, want a string", t, ast.ValueName(t.Value))
		}
		if !utf8.ValidString(string(s)) {
			return nil, errors.New("value is not valid UTF-8")
		}
		values = append(values, string(s))
	}
	slices.Sort(values)
	return slices.Compact(values), nil
}

// parseTenant accepts printable ASCII without spaces, at most 150 bytes: the
// tenant goes into an HTTP header, so a CR, LF or other control character
// must never reach it.
func parseTenant(v ast.Value) (string, error) {
	s, ok := v.(ast.String)
	if !ok {
		return "", fmt.Errorf(`%w: "tenant" has type %s, want a string`, ErrMalformed, ast.ValueName(v))
	}
	if len(s) > maxTenantLength {
		return "", fmt.Errorf(`%w: "tenant" is longer than %d bytes`, ErrMalformed, maxTenantLength)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return "", fmt.Errorf(`%w: "tenant" holds a character outside printable ASCII`, ErrMalformed)
		}
	}
	return string(s), nil
}

func parseLimits(v ast.Value) (Limits, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Limits{}, fmt.Errorf(`%w: "limits" has type %s, want an object`, ErrMalformed, ast.ValueName(v))
	}
	var (
		l   Limits
		err error
	)
	obj.Foreach(func(k, val *ast.Term) {
		if err != nil {
			return
		}
		key, _ := k.Value.(ast.String)
		var dst *time.Duration
		switch key {
		case "max_range":
			dst = &l.MaxRange
		case "max_lookback":
			dst = &l.MaxLookback
		case "min_step":
			dst = &l.MinStep
		default:
			err = fmt.Errorf(`%w: "limits" key %s is unknown; use max_range, max_lookback or min_step`, ErrMalformed, k)
			return
		}
		s, ok := val.Value.(ast.String)
		if !ok {
			err = fmt.Errorf(`%w: "limits.%s" has type %s, want a duration string such as "7d"`, ErrMalformed, string(key), ast.ValueName(val.Value))
			return
		}
		d, perr := model.ParseDuration(string(s))
		if perr != nil {
			err = fmt.Errorf(`%w: "limits.%s": %w`, ErrMalformed, string(key), perr)
			return
		}
		*dst = time.Duration(d)
	})
	return l, err
}
