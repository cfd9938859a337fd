package authn

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the authenticators' own series. Labels stay bounded: issuer
// values come from the configuration only.
type metrics struct {
	issuerUp    *prometheus.GaugeVec
	discovery   *prometheus.CounterVec
	jwksFetches *prometheus.CounterVec
	cache       *prometheus.CounterVec
	login       *prometheus.CounterVec
}

// Login events counted by promgate_login_events_total.
var loginEvents = []string{"started", "succeeded", "refreshed", "failed", "signed_out"}

func newMetrics(reg prometheus.Registerer, issuers []string, cacheLen func() float64) (*metrics, error) {
	m := &metrics{
		issuerUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "promgate_oidc_issuer_up",
			Help: "Whether an OIDC issuer's discovery document and JWKS were fetched (1); its tokens get 401 while 0.",
		}, []string{"issuer"}),
		discovery: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_oidc_discovery_attempts_total",
			Help: "OIDC discovery attempts by issuer and result (ok, error).",
		}, []string{"issuer", "result"}),
		jwksFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_oidc_jwks_fetches_total",
			Help: "JWKS fetches by issuer and result (ok, error, cooldown = refused because the last fetch was too recent).",
		}, []string{"issuer", "result"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_oidc_token_cache_lookups_total",
			Help: "Verified-token cache lookups by result (hit, miss).",
		}, []string{"result"}),
		login: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_login_events_total",
			Help: "Browser login events (started, succeeded, refreshed, failed, signed_out).",
		}, []string{"event"}),
	}
	for _, is := range issuers {
		m.issuerUp.WithLabelValues(is).Set(0)
		for _, r := range []string{"ok", "error"} {
			m.discovery.WithLabelValues(is, r)
		}
		for _, r := range []string{"ok", "error", "cooldown"} {
			m.jwksFetches.WithLabelValues(is, r)
		}
	}
	m.cache.WithLabelValues("hit")
	m.cache.WithLabelValues("miss")
	for _, e := range loginEvents {
		m.login.WithLabelValues(e)
	}
	cs := []prometheus.Collector{m.issuerUp, m.discovery, m.jwksFetches, m.cache, m.login}
	if cacheLen != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "promgate_oidc_token_cache_entries",
			Help: "Verified tokens currently cached.",
		}, cacheLen))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
