package enforce

import (
	"errors"
	"fmt"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// This file holds the independent soundness check used by the golden tests
// and the fuzz targets. It shares no code with the rewriter: it parses the
// output again and inspects it with parser.Inspect.

// checkRewritten reports why out, the rewrite of a query under e, is not
// confined to e, or nil.
func checkRewritten(out string, e Enforcement) error {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(out)
	if err != nil {
		return fmt.Errorf("output %q does not parse: %w", out, err)
	}
	var bad error
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && bad == nil {
			if err := checkConfined(vs.LabelMatchers, e); err != nil {
				bad = fmt.Errorf("selector %s in %q: %w", vs, out, err)
			}
		}
		return nil
	})
	return bad
}

// checkConfined reports whether the matchers of one selector can only match
// allowed values of every enforced label. Two independent tests must agree:
// at least one matcher on the label has a finite language, enumerated from its
// regular expression syntax, that is a subset of the allowed values; and the
// conjunction of the matchers, evaluated by Prometheus itself, rejects a set
// of probe values outside the allowed set.
func checkConfined(ms []*labels.Matcher, e Enforcement) error {
	for name, allowed := range e {
		proven := false
		for _, m := range ms {
			if m.Name != name {
				continue
			}
			lang, ok := language(m)
			if ok && subset(lang, allowed) {
				proven = true
			}
		}
		if !proven {
			return fmt.Errorf("no matcher confines label %q to %q", name, allowed)
		}
		for _, p := range probes(allowed) {
			if slices.Contains(allowed, p) {
				continue
			}
			all := true
			for _, m := range ms {
				if m.Name == name && !m.Matches(p) {
					all = false
				}
			}
			if all {
				return fmt.Errorf("label %q: matchers accept forbidden value %q", name, p)
			}
		}
	}
	return nil
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

func subset(lang, allowed []string) bool {
	for _, v := range lang {
		if !slices.Contains(allowed, v) {
			return false
		}
	}
	return true
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
		return nil, fmt.Errorf("error %v is %T, not *Error", err, err)
	}
	return pe, nil
}
