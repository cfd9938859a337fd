package config

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestBundleValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Bundle
		want []string
	}{
		{"off", Bundle{}, nil},
		{"fine", Bundle{URL: "https://bundles.example/promgate.tar.gz", PublicKeyFile: "/k.pem"}, nil},
		{"no key", Bundle{URL: "https://b.example/x.tar.gz"}, []string{"authz.bundle.public_key_file"}},
		{"bad url", Bundle{URL: "file:///etc/x", PublicKeyFile: "/k"}, []string{"authz.bundle.url"}},
		{"credentials", Bundle{URL: "https://u:p@b.example/x", PublicKeyFile: "/k"} /* #nosec G101 -- a made-up URL that must be refused */, []string{"authz.bundle.url: must not carry credentials"}},
		{"bad algorithm", Bundle{URL: "https://b.example/x", PublicKeyFile: "/k", Algorithm: "HS256"}, []string{"authz.bundle.algorithm"}},
		{"fast poll", Bundle{URL: "https://b.example/x", PublicKeyFile: "/k", PollInterval: model.Duration(time.Millisecond)}, []string{"authz.bundle.poll_interval"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tc.b.validate(func(key, format string, args ...any) { got = append(got, key+": "+fmt.Sprintf(format, args...)) })
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %d matching %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %q, want prefix %q", got[i], w)
				}
			}
		})
	}
}

func TestUpstreamsValidate(t *testing.T) {
	c := Default()
	c.Upstream.URL = "http://127.0.0.1:9090"
	c.Upstreams = map[string]Upstream{
		"global":   {URL: "http://thanos-query:10902", Flavor: FlavorThanos},
		"Bad Name": {URL: "http://x"},
		"nourl":    {},
		"sidecar":  {URL: "http://x", Kind: KindMetrics, Exporters: []Exporter{{Path: "/m", URL: "http://y"}}},
		"header":   {URL: "http://x", TenantHeader: "X Scope"},
	}
	c.resolveUpstreams()
	var got []string
	c.validateUpstreams(func(key, format string, args ...any) { got = append(got, key) })
	want := []string{"upstreams.Bad Name", "upstreams.header.tenant_header", "upstreams.nourl.url", "upstreams.sidecar.kind", "upstreams.sidecar.exporters"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("problems %q, want %q", got, want)
	}
	if c.Upstreams["nourl"].Flavor != FlavorPrometheus || c.Upstreams["nourl"].Kind != KindPrometheusAPI {
		t.Errorf("defaults not filled: %+v", c.Upstreams["nourl"])
	}
}
