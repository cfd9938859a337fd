package config

import (
	"strings"
	"testing"
)

func TestTracingDefaultsOff(t *testing.T) {
	c, err := Parse([]byte(good), "/etc/promgate")
	if err != nil {
		t.Fatal(err)
	}
	if c.Tracing.Enabled || c.Tracing.Endpoint != "" || c.Tracing.SampleRatio != nil || c.Tracing.HeadersFile != "" {
		t.Errorf("tracing defaults = %+v, want off and empty", c.Tracing)
	}
}

func TestTracingParse(t *testing.T) {
	in := good + "tracing:\n  enabled: true\n  endpoint: https://otel.example:4318/v1/traces\n  sample_ratio: 0.25\n  headers_file: otlp-headers\n"
	c, err := Parse([]byte(in), "/etc/promgate")
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Tracing
	if !tr.Enabled || tr.Endpoint != "https://otel.example:4318/v1/traces" || tr.SampleRatio == nil || *tr.SampleRatio != 0.25 {
		t.Errorf("tracing = %+v", tr)
	}
	if tr.HeadersFile != "/etc/promgate/otlp-headers" {
		t.Errorf("headers_file = %q, want it resolved against the config's folder", tr.HeadersFile)
	}
	in = good + "tracing:\n  enabled: true\n  sample_ratio: 0\n"
	if c, err = Parse([]byte(in), "/etc/promgate"); err != nil || c.Tracing.SampleRatio == nil || *c.Tracing.SampleRatio != 0 {
		t.Errorf("sample_ratio 0: %v, %+v", err, c)
	}
}

func TestTracingBad(t *testing.T) {
	tests := []struct{ name, block, want string }{
		{"scheme", "  endpoint: grpc://collector:4317\n", "tracing.endpoint: \"grpc://collector:4317\" is not an http or https URL"},
		{"no host", "  endpoint: http:///v1/traces\n", "tracing.endpoint"},
		{"credentials", "  endpoint: https://user:secret@collector/v1/traces\n", "tracing.endpoint: must not carry credentials"},
		{"credentials and scheme", "  endpoint: grpc://user:secret@collector\n", "tracing.endpoint: must not carry credentials"},
		{"query", "  endpoint: https://collector/v1/traces?key=x\n", "tracing.endpoint: must not carry a query"},
		{"ratio over 1", "  sample_ratio: 1.5\n", "tracing.sample_ratio: 1.5 is not between 0 and 1"},
		{"negative ratio", "  sample_ratio: -0.1\n", "tracing.sample_ratio"},
		{"NaN ratio", "  sample_ratio: .nan\n", "tracing.sample_ratio"},
		{"inline headers", "  headers: {x-api-key: abc}\n", "tracing.headers: unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(good+"tracing:\n"+tc.block), "/etc/promgate")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q repeats the URL's credentials", err)
			}
		})
	}
}
