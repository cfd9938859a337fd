package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/enforce"
)

// Decision is the policy's answer for one request.
//
//	field         policy JSON                          missing means
//	Allow         "allow": bool (required)             the decision is malformed: deny
//	Reason        "reason": string                     "allowed by policy" / "denied by policy"
//	Enforce       "enforce": {label: [string]}         no literal confinement
//	EnforceRegex  "enforce_regex": {label: [string]}   no regex confinement
//	Matchers      "matchers": [string]                 no extra constraint
//	Tenant        "tenant": string                     no tenant
//	RateKey       "rate_key": string                   a rate bucket per identity
//	Upstream      "upstream": string                   the default upstream
//	Limits        "limits": {max_range, ...}           the configured limits only
//	Receivers     "receivers": [string]                a confined caller sees no Alertmanager receiver
//	WriteMode     "write_mode": inject|reject|drop     the configuration's write.mode
//
// Enforce, EnforceRegex, Matchers, Tenant, RateKey and Limits are set only
// when Allow is true; all three confinements empty means unrestricted. A
// label whose lists (literal and regex together) are empty allows no value
// at all, so such a decision is turned into a denial rather than handed on as
// an empty (unrestricted-looking) set.
//
// The confinement is validated and compiled into an *enforce.Enforcer once,
// when the policy answers (Decide, DecideJSON, Compile); a decision whose
// confinement does not compile is a denial with an ErrMalformed error. The
// cached decisions of a revision carry their Enforcer, so a request never
// validates a decision again.
type Decision struct {
	// Allow says whether the request may go on.
	Allow bool `json:"allow"`
	// Reason is the policy author's explanation, returned as written. It is
	// shown to the caller and recorded in the audit log.
	Reason string `json:"reason"`
	// Enforce maps a label name to the values the caller may see, sorted and
	// without duplicates. Empty with Allow means unrestricted.
	Enforce map[string][]string `json:"enforce,omitempty"`
	// EnforceRegex maps a label name to regular expressions whose matches
	// the caller may also see, sorted and without duplicates. Each compiles
	// on its own and does not match the empty string.
	EnforceRegex map[string][]string `json:"enforce_regex,omitempty"`
	// Matchers are series selectors in braces, such as {secret!="true"},
	// ANDed into every selector of the request, sorted and without
	// duplicates.
	Matchers []string `json:"matchers,omitempty"`
	// Tenant is the upstream tenant (for X-Scope-OrgID and alike), or "".
	Tenant string `json:"tenant,omitempty"`
	// RateKey names the rate-limit bucket the request draws from, such as a
	// tenant or a group, so that the callers given one key share one
	// bucket. "" means a bucket per identity. It is 1 to 128 bytes of
	// printable ASCII.
	RateKey string `json:"rate_key,omitempty"`
	// Limits are per-decision query limits; zero fields are not set.
	Limits Limits `json:"limits,omitzero"`
	// Receivers names the Alertmanager receivers a confined caller may see
	// on /api/v2/receivers (an unrestricted caller sees them all).
	Receivers []string `json:"receivers,omitempty"`
	// WriteMode is how the remote write route treats a series without the
	// enforced labels (inject, reject or drop), or "" for the
	// configuration's write.mode.
	WriteMode string `json:"write_mode,omitempty"`
	// Upstream names one of the configured upstreams (config upstreams)
	// that the request goes to; "" means the default upstream. The gateway
	// denies a request whose decision names an upstream it does not have.
	Upstream string `json:"upstream,omitempty"`
	// Revision is the revision of the policy that made the decision (see
	// Authorizer.Revision), set by the Authorizer whatever the outcome, so
	// that an audit record names the policy that decided even across a
	// reload. The policy cannot set it.
	Revision string `json:"-"`

	// en is the compiled confinement: non-nil exactly when Allow is true,
	// for a decision made by Decide, DecideJSON or Compile.
	en *enforce.Enforcer
}

// Enforcer returns the decision's confinement (Enforce, EnforceRegex and
// Matchers), validated and compiled when the policy answered. It is non-nil
// exactly when Allow is true, for a decision made by Decide, DecideJSON or
// Compile; a Decision built by hand has none until it goes through Compile.
// An unrestricted decision's Enforcer reports Unrestricted.
func (d Decision) Enforcer() *enforce.Enforcer { return d.en }

