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
	"io"
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
	// DefaultSessionLifetime is how long a session lasts after login or its
	// last refresh before the gateway asks the provider again (ID tokens
	// that expire sooner end it sooner). It bounds how long a copy of a
	// signed-out cookie keeps working on a replica that did not see the
	// sign-out: at its end the session needs its refresh token, which
	// sign-out revoked.
	DefaultSessionLifetime = 15 * time.Minute
	// refreshWindow is how long a session cookie with a refresh token
	// outlives its lifetime, so that /oauth2/start can renew it.
	refreshWindow = 12 * time.Hour
	// revokeTimeout bounds the revocation request at sign-out.
	revokeTimeout = 5 * time.Second
	// signedOutMax bounds the sessions remembered as signed out.
	signedOutMax = 50000
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
// provider with the authorization code flow, PKCE (S256), state and nonce,
// or renews a session whose lifetime has ended with its refresh token;
// /oauth2/callback checks them all and sets the session cookie;
// /oauth2/sign_out ends the session and /oauth2/userinfo shows who the
// caller is.
type Login struct {
	clientID     string
	clientSecret string
	redirectURL  string
	// origin is the gateway's public origin, from redirectURL: a sign-out
	// must come from a page of it.
	origin string
	scopes []string
	// lifetime is the session lifetime (DefaultSessionLifetime).
	lifetime time.Duration
	// postLogoutURL is sent as post_logout_redirect_uri at RP-initiated
	// logout when set; the provider must have it registered.
	postLogoutURL string
	p             *provider
	mapper        claimMapper
	session       cookieJar
	csrf          cookieJar
	used          *usedStates
	signedOut     *signedOut
	chain         Chain
	now           func() time.Time
	log           *slog.Logger
	m             *metrics
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
	var accepted [][]byte
	for i, f := range cfg.AcceptCookieSecretFiles {
		a, err := readSecret(f)
		if err == nil && len(a) < minSecret {
			err = fmt.Errorf("%s has %d bytes; it needs at least %d random bytes", f, len(a), minSecret)
		}
		if err != nil {
			return nil, fmt.Errorf("authn.login.accept_cookie_secret_files[%d]: %w", i, err)
		}
		accepted = append(accepted, []byte(a))
	}
	sess, err := newSealer([]byte(cookieSecret), "session", accepted...)
	if err != nil {
		return nil, fmt.Errorf("authn.login.cookie_secret_file: %w", err)
	}
	csrf, err := newSealer([]byte(cookieSecret), "login state", accepted...)
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
	origin, err := originOf(cfg.RedirectURL)
	if err != nil {
		return nil, fmt.Errorf("authn.login.redirect_url: %w", err)
	}
	lifetime := time.Duration(cfg.SessionLifetime)
	switch {
	case lifetime == 0:
		lifetime = DefaultSessionLifetime
	case lifetime < time.Minute || lifetime > 24*time.Hour:
		return nil, fmt.Errorf("authn.login.session_lifetime: %s is outside 1m to 24h", cfg.SessionLifetime)
	}
	if u := cfg.PostLogoutRedirectURL; u != "" {
		if _, err := originOf(u); err != nil {
			return nil, fmt.Errorf("authn.login.post_logout_redirect_url: %w", err)
		}
	}
	return &Login{
		clientID:      cfg.ClientID,
		clientSecret:  secret,
		redirectURL:   cfg.RedirectURL,
		origin:        origin,
		scopes:        slices.Clone(scopes),
		lifetime:      lifetime,
		postLogoutURL: cfg.PostLogoutRedirectURL,
		p:             p,
		mapper:        newMapper(cfg.UsernameClaim, cfg.GroupsClaim),
		session:       cookieJar{name: name, s: sess},
		csrf:          cookieJar{name: csrfCookie, s: csrf},
		used:          &usedStates{m: map[string]time.Time{}},
		signedOut:     newSignedOut(signedOutMax),
		now:           now,
		log:           log.With("component", "login"),
		m:             m,
	}, nil
}

// originOf returns the origin (scheme://host[:port]) of an https URL, in
// the form browsers send in the Origin header: lower-case, without the
// default port.
func originOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%q is not an https URL", raw)
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" && p != "443" {
		host += ":" + p
	}
	return "https://" + host, nil
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
// tampered, renamed, foreign, signed-out or expired cookie is not sent
// again. A cookie whose lifetime has ended but whose refresh token may still
// renew it at /oauth2/start is kept, so that the browser sent there renews
// the session rather than logging in again.
func (l *Login) ClearCookies(w http.ResponseWriter, r *http.Request) {
	if !l.session.present(r) {
		return
	}
	if sd, err := l.readSession(r); err == nil && l.renewable(sd, l.now()) {
		return
	}
	l.session.clear(w)
}

