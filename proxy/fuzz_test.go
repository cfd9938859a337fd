package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// FuzzParseRequest sends arbitrary query strings and form bodies as the
// restricted caller alice (namespace "a") and checks that the gateway never
// panics and that whatever reaches the upstream is confined: every selector
// of every forwarded query or match[] carries namespace="a".
func FuzzParseRequest(f *testing.F) {
	seeds := []struct{ path, rawQuery, body string }{
		{"/api/v1/query", "query=up", ""},
		{"/api/v1/query", "", "query=up"},
		{"/api/v1/query", "query=up", "query=up"},
		{"/api/v1/query", "query=up&query=x", ""},
		{"/api/v1/query_range", "query=rate(x[5m])&start=1&end=100&step=10", ""},
		{"/api/v1/series", "match[]=up&match[]={job=\"x\"}", ""},
		{"/api/v1/series", "", "match[]=up"},
		{"/api/v1/labels", "", ""},
		{"/federate", "match[]={__name__=~\".+\"}", ""},
		{"/api/v1/query", "query=" + url.QueryEscape(`up{namespace="b"} or on() vector(1)`), ""},
		{"/api/v1/query", "query=%zz", ""},
		{"/api/v1/query", "", "query=up;x=1"},
		{"/api/v1/query_exemplars", "query=up&start=1&end=2", ""},
		{"/api/v1/label/job/values", "match[]=up", ""},
	}
	for _, s := range seeds {
		f.Add(s.path, s.rawQuery, s.body)
	}
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, path, rawQuery, body string) {
		if len(rawQuery)+len(body) > 10<<10 {
			return
		}
		fx.aud.mu.Lock()
		fx.aud.records = nil
		fx.aud.mu.Unlock()
		before := fx.up.count()
		r := &http.Request{
			Method:     http.MethodGet,
			URL:        &url.URL{Path: path, RawQuery: rawQuery},
			Header:     http.Header{},
			RemoteAddr: "192.0.2.1:1234",
			Body:       http.NoBody,
		}
		if body != "" {
			r.Method = http.MethodPost
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Body = io.NopCloser(strings.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		c := fx.certs["alice"]
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, r)
		var fwdBody string
		if fx.up.count() == before {
			return
		}
		if w.Code != 200 {
			t.Fatalf("forwarded, but answered %d", w.Code)
		}
		r, fwdBody = fx.up.last()
		vals := r.URL.Query()
		if r.Method == http.MethodPost {
			vals, _ = url.ParseQuery(fwdBody)
		}
		p := parser.NewParser(parser.Options{})
		for _, q := range vals["query"] {
			expr, err := p.ParseExpr(q)
			if err != nil {
				t.Fatalf("forwarded query %q does not parse: %v", q, err)
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok && !confined(vs.LabelMatchers) {
					t.Fatalf("forwarded selector %s is not confined", vs)
				}
				return nil
			})
		}
		match := vals["match[]"]
		if r.URL.Path != "/api/v1/query" && r.URL.Path != "/api/v1/query_range" && r.URL.Path != "/api/v1/query_exemplars" && len(match) == 0 {
			t.Fatalf("%s forwarded without match[]", r.URL.Path)
		}
		for _, m := range match {
			ms, err := p.ParseMetricSelector(m)
			if err != nil {
				t.Fatalf("forwarded match[] %q does not parse: %v", m, err)
			}
			if !confined(ms) {
				t.Fatalf("forwarded match[] %q is not confined", m)
			}
		}
	})
}

func confined(ms []*labels.Matcher) bool {
	for _, m := range ms {
		if m.Name == "namespace" && m.Type == labels.MatchEqual && m.Value == "a" {
			return true
		}
	}
	return false
}
