// Package detect holds promgate's built-in security detectors: a catalog of
// PromQL alerting rules embedded in the binary, their export as Prometheus
// rule files, prometheus-operator PrometheusRule manifests and promtool test
// files, their evaluation on behalf of one caller, and a background evaluator
// that tracks pending and firing alerts and pushes them to Alertmanager.
//
// # What it guarantees
//
//   - Every detector in the catalog parses with the stock PromQL parser
//     (no experimental functions), returns an instant vector, and carries the
//     synthetic data it must fire on and the benign data it must stay silent
//     on. Load refuses a catalog that breaks any of this.
//   - Catalog.Evaluate never runs a detector in a way that would make it lie:
//     for a restricted caller (a non-nil rewrite), detectors whose scope is
//     cluster or ns*, and any detector that uses absent() or
//     absent_over_time(), are refused with an *Error of kind Forbidden.
//     Only ns detectors run, and only after the caller's rewrite confined the
//     query.
//   - The Evaluator queries with the gateway's own identity, unrestricted. An
//     upstream failure is counted and logged; it never resolves an alert and
//     never stops the evaluator. Firing alerts are re-sent every interval and
//     resolved alerts are sent with endsAt until Alertmanager accepted them.
//
// # What it refuses
//
// Unknown detector ids (kind NotFound), detectors outside a restricted
// caller's reach (kind Forbidden), upstream answers that are not a vector
// (kind Upstream), and Alertmanager or external URLs that are not http or
// https.
package detect
