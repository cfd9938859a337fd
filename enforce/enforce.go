package enforce

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
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
	Kind  Kind
	Label string // the enforced label concerned, if any
	Msg   string
}

// Error returns e.Msg.
func (e *Error) Error() string { return e.Msg }

// Enforcer is an Enforcement validated and prepared once, so that several
// queries or match[] parameters of one request are confined without
// repeating the work. An Enforcer is immutable and safe for concurrent use.
type Enforcer struct {
	labels []enforcedLabel // sorted by name
}

type enforcedLabel struct {
	name   string
	values []string        // sorted, unique, non-empty
	all    *labels.Matcher // selects exactly values; nil when values is empty
}

// NewEnforcer validates e and prepares it for Rewrite and Matchers. A nil or
// empty e gives an unrestricted Enforcer.
func NewEnforcer(e Enforcement) (*Enforcer, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	en := &Enforcer{labels: make([]enforcedLabel, 0, len(e))}
	for _, name := range slices.Sorted(maps.Keys(e)) {
		values := slices.Clone(e[name])
		slices.Sort(values)
		values = slices.Compact(values)
		l := enforcedLabel{name: name, values: values}
		if len(values) > 0 {
			m, err := valuesMatcher(name, values)
			if err != nil {
				return nil, err
			}
			l.all = m
		}
		en.labels = append(en.labels, l)
	}
	return en, nil
}

// Unrestricted reports whether en lets every selector through unchanged.
func (en *Enforcer) Unrestricted() bool { return len(en.labels) == 0 }

// valuesMatcher returns the matcher that selects exactly values (sorted,
// unique, at least one).
func valuesMatcher(name string, values []string) (*labels.Matcher, error) {
	t, v := valuesMatch(values)
	m, err := labels.NewMatcher(t, name, v)
	if err != nil {
		return nil, &Error{Kind: Invalid, Label: name, Msg: fmt.Sprintf("enforced label %s: build matcher: %v", quoteName(name), err)}
	}
	return m, nil
}

// valuesMatch returns the type and value of the matcher that selects exactly
// values: an equality for one value, otherwise an alternation of the quoted
// values, which Prometheus anchors.
func valuesMatch(values []string) (labels.MatchType, string) {
	if len(values) == 1 {
		return labels.MatchEqual, values[0]
	}
	var b strings.Builder
	for i, v := range values {
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(regexp.QuoteMeta(v))
	}
	return labels.MatchRegexp, b.String()
}

// confine returns ms restricted to the enforcement. ms itself is never
// modified: when a matcher must be added, the result is a new slice that
// shares the caller's matchers. describe names the selector in messages and
// is called only on refusal.
func (en *Enforcer) confine(ms []*labels.Matcher, describe func() string) ([]*labels.Matcher, error) {
	out := ms
	grown := false
	for i := range en.labels {
		add, err := en.labels[i].restrict(ms, describe)
		if err != nil {
			return nil, err
		}
		if add == nil {
			continue
		}
		if !grown {
			out = make([]*labels.Matcher, len(ms), len(ms)+len(en.labels))
			copy(out, ms)
			grown = true
		}
		out = append(out, add)
	}
	return out, nil
}

// restrict returns the matcher to add to ms for label l, or nil when an
// identical matcher is already present. It intersects the allowed values with
// every matcher of ms on l and refuses an empty intersection.
func (l *enforcedLabel) restrict(ms []*labels.Matcher, describe func() string) (*labels.Matcher, error) {
	if len(l.values) == 0 {
		return nil, l.refuse(ms, describe)
	}
	if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return m.Name == l.name }) {
		return l.all, nil
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
		typ, val = valuesMatch(subset)
	}
	for _, m := range ms {
		if m.Name == l.name && m.Type == typ && m.Value == val {
			return nil, nil
		}
	}
	if subset == nil {
		return l.all, nil
	}
	return valuesMatcher(l.name, subset)
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
	if len(l.values) == 0 {
		return &Error{Kind: Forbidden, Label: l.name, Msg: fmt.Sprintf("no value of label %s is allowed", quoteName(l.name))}
	}
	for _, m := range ms {
		if m.Name == l.name && m.Type == labels.MatchEqual && !slices.Contains(l.values, m.Value) {
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
