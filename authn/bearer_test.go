package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/promgate/promgate/config"
)

func bearerRequest(headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up", nil)
	for _, h := range headers {
		r.Header.Add("Authorization", h)
	}
	return r
}

// wantReason checks that err is an *Error with reason.
func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	ae, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("err = %v, want *Error with reason %q", err, reason)
	}
	if ae.Reason != reason {
		t.Fatalf("reason = %q (%s), want %q", ae.Reason, ae.Msg, reason)
	}
}

// TestBearerTokens covers forged signatures and algorithm confusion, issuer
// and audience mix-ups, expiry, keys named in the token header, and claims of
// the wrong shape: each forged or ill-formed token is refused with its reason.
func TestBearerTokens(t *testing.T) {
	clock := newClock()
	idp := newTestIssuer(t, clock)
	other := newTestIssuer(t, clock)
	other.rotate(t, 1, "k-other")
	// A server that counts every request: a token header pointing at it
	// must never make the gateway fetch anything.
	var lured atomic.Int64
	lure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { lured.Add(1) }))
	defer lure.Close()

	b, _ := newTestBearer(t, clock,
		config.OIDC{Issuer: idp.url, Audiences: []string{"promgate", "grafana-forwarded"}},
		config.OIDC{Issuer: other.url, Audiences: []string{"promgate"}, UsernameClaim: "email"},
	)
	now := clock.now()
	attacker := rsaKey(t, 2)
	pubPEM := func() []byte {
		der, _ := x509.MarshalPKIXPublicKey(&idp.key.PublicKey)
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}()
	with := func(edit func(c map[string]any)) map[string]any {
		c := idp.claims(now)
		edit(c)
		return c
	}
	valid := idp.sign(t, idp.claims(now), nil)
	parts := strings.Split(valid, ".")

	tests := []struct {
		name   string
		token  string
		reason string // "" = accepted
	}{
		{name: "valid", token: valid},
		{name: "second audience", token: idp.sign(t, with(func(c map[string]any) { c["aud"] = []string{"x", "grafana-forwarded"} }), nil)},
		// Forged signatures and algorithm confusion.
		{name: "alg none", token: unsigned(map[string]any{"alg": "none", "kid": "k1"}, idp.claims(now)), reason: "invalid_token"},
		{name: "alg none with signature", token: unsigned(map[string]any{"alg": "none", "kid": "k1"}, idp.claims(now)) + parts[2], reason: "invalid_token"},
		{name: "HS256 with the public key as secret", token: signWith(t, jose.HS256, pubPEM, "k1", idp.claims(now), nil), reason: "invalid_token"},
		{name: "changed signature", token: parts[0] + "." + parts[1] + "." + flip(parts[2]), reason: "invalid_token"},
		{name: "truncated signature", token: parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])/2], reason: "invalid_token"},
		{name: "empty signature", token: parts[0] + "." + parts[1] + ".", reason: "invalid_token"},
		{name: "changed payload", token: parts[0] + "." + encodeClaims(with(func(c map[string]any) { c["groups"] = []string{"admins"} })) + "." + parts[2], reason: "invalid_token"},
		{name: "two signatures (JSON serialization)", token: twoSignatures(t, idp, attacker, idp.claims(now)), reason: "malformed"},
		// Issuer and audience mix-ups.
		{name: "wrong audience", token: idp.sign(t, with(func(c map[string]any) { c["aud"] = "grafana" }), nil), reason: "wrong_audience"},
		{name: "no audience", token: idp.sign(t, with(func(c map[string]any) { delete(c, "aud") }), nil), reason: "wrong_audience"},
		{name: "signed by A with iss B", token: idp.sign(t, with(func(c map[string]any) { c["iss"] = other.url }), nil), reason: "unknown_key"},
		{name: "iss with a trailing slash", token: idp.sign(t, with(func(c map[string]any) { c["iss"] = idp.url + "/" }), nil), reason: "unknown_issuer"},
		{name: "unknown iss", token: idp.sign(t, with(func(c map[string]any) { c["iss"] = "https://evil.example" }), nil), reason: "unknown_issuer"},
		{name: "iss not a string", token: idp.sign(t, with(func(c map[string]any) { c["iss"] = []string{idp.url} }), nil), reason: "malformed"},
		// Expiry and not-before.
		{name: "expired", token: idp.sign(t, with(func(c map[string]any) { c["exp"] = now.Add(-time.Second).Unix() }), nil), reason: "expired"},
		{name: "exp now", token: idp.sign(t, with(func(c map[string]any) { c["exp"] = now.Unix() }), nil), reason: "expired"},
		{name: "no exp", token: idp.sign(t, with(func(c map[string]any) { delete(c, "exp") }), nil), reason: "expired"},
		{name: "exp a string", token: idp.sign(t, with(func(c map[string]any) { c["exp"] = fmt.Sprint(now.Add(time.Hour).Unix()) }), nil), reason: "expired"},
		{name: "nbf in the future", token: idp.sign(t, with(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() }), nil), reason: "not_yet_valid"},
		{name: "nbf within leeway", token: idp.sign(t, with(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Second).Unix() }), nil)},
		// Keys named or embedded in the header are never used or fetched.
		{name: "embedded jwk", token: signEmbedded(t, attacker, idp.claims(now)), reason: "invalid_token"},
		{name: "embedded jwk with the issuer's kid", token: signWith(t, jose.RS256, attacker, "k1", idp.claims(now), map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: &attacker.PublicKey}}), reason: "invalid_token"},
		{name: "jku", token: signWith(t, jose.RS256, attacker, "lure", idp.claims(now), map[jose.HeaderKey]any{"jku": lure.URL + "/jwks"}), reason: "unknown_key"},
		{name: "x5u", token: signWith(t, jose.RS256, attacker, "lure2", idp.claims(now), map[jose.HeaderKey]any{"x5u": lure.URL + "/cert.pem"}), reason: "unknown_key"},
		{name: "x5c", token: signWith(t, jose.RS256, attacker, "", idp.claims(now), map[jose.HeaderKey]any{"x5c": []string{selfSigned(t)}}), reason: "invalid_token"},
		// Claims of the wrong shape.
		{name: "groups a string", token: idp.sign(t, with(func(c map[string]any) { c["groups"] = "admins" }), nil), reason: "bad_claims"},
		{name: "groups [1]", token: idp.sign(t, with(func(c map[string]any) { c["groups"] = []any{1} }), nil), reason: "bad_claims"},
		{name: "groups mixed", token: idp.sign(t, with(func(c map[string]any) { c["groups"] = []any{"team-a", true} }), nil), reason: "bad_claims"},
		{name: "groups object", token: idp.sign(t, with(func(c map[string]any) { c["groups"] = map[string]any{"team-a": true} }), nil), reason: "bad_claims"},
		{name: "groups with an empty string", token: idp.sign(t, with(func(c map[string]any) { c["groups"] = []string{""} }), nil), reason: "bad_claims"},
		{name: "sub not a string", token: idp.sign(t, with(func(c map[string]any) { c["sub"] = 42 }), nil), reason: "invalid_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := b.Authenticate(bearerRequest("Bearer " + tc.token))
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if id.Method != MethodOIDC || id.Subject != "scraper-a" || id.Issuer != idp.url {
					t.Errorf("identity %+v", id)
				}
				if diff := cmp.Diff([]string{"team-a"}, id.Groups); diff != "" {
					t.Errorf("groups (-want +got):\n%s", diff)
				}
				return
			}
			wantReason(t, err, tc.reason)
		})
	}
	if n := lured.Load(); n != 0 {
		t.Errorf("the gateway fetched %d times from a URL named in a token header", n)
	}
}

