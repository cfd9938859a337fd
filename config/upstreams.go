package config

import (
	"regexp"
	"sort"
)

// UpstreamNamePattern is what a name under upstreams may look like; a
// decision's "upstream" must name one of them.
var UpstreamNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Named upstreams (issue 21). Each entry of upstreams is a Prometheus API of
// its own: url, flavor, tls, bearer_token_file, tenant_header and coalesce
// as under upstream (kind is prometheus-api, exporters are not allowed; an
// empty flavor is prometheus, coalesce is off unless set). A decision picks
// one with "upstream": name, for example a global querier without tenancy
// for admins while teams go to the tenant-enforcing one; a decision without
// it goes to upstream. A name no entry has is a denial.

// UpstreamNames returns the names of upstreams, sorted.
func (c *Config) UpstreamNames() []string {
	names := make([]string, 0, len(c.Upstreams))
	for n := range c.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// resolveUpstreams fills the named upstreams' defaults and resolves their
// paths against the configuration's folder.
func (c *Config) resolveUpstreams() {
	for name, u := range c.Upstreams {
		if u.Kind == "" {
			u.Kind = KindPrometheusAPI
		}
		if u.Flavor == "" {
			u.Flavor = FlavorPrometheus
		}
		if u.MaxScrapeBody == 0 {
			u.MaxScrapeBody = c.Upstream.MaxScrapeBody
		}
		for _, p := range []*string{&u.TLS.CAFile, &u.TLS.CertFile, &u.TLS.KeyFile, &u.BearerTokenFile} {
			*p = c.abs(*p)
		}
		c.Upstreams[name] = u
	}
}

// validateUpstreams adds the problems of upstreams.
func (c *Config) validateUpstreams(add func(path, format string, args ...any)) {
	if len(c.Upstreams) > 0 && c.Upstream.Kind != KindPrometheusAPI {
		add("upstreams", "only with upstream.kind prometheus-api")
	}
	for _, name := range c.UpstreamNames() {
		u := c.Upstreams[name]
		at := "upstreams." + name
		if !UpstreamNamePattern.MatchString(name) {
			add(at, "%q is not an upstream name: lowercase letters, digits, '_' and '-', at most 63", name)
		}
		if u.URL == "" {
			add(at+".url", "required")
		} else if msg := checkUpstreamURL(u.URL); msg != "" {
			add(at+".url", "%s", msg)
		}
		switch u.Flavor {
		case FlavorPrometheus, FlavorThanos, FlavorMimir, FlavorCortex, "":
		default:
			add(at+".flavor", "%q is not one of prometheus, thanos, mimir, cortex", u.Flavor)
		}
		if u.Kind != KindPrometheusAPI && u.Kind != "" {
			add(at+".kind", "only prometheus-api: exporters are served by upstream alone")
		}
		if len(u.Exporters) > 0 {
			add(at+".exporters", "only under upstream, for kind metrics")
		}
		if (u.TLS.CertFile == "") != (u.TLS.KeyFile == "") {
			add(at+".tls", "cert_file and key_file go together")
		}
		if h := u.TenantHeader; h != "" && !headerNameRE.MatchString(h) {
			add(at+".tenant_header", "%q is not an HTTP header name", h)
		}
	}
}
