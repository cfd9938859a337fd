package enforce

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// This file holds the independent soundness check used by the golden tests
// and the fuzz targets. It shares no code with the rewriter: it parses the
// output again and inspects it with parser.Inspect.

// checkRewritten reports why out, the rewrite of a query under p, is not
// confined to p, or nil.
func checkRewritten(out string, p Policy) error {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(out)
	if err != nil {
		return fmt.Errorf("output %q does not parse: %w", out, err)
	}
	var bad error
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && bad == nil {
			if err := checkConfined(vs.LabelMatchers, p); err != nil {
				bad = fmt.Errorf("selector %s in %q: %w", vs, out, err)
			}
		}
		return nil
	})
	return bad
}

// checkConfined reports whether the matchers of one selector can only match
// allowed values of every enforced label and carry every decision matcher.
// For each label two independent tests must agree: at least one matcher on
// the label is proven to select allowed values only (an equality on one, a
// finite language enumerated from its regular expression syntax, or an
// alternation whose every branch is an allowed literal or one of the allowed
// regular expressions); and the conjunction of the matchers, evaluated by
// Prometheus itself, rejects a set of probe values outside the allowed set,
// the empty string among them. Allowed regular expressions are compiled here
// with the standard library, anchored, not by the code under test.
func checkConfined(ms []*labels.Matcher, p Policy) error {
	names := map[string]bool{}
	for n := range p.Enforce {
		names[n] = true
	}
	for n := range p.EnforceRegex {
		names[n] = true
	}
	for name := range names {
		allowed, regexes := p.Enforce[name], p.EnforceRegex[name]
		var res []*regexp.Regexp
		for _, r := range regexes {
			res = append(res, regexp.MustCompile("^(?s:"+r+")$"))
		}
		in := func(v string) bool {
			if v == "" {
				return false
			}
			if slices.Contains(allowed, v) {
				return true
			}
			return slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(v) })
		}
		proven := false
		for _, m := range ms {
			if m.Name != name {
				continue
			}
			lang, ok := language(m)
			if ok && len(lang) > 0 && !slices.ContainsFunc(lang, func(v string) bool { return !in(v) }) {
				proven = true
			}
			if m.Type == labels.MatchRegexp && len(regexes) > 0 && branchesAllowed(m.Value, in, regexes) {
				proven = true
			}
		}
		if !proven {
			return fmt.Errorf("no matcher confines label %q to %q and %q", name, allowed, regexes)
		}
		for _, v := range append(probes(allowed), regexProbes(regexes)...) {
			if in(v) {
				continue
			}
			all := true
			for _, m := range ms {
				if m.Name == name && !m.Matches(v) {
					all = false
				}
			}
			if all {
				return fmt.Errorf("label %q: matchers accept forbidden value %q", name, v)
			}
		}
	}
	for _, s := range p.Matchers {
		want, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			return fmt.Errorf("decision matcher %q: %w", s, err)
		}
		for _, w := range want {
			// Present as written, or implied by an equality on its label.
			if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool {
				return m.Name == w.Name && (m.Type == w.Type && m.Value == w.Value || m.Type == labels.MatchEqual && w.Matches(m.Value))
			}) {
				return fmt.Errorf("decision matcher %s is missing", w)
			}
			for _, m := range ms {
				if m.Name == w.Name && m.Type == labels.MatchEqual && !w.Matches(m.Value) {
					return fmt.Errorf("equality %s contradicts decision matcher %s", m, w)
				}
			}
		}
	}
	return nil
}

// branchesAllowed reports whether the regular expression v, split at its
// top-level alternations, consists only of allowed regular expressions
// (whole, or each in a non-capturing group) and finite languages of allowed
// values.
func branchesAllowed(v string, in func(string) bool, regexes []string) bool {
	if slices.Contains(regexes, v) {
		return true
	}
	for _, b := range splitTop(v) {
		if slices.ContainsFunc(regexes, func(r string) bool { return b == "(?:"+r+")" }) {
			continue
		}
		re, err := syntax.Parse(b, syntax.Perl|syntax.DotNL)
		if err != nil {
			return false
		}
		lang, ok := enumerate(re)
		if !ok || len(lang) == 0 || slices.ContainsFunc(lang, func(v string) bool { return !in(v) }) {
			return false
		}
	}
	return true
}

// splitTop splits a regular expression at the | that are outside groups,
// character classes and escapes.
func splitTop(v string) []string {
	var out []string
	depth, class, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\':
			i++
		case class:
			if c == ']' {
				class = false
			}
		case c == '[':
			class = true
			if i+1 < len(v) && v[i+1] == ']' {
				i++
			}
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// regexProbes returns values near allowed regular expressions: their literal
// characters with small changes. Those the regexes do not match probe the
// complement.
func regexProbes(regexes []string) []string {
	out := []string{"", "x", "\n", "team", "TEAM-A", "prod", "dev"}
	for _, r := range regexes {
		lit := strings.Map(func(c rune) rune {
			if strings.ContainsRune(`.*+?()[]{}|^$\`, c) {
				return -1
			}
			return c
		}, r)
		out = append(out, lit, lit+"\n", "\n"+lit, "x"+lit, " "+lit, strings.ToUpper(lit))
		if len(lit) > 1 {
			out = append(out, lit[:len(lit)-1], lit[1:])
		}
	}
	return out
}

// language returns the finite set of values m matches, when it can be
// enumerated.
func language(m *labels.Matcher) ([]string, bool) {
	switch m.Type {
	case labels.MatchEqual:
		return []string{m.Value}, true
	case labels.MatchRegexp:
		re, err := syntax.Parse(m.Value, syntax.Perl|syntax.DotNL)
		if err != nil {
			return nil, false
		}
		return enumerate(re)
	default:
		return nil, false
	}
}

const maxLanguage = 4096

// enumerate lists the strings a regular expression matches in full, or
// reports false when the language is infinite, large or uses a feature the
// enumeration does not model.
func enumerate(re *syntax.Regexp) ([]string, bool) {
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
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if len(out) >= maxLanguage {
					return nil, false
				}
				out = append(out, string(r))
			}
		}
		return out, true
	case syntax.OpCapture:
		return enumerate(re.Sub[0])
	case syntax.OpQuest:
		sub, ok := enumerate(re.Sub[0])
		return append([]string{""}, sub...), ok
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			sub, ok := enumerate(s)
			if !ok || len(out)+len(sub) > maxLanguage {
				return nil, false
			}
			out = append(out, sub...)
		}
		return out, true
	case syntax.OpConcat:
		out := []string{""}
		for _, s := range re.Sub {
			sub, ok := enumerate(s)
			if !ok || len(out)*len(sub) > maxLanguage {
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

// probes returns values near the allowed ones that a confined selector must
// reject unless they are allowed themselves.
func probes(allowed []string) []string {
	out := []string{"", "b", "zzz", "a", ".*", "a|b", "\n"}
	for _, v := range allowed {
		out = append(out, v+"x", "x"+v, v+"\n", "\n"+v, strings.ToUpper(v), v+v, v+"|b")
		if len(v) > 1 {
			out = append(out, v[:len(v)-1], v[1:])
		}
	}
	return out
}

// asError returns err as an *Error, or an error saying it is not one.
func asError(err error) (*Error, error) {
	var pe *Error
	if !errors.As(err, &pe) {
		return nil, fmt.Errorf("error %v is %T, not *Error", err, err) //nolint:errorlint // err may be nil here, which %v prints as <nil>; this only describes it
	}
	return pe, nil
}
