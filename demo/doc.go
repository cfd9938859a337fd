// Package demo is the embedded upstream of `promgate demo`: a small
// Prometheus made of Prometheus' PromQL engine over an in-memory store,
// filled with synthetic data.
//
// # Guarantees
//
// Every query is evaluated by the real PromQL engine (promql.Engine). The
// samples live in memory, in the Gorilla (XOR) chunks of Prometheus' head
// block (tsdb/chunkenc), behind the storage.Queryable interface. The package
// never evaluates a query itself: the HTTP adapter in [Upstream.Handler]
// only parses parameters the way Prometheus' web/api/v1 does, calls the
// engine or the store, and renders the result in Prometheus' JSON envelope.
// It answers the routes the gateway protects: query, query_range, series,
// labels, label values, federate, query_exemplars (always an empty list),
// rules, alerts, metadata and buildinfo. Every other path is 404.
//
// The store replaces tsdb.DB, and the loop below Prometheus' rules package,
// because both depend on Prometheus' config package, and through it on the
// service discovery and remote-write clients: the AWS, Azure and Google
// SDKs, gRPC and client-go would be linked into the gateway binary, which
// embeds this package (issue 17).
//
// Prometheus' own web/api/v1 handler is not used: it pulls in the
// OpenTelemetry collector's confmap, which needs github.com/gobwas/glob
// v0.2.x, while OPA requires v1.1.0, whose API differs, so the module would
// not build.
//
// # Rules
//
// The embedded rule group (Prometheus' rule file format, parsed by
// model/rulefmt) is evaluated by the package's own loop. It evaluates each
// group once at the scenario's start, then every interval, in rule order, at
// the upstream's clock (the newest appended step), skipping an evaluation
// when the clock has not moved. It keeps Prometheus' semantics for what it
// supports:
//
//	recording rules   output renamed and relabelled, written back to the store;
//	                  series it stops returning get a stale marker
//	alerting rules    pending, then firing after "for"; keep_firing_for;
//	                  labels and annotations expanded with Prometheus'
//	                  templates ($labels, $value, humanize, query, ...)
//	ALERTS,           written from the second evaluation on, as Prometheus
//	ALERTS_FOR_STATE  does once it has restored the "for" state
//	group options     interval, limit, query_offset, labels
//	API               /api/v1/rules and /api/v1/alerts in Prometheus' shapes
//
// It does not notify anyone (there is no Alertmanager), restore "for"
// state, reload rule files, evaluate rules concurrently, apply external
// labels or export the rule manager's metrics.
//
// The data ([Scenario]) is deterministic for a given start time: about a day
// of history at a 15 s interval for workloads of the namespaces team-a,
// team-b and kube-system (with their service mesh's request metrics), plus
// six simulated attacks that the built-in detectors catch (see [Attacks]). [Upstream.Run] keeps appending a sample
// to every series every 15 s, so rate() and the detectors keep working.
// [Scenario.WriteOpenMetrics] writes the same history as OpenMetrics text, so
// that a real Prometheus can be backfilled with identical series.
//
// # Refusals
//
// [Listen] refuses any address that is not a loopback address: the upstream
// has no authentication of its own and must only be reached through the
// gateway. Nothing is written to disk: the samples are regenerated at every
// start and live as long as the [Upstream]. The store holds float samples
// only (no native histograms or exemplars), and refuses out-of-order
// samples as Prometheus does without out-of-order ingestion.
package demo
