package tracing

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzEnvHeaders feeds OTEL_EXPORTER_OTLP_HEADERS parsing arbitrary text.
// It must never panic, and whatever it sets must be a header the exporter
// can send safely: a token name, not one the exporter sets itself, and a
// value without a line break or NUL (no header injection into the export).
func FuzzEnvHeaders(f *testing.F) {
	for _, s := range []string{
		"api-key=secret,x-tenant=a%20b",
		"Authorization=Basic%20dXNlcjpwYXNz",
		"bad header=1,=x,y",
		"x=%0d%0aInjected:%20yes",
		"content-type=text/plain",
		"x=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{}
		_ = parseEnvHeaders(s, h)
		for name, vs := range h {
			if !headerNameRE.MatchString(name) {
				t.Fatalf("set header name %q", name)
			}
			for _, r := range reservedHeaders {
				if strings.EqualFold(name, r) {
					t.Fatalf("set reserved header %q", name)
				}
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("header %s value %q holds a line break or NUL", name, v)
				}
			}
		}
	})
}