// renewable reports whether sd's lifetime has ended and its refresh token
// may renew it: the session was not signed out on this replica and is
// within refreshWindow of its end. The window is checked here too, since a
// copied cookie does not expire with the browser's.
func (l *Login) renewable(sd *sessionData, now time.Time) bool {
	end := time.Unix(sd.Expiry, 0)
	return sd.ID != "" && sd.RefreshToken != "" && !now.Before(end) &&
		now.Before(end.Add(refreshWindow)) && !l.signedOut.has(sd.ID, now)
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
	ep := d.provider.Endpoint()
	ep.AuthStyle = d.authStyle
	return &oauth2.Config{
		ClientID:     l.clientID,
		ClientSecret: l.clientSecret,
		Endpoint:     ep,
		RedirectURL:  l.redirectURL,
		Scopes:       l.scopes,
	}
}

func (l *Login) clientContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, l.p.client)
}

// start begins a login. It always starts a new login (or renews a session
// whose lifetime has ended with its refresh token), even when a session
// cookie is present, so that a planted session is replaced rather than
// kept.
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

// tryRefresh renews a session whose lifetime has ended, with the refresh
// token its cookie holds, and reports whether it answered the request. A
// session that cannot be renewed (no refresh token, signed out, too old, or
// refused by the provider, for instance because its refresh token was
// revoked at sign-out) is over: its cookie is cleared and the caller starts
// a new login.
func (l *Login) tryRefresh(w http.ResponseWriter, r *http.Request, d *discovered, rd string) bool {
	old, err := l.readSession(r)
	if err != nil {
		return false
	}
	now := l.now()
	if now.Before(time.Unix(old.Expiry, 0)) && !l.signedOut.has(old.ID, now) {
		// A live session: start a new login anyway (see start).
		return false
	}
	if !l.renewable(old, now) {
		l.session.clear(w)
		return false
	}
	ctx, cancel := context.WithTimeout(l.clientContext(r.Context()), discoveryTimeout)
	defer cancel()
	sd, err := l.refresh(ctx, d, old)
	if err != nil {
		l.m.login.WithLabelValues("failed").Inc()
		l.log.Info("session refresh refused; the session ends and a new login starts", "err", err)
		l.session.clear(w)
		return false
	}
	if err := l.writeSession(w, sd); err != nil {
		l.session.clear(w)
		return false
	}
	l.m.login.WithLabelValues("refreshed").Inc()
	noStore(w)
	http.Redirect(w, r, rd, http.StatusSeeOther) //nolint:gosec // G710: rd passed SafeRedirect in start (a path on this gateway) before it reached here
	return true
}

// refresh asks the provider for new tokens with old's refresh token and
// returns the renewed session: same ID, same issuer and subject, a new
// lifetime. The provider's error is returned for the log; it never holds
// the refresh token.
func (l *Login) refresh(ctx context.Context, d *discovered, old *sessionData) (*sessionData, error) {
	tok, err := l.oauthConfig(d).TokenSource(ctx, &oauth2.Token{RefreshToken: old.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.Response != nil {
			// The body may echo what was sent; keep only the error code.
			return nil, fmt.Errorf("token endpoint answered %d %s", re.Response.StatusCode, errorCode(re.ErrorCode))
		}
		return nil, err
	}
	sd, err := l.sessionFromToken(ctx, d, tok, "")
	if err != nil {
		return nil, fmt.Errorf("refreshed ID token: %w", err)
	}
	var oldClaims, newClaims struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(old.Claims, &oldClaims)
	_ = json.Unmarshal(sd.Claims, &newClaims)
	if sd.Issuer != old.Issuer || newClaims.Sub == "" || newClaims.Sub != oldClaims.Sub {
		return nil, errors.New("refreshed ID token names another subject")
	}
	sd.ID = old.ID
	if sd.RefreshToken == "" {
		sd.RefreshToken = old.RefreshToken
	}
	return sd, nil
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
	sd.ID = randomString()
	if err := l.writeSession(w, sd); err != nil {
		fail(http.StatusRequestHeaderFieldsTooLarge, "The session is too large for cookies: the ID token carries too many claims (groups?). Ask the provider's administrator to trim them.", err)
		return
	}
	l.m.login.WithLabelValues("succeeded").Inc()
	noStore(w)
	http.Redirect(w, r, st.Redirect, http.StatusSeeOther)
}

// sessionFromToken verifies the ID token of a token response and builds the
// session, without an ID. A non-empty nonce must match the token's. The
// session lasts the session lifetime, or until the ID token's exp if that
// comes first.
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
	end := l.now().Add(l.lifetime)
	if exp.Before(end) {
		end = exp
	}
	sd := &sessionData{Issuer: l.p.issuer, Claims: b, Expiry: end.Unix(), RefreshToken: tok.RefreshToken}
	if d.endSession != "" {
		sd.IDToken = raw
	}
	return sd, nil
}

