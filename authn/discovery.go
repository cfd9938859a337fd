package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Discovery retry timing.
const (
	discoveryFirstBackoff = time.Second
	discoveryMaxBackoff   = time.Minute
	discoveryTimeout      = 15 * time.Second
)

// provider is an OpenID provider whose discovery document and JWKS are
// fetched in the background. Until both succeed its tokens are refused as
// "issuer unavailable"; the gateway starts regardless.
type provider struct {
	issuer string
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
	m      *metrics

	state atomic.Pointer[discovered]
}

// discovered is what a successful discovery yields.
type discovered struct {
	provider *oidc.Provider
	keys     *keySet
	// endSession is the provider's end_session_endpoint (RP-initiated
	// logout), if any.
	endSession string
	// revocation is the provider's revocation_endpoint (RFC 7009), if any.
	revocation string
	// authStyle is how the gateway's client authenticates at the token and
	// revocation endpoints: client_secret_basic unless the provider lists
	// only client_secret_post. Fixing it once avoids x/oauth2's probing,
	// which sends a failed request a second time with the secret in the
	// body.
	authStyle oauth2.AuthStyle
}

func newProvider(issuer, caFile string, now func() time.Time, log *slog.Logger, m *metrics) (*provider, error) {
	client, err := httpClient(caFile)
	if err != nil {
		return nil, err
	}
	return &provider{issuer: issuer, client: client, now: now, log: log.With("issuer", issuer), m: m}, nil
}

// httpClient returns the client that talks to a provider: bounded time, TLS
// 1.2 or later, and the CAs of caFile when set.
func httpClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{
		Transport: tr,
		Timeout:   discoveryTimeout,
		// A provider's endpoints answer directly; following redirects would
		// let a compromised endpoint point the gateway elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// ready returns the discovered provider, or nil while it is unavailable.
func (p *provider) ready() *discovered { return p.state.Load() }

// discover fetches the discovery document and the JWKS once. go-oidc refuses
// a document whose issuer differs from p.issuer by a single byte.
func (p *provider) discover(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, p.client), p.issuer)
	if err != nil {
		return err
	}
	var meta struct {
		JWKSURL     string   `json:"jwks_uri"`
		EndSession  string   `json:"end_session_endpoint"`
		Revocation  string   `json:"revocation_endpoint"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := op.Claims(&meta); err != nil {
		return fmt.Errorf("decode discovery document: %w", err)
	}
	if meta.JWKSURL == "" {
		return errors.New("discovery document has no jwks_uri")
	}
	endSession, revocation := meta.EndSession, meta.Revocation
	for name, v := range map[string]*string{"end_session_endpoint": &endSession, "revocation_endpoint": &revocation} {
		if *v != "" && !sameSchemeURL(p.issuer, *v) {
			// The browser is sent to one and the refresh token to the
			// other: neither may be a relative, plain-http (for an https
			// issuer) or otherwise odd URL.
			p.log.Warn("oidc discovery endpoint ignored: not an absolute URL with the issuer's scheme", "endpoint", name)
			*v = ""
		}
	}
	ks := &keySet{
		issuer: p.issuer, url: meta.JWKSURL, client: p.client, now: p.now, cooldown: jwksCooldown,
		fetched: func(result string) { p.m.jwksFetches.WithLabelValues(p.issuer, result).Inc() },
	}
	if !ks.refresh(ctx) {
		return errors.New("fetch jwks failed")
	}
	p.state.Store(&discovered{provider: op, keys: ks, endSession: endSession, revocation: revocation, authStyle: authStyleOf(meta.AuthMethods)})
	return nil
}

// authStyleOf picks the client authentication of a provider's token
// endpoint from token_endpoint_auth_methods_supported, whose default is
// client_secret_basic (OpenID Connect Discovery 1.0).
func authStyleOf(methods []string) oauth2.AuthStyle {
	if len(methods) > 0 && !slices.Contains(methods, "client_secret_basic") && slices.Contains(methods, "client_secret_post") {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

// sameSchemeURL reports whether s is an absolute URL with a host, no user
// info and no fragment, whose scheme is the issuer's (https, or http for a
// loopback test issuer).
func sameSchemeURL(issuer, s string) bool {
	iu, err := url.Parse(issuer)
	if err != nil {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == iu.Scheme && (u.Scheme == "https" || u.Scheme == "http") &&
		u.Host != "" && u.User == nil && u.Fragment == "" && u.Opaque == ""
}

// run retries discovery with exponential backoff until it succeeds or ctx is
// done.
func (p *provider) run(ctx context.Context) {
	backoff := discoveryFirstBackoff
	for {
		err := p.discover(ctx)
		if err == nil {
			p.m.discovery.WithLabelValues(p.issuer, "ok").Inc()
			p.m.issuerUp.WithLabelValues(p.issuer).Set(1)
			p.log.Info("oidc issuer discovered")
			return
		}
		p.m.discovery.WithLabelValues(p.issuer, "error").Inc()
		p.log.Warn("oidc issuer unavailable; its tokens are refused until discovery succeeds", "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, discoveryMaxBackoff)
	}
}
