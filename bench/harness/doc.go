// Command harness measures promgate side by side with the alternatives, in
// one run, on the same machine and the same data (issue 9, docs/performance.md).
//
// It builds promgate and bench/bareproxy, backfills a Debian Prometheus with
// a fixed data set (series in the namespaces team-a, team-a-staging, team-b
// and kube-system), and then drives the same workloads through every target
// with its own closed-loop HTTP/1.1 load generator, the same client for all of
// them, because wrk and hey cannot present a client certificate:
//
//  1. direct Prometheus (plain HTTP);
//  2. bench/bareproxy, a TLS httputil.ReverseProxy requiring the same client
//     certificate as promgate;
//  3. prom-label-proxy v0.11.1 (plain HTTP, -label namespace, the union of
//     the caller's namespaces as fixed values);
//  4. promgate with mTLS, the default policy, label enforcement and the audit
//     file; the same with upstream.coalesce off (promgate-mtls-solo), and
//     with tracing on, every span exported over OTLP/HTTP to a sink in the
//     harness (promgate-mtls-traced);
//  5. promgate with a bearer JWT signed by a local issuer of the harness
//     (discovery and JWKS on loopback, RS256);
//  6. promgate as an exporter sidecar in front of node_exporter, filtered and
//     unfiltered.
//
// Cases 5 and 6 print a "pending:" line and are skipped, never faked, when
// `promgate check` refuses their configuration.
//
// Every target returns the same bytes for a workload: the direct and bare
// targets send the namespace matcher that the enforcing targets inject, and
// the response size is part of the table so that a mismatch shows.
//
// For each cell it reports requests per second, p50 and p99 latency, the CPU
// seconds per 1,000 requests of the process under test (utime+stime from
// /proc/<pid>/stat) and its RSS, then the ratios promgate/bare and
// promgate/prom-label-proxy, and the RSS of promgate and the bare proxy
// holding 1,000 idle keep-alive connections. -mode full writes
// bench/results/latest.md and a dated copy; -mode smoke runs a few short
// cells and writes nothing, for `make bench-smoke`.
//
// -only write measures remote write instead: the same snappy batch of 2,000
// team-a series (one sample each) POSTed through the bare TLS proxy and
// through promgate (mTLS, default policy, write.routes [write], drop mode)
// into a Prometheus with --web.enable-remote-write-receiver, at the same
// concurrency, reported as samples per second and the ratio
// promgate/bare in bench/results/<date>-write.md (write.go).
// -only tracing measures what tracing costs: promgate-mtls against
// promgate-mtls-traced, rounds times (-rounds). With -pairing together (the
// default) each round loads both gateways at once, each with its own
// clients, so that the shared machine's other work in those seconds falls
// on both alike; -pairing alternate runs one cell of each in turn, whose
// figures the machine's noise swamps. -only tracing-aa runs the same method
// on two identical gateways with tracing off, an A/A run that shows the
// method's own bias and spread (tracingab.go). -solo runs either with
// upstream.coalesce off on both gateways, so that every request goes
// upstream; the report gives, for each gateway, the share of requests
// answered from another's upstream flight. bench/instructions.sh counts
// the instructions a request costs with valgrind for the same comparison
// inside one process.
//
// After the cells it runs the dashboard workload (dashboard.go, issue 23):
// three teams of ten people loading 20-panel dashboards shaped as Grafana's
// Prometheus data source sends them, against their own Prometheus with a
// day of history and a live scrape, through direct Prometheus, the bare
// proxy, prom-label-proxy and promgate with coalescing off, on, and the
// results cache; it reports dashboard-load p50 and p95, upstream and own
// CPU per load, and errors. -only dashboards runs it alone.
//
// It refuses to report a cell whose requests failed as if it had succeeded:
// errors are counted and shown, and a target that answers the smoke check
// with anything but 200 fails the run.
package main
