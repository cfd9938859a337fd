package enforce

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// promql is the stock PromQL parser, configured as a Prometheus server with
// no feature flags: the gateway confines only what the upstream parses the
// same way.
var promql = parser.NewParser(parser.Options{})

// Enforcement maps a label name to the values a caller may see. A nil or
// empty map means unrestricted. A label with an empty value list means that no
// value is allowed, so every selector is refused.
type Enforcement map[string][]string

// Validate reports whether e is a well-formed enforcement: every label name
// is a valid (UTF-8) Prometheus label name other than __name__, and every
// value is a non-empty, valid UTF-8 string listed once. The error is an
// *Error of kind Invalid.
func (e Enforcement) Validate() error {
	for _, name := range slices.Sorted(maps.Keys(e)) {
		if !model.UTF8Validation.IsValidLabelName(name) {
			return &Error{Kind: Invalid, Label: name, Msg: fmt.Sprintf("enforced label name %q is not valid", name)}
		}
		if name == model.MetricNameLabel {
			return &Error{Kind: Invalid, Label: name, Msg: "label __name__ cannot be enforced"}
		}
		seen := make(map[string]struct{}, len(e[name]))
		for _, v := range e[name] {
			switch {
			case v == "":
				return &Error{Kind: Invalid, Label: name, Msg: fmt.Sprintf("enforced label %s has an empty value", quoteName(name))}
			case !utf8.ValidString(v):
				return &Error{Kind: Invalid, Label: name, Msg: fmt.Sprintf("enforced label %s has a value that is not valid UTF-8", quoteName(name))}
			}
			if _, dup := seen[v]; dup {
				return &Error{Kind: Invalid, Label: name, Msg: fmt.Sprintf("enforced label %s lists value %q twice", quoteName(name), v)}
			}
			seen[v] = struct{}{}
		}
	}
	return nil
}

// Kind classifies an *Error so that the caller can map it to a response.
type Kind int

const (
	// BadData is a query or parameter that does not parse or that uses an
	// expression the rewriter does not know (400 bad_data).
	BadData Kind = iota + 1
	// Forbidden is a selector that can only match label values outside the
	// allowed set (403 forbidden).
	Forbidden
	// Invalid is an enforcement from policy that is not well-formed. It is a
	// fault of the policy, not of the caller: deny the request.
	Invalid
)

