package tlsutil

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the cert label of promgate_tls_cert_expiry_timestamp_seconds.
const (
	CertServer         = "server"
	CertClientCA       = "client_ca"
	CertUpstreamClient = "upstream_client"
)

// Metrics are the TLS metrics: certificate expiry and reload outcomes. A nil
// *Metrics records nothing.
type Metrics struct {
	certExpiry *prometheus.GaugeVec
	reloads    *prometheus.CounterVec
}

// NewMetrics builds the TLS metrics and registers them with reg. A nil reg
// registers nothing, which suits tests. It registers
// promgate_tls_cert_expiry_timestamp_seconds{cert} (the NotAfter of the server
// leaf, of the earliest-expiring client CA and of the upstream client leaf) and
// promgate_tls_reloads_total{result}, whose success and failure series start
// at 0.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "promgate_tls_cert_expiry_timestamp_seconds",
			Help: "NotAfter of the certificate in use, as a Unix timestamp: the server leaf, the earliest-expiring client CA, or the upstream client leaf.",
		}, []string{"cert"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_tls_reloads_total",
			Help: "Reloads of the listener's certificate, key and client CAs, by result.",
		}, []string{"result"}),
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	if reg != nil {
		reg.MustRegister(m.certExpiry, m.reloads)
	}
	return m
}

func (m *Metrics) setExpiry(cert string, notAfter time.Time) {
	if m == nil {
		return
	}
	m.certExpiry.WithLabelValues(cert).Set(float64(notAfter.Unix()))
}

func (m *Metrics) reloaded(ok bool) {
	if m == nil {
		return
	}
	result := "success"
	if !ok {
		result = "failure"
	}
	m.reloads.WithLabelValues(result).Inc()
}