// Limits are the limits a decision may set. Each query limit and
// MaxConcurrency is applied with the configuration's (the stricter one
// wins); RequestsPerSecond and Burst replace the configured rate for the
// decision's rate bucket, so that a policy can give a shared identity more
// than one user gets. Zero means not set.
//
//	field               policy key ("limits": {...})   value
//	MaxRange            max_range                      duration string, "7d"
//	MaxLookback         max_lookback                   duration string
//	MinStep             min_step                       duration string
//	MaxQueryPoints      max_query_points               whole number
//	MaxSubqueryPoints   max_subquery_points            whole number
//	MaxSamplesEstimate  max_samples_estimate           whole number
//	MaxConcurrency      max_concurrency                whole number
//	RequestsPerSecond   requests_per_second            number, fractions allowed
//	Burst               burst                          whole number
//
// A negative number, a fraction where a whole number is due, or an unknown
// key makes the decision malformed.
type Limits struct {
	// MaxRange bounds the time range of a range query.
	MaxRange time.Duration
	// MaxLookback bounds how far back from now a query may read.
	MaxLookback time.Duration
	// MinStep is the smallest step of a range query.
	MinStep time.Duration
	// MaxQueryPoints bounds the evaluation points of a query.
	MaxQueryPoints int64
	// MaxSubqueryPoints bounds the points one subquery evaluates.
	MaxSubqueryPoints int64
	// MaxSamplesEstimate bounds the samples a query is estimated to read
	// per series.
	MaxSamplesEstimate int64
	// MaxConcurrency bounds the requests in flight per rate bucket.
	MaxConcurrency int
	// RequestsPerSecond and Burst are the token bucket of the rate bucket;
	// they replace the configured ones.
	RequestsPerSecond float64
	Burst             int
}

// MarshalJSON writes the limits as the policy writes them: Prometheus-style
// durations and numbers, set fields only.
func (l Limits) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for _, f := range []struct {
		key string
		d   time.Duration
	}{{"max_range", l.MaxRange}, {"max_lookback", l.MaxLookback}, {"min_step", l.MinStep}} {
		if f.d != 0 {
			m[f.key] = model.Duration(f.d).String()
		}
	}
	for _, f := range []struct {
		key string
		n   int64
	}{
		{"max_query_points", l.MaxQueryPoints},
		{"max_subquery_points", l.MaxSubqueryPoints},
		{"max_samples_estimate", l.MaxSamplesEstimate},
		{"max_concurrency", int64(l.MaxConcurrency)},
		{"burst", int64(l.Burst)},
	} {
		if f.n != 0 {
			m[f.key] = f.n
		}
	}
	if l.RequestsPerSecond != 0 {
		m["requests_per_second"] = l.RequestsPerSecond
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

// maxRateKeyLength bounds a rate key, which keys a map of buckets and is
// written to logs.
const maxRateKeyLength = 128

// parseDecision turns the policy's value into a Decision and compiles it.
// Unknown keys are refused: a misspelt "enforce" must not read as
// "unrestricted".
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
			d.Enforce, err = parseEnforce("enforce", val.Value)
		case "enforce_regex":
			d.EnforceRegex, err = parseEnforce("enforce_regex", val.Value)
		case "matchers":
			d.Matchers, err = parseMatchers(val.Value)
		case "tenant":
			d.Tenant, err = parseTenant(val.Value)
		case "rate_key":
			d.RateKey, err = parseRateKey(val.Value)
		case "limits":
			d.Limits, err = parseLimits(val.Value)
		case "receivers":
			if d.Receivers, err = stringList(val.Value); err != nil {
				err = fmt.Errorf(`%w: "receivers": %w`, ErrMalformed, err)
			}
		case "write_mode":
			d.WriteMode, err = parseWriteMode(val.Value)
		case "upstream":
			d.Upstream, err = parseUpstream(val.Value)
		default:
			err = fmt.Errorf("%w: unknown key %q; a decision has allow, reason, enforce, enforce_regex, matchers, tenant, rate_key, limits, receivers, write_mode and upstream", ErrMalformed, string(key))
		}
	})
	if err != nil {
		return Decision{}, err
	}
	if !hasAllow {
		return Decision{}, fmt.Errorf(`%w: "allow" is missing`, ErrMalformed)
	}
	return d.compile()
}

