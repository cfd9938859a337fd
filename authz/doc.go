// Package authz asks a Rego policy whether a request may go on, and under
// which label confinement, tenant and limits.
//
// An Authorizer compiles one policy folder (config authz.policies) once and
// prepares the decision query (authz.decision) once; Decide then evaluates it
// per request with an input document built directly as a Rego value. Reload
// replaces the compiled policy as a whole through an atomic pointer, so every
// decision comes from exactly one revision, and a change that does not load
// leaves the previous policy in use. Noticing a change is the caller's
// business: Reload is meant to be registered with the gateway's one watcher.
//
// # Guarantees
//
//   - Fail closed. An undefined decision, an evaluation error (a rule
//     conflict, a built-in error, a cancelled context), more than one result,
//     or a decision of the wrong shape is a denial with a short, safe reason
//     and an error wrapping ErrUndefined, ErrEvaluation or ErrMalformed.
//   - Strict decisions. "allow" must be a boolean; "enforce" and
//     "enforce_regex" objects of string arrays or sets keyed by a label
//     name other than __name__; "matchers" an array or set of series
//     selectors in braces; "reason", "tenant" and "rate_key" strings;
//     "limits" an object of Prometheus duration strings (max_range,
//     max_lookback, min_step) and of numbers 0 or more (max_query_points,
//     max_subquery_points, max_samples_estimate, max_concurrency and burst
//     whole, requests_per_second with a fraction if need be). Any other key
//     is refused, so that a misspelt "enforce" denies rather than grants
//     everything. A regex of "enforce_regex" must compile on its own and
//     must not match the empty string (which would expose series lacking the
//     label); a matcher must parse with the Prometheus parser and not be a
//     bare metric name. A tenant must be 1 to 150 bytes of the Mimir and
//     Cortex tenant alphabet (letters, digits and !-_.*'()) and neither "."
//     nor "..", since it becomes an HTTP header and, upstream, a storage
//     path. A rate key must be 1 to 128 bytes of printable ASCII. A label
//     allowed no value at all (neither literal nor regex) turns the decision
//     into a denial.
//   - Compiled once. The confinement of a decision is validated and
//     compiled into an *enforce.Enforcer (Decision.Enforcer) when the policy
//     answers, by enforce.NewPolicyEnforcer alone; one that does not compile
//     is a malformed decision. A revision keeps its allowed decisions by
//     value, and its decision cache keeps them by input, each with its
//     Enforcer, so that the request path never validates a decision again.
//   - No network and no secrets. Policies are compiled with http.send, every
//     net.* built-in and opa.runtime removed, and with no host allowed for
//     JSON-schema references; using one is a load error naming file and line.
//   - Strict evaluation. Modules are Rego v1 compiled in strict mode, and
//     built-in errors abort the evaluation (a denial) instead of making an
//     expression undefined, which under `not` or before an `else` could turn
//     a failed check into an allow.
//   - Problems surface at load time, prefixed "authz.policies: " (with file
//     and line) or "authz.decision: ", so that `promgate check` lists them.
//
// # Policy folder
//
// Every *.rego file is a module except *_test.rego, which only Test loads.
// Every *.json, *.yaml and *.yml file is data: in the folder itself it is
// merged at the data root, in a sub-folder a/b at data.a.b (as `opa run`
// loads plain files). Data files must hold objects; one key set by two files
// is an error. Names starting with a dot are skipped, which also skips the
// "..data" folders of a Kubernetes ConfigMap mount while its symlinked files
// are read. Revision is a short SHA-256 over the names and contents of the
// loaded files, for the audit record.
//
// # Policy bundle
//
// With authz.bundle the policy is a signed OPA bundle fetched over HTTP(S)
// instead of a folder (bundle.go): polled with If-None-Match every
// poll_interval, used only when OPA's bundle reader verifies its
// .signatures.json with the configured public key and its modules compile
// under the rules above; otherwise the policy in use stays. Unsigned
// bundles are always refused. Revision is then the manifest's revision.
//
// # Metrics
//
//	promgate_policy_eval_duration_seconds            histogram of Decide evaluations
//	promgate_authz_decisions_total{route,result}     result is allow, deny or error
//	promgate_policy_reloads_total{result}            success or failure, initial load included
//	promgate_policy_last_reload_timestamp_seconds    when the policy in use was loaded
//
// Test runs a folder's Rego unit tests like `opa test`, with the same
// restrictions as serving.
package authz