// writeSession sets the session cookie. A session that does not fit in the
// cookies without its ID token is refused; one that fits only without it
// drops it, since id_token_hint is optional at RP-initiated logout.
func (l *Login) writeSession(w http.ResponseWriter, sd *sessionData) error {
	expires := time.Unix(sd.Expiry, 0)
	if sd.RefreshToken != "" {
		expires = expires.Add(refreshWindow)
	}
	b, err := json.Marshal(sd) //nolint:gosec // G117: the session holds its refresh token by design; session.set seals it (AEAD) before it leaves in a cookie
	if err != nil {
		return err
	}
	err = l.session.set(w, b, expires)
	if errors.Is(err, errTooLarge) && sd.IDToken != "" {
		slim := *sd
		slim.IDToken = ""
		if b, err = json.Marshal(&slim); err != nil { //nolint:gosec // G117: as above, sealed by session.set
			return err
		}
		err = l.session.set(w, b, expires)
	}
	return err
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

// signOut ends the session. It takes only a POST from a page of the
// gateway: a GET is 405, so that a link, an image or a prefetch cannot sign
// anyone out, and a cross-site POST is 403 (sign-out CSRF). Then it
//
//  1. records the session's ID as signed out on this replica until the last
//     cookie it was given has expired, so that a copy of the cookie is
//     refused here at once (Session.Authenticate);
//  2. revokes the session's refresh token at the provider's
//     revocation_endpoint (RFC 7009), so that no replica can renew a copy
//     once its lifetime ends;
//  3. clears the session and login-state cookies;
//  4. sends the browser on to the provider's end_session_endpoint
//     (RP-initiated logout, with id_token_hint and post_logout_redirect_uri
//     when known) when discovery lists one, else redirects to a validated
//     rd, else shows a page.
//
// The browser is sent to the provider by a page that refreshes to it (with
// a link for browsers that do not follow it), not by a 303: the POST comes
// from a form, and browsers apply that page's Content-Security-Policy
// form-action (the gateway's pages allow only 'self') to the redirects that
// follow a form submission, so Chromium blocks a redirect to the provider.
func (l *Login) signOut(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		l.page(w, http.StatusMethodNotAllowed, "Sign out with the Sign out button of the gateway's pages: sign-out takes a POST from this site.")
		return
	}
	if !l.sameOrigin(r) {
		l.page(w, http.StatusForbidden, "Cross-site sign-out refused: sign out from a page of this gateway.")
		return
	}
	rd := r.URL.Query().Get("rd")
	if rd != "" && !SafeRedirect(rd) {
		l.page(w, http.StatusBadRequest, "The redirect target (rd) is refused: it must be a path on this gateway.")
		return
	}
	now := l.now()
	d := l.p.ready()
	var idToken string
	if sd, err := l.readSession(r); err == nil && sd.ID != "" {
		idToken = sd.IDToken
		until := now.Add(l.lifetime)
		if end := time.Unix(sd.Expiry, 0); end.After(until) {
			until = end
		}
		if l.signedOut.add(sd.ID, until, now) {
			l.log.Warn("signed-out session list full; the oldest entry was dropped and its cookie works on this replica until its lifetime ends")
		}
		if sd.RefreshToken != "" {
			// A browser that gives up waiting does not cancel the
			// revocation; revokeTimeout still bounds it.
			l.revokeRefreshToken(context.WithoutCancel(r.Context()), d, sd.RefreshToken)
		}
	}
	l.session.clear(w)
	if l.csrf.present(r) {
		l.csrf.clear(w)
	}
	l.m.login.WithLabelValues("signed_out").Inc()
	noStore(w)
	if d != nil && d.endSession != "" {
		l.leavePage(w, l.endSessionURL(d, idToken))
		return
	}
	if rd != "" {
		http.Redirect(w, r, rd, http.StatusSeeOther) //nolint:gosec // G710: rd passed SafeRedirect above (a path on this gateway)
		return
	}
	l.page(w, http.StatusOK, "Signed out of promgate.")
}

