package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Config is the whole promgate configuration file.
type Config struct {
	// Listen is the public address, served with TLS.
	Listen string `yaml:"listen"`
	// InternalListen serves the gateway's own /metrics, /-/healthy and /-/ready.
	// It is never proxied and should stay on loopback or a private network.
	InternalListen string `yaml:"internal_listen"`
	// TLS configures the public listener. Names follow Prometheus'
	// exporter-toolkit web config.
	TLS TLS `yaml:"tls"`
	// TrustedProxies lists the CIDRs whose X-Forwarded-For header is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ProxyProtocol makes the public listener read a PROXY protocol v2
	// header from every connection whose peer is in trusted_proxies (a
	// TCP-mode load balancer with TLS passthrough, such as HAProxy with
	// send-proxy-v2) and take the client's address from it; such a
	// connection without a header is closed. A header from any other peer
	// is refused and its connection closed; their connections without one
	// are served as usual.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// Upstream is the Prometheus-compatible API (or exporter) behind the gateway.
	Upstream Upstream `yaml:"upstream"`
	// Upstreams are further Prometheus APIs by name (upstreams.go), which a
	// decision picks with "upstream": name; upstream stays the default.
	Upstreams map[string]Upstream `yaml:"upstreams"`
	// Authn says how callers prove who they are.
	Authn Authn `yaml:"authn"`
	// Authz names the Rego policies and the decision to evaluate.
	Authz Authz `yaml:"authz"`
	// Audit configures the audit trail: one JSON record per request.
	Audit Audit `yaml:"audit"`
	// Limits bounds what one request or one identity may cost.
	Limits Limits `yaml:"limits"`
	// Detectors configures the background evaluation of the built-in
	// security detectors.
	Detectors Detectors `yaml:"detectors"`
	// Routes turns on optional routes of the Prometheus API.
	Routes Routes `yaml:"routes"`
	// Tracing exports the gateway's spans over OTLP (tracing.go).
	Tracing Tracing `yaml:"tracing"`
	// Alertmanager serves an Alertmanager's API v2 beside the Prometheus
	// API (alertmanager.go); nil serves none.
	Alertmanager *Alertmanager `yaml:"alertmanager"`
	// Write configures remote write and remote read (write.go).
	Write Write `yaml:"write"`
	// Cache is the results cache of query_range (cache.go).
	Cache Cache `yaml:"cache"`
	// ReplicaID names this replica of a fleet (letters, digits, '.', '_',
	// '-'; at most 63). Each replica then writes its own audit chain, in
	// audit.path with "-" and the id before the extension (audit-gw-1.log).
	// promgate serve -replica-id overrides it, so that replicas can share
	// one file (in Kubernetes, from the pod name).
	ReplicaID string `yaml:"replica_id"`

	// Dir is the folder of the loaded file; relative paths were resolved
	// against it. It is not part of the YAML.
	Dir string `yaml:"-"`
}

// TLS is the public listener's TLS configuration, named after exporter-toolkit's
// tls_server_config.
type TLS struct {
	// CertFile and KeyFile hold the server certificate chain and its key. Both
	// are reloaded when their content changes.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile holds the CAs that sign client certificates.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuthType is one of NoClientCert, VerifyClientCertIfGiven or
	// RequireAndVerifyClientCert. RequestClientCert and RequireAnyClientCert
	// are refused: they accept certificates without verifying them.
	ClientAuthType string `yaml:"client_auth_type"`
	// MinVersion is TLS12 or TLS13.
	MinVersion string `yaml:"min_version"`
	// ClientAllowedSANs, when set, is an exact-match allow-list of client
	// certificate SANs (DNS, e-mail, IP or URI). It is checked on every
	// connection, resumed ones included.
	ClientAllowedSANs []string `yaml:"client_allowed_sans"`
}

// Upstream is what the gateway forwards allowed requests to.
type Upstream struct {
	// URL of the Prometheus API or exporter. Only http and https. With kind
	// metrics it is the whole URL of the exporter served at /metrics, such
	// as http://127.0.0.1:9100/metrics; it may be left out when Exporters
	// name every path.
	URL string `yaml:"url"`
	// Kind is prometheus-api (the Prometheus HTTP API) or metrics (the
	// exporter sidecar: the gateway serves only scrapes of the exporters,
	// route scrape in the policy input).
	Kind string `yaml:"kind"`
	// Flavor is the implementation of the Prometheus API behind the
	// gateway: prometheus (default), thanos, mimir or cortex. With thanos
	// the query routes also forward Thanos' own parameters (dedup,
	// partial_response, replicaLabels[], engine, analyze,
	// max_source_resolution) once their values are checked.
	Flavor string `yaml:"flavor"`
	// TLS configures the connection to the upstream.
	TLS UpstreamTLS `yaml:"tls"`
	// BearerTokenFile holds a token sent upstream as Authorization: Bearer.
	// It is reloaded when it changes.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// TenantHeader names the header that carries the decision's tenant:
	// X-Scope-OrgID for Mimir and Cortex, THANOS-TENANT for Thanos. When set,
	// every allowed request needs a tenant from the policy; a client-sent
	// copy of the header, in any spelling, never reaches the upstream.
	TenantHeader string `yaml:"tenant_header"`
	// Exporters (kind metrics only) serve further exporters of the same pod,
	// each at its own exact path (such as /node/metrics) with its own URL,
	// TLS and token. Paths are exact: /node/metrics/x is not served. Query
	// strings are never forwarded, so that a caller cannot steer a
	// multi-target exporter (blackbox, snmp) elsewhere.
	Exporters []Exporter `yaml:"exporters"`
	// MaxScrapeBody bounds an exporter's response, compressed and
	// uncompressed (default 64MiB). A larger one fails the scrape with 502.
	MaxScrapeBody units.Base2Bytes `yaml:"max_scrape_body"`
	// Coalesce (default true) lets identical upstream requests in flight at
	// the same time share one answer: a request whose enforced query,
	// tenant and forwarded headers equal those of a request still waiting
	// for the upstream waits for that answer instead of asking again.
	// Response filters still run per caller. Nothing is cached.
	Coalesce bool `yaml:"coalesce"`
}

