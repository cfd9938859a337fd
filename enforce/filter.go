package enforce

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp/syntax"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// alertsMetric is the metric name of the series Prometheus writes for active
// alerts; decision matchers on __name__ see alerts under it.
const alertsMetric = "ALERTS"

// ErrUpstream wraps every error of the response filters: the upstream sent a
// body that is not the JSON shape of its route. The caller answers 502 and
// sends nothing of the body on.
var ErrUpstream = errors.New("malformed upstream response")

// envelope is the Prometheus API response envelope, with data left raw.
type envelope map[string]json.RawMessage

// decodeEnvelope reads the envelope. A response whose status is not
// "success" (an API error) has no data the caller may not see: its data key,
// if any, is dropped and ok is false.
func decodeEnvelope(body []byte) (env envelope, ok bool, err error) {
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies this error; the cause is kept as text so that it cannot reclassify it
	}
	if env == nil {
		return nil, false, fmt.Errorf("%w: body is null", ErrUpstream)
	}
	var status string
	if err := json.Unmarshal(env["status"], &status); err != nil {
		return nil, false, fmt.Errorf("%w: status: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies this error; the cause is kept as text so that it cannot reclassify it
	}
	if status != "success" {
		delete(env, "data")
		return env, false, nil
	}
	return env, true, nil
}

// encode writes v as compact JSON without HTML escaping, as Prometheus does.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode filtered response: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// rule is the part of a rule of /api/v1/rules that the filter reads.
type rule struct {
	Name   string
	Query  string
	Type   string
	Labels map[string]string
}

// FilterRules filters an /api/v1/rules response body to what the caller may
// see. An unrestricted Enforcer returns body unchanged. Otherwise:
//
//	what                          kept when
//	rule (recording, alerting)    its query parses, and every selector of it is
//	                              confined (see below); each enforced label it
//	                              sets statically has an allowed value; every
//	                              decision matcher holds for its labels, with
//	                              __name__ the recorded metric (recording) or
//	                              ALERTS (alerting) and a missing label read as ""
//	alert inside an alerting rule the alert's labels satisfy the decision, as
//	                              in FilterAlerts
//	group                         at least one of its rules is kept
//
// A selector of a rule's query is confined when, for every enforced label,
// it has an equality matcher on an allowed value, or a regular-expression
// matcher that is one of the allowed regexes, the enforcer's own matcher for
// the label, or a finite alternation of allowed values; and when every
// decision matcher is implied: the selector carries the same matcher, or an
// equality on the same label whose value the decision matcher accepts. A
// rule whose query reads anything else is dropped: its query text and its
// alerts' annotations could reveal other tenants' series.
//
// Every other field of the response, group and rule is kept as the upstream
// sent it. A response that is not "success" loses its data key. The error
// wraps ErrUpstream.
func (en *Enforcer) FilterRules(body []byte) ([]byte, error) {
	return en.filterData(body, "an object", en.filterRulesData)
}

