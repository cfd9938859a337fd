//go:build e2e

package e2e

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/url"
	"testing"
)

// outcome is what an attack case must end in.
type outcome int

const (
	// refused: the given status and errorType, nothing forwarded.
	refused outcome = iota
	// confined: 200, the caller's own namespace and nothing else, and the
	// forwarded request enforced.
	confined
	// safe: refused with any 4xx error envelope and not forwarded, or 200
	// with nothing outside the allowed set (possibly empty) and the forwarded
	// request enforced.
	safe
)

type attack struct {
	name    string
	req     request
	want    outcome
	status  int    // for refused
	errType string // for refused
	ex      extractor
	// noTeamB: a 200 body must not contain "team-b" anywhere.
	noTeamB bool
}

func q(expr string) request {
	return request{path: "/api/v1/query", query: url.Values{"query": {expr}}}
}

func gzipped(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

// TestAttacksLabelEnforcement runs the attacks of docs/threat-model.md on
// PromQL confinement, the match[] routes, parameter parsing, methods and
// client-sent headers through the real stack as team-a, which may read
// team-a and team-a-staging. Every case either is refused with its status and
// reaches nothing upstream, or is confined. Case names start with their
// group: A1 conflicting equality, A2 widening matchers, A3 selectors in every
// position, A4 quoted and UTF-8 names, A5 value injection, A6 URL/body
// ambiguity, A7 client-sent tenant, label and identity, A8 match[] routes, A9
// unparsed body encodings, A10 filters by route, A11 missing query, E38
// methods and method overrides.
func TestAttacksLabelEnforcement(t *testing.T) {
	post := http.MethodPost
	form := "application/x-www-form-urlencoded"
	cases := []attack{
		// A1 conflicting equality.
		{name: "A1 equality outside", req: q(`up{namespace="team-b"}`), want: refused, status: 403, errType: "forbidden"},
		{name: "A1 equality outside POST", req: request{method: post, path: "/api/v1/query", form: url.Values{"query": {`up{namespace="team-b"}`}}}, want: refused, status: 403, errType: "forbidden"},
		{name: "A1 equality outside range", req: request{path: "/api/v1/query_range", query: rangeParams(`up{namespace="kube-system"}`)}, want: refused, status: 403, errType: "forbidden"},
		{name: "A1 equality inside", req: q(`up{namespace="team-a"}`), want: confined},
		// A2 widening.
		{name: "A2 regex any", req: q(`up{namespace=~".+"}`), want: confined},
		{name: "A2 regex any star", req: q(`up{namespace=~".*"}`), want: confined},
		{name: "A2 not equal own", req: q(`up{namespace!="team-a"}`), want: safe},
		{name: "A2 not equal other", req: q(`up{namespace!="team-b"}`), want: confined},
		{name: "A2 not regex", req: q(`up{namespace!~"team-a"}`), want: safe},
		{name: "A2 empty value", req: q(`up{namespace=""}`), want: safe},
		{name: "A2 every metric", req: q(`{__name__=~".+"}`), want: confined},
		{name: "A2 every metric by namespace", req: q(`count by (namespace) ({__name__=~".+"})`), want: confined},
		{name: "A2 regex partly allowed", req: q(`up{namespace=~"team-a|team-b"}`), want: confined},
		{name: "A2 regex case", req: q(`up{namespace=~"(?i)TEAM-B"}`), want: safe},
		// A3 selectors in every position.
		{name: "A3 subquery", req: q(`max_over_time(rate(up[5s])[20s:1s])`), want: confined},
		{name: "A3 subquery outside", req: q(`max_over_time(up{namespace="team-b"}[20s:1s])`), want: refused, status: 403, errType: "forbidden"},
		{name: "A3 at end", req: q(`up @ end()`), want: confined},
		{name: "A3 offset", req: q(`up offset 2s`), want: confined},
		{name: "A3 nested parens", req: q(`((((up))))`), want: confined},
		{name: "A3 unary minus", req: q(`-up`), want: confined},
		{name: "A3 unary minus outside", req: q(`-up{namespace="team-b"}`), want: refused, status: 403, errType: "forbidden"},
		{name: "A3 on group_left", req: q(`up * on(instance) group_left(job) up`), want: confined},
		{name: "A3 on group_left rhs outside", req: q(`up * on(instance) group_left(namespace) up{namespace="team-b"}`), want: safe, noTeamB: true},
		{name: "A3 ignoring", req: q(`up + ignoring(job) up`), want: confined},
		{name: "A3 or", req: q(`up or up{namespace="team-b"}`), want: safe, noTeamB: true},
		{name: "A3 unless", req: q(`up unless up{namespace="kube-system"}`), want: safe},
		{name: "A3 and rhs outside", req: q(`up and on() up{namespace="team-b"}`), want: safe, noTeamB: true},
		{name: "A3 label_replace", req: q(`label_replace(up, "copy", "$1", "job", "(.*)")`), want: confined},
		{name: "A3 label_replace outside", req: q(`label_replace(up{namespace="team-b"}, "namespace", "team-a", "", "")`), want: refused, status: 403, errType: "forbidden"},
		{name: "A3 absent outside", req: q(`absent(up{namespace="team-b"})`), want: safe, noTeamB: true},
		{name: "A3 absent", req: q(`absent(up)`), want: safe},
		{name: "A3 histogram_quantile", req: q(`histogram_quantile(0.9, sum by (le, namespace) (rate(prometheus_http_request_duration_seconds_bucket[10s])))`), want: safe},
		{name: "A3 scalar arg", req: q(`topk(scalar(count(up{namespace="team-b"})), up)`), want: safe, noTeamB: true},
		{name: "A3 comment", req: q(`up # {namespace="team-b"}`), want: confined},
		{name: "A3 comment multiline", req: q("up # x\n or up{namespace=\"team-b\"}"), want: safe, noTeamB: true},
		// A4 quoted and UTF-8 names.
		{name: "A4 quoted names outside", req: q(`{"namespace"="team-b","__name__"="up"}`), want: refused, status: 403, errType: "forbidden"},
		{name: "A4 quoted metric name", req: q(`{"up"}`), want: safe},
		// A5 value injection: the whole string is one value, never PromQL.
		{name: "A5 value injection", req: q(`up{namespace="a\"} or up{namespace=\"team-b"}`), want: safe, noTeamB: true},
		{name: "A5 regex injection", req: q(`up{namespace=~"team-a\"} or up{namespace=~\".+"}`), want: safe, noTeamB: true},
		// A6 ambiguity between URL and body.
		{name: "A6 query in URL and body", req: request{method: post, path: "/api/v1/query", query: url.Values{"query": {"up"}}, form: url.Values{"query": {`up{namespace="team-b"}`}}}, want: refused, status: 400, errType: "bad_data"},
		{name: "A6 query in URL and body same", req: request{method: post, path: "/api/v1/query", query: url.Values{"query": {"up"}}, form: url.Values{"query": {"up"}}}, want: refused, status: 400, errType: "bad_data"},
		{name: "A6 duplicated query URL", req: request{path: "/api/v1/query", raw: "query=up&query=" + url.QueryEscape(`up{namespace="team-b"}`)}, want: refused, status: 400, errType: "bad_data"},
		{name: "A6 duplicated query body", req: request{method: post, path: "/api/v1/query", body: "query=up&query=" + url.QueryEscape(`up{namespace="team-b"}`), ctype: form}, want: refused, status: 400, errType: "bad_data"},
		{name: "A6 query only in body", req: request{method: post, path: "/api/v1/query", form: url.Values{"query": {"up"}}}, want: confined},
		{name: "A6 match[] in URL and body", req: request{method: post, path: "/api/v1/series", query: url.Values{"match[]": {"up"}}, form: url.Values{"match[]": {`up{namespace="team-b"}`}}}, want: safe, ex: seriesNS, noTeamB: true},
		// A7 client-sent tenant, label and identity: stripped, never believed.
		{name: "A7 tenant headers", req: request{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: map[string][]string{
			"X-Scope-OrgID": {"team-b"}, "THANOS-TENANT": {"team-b"}, "X-Prom-Label-Policy": {"namespace=team-b"},
			"X_Scope_OrgID": {"team-b"}, "x-scope-orgid": {"team-b"},
		}}, want: confined},
		{name: "A7 identity headers", req: request{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: map[string][]string{
			"X-Forwarded-User": {"admin"}, "X-Remote-User": {"admin"}, "X-Auth-Request-Email": {"admin@example.com"},
			"X_Forwarded_User": {"admin"}, "X-Id-Token": {"e2e-secret-id-token"}, "Cookie": {"session=e2e-secret-cookie"},
		}}, want: confined},
		{name: "A7 bearer beside certificate", req: request{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: map[string][]string{
			"Authorization": {"Bearer e2e-secret-bearer-token"}, "Proxy-Authorization": {"Basic ZTJlOnNlY3JldA=="},
		}}, want: safe},
		// An unknown parameter is dropped, never forwarded: the answer is
		// the confined one, as Prometheus ignores what it does not know.
		{name: "A7 label parameter", req: request{path: "/api/v1/query", query: url.Values{"query": {"up"}, "namespace": {"team-b"}, "tenant": {"team-b"}}}, want: confined},
		// A8 match[] routes.
		{name: "A8 series without match[]", req: request{path: "/api/v1/series"}, want: confined, ex: seriesNS},
		{name: "A8 invalid match[] URL", req: request{path: "/api/v1/series", query: url.Values{"match[]": {"up{"}}}, want: refused, status: 400, errType: "bad_data"},
		{name: "A8 invalid match[] body", req: request{method: post, path: "/api/v1/series", form: url.Values{"match[]": {"up{"}}}, want: refused, status: 400, errType: "bad_data"},
		{name: "A8 match[] outside", req: request{path: "/api/v1/series", query: url.Values{"match[]": {`up{namespace="team-b"}`}}}, want: refused, status: 403, errType: "forbidden"},
		{name: "A8 label values outside", req: request{path: "/api/v1/label/namespace/values", query: url.Values{"match[]": {`{namespace="team-b"}`}}}, want: refused, status: 403, errType: "forbidden"},
		{name: "A8 federate outside", req: request{path: "/federate", query: url.Values{"match[]": {`{namespace="team-b"}`}}}, want: refused, status: 403, errType: "forbidden"},
		{name: "A8 invalid query", req: q(`up{`), want: refused, status: 400, errType: "bad_data"},
		// A9 body encodings the gateway does not parse.
		{name: "A9 multipart", req: request{method: post, path: "/api/v1/query", body: "--x\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nup\r\n--x--\r\n", ctype: "multipart/form-data; boundary=x"}, want: refused, status: 415, errType: "bad_data"},
		{name: "A9 text/plain", req: request{method: post, path: "/api/v1/query", body: "query=up", ctype: "text/plain"}, want: refused, status: 415, errType: "bad_data"},
		{name: "A9 gzip", req: request{method: post, path: "/api/v1/query", body: gzipped("query=up"), ctype: form, header: map[string][]string{"Content-Encoding": {"gzip"}}}, want: refused, status: 415, errType: "bad_data"},
		{name: "A9 json", req: request{method: post, path: "/api/v1/query", body: `{"query":"up"}`, ctype: "application/json"}, want: refused, status: 415, errType: "bad_data"},
		// A10 the filter is by route, not by path string.
		{name: "A10 alerts trailing slash", req: request{path: "/api/v1/alerts/"}, want: refused, status: 404, errType: "not_found"},
		{name: "A10 rules trailing slash", req: request{path: "/api/v1/rules/"}, want: refused, status: 404, errType: "not_found"},
		// A11 missing query.
		{name: "A11 no query GET", req: request{path: "/api/v1/query"}, want: refused, status: 400, errType: "bad_data"},
		{name: "A11 no query POST", req: request{method: post, path: "/api/v1/query", form: url.Values{"time": {"4"}}}, want: refused, status: 400, errType: "bad_data"},
		{name: "A11 empty query", req: q(""), want: refused, status: 400, errType: "bad_data"},
		{name: "A11 no query range", req: request{path: "/api/v1/query_range", query: url.Values{"start": {"1"}, "end": {"2"}, "step": {"1"}}}, want: refused, status: 400, errType: "bad_data"},
		{name: "A11 no query exemplars", req: request{path: "/api/v1/query_exemplars"}, want: refused, status: 400, errType: "bad_data"},
		// E38 methods.
		{name: "E38 DELETE", req: request{method: http.MethodDelete, path: "/api/v1/query", query: url.Values{"query": {"up"}}}, want: refused, status: 405, errType: "bad_data"},
		{name: "E38 PUT", req: request{method: http.MethodPut, path: "/api/v1/series", form: url.Values{"match[]": {"up"}}}, want: refused, status: 405, errType: "bad_data"},
		{name: "E38 POST federate", req: request{method: post, path: "/federate", form: url.Values{"match[]": {"up"}}}, want: refused, status: 405, errType: "bad_data"},
		{name: "E38 method override", req: request{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: map[string][]string{"X-HTTP-Method-Override": {"DELETE"}}}, want: refused, status: 400, errType: "bad_data"},
		{name: "E38 method override POST", req: request{method: post, path: "/api/v1/query", form: url.Values{"query": {"up"}}, header: map[string][]string{"X-HTTP-Method-Override": {"PUT"}}}, want: refused, status: 400, errType: "bad_data"},
	}
	team := callerTeamA
	c := team.client(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := c.do(t, tc.req)
			tc.check(t, res, team)
		})
	}
}

