package config

import (
	"fmt"
	"math"
	"net/url"
)

// Tracing exports the gateway's own spans over OTLP/HTTP (protobuf). Off by
// default; the caller's W3C trace context is passed upstream either way. The
// standard OTEL_* environment variables configure what this block leaves
// empty: the endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// OTEL_EXPORTER_OTLP_ENDPOINT), headers, timeout, compression and
// certificates of the exporter, the sampler (OTEL_TRACES_SAMPLER), the batch
// processor (OTEL_BSP_*) and the resource (OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES); OTEL_SDK_DISABLED=true turns tracing off.
type Tracing struct {
	// Enabled creates the tracer and its exporter. When false, nothing of
	// the SDK is created and requests carry no span.
	Enabled bool `yaml:"enabled"`
	// Endpoint is the OTLP/HTTP URL that spans are POSTed to, such as
	// http://otel-collector:4318/v1/traces; one without a path gets
	// /v1/traces. Empty takes OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
	// OTEL_EXPORTER_OTLP_ENDPOINT plus /v1/traces, else
	// http://localhost:4318/v1/traces. An http URL sends spans in clear.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share of new traces that are sampled, from 0 to 1.
	// Sampling is parent-based: a request whose traceparent says sampled is
	// sampled, one that says not is not. Unset, OTEL_TRACES_SAMPLER
	// decides, and without it every trace is sampled (1).
	SampleRatio *float64 `yaml:"sample_ratio"`
	// HeadersFile holds headers sent with every export, one "Name: value"
	// a line, such as a collector's API key. It is read once at start, and
	// its values are never logged. Headers from OTEL_EXPORTER_OTLP_HEADERS
	// are added to it.
	HeadersFile string `yaml:"headers_file"`
}

// validate checks the tracing block, whether or not it is enabled.
func (t *Tracing) validate() []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if t.Endpoint != "" {
		if msg := checkTracingEndpoint(t.Endpoint); msg != "" {
			add("tracing.endpoint", "%s", msg)
		}
	}
	if r := t.SampleRatio; r != nil && (math.IsNaN(*r) || *r < 0 || *r > 1) {
		add("tracing.sample_ratio", "%v is not between 0 and 1", *r)
	}
	return errs
}

// checkTracingEndpoint returns why u is not a usable OTLP/HTTP URL, or "".
// Credentials in the URL are refused: they would be logged with it.
func checkTracingEndpoint(u string) string {
	p, err := url.Parse(u)
	switch {
	case err != nil:
		// Not echoed: it may hold credentials that failed to parse.
		return "not a URL such as http://otel-collector:4318/v1/traces"
	case p.User != nil:
		return "must not carry credentials; use headers_file"
	case (p.Scheme != "http" && p.Scheme != "https") || p.Host == "":
		return fmt.Sprintf("%q is not an http or https URL such as http://otel-collector:4318/v1/traces", u)
	case p.RawQuery != "" || p.Fragment != "" || p.ForceQuery:
		return "must not carry a query or fragment"
	}
	return ""
}
