package authn

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/promgate/promgate/config"
)

// Login flow settings.
const (
	// csrfCookie carries the login state between /oauth2/start and
	// /oauth2/callback.
	csrfCookie = "__Host-promgate_csrf"
	// loginTTL is how long a started login may take.
	loginTTL = 10 * time.Minute
	// refreshWindow is how long a session cookie with a refresh token
	// outlives its ID token, so that /oauth2/start can renew it.
	refreshWindow = 12 * time.Hour
	// defaultRedirect is where a login without rd ends.
	defaultRedirect = "/ui/"
	// usedStatesMax bounds the memory of used login states.
	usedStatesMax = 10000
)

// Paths of the login pages.
const (
	PathStart    = "/oauth2/start"
	PathCallback = "/oauth2/callback"
	PathSignOut  = "/oauth2/sign_out"
	PathUserinfo = "/oauth2/userinfo"
)

// Login is the browser login: /oauth2/start sends the browser to the
// provider with the authorization code flow, PKCE (S256), state and nonce;
// /oauth2/callback checks them all and sets the session cookie;
// /oauth2/sign_out clears it and /oauth2/userinfo shows who the caller is.
type Login struct {
	clientID     string
	clientSecret string
	redirectURL  string
	scopes       []string
	p            *provider
	mapper       claimMapper
	session      cookieJar
	csrf         cookieJar
	used         *usedStates
	chain        Chain
	now          func() time.Time
	log          *slog.Logger
	m            *metrics
}

// loginState is the content of the CSRF cookie.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Redirect string `json:"rd"`
	Expiry   int64  `json:"exp"`
}

func newLogin(cfg *config.Login, now func() time.Time, log *slog.Logger, m *metrics) (*Login, error) {
	secret, err := readSecret(cfg.ClientSecretFile)
	if err != nil {
		return nil, fmt.Errorf("authn.login.client_secret_file: %w", err)
	}
	cookieSecret, err := readSecret(cfg.CookieSecretFile)
	if err != nil {
		return nil, fmt.Errorf("authn.login.cookie_secret_file: %w", err)
	}
	sess, err := newSealer([]byte(cookieSecret), "session")
	if err != nil {
		return nil, fmt.Errorf("authn.login.cookie_secret_file: %w", err)
	}
	csrf, err := newSealer([]byte(cookieSecret), "login state")
	if err != nil {
		return nil, fmt.Errorf("authn.login.cookie_secret_file: %w", err)
	}
	p, err := newProvider(cfg.Issuer, cfg.CAFile, now, log, m)
	if err != nil {
		return nil, fmt.Errorf("authn.login: %w", err)
	}
	name := cfg.CookieName
	if name == "" {
		name = config.DefaultLoginCookieName
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = config.DefaultLoginScopes
	}
	return &Login{
		clientID:     cfg.ClientID,
		clientSecret: secret,
		redirectURL:  cfg.RedirectURL,
		scopes:       slices.Clone(scopes),
		p:            p,
		mapper:       newMapper(cfg.UsernameClaim, cfg.GroupsClaim),
		session:      cookieJar{name: name, s: sess},
		csrf:         cookieJar{name: csrfCookie, s: csrf},
		used:         &usedStates{m: map[string]time.Time{}},
		now:          now,
		log:          log.With("component", "login"),
		m:            m,
	}, nil
}

// readSecret reads a secret file, without surrounding whitespace.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// Pages returns the login handlers by exact path, for proxy.Options.Pages.
func (l *Login) Pages() map[string]http.Handler {
	return map[string]http.Handler{
		PathStart:    http.HandlerFunc(l.start),
		PathCallback: http.HandlerFunc(l.callback),
		PathSignOut:  http.HandlerFunc(l.signOut),
		PathUserinfo: http.HandlerFunc(l.userinfo),
	}
}

// Session returns the authenticator of the session cookie.
func (l *Login) Session() *Session { return &Session{l: l} }

// ClearCookies expires the session cookie (every chunk) in w. The gateway
// calls it when the session authenticator refused r's cookie, so that a
// tampered, renamed, foreign or expired cookie is not sent again.
func (l *Login) ClearCookies(w http.ResponseWriter, r *http.Request) {
	if l.session.present(r) {
		l.session.clear(w)
	}
}

// StartURL returns the login URL that comes back to r's path and query
// after login. A browser without a session on a page such as /ui/ is
// redirected there.
func (l *Login) StartURL(r *http.Request) string {
	rd := r.URL.RequestURI()
	if !SafeRedirect(rd) {
		rd = defaultRedirect
	}
	return PathStart + "?" + url.Values{"rd": {rd}}.Encode()
}