// TestBearerEmailClaim covers e-mail claims crafted to pass for another
// domain or an unverified address, with username_claim: email on the second
// issuer.
func TestBearerEmailClaim(t *testing.T) {
	clock := newClock()
	idp := newTestIssuer(t, clock)
	b, _ := newTestBearer(t, clock, config.OIDC{Issuer: idp.url, Audiences: []string{"promgate"}, UsernameClaim: "email"})
	now := clock.now()
	tests := []struct {
		name   string
		edit   func(c map[string]any)
		want   string
		reason string
	}{
		{name: "email", edit: func(c map[string]any) { c["email"] = "alice@corp.example"; c["email_verified"] = true }, want: "alice@corp.example"},
		{name: "no email: client credentials fall back to sub", edit: func(c map[string]any) {}, want: "scraper-a"},
		{name: "no email and no sub: client_id", edit: func(c map[string]any) { delete(c, "sub") }, want: "scraper-a"},
		{name: "only azp", edit: func(c map[string]any) { delete(c, "sub"); delete(c, "client_id"); c["azp"] = "grafana" }, want: "grafana"},
		{name: "no name at all", edit: func(c map[string]any) { delete(c, "sub"); delete(c, "client_id") }, reason: "bad_claims"},
		{name: "two @", edit: func(c map[string]any) { c["email"] = "x@evil.com@corp.com" }, reason: "bad_claims"},
		{name: "display name", edit: func(c map[string]any) { c["email"] = "Alice <alice@corp.example>" }, reason: "bad_claims"},
		{name: "unverified", edit: func(c map[string]any) { c["email"] = "alice@corp.example"; c["email_verified"] = false }, reason: "bad_claims"},
		{name: "email a list", edit: func(c map[string]any) { c["email"] = []string{"alice@corp.example"} }, reason: "bad_claims"},
		{name: "control characters", edit: func(c map[string]any) { c["email"] = "alice@corp.example\n" }, reason: "bad_claims"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := idp.claims(now)
			tc.edit(c)
			id, err := b.Authenticate(bearerRequest("Bearer " + idp.sign(t, c, nil)))
			if tc.reason != "" {
				wantReason(t, err, tc.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Subject != tc.want {
				t.Errorf("subject %q, want %q", id.Subject, tc.want)
			}
		})
	}
}

// TestBearerHeaders covers ambiguous Authorization headers: two of them,
// another scheme or spelling, and two tokens in one, which a proxy and the
// gateway could read differently.
func TestBearerHeaders(t *testing.T) {
	clock := newClock()
	idp := newTestIssuer(t, clock)
	b, _ := newTestBearer(t, clock, config.OIDC{Issuer: idp.url, Audiences: []string{"promgate"}})
	tok := idp.sign(t, idp.claims(clock.now()), nil)
	tests := []struct {
		name    string
		headers []string
		reason  string
	}{
		{name: "one bearer", headers: []string{"Bearer " + tok}},
		{name: "two Authorization headers", headers: []string{"Bearer " + tok, "Bearer " + tok}, reason: "malformed"},
		{name: "lower-case scheme", headers: []string{"bearer " + tok}, reason: "wrong_scheme"},
		{name: "upper-case scheme", headers: []string{"BEARER " + tok}, reason: "wrong_scheme"},
		{name: "Basic", headers: []string{"Basic YWxpY2U6c2VjcmV0"}, reason: "wrong_scheme"},
		{name: "no space", headers: []string{"Bearer" + tok}, reason: "wrong_scheme"},
		{name: "two spaces", headers: []string{"Bearer  " + tok}, reason: "malformed"},
		{name: "two tokens in one header", headers: []string{"Bearer " + tok + ", Bearer " + tok}, reason: "malformed"},
		{name: "empty token", headers: []string{"Bearer "}, reason: "malformed"},
		{name: "not a JWT", headers: []string{"Bearer abc"}, reason: "malformed"},
		{name: "huge token", headers: []string{"Bearer " + strings.Repeat("a", maxTokenLen) + ".b.c"}, reason: "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Authenticate(bearerRequest(tc.headers...))
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantReason(t, err, tc.reason)
		})
	}
	if _, err := b.Authenticate(bearerRequest()); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no header: err = %v, want ErrNoCredentials", err)
	}
}

