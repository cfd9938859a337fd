// Package demo is the embedded upstream of `promgate demo`: a small
// Prometheus made of Prometheus' own libraries, filled with synthetic data.
//
// # Guarantees
//
// Every query is evaluated by the real PromQL engine (promql.Engine) over the
// real TSDB (tsdb.DB), and alerts come from the real rule manager (rules
// package). The package never evaluates a query itself: the HTTP adapter in
// [Upstream.Handler] only parses parameters the way Prometheus'
// web/api/v1 does, calls the engine or the storage, and renders the result
// in Prometheus' JSON envelope. It answers the routes the gateway protects:
// query, query_range, series, labels, label values, federate,
// query_exemplars (always an empty list), rules, alerts, metadata and
// buildinfo. Every other path is 404.
//
// Prometheus' own web/api/v1 handler is not used: it pulls in the
// OpenTelemetry collector's confmap, which needs github.com/gobwas/glob
// v0.2.x, while OPA requires v1.1.0, whose API differs, so the module would
// not build.
//
// The data ([Scenario]) is deterministic for a given start time: about a day
// of history at a 15 s interval for workloads of the namespaces team-a,
// team-b and kube-system, plus five simulated attacks that the built-in
// detectors catch (see [Attacks]). [Upstream.Run] keeps appending a sample
// to every series every 15 s, so rate() and the detectors keep working.
// [Scenario.WriteOpenMetrics] writes the same history as OpenMetrics text, so
// that a real Prometheus can be backfilled with identical series.
//
// # Refusals
//
// [Listen] refuses any address that is not a loopback address: the upstream
// has no authentication of its own and must only be reached through the
// gateway. The TSDB lives in a temporary folder with no write-ahead log; it
// is regenerated at every start and removed by [Upstream.Close].
package demo