// oauthConfig returns the OAuth2 client for the discovered provider.
func (l *Login) oauthConfig(d *discovered) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     l.clientID,
		ClientSecret: l.clientSecret,
		Endpoint:     d.provider.Endpoint(),
		RedirectURL:  l.redirectURL,
		Scopes:       l.scopes,
	}
}

func (l *Login) clientContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, l.p.client)
}

// start begins a login. It always starts a new login (or renews an expired
// session with its refresh token), even when a session cookie is present,
// so that a planted session is replaced rather than kept.
func (l *Login) start(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		l.page(w, http.StatusMethodNotAllowed, "Use GET to sign in.")
		return
	}
	rd := r.URL.Query().Get("rd")
	if rd == "" {
		rd = defaultRedirect
	}
	if !SafeRedirect(rd) {
		l.m.login.WithLabelValues("failed").Inc()
		l.page(w, http.StatusBadRequest, "The redirect target (rd) is refused: it must be a path on this gateway, such as /ui/.")
		return
	}
	d := l.p.ready()
	if d == nil {
		l.m.login.WithLabelValues("failed").Inc()
		l.page(w, http.StatusServiceUnavailable, "The identity provider is unavailable; try again shortly.")
		return
	}
	if l.tryRefresh(w, r, d, rd) {
		return
	}
	st := loginState{
		State:    randomString(),
		Nonce:    randomString(),
		Verifier: oauth2.GenerateVerifier(),
		Redirect: rd,
		Expiry:   l.now().Add(loginTTL).Unix(),
	}
	b, _ := json.Marshal(st)
	if err := l.csrf.set(w, b, time.Unix(st.Expiry, 0)); err != nil {
		l.page(w, http.StatusInternalServerError, "The login state does not fit in a cookie.")
		return
	}
	l.m.login.WithLabelValues("started").Inc()
	u := l.oauthConfig(d).AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce))
	noStore(w)
	http.Redirect(w, r, u, http.StatusFound)
}

// tryRefresh renews an expired session whose cookie holds a refresh token.
// It reports whether it answered the request.
func (l *Login) tryRefresh(w http.ResponseWriter, r *http.Request, d *discovered, rd string) bool {
	old, err := l.readSession(r)
	if err != nil || old.RefreshToken == "" || l.now().Before(time.Unix(old.Expiry, 0)) {
		return false
	}
	ctx, cancel := context.WithTimeout(l.clientContext(r.Context()), discoveryTimeout)
	defer cancel()
	tok, err := l.oauthConfig(d).TokenSource(ctx, &oauth2.Token{RefreshToken: old.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		l.log.Info("session refresh refused; starting a new login", "err", err)
		return false
	}
	sd, err := l.sessionFromToken(ctx, d, tok, "")
	if err != nil {
		l.log.Info("refreshed ID token refused; starting a new login", "err", err)
		return false
	}
	var oldClaims, newClaims struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(old.Claims, &oldClaims)
	_ = json.Unmarshal(sd.Claims, &newClaims)
	if sd.Issuer != old.Issuer || newClaims.Sub == "" || newClaims.Sub != oldClaims.Sub {
		return false
	}
	if sd.RefreshToken == "" {
		sd.RefreshToken = old.RefreshToken
	}
	if err := l.writeSession(w, sd); err != nil {
		return false
	}
	l.m.login.WithLabelValues("refreshed").Inc()
	noStore(w)
	http.Redirect(w, r, rd, http.StatusSeeOther)
	return true
}

// callback ends a login: the state must match the browser's CSRF cookie,
// which is single-use and short-lived; the code is exchanged with the PKCE
// verifier; the ID token must verify and carry the nonce. Then the session
// cookie replaces whatever session the browser had.
func (l *Login) callback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		l.page(w, http.StatusMethodNotAllowed, "Use GET.")
		return
	}
	fail := func(status int, msg string, err error) {
		l.m.login.WithLabelValues("failed").Inc()
		if err != nil {
			l.log.Info("login refused", "reason", msg, "err", err)
		}
		l.page(w, status, msg+" Start again at "+PathStart+".")
	}
	raw, err := l.csrf.read(r)
	// The state cookie is used at most once, whatever the outcome.
	l.csrf.clear(w)
	if err != nil {
		fail(http.StatusBadRequest, "The login state is missing or not valid (was the login started in this browser?).", nil)
		return
	}
	var st loginState
	if err := json.Unmarshal(raw, &st); err != nil {
		fail(http.StatusBadRequest, "The login state is not valid.", err)
		return
	}
	now := l.now()
	if !now.Before(time.Unix(st.Expiry, 0)) {
		fail(http.StatusBadRequest, "The login took too long.", nil)
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 || len(q["state"]) != 1 {
		fail(http.StatusBadRequest, "The login state does not match this browser's.", nil)
		return
	}
	if !l.used.use(st.State, time.Unix(st.Expiry, 0), now) {
		fail(http.StatusBadRequest, "This login was already completed.", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusUnauthorized, "The identity provider refused the login ("+errorCode(e)+").", nil)
		return
	}
	code := q.Get("code")
	if code == "" || len(q["code"]) != 1 {
		fail(http.StatusBadRequest, "The callback carries no authorization code.", nil)
		return
	}
	if !SafeRedirect(st.Redirect) {
		fail(http.StatusBadRequest, "The redirect target is refused.", nil)
		return
	}
	d := l.p.ready()
	if d == nil {
		fail(http.StatusServiceUnavailable, "The identity provider is unavailable.", nil)
		return
	}
	ctx, cancel := context.WithTimeout(l.clientContext(r.Context()), discoveryTimeout)
	defer cancel()
	tok, err := l.oauthConfig(d).Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		fail(http.StatusUnauthorized, "The identity provider refused the authorization code.", err)
		return
	}
	sd, err := l.sessionFromToken(ctx, d, tok, st.Nonce)
	if err != nil {
		fail(http.StatusUnauthorized, "The ID token is refused.", err)
		return
	}
	if err := l.writeSession(w, sd); err != nil {
		fail(http.StatusRequestHeaderFieldsTooLarge, "The session is too large for cookies: the ID token carries too many claims (groups?). Ask the provider's administrator to trim them.", err)
		return
	}
	l.m.login.WithLabelValues("succeeded").Inc()
	noStore(w)
	http.Redirect(w, r, st.Redirect, http.StatusSeeOther)
}