func (tc attack) check(t *testing.T, res *result, who caller) {
	t.Helper()
	ex := tc.ex
	if ex == nil {
		ex = vectorNS
	}
	path := tc.req.path
	switch tc.want {
	case refused:
		res.wantError(t, tc.status, tc.errType)
	case confined:
		res.checkSeen(t, ex, who.allowed, who.own, nil)
		res.checkForwardedConfined(t, who.allowed, path)
	case safe:
		t.Logf("%s", res)
		if res.status >= 400 && res.status < 500 {
			var errType string
			switch res.status {
			case 401:
				errType = "unauthorized"
			case 403:
				errType = "forbidden"
			case 404:
				errType = "not_found"
			default:
				errType = "bad_data"
			}
			res.wantEnvelope(t, errType)
			res.wantNotForwarded(t)
			return
		}
		res.checkSeen(t, ex, who.allowed, "", nil)
		res.checkForwardedConfined(t, who.allowed, path)
	}
	if tc.noTeamB && res.status == http.StatusOK && bytes.Contains(res.body, []byte("team-b")) {
		t.Errorf("%s: LEAK: team-b in the response", res)
	}
}

// TestAttacksGrafanaRetry: a POST that is refused and the same request
// retried as GET (as Grafana retries a POST that got 400 or 405) get the same
// decision.
func TestAttacksGrafanaRetry(t *testing.T) {
	c := callerTeamA.client(t)
	for _, tc := range []struct {
		expr   string
		status int
	}{
		{expr: `up{namespace="team-b"}`, status: 403},
		{expr: `up{`, status: 400},
		{expr: `up`, status: 200},
	} {
		params := url.Values{"query": {tc.expr}}
		p := c.do(t, request{method: http.MethodPost, path: "/api/v1/query", form: params})
		g := c.do(t, request{path: "/api/v1/query", query: params})
		if p.status != tc.status || g.status != tc.status {
			t.Errorf("query %q: POST %d, GET %d, want %d for both", tc.expr, p.status, g.status, tc.status)
		}
		if tc.status != 200 {
			p.wantNotForwarded(t)
			g.wantNotForwarded(t)
		}
	}
}

