// Package e2e holds promgate's end-to-end tests. They build the promgate
// binary, start a real Prometheus (the Debian package, installed by
// scripts/install-deps.sh) that scrapes itself under the namespaces team-a,
// team-b and kube-system and without a namespace, put a recording reverse
// proxy between the gateway and Prometheus, and talk to the gateway over
// mutual TLS with certificates from `promgate certs dev`.
//
// The tests guarantee, through the whole stack, that a restricted caller sees
// only its namespaces on every route, that every label-enforcement attack the
// gateway refuses (conflicting or widening matchers, selectors hidden in any
// position, injected values, URL and body ambiguity) carries the documented
// status and reaches nothing upstream, that no identity or tenant header
// reaches the upstream, and that every request the gateway answered left
// exactly one audit record with no secret in it. docs/threat-model.md lists
// the attacks and the tests that cover them.
//
// The console tests (console_test.go) drive headless Chromium through the
// security console as alice and as an administrator, run axe-core on every
// page, and save full-page screenshots in e2e/artifacts/console/, which git
// ignores.
//
// The tests carry the build tag e2e and run with
//
//	go test -tags e2e -count=1 -v ./e2e/
//
// They fail, never skip, when Prometheus is missing.
package e2e