// Compile validates d as Decide validates a policy's answer and compiles its
// Enforcer: for decisions the gateway makes itself, and for tests. A denial
// keeps only its Reason. Enforce and EnforceRegex must list each value once.
// On failure it returns a denial with a safe Reason and an error wrapping
// ErrMalformed, as Decide does.
func Compile(d Decision) (Decision, error) {
	err := func() error {
		if !d.Allow {
			return nil
		}
		if d.Tenant != "" {
			if err := ValidateTenant(d.Tenant); err != nil {
				return fmt.Errorf(`%w: "tenant": %w`, ErrMalformed, err)
			}
		}
		if d.WriteMode != "" && !validWriteMode(d.WriteMode) {
			return fmt.Errorf(`%w: "write_mode": %q is not inject, reject or drop`, ErrMalformed, d.WriteMode)
		}
		if d.RateKey != "" {
			if err := validateRateKey(d.RateKey); err != nil {
				return fmt.Errorf(`%w: "rate_key": %w`, ErrMalformed, err)
			}
		}
		if d.Upstream != "" && !config.UpstreamNamePattern.MatchString(d.Upstream) {
			return fmt.Errorf(`%w: "upstream" is not an upstream name`, ErrMalformed)
		}
		return d.Limits.validate()
	}()
	if err == nil {
		d.en = nil
		d, err = d.compile()
	}
	if err != nil {
		return Decision{Reason: reasonMalformed}, err
	}
	return d, nil
}

// compile finishes a decision whose fields have their types: it validates
// and compiles the confinement with enforce.NewPolicyEnforcer, the only
// validation it gets, turns a label allowed no value into a denial, drops
// a denial's other fields and fills in a missing reason. A denial's
// confinement is validated too, so that a decision's shape never depends on
// its allow.
func (d Decision) compile() (Decision, error) {
	p := enforce.Policy{Enforce: d.Enforce, EnforceRegex: d.EnforceRegex, Matchers: d.Matchers}
	if !d.Allow {
		if len(p.Enforce)+len(p.EnforceRegex)+len(p.Matchers) > 0 {
			if err := p.Validate(); err != nil {
				return Decision{}, confinementError(err)
			}
		}
		if d.Reason == "" {
			d.Reason = reasonDenied
		}
		return Decision{Reason: d.Reason}, nil
	}
	en, err := enforce.NewPolicyEnforcer(p)
	if err != nil {
		return Decision{}, confinementError(err)
	}
	if label, ok := emptyLabel(d); ok {
		return Decision{Reason: fmt.Sprintf("denied: the policy allows no value of label %q", label)}, nil
	}
	if d.Reason == "" {
		d.Reason = reasonAllowed
	}
	d.en = en
	return d, nil
}