// filterRulesData keeps the groups and rules of a rules answer's data that
// the caller may see.
func (en *Enforcer) filterRulesData(data map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	var groups []map[string]json.RawMessage
	if err := json.Unmarshal(data["groups"], &groups); err != nil {
		return nil, fmt.Errorf("%w: data.groups: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies this error; the cause is kept as text so that it cannot reclassify it
	}
	kept := make([]map[string]json.RawMessage, 0, len(groups))
	for gi, g := range groups {
		if g == nil {
			return nil, fmt.Errorf("%w: data.groups[%d] is not an object", ErrUpstream, gi)
		}
		var rules []map[string]json.RawMessage
		if err := json.Unmarshal(g["rules"], &rules); err != nil {
			return nil, fmt.Errorf("%w: data.groups[%d].rules: %v", ErrUpstream, gi, err) //nolint:errorlint // ErrUpstream alone classifies this error; the cause is kept as text so that it cannot reclassify it
		}
		keptRules := make([]map[string]json.RawMessage, 0, len(rules))
		for ri, raw := range rules {
			r, keep, err := en.filterRule(raw)
			if err != nil {
				return nil, fmt.Errorf("%w: data.groups[%d].rules[%d]: %v", ErrUpstream, gi, ri, err) //nolint:errorlint // ErrUpstream alone classifies this error; the cause is kept as text so that it cannot reclassify it
			}
			if keep {
				keptRules = append(keptRules, r)
			}
		}
		if len(keptRules) == 0 {
			continue
		}
		b, err := encode(keptRules)
		if err != nil {
			return nil, err
		}
		g["rules"] = b
		kept = append(kept, g)
	}
	b, err := encode(kept)
	if err != nil {
		return nil, err
	}
	data["groups"] = b
	return data, nil
}

// filterData is the frame of every response filter: an unrestricted caller
// gets the body as it is; otherwise the body must be the API's envelope, an
// answer that is not "success" loses its data, and f rewrites the data
// object of a successful one, which is encoded back into the envelope.
// object describes the data the route answers with, for the error. Errors
// wrap ErrUpstream.
func (en *Enforcer) filterData(body []byte, object string, f func(data map[string]json.RawMessage) (map[string]json.RawMessage, error)) ([]byte, error) {
	if en.Unrestricted() {
		return body, nil
	}
	env, ok, err := decodeEnvelope(body)
	if err != nil || !ok {
		return encodeOr(env, err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(env["data"], &data); err != nil || data == nil {
		return nil, fmt.Errorf("%w: data is not %s", ErrUpstream, object)
	}
	if data, err = f(data); err != nil {
		return nil, err
	}
	if env["data"], err = encode(data); err != nil {
		return nil, err
	}
	return encode(env)
}

// encodeOr encodes env unless err is set.
func encodeOr(env envelope, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	return encode(env)
}

// filterRule decides one rule and filters its alerts.
func (en *Enforcer) filterRule(raw map[string]json.RawMessage) (map[string]json.RawMessage, bool, error) {
	if raw == nil {
		return nil, false, errors.New("rule is not an object")
	}
	var r rule
	for key, dst := range map[string]any{"name": &r.Name, "query": &r.Query, "type": &r.Type, "labels": &r.Labels} {
		if v, ok := raw[key]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return nil, false, fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	name := r.Name
	switch r.Type {
	case "recording":
	case "alerting":
		name = alertsMetric
	default:
		return nil, false, fmt.Errorf("rule type %q is neither recording nor alerting", r.Type)
	}
	if !en.ruleLabelsAllowed(r.Labels, name) || !en.queryConfined(r.Query) {
		return nil, false, nil
	}
	if r.Type == "alerting" {
		if alerts, ok := raw["alerts"]; ok && string(alerts) != "null" {
			filtered, err := en.filterAlertList(alerts)
			if err != nil {
				return nil, false, fmt.Errorf("alerts: %w", err)
			}
			raw["alerts"] = filtered
		}
	}
	return raw, true, nil
}

// ruleLabelsAllowed checks a rule's static labels: an enforced label it sets
// must have an allowed value (one it does not set comes from the query,
// which queryConfined checks), and every decision matcher must hold.
func (en *Enforcer) ruleLabelsAllowed(ls map[string]string, metric string) bool {
	for i := range en.labels {
		l := &en.labels[i]
		if v, ok := ls[l.name]; ok && !l.allows(v) {
			return false
		}
	}
	return en.extraHold(ls, metric)
}

// extraHold reports whether every decision matcher accepts the labels ls of
// a series named metric; a missing label is "".
func (en *Enforcer) extraHold(ls map[string]string, metric string) bool {
	for _, m := range en.extra {
		v := ls[m.Name]
		if m.Name == model.MetricNameLabel {
			v = metric
		}
		if !m.Matches(v) {
			return false
		}
	}
	return true
}

// nameAllowed reports whether every decision matcher on __name__ accepts the
// metric name.
func (en *Enforcer) nameAllowed(name string) bool {
	for _, m := range en.extra {
		if m.Name == model.MetricNameLabel && !m.Matches(name) {
			return false
		}
	}
	return true
}

// alertAllowed reports whether the caller may see an alert with labels ls:
// every enforced label is present with an allowed value, and every decision
// matcher holds (with __name__ ALERTS).
func (en *Enforcer) alertAllowed(ls map[string]string) bool {
	return en.seriesAllowed(ls, alertsMetric)
}

// seriesAllowed reports whether the caller may see the series named metric
// with labels ls: every enforced label is present with an allowed value, and
// every decision matcher holds, with __name__ read as metric and a missing
// label as "".
func (en *Enforcer) seriesAllowed(ls map[string]string, metric string) bool {
	for i := range en.labels {
		l := &en.labels[i]
		if !l.allows(ls[l.name]) {
			return false
		}
	}
	return en.extraHold(ls, metric)
}

// queryConfined reports whether every selector of a rule's query reads only
// what the caller may see. A query that does not parse is not confined.
func (en *Enforcer) queryConfined(query string) bool {
	expr, err := promql.ParseExpr(query)
	if err != nil {
		return false
	}
	confined := true
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if !confined {
			return errors.New("done")
		}
		if vs, ok := n.(*parser.VectorSelector); ok && !en.selectorConfined(vs.LabelMatchers) {
			confined = false
		}
		return nil
	})
	return confined
}

// selectorConfined reports whether the matchers of one selector can only
// select series the caller may see.
func (en *Enforcer) selectorConfined(ms []*labels.Matcher) bool {
	if slices.Contains(ms, nil) {
		return false
	}
	for i := range en.labels {
		l := &en.labels[i]
		if !slices.ContainsFunc(ms, l.confines) {
			return false
		}
	}
	for _, dm := range en.extra {
		if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return implies(m, dm) }) {
			return false
		}
	}
	return true
}