// TestBearerCacheNeverOutlivesToken checks that the verified-token cache
// never serves a token past its exp.
func TestBearerCacheNeverOutlivesToken(t *testing.T) {
	clock := newClock()
	idp := newTestIssuer(t, clock)
	b, reg := newTestBearer(t, clock, config.OIDC{Issuer: idp.url, Audiences: []string{"promgate"}})
	c := idp.claims(clock.now())
	c["exp"] = clock.now().Add(time.Minute).Unix()
	tok := idp.sign(t, c, nil)
	for i := range 3 {
		if _, err := b.Authenticate(bearerRequest("Bearer " + tok)); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if hits := testutil.ToFloat64(b.m.cache.WithLabelValues("hit")); hits != 2 {
		t.Errorf("cache hits = %v, want 2", hits)
	}
	clock.add(59 * time.Second)
	if _, err := b.Authenticate(bearerRequest("Bearer " + tok)); err != nil {
		t.Fatalf("a second before exp: %v", err)
	}
	clock.add(time.Second)
	_, err := b.Authenticate(bearerRequest("Bearer " + tok))
	wantReason(t, err, "expired")
	if n := b.cache.len(); n != 0 {
		t.Errorf("cache holds %d entries after exp", n)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP promgate_oidc_token_cache_entries Verified tokens currently cached.
# TYPE promgate_oidc_token_cache_entries gauge
promgate_oidc_token_cache_entries 0
`), "promgate_oidc_token_cache_entries"); err != nil {
		t.Error(err)
	}
}

func TestTokenCacheBounded(t *testing.T) {
	c := newTokenCache(100)
	now := time.Unix(1000, 0)
	for i := range 1000 {
		c.put(tokenKey(fmt.Sprint(i)), &Identity{}, now.Add(time.Hour), now)
		if c.len() > 100 {
			t.Fatalf("cache grew to %d entries", c.len())
		}
	}
	if _, ok := c.get(tokenKey("999"), now); !ok {
		t.Error("latest entry missing")
	}
	c.put(tokenKey("past"), &Identity{}, now, now)
	if _, ok := c.get(tokenKey("past"), now); ok {
		t.Error("an expired token was cached")
	}
}

// TestBearerKidFlood covers a flood of tokens with random kids: they cause
// at most one JWKS fetch per cooldown.
func TestBearerKidFlood(t *testing.T) {
	clock := newClock()
	idp := newTestIssuer(t, clock)
	b, reg := newTestBearer(t, clock, config.OIDC{Issuer: idp.url, Audiences: []string{"promgate"}})
	if got := idp.jwksHits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times at discovery, want 1", got)
	}
	attacker := rsaKey(t, 2)
	flood := func(n int) {
		for i := range n {
			tok := signWith(t, jose.RS256, attacker, fmt.Sprintf("random-%d-%d", clock.now().Unix(), i), idp.claims(clock.now()), nil)
			_, err := b.Authenticate(bearerRequest("Bearer " + tok))
			wantReason(t, err, "unknown_key")
		}
	}
	flood(200)
	if got := idp.jwksHits.Load(); got != 1 {
		t.Errorf("after 200 random kids within the cooldown: %d fetches, want 1", got)
	}
	clock.add(jwksCooldown)
	flood(200)
	if got := idp.jwksHits.Load(); got != 2 {
		t.Errorf("after one cooldown: %d fetches, want 2", got)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(`
# HELP promgate_oidc_jwks_fetches_total JWKS fetches by issuer and result (ok, error, cooldown = refused because the last fetch was too recent).
# TYPE promgate_oidc_jwks_fetches_total counter
promgate_oidc_jwks_fetches_total{issuer=%[1]q,result="cooldown"} 399
promgate_oidc_jwks_fetches_total{issuer=%[1]q,result="error"} 0
promgate_oidc_jwks_fetches_total{issuer=%[1]q,result="ok"} 2
`, idp.url)), "promgate_oidc_jwks_fetches_total"); err != nil {
		t.Error(err)
	}
}

// TestBearerKeyRotation: a new kid is fetched once the cooldown allows it.
func TestBearerKeyRotation(t *testing.T) {
	clock := newClock()
	idp := newTestIssuer(t, clock)
	b, _ := newTestBearer(t, clock, config.OIDC{Issuer: idp.url, Audiences: []string{"promgate"}})
	old := idp.sign(t, idp.claims(clock.now()), nil)
	if _, err := b.Authenticate(bearerRequest("Bearer " + old)); err != nil {
		t.Fatal(err)
	}
	idp.rotate(t, 1, "k2")
	clock.add(jwksCooldown)
	tok := idp.sign(t, idp.claims(clock.now()), nil)
	if _, err := b.Authenticate(bearerRequest("Bearer " + tok)); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	// The old key is gone from the JWKS; its token is still cached (it was
	// verified and has not expired), but a new token with it is refused.
	c := idp.claims(clock.now())
	c["jti"] = "new"
	_, err := b.Authenticate(bearerRequest("Bearer " + signWith(t, jose.RS256, rsaKey(t, 0), "k1", c, nil)))
	wantReason(t, err, "unknown_key")
}

// TestBearerIssuerUnavailable: an unreachable issuer does not fail startup;
// its tokens get 401 "issuer_unavailable" until discovery succeeds.
func TestBearerIssuerUnavailable(t *testing.T) {
	clock := newClock()
	idp := newTestIssuer(t, clock)
	idp.available.Store(false)
	b, reg := newTestBearer(t, clock, config.OIDC{Issuer: idp.url, Audiences: []string{"promgate"}})
	tok := idp.sign(t, idp.claims(clock.now()), nil)
	_, err := b.Authenticate(bearerRequest("Bearer " + tok))
	wantReason(t, err, "issuer_unavailable")

	idp.available.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := b.issuers[idp.url].p
	go p.run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for p.ready() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := b.Authenticate(bearerRequest("Bearer " + tok)); err != nil {
		t.Fatalf("after discovery: %v", err)
	}
	if up := testutil.ToFloat64(b.m.issuerUp.WithLabelValues(idp.url)); up != 1 {
		t.Errorf("promgate_oidc_issuer_up = %v, want 1", up)
	}
	_ = reg
}

// TestBearerWithCertificate covers a token sent over a client certificate:
// the token names the caller, the verified certificate is kept for policy
// and audit, and a bad token never falls back to the certificate.
func TestBearerWithCertificate(t *testing.T) {
	clock := newClock()
	idp := newTestIssuer(t, clock)
	reg := newTestRegistry()
	chain, _, err := newChain(canceled(), config.Authn{
		MTLS: config.MTLS{Subject: "cn", Groups: "ou"},
		OIDC: []config.OIDC{{Issuer: idp.url, Audiences: []string{"promgate"}}},
	}, discardLogger(), reg, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := chain[0].(*Bearer).issuers[idp.url].p.discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	cert := testCert("grafana", []string{"grafana"})
	req := func(auth string) *http.Request {
		r := bearerRequest()
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		r.TLS = verified(cert)
		return r
	}
	id, err := chain.Authenticate(req("Bearer " + idp.sign(t, idp.claims(clock.now()), nil)))
	if err != nil {
		t.Fatal(err)
	}
	if id.Method != MethodOIDC || id.Subject != "scraper-a" || id.Certificate == nil || id.Certificate.Subject != "CN=grafana,OU=grafana" {
		t.Errorf("identity %+v (certificate %+v), want the token's subject with the certificate kept", id, id.Certificate)
	}
	// The cached identity is not modified by the certificate.
	id2, err := chain.Authenticate(func() *http.Request {
		r := bearerRequest("Bearer " + idp.sign(t, idp.claims(clock.now()), nil))
		return r
	}())
	if err != nil || id2.Certificate != nil {
		t.Errorf("without a certificate: %+v, %v", id2, err)
	}
	_, err = chain.Authenticate(req("Bearer " + idp.sign(t, map[string]any{"iss": idp.url, "aud": "other", "exp": clock.now().Add(time.Hour).Unix()}, nil)))
	wantReason(t, err, "wrong_audience")
	_, err = chain.Authenticate(req("Basic eDp5"))
	wantReason(t, err, "wrong_scheme")
	id, err = chain.Authenticate(req(""))
	if err != nil || id.Method != MethodMTLS || id.Subject != "grafana" {
		t.Errorf("certificate alone: %+v, %v", id, err)
	}
	// An unverified certificate is refused, token or not.
	r := req("Bearer " + idp.sign(t, idp.claims(clock.now()), nil))
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	_, err = chain.Authenticate(r)
	wantReason(t, err, "unverified")
}

func TestBearerRequiredScopes(t *testing.T) {
	clock := newClock()
	idp := newTestIssuer(t, clock)
	b, _ := newTestBearer(t, clock, config.OIDC{Issuer: idp.url, Audiences: []string{"promgate"}, RequiredScopes: []string{"metrics:read"}})
	c := idp.claims(clock.now())
	if _, err := b.Authenticate(bearerRequest("Bearer " + idp.sign(t, c, nil))); err != nil {
		t.Fatal(err)
	}
	c["scope"] = "openid metrics:write"
	_, err := b.Authenticate(bearerRequest("Bearer " + idp.sign(t, c, nil)))
	wantReason(t, err, "missing_scope")
}

func TestBearerClaimsTyped(t *testing.T) {
	clock := newClock()
	idp := newTestIssuer(t, clock)
	b, _ := newTestBearer(t, clock, config.OIDC{Issuer: idp.url, Audiences: []string{"promgate"}})
	c := idp.claims(clock.now())
	c["big"] = int64(9007199254740993)
	c["nested"] = map[string]any{"a": []any{"x", true}}
	id, err := b.Authenticate(bearerRequest("Bearer " + idp.sign(t, c, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := id.Claims["big"]; got != json.Number("9007199254740993") {
		t.Errorf("big = %#v, want the exact number", got)
	}
	if diff := cmp.Diff(map[string]any{"a": []any{"x", true}}, id.Claims["nested"]); diff != "" {
		t.Errorf("nested (-want +got):\n%s", diff)
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	return string(b)
}

func encodeClaims(c map[string]any) string {
	s := unsigned(map[string]any{}, c)
	return strings.Split(s, ".")[1]
}

// twoSignatures signs claims twice (issuer and attacker) in the JSON
// serialization, the only form that carries several signatures.
func twoSignatures(t *testing.T, idp *testIssuer, attacker any, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewMultiSigner([]jose.SigningKey{
		{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: idp.key, KeyID: idp.kid}},
		{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: attacker, KeyID: "evil"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	return obj.FullSerialize()
}

func signEmbedded(t *testing.T, key any, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, &jose.SignerOptions{EmbedJWK: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func selfSigned(t *testing.T) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evil"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return base64Std(der)
}
