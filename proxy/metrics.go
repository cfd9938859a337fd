package proxy

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	authnFailures *prometheus.CounterVec
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
	}
	reg.MustRegister(m.requests, m.duration, m.authnFailures)
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
