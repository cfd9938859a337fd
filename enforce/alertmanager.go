package enforce

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Alertmanager's API v2 speaks matchers of its own: in a silence they are
// JSON objects ({name, value, isRegex, isEqual}); in the filter parameter of
// the alerts, groups and silences routes they are text (name="value",
// name=~"regex", name!="value", name!~"regex"). This file reads both the way
// Alertmanager 0.25 does, and confines them with the same rules as PromQL
// selectors: a silence is confined when each enforced label has a matcher
// that can only match allowed values (an allowed equality, or a regular
// expression whose language is a subset of the allowed set, the check
// selectors use) and each decision matcher is present or implied.

// MaxSilenceMatchers bounds the matchers of one silence or one filter list.
const MaxSilenceMatchers = 64

// AMMatcher is one Alertmanager matcher. IsEqual nil means true, as in
// Alertmanager before 0.22.
type AMMatcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual *bool  `json:"isEqual,omitempty"`
}

// Equal reports whether m is an equality (= or =~) rather than a negation.
func (m AMMatcher) Equal() bool { return m.IsEqual == nil || *m.IsEqual }

// Type returns the matcher's operator: =, !=, =~ or !~.
func (m AMMatcher) Type() string {
	switch {
	case m.IsRegex && m.Equal():
		return "=~"
	case m.IsRegex:
		return "!~"
	case m.Equal():
		return "="
	default:
		return "!="
	}
}