// sessionFromToken verifies the ID token of a token response and builds the
// session. A non-empty nonce must match the token's.
func (l *Login) sessionFromToken(ctx context.Context, d *discovered, tok *oauth2.Token, nonce string) (*sessionData, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("no id_token in the token response")
	}
	v := oidc.NewVerifier(l.p.issuer, d.keys, &oidc.Config{
		ClientID:             l.clientID,
		SupportedSigningAlgs: asymmetricAlgNames(),
		Now:                  l.now,
	})
	claims, exp, _, err := verifyToken(ctx, v, raw, l.now())
	if err != nil {
		return nil, err
	}
	if nonce != "" {
		got, _ := claims["nonce"].(string)
		if subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
			return nil, errors.New("nonce mismatch")
		}
	}
	if _, err := l.mapper.subject(claims); err != nil {
		return nil, err
	}
	if _, err := l.mapper.groupsOf(claims); err != nil {
		return nil, err
	}
	// Keep the claims, minus those that only serve the token exchange.
	for _, k := range []string{"nonce", "at_hash", "c_hash", "sid", "s_hash"} {
		delete(claims, k)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return nil, err
	}
	return &sessionData{Issuer: l.p.issuer, Claims: b, Expiry: exp.Unix(), RefreshToken: tok.RefreshToken}, nil
}

func (l *Login) writeSession(w http.ResponseWriter, sd *sessionData) error {
	b, err := json.Marshal(sd)
	if err != nil {
		return err
	}
	expires := time.Unix(sd.Expiry, 0)
	if sd.RefreshToken != "" {
		expires = expires.Add(refreshWindow)
	}
	return l.session.set(w, b, expires)
}

func (l *Login) readSession(r *http.Request) (*sessionData, error) {
	b, err := l.session.read(r)
	if err != nil {
		return nil, err
	}
	var sd sessionData
	if err := json.Unmarshal(b, &sd); err != nil {
		return nil, errBadCookie
	}
	if sd.Issuer != l.p.issuer {
		return nil, errBadCookie
	}
	return &sd, nil
}

// identityOf maps a session to an identity.
func (l *Login) identityOf(sd *sessionData) (*Identity, error) {
	claims, err := decodeClaims(sd.Claims)
	if err != nil {
		return nil, &Error{Method: MethodSession, Reason: "bad_session", Msg: "the session cookie is not valid; sign in again at /oauth2/start"}
	}
	sub, err := l.mapper.subject(claims)
	if err != nil {
		return nil, &Error{Method: MethodSession, Reason: "bad_claims", Msg: "the session's claims cannot name the caller"}
	}
	groups, err := l.mapper.groupsOf(claims)
	if err != nil {
		return nil, &Error{Method: MethodSession, Reason: "bad_claims", Msg: "the session's claims are refused: " + err.Error()}
	}
	return &Identity{Method: MethodSession, Subject: sub, Groups: groups, Issuer: sd.Issuer, Claims: claims}, nil
}

