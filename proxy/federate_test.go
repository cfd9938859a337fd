package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestFederateDropsRefusedMatch: a federate match[] the decision refuses is
// dropped when another remains, and named in the audit record; with none
// left the 403 names the refused match[] as sent. Other match routes stay
// all or nothing.
func TestFederateDropsRefusedMatch(t *testing.T) {
	tests := []struct {
		name      string
		user      string
		path      string
		match     []string
		status    int
		forwarded []string // the upstream's match[]; nil: not forwarded
		refused   []string // the audit record's refused_match
		msg       []string // substrings of the error
	}{
		{
			name: "one allowed, one refused", user: "alice", path: "/federate", match: []string{"up", `{namespace="b"}`},
			status: 200, forwarded: []string{`{__name__="up",namespace="a"}`}, refused: []string{`{namespace="b"}`},
		},
		{
			name: "refused first", user: "alice", path: "/federate", match: []string{`up{namespace=~"b|c"}`, `{job="x"}`, `{namespace="b",job="y"}`},
			status: 200, forwarded: []string{`{job="x",namespace="a"}`}, refused: []string{`up{namespace=~"b|c"}`, `{namespace="b",job="y"}`},
		},
		{
			name: "only refused", user: "alice", path: "/federate", match: []string{`{namespace="b"}`},
			status: 403, refused: []string{`{namespace="b"}`},
			msg: []string{`match[] {namespace="b"} is refused: label namespace="b" is not allowed; no match[] is left to federate for alice`},
		},
		{
			name: "two refused", user: "alice", path: "/federate", match: []string{`{namespace="b"}`, `up{namespace!="a"}`},
			status: 403, refused: []string{`{namespace="b"}`, `up{namespace!="a"}`},
			msg: []string{`match[] {namespace="b"} is refused`, "and so is the other match[]"},
		},
		{
			name: "three refused", user: "alice", path: "/federate", match: []string{`{namespace="b"}`, `{namespace="c"}`, `{namespace="d"}`},
			status: 403, refused: []string{`{namespace="b"}`, `{namespace="c"}`, `{namespace="d"}`},
			msg: []string{"and so are the 2 other match[] values"},
		},
		{
			name: "unparsable still ends the request", user: "alice", path: "/federate", match: []string{"up", "up{"},
			status: 400,
		},
		{
			name: "admin unrestricted", user: "root", path: "/federate", match: []string{"up", `{namespace="b"}`},
			status: 200, forwarded: []string{`{__name__="up"}`, `{namespace="b"}`},
		},
		{
			name: "series stays all or nothing", user: "alice", path: "/api/v1/series", match: []string{"up", `{namespace="b"}`},
			status: 403, msg: []string{`label namespace="b" is not allowed for alice`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			w := f.do(t, request{user: tc.user, target: tc.path + "?" + url.Values{"match[]": tc.match}.Encode()})
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body.String())
			}
			if tc.forwarded == nil {
				if f.up.count() != 0 {
					t.Error("a refused request reached the upstream")
				}
			} else {
				r, _ := f.up.last()
				if got := r.URL.Query()["match[]"]; !slices.Equal(got, tc.forwarded) {
					t.Errorf("forwarded match[] %q, want %q", got, tc.forwarded)
				}
			}
			if tc.status != http.StatusOK {
				_, msg := errorBody(t, w)
				for _, m := range tc.msg {
					if !strings.Contains(msg, m) {
						t.Errorf("error %q does not contain %q", msg, m)
					}
				}
				if strings.Contains(msg, `namespace="a"`) {
					t.Errorf("error %q names an allowed value", msg)
				}
			}
			rec := f.aud.records[len(f.aud.records)-1]
			if !slices.Equal(rec.RefusedMatch, tc.refused) {
				t.Errorf("audit refused_match %q, want %q", rec.RefusedMatch, tc.refused)
			}
			if tc.status == http.StatusOK && !slices.Equal(rec.EnforcedQuery, tc.forwarded) {
				t.Errorf("audit enforced_query %q, want %q", rec.EnforcedQuery, tc.forwarded)
			}
			if tc.status != 400 && !slices.Equal(rec.Query, tc.match) {
				t.Errorf("audit query %q, want every match[] as sent %q", rec.Query, tc.match)
			}
			if n := len(tc.refused); n > 0 {
				got := testutil.ToFloat64(f.h.tel.refusals.WithLabelValues("alice", "namespace"))
				if got != float64(n) {
					t.Errorf("refusals counted %v, want %d", got, n)
				}
			}
		})
	}
}

// TestFederateRefusedMessageBounded: the 403 quotes at most
// maxRefusedInMessage bytes of the refused match[].
func TestFederateRefusedMessageBounded(t *testing.T) {
	f := newFixture(t)
	long := `{namespace="b",job="` + strings.Repeat("x", 4000) + `"}`
	w := f.do(t, request{user: "alice", target: "/federate?" + url.Values{"match[]": {long}}.Encode()})
	if w.Code != http.StatusForbidden {
		t.Fatalf("status %d", w.Code)
	}
	if _, msg := errorBody(t, w); len(msg) > maxRefusedInMessage+300 || !strings.Contains(msg, "...") {
		t.Errorf("error of %d bytes, want the match[] cut: %.300s", len(msg), msg)
	}
}