// leavePage answers 200 with a page that sends the browser to target at
// once (meta refresh) and links to it.
func (l *Login) leavePage(w http.ResponseWriter, target string) {
	noStore(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(http.StatusOK)
	t := html.EscapeString(target)
	fmt.Fprintf(w, "<!doctype html><title>promgate</title><meta http-equiv=\"refresh\" content=\"0;url=%s\"><p>Signed out of promgate. <a id=\"continue\" href=\"%s\">Continue to sign out at the identity provider.</a></p>\n", t, t) //nolint:errcheck // an HTTP response write fails only when the client is gone; nothing is left to do
}

// sameOrigin reports whether r comes from a page of the gateway:
//
//	Sec-Fetch-Site  Origin                 result
//	same-origin     absent, null, gateway  accepted
//	same-origin     another origin         refused (the headers disagree)
//	other value     any                    refused ("same-site" too: a
//	                                       sibling host is another site)
//	absent          the gateway's origin   accepted (browsers without
//	                                       Fetch metadata)
//	absent          absent, null, other    refused
//
// Origin is null on a same-origin POST from a page whose Referrer-Policy is
// no-referrer, as the gateway's own pages are; Sec-Fetch-Site then decides.
func (l *Login) sameOrigin(r *http.Request) bool {
	site, origin := r.Header.Values("Sec-Fetch-Site"), r.Header.Values("Origin")
	if len(site) > 1 || len(origin) > 1 {
		return false
	}
	// Browsers send the host in lower case; compare as such.
	gateway := len(origin) == 1 && strings.EqualFold(origin[0], l.origin)
	if len(site) == 0 {
		return gateway
	}
	return site[0] == "same-origin" && (len(origin) == 0 || origin[0] == "null" || gateway)
}

// revokeRefreshToken revokes a refresh token at the provider (RFC 7009),
// authenticated as the gateway's client. A failure is logged and does not
// stop the sign-out: this replica refuses the session anyway, and others
// keep renewing copies of its cookie until the refresh token expires.
func (l *Login) revokeRefreshToken(ctx context.Context, d *discovered, token string) {
	if d == nil || d.revocation == "" {
		l.log.Warn("refresh token not revoked at sign-out: the provider lists no revocation_endpoint (or is unavailable); other replicas accept copies of the session cookie until the refresh token expires")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}}
	if d.authStyle == oauth2.AuthStyleInParams {
		form.Set("client_id", l.clientID)
		form.Set("client_secret", l.clientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.revocation, strings.NewReader(form.Encode()))
	if err != nil {
		l.log.Warn("refresh token not revoked at sign-out", "err", err)
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if d.authStyle != oauth2.AuthStyleInParams {
		// RFC 6749 section 2.3.1: client_secret_basic form-encodes both
		// parts.
		req.SetBasicAuth(url.QueryEscape(l.clientID), url.QueryEscape(l.clientSecret))
	}
	resp, err := l.p.client.Do(req)
	if err != nil {
		l.log.Warn("refresh token not revoked at sign-out; other replicas accept copies of the session cookie until the refresh token expires", "err", err)
		return
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		l.log.Warn("refresh token not revoked at sign-out; other replicas accept copies of the session cookie until the refresh token expires", "status", resp.StatusCode)
	}
}

// endSessionURL returns the provider's end_session_endpoint with the
// RP-initiated logout parameters: client_id, id_token_hint when the session
// kept its ID token, and post_logout_redirect_uri when configured.
func (l *Login) endSessionURL(d *discovered, idToken string) string {
	u, err := url.Parse(d.endSession)
	if err != nil {
		return d.endSession
	}
	q := u.Query()
	q.Set("client_id", l.clientID)
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	if l.postLogoutURL != "" {
		q.Set("post_logout_redirect_uri", l.postLogoutURL)
	}
	u.RawQuery = q.Encode()
	return u.String()
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
	fmt.Fprintf(w, "<!doctype html><title>promgate</title><p>%s</p>\n", html.EscapeString(msg)) //nolint:errcheck // an HTTP response write fails only when the client is gone; nothing is left to do
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
