package proxy

import (
	"errors"
	"fmt"

	"github.com/promgate/promgate/enforce"
	"github.com/promgate/promgate/promapi"
)

// maxRefusedInMessage bounds the match[] value a 403 quotes.
const maxRefusedInMessage = 256

// confineMatch confines the match[] values of a match route to the
// decision's enforcer. On every route but federate one refused value
// refuses the request, as a query does.
//
// A federate request is a scrape: a federating Prometheus sends the same
// match[] list on every scrape, often one list for several teams, and a
// partial answer is what its owner wants. So each value is confined on its
// own, and one that the confinement refuses (it can only match series
// outside what the decision allows) is dropped, counted as a refusal and
// named in the audit record's refused_match, as long as another remains.
// When none remains the request is refused with 403, naming the first
// refused value as the caller sent it. A value that does not parse, or a
// decision that is not valid, still ends the request. The policy was asked
// once, about every value (admit); what is dropped narrows what it
// allowed.
func (h *Handler) confineMatch(st *state, match []string, en *enforce.Enforcer) ([]string, error) {
	if st.rt.name != RouteFederate || len(match) == 0 {
		out, err := en.Matchers(match)
		if err != nil {
			return nil, h.enforceError(err, st.identity)
		}
		return out, nil
	}
	out := make([]string, 0, len(match))
	var first *enforce.Error
	for _, m := range match {
		confined, err := en.Matchers([]string{m})
		if err == nil {
			out = append(out, confined...)
			continue
		}
		ee, ok := errors.AsType[*enforce.Error](err)
		if !ok || ee.Kind != enforce.Forbidden {
			return nil, h.enforceError(err, st.identity)
		}
		if st.identity != nil && ee.Label != "" {
			h.tel.refusal(st.identity.Subject, ee.Label)
		}
		st.refusedMatch = append(st.refusedMatch, m)
		if first == nil {
			first = ee
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	msg := fmt.Sprintf("match[] %s is refused: %s", truncate(st.refusedMatch[0], maxRefusedInMessage), first.Msg)
	if n := len(st.refusedMatch) - 1; n == 1 {
		msg += ", and so is the other match[]"
	} else if n > 1 {
		msg += fmt.Sprintf(", and so are the %d other match[] values", n)
	}
	msg += "; no match[] is left to federate"
	if st.identity != nil {
		msg += " for " + st.identity.Subject
	}
	return nil, &promapi.Error{Type: promapi.ErrForbidden, Msg: msg, Err: first}
}