// confinementError wraps an error of enforce.NewPolicyEnforcer, naming the
// decision key of a bad matcher (enforce's message names the label of the
// others).
func confinementError(err error) error {
	if ee, ok := errors.AsType[*enforce.Error](err); ok && ee.Matcher != "" {
		return fmt.Errorf(`%w: "matchers": %w`, ErrMalformed, err)
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

// emptyLabel returns the first label, in enforce order and then in
// enforce_regex order, both sorted, that has no value in either list.
func emptyLabel(d Decision) (string, bool) {
	empty := func(label string) bool {
		return len(d.Enforce[label]) == 0 && len(d.EnforceRegex[label]) == 0
	}
	for _, m := range []map[string][]string{d.Enforce, d.EnforceRegex} {
		// Sorting is only needed to name the first of several empty labels.
		found := false
		for label := range m {
			if empty(label) {
				found = true
				break
			}
		}
		if !found {
			continue
		}
		for _, label := range slices.Sorted(maps.Keys(m)) {
			if empty(label) {
				return label, true
			}
		}
	}
	return "", false
}

// parseEnforce reads "enforce" or "enforce_regex": an object of string
// arrays or sets keyed by label name.
func parseEnforce(field string, v ast.Value) (map[string][]string, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf(`%w: %q has type %s, want an object of string arrays`, ErrMalformed, field, ast.ValueName(v))
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
		if !ok || !model.UTF8Validation.IsValidLabelName(string(label)) || label == model.MetricNameLabel {
			err = fmt.Errorf(`%w: %q key %s is not a label name that can be enforced`, ErrMalformed, field, k)
			return
		}
		var values []string
		values, err = stringList(val.Value)
		if err != nil {
			err = fmt.Errorf(`%w: %q label %q: %w`, ErrMalformed, field, string(label), err)
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
		terms = make([]*ast.Term, 0, x.Len())
		x.Foreach(func(t *ast.Term) { terms = append(terms, t) })
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

// parseTenant accepts a tenant ID as Mimir and Cortex do: 1 to 150 bytes of
// ASCII letters, digits and !-_.*'(), and neither "." nor "..". The tenant
// goes into an HTTP header and, in Mimir, into object-store paths, so a CR,
// LF, slash or other character outside that alphabet must never reach it.
func parseTenant(v ast.Value) (string, error) {
	s, ok := v.(ast.String)
	if !ok {
		return "", fmt.Errorf(`%w: "tenant" has type %s, want a string`, ErrMalformed, ast.ValueName(v))
	}
	if err := ValidateTenant(string(s)); err != nil {
		return "", fmt.Errorf(`%w: "tenant": %w`, ErrMalformed, err)
	}
	return string(s), nil
}

// ValidateTenant reports whether s is a valid tenant ID: 1 to 150 bytes of
// ASCII letters, digits and the characters !-_.*'(), and neither "." nor
// "..", the rule Mimir and Cortex apply to X-Scope-OrgID.
func ValidateTenant(s string) error {
	switch {
	case s == "":
		return errors.New("tenant is empty; omit the key for no tenant")
	case len(s) > maxTenantLength:
		return fmt.Errorf("tenant is longer than %d bytes", maxTenantLength)
	case s == "." || s == "..":
		return fmt.Errorf("tenant %q is not allowed", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!-_.*'()", c) >= 0:
		default:
			return fmt.Errorf("tenant holds %q; use letters, digits and !-_.*'()", rune(c))
		}
	}
	return nil
}

// parseRateKey reads "rate_key".
func parseRateKey(v ast.Value) (string, error) {
	s, ok := v.(ast.String)
	if !ok {
		return "", fmt.Errorf(`%w: "rate_key" has type %s, want a string`, ErrMalformed, ast.ValueName(v))
	}
	if err := validateRateKey(string(s)); err != nil {
		return "", fmt.Errorf(`%w: "rate_key": %w`, ErrMalformed, err)
	}
	return string(s), nil
}

// validateRateKey accepts 1 to 128 bytes of printable ASCII (space to
// tilde): a rate key keys the gateway's buckets and is logged, so no control
// character or invalid UTF-8 may reach it.
func validateRateKey(s string) error {
	switch {
	case s == "":
		return errors.New("rate key is empty; omit the key for a bucket per identity")
	case len(s) > maxRateKeyLength:
		return fmt.Errorf("rate key is longer than %d bytes", maxRateKeyLength)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			return fmt.Errorf("rate key holds %q; use printable ASCII", rune(c))
		}
	}
	return nil
}

// parseMatchers reads "matchers": an array or set of strings. Their syntax
// is checked once, when the decision is compiled (enforce.ParseDecisionMatcher).
func parseMatchers(v ast.Value) ([]string, error) {
	list, err := stringList(v)
	if err != nil {
		return nil, fmt.Errorf(`%w: "matchers": %w`, ErrMalformed, err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	return list, nil
}

// parseLimits reads "limits": an object of the keys Limits lists.
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
		switch key {
		case "max_range":
			l.MaxRange, err = limitDuration(key, val.Value)
		case "max_lookback":
			l.MaxLookback, err = limitDuration(key, val.Value)
		case "min_step":
			l.MinStep, err = limitDuration(key, val.Value)
		case "max_query_points":
			l.MaxQueryPoints, err = limitInt(key, val.Value)
		case "max_subquery_points":
			l.MaxSubqueryPoints, err = limitInt(key, val.Value)
		case "max_samples_estimate":
			l.MaxSamplesEstimate, err = limitInt(key, val.Value)
		case "max_concurrency":
			var n int64
			n, err = limitInt(key, val.Value)
			l.MaxConcurrency = int(n)
		case "burst":
			var n int64
			n, err = limitInt(key, val.Value)
			l.Burst = int(n)
		case "requests_per_second":
			l.RequestsPerSecond, err = limitFloat(key, val.Value)
		default:
			err = fmt.Errorf(`%w: "limits" key %s is unknown; use max_range, max_lookback, min_step, max_query_points, max_subquery_points, max_samples_estimate, max_concurrency, requests_per_second or burst`, ErrMalformed, k)
		}
	})
	return l, err
}

// limitDuration reads a duration limit: a Prometheus duration string.
func limitDuration(key ast.String, v ast.Value) (time.Duration, error) {
	s, ok := v.(ast.String)
	if !ok {
		return 0, fmt.Errorf(`%w: "limits.%s" has type %s, want a duration string such as "7d"`, ErrMalformed, string(key), ast.ValueName(v))
	}
	d, err := model.ParseDuration(string(s))
	if err != nil {
		return 0, fmt.Errorf(`%w: "limits.%s": %w`, ErrMalformed, string(key), err)
	}
	return time.Duration(d), nil
}

// limitInt reads a whole-number limit, 0 or more and at most MaxInt32 for
// the fields held in an int. A number written with a fraction or exponent
// counts when its value is whole (Rego's 10 / 2 gives 5, 1e3 is 1000).
func limitInt(key ast.String, v ast.Value) (int64, error) {
	num, ok := v.(ast.Number)
	if !ok {
		return 0, fmt.Errorf(`%w: "limits.%s" has type %s, want a whole number`, ErrMalformed, string(key), ast.ValueName(v))
	}
	n, ok := num.Int64()
	if !ok {
		f, fok := num.Float64()
		if !fok || f != math.Trunc(f) || f < 0 || f >= math.MaxInt64 {
			return 0, fmt.Errorf(`%w: "limits.%s" is %s, want a whole number 0 or more`, ErrMalformed, string(key), num)
		}
		n = int64(f)
	}
	if n < 0 {
		return 0, fmt.Errorf(`%w: "limits.%s" is %s, want a whole number 0 or more`, ErrMalformed, string(key), num)
	}
	if (key == "max_concurrency" || key == "burst") && n > math.MaxInt32 {
		return 0, fmt.Errorf(`%w: "limits.%s" is %s, more than %d`, ErrMalformed, string(key), num, math.MaxInt32)
	}
	return n, nil
}

// limitFloat reads a limit that may have a fraction, 0 or more.
func limitFloat(key ast.String, v ast.Value) (float64, error) {
	num, ok := v.(ast.Number)
	if !ok {
		return 0, fmt.Errorf(`%w: "limits.%s" has type %s, want a number`, ErrMalformed, string(key), ast.ValueName(v))
	}
	f, ok := num.Float64()
	if !ok || math.IsInf(f, 0) || math.IsNaN(f) || f < 0 {
		return 0, fmt.Errorf(`%w: "limits.%s" is %s, want a number 0 or more`, ErrMalformed, string(key), num)
	}
	return f, nil
}

// validate applies parseLimits' rules to limits built in Go.
func (l Limits) validate() error {
	for _, f := range []struct {
		key string
		bad bool
	}{
		{"max_range", l.MaxRange < 0},
		{"max_lookback", l.MaxLookback < 0},
		{"min_step", l.MinStep < 0},
		{"max_query_points", l.MaxQueryPoints < 0},
		{"max_subquery_points", l.MaxSubqueryPoints < 0},
		{"max_samples_estimate", l.MaxSamplesEstimate < 0},
		{"max_concurrency", l.MaxConcurrency < 0 || l.MaxConcurrency > math.MaxInt32},
		{"requests_per_second", !(l.RequestsPerSecond >= 0) || math.IsInf(l.RequestsPerSecond, 0)},
		{"burst", l.Burst < 0 || l.Burst > math.MaxInt32},
	} {
		if f.bad {
			return fmt.Errorf(`%w: "limits.%s" is out of range`, ErrMalformed, f.key)
		}
	}
	return nil
}

// parseUpstream reads the name of a configured upstream.
func parseUpstream(v ast.Value) (string, error) {
	s, ok := v.(ast.String)
	if !ok {
		return "", fmt.Errorf(`%w: "upstream" has type %s, want a string`, ErrMalformed, ast.ValueName(v))
	}
	if !config.UpstreamNamePattern.MatchString(string(s)) {
		return "", fmt.Errorf(`%w: "upstream" is not an upstream name: lowercase letters, digits, '_' and '-', at most 63`, ErrMalformed)
	}
	return string(s), nil
}
