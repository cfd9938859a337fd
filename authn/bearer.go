package authn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/promgate/promgate/config"
)

// Token limits.
const (
	// maxTokenLen bounds a bearer token; real JWTs are a few KiB.
	maxTokenLen = 16 << 10
	// nbfLeeway tolerates clock skew on nbf only. exp has none: a token is
	// refused from its exp on.
	nbfLeeway = 30 * time.Second
)

// Bearer authenticates a caller by a JWT in "Authorization: Bearer", signed
// by one of the configured issuers. See the package documentation for the
// rules it enforces.
type Bearer struct {
	issuers map[string]*bearerIssuer
	cache   *tokenCache
	now     func() time.Time
	log     *slog.Logger
	m       *metrics
}

var _ Authenticator = (*Bearer)(nil)

// bearerIssuer is one authn.oidc entry.
type bearerIssuer struct {
	p         *provider
	audiences []string
	scopes    []string
	mapper    claimMapper
}

// Method returns MethodOIDC.
func (b *Bearer) Method() Method { return MethodOIDC }

// Authenticate verifies the request's bearer token. A request without an
// Authorization header has no credentials; any other shape than exactly one
// "Bearer <JWT>" header is refused. A verified client certificate on the same
// connection is kept in the identity, so that policy and audit see both.
func (b *Bearer) Authenticate(r *http.Request) (*Identity, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return nil, ErrNoCredentials
	}
	if len(vals) > 1 {
		return nil, b.fail("malformed", "send exactly one Authorization header")
	}
	raw, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		return nil, b.fail("wrong_scheme", `the Authorization header must be "Bearer <token>"`)
	}
	if !jwtShaped(raw) {
		return nil, b.fail("malformed", "the bearer token is not a compact JWT")
	}
	var cert *Certificate
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			return nil, &Error{Method: MethodMTLS, Reason: "unverified", Msg: "client certificate was not verified"}
		}
		cert = CertificateOf(r.TLS.VerifiedChains[0][0])
	}
	id, err := b.Verify(r.Context(), raw)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		c := *id
		c.Certificate = cert
		id = &c
	}
	return id, nil
}

// Verify verifies a raw JWT and returns its identity. The identity is shared
// with the cache and must not be modified.
func (b *Bearer) Verify(ctx context.Context, raw string) (*Identity, error) {
	now := b.now()
	key := tokenKey(raw)
	if id, ok := b.cache.get(key, now); ok {
		b.m.cache.WithLabelValues("hit").Inc()
		return id, nil
	}
	b.m.cache.WithLabelValues("miss").Inc()

	iss, err := peekIssuer(raw)
	if err != nil {
		return nil, b.fail("malformed", "the bearer token has no readable iss claim")
	}
	is := b.issuers[iss]
	if is == nil {
		// The issuer is chosen by the exact iss: "https://idp/" is not
		// "https://idp". A looser match would let a token minted by one
		// issuer be checked against another issuer's keys and audiences.
		return nil, b.fail("unknown_issuer", "the token's issuer is not accepted by this gateway")
	}
	d := is.p.ready()
	if d == nil {
		return nil, b.fail("issuer_unavailable", "the token's issuer is unavailable; try again later")
	}
	v := oidc.NewVerifier(iss, d.keys, &oidc.Config{
		SkipClientIDCheck:    true, // several audiences: checked below
		SupportedSigningAlgs: asymmetricAlgNames(),
		Now:                  b.now,
	})
	claims, exp, reason, err := verifyToken(ctx, v, raw, now)
	if err != nil {
		b.log.Debug("bearer token refused", "reason", reason, "err", err)
		return nil, b.fail(reason, tokenMessage(reason))
	}
	if !audienceMatches(claims["aud"], is.audiences) {
		return nil, b.fail("wrong_audience", "the token is not meant for this gateway (aud)")
	}
	if have := scopesOf(claims); len(is.scopes) > 0 {
		for _, s := range is.scopes {
			if !slices.Contains(have, s) {
				return nil, b.fail("missing_scope", fmt.Sprintf("the token lacks the scope %q", s))
			}
		}
	}
	sub, err := is.mapper.subject(claims)
	if err != nil {
		return nil, b.fail("bad_claims", "the token's claims cannot name the caller: "+err.Error())
	}
	groups, err := is.mapper.groupsOf(claims)
	if err != nil {
		return nil, b.fail("bad_claims", "the token's claims are refused: "+err.Error())
	}
	id := &Identity{Method: MethodOIDC, Subject: sub, Groups: groups, Issuer: iss, Claims: claims}
	b.cache.put(key, id, exp, now)
	return id, nil
}

func (b *Bearer) fail(reason, msg string) *Error {
	return &Error{Method: MethodOIDC, Reason: reason, Msg: msg}
}

