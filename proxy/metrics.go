package proxy

import (
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	authnFailures *prometheus.CounterVec
	dropped       *droppedParams
}

// maxDroppedNames caps the distinct param label values of
// promgate_dropped_params_total: names past it count as "other", so that
// callers inventing names cannot grow the gateway's own metrics.
const maxDroppedNames = 100

// droppedParams counts the parameters dropped from requests, by route and
// name, with the names capped.
type droppedParams struct {
	c     *prometheus.CounterVec
	mu    sync.Mutex
	names map[string]bool
}

// add counts one request's dropped parameter names on route.
func (d *droppedParams) add(route string, names []string) {
	for _, n := range names {
		d.c.WithLabelValues(route, d.label(n)).Inc()
	}
}

// label is the param label of a dropped name: the name itself while it is
// short printable ASCII and the cap is not reached, else "other".
func (d *droppedParams) label(n string) string {
	if len(n) > 64 || strings.IndexFunc(n, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		return "other"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.names[n] {
		if len(d.names) >= maxDroppedNames {
			return "other"
		}
		d.names[n] = true
	}
	return n
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_requests_total",
			Help: "Requests served on the public listener, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "promgate_request_duration_seconds",
			Help:    "Time from request to response on the public listener, upstream included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"route"}),
		authnFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_authn_failures_total",
			Help: "Requests whose credentials were missing or could not be verified, by method and reason.",
		}, []string{"method", "reason"}),
		dropped: &droppedParams{names: map[string]bool{}, c: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_dropped_params_total",
			Help: "Request parameters the gateway dropped instead of forwarding, by route and parameter name (capped at 100 names; the rest count as other).",
		}, []string{"route", "param"})},
	}
	reg.MustRegister(m.requests, m.duration, m.authnFailures, m.dropped.c)
	for _, rt := range Routes {
		m.duration.WithLabelValues(rt)
		for _, code := range []int{200, 400, 401, 403, 404, 429, 502, 503, 504} {
			m.requests.WithLabelValues(rt, strconv.Itoa(code))
		}
	}
	m.authnFailures.WithLabelValues("none", "no_credentials")
	for _, reason := range []string{"unverified", "no_subject", "bad_subject"} {
		m.authnFailures.WithLabelValues("mtls", reason)
	}
	return m
}
