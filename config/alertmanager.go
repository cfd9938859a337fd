package config

import (
	"fmt"
	"strings"
)

// Alertmanager puts an Alertmanager (API v2) behind the same gateway, beside
// the Prometheus API: /api/v2/alerts, /api/v2/alerts/groups,
// /api/v2/silences, /api/v2/silence/{id}, /api/v2/status and
// /api/v2/receivers are forwarded to it, confined by the policy's decision,
// and every other Alertmanager path (API v1, the UI, /-/reload) is not
// found. Alertmanager's paths do not collide with Prometheus' /api/v1, so
// one gateway, one listener and one policy serve both; Grafana's
// Alertmanager data source and amtool point at the gateway's URL. Nil (no
// block) serves no Alertmanager route.
type Alertmanager struct {
	// URL of the Alertmanager, such as http://alertmanager:9093 (http or
	// https, no credentials, query or fragment). A path prefix, such as
	// Mimir's /alertmanager, is kept: requests go to <url>/api/v2/....
	URL string `yaml:"url"`
	// TLS configures the connection to the Alertmanager.
	TLS UpstreamTLS `yaml:"tls"`
	// BearerTokenFile holds a token sent to the Alertmanager as
	// Authorization: Bearer. It is reloaded when it changes.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// TenantHeader names the header that carries the decision's tenant, such
	// as X-Scope-OrgID for Mimir's multi-tenant Alertmanager. When set, every
	// allowed request needs a tenant from the policy; a client's copy of the
	// header never reaches the Alertmanager.
	TenantHeader string `yaml:"tenant_header"`
}

// validate checks the alertmanager block.
func (a *Alertmanager) validate() []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if a.URL == "" {
		add("alertmanager.url", "required")
	} else if msg := checkUpstreamURL(a.URL); msg != "" {
		add("alertmanager.url", "%s", msg)
	} else if !strings.HasPrefix(a.URL, "https:") && a.TLS != (UpstreamTLS{}) {
		add("alertmanager.tls", "set, but the url is not https")
	}
	if (a.TLS.CertFile == "") != (a.TLS.KeyFile == "") {
		add("alertmanager.tls", "cert_file and key_file go together")
	}
	if h := a.TenantHeader; h != "" && !headerNameRE.MatchString(h) {
		add("alertmanager.tenant_header", "%q is not an HTTP header name", h)
	}
	return errs
}

// resolvePaths makes the block's file paths absolute.
func (a *Alertmanager) resolvePaths(c *Config) {
	for _, p := range []*string{&a.TLS.CAFile, &a.TLS.CertFile, &a.TLS.KeyFile, &a.BearerTokenFile} {
		*p = c.abs(*p)
	}
}