// String returns the name of the kind.
func (k Kind) String() string {
	switch k {
	case BadData:
		return "bad_data"
	case Forbidden:
		return "forbidden"
	case Invalid:
		return "invalid"
	default:
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
}

// Error is the only error type the package returns. Msg is safe to show the
// client: it names the offending label and the caller's own input, never the
// allowed values.
type Error struct {
	Kind    Kind
	Label   string // the enforced label concerned, if any
	Matcher string // the decision matcher at fault, for an Invalid one
	Msg     string
}

// Error returns e.Msg.
func (e *Error) Error() string { return e.Msg }

// Policy is everything a decision confines a caller to: the literal values
// and regular expressions allowed per label, and extra selector constraints.
// The zero Policy is unrestricted.
type Policy struct {
	// Enforce maps a label name to the literal values the caller may see.
	Enforce Enforcement
	// EnforceRegex maps a label name to regular expressions (RE2, anchored
	// as Prometheus anchors them) whose matches the caller may see, in
	// addition to Enforce's values for the same label. A regular expression
	// that matches the empty string is refused, so that a series lacking the
	// label is never exposed.
	EnforceRegex map[string][]string
	// Matchers are series selectors in braces, such as {secret!="true"},
	// whose matchers are ANDed into every selector (exclusion policies).
	Matchers []string
}

// Validate reports whether p is well-formed. The error is an *Error of kind
// Invalid. It builds the Enforcer and drops it: a caller that goes on to
// confine should call NewPolicyEnforcer alone, which validates the same way.
func (p Policy) Validate() error {
	_, err := NewPolicyEnforcer(p)
	return err
}

// Enforcer is a Policy validated and prepared once, so that several queries,
// match[] parameters or responses of one request are confined without
// repeating the work. An Enforcer is immutable and safe for concurrent use.
type Enforcer struct {
	labels []enforcedLabel   // sorted by name
	extra  []*labels.Matcher // decision matchers, in policy order, without repeats

	// memo holds the narrowed matchers built so far (key: label name,
	// type and value), so that a query repeating one selector compiles its
	// regular expression once. It only grows with what queries narrow to.
	memo sync.Map
}

type enforcedLabel struct {
	name    string
	values  []string          // sorted, unique, non-empty
	regexes []string          // sorted, unique, never match ""
	res     []*labels.Matcher // one per regex, for membership tests
	all     *labels.Matcher   // selects exactly the allowed set; nil when nothing is allowed
}

// NewEnforcer validates e and prepares it for Rewrite and Matchers. A nil or
// empty e gives an unrestricted Enforcer. It is NewPolicyEnforcer for a
// policy of literal values only.
func NewEnforcer(e Enforcement) (*Enforcer, error) {
	return NewPolicyEnforcer(Policy{Enforce: e})
}

// NewPolicyEnforcer validates p and prepares it, in one pass: each regular
// expression is compiled once, both to be checked and to be used. The error
// is an *Error of kind Invalid: a label name that is not valid or is
// __name__, an empty, invalid or repeated value, a regular expression that
// does not compile on its own, is repeated, or matches the empty string, or
// a matcher that is not a braced series selector with at least one matcher
// (the error's Matcher names it). The caller must deny the request.
//
// Build the Enforcer once per decision and reuse it for every query,
// match[] parameter and response of the request: it is the only place a
// policy is validated.
func NewPolicyEnforcer(p Policy) (*Enforcer, error) {
	if len(p.Enforce) == 0 && len(p.EnforceRegex) == 0 && len(p.Matchers) == 0 {
		return &Enforcer{}, nil
	}
	if err := p.Enforce.Validate(); err != nil {
		return nil, err
	}
	names := slices.Sorted(maps.Keys(p.Enforce))
	for name := range p.EnforceRegex {
		if _, ok := p.Enforce[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	en := &Enforcer{labels: make([]enforcedLabel, 0, len(names))}
	for _, name := range names {
		values := slices.Clone(p.Enforce[name])
		slices.Sort(values)
		l := enforcedLabel{name: name, values: values}
		if rs, ok := p.EnforceRegex[name]; ok {
			_, checked := p.Enforce[name]
			var err error
			if l.regexes, l.res, err = compileRegexes(name, rs, checked); err != nil {
				return nil, err
			}
		}
		if len(l.values)+len(l.regexes) > 0 {
			m, err := valuesMatcher(name, l.values, l.regexes)
			if err != nil {
				return nil, err
			}
			l.all = m
		}
		en.labels = append(en.labels, l)
	}
	for _, s := range p.Matchers {
		ms, err := ParseDecisionMatcher(s)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if !containsMatcher(en.extra, m) {
				en.extra = append(en.extra, m)
			}
		}
	}
	return en, nil
}

// compileRegexes checks and compiles the allowed regular expressions of
// label name, returning them sorted with one matcher each. checkedName says
// that Enforcement.Validate has already checked the name.
func compileRegexes(name string, rs []string, checkedName bool) ([]string, []*labels.Matcher, error) {
	if !checkedName {
		if !model.UTF8Validation.IsValidLabelName(name) {
			return nil, nil, &Error{Kind: Invalid, Label: name, Msg: fmt.Sprintf("enforced label name %q is not valid", name)}
		}
		if name == model.MetricNameLabel {
			return nil, nil, &Error{Kind: Invalid, Label: name, Msg: "label __name__ cannot be enforced"}
		}
	}
	compiled := make(map[string]*labels.Matcher, len(rs))
	for _, r := range rs {
		if _, dup := compiled[r]; dup {
			return nil, nil, &Error{Kind: Invalid, Label: name, Msg: fmt.Sprintf("enforced label %s lists regular expression %q twice", quoteName(name), r)}
		}
		m, err := compileRegex(name, r)
		if err != nil {
			return nil, nil, &Error{Kind: Invalid, Label: name, Msg: fmt.Sprintf("enforced label %s: %v", quoteName(name), err)}
		}
		compiled[r] = m
	}
	regexes := slices.Sorted(maps.Keys(compiled))
	res := make([]*labels.Matcher, len(regexes))
	for i, r := range regexes {
		res[i] = compiled[r]
	}
	return regexes, res, nil
}

// ValidateRegex reports whether r may be an allowed regular expression: it is
// valid UTF-8, compiles on its own as RE2 (so that `a)|(b` cannot escape the
// anchoring group Prometheus wraps around it), and does not match the empty
// string, so that a series lacking the label is never exposed.
// NewPolicyEnforcer applies the same rule.
func ValidateRegex(r string) error {
	_, err := compileRegex("l", r)
	return err
}

// compileRegex is ValidateRegex returning the matcher of label name that
// it compiled to check r.
func compileRegex(name, r string) (*labels.Matcher, error) {
	if !utf8.ValidString(r) {
		return nil, errors.New("regular expression is not valid UTF-8")
	}
	if _, err := syntax.Parse(r, syntax.Perl|syntax.DotNL); err != nil {
		return nil, fmt.Errorf("regular expression %q does not compile: %w", r, err)
	}
	m, err := labels.NewMatcher(labels.MatchRegexp, name, r)
	if err != nil {
		return nil, fmt.Errorf("regular expression %q does not compile: %w", r, err)
	}
	if m.Matches("") {
		return nil, fmt.Errorf("regular expression %q matches the empty string, which would expose series without the label", r)
	}
	return m, nil
}

// ParseDecisionMatcher parses one entry of a decision's matchers: a series
// selector in braces with at least one matcher, such as {secret!="true"} or
// {__name__!~"kube_secret_.*",env="prod"}. A bare metric name (up, or
// up{...}) is refused: as a constraint it would confine every selector to
// that one metric, which is never what an exclusion means. The error is an
// *Error of kind Invalid.
func ParseDecisionMatcher(s string) ([]*labels.Matcher, error) {
	if !strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "{") {
		return nil, &Error{Kind: Invalid, Matcher: s, Msg: fmt.Sprintf("decision matcher %q is not a selector in braces such as {secret!=\"true\"}", s)}
	}
	ms, err := promql.ParseMetricSelector(s)
	if err != nil {
		return nil, &Error{Kind: Invalid, Matcher: s, Msg: fmt.Sprintf("decision matcher %q does not parse: %v", s, err)}
	}
	if len(ms) == 0 || slices.Contains(ms, nil) {
		return nil, &Error{Kind: Invalid, Matcher: s, Msg: fmt.Sprintf("decision matcher %q holds no matcher", s)}
	}
	return ms, nil
}

// containsMatcher reports whether ms holds a matcher identical to m.
func containsMatcher(ms []*labels.Matcher, m *labels.Matcher) bool {
	for _, x := range ms {
		if x.Name == m.Name && x.Type == m.Type && x.Value == m.Value {
			return true
		}
	}
	return false
}

// Unrestricted reports whether en lets every selector through unchanged.
func (en *Enforcer) Unrestricted() bool { return len(en.labels) == 0 && len(en.extra) == 0 }

// allows reports whether v is an allowed value of l.
func (l *enforcedLabel) allows(v string) bool {
	if v == "" {
		return false
	}
	if _, ok := slices.BinarySearch(l.values, v); ok {
		return true
	}
	for _, m := range l.res {
		if m.Matches(v) {
			return true
		}
	}
	return false
}

// valuesMatcher returns the matcher that selects exactly values and the
// matches of regexes (sorted, unique, at least one of them).
func valuesMatcher(name string, values, regexes []string) (*labels.Matcher, error) {
	t, v := valuesMatch(values, regexes)
	m, err := labels.NewMatcher(t, name, v)
	if err != nil {
		return nil, &Error{Kind: Invalid, Label: name, Msg: fmt.Sprintf("enforced label %s: build matcher: %v", quoteName(name), err)}
	}
	return m, nil
}

// valuesMatch returns the type and value of the matcher that selects exactly
// values and the matches of regexes: an equality for one value and no
// regex, a lone regex as written, otherwise an alternation of the quoted
// values followed by the regexes, each in a non-capturing group, which
// Prometheus anchors as a whole.
func valuesMatch(values, regexes []string) (labels.MatchType, string) {
	switch {
	case len(values) == 1 && len(regexes) == 0:
		return labels.MatchEqual, values[0]
	case len(values) == 0 && len(regexes) == 1:
		return labels.MatchRegexp, regexes[0]
	}
	var b strings.Builder
	for i, v := range values {
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(regexp.QuoteMeta(v))
	}
	for i, r := range regexes {
		if i > 0 || len(values) > 0 {
			b.WriteByte('|')
		}
		b.WriteString("(?:")
		b.WriteString(r)
		b.WriteByte(')')
	}
	return labels.MatchRegexp, b.String()
}

// confine returns ms restricted to the policy: the decision matchers not
// already present are appended, then one matcher per enforced label that
// needs it. ms itself is never modified: when a matcher must be added, the
// result is a new slice that shares the caller's matchers. The enforced
// labels are intersected with the caller's and the decision's matchers
// together, so that a second confinement adds nothing. describe names the
// selector in messages and is called only on refusal.
func (en *Enforcer) confine(ms []*labels.Matcher, describe func() string) ([]*labels.Matcher, error) {
	out := ms
	grown := false
	grow := func() {
		if !grown {
			out = make([]*labels.Matcher, len(ms), len(ms)+len(en.extra)+len(en.labels))
			copy(out, ms)
			grown = true
		}
	}
	for _, m := range en.extra {
		add, err := needExtra(ms, m, describe)
		if err != nil {
			return nil, err
		}
		if add && !containsMatcher(out, m) {
			grow()
			out = append(out, m)
		}
	}
	base := out
	for i := range en.labels {
		add, err := en.labels[i].restrict(base, describe, &en.memo)
		if err != nil {
			return nil, err
		}
		if add == nil {
			continue
		}
		grow()
		out = append(out, add)
	}
	return out, nil
}

// needExtra reports whether the decision matcher dm must be added to ms. It
// need not when ms holds an identical matcher, or an equality matcher on the
// same label whose value dm accepts (so that up, under {__name__!~"x_.*"},
// stays up and is not given a second name matcher, which PromQL refuses). A
// selector with an equality matcher that dm refuses can only match excluded
// series and is Forbidden.
func needExtra(ms []*labels.Matcher, dm *labels.Matcher, describe func() string) (bool, error) {
	implied := false
	for _, m := range ms {
		if m.Name != dm.Name {
			continue
		}
		if m.Type == dm.Type && m.Value == dm.Value {
			return false, nil
		}
		if m.Type == labels.MatchEqual {
			if !dm.Matches(m.Value) {
				return false, &Error{Kind: Forbidden, Label: dm.Name, Msg: fmt.Sprintf("selector %s can only match series the policy excludes", describe())}
			}
			implied = true
		}
	}
	return !implied, nil
}

// restrict returns the matcher to add to ms for label l, or nil when none
// is needed. It intersects the allowed values with every matcher of ms on l
// and refuses an empty intersection.
func (l *enforcedLabel) restrict(ms []*labels.Matcher, describe func() string, memo *sync.Map) (*labels.Matcher, error) {
	if l.all == nil {
		return nil, l.refuse(ms, describe)
	}
	if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return m.Name == l.name }) {
		return l.all, nil
	}
	if len(l.regexes) > 0 {
		return l.restrictRegex(ms, describe, memo)
	}
	var subset []string
	n := 0
	for vi, v := range l.values {
		if matchesAll(ms, l.name, v) {
			n++
			if subset != nil {
				subset = append(subset, v)
			}
			continue
		}
		if subset == nil {
			subset = make([]string, 0, len(l.values)-1)
			subset = append(subset, l.values[:vi]...)
		}
	}
	if n == 0 {
		return nil, l.refuse(ms, describe)
	}
	typ, val := l.all.Type, l.all.Value
	if subset != nil {
		typ, val = valuesMatch(subset, nil)
	}
	for _, m := range ms {
		if m.Name == l.name && m.Type == typ && m.Value == val {
			return nil, nil
		}
	}
	if subset == nil {
		return l.all, nil
	}
	return l.memoMatcher(memo, subset, nil)
}

