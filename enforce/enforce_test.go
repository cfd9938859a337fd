package enforce

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		e       Enforcement
		wantErr string
	}{
		{name: "nil", e: nil},
		{name: "empty", e: Enforcement{}},
		{name: "one label", e: Enforcement{"namespace": {"a", "b"}}},
		{name: "no values", e: Enforcement{"namespace": {}}},
		{name: "utf8 name", e: Enforcement{"k8s.namespace.name": {"a"}}},
		{name: "empty name", e: Enforcement{"": {"a"}}, wantErr: `enforced label name "" is not valid`},
		{name: "invalid utf8 name", e: Enforcement{"\xff": {"a"}}, wantErr: `enforced label name "\xff" is not valid`},
		{name: "metric name", e: Enforcement{"__name__": {"up"}}, wantErr: "label __name__ cannot be enforced"},
		{name: "empty value", e: Enforcement{"namespace": {"a", ""}}, wantErr: "enforced label namespace has an empty value"},
		{name: "invalid utf8 value", e: Enforcement{"namespace": {"\xff"}}, wantErr: "enforced label namespace has a value that is not valid UTF-8"},
		{name: "duplicate", e: Enforcement{"namespace": {"a", "b", "a"}}, wantErr: `enforced label namespace lists value "a" twice`},
		{name: "quoted name in message", e: Enforcement{"k8s.ns": {""}}, wantErr: `enforced label "k8s.ns" has an empty value`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.e.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Kind != Invalid {
				t.Fatalf("Validate() = %#v, want *Error of kind Invalid", err)
			}
			if pe.Msg != tc.wantErr {
				t.Errorf("Validate() = %q, want %q", pe.Msg, tc.wantErr)
			}
		})
	}
}