// Exporter is one scrape target of the exporter sidecar.
type Exporter struct {
	// Path is the exact path Prometheus scrapes on the gateway, such as
	// /node/metrics.
	Path string `yaml:"path"`
	// URL is the exporter's whole URL, such as http://127.0.0.1:9100/metrics.
	URL string `yaml:"url"`
	// TLS configures the connection to an https exporter.
	TLS UpstreamTLS `yaml:"tls"`
	// BearerTokenFile holds a token sent to this exporter as Authorization:
	// Bearer. It is re-read when it changes.
	BearerTokenFile string `yaml:"bearer_token_file"`
}

// UpstreamTLS configures the client side of the connection to the upstream.
type UpstreamTLS struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// Authn configures authentication. The gateway tries the methods in a fixed
// order: mTLS, then bearer tokens, then the browser session.
type Authn struct {
	MTLS MTLS `yaml:"mtls"`
	// OIDC lists the issuers whose bearer JWTs are accepted. A token is
	// checked only against the issuer its exact iss names.
	OIDC []OIDC `yaml:"oidc"`
	// Login enables the browser login (authorization code with PKCE) and the
	// session cookie. Nil means no browser login.
	Login *Login `yaml:"login"`
}

// OIDC accepts bearer JWTs (access or ID tokens) of one issuer.
type OIDC struct {
	// Issuer is the issuer URL, byte for byte as the tokens' iss claim and the
	// discovery document write it (https://idp.example and
	// https://idp.example/ are different issuers). https, or http on a
	// loopback address for tests.
	Issuer string `yaml:"issuer"`
	// Audiences are the accepted aud values; a token must name at least one.
	// Add the audience of every client whose tokens may be forwarded, for
	// example Grafana's client ID when Grafana forwards its users' tokens.
	Audiences []string `yaml:"audiences"`
	// UsernameClaim names the claim that becomes the subject (default sub).
	// When the token lacks it, sub, client_id and azp are tried in order, so
	// that client-credentials tokens, which carry no e-mail, are named by
	// their client.
	UsernameClaim string `yaml:"username_claim"`
	// GroupsClaim names the claim that holds the groups, a list of strings
	// (default groups). Any other shape is refused.
	GroupsClaim string `yaml:"groups_claim"`
	// RequiredScopes, when set, must all appear in the token's scope (or scp)
	// claim.
	RequiredScopes []string `yaml:"required_scopes"`
	// CAFile holds the CAs that sign the issuer's HTTPS certificate, when the
	// system roots do not.
	CAFile string `yaml:"ca_file"`
}