// restrictRegex is restrict for a label allowed regular expressions, whose
// intersection with the caller's regular expressions cannot be computed.
// A caller's equality matcher decides alone: an allowed value needs nothing
// more, any other value is refused. Otherwise the literal values are narrowed
// by the caller's matchers as for literals, and one matcher selecting them
// and every allowed regex is added.
func (l *enforcedLabel) restrictRegex(ms []*labels.Matcher, describe func() string, memo *sync.Map) (*labels.Matcher, error) {
	for _, m := range ms {
		if m.Name != l.name || m.Type != labels.MatchEqual {
			continue
		}
		if !l.allows(m.Value) {
			return nil, &Error{Kind: Forbidden, Label: l.name, Msg: fmt.Sprintf("label %s is not allowed", m.String())}
		}
		if !matchesAll(ms, l.name, m.Value) {
			return nil, &Error{Kind: Forbidden, Label: l.name, Msg: fmt.Sprintf("selector %s can only match %s values outside the allowed set", describe(), quoteName(l.name))}
		}
		return nil, nil
	}
	subset := make([]string, 0, len(l.values))
	for _, v := range l.values {
		if matchesAll(ms, l.name, v) {
			subset = append(subset, v)
		}
	}
	typ, val := valuesMatch(subset, l.regexes)
	for _, m := range ms {
		if m.Name == l.name && m.Type == typ && m.Value == val {
			return nil, nil
		}
	}
	if len(subset) == len(l.values) {
		return l.all, nil
	}
	return l.memoMatcher(memo, subset, l.regexes)
}