// String returns m in the filter syntax Alertmanager parses back to the same
// matcher: the value in double quotes with \, " and newline escaped.
func (m AMMatcher) String() string {
	var b strings.Builder
	b.WriteString(m.Name)
	b.WriteString(m.Type())
	b.WriteByte('"')
	for _, r := range m.Value {
		switch r {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// matcher converts m into a Prometheus matcher, compiling a regular
// expression anchored as Alertmanager anchors it.
func (m AMMatcher) matcher() (*labels.Matcher, error) {
	var t labels.MatchType
	switch m.Type() {
	case "=":
		t = labels.MatchEqual
	case "!=":
		t = labels.MatchNotEqual
	case "=~":
		t = labels.MatchRegexp
	default:
		t = labels.MatchNotRegexp
	}
	return labels.NewMatcher(t, m.Name, m.Value)
}

// amMatcherOf converts a Prometheus matcher into an Alertmanager one.
func amMatcherOf(m *labels.Matcher) AMMatcher {
	eq := m.Type == labels.MatchEqual || m.Type == labels.MatchRegexp
	return AMMatcher{Name: m.Name, Value: m.Value, IsRegex: m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp, IsEqual: &eq}
}

// amMatcherRE is Alertmanager 0.25's matcher grammar (pkg/labels): a
// classic label name, an operator, and a value that may be quoted.
var amMatcherRE = regexp.MustCompile(`^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*((?s).*?)\s*$`)

// ParseAMMatcher reads one matcher of a filter parameter as Alertmanager
// 0.25 reads it: name, operator and value, the value optionally in double
// quotes with \\, \" and \n escaped (any other backslash is literal). A
// regular expression must compile. The error is an *Error of kind BadData.
func ParseAMMatcher(s string) (AMMatcher, error) {
	bad := func(format string, args ...any) (AMMatcher, error) {
		return AMMatcher{}, &Error{Kind: BadData, Msg: "filter " + fmt.Sprintf(format, args...)}
	}
	if !utf8.ValidString(s) {
		return bad("is not valid UTF-8")
	}
	ms := amMatcherRE.FindStringSubmatch(s)
	if ms == nil {
		return bad("%q is not a matcher such as name=\"value\"", s)
	}
	raw, quoted := ms[3], false
	if strings.HasPrefix(raw, `"`) {
		raw, quoted = raw[1:], true
	}
	var v strings.Builder
	escaped := false
	for i, r := range raw {
		if escaped {
			escaped = false
			switch r {
			case 'n':
				v.WriteByte('\n')
			case '"', '\\':
				v.WriteRune(r)
			default:
				v.WriteByte('\\')
				v.WriteRune(r)
			}
			continue
		}
		switch r {
		case '\\':
			if i < len(raw)-1 {
				escaped = true
				continue
			}
			v.WriteByte('\\')
		case '"':
			if !quoted || i < len(raw)-1 {
				return bad("%q has an unescaped double quote", s)
			}
			quoted = false
		default:
			v.WriteRune(r)
		}
	}
	if quoted {
		return bad("%q lacks its closing double quote", s)
	}
	m := AMMatcher{Name: ms[1], Value: v.String(), IsRegex: strings.HasSuffix(ms[2], "~")}
	eq := !strings.HasPrefix(ms[2], "!")
	m.IsEqual = &eq
	if _, err := m.matcher(); err != nil {
		return bad("%q: %v", s, err)
	}
	return m, nil
}

// Silence is a silence of the Alertmanager API v2 as posted
// (postableSilence): an id only when it updates an existing silence.
type Silence struct {
	ID        string      `json:"id,omitempty"`
	Matchers  []AMMatcher `json:"matchers"`
	StartsAt  time.Time   `json:"startsAt"`
	EndsAt    time.Time   `json:"endsAt"`
	CreatedBy string      `json:"createdBy"`
	Comment   string      `json:"comment"`
}

// silenceIDRE is the alphabet of Alertmanager's silence ids (UUIDs).
var silenceIDRE = regexp.MustCompile(`^[0-9A-Za-z-]{1,64}$`)

// ValidSilenceID reports whether id may name a silence: 1 to 64 letters,
// digits and dashes (Alertmanager writes UUIDs).
func ValidSilenceID(id string) bool { return silenceIDRE.MatchString(id) }

// ParseSilence decodes the body of POST /api/v2/silences strictly: one JSON
// object with only the fields above, 1 to MaxSilenceMatchers matchers with
// classic label names, valid values and compiling regular expressions (not
// all of them matching the empty string, which Alertmanager refuses too), a
// startsAt before endsAt, and a comment. The error is an *Error of kind
// BadData.
func ParseSilence(body []byte) (*Silence, error) {
	bad := func(format string, args ...any) (*Silence, error) {
		return nil, &Error{Kind: BadData, Msg: "silence: " + fmt.Sprintf(format, args...)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var s Silence
	if err := dec.Decode(&s); err != nil {
		return bad("not a JSON silence: %v", err)
	}
	if dec.More() {
		return bad("more than one JSON value")
	}
	if s.ID != "" && !ValidSilenceID(s.ID) {
		return bad("id %q is not a silence id", s.ID)
	}
	if err := checkAMMatchers(s.Matchers); err != nil {
		return bad("%v", err)
	}
	if s.StartsAt.IsZero() || s.EndsAt.IsZero() {
		return bad("startsAt and endsAt are required")
	}
	if !s.EndsAt.After(s.StartsAt) {
		return bad("endsAt must be after startsAt")
	}
	if strings.TrimSpace(s.Comment) == "" {
		return bad("a comment is required")
	}
	return &s, nil
}

// checkAMMatchers checks a silence's matchers as Alertmanager validates
// them.
func checkAMMatchers(ms []AMMatcher) error {
	if len(ms) == 0 {
		return errors.New("at least one matcher is required")
	}
	if len(ms) > MaxSilenceMatchers {
		return fmt.Errorf("more than %d matchers", MaxSilenceMatchers)
	}
	allEmpty := true
	for i, m := range ms {
		if !model.LegacyValidation.IsValidLabelName(m.Name) {
			return fmt.Errorf("matchers[%d]: %q is not a label name", i, m.Name)
		}
		if !utf8.ValidString(m.Value) {
			return fmt.Errorf("matchers[%d]: the value is not valid UTF-8", i)
		}
		pm, err := m.matcher()
		if err != nil {
			return fmt.Errorf("matchers[%d]: %w", i, err)
		}
		allEmpty = allEmpty && m.Equal() && pm.Matches("")
	}
	if allEmpty {
		return errors.New("at least one matcher must not match the empty string")
	}
	return nil
}

// Duration returns how long the silence lasts.
func (s *Silence) Duration() time.Duration { return s.EndsAt.Sub(s.StartsAt) }

// matchersOf converts Alertmanager matchers; any that does not convert
// makes the set unusable for confinement.
func matchersOf(ams []AMMatcher) ([]*labels.Matcher, bool) {
	out := make([]*labels.Matcher, len(ams))
	for i, m := range ams {
		pm, err := m.matcher()
		if err != nil {
			return nil, false
		}
		out[i] = pm
	}
	return out, true
}

// SilenceConfined reports whether a silence with matchers ms can only
// silence alerts the caller may see: every enforced label has a matcher
// that confines it to allowed values (an allowed equality, or a regular
// expression whose language lists only allowed values), and every decision
// matcher is present or implied. A matcher that does not compile is not
// confined. An unrestricted Enforcer confines every silence.
//
//	caller allowed    silence matcher                 confined
//	team-a            namespace="team-a"              yes
//	team-a            namespace=~"team-a"             yes
//	team-a            namespace=~"team-a|team-b"      no
//	team-a            namespace=~"team-.*"            no (infinite language)
//	team-a            namespace!="team-b"             no
//	team-a            (none on namespace)             no
func (en *Enforcer) SilenceConfined(ms []AMMatcher) bool {
	if en.Unrestricted() {
		return true
	}
	pms, ok := matchersOf(ms)
	return ok && en.selectorConfined(pms)
}

// ConfineSilence confines a silence the caller creates or updates, the way
// prom-label-proxy does: an enforced label without a matcher gets one that
// selects exactly the allowed values, and a decision matcher that is not
// implied is added; a matcher on an enforced label that does not confine it
// (such as namespace="team-b", or a regular expression reaching outside the
// set) is refused with a Forbidden error naming it. An unrestricted Enforcer
// changes nothing.
func (en *Enforcer) ConfineSilence(s *Silence) error {
	if en.Unrestricted() {
		return nil
	}
	pms, ok := matchersOf(s.Matchers)
	if !ok {
		return &Error{Kind: BadData, Msg: "silence: a matcher does not compile"}
	}
	for i := range en.labels {
		l := &en.labels[i]
		if slices.ContainsFunc(pms, l.confines) {
			continue
		}
		for _, m := range s.Matchers {
			if m.Name == l.name {
				return &Error{Kind: Forbidden, Label: l.name, Msg: fmt.Sprintf("silence matcher %s can match %s values outside the allowed set", m.String(), quoteName(l.name))}
			}
		}
		if l.all == nil {
			return &Error{Kind: Forbidden, Label: l.name, Msg: fmt.Sprintf("no value of label %s is allowed", quoteName(l.name))}
		}
		if !model.LegacyValidation.IsValidLabelName(l.name) {
			return &Error{Kind: Invalid, Label: l.name, Msg: fmt.Sprintf("enforced label %s cannot be matched by Alertmanager", quoteName(l.name))}
		}
		s.Matchers = append(s.Matchers, amMatcherOf(l.all))
	}
	for _, dm := range en.extra {
		if dm.Name == model.MetricNameLabel || slices.ContainsFunc(pms, func(m *labels.Matcher) bool { return implies(m, dm) }) {
			continue
		}
		s.Matchers = append(s.Matchers, amMatcherOf(dm))
	}
	if len(s.Matchers) > MaxSilenceMatchers {
		return &Error{Kind: BadData, Msg: fmt.Sprintf("silence: more than %d matchers once confined", MaxSilenceMatchers)}
	}
	return nil
}

// AlertFilters returns the filter matchers that confine an alerts or groups
// request to the allowed values, in Alertmanager's filter syntax: one per
// enforced label (its allowed set) and one per decision matcher other than
// __name__. Alertmanager ANDs them with the caller's own filters, so the
// answer is the intersection. The error is Forbidden when a label allows no
// value, and Invalid when it cannot be written as an Alertmanager matcher.
func (en *Enforcer) AlertFilters() ([]string, error) {
	var out []string
	for i := range en.labels {
		l := &en.labels[i]
		if l.all == nil {
			return nil, &Error{Kind: Forbidden, Label: l.name, Msg: fmt.Sprintf("no value of label %s is allowed", quoteName(l.name))}
		}
		if !model.LegacyValidation.IsValidLabelName(l.name) {
			return nil, &Error{Kind: Invalid, Label: l.name, Msg: fmt.Sprintf("enforced label %s cannot be matched by Alertmanager", quoteName(l.name))}
		}
		out = append(out, amMatcherOf(l.all).String())
	}
	for _, dm := range en.extra {
		if dm.Name == model.MetricNameLabel {
			continue
		}
		if !model.LegacyValidation.IsValidLabelName(dm.Name) {
			return nil, &Error{Kind: Invalid, Matcher: dm.String(), Msg: fmt.Sprintf("decision matcher %s cannot be matched by Alertmanager", dm.String())}
		}
		out = append(out, amMatcherOf(dm).String())
	}
	return out, nil
}

// amObject decodes one element of an Alertmanager JSON array far enough to
// read the fields the filters need.
type amObject struct {
	ID       string            `json:"id"`
	Labels   map[string]string `json:"labels"`
	Matchers []AMMatcher       `json:"matchers"`
}

// filterArray keeps the elements of a JSON array for which keep holds. The
// error wraps ErrUpstream.
func filterArray(body []byte, keep func(raw json.RawMessage, o *amObject) (json.RawMessage, bool, error)) ([]byte, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies this error; the cause is kept as text so that it cannot reclassify it
	}
	kept := make([]json.RawMessage, 0, len(list))
	for i, raw := range list {
		var o amObject
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("%w: [%d]: %v", ErrUpstream, i, err) //nolint:errorlint // as above
		}
		out, ok, err := keep(raw, &o)
		if err != nil {
			return nil, fmt.Errorf("%w: [%d]: %v", ErrUpstream, i, err) //nolint:errorlint // as above
		}
		if ok {
			kept = append(kept, out)
		}
	}
	return encode(kept)
}

// FilterAMAlerts filters the answer of GET /api/v2/alerts (a JSON array of
// alerts) to the alerts whose labels the caller may see, as FilterAlerts
// does for Prometheus' alerts. An unrestricted Enforcer returns body
// unchanged. The error wraps ErrUpstream.
func (en *Enforcer) FilterAMAlerts(body []byte) ([]byte, error) {
	if en.Unrestricted() {
		return body, nil
	}
	return filterArray(body, func(raw json.RawMessage, o *amObject) (json.RawMessage, bool, error) {
		if o.Labels == nil {
			return nil, false, errors.New("alert without labels")
		}
		return raw, en.alertAllowed(o.Labels), nil
	})
}

// FilterAMAlertGroups filters the answer of GET /api/v2/alerts/groups (a
// JSON array of groups, each with its alerts) to the alerts the caller may
// see, and drops a group whose alerts are all filtered out. The group's
// other fields are kept. An unrestricted Enforcer returns body unchanged.
// The error wraps ErrUpstream.
func (en *Enforcer) FilterAMAlertGroups(body []byte) ([]byte, error) {
	if en.Unrestricted() {
		return body, nil
	}
	return filterArray(body, func(raw json.RawMessage, _ *amObject) (json.RawMessage, bool, error) {
		var g map[string]json.RawMessage
		if err := json.Unmarshal(raw, &g); err != nil || g == nil {
			return nil, false, errors.New("group is not an object")
		}
		alerts, err := en.FilterAMAlerts(g["alerts"])
		if err != nil {
			return nil, false, err
		}
		if bytes.Equal(alerts, []byte("[]")) {
			return nil, false, nil
		}
		g["alerts"] = alerts
		out, err := encode(g)
		return out, err == nil, err
	})
}

// FilterSilences filters the answer of GET /api/v2/silences (a JSON array
// of silences) to the silences confined to the caller's allowed values
// (SilenceConfined). An unrestricted Enforcer returns body unchanged. The
// error wraps ErrUpstream.
func (en *Enforcer) FilterSilences(body []byte) ([]byte, error) {
	if en.Unrestricted() {
		return body, nil
	}
	return filterArray(body, func(raw json.RawMessage, o *amObject) (json.RawMessage, bool, error) {
		return raw, en.SilenceConfined(o.Matchers), nil
	})
}

// ReadSilence decodes one silence of Alertmanager's answer (GET
// /api/v2/silence/{id}): its id and matchers. The error wraps ErrUpstream.
func ReadSilence(body []byte) (id string, ms []AMMatcher, err error) {
	var o amObject
	if err := json.Unmarshal(body, &o); err != nil {
		return "", nil, fmt.Errorf("%w: silence: %v", ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies this error; the cause is kept as text so that it cannot reclassify it
	}
	if len(o.Matchers) == 0 {
		return "", nil, fmt.Errorf("%w: silence without matchers", ErrUpstream)
	}
	return o.ID, o.Matchers, nil
}

// PostedAlert is one alert of POST /api/v2/alerts (postableAlert). The
// times are kept as sent, for Alertmanager to read.
type PostedAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     json.RawMessage   `json:"startsAt,omitempty"`
	EndsAt       json.RawMessage   `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// ParseAlerts decodes the body of POST /api/v2/alerts strictly: a JSON
// array of alerts with only the fields above, each with labels. The error
// is an *Error of kind BadData.
func ParseAlerts(body []byte) ([]PostedAlert, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var alerts []PostedAlert
	if err := dec.Decode(&alerts); err != nil {
		return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("alerts: not a JSON array of alerts: %v", err)}
	}
	if dec.More() {
		return nil, &Error{Kind: BadData, Msg: "alerts: more than one JSON value"}
	}
	for i, a := range alerts {
		if len(a.Labels) == 0 {
			return nil, &Error{Kind: BadData, Msg: fmt.Sprintf("alerts[%d]: labels are required", i)}
		}
	}
	return alerts, nil
}

// ConfineAlerts checks alerts a sender pushes: each must carry an allowed
// value for every enforced label, and satisfy every decision matcher (with
// __name__ read as ALERTS). A missing enforced label is added when the
// decision allows exactly one literal value and no regular expression;
// otherwise the alert is refused with a Forbidden error. An unrestricted
// Enforcer changes nothing.
func (en *Enforcer) ConfineAlerts(alerts []PostedAlert) error {
	if en.Unrestricted() {
		return nil
	}
	for i, a := range alerts {
		for j := range en.labels {
			l := &en.labels[j]
			v, ok := a.Labels[l.name]
			switch {
			case ok && v != "":
				if !l.allows(v) {
					return &Error{Kind: Forbidden, Label: l.name, Msg: fmt.Sprintf("alerts[%d]: label %s=%q is not allowed", i, quoteName(l.name), v)}
				}
			case len(l.values) == 1 && len(l.regexes) == 0:
				a.Labels[l.name] = l.values[0]
			default:
				return &Error{Kind: Forbidden, Label: l.name, Msg: fmt.Sprintf("alerts[%d]: label %s is missing, and more than one value is allowed; set it", i, quoteName(l.name))}
			}
		}
		if !en.extraHold(a.Labels, alertsMetric) {
			return &Error{Kind: Forbidden, Msg: fmt.Sprintf("alerts[%d]: its labels are refused by the policy's matchers", i)}
		}
	}
	return nil
}

// FilterAMStatus confines the answer of GET /api/v2/status for a
// restricted caller: config.original, which can carry receivers' webhook
// URLs and secrets, becomes "", and cluster.peers (the cluster's
// addresses) becomes []. The other fields are kept. An unrestricted
// Enforcer returns body unchanged. The error wraps ErrUpstream.
func (en *Enforcer) FilterAMStatus(body []byte) ([]byte, error) {
	if en.Unrestricted() {
		return body, nil
	}
	var st map[string]json.RawMessage
	if err := json.Unmarshal(body, &st); err != nil || st == nil {
		return nil, fmt.Errorf("%w: status is not an object", ErrUpstream)
	}
	st["config"] = json.RawMessage(`{"original":""}`)
	if c, ok := st["cluster"]; ok {
		var cluster map[string]json.RawMessage
		if err := json.Unmarshal(c, &cluster); err != nil || cluster == nil {
			return nil, fmt.Errorf("%w: status.cluster is not an object", ErrUpstream)
		}
		if _, ok := cluster["peers"]; ok {
			cluster["peers"] = json.RawMessage(`[]`)
		}
		b, err := encode(cluster)
		if err != nil {
			return nil, err
		}
		st["cluster"] = b
	}
	return encode(st)
}

// FilterReceivers keeps the receivers of GET /api/v2/receivers (a JSON
// array of {name}) that allowed names. The error wraps ErrUpstream.
func FilterReceivers(body []byte, allowed []string) ([]byte, error) {
	return filterArray(body, func(raw json.RawMessage, _ *amObject) (json.RawMessage, bool, error) {
		var r struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, false, err
		}
		return raw, slices.Contains(allowed, r.Name), nil
	})
}