func TestErrorKinds(t *testing.T) {
	a := Enforcement{"namespace": {"a"}}
	tests := []struct {
		name      string
		query     string
		e         Enforcement
		wantKind  Kind
		wantLabel string
	}{
		{name: "parse error", query: "up{", e: a, wantKind: BadData},
		{name: "empty query", query: "", e: a, wantKind: BadData},
		{name: "forbidden", query: `up{namespace="b"}`, e: a, wantKind: Forbidden, wantLabel: "namespace"},
		{name: "forbidden widening", query: `up{namespace!="a"}`, e: a, wantKind: Forbidden, wantLabel: "namespace"},
		{name: "forbidden second label", query: `up{env="x"}`, e: Enforcement{"namespace": {"a"}, "env": {"p"}}, wantKind: Forbidden, wantLabel: "env"},
		{name: "invalid enforcement", query: "up", e: Enforcement{"__name__": {"x"}}, wantKind: Invalid, wantLabel: "__name__"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseQuery(tc.query)
			if err == nil {
				_, err = Rewrite(q, tc.e)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error = %#v, want *Error", err)
			}
			if pe.Kind != tc.wantKind || pe.Label != tc.wantLabel {
				t.Errorf("error = {Kind: %v, Label: %q}, want {Kind: %v, Label: %q}", pe.Kind, pe.Label, tc.wantKind, tc.wantLabel)
			}
			if pe.Error() != pe.Msg || pe.Msg == "" {
				t.Errorf("Error() = %q, Msg = %q", pe.Error(), pe.Msg)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	got := []string{BadData.String(), Forbidden.String(), Invalid.String(), Kind(0).String()}
	want := []string{"bad_data", "forbidden", "invalid", "Kind(0)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Kind.String() mismatch (-want +got):\n%s", diff)
	}
}

func TestMatchers(t *testing.T) {
	a := Enforcement{"namespace": {"a"}}
	ac := Enforcement{"namespace": {"c", "a"}}
	tests := []struct {
		name    string
		match   []string
		e       Enforcement
		want    []string
		wantErr string
		kind    Kind
	}{
		{name: "no match unrestricted", e: nil, want: nil},
		{name: "no match empty enforcement", e: Enforcement{}, want: nil},
		{name: "no match one value", e: a, want: []string{`{namespace="a"}`}},
		{name: "no match two values", e: ac, want: []string{`{namespace=~"a|c"}`}},
		{name: "no match two labels", e: Enforcement{"namespace": {"b", "a"}, "env": {"prod"}}, want: []string{`{env="prod",namespace=~"a|b"}`}},
		{name: "no match no values allowed", e: Enforcement{"namespace": {}}, wantErr: "no value of label namespace is allowed", kind: Forbidden},
		{name: "metric name", match: []string{"up"}, e: a, want: []string{`{__name__="up",namespace="a"}`}},
		{name: "several", match: []string{"up", `{job="x"}`}, e: ac, want: []string{`{__name__="up",namespace=~"a|c"}`, `{job="x",namespace=~"a|c"}`}},
		{name: "A1 conflicting equality", match: []string{`up{namespace="b"}`}, e: a, wantErr: `label namespace="b" is not allowed`, kind: Forbidden},
		{name: "A1 one of several refused", match: []string{"up", `up{namespace="b"}`}, e: a, wantErr: `label namespace="b" is not allowed`, kind: Forbidden},
		{name: "A1 allowed kept", match: []string{`up{namespace="a"}`}, e: a, want: []string{`{__name__="up",namespace="a"}`}},
		{name: "A2 regex widening", match: []string{`{namespace=~".+"}`}, e: a, want: []string{`{namespace="a",namespace=~".+"}`}},
		{name: "A2 not equal", match: []string{`{namespace!="a"}`}, e: a, wantErr: `selector {namespace!="a"} can only match namespace values outside the allowed set`, kind: Forbidden},
		{name: "A2 not equal narrows", match: []string{`{namespace!="a"}`}, e: ac, want: []string{`{namespace!="a",namespace="c"}`}},
		{name: "A2 empty value", match: []string{`{namespace=""}`}, e: a, wantErr: `label namespace="" is not allowed`, kind: Forbidden},
		{name: "A2 every metric", match: []string{`{__name__=~".+"}`}, e: a, want: []string{`{__name__=~".+",namespace="a"}`}},
		{name: "A4 quoted names", match: []string{`{"namespace"="b","__name__"="up"}`}, e: a, wantErr: `label namespace="b" is not allowed`, kind: Forbidden},
		{name: "A4 quoted utf8 metric", match: []string{`{"http.server.duration"}`}, e: a, want: []string{`{__name__="http.server.duration",namespace="a"}`}},
		{name: "A4 utf8 enforced label", match: []string{`up`}, e: Enforcement{"k8s.ns": {"a"}}, want: []string{`{"k8s.ns"="a",__name__="up"}`}},
		{name: "A5 value injection", match: []string{"up"}, e: Enforcement{"namespace": {`a"} or up{namespace="b`}}, want: []string{`{__name__="up",namespace="a\"} or up{namespace=\"b"}`}},
		{name: "A5 match injection", match: []string{`up{namespace="a"} or up{namespace="b"}`}, e: a, wantErr: `invalid parameter "match[]": 1:19: parse error: unexpected <op:or>`, kind: BadData},
		{name: "bad match", match: []string{"up{"}, e: a, wantErr: `invalid parameter "match[]": 1:4: parse error: unexpected end of input inside braces`, kind: BadData},
		{name: "empty match", match: []string{""}, e: a, wantErr: `invalid parameter "match[]": unknown position: parse error: unexpected end of input`, kind: BadData},
		{name: "expression is not a selector", match: []string{"rate(up[5m])"}, e: a, kind: BadData, wantErr: `invalid parameter "match[]": 1:5: parse error: unexpected "("`},
		{name: "bad match unrestricted", match: []string{"up["}, e: nil, kind: BadData, wantErr: `invalid parameter "match[]": 1:3: parse error: unexpected "["`},
		{name: "unrestricted reserialised", match: []string{`up{namespace="b"}`}, e: nil, want: []string{`{__name__="up",namespace="b"}`}},
		{name: "invalid enforcement", match: []string{"up"}, e: Enforcement{"namespace": {""}}, wantErr: "enforced label namespace has an empty value", kind: Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Matchers(tc.match, tc.e)
			if tc.wantErr != "" {
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("Matchers(%q) error = %#v, want *Error", tc.match, err)
				}
				if pe.Kind != tc.kind || pe.Msg != tc.wantErr {
					t.Errorf("Matchers(%q) error = %v %q, want %v %q", tc.match, pe.Kind, pe.Msg, tc.kind, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Matchers(%q) error = %v", tc.match, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Matchers(%q) mismatch (-want +got):\n%s", tc.match, diff)
			}
			for _, s := range got {
				ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
				if err != nil {
					t.Fatalf("output %q does not parse: %v", s, err)
				}
				if err := checkConfined(ms, Policy{Enforce: tc.e}); err != nil {
					t.Errorf("output %q: %v", s, err)
				}
			}
			again, err := Matchers(got, tc.e)
			if err != nil {
				t.Fatalf("Matchers(%q) again: %v", got, err)
			}
			if len(got) > 0 && !cmp.Equal(got, again) {
				t.Errorf("Matchers is not idempotent: %q, then %q", got, again)
			}
		})
	}
}

func TestSelectors(t *testing.T) {
	tests := []struct {
		query string
		want  []Selector
	}{
		{query: "1+1", want: []Selector{}},
		{query: `up{job="x"}`, want: []Selector{{Metric: "up", Matchers: []Matcher{{"job", "=", "x"}, {"__name__", "=", "up"}}}}},
		{query: `{"namespace"="b","__name__"="up"}`, want: []Selector{{Metric: "up", Matchers: []Matcher{{"namespace", "=", "b"}, {"__name__", "=", "up"}}}}},
		{query: `{__name__=~"up|down",a!="1",b!~"2"}`, want: []Selector{{Metric: "", Matchers: []Matcher{{"__name__", "=~", "up|down"}, {"a", "!=", "1"}, {"b", "!~", "2"}}}}},
		{
			query: `topk(scalar(a), max_over_time(rate(b[5m])[1h:])) / on () group_left label_replace(c offset 1h, "x", "y", "z", ".*")`,
			want: []Selector{
				{Metric: "a", Matchers: []Matcher{{"__name__", "=", "a"}}},
				{Metric: "b", Matchers: []Matcher{{"__name__", "=", "b"}}},
				{Metric: "c", Matchers: []Matcher{{"__name__", "=", "c"}}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			q, err := ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, q.Selectors()); diff != "" {
				t.Errorf("Selectors() mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{q.String()}, q.Expressions()); diff != "" {
				t.Errorf("Expressions() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLookback(t *testing.T) {
	eval := time.Unix(1_700_000_000, 0)
	tests := []struct {
		query string
		want  time.Duration
	}{
		{query: "1+1", want: 0},
		{query: "up", want: 0},
		{query: "rate(up[5m])", want: 5 * time.Minute},
		{query: "up offset 1h", want: time.Hour},
		{query: "rate(up[5m] offset 1h)", want: time.Hour + 5*time.Minute},
		{query: "up offset -1h", want: 0},
		{query: "rate(up[2h] offset -1h)", want: time.Hour},
		{query: "max_over_time(rate(up[5m])[1h:1m])", want: time.Hour + 5*time.Minute},
		{query: "max_over_time(rate(up[5m] offset 10m)[1h:1m] offset 1d)", want: 24*time.Hour + time.Hour + 15*time.Minute},
		{query: "max_over_time(max_over_time(up[1h:])[1d:])", want: 25 * time.Hour},
		{query: "max_over_time(rate(up[5m])[1h:1m] offset -2h)", want: 0},
		{query: "max_over_time(rate(up[3h])[1h:1m] offset -2h)", want: 2 * time.Hour},
		{query: "up @ 1699999000", want: 1000 * time.Second},
		{query: "rate(up[5m] @ 1699999000 offset 1m)", want: 1000*time.Second + 6*time.Minute},
		{query: "up @ 1700001000", want: 0},
		{query: "rate(up[1h] @ 1700001000)", want: 43*time.Minute + 20*time.Second},
		{query: "rate(up[1h] @ 1700000600)", want: 50 * time.Minute},
		{query: "max_over_time(rate(up[5m])[1h:] @ 1699999000)", want: 1000*time.Second + time.Hour + 5*time.Minute},
		{query: "max_over_time(rate(up[5m] @ 1699990000)[1h:] offset 1d)", want: 10000*time.Second + 5*time.Minute},
		{query: "max_over_time(rate(up[5m] @ 1700000000)[1h:] @ 1600000000)", want: 5 * time.Minute},
		{query: "rate(up[1h] @ end())", want: time.Hour},
		{query: "max_over_time(rate(up[5m] @ start())[1d:] offset 1d)", want: 5 * time.Minute},
		{query: "max_over_time(rate(up[5m])[1d:] @ start() offset 1d)", want: 48*time.Hour + 5*time.Minute},
		{query: "up offset 1h + rate(x[3h]) + rate(y[1h] @ 1699999000)", want: 3 * time.Hour},
		{query: "topk(scalar(z offset 7d), up)", want: 7 * 24 * time.Hour},
		{query: "up offset 200y + up offset 200y", want: 200 * 365 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			q, err := ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.Lookback(eval); got != tc.want {
				t.Errorf("Lookback(%q) = %v, want %v", tc.query, got, tc.want)
			}
		})
	}
}

func TestLookbackSaturates(t *testing.T) {
	q, err := ParseQuery("max_over_time(max_over_time(rate(up[200y] offset 200y)[200y:] offset 200y)[200y:] offset 200y)")
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Lookback(time.Unix(0, 0)); got <= 0 {
		t.Errorf("Lookback = %v, want a large positive duration", got)
	}
}

// TestRewriteDoesNotMutate checks that Rewrite leaves the parsed query as it
// was, so that the audit record and the policy input see what was sent.
func TestRewriteDoesNotMutate(t *testing.T) {
	const query = `sum(rate(x[5m])) / on () group_left max_over_time(up{namespace=~".+"}[1h:]) or absent(y)`
	q, err := ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	before := q.expr.String()
	selectors := q.Selectors()
	for _, e := range []Enforcement{{"namespace": {"a"}}, {"namespace": {"a", "c"}, "env": {"p"}}} {
		if _, err := Rewrite(q, e); err != nil {
			t.Fatal(err)
		}
	}
	if got := q.expr.String(); got != before {
		t.Errorf("parsed expression changed: %q, want %q", got, before)
	}
	if got := q.String(); got != before {
		t.Errorf("String() = %q, want %q", got, before)
	}
	if diff := cmp.Diff(selectors, q.Selectors()); diff != "" {
		t.Errorf("Selectors() changed (-before +after):\n%s", diff)
	}
}

func TestRewriteUnrestricted(t *testing.T) {
	q, err := ParseQuery(`up{namespace="b"}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Enforcement{nil, {}} {
		got, err := Rewrite(q, e)
		if err != nil || got != `up{namespace="b"}` {
			t.Errorf("Rewrite(%v) = %q, %v, want the query unchanged", e, got, err)
		}
	}
}

func TestRewriteNilQuery(t *testing.T) {
	for _, q := range []*Query{nil, {}} {
		_, err := Rewrite(q, Enforcement{"namespace": {"a"}})
		var pe *Error
		if !errors.As(err, &pe) || pe.Kind != BadData {
			t.Errorf("Rewrite(%v) error = %v, want BadData", q, err)
		}
	}
}

// fakeExpr is a node type the rewriter does not know.
type fakeExpr struct{}

func (fakeExpr) String() string                        { return "fake" }
func (fakeExpr) Pretty(int) string                     { return "fake" }
func (fakeExpr) PositionRange() posrange.PositionRange { return posrange.PositionRange{} }
func (fakeExpr) Type() parser.ValueType                { return parser.ValueTypeVector }
func (fakeExpr) PromQLExpr()                           {}

// TestUnknownNodes checks that a node the rewriter does not know is an
// error in both walks (analysis and rewrite), never skipped (A3).
func TestUnknownNodes(t *testing.T) {
	experimental := parser.NewParser(parser.Options{ExperimentalDurationExpr: true})
	mustParse := func(s string) parser.Expr {
		t.Helper()
		e, err := experimental.ParseExpr(s)
		if err != nil {
			t.Fatalf("ParseExpr(%q): %v", s, err)
		}
		return e
	}
	tests := []struct {
		name string
		expr parser.Expr
	}{
		{name: "offset duration expression", expr: mustParse(`up offset (1h + 1m)`)},
		{name: "range duration expression", expr: mustParse(`rate(up[5m * 2])`)},
		{name: "subquery step expression", expr: mustParse(`max_over_time(up[1h:1m * 2])`)},
		{name: "subquery offset expression", expr: mustParse(`max_over_time(up[1h:1m] offset (1h + 1m))`)},
		{name: "duration expression node", expr: &parser.DurationExpr{Op: parser.ADD, LHS: &parser.NumberLiteral{Val: 1}, RHS: &parser.NumberLiteral{Val: 1}}},
		{name: "unknown node", expr: fakeExpr{}},
		{name: "unknown node in parens", expr: &parser.ParenExpr{Expr: fakeExpr{}}},
		{name: "unknown node in call", expr: &parser.Call{Func: parser.Functions["abs"], Args: parser.Expressions{fakeExpr{}}}},
		{name: "unknown node in binary", expr: &parser.BinaryExpr{Op: parser.ADD, LHS: &parser.NumberLiteral{Val: 1}, RHS: fakeExpr{}}},
		{name: "matrix of a non-selector", expr: &parser.MatrixSelector{VectorSelector: fakeExpr{}, Range: time.Minute}},
		{name: "nil expression", expr: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newQuery(tc.expr)
			if pe, aerr := asError(err); aerr != nil || pe.Kind != BadData || !strings.HasPrefix(pe.Msg, "unsupported expression") {
				t.Errorf("newQuery error = %v, want BadData unsupported expression", err)
			}
			en, err := NewEnforcer(Enforcement{"namespace": {"a"}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = en.Rewrite(&Query{expr: tc.expr, str: "x"})
			if pe, aerr := asError(err); aerr != nil || pe.Kind != BadData {
				t.Errorf("Rewrite error = %v, want BadData", err)
			}
		})
	}
}

// TestStepInvariant checks the node the engine inserts; the parser never
// produces it, but a selector under it is confined all the same.
func TestStepInvariant(t *testing.T) {
	vs := &parser.VectorSelector{Name: "up", LabelMatchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "up")}}
	q, err := newQuery(&parser.StepInvariantExpr{Expr: vs})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Rewrite(q, Enforcement{"namespace": {"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `up{namespace="a"}`; got != want {
		t.Errorf("Rewrite = %q, want %q", got, want)
	}
	if len(vs.LabelMatchers) != 1 {
		t.Errorf("Rewrite modified the selector: %v", vs.LabelMatchers)
	}
}

func TestEnforcerReuse(t *testing.T) {
	en, err := NewEnforcer(Enforcement{"namespace": {"c", "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if en.Unrestricted() {
		t.Fatal("Unrestricted() = true")
	}
	for _, tc := range []struct{ query, want string }{
		{"up", `up{namespace=~"a|c"}`},
		{`up{namespace="c"}`, `up{namespace="c"}`},
		{`up{namespace!="c"}`, `up{namespace!="c",namespace="a"}`},
		{"up", `up{namespace=~"a|c"}`},
	} {
		q, err := ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := en.Rewrite(q)
		if err != nil || got != tc.want {
			t.Errorf("Rewrite(%q) = %q, %v, want %q", tc.query, got, err, tc.want)
		}
	}
	un, err := NewEnforcer(nil)
	if err != nil || !un.Unrestricted() {
		t.Errorf("NewEnforcer(nil) = %v, %v, want unrestricted", un, err)
	}
}

// TestNewPolicyEnforcerErrors checks the one validation a policy gets: each
// problem is an Invalid *Error naming the label or the decision matcher at
// fault.
func TestNewPolicyEnforcerErrors(t *testing.T) {
	tests := []struct {
		name        string
		p           Policy
		wantLabel   string
		wantMatcher string
		wantMsg     string
	}{
		{name: "empty value", p: Policy{Enforce: Enforcement{"namespace": {""}}}, wantLabel: "namespace", wantMsg: "enforced label namespace has an empty value"},
		{name: "regex on __name__", p: Policy{EnforceRegex: map[string][]string{"__name__": {"up"}}}, wantLabel: "__name__", wantMsg: "label __name__ cannot be enforced"},
		{name: "regex label not valid", p: Policy{EnforceRegex: map[string][]string{"": {"a"}}}, wantLabel: "", wantMsg: `enforced label name "" is not valid`},
		{name: "regex matching empty", p: Policy{EnforceRegex: map[string][]string{"namespace": {"team-.*|"}}}, wantLabel: "namespace", wantMsg: `enforced label namespace: regular expression "team-.*|" matches the empty string, which would expose series without the label`},
		{name: "regex escaping its group", p: Policy{EnforceRegex: map[string][]string{"namespace": {"a)|(b"}}}, wantLabel: "namespace", wantMsg: "enforced label namespace: regular expression \"a)|(b\" does not compile: error parsing regexp: unexpected ): `a)|(b`"},
		{name: "regex not UTF-8", p: Policy{EnforceRegex: map[string][]string{"namespace": {"\xff"}}}, wantLabel: "namespace", wantMsg: "enforced label namespace: regular expression is not valid UTF-8"},
		{name: "regex twice", p: Policy{Enforce: Enforcement{"namespace": {"a"}}, EnforceRegex: map[string][]string{"namespace": {"b.+", "a.+", "b.+"}}}, wantLabel: "namespace", wantMsg: `enforced label namespace lists regular expression "b.+" twice`},
		{name: "matcher bare name", p: Policy{Matchers: []string{"up"}}, wantMatcher: "up", wantMsg: `decision matcher "up" is not a selector in braces such as {secret!="true"}`},
		{name: "matcher unparsable", p: Policy{Matchers: []string{`{a="b"}`, "{secret!=}"}}, wantMatcher: "{secret!=}", wantMsg: `decision matcher "{secret!=}" does not parse: 1:10: parse error: unexpected "}" in label matching, expected string`},
		{name: "matcher empty", p: Policy{Matchers: []string{"{}"}}, wantMatcher: "{}", wantMsg: `decision matcher "{}" holds no matcher`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			en, err := NewPolicyEnforcer(tc.p)
			pe, ok := errors.AsType[*Error](err)
			if !ok || en != nil {
				t.Fatalf("NewPolicyEnforcer() = %v, %v; want nil and an *Error", en, err)
			}
			want := &Error{Kind: Invalid, Label: tc.wantLabel, Matcher: tc.wantMatcher, Msg: tc.wantMsg}
			if diff := cmp.Diff(want, pe); diff != "" {
				t.Errorf("NewPolicyEnforcer() error mismatch (-want +got):\n%s", diff)
			}
			if err := tc.p.Validate(); err == nil || err.Error() != tc.wantMsg {
				t.Errorf("Validate() = %v, want %q", err, tc.wantMsg)
			}
		})
	}
}

// TestValidateRegex checks the exported rule on its own.
func TestValidateRegex(t *testing.T) {
	for _, r := range []string{"team-.+", "a|b", "(?i)prod", "x*y"} {
		if err := ValidateRegex(r); err != nil {
			t.Errorf("ValidateRegex(%q) = %v, want nil", r, err)
		}
	}
	for _, r := range []string{"", ".*", "a|", "(x)?", "a)|(b", "[", "\xff"} {
		if err := ValidateRegex(r); err == nil {
			t.Errorf("ValidateRegex(%q) = nil, want an error", r)
		}
	}
}

// TestNewPolicyEnforcerRegexesSorted checks that the allowed regular
// expressions are used sorted whatever their order in the policy, so that
// two equal policies confine to the same text.
func TestNewPolicyEnforcerRegexesSorted(t *testing.T) {
	q, err := ParseQuery("up")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rs := range [][]string{{"b.+", "a.+"}, {"a.+", "b.+"}} {
		en, err := NewPolicyEnforcer(Policy{Enforce: Enforcement{"namespace": {"z"}}, EnforceRegex: map[string][]string{"namespace": rs}})
		if err != nil {
			t.Fatal(err)
		}
		out, err := en.Rewrite(q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out)
	}
	want := `up{namespace=~"z|(?:a.+)|(?:b.+)"}`
	if got[0] != want || got[1] != want {
		t.Errorf("Rewrite(up) = %q, want %q twice", got, want)
	}
}