// confines reports whether m alone confines label l to allowed values.
func (l *enforcedLabel) confines(m *labels.Matcher) bool {
	if m.Name != l.name {
		return false
	}
	switch m.Type {
	case labels.MatchEqual:
		return l.allows(m.Value)
	case labels.MatchRegexp:
		if l.all != nil && m.Value == l.all.Value {
			return true
		}
		if _, ok := slices.BinarySearch(l.regexes, m.Value); ok {
			return true
		}
		values, ok := finiteLanguage(m.Value)
		return ok && len(values) > 0 && !slices.ContainsFunc(values, func(v string) bool { return !l.allows(v) })
	default:
		return false
	}
}

// implies reports whether a selector matcher m implies the decision matcher
// dm: they are the same, or m fixes the label to a value dm accepts.
func implies(m, dm *labels.Matcher) bool {
	if m.Name != dm.Name {
		return false
	}
	if m.Type == dm.Type && m.Value == dm.Value {
		return true
	}
	return m.Type == labels.MatchEqual && dm.Matches(m.Value)
}

// maxFiniteLanguage bounds finiteLanguage.
const maxFiniteLanguage = 256

// finiteLanguage lists the strings an anchored regular expression matches
// when they are few and the expression uses only literals, alternation,
// concatenation, groups, small character classes and ?. It reports false
// otherwise.
func finiteLanguage(expr string) ([]string, bool) {
	re, err := syntax.Parse(expr, syntax.Perl|syntax.DotNL)
	if err != nil {
		return nil, false
	}
	return regexLanguage(re)
}

func regexLanguage(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return []string{""}, true
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		return []string{string(re.Rune)}, true
	case syntax.OpCharClass:
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if int(re.Rune[i+1]-re.Rune[i])+len(out) >= maxFiniteLanguage {
				return nil, false
			}
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				out = append(out, string(r))
			}
		}
		return out, true
	case syntax.OpCapture:
		return regexLanguage(re.Sub[0])
	case syntax.OpQuest:
		sub, ok := regexLanguage(re.Sub[0])
		return append([]string{""}, sub...), ok
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			sub, ok := regexLanguage(s)
			if !ok || len(out)+len(sub) > maxFiniteLanguage {
				return nil, false
			}
			out = append(out, sub...)
		}
		return out, true
	case syntax.OpConcat:
		out := []string{""}
		for _, s := range re.Sub {
			sub, ok := regexLanguage(s)
			if !ok || len(out)*len(sub) > maxFiniteLanguage {
				return nil, false
			}
			next := make([]string, 0, len(out)*len(sub))
			for _, a := range out {
				for _, b := range sub {
					next = append(next, a+b)
				}
			}
			out = next
		}
		return out, true
	default:
		return nil, false
	}
}

// alert is the part of an alert that the filters read.
type alert struct {
	Labels map[string]string `json:"labels"`
}

// filterAlertList keeps the alerts of a JSON array whose labels are allowed.
func (en *Enforcer) filterAlertList(raw json.RawMessage) (json.RawMessage, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	kept := make([]json.RawMessage, 0, len(list))
	for i, a := range list {
		var x alert
		if err := json.Unmarshal(a, &x); err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		if x.Labels == nil {
			return nil, fmt.Errorf("[%d]: no labels", i)
		}
		if en.alertAllowed(x.Labels) {
			kept = append(kept, a)
		}
	}
	return encode(kept)
}

// FilterAlerts filters an /api/v1/alerts response body to the alerts whose
// labels satisfy the decision: every enforced label is present with an
// allowed value, and every decision matcher holds, with __name__ read as
// ALERTS and a missing label as "". An unrestricted Enforcer returns body
// unchanged. The alerts endpoint does not say which rule fired an alert, so
// its annotations are kept as the rule rendered them; a policy that must
// also hide annotations computed from other tenants' series serves alerts
// from FilterRules, whose rules carry their alerts. The error wraps
// ErrUpstream.
func (en *Enforcer) FilterAlerts(body []byte) ([]byte, error) {
	return en.filterData(body, "an object", func(data map[string]json.RawMessage) (map[string]json.RawMessage, error) {
		filtered, err := en.filterAlertList(data["alerts"])
		if err != nil {
			return nil, fmt.Errorf("%w: data.alerts: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies this error; the cause is kept as text so that it cannot reclassify it
		}
		data["alerts"] = filtered
		return data, nil
	})
}

// FilterMetadata filters an /api/v1/metadata response body to the metric
// names in visible, the names the caller can see. The caller gets them from
// the upstream as /api/v1/label/__name__/values with match[] set to
// Matchers(nil), so that they honour every enforced label and decision
// matcher. A name that a decision matcher on __name__ refuses is dropped even
// when visible lists it. An unrestricted Enforcer returns body unchanged. The
// error wraps ErrUpstream.
func (en *Enforcer) FilterMetadata(body []byte, visible map[string]bool) ([]byte, error) {
	return en.filterData(body, "an object of metric names", func(data map[string]json.RawMessage) (map[string]json.RawMessage, error) {
		for name := range data {
			if !visible[name] || !en.nameAllowed(name) {
				delete(data, name)
			}
		}
		return data, nil
	})
}
