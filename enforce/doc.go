// Package enforce confines PromQL queries and series selectors to the label
// values a policy decision allows, the way prom-label-proxy does, but with
// intersection instead of replacement.
//
// # Guarantees
//
// An [Enforcement] maps a label name to its allowed values; a [Policy] adds
// allowed regular expressions per label and decision matchers, and
// [NewPolicyEnforcer] prepares it as an [Enforcer]. [Rewrite] returns
// the text of a query in which every vector selector, wherever it stands
// (range selectors, subqueries, aggregations and their parameters, both sides
// of binary and set operators, function arguments, parentheses, unary
// operators, with any offset or @ modifier), carries a matcher that can only
// match allowed values. [Matchers] does the same for the match[] parameters
// of the series, labels, label values and federate routes, and gives a
// request without match[] the one selector that confines every enforced
// label.
//
// The rewriter builds a new syntax tree rather than splicing strings, and
// every value is printed quoted, so a value such as `a"} or up{namespace="b`
// stays one escaped string. Queries are printed by the package's own
// one-pass printer (print.go), which writes the same text as the stock
// printer (the nodes' String methods) and falls back to a node's String for
// the forms it does not reproduce; TestFormatMatchesStock and FuzzQuery
// compare the two. [Enforcer.Matchers] prints with the stock printer. The
// golden tests and FuzzQuery check that every rewritten query parses again
// with the stock parser (no feature flags), is confined according to an
// independent check, and gives the same text when rewritten once more. The
// parsed [Query] is never modified. Expressions without selectors, such as
// Grafana's health check `1+1`, pass unchanged.
//
// # Intersection rules
//
// For each enforced label L with allowed values A, S is the set of values of A
// that satisfy every matcher the selector has on L (label names compare
// exactly, so the quoted name {"namespace"="b"} is the label namespace).
// Prometheus regular expressions are anchored. The caller's matchers are
// always kept; one matcher is added:
//
//	caller's matchers on L      A = {a, c}      result
//	(none)                      S = {a, c}      L=~"a|c" added
//	L="a"                       S = {a}         unchanged (L="a" is already there)
//	L="b"                       S = {}          refused: label L="b" is not allowed
//	L=""                        S = {}          refused (matches series without L)
//	L!="a"                      S = {c}         L="c" added
//	L=~".+"                     S = {a, c}      L=~"a|c" added
//	L=~"a|b"                    S = {a}         L="a" added
//	L!~"a|c"                    S = {}          refused
//	L="a", L="c"                S = {}          refused (matches nothing)
//
// Several enforced labels are ANDed: each adds its own matcher. A label
// allowed no values at all refuses every selector. Added regular expressions
// list the values of S sorted and quoted with regexp.QuoteMeta, and a single
// value becomes an equality matcher.
//
// # Regular expressions and decision matchers
//
// A label may also be allowed regular expressions R (Policy.EnforceRegex).
// Each must compile on its own (so `a)|(b` cannot escape Prometheus'
// anchoring group) and must not match the empty string, so that a series
// without the label is never exposed; otherwise the policy is Invalid. The
// intersection of two regular expressions cannot be computed, so:
//
//	caller's matchers on L      A = {s}, R = {team-.*}     result
//	(none)                      -                          L=~"s|(?:team-.*)" added
//	L="team-x"                  allowed by R               unchanged
//	L="s"                       allowed by A               unchanged
//	L="kube-system"             not allowed                refused: label L="kube-system" is not allowed
//	L="team-x", L!="team-x"     matches nothing            refused
//	L=~".+"                     -                          L=~"s|(?:team-.*)" added
//	L!="s"                      A narrowed to {}           L=~"team-.*" added
//
// The literals are narrowed as above, the regular expressions are always
// kept, and a lone regular expression is added as written.
//
// Decision matchers (Policy.Matchers, such as {secret!="true"}) are ANDed
// into every selector unless the selector already carries the same matcher,
// or an equality on the same label that the matcher accepts (so up keeps its
// single name under {__name__!~"kube_secret_.*"}). A selector whose equality
// the matcher refuses, such as kube_secret_info, can only match excluded
// series and is Forbidden. The enforced labels are intersected with the
// caller's and the decision's matchers together, which keeps the rewrite
// idempotent. Without match[], [Enforcer.Matchers] gives the confinement of
// the empty selector, plus __name__=~".+" when every matcher of it would
// match the empty string (Prometheus refuses such a selector).
//
// # Response filters
//
// [Enforcer.FilterRules], [Enforcer.FilterAlerts] and
// [Enforcer.FilterMetadata] confine the JSON bodies of /api/v1/rules,
// /api/v1/alerts and /api/v1/metadata. They keep what the decision allows
// and every field they do not judge; a body that is not the route's shape is
// an error wrapping [ErrUpstream], and nothing of it may be sent on. An
// unrestricted Enforcer returns the body unchanged.
//
// [Enforcer.FilterTargets] confines /api/v1/targets the other way round: it
// keeps only what it knows. An active target is kept when the caller could
// read its up series (its labels, with __name__ up), with its known fields
// and never its discoveredLabels; dropped targets and their counts are
// emptied, and any other key is dropped.
//
// [Enforcer.FilterExposition] does the same for an exporter's text or
// OpenMetrics exposition: a sample is kept when every enforced label holds an
// allowed value and every decision matcher holds, its HELP, TYPE and UNIT
// come along, and a histogram's or summary's series are kept or dropped
// together because they share those labels. Nothing is written unless the
// whole input parsed; a malformed input wraps [ErrUpstream].
//
// [ParseAMMatcher], [ParseSilence] and [ParseAlerts] read Alertmanager's
// matchers, silences and pushed alerts (alertmanager.go) the way
// Alertmanager 0.25 does; [Enforcer.SilenceConfined] reports whether a
// silence can only silence alerts the caller may see (the regex-language
// check of rules), [Enforcer.ConfineSilence] injects the allowed set where a
// silence has no matcher and refuses one reaching outside it,
// [Enforcer.AlertFilters] gives the filter matchers that confine an alerts
// request, and the FilterAM* filters confine Alertmanager's answers.
// # Remote write and read
//
// [Enforcer.ConfineWrite] checks a decoded remote write 1.0 request (limits,
// label well-formedness) and confines its series in a [WriteMode]: inject,
// reject or drop; a series with a value the decision does not allow is
// never kept. [Enforcer.ConfineWriteWire] does the same on the protobuf
// bytes, without building the request's structures, and is what the gateway
// runs; FuzzWrite checks that the two agree and that what the wire path
// forwards decodes to allowed series only. [Enforcer.ConfineRead] confines
// a remote read query's matchers by the intersection rules above, and
// [Enforcer.CheckReadResponse] and [Enforcer.CheckChunkedFrame] check the
// series of an answer; [ReadFrame] reads the streamed answer's frames.
// Snappy bodies are checked against a declared-length limit before they are
// decompressed ([DecodeSnappy]).
//
// # Refusals
//
// Every error is an [*Error]. A query or match[] that does not parse, and any
// expression node the rewriter does not know (for example the experimental
// duration expressions), is [BadData]: unknown nodes are an error, never
// skipped. A selector that can only match values outside the allowed set is
// [Forbidden], and the message names the label. A malformed enforcement
// from policy is [Invalid]; the caller must deny the request.
//
// The package imports no HTTP, policy or gateway package of its own, so that
// it can be tested and fuzzed alone. (The Prometheus parser it relies on pulls
// in net/http transitively, through storage, tsdb/chunks and client_golang.)
package enforce
