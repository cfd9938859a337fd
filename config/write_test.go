package config

import (
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	c, err := Parse([]byte(good), "/etc/promgate")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Write.Routes) != 0 || c.Write.Mode != WriteDrop || c.Write.UpstreamPath != "/api/v1/write" {
		t.Errorf("defaults: routes %v, mode %q, upstream_path %q; want none, drop, /api/v1/write", c.Write.Routes, c.Write.Mode, c.Write.UpstreamPath)
	}
	for _, tc := range []struct {
		yaml, want string // want: an error substring, or "" for none
	}{
		{yaml: "write:\n  routes: [write, read]\n  mode: inject\n  upstream_path: /api/v1/push\n  samples_per_second: 50000\n"},
		{yaml: "write:\n  routes: [push]\n", want: `write.routes[0]: unknown route "push"`},
		{yaml: "write:\n  mode: allow\n", want: `write.mode: unknown value "allow"`},
		{yaml: "write:\n  upstream_path: api/v1/push\n", want: "write.upstream_path"},
		{yaml: "write:\n  max_body: 0\n", want: "write.max_body: must be positive"},
		{yaml: "write:\n  max_decoded_body: 2GiB\n", want: "above the 1GiB ceiling"},
		{yaml: "write:\n  max_series_per_request: 0\n", want: "write.max_series_per_request: must be positive"},
		{yaml: "write:\n  samples_per_second: 10\n  samples_burst: 5\n", want: "write.samples_burst: 5 is below max_samples_per_request"},
		{yaml: "write:\n  samples_per_second: -1\n", want: "write.samples_per_second: must not be negative"},
		{yaml: "write:\n  tenant: x\n", want: "write.tenant: unknown key"},
	} {
		_, err := Parse([]byte(good+tc.yaml), "/etc/promgate")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want one containing %q", tc.yaml, err, tc.want)
		}
	}
}
