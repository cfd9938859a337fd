// Command healthcheck is the container image's HEALTHCHECK probe: the
// distroless runtime image has no shell, curl or wget, so this small static
// binary does the one thing a probe needs.
//
// Usage:
//
//	healthcheck [URL]
//
// It sends one GET to URL (default http://127.0.0.1:9091/-/healthy, the
// gateway's default internal_listen) and exits 0 only for a 200 answer. It
// refuses any scheme but http and https, never follows a redirect, ignores
// proxy environment variables and gives up after three seconds, so that a
// hung gateway is reported unhealthy rather than hanging the probe.
package main