// signOut clears the session and the login state, then redirects to a
// validated rd or shows a page.
func (l *Login) signOut(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		l.page(w, http.StatusMethodNotAllowed, "Use GET or POST to sign out.")
		return
	}
	rd := r.URL.Query().Get("rd")
	if rd != "" && !SafeRedirect(rd) {
		l.page(w, http.StatusBadRequest, "The redirect target (rd) is refused: it must be a path on this gateway.")
		return
	}
	l.session.clear(w)
	if l.csrf.present(r) {
		l.csrf.clear(w)
	}
	l.m.login.WithLabelValues("signed_out").Inc()
	if rd != "" {
		noStore(w)
		http.Redirect(w, r, rd, http.StatusSeeOther)
		return
	}
	l.page(w, http.StatusOK, "Signed out of promgate.")
}

// userinfo shows who the caller is, by any method of the chain. It never
// shows a token: the identity holds none and the session's refresh token
// stays in the encrypted cookie.
func (l *Login) userinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		l.page(w, http.StatusMethodNotAllowed, "Use GET.")
		return
	}
	id, err := l.chain.Authenticate(r)
	if err != nil {
		if ae, ok := errors.AsType[*Error](err); ok && ae.Method == MethodSession {
			l.ClearCookies(w, r)
		}
		if wantsHTML(r) {
			noStore(w)
			http.Redirect(w, r, PathStart+"?"+url.Values{"rd": {PathUserinfo}}.Encode(), http.StatusFound)
			return
		}
		msg := "authentication required: sign in at " + PathStart
		if ae, ok := errors.AsType[*Error](err); ok {
			msg = "authentication failed: " + ae.Msg
		}
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeJSON(w, http.StatusUnauthorized, map[string]string{"status": "error", "errorType": "unauthorized", "error": msg})
		return
	}
	type certInfo struct {
		Subject           string `json:"subject"`
		FingerprintSHA256 string `json:"fingerprint_sha256"`
	}
	out := struct {
		Method      Method         `json:"method"`
		Subject     string         `json:"subject"`
		Groups      []string       `json:"groups"`
		Issuer      string         `json:"issuer,omitempty"`
		Claims      map[string]any `json:"claims,omitempty"`
		Certificate *certInfo      `json:"certificate,omitempty"`
	}{Method: id.Method, Subject: id.Subject, Groups: id.Groups, Issuer: id.Issuer, Claims: id.Claims}
	if id.Certificate != nil {
		out.Certificate = &certInfo{Subject: id.Certificate.Subject, FingerprintSHA256: id.Certificate.FingerprintSHA256}
	}
	if out.Groups == nil {
		out.Groups = []string{}
	}
	writeJSON(w, http.StatusOK, out)
}

// wantsHTML reports whether r is a browser navigation rather than an API
// call.
func wantsHTML(r *http.Request) bool {
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	noStore(w)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// page answers with a minimal HTML page. msg is escaped; it never holds a
// token or a provider's raw error text.
func (l *Login) page(w http.ResponseWriter, status int, msg string) {
	noStore(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><title>promgate</title><p>%s</p>\n", html.EscapeString(msg))
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

// errorCode keeps an OAuth2 error code only when it is one of the short
// lower-case codes of RFC 6749; anything else is not echoed.
func errorCode(s string) string {
	if len(s) > 40 {
		return "error"
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '_' {
			return "error"
		}
	}
	return s
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// usedStates remembers the login states already used until they expire, so
// that a state cookie replayed within its lifetime is refused on this
// replica.
type usedStates struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// use marks state as used and reports whether it was unused.
func (u *usedStates) use(state string, exp, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.m[state]; ok {
		return false
	}
	if len(u.m) >= usedStatesMax {
		for k, e := range u.m {
			if !now.Before(e) {
				delete(u.m, k)
			}
		}
		// Still full of live states (a flood of logins): forget some. The
		// provider still refuses a code used twice.
		for k := range u.m {
			if len(u.m) < usedStatesMax-usedStatesMax/8 {
				break
			}
			delete(u.m, k)
		}
	}
	u.m[state] = exp
	return true
}