// Login is the browser login: the OpenID Connect authorization code flow with
// PKCE, state and nonce, ending in a stateless, encrypted session cookie.
type Login struct {
	// Issuer is the OpenID provider, written exactly as its discovery
	// document does.
	Issuer string `yaml:"issuer"`
	// ClientID and ClientSecretFile are the gateway's confidential client at
	// the provider.
	ClientID         string `yaml:"client_id"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL is the gateway's public /oauth2/callback URL, registered at
	// the provider.
	RedirectURL string `yaml:"redirect_url"`
	// CookieSecretFile holds at least 32 bytes of random data. Session
	// cookies are encrypted with a key derived from it; replicas share it.
	CookieSecretFile string `yaml:"cookie_secret_file"`
	// AcceptCookieSecretFiles hold further secrets (32 random bytes or
	// more each) whose cookies are accepted but never sealed: during a key
	// rotation, the next secret before every replica has it, then the
	// previous one until the sessions it sealed have expired. Replicas
	// share cookie_secret_file and these files, so a session made on one
	// is accepted by all.
	AcceptCookieSecretFiles []string `yaml:"accept_cookie_secret_files"`
	// Scopes requested at login (default openid, email, profile, groups).
	// Add offline_access to get a refresh token, which renews an expired
	// session without a new login.
	Scopes []string `yaml:"scopes"`
	// UsernameClaim and GroupsClaim map the ID token as for bearer tokens
	// (defaults sub and groups).
	UsernameClaim string `yaml:"username_claim"`
	GroupsClaim   string `yaml:"groups_claim"`
	// CookieName names the session cookie (default __Host-promgate_session).
	// It must keep the __Host- prefix.
	CookieName string `yaml:"cookie_name"`
	// CAFile holds the CAs of the provider's HTTPS certificate, when the
	// system roots do not.
	CAFile string `yaml:"ca_file"`
	// SessionLifetime is how long a session lasts after login or its last
	// renewal before the gateway renews it with the refresh token (default
	// 15m, between 1m and 24h). Sign-out reaches other replicas within it.
	SessionLifetime model.Duration `yaml:"session_lifetime"`
	// PostLogoutRedirectURL is sent to the provider's end_session_endpoint
	// as post_logout_redirect_uri at sign-out; the provider must have it
	// registered. Empty sends none.
	PostLogoutRedirectURL string `yaml:"post_logout_redirect_url"`
}

// MTLS maps a verified client certificate to an identity.
type MTLS struct {
	// Subject is where the subject comes from: cn, san_uri, san_dns, san_email
	// or spiffe_id.
	Subject string `yaml:"subject"`
	// Groups is where groups come from: ou (organizational units) or none.
	Groups string `yaml:"groups"`
}

// Authz configures the policy decision.
type Authz struct {
	// Policies is a folder of *.rego modules and *.json or *.yaml data files,
	// reloaded when any of them changes.
	Policies string `yaml:"policies"`
	// Decision is the Rego reference evaluated once per request.
	Decision string `yaml:"decision"`
	// Bundle, when its url is set, replaces the policies folder with a
	// signed OPA bundle served over HTTP(S), polled with ETag (bundle.go).
	Bundle Bundle `yaml:"bundle"`
}

// Audit configures the audit trail.
type Audit struct {
	// Path is the audit file, or "-" for stdout.
	Path string `yaml:"path"`
	// MaxSize rotates the file when it would grow beyond this size.
	MaxSize units.Base2Bytes `yaml:"max_size"`
	// MaxFiles is how many rotated files are kept besides the current one.
	MaxFiles int `yaml:"max_files"`
	// OnFailure is deny (refuse requests with 503 while records cannot be
	// written) or log (serve and log the failure).
	OnFailure string `yaml:"on_failure"`
	// FlushInterval is how often buffered records are written out and
	// fsynced. A crash loses at most this much of the trail; SIGTERM loses
	// nothing.
	FlushInterval model.Duration `yaml:"flush_interval"`
	// Mode is durable (the default) or buffered. durable: a response is
	// not released to the client before its record is written and fsynced;
	// concurrent requests share one write and one fsync (group commit), so
	// even a SIGKILL or a power cut loses no record of an answered request.
	// buffered: records are written out every flush_interval, which costs
	// less but lets a crash lose the records of the requests answered in
	// the last flush_interval. on_failure: deny needs durable.
	Mode string `yaml:"mode"`
}

// Limits bounds the cost of requests. Zero means no limit.
type Limits struct {
	// RequestsPerSecond and Burst rate-limit each identity.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	Burst             int     `yaml:"burst"`
	// MaxRange bounds end - start of a range query.
	MaxRange model.Duration `yaml:"max_range"`
	// MaxLookback bounds how far back a query reaches through offsets, @ and
	// range selectors.
	MaxLookback model.Duration `yaml:"max_lookback"`
	// MinStep is the smallest step a range query may ask for.
	MinStep model.Duration `yaml:"min_step"`
	// QueryTimeout is the deadline of one request, upstream included.
	QueryTimeout model.Duration `yaml:"query_timeout"`
	// MaxRequestBody bounds a request body.
	MaxRequestBody units.Base2Bytes `yaml:"max_request_body"`
	// MaxConnectionsPerNetwork bounds the concurrent connections from one
	// client network (an IPv4 /24 or IPv6 /56), so that one source cannot
	// hold every connection slot (slowloris). Trusted proxies are exempt.
	// Zero means no bound.
	MaxConnectionsPerNetwork int `yaml:"max_connections_per_network"`

	// The query cost model (DESIGN.md, "Query cost and limits"), applied to every
	// caller, unrestricted ones included, before anything is forwarded.
	// MaxQueryPoints bounds the evaluation points of a query: its steps
	// plus the points of every subquery.
	MaxQueryPoints int64 `yaml:"max_query_points"`
	// MaxSubqueryPoints bounds the points of one subquery, evaluated over
	// its parent's whole span plus its own range at its own step, as
	// Prometheus does: [1d:1ms] is 86,400,000.
	MaxSubqueryPoints int64 `yaml:"max_subquery_points"`
	// MaxSamplesEstimate bounds the samples a query reads per series:
	// each selector's window over AssumedScrapeInterval, times the points
	// at which it is read.
	MaxSamplesEstimate int64 `yaml:"max_samples_estimate"`
	// AssumedScrapeInterval is the scrape interval the estimate assumes.
	AssumedScrapeInterval model.Duration `yaml:"assumed_scrape_interval"`
	// DefaultSubqueryStep is the step of a subquery written without one
	// ([1h:]): the upstream's global evaluation_interval.
	DefaultSubqueryStep model.Duration `yaml:"default_subquery_step"`
	// MaxConcurrency bounds the requests one identity has in flight to the
	// upstream (429 beyond it). Zero means no bound.
	MaxConcurrency int `yaml:"max_concurrency"`
	// AuthFailures limits failed authentications per client network.
	AuthFailures AuthFailures `yaml:"auth_failures"`
}

// AuthFailures limits presented-but-invalid credentials per client
// network. Requests without credentials never count, and a certificate the
// TLS handshake verified is never refused by it.
type AuthFailures struct {
	// PerSecond and Burst are the token bucket of one network; a
	// PerSecond of zero turns the limiter off.
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
	// PrefixV4 and PrefixV6 are the prefix lengths that make a network.
	PrefixV4 int `yaml:"prefix_v4"`
	PrefixV6 int `yaml:"prefix_v6"`
}

// Detectors configures the background evaluation of the built-in detector
// catalog (promgate detectors list). The evaluator queries the upstream with
// the gateway's own upstream identity, unrestricted, and never on behalf of a
// caller.
type Detectors struct {
	// Enabled runs the background evaluator and exposes
	// promgate_detector_firing{detector,severity} on internal_listen.
	Enabled bool `yaml:"enabled"`
	// Interval is how often every detector is evaluated, and how often
	// firing alerts are re-sent to Alertmanager. At least 1s.
	Interval model.Duration `yaml:"interval"`
	// AlertmanagerURL, when set, receives firing detectors as alerts through
	// the Alertmanager API v2 (POST <url>/api/v2/alerts), e.g.
	// http://alertmanager:9093.
	AlertmanagerURL string `yaml:"alertmanager_url"`
	// ExternalURL is the URL under which callers reach the gateway. When set,
	// alerts link back to <external_url>/api/promgate/v1/detectors/<id> as
	// their generatorURL.
	ExternalURL string `yaml:"external_url"`
	// AlertmanagerTLS configures the connection to alertmanager_url (an
	// https URL): its CA, and a client certificate, such as the one the
	// evaluator presents when alertmanager_url is the gateway itself.
	AlertmanagerTLS UpstreamTLS `yaml:"alertmanager_tls"`
	// AlertmanagerBearerTokenFile holds a token sent to alertmanager_url as
	// Authorization: Bearer, read at every push.
	AlertmanagerBearerTokenFile string `yaml:"alertmanager_bearer_token_file"`
}

// Routes turns on optional routes. A route it does not list is not found
// (404), exactly as a path the gateway never serves.
type Routes struct {
	// Status lists the status routes served: buildinfo, runtimeinfo,
	// flags, tsdb, config, walreplay and targets (default [buildinfo],
	// which Grafana asks to detect the flavour of the datasource). The
	// list replaces the default, so keep buildinfo in it. Every request
	// still asks the policy; runtimeinfo, flags, tsdb, config and
	// walreplay describe the whole server and are served to unrestricted
	// callers only, and targets is filtered for restricted ones.
	Status []string `yaml:"status"`
}

// StatusRoutes are the names Routes.Status accepts, in the order of
// Prometheus' documentation. Each is also the route's name in the policy
// input (input.request.route).
var StatusRoutes = []string{"buildinfo", "runtimeinfo", "flags", "tsdb", "config", "walreplay", "targets"}

// Client authentication types, named as in exporter-toolkit.
const (
	NoClientCert               = "NoClientCert"
	VerifyClientCertIfGiven    = "VerifyClientCertIfGiven"
	RequireAndVerifyClientCert = "RequireAndVerifyClientCert"
)

// Upstream kinds.
const (
	KindPrometheusAPI = "prometheus-api"
	KindMetrics       = "metrics"

	FlavorPrometheus = "prometheus"
	FlavorThanos     = "thanos"
	FlavorMimir      = "mimir"
	FlavorCortex     = "cortex"
)

// Audit failure modes.
const (
	OnFailureDeny = "deny"
	OnFailureLog  = "log"
)

// ReplicaIDPattern is what replica_id may look like: it becomes part of the
// audit file's name.
var ReplicaIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Audit durability modes.
const (
	AuditDurable  = "durable"
	AuditBuffered = "buffered"
)

// Default returns the configuration that a file is decoded onto.
func Default() *Config {
	return &Config{
		Listen:         "0.0.0.0:8443",
		InternalListen: "127.0.0.1:9091",
		TLS: TLS{
			ClientAuthType: VerifyClientCertIfGiven,
			MinVersion:     "TLS12",
		},
		Upstream: Upstream{Kind: KindPrometheusAPI, Flavor: FlavorPrometheus, MaxScrapeBody: 64 * units.MiB, Coalesce: true},
		Authn:    Authn{MTLS: MTLS{Subject: "cn", Groups: "ou"}},
		Authz: Authz{
			Policies: "policies",
			Decision: "data.promgate.authz.decision",
		},
		Audit: Audit{
			Path:          "-",
			MaxSize:       100 * units.MiB,
			MaxFiles:      10,
			OnFailure:     OnFailureDeny,
			FlushInterval: model.Duration(time.Second),
			Mode:          AuditDurable,
		},
		// The evaluator is opt-in: it queries the upstream with the
		// gateway's own, unrestricted identity, which an operator should
		// choose to allow. The detectors API works either way.
		Detectors: Detectors{
			Interval: model.Duration(time.Minute),
		},
		// Grafana asks buildinfo to detect the flavour of a Prometheus
		// datasource; the other status routes describe the whole server.
		Routes: Routes{Status: []string{"buildinfo"}},
		Write:  DefaultWrite(),
		Cache:  DefaultCache(),
		Limits: Limits{
			RequestsPerSecond: 20,
			Burst:             40,
			// No default max_range or max_lookback: the cost limits below
			// bound what a query costs, whatever the width of its window,
			// so that Grafana's long time pickers work.
			MinStep:        model.Duration(time.Second),
			QueryTimeout:   model.Duration(2 * time.Minute),
			MaxRequestBody: units.MiB,
			// Generous for a NAT of Grafana users, small next to the
			// process' file descriptor limit.
			MaxConnectionsPerNetwork: 512,
			// Per series. Every Grafana time picker up to 90 days at its
			// automatic step (at most 11,000 points) and every detector
			// stay well under these (DESIGN.md, "Query cost and limits"); [1d:1ms]
			// (86,400,000 subquery points) does not.
			MaxQueryPoints:        2_000_000,
			MaxSubqueryPoints:     1_000_000,
			MaxSamplesEstimate:    250_000_000,
			AssumedScrapeInterval: model.Duration(15 * time.Second),
			DefaultSubqueryStep:   model.Duration(time.Minute),
			MaxConcurrency:        32,
			// A sustained 5/s with bursts of 50 per /24 or /56: generous for
			// humans and misconfigured clients, tight for a spray.
			AuthFailures: AuthFailures{PerSecond: 5, Burst: 50, PrefixV4: 24, PrefixV6: 56},
		},
	}
}

// Load reads, decodes and validates the file at path. Relative paths in it are
// resolved against the file's folder. The error lists every problem found.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve config path: %w", err)
	}
	return Parse(b, filepath.Dir(abs))
}

// Parse decodes b onto Default, resolves relative paths against dir and
// validates the result.
func Parse(b []byte, dir string) (*Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var decodeErr error
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		// A type error (unknown key, bad value) still decodes the rest, so
		// validation can report its problems too; a syntax error cannot.
		te, ok := errors.AsType[*yaml.TypeError](err)
		if !ok {
			return nil, fmt.Errorf("decode: %w", err)
		}
		decodeErr = typeErrors(b, te)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode: more than one YAML document; promgate reads exactly one")
	}
	c.Dir = dir
	c.resolvePaths()
	if err := errors.Join(decodeErr, c.Validate()); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) resolvePaths() {
	for _, p := range []*string{
		&c.TLS.CertFile, &c.TLS.KeyFile, &c.TLS.ClientCAFile,
		&c.Upstream.TLS.CAFile, &c.Upstream.TLS.CertFile, &c.Upstream.TLS.KeyFile,
		&c.Upstream.BearerTokenFile, &c.Authz.Policies, &c.Tracing.HeadersFile,
		&c.Detectors.AlertmanagerTLS.CAFile, &c.Detectors.AlertmanagerTLS.CertFile,
		&c.Detectors.AlertmanagerTLS.KeyFile, &c.Detectors.AlertmanagerBearerTokenFile,
	} {
		*p = c.abs(*p)
	}
	c.resolveUpstreams()
	for i := range c.Upstream.Exporters {
		e := &c.Upstream.Exporters[i]
		for _, p := range []*string{&e.TLS.CAFile, &e.TLS.CertFile, &e.TLS.KeyFile, &e.BearerTokenFile} {
			*p = c.abs(*p)
		}
	}
	for i := range c.Authn.OIDC {
		c.Authn.OIDC[i].CAFile = c.abs(c.Authn.OIDC[i].CAFile)
	}
	if l := c.Authn.Login; l != nil {
		l.ClientSecretFile = c.abs(l.ClientSecretFile)
		l.CookieSecretFile = c.abs(l.CookieSecretFile)
		for i, f := range l.AcceptCookieSecretFiles {
			l.AcceptCookieSecretFiles[i] = c.abs(f)
		}
		l.CAFile = c.abs(l.CAFile)
	}
	c.Cache.Memcached.SigningKeyFile = c.abs(c.Cache.Memcached.SigningKeyFile)
	c.Authz.Bundle.PublicKeyFile = c.abs(c.Authz.Bundle.PublicKeyFile)
	c.Authz.Bundle.CAFile = c.abs(c.Authz.Bundle.CAFile)
	if c.Audit.Path != "-" {
		c.Audit.Path = c.abs(c.Audit.Path)
	}
	if c.Alertmanager != nil {
		c.Alertmanager.resolvePaths(c)
	}
}

func (c *Config) abs(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// Validate checks the configuration without touching files or the network. It
// returns every problem joined, each prefixed by its YAML path.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}

	if err := checkHostPort(c.Listen); err != nil {
		add("listen", "%v", err)
	}
	if c.InternalListen != "" {
		if err := checkHostPort(c.InternalListen); err != nil {
			add("internal_listen", "%v", err)
		} else if c.InternalListen == c.Listen {
			add("internal_listen", "must differ from listen: the gateway's own endpoints are never served on the public listener")
		}
	}

	// TLS.
	if c.TLS.CertFile == "" {
		add("tls.cert_file", "required: promgate serves only TLS")
	}
	if c.TLS.KeyFile == "" {
		add("tls.key_file", "required: promgate serves only TLS")
	}
	switch c.TLS.ClientAuthType {
	case NoClientCert:
		if len(c.TLS.ClientAllowedSANs) > 0 {
			add("tls.client_allowed_sans", "set, but client_auth_type is NoClientCert, so no certificate is ever checked")
		}
	case VerifyClientCertIfGiven, RequireAndVerifyClientCert:
		if c.TLS.ClientCAFile == "" {
			add("tls.client_ca_file", "required when client_auth_type is %s", c.TLS.ClientAuthType)
		}
	case "RequestClientCert", "RequireAnyClientCert":
		add("tls.client_auth_type", "%q does not verify certificates; use RequireAndVerifyClientCert or VerifyClientCertIfGiven", c.TLS.ClientAuthType)
	default:
		add("tls.client_auth_type", "unknown value %q; use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert", c.TLS.ClientAuthType)
	}
	switch c.TLS.MinVersion {
	case "TLS12", "TLS13":
	case "TLS10", "TLS11":
		add("tls.min_version", "%q is refused: TLS 1.0 and 1.1 are broken; use TLS12 or TLS13", c.TLS.MinVersion)
	default:
		add("tls.min_version", "unknown value %q; use TLS12 or TLS13", c.TLS.MinVersion)
	}
	for i, san := range c.TLS.ClientAllowedSANs {
		if strings.TrimSpace(san) == "" || san != strings.TrimSpace(san) {
			add(fmt.Sprintf("tls.client_allowed_sans[%d]", i), "empty or padded SAN %q", san)
		}
	}

	for i, cidr := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			add(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not a CIDR such as 10.0.0.0/8", cidr)
		}
	}

	// Upstream.
	if c.Upstream.URL == "" {
		if c.Upstream.Kind != KindMetrics || len(c.Upstream.Exporters) == 0 {
			add("upstream.url", "required")
		}
	} else if msg := checkUpstreamURL(c.Upstream.URL); msg != "" {
		add("upstream.url", "%s", msg)
	}
	switch c.Upstream.Flavor {
	case FlavorPrometheus, FlavorThanos, FlavorMimir, FlavorCortex:
	default:
		add("upstream.flavor", "%q is not one of prometheus, thanos, mimir, cortex", c.Upstream.Flavor)
	}
	switch c.Upstream.Kind {
	case KindPrometheusAPI:
		if len(c.Upstream.Exporters) > 0 {
			add("upstream.exporters", "only for kind metrics (the exporter sidecar)")
		}
	case KindMetrics:
		if c.Upstream.TenantHeader != "" {
			add("upstream.tenant_header", "has no meaning for kind metrics: exporters have no tenants")
		}
		seen := map[string]bool{}
		if c.Upstream.URL != "" {
			seen[DefaultScrapePath] = true
		}
		for i, e := range c.Upstream.Exporters {
			at := fmt.Sprintf("upstream.exporters[%d]", i)
			switch {
			case !scrapePathRE.MatchString(e.Path) || strings.Contains(e.Path, "//") || strings.Contains(e.Path, "/./") || strings.Contains(e.Path, "/../") || strings.HasSuffix(e.Path, "/.") || strings.HasSuffix(e.Path, "/.."):
				add(at+".path", "%q is not an absolute path such as /node/metrics (letters, digits, - _ . ~ and /, no empty, . or .. segments, no trailing slash)", e.Path)
			case seen[e.Path] && e.Path == DefaultScrapePath:
				add(at+".path", "%s is already served by upstream.url; leave upstream.url empty or choose another path", e.Path)
			case seen[e.Path]:
				add(at+".path", "%s is listed twice", e.Path)
			}
			seen[e.Path] = true
			if e.URL == "" {
				add(at+".url", "required")
			} else if msg := checkUpstreamURL(e.URL); msg != "" {
				add(at+".url", "%s", msg)
			} else if !strings.HasPrefix(e.URL, "https:") && e.TLS != (UpstreamTLS{}) {
				add(at+".tls", "set, but the url is not https")
			}
			if (e.TLS.CertFile == "") != (e.TLS.KeyFile == "") {
				add(at+".tls", "cert_file and key_file go together")
			}
		}
	default:
		add("upstream.kind", "unknown value %q; use prometheus-api or metrics", c.Upstream.Kind)
	}
	if c.Upstream.MaxScrapeBody <= 0 {
		add("upstream.max_scrape_body", "must be positive")
	}
	if (c.Upstream.TLS.CertFile == "") != (c.Upstream.TLS.KeyFile == "") {
		add("upstream.tls", "cert_file and key_file go together")
	}
	if h := c.Upstream.TenantHeader; h != "" && !headerNameRE.MatchString(h) {
		add("upstream.tenant_header", "%q is not an HTTP header name", h)
	}

	c.validateUpstreams(add)

	// Authn.
	switch c.Authn.MTLS.Subject {
	case "cn", "san_uri", "san_dns", "san_email", "spiffe_id":
	default:
		add("authn.mtls.subject", "unknown value %q; use cn, san_uri, san_dns, san_email or spiffe_id", c.Authn.MTLS.Subject)
	}
	switch c.Authn.MTLS.Groups {
	case "ou", "none":
	default:
		add("authn.mtls.groups", "unknown value %q; use ou or none", c.Authn.MTLS.Groups)
	}
	errs = append(errs, c.Authn.validateOIDC()...)
	if c.TLS.ClientAuthType == NoClientCert && len(c.Authn.OIDC) == 0 && c.Authn.Login == nil {
		add("tls.client_auth_type", "NoClientCert leaves no way to authenticate without authn.oidc or authn.login; use VerifyClientCertIfGiven or RequireAndVerifyClientCert")
	}

	// Authz.
	if c.Authz.Policies == "" {
		add("authz.policies", "required: a folder of .rego and data files")
	}
	if !strings.HasPrefix(c.Authz.Decision, "data.") || strings.ContainsAny(c.Authz.Decision, " \t\n") {
		add("authz.decision", "%q is not a Rego reference such as data.promgate.authz.decision", c.Authz.Decision)
	}

	if c.ProxyProtocol && len(c.TrustedProxies) == 0 {
		add("proxy_protocol", "needs trusted_proxies: the balancers whose PROXY headers are believed")
	}
	if c.ReplicaID != "" && !ReplicaIDPattern.MatchString(c.ReplicaID) {
		add("replica_id", "%q is not a replica id: use letters, digits, '.', '_' and '-', at most 63", c.ReplicaID)
	}

	c.Authz.Bundle.validate(add)

	// Audit.
	if c.Audit.Path == "" {
		add("audit.path", `required: a file, or "-" for stdout`)
	}
	if c.Audit.MaxSize < 0 {
		add("audit.max_size", "must not be negative")
	}
	if c.Audit.MaxFiles < 0 {
		add("audit.max_files", "must not be negative")
	}
	if c.Audit.FlushInterval <= 0 {
		add("audit.flush_interval", "must be positive")
	}
	switch c.Audit.OnFailure {
	case OnFailureDeny, OnFailureLog:
	default:
		add("audit.on_failure", "unknown value %q; use deny or log", c.Audit.OnFailure)
	}
	switch c.Audit.Mode {
	case AuditDurable:
	case AuditBuffered:
		if c.Audit.OnFailure == OnFailureDeny {
			add("audit.mode", "buffered lets a crash lose records of answered requests, which on_failure: deny forbids; use durable, or on_failure: log to accept the loss")
		}
	default:
		add("audit.mode", "unknown value %q; use durable or buffered", c.Audit.Mode)
	}

	// Limits.
	if c.Limits.RequestsPerSecond < 0 {
		add("limits.requests_per_second", "must not be negative")
	}
	if c.Limits.RequestsPerSecond > 0 && c.Limits.Burst < 1 {
		add("limits.burst", "must be at least 1 when requests_per_second is set")
	}
	if c.Limits.QueryTimeout <= 0 {
		add("limits.query_timeout", "must be positive: every request needs a deadline")
	}
	if c.Limits.MaxRequestBody <= 0 {
		add("limits.max_request_body", "must be positive")
	}
	if c.Limits.MaxConnectionsPerNetwork < 0 {
		add("limits.max_connections_per_network", "must not be negative")
	}
	if c.Limits.MaxRange < 0 || c.Limits.MaxLookback < 0 || c.Limits.MinStep < 0 {
		add("limits", "durations must not be negative")
	}
	if c.Limits.MaxQueryPoints < 0 || c.Limits.MaxSubqueryPoints < 0 || c.Limits.MaxSamplesEstimate < 0 || c.Limits.MaxConcurrency < 0 {
		add("limits", "max_query_points, max_subquery_points, max_samples_estimate and max_concurrency must not be negative")
	}
	if c.Limits.AssumedScrapeInterval <= 0 {
		add("limits.assumed_scrape_interval", "must be positive")
	}
	if c.Limits.DefaultSubqueryStep <= 0 {
		add("limits.default_subquery_step", "must be positive")
	}
	if af := c.Limits.AuthFailures; af.PerSecond < 0 || (af.PerSecond > 0 && af.Burst < 1) {
		add("limits.auth_failures", "per_second must not be negative, and burst must be at least 1 when it is set")
	}
	if af := c.Limits.AuthFailures; af.PrefixV4 < 8 || af.PrefixV4 > 32 || af.PrefixV6 < 16 || af.PrefixV6 > 128 {
		add("limits.auth_failures", "prefix_v4 must be 8 to 32 and prefix_v6 16 to 128")
	}

	// Routes.
	seenStatus := map[string]bool{}
	for i, name := range c.Routes.Status {
		switch {
		case !slices.Contains(StatusRoutes, name):
			add(fmt.Sprintf("routes.status[%d]", i), "unknown status route %q; use %s", name, strings.Join(StatusRoutes, ", "))
		case seenStatus[name]:
			add(fmt.Sprintf("routes.status[%d]", i), "%s is listed twice", name)
		}
		seenStatus[name] = true
	}

	// Detectors.
	if c.Detectors.Interval < model.Duration(time.Second) {
		add("detectors.interval", "must be at least 1s")
	}
	for _, u := range []struct{ path, v string }{
		{"detectors.alertmanager_url", c.Detectors.AlertmanagerURL},
		{"detectors.external_url", c.Detectors.ExternalURL},
	} {
		if u.v == "" {
			continue
		}
		if p, err := url.Parse(u.v); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil || p.RawQuery != "" || p.Fragment != "" {
			add(u.path, "%q is not an http or https URL such as http://alertmanager:9093 (no credentials, query or fragment)", u.v)
		}
	}

	if (c.Detectors.AlertmanagerTLS.CertFile == "") != (c.Detectors.AlertmanagerTLS.KeyFile == "") {
		add("detectors.alertmanager_tls", "cert_file and key_file go together")
	}
	if c.Detectors.AlertmanagerTLS != (UpstreamTLS{}) && !strings.HasPrefix(c.Detectors.AlertmanagerURL, "https:") {
		add("detectors.alertmanager_tls", "set, but detectors.alertmanager_url is not https")
	}

	errs = append(errs, c.Tracing.validate()...)
	if c.Alertmanager != nil {
		if c.Upstream.Kind == KindMetrics {
			add("alertmanager", "not served by an exporter sidecar (upstream.kind metrics)")
		}
		errs = append(errs, c.Alertmanager.validate()...)
	}
	errs = append(errs, c.Write.validate()...)
	errs = append(errs, c.Cache.validate()...)
	return errors.Join(errs...)
}

// typeErrors turns yaml's type errors into one error per problem. Unknown
// keys are reported with their YAML path, found by walking the document
// against the Config type.
func typeErrors(b []byte, te *yaml.TypeError) error {
	var errs []error
	var root yaml.Node
	if yaml.Unmarshal(b, &root) == nil && len(root.Content) == 1 {
		errs = unknownKeys(root.Content[0], reflect.TypeFor[Config](), "")
	}
	for _, msg := range te.Errors {
		if strings.Contains(msg, " not found in type ") && len(errs) > 0 {
			continue // reported above, with its path
		}
		errs = append(errs, errors.New("decode: "+msg))
	}
	return errors.Join(errs...)
}

// unknownKeys lists the mapping keys of n that t has no yaml field for.
func unknownKeys(n *yaml.Node, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[yaml.Node]() {
		return nil
	}
	var errs []error
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ft, ok := fields[k.Value]
			if !ok {
				errs = append(errs, fmt.Errorf("%s: unknown key (line %d)", p, k.Line))
				continue
			}
			errs = append(errs, unknownKeys(v, ft, p)...)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, v := range n.Content {
			errs = append(errs, unknownKeys(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return errs
}

// DefaultScrapePath is where the exporter sidecar serves upstream.url.
const DefaultScrapePath = "/metrics"

// scrapePathRE is the alphabet of an exporter's path: unreserved URL
// characters, so that the path is the same encoded and decoded.
var scrapePathRE = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)+$`)

// checkUpstreamURL returns why u is not a usable upstream URL, or "".
func checkUpstreamURL(u string) string {
	p, err := url.Parse(u)
	switch {
	case err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "":
		return fmt.Sprintf("%q is not an http or https URL", u)
	case p.User != nil:
		return "must not carry credentials; use bearer_token_file or tls"
	case p.RawQuery != "" || p.Fragment != "" || p.ForceQuery:
		return "must not carry a query or fragment"
	}
	return ""
}

// headerNameRE is the token alphabet of RFC 9110 field names.
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func checkHostPort(s string) error {
	if s == "" {
		return errors.New("required, as host:port")
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", s)
	}
	return nil
}
