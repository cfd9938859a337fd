// Package console renders the gateway's security console, the pages under
// /ui/: the overview of the detectors, one detector, the query page, the
// service topology and the administrator's page.
//
// It renders only: every number and label it is given was read by package
// proxy through the caller's own decision and enforcement, and the console
// never reaches the upstream itself. Pages are server-rendered HTML with
// charts drawn as inline SVG, so they need no script at all; the one style
// sheet is inline and allowed by its hash, and CSP is
//
//	default-src 'none'; style-src 'sha256-…'; img-src data:; form-action 'self';
//	frame-ancestors 'none'; base-uri 'none'
//
// Everything a page shows goes through html/template, so a label value of
// "<script>" is shown as text; CSP blocks inline script even if it were not.
package console
