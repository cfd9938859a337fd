package demo

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DevUser is one identity of the development provider.
type DevUser struct {
	Name   string
	Groups []string
}

// DevIdP is the demo's development OpenID provider, so that a browser can
// open the console without a client certificate: its sign-in page lists the
// demo's users, and anyone who reaches it may pick any of them. It is for
// the demo only and serves on a loopback address ([Listen]).
//
// It implements what promgate's browser login uses: discovery, the JWKS,
// the authorization code flow with PKCE (S256 only), state and nonce, and
// the token endpoint for one confidential client (client_secret_basic or
// client_secret_post). It issues no refresh tokens and keeps codes in
// memory for a minute, each usable once.
type DevIdP struct {
	issuer, clientID, secret, redirect string
	users                              []DevUser
	key                                *rsa.PrivateKey
	kid                                string
	now                                func() time.Time

	mu    sync.Mutex
	codes map[string]*devGrant
}

type devGrant struct {
	user             DevUser
	nonce, challenge string
	expires          time.Time
}

// devCodeTTL is how long an authorization code may wait for its exchange.
const devCodeTTL = time.Minute

// NewDevIdP returns the provider with issuer URL issuer (http://host:port,
// where it will serve), for the one client clientID with secret, which
// must redirect to redirectURL.
func NewDevIdP(issuer, clientID, secret, redirectURL string, users []DevUser) (*DevIdP, error) {
	if issuer == "" || clientID == "" || secret == "" || redirectURL == "" || len(users) == 0 {
		return nil, errors.New("development provider: issuer, client, secret, redirect URL and users are required")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("development provider key: %w", err)
	}
	return &DevIdP{issuer: strings.TrimSuffix(issuer, "/"), clientID: clientID, secret: secret, redirect: redirectURL,
		users: users, key: key, kid: randomString(8), now: time.Now, codes: map[string]*devGrant{}}, nil
}

// Handler serves the provider's endpoints.
func (p *DevIdP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (p *DevIdP) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.issuer,
		"authorization_endpoint":                p.issuer + "/authorize",
		"token_endpoint":                        p.issuer + "/token",
		"jwks_uri":                              p.issuer + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"openid", "email", "profile", "groups"},
		"claims_supported":                      []string{"sub", "groups", "name", "preferred_username"},
	})
}

func (p *DevIdP) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: p.kid, Algorithm: "RS256", Use: "sig"}}})
}

var devLoginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>promgate demo: sign in</title></head><body>
<main>
<h1>promgate demo: development sign-in</h1>
<p>This is the demo's development provider: it signs anyone in as the user they pick, with no password. Never use it outside the demo.</p>
<form method="post" action="/authorize">
{{range $k, $v := .Params}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<fieldset><legend>Sign in as</legend>
{{range .Users}}<p><button type="submit" name="user" value="{{.Name}}">{{.Name}}</button> groups: {{range $i, $g := .Groups}}{{if $i}}, {{end}}{{$g}}{{end}}</p>
{{end}}</fieldset>
</form>
</main></body></html>
`))

// authorize shows the user list (GET) and issues a code for the chosen
// user (POST). A bad client or redirect URI is answered here, never
// redirected to.
func (p *DevIdP) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed request", http.StatusBadRequest)
		return
	}
	f := r.Form
	if f.Get("client_id") != p.clientID || f.Get("redirect_uri") != p.redirect {
		http.Error(w, "unknown client or redirect_uri", http.StatusBadRequest)
		return
	}
	if f.Get("response_type") != "code" || f.Get("code_challenge_method") != "S256" || f.Get("code_challenge") == "" ||
		!slices.Contains(strings.Fields(f.Get("scope")), "openid") {
		http.Error(w, "this provider serves the code flow with PKCE S256 and scope openid only", http.StatusBadRequest)
		return
	}
	origin := p.redirect
	if u, err := url.Parse(p.redirect); err == nil {
		origin = u.Scheme + "://" + u.Host
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; form-action 'self' "+origin+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if r.Method == http.MethodGet {
		params := map[string]string{}
		for _, k := range []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method"} {
			params[k] = f.Get(k)
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		_ = devLoginPage.Execute(w, map[string]any{"Params": params, "Users": p.users})
		return
	}
	i := slices.IndexFunc(p.users, func(u DevUser) bool { return u.Name == f.Get("user") })
	if i < 0 {
		http.Error(w, "unknown user", http.StatusBadRequest)
		return
	}
	code := randomString(24)
	p.mu.Lock()
	now := p.now()
	for c, g := range p.codes {
		if now.After(g.expires) {
			delete(p.codes, c)
		}
	}
	p.codes[code] = &devGrant{user: p.users[i], nonce: f.Get("nonce"), challenge: f.Get("code_challenge"), expires: now.Add(devCodeTTL)}
	p.mu.Unlock()
	q := url.Values{"code": {code}, "state": {f.Get("state")}, "iss": {p.issuer}}
	http.Redirect(w, r, p.redirect+"?"+q.Encode(), http.StatusFound)
}

// token exchanges a code for an ID token, once.
func (p *DevIdP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if subtle.ConstantTimeCompare([]byte(id), []byte(p.clientID)) != 1 || subtle.ConstantTimeCompare([]byte(secret), []byte(p.secret)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "authorization_code" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	p.mu.Lock()
	g := p.codes[f.Get("code")]
	delete(p.codes, f.Get("code"))
	p.mu.Unlock()
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	if g == nil || p.now().After(g.expires) || f.Get("redirect_uri") != p.redirect ||
		subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(g.challenge)) != 1 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	now := p.now()
	claims := map[string]any{
		"iss": p.issuer, "sub": g.user.Name, "aud": p.clientID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"groups": g.user.Groups, "name": g.user.Name, "preferred_username": g.user.Name,
	}
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	idToken, err := p.sign(claims)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": randomString(24), "token_type": "Bearer", "expires_in": 3600, "id_token": idToken})
}

func (p *DevIdP) sign(claims map[string]any) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: p.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", p.kid))
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	obj, err := sig.Sign(b)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
