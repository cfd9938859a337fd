// Package tracing is the gateway's OpenTelemetry tracer: the OpenTelemetry
// API (trace.Tracer, trace.Span) over a lean span recorder of its own
// (tracer.go), the SDK's samplers (parent-based, ratio), a batch queue
// (batch.go), and an OTLP/HTTP (protobuf) exporter of its own. The SDK's
// tracer provider was measured first and cost the gateway up to a quarter
// of its CPU with every request sampled; tracer.go says why and what this
// one keeps.
//
// Off (config tracing.enabled false, the default, or OTEL_SDK_DISABLED=true),
// New creates nothing: the Provider's Tracer is nil and the proxy starts no
// span. On, the proxy makes one server span per request with child spans for
// authentication, the policy, the rewrite and the upstream (proxy/trace.go).
// It does not make them through the API: it records each request in a
// Request (request.go), whose spans are made only when exported.
//
// The exporter is written here rather than taken from the SDK's otlptracehttp
// because that package links gRPC into the binary (its shared configuration
// imports google.golang.org/grpc, and the OTLP collector service package it
// encodes with carries the gRPC service and gateway stubs), which the lean
// binary rule forbids (deps_test.go). This one uses only the OTLP trace,
// common and resource message types: the body it posts is a TracesData,
// which is byte for byte the collector's ExportTraceServiceRequest (both are
// one `repeated ResourceSpans resource_spans = 1`).
//
// The standard environment variables work as with the SDK's exporter:
// OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION
// (gzip or none), _CERTIFICATE, _CLIENT_CERTIFICATE and _CLIENT_KEY, plus
// the SDK's OTEL_TRACES_SAMPLER[_ARG] (every sampler it names except the
// remote ones, which are refused), OTEL_BSP_SCHEDULE_DELAY, _EXPORT_TIMEOUT,
// _MAX_QUEUE_SIZE and _MAX_EXPORT_BATCH_SIZE, OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES (read by the SDK's resource package). A span
// holds at most 128 attributes, events and links. The configuration file
// wins where both say something. Header values are never logged, and
// neither are URLs with credentials, which are refused.
package tracing
