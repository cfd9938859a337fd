// Package proxy is promgate's public http.Handler: the route table, the
// request chain and the reverse proxy to the upstream.
//
// Every request runs through one fixed chain (DESIGN.md, "Request flow"):
//
//	recover -> state + audit -> audit health -> login pages -> deadline
//	  -> authn -> same origin -> route, method -> no upgrades -> params
//	  -> decide -> rate limit -> limits -> tenant -> enforce
//	  -> concurrency -> upstream -> response filter
//
// Each step that fails ends the request with an error in Prometheus' API
// shape, and nothing is forwarded. In particular the package guarantees:
//
//   - Only the routes of DESIGN.md are served, and only from canonical paths.
//     A path with percent-encoding, empty, dot or dot-dot segments, a trailing
//     slash, a semicolon or a different case is not found (404), so what is
//     classified is byte for byte what is forwarded.
//   - Parameters are read once, from the URL and a form body. A parameter in
//     both, a repeated single-valued parameter, a body on GET, a chunked
//     body (411), a body that is not application/x-www-form-urlencoded (415),
//     a method-override header or an Upgrade header is refused. A parameter
//     the route does not take is dropped, never forwarded, counted in
//     promgate_dropped_params_total and named in the audit record; with
//     upstream.flavor thanos, Thanos' parameters are forwarded once their
//     values are checked, and storeMatch[] is refused.
//   - Every request of a route asks the policy, 1+1 included. An allowed
//     one draws from its rate-limit bucket (the decision's rate_key, or the
//     identity) and, unrestricted callers included, is held to the window
//     limits and enforce's cost estimate (400 naming the limit; series,
//     labels and label values are clamped instead, as X-Promgate-Clamped
//     says) and, scrapes aside, to the bucket's concurrency limit (429).
//     Failed authentications are limited per client network; a
//     handshake-verified certificate is never refused by that limiter.
//   - The upstream request is rebuilt from the enforced parameters and an
//     allow-list of headers, set in ReverseProxy.Rewrite after hop-by-hop
//     removal; stampHeaders alone adds the request id, upstream token,
//     tenant and trace context, for every upstream request made for a
//     caller. The client's Authorization, Cookie, tenant and identity
//     headers never reach the upstream.
//   - Upstream failures are answered with 502 or 504 without the upstream's
//     address; the upstream's own API errors pass through unchanged.
//   - Exactly one audit record is written per request, in a deferred call,
//     whatever the outcome, panics included.
//   - Responses of rules, alerts, metadata and targets are filtered for a
//     restricted caller; one that cannot be read or filtered is a 502, never
//     passed through unfiltered.
//   - Identical upstream requests in flight at the same time may share one
//     answer (upstream.coalesce, coalesce.go): only requests whose upstream
//     request is equal byte for byte, the request id and trace context
//     aside, and each still gets its own filtering and audit record.
//     Nothing is cached.
//   - With the alertmanager block, an Alertmanager's API v2 is served
//     beside the Prometheus API (alertmanager.go; DESIGN.md,
//     "Alertmanager"): alerts and groups get the caller's enforcement as
//     filter matchers and are filtered again, silences are confined by
//     label (an update or expire reads the silence first and asks the
//     policy again with it; a refusal forwards nothing else), createdBy is
//     the authenticated subject, pushed alerts must carry allowed values,
//     and every other Alertmanager path, API v1 included, is 404.
//   - Remote write and read (write.go, read.go), when write.routes lists
//     them, take snappy protobuf bodies instead of parameters: every written
//     series is checked and confined in the decision's write mode, a series
//     with a foreign value is never forwarded, every read query's matchers
//     are confined, and every series of a read answer is checked before it
//     is sent; a streamed answer that fails the check is cut off, never
//     ended cleanly.
//     Coalescing caches nothing.
//   - With cache.enabled, query_range answers are assembled from parts of
//     earlier upstream answers (resultscache.go): only parts older than
//     cache.max_freshness, keyed by the upstream request as built (the
//     enforced query, tenant and token), so callers share a part only when
//     the upstream would be asked the same; the response filter still runs
//     per caller. Whatever is not a plain success is asked again as sent.
package proxy
