// Package proxy is promgate's public http.Handler: the route table, the
// request chain and the reverse proxy to the upstream.
//
// Every request runs through one fixed chain:
//
//	recover -> state + audit -> audit health -> pages -> deadline -> authn
//	  -> rate limit -> route -> method -> parse -> authz -> limits -> enforce
//	  -> upstream
//
// Each step that fails ends the request with an error in Prometheus' API
// shape, and nothing is forwarded. In particular the package guarantees:
//
//   - Only the routes of DESIGN.md are served, and only from canonical paths.
//     A path with percent-encoding, empty, dot or dot-dot segments, a trailing
//     slash, a semicolon or a different case is not found (404), so what is
//     classified is byte for byte what is forwarded.
//   - Parameters are read once, from the URL and a form body. A parameter in
//     both, a repeated single-valued parameter, a body on GET, a body that is
//     not application/x-www-form-urlencoded (415) or a method-override header
//     is refused. The upstream request is rebuilt from the enforced
//     parameters only; unknown parameters are dropped.
//   - Request headers reach the upstream only through an allow-list, set in
//     ReverseProxy.Rewrite after hop-by-hop removal. The client's
//     Authorization, Cookie, tenant and identity headers never do.
//   - Upstream failures are answered with 502 or 504 without the upstream's
//     address; the upstream's own API errors pass through unchanged.
//   - Exactly one audit record is written per request, in a deferred call,
//     whatever the outcome, panics included.
//   - Responses of rules, alerts and metadata are filtered for a restricted
//     caller; one that cannot be read or filtered is a 502, never passed
//     through unfiltered.
//   - Identical upstream requests in flight at the same time may share one
//     answer (upstream.coalesce, coalesce.go): only requests whose upstream
//     request is equal byte for byte, the request id aside, and each still
//     gets its own filtering and audit record. Nothing is cached.
package proxy