// memoMatcher is valuesMatcher through the Enforcer's memo.
func (l *enforcedLabel) memoMatcher(memo *sync.Map, values, regexes []string) (*labels.Matcher, error) {
	typ, val := valuesMatch(values, regexes)
	key := l.name + "\x00" + typ.String() + "\x00" + val
	if m, ok := memo.Load(key); ok {
		return m.(*labels.Matcher), nil
	}
	m, err := labels.NewMatcher(typ, l.name, val)
	if err != nil {
		return nil, &Error{Kind: Invalid, Label: l.name, Msg: fmt.Sprintf("enforced label %s: build matcher: %v", quoteName(l.name), err)}
	}
	memo.Store(key, m)
	return m, nil
}

func matchesAll(ms []*labels.Matcher, name, v string) bool {
	for _, m := range ms {
		if m.Name == name && !m.Matches(v) {
			return false
		}
	}
	return true
}

// refuse builds the Forbidden error for a selector that cannot match any
// allowed value of l.
func (l *enforcedLabel) refuse(ms []*labels.Matcher, describe func() string) error {
	if l.all == nil {
		return &Error{Kind: Forbidden, Label: l.name, Msg: fmt.Sprintf("no value of label %s is allowed", quoteName(l.name))}
	}
	for _, m := range ms {
		if m.Name == l.name && m.Type == labels.MatchEqual && !l.allows(m.Value) {
			return &Error{Kind: Forbidden, Label: l.name, Msg: fmt.Sprintf("label %s is not allowed", m.String())}
		}
	}
	return &Error{Kind: Forbidden, Label: l.name, Msg: fmt.Sprintf("selector %s can only match %s values outside the allowed set", describe(), quoteName(l.name))}
}

// quoteName returns a label name as PromQL writes it: bare when it is a
// legacy name, quoted otherwise.
func quoteName(name string) string {
	if model.LegacyValidation.IsValidLabelName(name) {
		return name
	}
	return strconv.Quote(name)
}