// verifyToken checks signature, iss, exp and nbf and returns the claims and
// the expiry. go-oidc checks the signature with the issuer's JWKS and the
// exact iss; exp (required) and nbf are checked here as well, more strictly
// than go-oidc's five-minute nbf leeway.
func verifyToken(ctx context.Context, v *oidc.IDTokenVerifier, raw string, now time.Time) (map[string]any, time.Time, string, error) {
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		if _, ok := errors.AsType[*oidc.TokenExpiredError](err); ok {
			return nil, time.Time{}, "expired", err
		}
		if strings.Contains(err.Error(), errUnknownKey.Error()) {
			return nil, time.Time{}, "unknown_key", err
		}
		return nil, time.Time{}, "invalid_token", err
	}
	var payload json.RawMessage
	if err := tok.Claims(&payload); err != nil {
		return nil, time.Time{}, "invalid_token", err
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, time.Time{}, "invalid_token", err
	}
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return nil, time.Time{}, "expired", errors.New("no exp claim")
	}
	if !now.Before(exp) {
		return nil, time.Time{}, "expired", errors.New("exp has passed")
	}
	if v, present := claims["nbf"]; present {
		nbf, ok := numericDate(v)
		if !ok {
			return nil, time.Time{}, "invalid_token", errors.New("nbf is not a number")
		}
		if nbf.After(now.Add(nbfLeeway)) {
			return nil, time.Time{}, "not_yet_valid", errors.New("nbf is in the future")
		}
	}
	return claims, exp, "", nil
}

func tokenMessage(reason string) string {
	switch reason {
	case "expired":
		return "the token has expired or has no exp; get a new one"
	case "not_yet_valid":
		return "the token is not valid yet (nbf)"
	case "unknown_key":
		return "the token is signed with a key the issuer does not publish"
	default:
		return "the token could not be verified"
	}
}

// numericDate reads a JWT NumericDate (seconds since the epoch).
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f <= 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}

// audienceMatches reports whether aud (a string or a list of strings) names
// one of want.
func audienceMatches(aud any, want []string) bool {
	switch a := aud.(type) {
	case string:
		return slices.Contains(want, a)
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok && slices.Contains(want, s) {
				return true
			}
		}
	}
	return false
}

// jwtShaped reports whether s is a compact JWS: three base64url segments.
// The JSON serialization, which can carry several signatures, is refused
// here already: with several signatures, which one was verified and whose
// protected header applies is ambiguous, a known source of signature
// bypasses in JOSE libraries.
func jwtShaped(s string) bool {
	if len(s) == 0 || len(s) > maxTokenLen || strings.Count(s, ".") != 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// peekIssuer reads the unverified iss of a compact JWT, only to choose the
// issuer whose keys verify it.
func peekIssuer(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", errors.New("not a compact JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct {
		Iss any `json:"iss"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", err
	}
	s, ok := c.Iss.(string)
	if !ok || s == "" {
		return "", errors.New("no iss")
	}
	return s, nil
}

// newBearer builds the bearer authenticator for cfgs.
func newBearer(cfgs []config.OIDC, now func() time.Time, log *slog.Logger, m *metrics) (*Bearer, error) {
	b := &Bearer{issuers: map[string]*bearerIssuer{}, cache: newTokenCache(tokenCacheSize), now: now, log: log, m: m}
	for i, c := range cfgs {
		if _, dup := b.issuers[c.Issuer]; dup {
			return nil, fmt.Errorf("authn.oidc[%d].issuer: %q is listed twice", i, c.Issuer)
		}
		if len(c.Audiences) == 0 {
			return nil, fmt.Errorf("authn.oidc[%d].audiences: required", i)
		}
		p, err := newProvider(c.Issuer, c.CAFile, now, log, m)
		if err != nil {
			return nil, fmt.Errorf("authn.oidc[%d]: %w", i, err)
		}
		b.issuers[c.Issuer] = &bearerIssuer{
			p:         p,
			audiences: slices.Clone(c.Audiences),
			scopes:    slices.Clone(c.RequiredScopes),
			mapper:    newMapper(c.UsernameClaim, c.GroupsClaim),
		}
	}
	return b, nil
}

func newMapper(username, groups string) claimMapper {
	if username == "" {
		username = config.DefaultUsernameClaim
	}
	if groups == "" {
		groups = config.DefaultGroupsClaim
	}
	return claimMapper{username: username, groups: groups}
}

// providers returns the issuers' providers in configuration order.
func (b *Bearer) providers(cfgs []config.OIDC) []*provider {
	var out []*provider
	for _, c := range cfgs {
		out = append(out, b.issuers[c.Issuer].p)
	}
	return out
}