// TestAttacksUnknownEndpoints: endpoints the gateway does not serve (admin,
// write, read, status, pprof, its own metrics) and path tricks (percent
// encoding, dot segments, case, ";", double and trailing slashes) are 404 and
// not forwarded, for the admin too.
func TestAttacksUnknownEndpoints(t *testing.T) {
	post := http.MethodPost
	cases := []request{
		{method: post, path: "/api/v1/admin/tsdb/delete_series", query: url.Values{"match[]": {"up"}}},
		{method: post, path: "/api/v1/admin/tsdb/snapshot"},
		{method: post, path: "/api/v1/admin/tsdb/clean_tombstones"},
		{method: post, path: "/-/quit"},
		{method: post, path: "/-/reload"},
		{path: "/-/healthy"},
		{path: "/-/ready"},
		{method: post, path: "/api/v1/write", body: "x", ctype: "application/x-protobuf"},
		{method: post, path: "/api/v1/read", body: "x", ctype: "application/x-protobuf"},
		{path: "/api/v1/status/config"},
		{path: "/api/v1/status/flags"},
		{path: "/api/v1/status/tsdb"},
		{path: "/api/v1/targets"},
		{path: "/api/v1/targets/metadata"},
		{path: "/debug/pprof/"},
		{path: "/debug/pprof/heap"},
		{path: "/metrics"},
		{path: "/graph"},
		{path: "/"},
		// Path tricks: only the canonical path is classified.
		{path: "/api//v1/query", query: url.Values{"query": {"up"}}},
		{path: "/api/v1/%71uery", query: url.Values{"query": {"up"}}},
		{path: "/API/v1/query", query: url.Values{"query": {"up"}}},
		{path: "/api/v1/query;x=y", query: url.Values{"query": {"up"}}},
		{path: "/api/v1/query/", query: url.Values{"query": {"up"}}},
		{path: "/api/v1/./query", query: url.Values{"query": {"up"}}},
		{path: "/-/healthy/../api/v1/query", query: url.Values{"query": {"up"}}},
		{path: "/api/v1/query%2F..%2Fadmin", query: url.Values{"query": {"up"}}},
		{path: "/api/v1/query%23x", query: url.Values{"query": {"up"}}},
		{path: "/api/v1/query..;x", query: url.Values{"query": {"up"}}},
		{path: "/api/v1/label/namespace/values/../../../status/config"},
		{path: "/api/v1/label/name%2Fx/values"},
	}
	for _, who := range []caller{callerAdmin, callerTeamA} {
		c := who.client(t)
		for _, req := range cases {
			t.Run(who.name+"/"+req.String(), func(t *testing.T) {
				c.do(t, req).wantError(t, http.StatusNotFound, "not_found")
			})
		}
	}
}
