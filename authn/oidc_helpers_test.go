package authn

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/config"
)

// testKey is generated once: RSA key generation is slow.
var (
	testKeyOnce sync.Once
	testKeys    []*rsa.PrivateKey
)

func rsaKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	testKeyOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			testKeys = append(testKeys, k)
		}
	})
	return testKeys[i]
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testIssuer is an OpenID provider in the test: discovery, JWKS, and, for
// the login tests, an authorization and a token endpoint.
type testIssuer struct {
	srv       *httptest.Server
	url       string
	key       *rsa.PrivateKey
	kid       string
	jwksHits  atomic.Int64
	available atomic.Bool

	mu    sync.Mutex
	codes map[string]authRequest // code -> the request that got it
	// idClaims returns the ID token's claims for a code; nonce is the
	// request's.
	idClaims     func(nonce string) map[string]any
	refreshToken string
	refreshes    atomic.Int64
	clock        *fakeClock
}

type authRequest struct {
	challenge, nonce, redirect string
}

func newTestIssuer(t testing.TB, clock *fakeClock) *testIssuer {
	t.Helper()
	ti := &testIssuer{key: rsaKey(t, 0), kid: "k1", codes: map[string]authRequest{}, clock: clock}
	ti.available.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if !ti.available.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                ti.url,
			"jwks_uri":                              ti.url + "/jwks",
			"authorization_endpoint":                ti.url + "/auth",
			"token_endpoint":                        ti.url + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		ti.jwksHits.Add(1)
		ti.mu.Lock()
		jwk := jose.JSONWebKey{Key: &ti.key.PublicKey, KeyID: ti.kid, Algorithm: "RS256", Use: "sig"}
		ti.mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	})
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" {
			http.Error(w, "missing PKCE, nonce or state", http.StatusBadRequest)
			return
		}
		code := randomString()
		ti.mu.Lock()
		ti.codes[code] = authRequest{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
		ti.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+q.Get("state"), http.StatusSeeOther) //nolint:gosec // G710: the test identity provider sends the browser back to the redirect_uri the gateway under test gave it
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "promgate" || secret != "client-secret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		_ = r.ParseForm()
		var nonce string
		switch r.PostForm.Get("grant_type") {
		case "authorization_code":
			ti.mu.Lock()
			req, ok := ti.codes[r.PostForm.Get("code")]
			delete(ti.codes, r.PostForm.Get("code"))
			ti.mu.Unlock()
			sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
			if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != req.challenge {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
				return
			}
			nonce = req.nonce
		case "refresh_token":
			if r.PostForm.Get("refresh_token") != ti.refreshToken || ti.refreshToken == "" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
				return
			}
			ti.refreshes.Add(1)
		default:
			http.Error(w, "grant", http.StatusBadRequest)
			return
		}
		claims := ti.idClaims(nonce)
		if nonce == "" {
			delete(claims, "nonce")
		}
		out := map[string]any{
			"access_token": "opaque-access-token", "token_type": "Bearer", "expires_in": 300,
			"id_token": ti.sign(t, claims, nil),
		}
		if ti.refreshToken != "" {
			out["refresh_token"] = ti.refreshToken
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	ti.srv = httptest.NewServer(mux)
	ti.url = ti.srv.URL
	t.Cleanup(ti.srv.Close)
	return ti
}

// rotate switches to another signing key with a new kid.
func (ti *testIssuer) rotate(t testing.TB, i int, kid string) {
	ti.mu.Lock()
	ti.key, ti.kid = rsaKey(t, i), kid
	ti.mu.Unlock()
}

// claims returns valid access-token claims of ti at the clock's time.
func (ti *testIssuer) claims(now time.Time) map[string]any {
	return map[string]any{
		"iss": ti.url, "sub": "scraper-a", "client_id": "scraper-a", "aud": "promgate",
		"groups": []string{"team-a"}, "scope": "metrics:read",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
}

// sign signs claims with ti's key; opts may add header fields.
func (ti *testIssuer) sign(t testing.TB, claims map[string]any, hdr map[jose.HeaderKey]any) string {
	t.Helper()
	ti.mu.Lock()
	key, kid := ti.key, ti.kid
	ti.mu.Unlock()
	return signWith(t, jose.RS256, key, kid, claims, hdr)
}

func signWith(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any, hdr map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	for k, v := range hdr {
		opts = opts.WithHeader(k, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
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

// unsigned builds a JWT with any header, unsigned ("alg": "none").
func unsigned(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newTestBearer builds a Bearer for cfgs and runs discovery once for each
// issuer that is reachable.
func newTestBearer(t testing.TB, clock *fakeClock, cfgs ...config.OIDC) (*Bearer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var issuers []string
	for _, c := range cfgs {
		issuers = append(issuers, c.Issuer)
	}
	b := &Bearer{}
	m, err := newMetrics(reg, issuers, func() float64 { return float64(b.cache.len()) })
	if err != nil {
		t.Fatal(err)
	}
	nb, err := newBearer(cfgs, clock.now, discardLogger(), m)
	if err != nil {
		t.Fatal(err)
	}
	*b = *nb
	for _, p := range b.providers(cfgs) {
		_ = p.discover(context.Background())
	}
	return b, reg
}

func newTestRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

// canceled returns a cancelled context: newChain then starts no discovery.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
