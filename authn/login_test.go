package authn

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/config"
)

const testCallback = "https://gw.example/oauth2/callback"

// loginFixture is a Login against a test provider.
type loginFixture struct {
	t     *testing.T
	clock *fakeClock
	idp   *testIssuer
	l     *Login
	chain Chain
	dir   string
}

func newLoginFixture(t *testing.T) *loginFixture {
	t.Helper()
	f := &loginFixture{t: t, clock: newClock(), dir: t.TempDir()}
	f.idp = newTestIssuer(t, f.clock)
	f.idp.idClaims = func(nonce string) map[string]any {
		now := f.clock.now()
		return map[string]any{
			"iss": f.idp.url, "aud": "promgate", "sub": "alice", "email": "alice@example.test", "email_verified": true,
			"groups": []string{"team-a"}, "nonce": nonce, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
			"at_hash": "x",
		}
	}
	f.l, f.chain = f.build("cookie secret that is long enough to derive keys from")
	return f
}

func (f *loginFixture) build(cookieSecret string) (*Login, Chain) {
	f.t.Helper()
	l, chain, err := f.buildWith(cookieSecret, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := l.p.discover(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	return l, chain
}

// buildWith builds a Login from the fixture's configuration as mod changes it.
func (f *loginFixture) buildWith(cookieSecret string, mod func(*config.Login)) (*Login, Chain, error) {
	f.t.Helper()
	write := func(name, content string) string {
		p := filepath.Join(f.dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			f.t.Fatal(err)
		}
		return p
	}
	cfg := config.Authn{
		MTLS: config.MTLS{Subject: "cn", Groups: "ou"},
		Login: &config.Login{
			Issuer: f.idp.url, ClientID: "promgate", RedirectURL: testCallback,
			ClientSecretFile: write("client-secret", "client-secret\n"),
			CookieSecretFile: write("cookie-secret-"+cookieSecret[:4], cookieSecret),
		},
	}
	if mod != nil {
		mod(cfg.Login)
	}
	chain, l, err := newChain(canceled(), cfg, discardLogger(), newTestRegistry(), f.clock.now)
	return l, chain, err
}

// TestLoginConfig: session_lifetime and post_logout_redirect_url reach the
// login, and values outside their bounds are refused at start.
func TestLoginConfig(t *testing.T) {
	f := newLoginFixture(t)
	if f.l.lifetime != DefaultSessionLifetime || f.l.postLogoutURL != "" {
		t.Errorf("defaults: lifetime %s, post-logout URL %q", f.l.lifetime, f.l.postLogoutURL)
	}
	l, _, err := f.buildWith("cookie secret that is long enough to derive keys from", func(c *config.Login) {
		c.SessionLifetime = model.Duration(5 * time.Minute)
		c.PostLogoutRedirectURL = "https://gw.example/signed-out"
	})
	if err != nil || l.lifetime != 5*time.Minute || l.postLogoutURL != "https://gw.example/signed-out" {
		t.Errorf("set: %v, lifetime %v, post-logout URL %q", err, l.lifetime, l.postLogoutURL)
	}
	for _, c := range []struct {
		mod  func(*config.Login)
		want string
	}{
		{func(c *config.Login) { c.SessionLifetime = model.Duration(time.Second) }, "session_lifetime"},
		{func(c *config.Login) { c.SessionLifetime = model.Duration(48 * time.Hour) }, "session_lifetime"},
		{func(c *config.Login) { c.PostLogoutRedirectURL = "http://gw.example/out" }, "post_logout_redirect_url"},
		{func(c *config.Login) { c.PostLogoutRedirectURL = "/out" }, "post_logout_redirect_url"},
	} {
		if _, _, err := f.buildWith("cookie secret that is long enough to derive keys from", c.mod); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one naming %s", err, c.want)
		}
	}
}

// serve runs one page request.
func (f *loginFixture) serve(method, target string, cookies []*http.Cookie, header ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	u, _ := url.Parse(target)
	h, ok := f.l.Pages()[u.Path]
	if !ok {
		f.t.Fatalf("no page %s", u.Path)
	}
	h.ServeHTTP(w, r)
	return w
}

// start begins a login and returns the CSRF cookie and the provider URL.
func (f *loginFixture) start(rd string) (*http.Cookie, string) {
	f.t.Helper()
	w := f.serve("GET", PathStart+"?rd="+url.QueryEscape(rd), nil)
	if w.Code != http.StatusFound {
		f.t.Fatalf("start: %d %s", w.Code, w.Body)
	}
	c := cookieNamed(w, csrfCookie)
	if c == nil || c.MaxAge <= 0 {
		f.t.Fatalf("start set no CSRF cookie: %v", w.Header()["Set-Cookie"])
	}
	return c, w.Header().Get("Location")
}

// authorize plays the browser at the provider and returns the callback URL.
func (f *loginFixture) authorize(authURL string) string {
	f.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authURL)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, testCallback+"?") {
		f.t.Fatalf("provider answered %d %q", resp.StatusCode, loc)
	}
	return strings.TrimPrefix(loc, "https://gw.example")
}

// login runs a whole login and returns the session cookies.
func (f *loginFixture) login() []*http.Cookie {
	f.t.Helper()
	csrf, authURL := f.start("/ui/")
	w := f.serve("GET", f.authorize(authURL), []*http.Cookie{csrf})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/" {
		f.t.Fatalf("callback: %d %s %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	return liveCookies(w)
}

func cookieNamed(w *httptest.ResponseRecorder, name string) *http.Cookie {
	var out *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			out = c
		}
	}
	return out
}

// liveCookies returns the cookies w sets (not those it deletes).
func liveCookies(w *httptest.ResponseRecorder) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.MaxAge > 0 {
			out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	return out
}

func (f *loginFixture) authenticate(cookies []*http.Cookie) (*Identity, error) {
	r := httptest.NewRequest("GET", "/api/v1/query", nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	return f.chain.Authenticate(r)
}

func TestLoginFlow(t *testing.T) {
	f := newLoginFixture(t)
	csrf, authURL := f.start("/ui/?tab=1")
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, want := range map[string]string{"client_id": "promgate", "response_type": "code", "code_challenge_method": "S256", "redirect_uri": testCallback} {
		if q.Get(k) != want {
			t.Errorf("auth URL %s = %q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 32 {
			t.Errorf("auth URL %s = %q, want a random value", k, q.Get(k))
		}
	}
	if !csrf.Secure || !csrf.HttpOnly || csrf.SameSite != http.SameSiteLaxMode || csrf.Path != "/" || csrf.Domain != "" {
		t.Errorf("CSRF cookie attributes %+v", csrf)
	}

	w := f.serve("GET", f.authorize(authURL), []*http.Cookie{csrf})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/?tab=1" {
		t.Fatalf("callback: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	if c := cookieNamed(w, csrfCookie); c == nil || c.MaxAge >= 0 {
		t.Errorf("the CSRF cookie was not cleared: %+v", c)
	}
	sess := cookieNamed(w, config.DefaultLoginCookieName)
	if sess == nil {
		t.Fatal("no session cookie")
	}
	if !strings.HasPrefix(sess.Name, "__Host-") || !sess.Secure || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/" || sess.Domain != "" {
		t.Errorf("session cookie attributes %+v", sess)
	}
	// The expiry follows the ID token (10 minutes at the fake clock).
	if want := f.clock.now().Add(10 * time.Minute).UTC(); !sess.Expires.Equal(want.Truncate(time.Second)) {
		t.Errorf("session expires %v, want %v", sess.Expires, want)
	}
	// The cookie's value is sealed, so only the body can show a JWT; "eyJ"
	// may occur in ciphertext by chance.
	if strings.Contains(w.Body.String(), "opaque-access-token") || strings.Contains(w.Body.String(), "eyJ") || strings.Contains(sess.Value, "opaque-access-token") {
		t.Errorf("a token shows in the callback's answer")
	}

	id, err := f.authenticate(liveCookies(w))
	if err != nil {
		t.Fatal(err)
	}
	if id.Method != MethodSession || id.Subject != "alice" || id.Issuer != f.idp.url {
		t.Errorf("identity %+v", id)
	}
	if diff := cmp.Diff([]string{"team-a"}, id.Groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	if _, ok := id.Claims["at_hash"]; ok {
		t.Error("session claims keep at_hash")
	}

	// The session ends with the ID token.
	f.clock.add(10 * time.Minute)
	_, err = f.authenticate(liveCookies(w))
	wantReason(t, err, "session_expired")
}

// TestLoginCSRF covers login CSRF: a callback with an attacker's code or
// state, or a replayed, expired or foreign state cookie, never sets a session.
func TestLoginCSRF(t *testing.T) {
	f := newLoginFixture(t)
	tests := []struct {
		name string
		run  func() *httptest.ResponseRecorder
	}{
		{name: "attacker's code and state, no state cookie", run: func() *httptest.ResponseRecorder {
			_, authURL := f.start("/ui/")
			return f.serve("GET", f.authorize(authURL), nil)
		}},
		{name: "attacker's code and state with the victim's cookie", run: func() *httptest.ResponseRecorder {
			victim, _ := f.start("/ui/")
			_, authURL := f.start("/ui/")
			return f.serve("GET", f.authorize(authURL), []*http.Cookie{victim})
		}},
		{name: "right code, state changed", run: func() *httptest.ResponseRecorder {
			c, authURL := f.start("/ui/")
			cb := f.authorize(authURL)
			u, _ := url.Parse(cb)
			return f.serve("GET", PathCallback+"?code="+u.Query().Get("code")+"&state=attacker", []*http.Cookie{c})
		}},
		{name: "right code, no state", run: func() *httptest.ResponseRecorder {
			c, authURL := f.start("/ui/")
			u, _ := url.Parse(f.authorize(authURL))
			return f.serve("GET", PathCallback+"?code="+u.Query().Get("code"), []*http.Cookie{c})
		}},
		{name: "victim's state with the attacker's code (PKCE mismatch)", run: func() *httptest.ResponseRecorder {
			_, attackerURL := f.start("/ui/")
			victim, victimURL := f.start("/ui/")
			attackerCB, _ := url.Parse(f.authorize(attackerURL))
			victimState, _ := url.Parse(victimURL)
			return f.serve("GET", PathCallback+"?code="+attackerCB.Query().Get("code")+"&state="+victimState.Query().Get("state"), []*http.Cookie{victim})
		}},
		{name: "state cookie used twice", run: func() *httptest.ResponseRecorder {
			c, authURL := f.start("/ui/")
			cb := f.authorize(authURL)
			if w := f.serve("GET", cb, []*http.Cookie{c}); w.Code != http.StatusSeeOther {
				t.Fatalf("first use: %d", w.Code)
			}
			// Same cookie, a fresh code for the same state.
			u, _ := url.Parse(authURL)
			return f.serve("GET", strings.Replace(f.authorize(u.String()), "", "", 1), []*http.Cookie{c})
		}},
		{name: "expired state", run: func() *httptest.ResponseRecorder {
			c, authURL := f.start("/ui/")
			cb := f.authorize(authURL)
			f.clock.add(loginTTL)
			defer f.clock.add(-loginTTL)
			return f.serve("GET", cb, []*http.Cookie{c})
		}},
		{name: "state cookie of another deployment", run: func() *httptest.ResponseRecorder {
			c, authURL := f.start("/ui/")
			other, _ := f.build("another deployment's cookie secret, long enough")
			saved := f.l
			f.l = other
			defer func() { f.l = saved }()
			return f.serve("GET", f.authorize(authURL), []*http.Cookie{c})
		}},
		{name: "state cookie renamed to the session cookie", run: func() *httptest.ResponseRecorder {
			c, authURL := f.start("/ui/")
			return f.serve("GET", f.authorize(authURL), []*http.Cookie{{Name: csrfCookie, Value: "1." + strings.TrimPrefix(c.Value, "1.") + "x"}})
		}},
		{name: "nonce mismatch", run: func() *httptest.ResponseRecorder {
			saved := f.idp.idClaims
			defer func() { f.idp.idClaims = saved }()
			f.idp.idClaims = func(string) map[string]any { c := saved("other-nonce"); return c }
			c, authURL := f.start("/ui/")
			return f.serve("GET", f.authorize(authURL), []*http.Cookie{c})
		}},
		{name: "ID token for another client", run: func() *httptest.ResponseRecorder {
			saved := f.idp.idClaims
			defer func() { f.idp.idClaims = saved }()
			f.idp.idClaims = func(n string) map[string]any { c := saved(n); c["aud"] = "grafana"; return c }
			c, authURL := f.start("/ui/")
			return f.serve("GET", f.authorize(authURL), []*http.Cookie{c})
		}},
		{name: "provider error", run: func() *httptest.ResponseRecorder {
			c, authURL := f.start("/ui/")
			u, _ := url.Parse(authURL)
			return f.serve("GET", PathCallback+"?error=access_denied&state="+u.Query().Get("state"), []*http.Cookie{c})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.run()
			if w.Code < 400 {
				t.Fatalf("callback answered %d %s, want a refusal", w.Code, w.Header().Get("Location"))
			}
			if c := cookieNamed(w, config.DefaultLoginCookieName); c != nil && c.MaxAge > 0 {
				t.Errorf("a session cookie was set")
			}
			if c := cookieNamed(w, csrfCookie); c == nil || c.MaxAge >= 0 {
				t.Errorf("the state cookie was not cleared")
			}
		})
	}
}

// TestSessionCookies covers forged session cookies: tampered, renamed,
// sealed by another deployment, sent twice or split wrongly.
func TestSessionCookies(t *testing.T) {
	f := newLoginFixture(t)
	good := f.login()
	other, _ := f.build("another deployment's cookie secret, long enough")
	foreign := func() []*http.Cookie {
		w := httptest.NewRecorder()
		b := []byte(`{"iss":"` + f.idp.url + `","claims":{"sub":"mallory","groups":["admins"]},"exp":9999999999}`)
		if err := other.session.set(w, b, f.clock.now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		return liveCookies(w)
	}()
	tampered := []*http.Cookie{{Name: good[0].Name, Value: good[0].Value[:20] + flip(good[0].Value[20:])}}
	renamedJar := cookieJar{name: "__Host-other", s: f.l.session.s}
	renamed := func() []*http.Cookie {
		// A value sealed for another cookie name, sent under the session's.
		w := httptest.NewRecorder()
		_ = renamedJar.set(w, []byte(`{"iss":"`+f.idp.url+`","claims":{"sub":"mallory"},"exp":9999999999}`), f.clock.now().Add(time.Hour))
		c := liveCookies(w)[0]
		return []*http.Cookie{{Name: config.DefaultLoginCookieName, Value: c.Value}}
	}()
	csrfAsSession := func() []*http.Cookie {
		c, _ := f.start("/ui/")
		return []*http.Cookie{{Name: config.DefaultLoginCookieName, Value: c.Value}}
	}()
	tests := []struct {
		name    string
		cookies []*http.Cookie
		reason  string
	}{
		{name: "valid", cookies: good},
		{name: "tampered", cookies: tampered, reason: "bad_session"},
		{name: "sealed under another name", cookies: renamed, reason: "bad_session"},
		{name: "login state cookie as session", cookies: csrfAsSession, reason: "bad_session"},
		{name: "another deployment's secret", cookies: foreign, reason: "bad_session"},
		{name: "sent twice", cookies: append(append([]*http.Cookie{}, good...), good...), reason: "bad_session"},
		{name: "garbage", cookies: []*http.Cookie{{Name: config.DefaultLoginCookieName, Value: "1.AAAA"}}, reason: "bad_session"},
		{name: "bad chunk count", cookies: []*http.Cookie{{Name: config.DefaultLoginCookieName, Value: "3." + strings.TrimPrefix(good[0].Value, "1.")}}, reason: "bad_session"},
		{name: "orphan chunk", cookies: []*http.Cookie{{Name: config.DefaultLoginCookieName + "_1", Value: "x"}}, reason: "bad_session"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := f.authenticate(tc.cookies)
			if tc.reason == "" {
				if err != nil || id.Subject != "alice" {
					t.Fatalf("%+v, %v", id, err)
				}
				return
			}
			wantReason(t, err, tc.reason)
			// The gateway's error answer clears the cookie.
			r := httptest.NewRequest("GET", "/", nil)
			for _, c := range tc.cookies {
				r.AddCookie(c)
			}
			w := httptest.NewRecorder()
			f.l.ClearCookies(w, r)
			if c := cookieNamed(w, config.DefaultLoginCookieName); c == nil || c.MaxAge >= 0 || !c.Secure || c.Path != "/" {
				t.Errorf("ClearCookies did not expire the session cookie: %v", w.Header()["Set-Cookie"])
			}
		})
	}
}

// TestLoginReplacesPlantedSession covers session fixation: a session an
// attacker planted in the browser does not survive the victim's login.
func TestLoginReplacesPlantedSession(t *testing.T) {
	f := newLoginFixture(t)
	f.idp.idClaims = func(nonce string) map[string]any {
		now := f.clock.now()
		sub := "mallory"
		if nonce == "" {
			sub = "x"
		}
		return map[string]any{"iss": f.idp.url, "aud": "promgate", "sub": sub, "nonce": nonce, "exp": now.Add(time.Hour).Unix()}
	}
	planted := f.login()
	f.idp.idClaims = func(nonce string) map[string]any {
		return map[string]any{"iss": f.idp.url, "aud": "promgate", "sub": "alice", "nonce": nonce, "exp": f.clock.now().Add(time.Hour).Unix()}
	}
	csrf, authURL := f.start("/ui/")
	w := f.serve("GET", f.authorize(authURL), append([]*http.Cookie{csrf}, planted...))
	if w.Code != http.StatusSeeOther {
		t.Fatalf("callback %d", w.Code)
	}
	id, err := f.authenticate(liveCookies(w))
	if err != nil || id.Subject != "alice" {
		t.Fatalf("after login: %+v, %v; want alice's session replacing the planted one", id, err)
	}
}

func TestSessionChunks(t *testing.T) {
	f := newLoginFixture(t)
	big := make([]string, 200)
	for i := range big {
		big[i] = "group-with-a-rather-long-name-" + strings.Repeat("x", 10) + "-" + string(rune('a'+i%26))
	}
	f.idp.idClaims = func(nonce string) map[string]any {
		return map[string]any{"iss": f.idp.url, "aud": "promgate", "sub": "alice", "nonce": nonce, "groups": big, "exp": f.clock.now().Add(time.Hour).Unix()}
	}
	cookies := f.login()
	if len(cookies) < 2 {
		t.Fatalf("a %d-group session fits one cookie? %d cookies", len(big), len(cookies))
	}
	for _, c := range cookies {
		if len(c.Name)+len(c.Value) > 4000 {
			t.Errorf("cookie %s is %d bytes", c.Name, len(c.Value))
		}
	}
	id, err := f.authenticate(cookies)
	if err != nil || len(id.Groups) != len(big) {
		t.Fatalf("chunked session: %v groups, %v", len(id.Groups), err)
	}
	// Missing a chunk is a bad session, not a shorter one.
	_, err = f.authenticate(cookies[:len(cookies)-1])
	wantReason(t, err, "bad_session")

	// Too large for maxChunks: a clear refusal at login.
	huge := make([]string, maxGroups)
	for i := range huge {
		huge[i] = strings.Repeat("g", 60) + string(rune('a'+i%26))
	}
	f.idp.idClaims = func(nonce string) map[string]any {
		return map[string]any{"iss": f.idp.url, "aud": "promgate", "sub": "alice", "nonce": nonce, "groups": huge, "exp": f.clock.now().Add(time.Hour).Unix()}
	}
	csrf, authURL := f.start("/ui/")
	w := f.serve("GET", f.authorize(authURL), []*http.Cookie{csrf})
	if w.Code != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(w.Body.String(), "too large") {
		t.Errorf("huge session: %d %s", w.Code, w.Body)
	}
}

func TestSessionRefresh(t *testing.T) {
	f := newLoginFixture(t)
	f.idp.refreshToken = "refresh-token-value"
	cookies := f.login()
	for _, c := range cookies {
		if strings.Contains(c.Value, "refresh-token-value") {
			t.Fatal("the refresh token shows in the cookie")
		}
	}
	f.clock.add(11 * time.Minute)
	_, err := f.authenticate(cookies)
	wantReason(t, err, "session_expired")
	w := f.serve("GET", PathStart+"?rd=/ui/x", cookies)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/x" || f.idp.refreshes.Load() != 1 {
		t.Fatalf("refresh at start: %d %q refreshes %d", w.Code, w.Header().Get("Location"), f.idp.refreshes.Load())
	}
	id, err := f.authenticate(liveCookies(w))
	if err != nil || id.Subject != "alice" {
		t.Fatalf("refreshed session: %+v %v", id, err)
	}
	// Without a refresh token, an expired session starts a new login.
	f.idp.refreshToken = ""
	f.clock.add(11 * time.Minute)
	w = f.serve("GET", PathStart, liveCookies(w))
	if w.Code != http.StatusFound || !strings.HasPrefix(w.Header().Get("Location"), f.idp.url+"/auth?") {
		t.Fatalf("expired session without refresh: %d %q", w.Code, w.Header().Get("Location"))
	}
}

// TestLoginRedirects covers open redirects through rd at start and
// sign-out.
func TestLoginRedirects(t *testing.T) {
	f := newLoginFixture(t)
	for _, rd := range openRedirects {
		w := f.serve("GET", PathStart+"?rd="+url.QueryEscape(rd), nil)
		if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
			t.Errorf("%s?rd=%q: %d %q, want 400", PathStart, rd, w.Code, w.Header().Get("Location"))
		}
		w = f.serve("POST", PathSignOut+"?rd="+url.QueryEscape(rd), nil, "Origin", testOrigin)
		if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
			t.Errorf("%s?rd=%q: %d %q, want 400", PathSignOut, rd, w.Code, w.Header().Get("Location"))
		}
	}
	// Without an end_session_endpoint, sign-out goes to rd.
	w := f.serve("POST", PathSignOut+"?rd=/ui/", nil, "Origin", testOrigin)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/" {
		t.Errorf("sign_out with a good rd: %d %q", w.Code, w.Header().Get("Location"))
	}
}

var openRedirects = []string{
	"//evil.com", "/\\evil.com", "/%09/evil.com", "/%2f%2fevil.com", "/%2F%2Fevil.com", "https://evilpromgate.example/",
	"javascript:alert(1)", "\\\\evil.com", "/\t/evil.com", "/\n/evil.com", " /ui/", "http:evil.com", "//evil.com/%2e%2e",
	"/%5cevil.com", "evil.com", "/ui/\r\nSet-Cookie:x=y", "///evil.com", "/%0d%0a",
}

func TestSafeRedirect(t *testing.T) {
	for _, rd := range openRedirects {
		if SafeRedirect(rd) {
			t.Errorf("SafeRedirect(%q) = true, want false", rd)
		}
	}
	for _, rd := range []string{"/", "/ui/", "/ui/?q=up%7Bnamespace%3D%22a%22%7D", "/oauth2/userinfo", "/ui/#x", "/api/v1/query?query=up"} {
		if !SafeRedirect(rd) {
			t.Errorf("SafeRedirect(%q) = false, want true", rd)
		}
	}
}

func TestSignOut(t *testing.T) {
	f := newLoginFixture(t)
	cookies := f.login()
	w := f.serve("POST", PathSignOut, cookies, "Sec-Fetch-Site", "same-origin", "Origin", testOrigin)
	if w.Code != http.StatusOK {
		t.Fatalf("sign_out: %d", w.Code)
	}
	if c := cookieNamed(w, config.DefaultLoginCookieName); c == nil || c.MaxAge >= 0 {
		t.Errorf("sign_out did not clear the session: %v", w.Header()["Set-Cookie"])
	}
	// A copy of the cookie kept past sign-out is refused on this replica.
	_, err := f.authenticate(cookies)
	wantReason(t, err, "signed_out")
}

// testOrigin is the gateway's origin in the login tests (from testCallback).
const testOrigin = "https://gw.example"

// TestSignOutMethodAndOrigin covers sign-out CSRF: only a POST from a page
// of the gateway signs out. A link, an image or a prefetch (GET) gets 405,
// and a form on another site gets 403; neither touches the session.
func TestSignOutMethodAndOrigin(t *testing.T) {
	f := newLoginFixture(t)
	refused := []struct {
		name   string
		method string
		header []string
		status int
	}{
		{name: "GET", method: "GET", status: http.StatusMethodNotAllowed},
		{name: "GET from the gateway", method: "GET", header: []string{"Sec-Fetch-Site", "same-origin", "Origin", testOrigin}, status: http.StatusMethodNotAllowed},
		{name: "HEAD", method: "HEAD", status: http.StatusMethodNotAllowed},
		{name: "PUT from the gateway", method: "PUT", header: []string{"Sec-Fetch-Site", "same-origin"}, status: http.StatusMethodNotAllowed},
		{name: "POST cross-site", method: "POST", header: []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, status: http.StatusForbidden},
		{name: "POST same-site", method: "POST", header: []string{"Sec-Fetch-Site", "same-site", "Origin", "https://app.gw.example"}, status: http.StatusForbidden},
		{name: "POST user-initiated", method: "POST", header: []string{"Sec-Fetch-Site", "none"}, status: http.StatusForbidden},
		{name: "POST same-origin claimed, other Origin", method: "POST", header: []string{"Sec-Fetch-Site", "same-origin", "Origin", "https://evil.example"}, status: http.StatusForbidden},
		{name: "POST Origin of another site", method: "POST", header: []string{"Origin", "https://evil.example"}, status: http.StatusForbidden},
		{name: "POST Origin null", method: "POST", header: []string{"Origin", "null"}, status: http.StatusForbidden},
		{name: "POST Origin over http", method: "POST", header: []string{"Origin", "http://gw.example"}, status: http.StatusForbidden},
		{name: "POST Origin on another port", method: "POST", header: []string{"Origin", "https://gw.example:8443"}, status: http.StatusForbidden},
		{name: "POST without Origin or Sec-Fetch-Site", method: "POST", status: http.StatusForbidden},
	}
	cookies := f.login()
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			w := f.serve(tc.method, PathSignOut, cookies, tc.header...)
			if w.Code != tc.status {
				t.Errorf("%s %s: %d, want %d", tc.method, PathSignOut, w.Code, tc.status)
			}
			if tc.status == http.StatusMethodNotAllowed && w.Header().Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", w.Header().Get("Allow"))
			}
			if len(w.Result().Cookies()) != 0 || w.Header().Get("Location") != "" {
				t.Errorf("a refused sign-out set cookies %v or redirected to %q", w.Header()["Set-Cookie"], w.Header().Get("Location"))
			}
			if id, err := f.authenticate(cookies); err != nil || id.Subject != "alice" {
				t.Errorf("the session after a refused sign-out: %v, %v", id, err)
			}
		})
	}
	for _, header := range [][]string{
		{"Sec-Fetch-Site", "same-origin"},
		{"Origin", testOrigin},
		{"Origin", "https://GW.example"},
		{"Sec-Fetch-Site", "same-origin", "Origin", testOrigin},
		// A form on a page with Referrer-Policy: no-referrer, as the
		// gateway's pages are.
		{"Sec-Fetch-Site", "same-origin", "Origin", "null"},
	} {
		cookies := f.login()
		w := f.serve("POST", PathSignOut, cookies, header...)
		if c := cookieNamed(w, config.DefaultLoginCookieName); w.Code != http.StatusOK || c == nil || c.MaxAge >= 0 {
			t.Errorf("POST with %q: %d %v, want 200 and the session cleared", header, w.Code, w.Header()["Set-Cookie"])
		}
	}
}

// logoutIssuer puts a test issuer behind a front that adds the endpoints
// of sign-out to its discovery document: a revocation_endpoint (RFC 7009)
// that records what it revokes, after which the token endpoint refuses the
// token, and an end_session_endpoint (which the browser would visit).
type logoutIssuer struct {
	front *httptest.Server
	// revokeStatus is the revocation endpoint's answer (200 when 0).
	revokeStatus atomic.Int64

	mu      sync.Mutex
	revoked []url.Values // the forms of accepted revocations
	auth    []string     // their client_id:secret
}

func (li *logoutIssuer) revocations() ([]url.Values, []string) {
	li.mu.Lock()
	defer li.mu.Unlock()
	return slices.Clone(li.revoked), slices.Clone(li.auth)
}

func (li *logoutIssuer) isRevoked(token string) bool {
	li.mu.Lock()
	defer li.mu.Unlock()
	return slices.ContainsFunc(li.revoked, func(v url.Values) bool { return v.Get("token") == token })
}

// newLogoutFixture is a login fixture whose provider offers revocation and
// RP-initiated logout, issues refresh tokens and hour-long ID tokens (so the
// session lifetime, not the ID token, ends the session). Its logs go to the
// returned buffer.
func newLogoutFixture(t *testing.T) (*loginFixture, *logoutIssuer, *bytes.Buffer) {
	t.Helper()
	f := &loginFixture{t: t, clock: newClock(), dir: t.TempDir()}
	f.idp = newTestIssuer(t, f.clock)
	li := &logoutIssuer{}
	inner := f.idp.srv.Config.Handler
	li.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, r)
			var doc map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			doc["revocation_endpoint"] = li.front.URL + "/token/revocation"
			doc["end_session_endpoint"] = li.front.URL + "/session/end?ui_locales=en"
			_ = json.NewEncoder(w).Encode(doc)
		case "/token/revocation":
			id, secret, ok := r.BasicAuth()
			if r.Method != http.MethodPost || r.ParseForm() != nil || !ok || id != "promgate" || secret != "client-secret" {
				http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
				return
			}
			if s := li.revokeStatus.Load(); s != 0 {
				w.WriteHeader(int(s))
				return
			}
			li.mu.Lock()
			li.revoked = append(li.revoked, r.PostForm)
			li.auth = append(li.auth, id+":"+secret)
			li.mu.Unlock()
		case "/token":
			_ = r.ParseForm()
			if r.PostForm.Get("grant_type") == "refresh_token" && li.isRevoked(r.PostForm.Get("refresh_token")) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
				return
			}
			inner.ServeHTTP(w, r)
		default:
			inner.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(li.front.Close)
	f.idp.url = li.front.URL
	f.idp.refreshToken = "refresh-token-value"
	f.idp.idClaims = func(nonce string) map[string]any {
		now := f.clock.now()
		return map[string]any{
			"iss": f.idp.url, "aud": "promgate", "sub": "alice", "groups": []string{"team-a"},
			"nonce": nonce, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		}
	}
	f.l, f.chain = f.build("cookie secret that is long enough to derive keys from")
	var logs bytes.Buffer
	f.l.log = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return f, li, &logs
}

// signOut posts to the sign-out page from the gateway's own page.
func (f *loginFixture) signOut(cookies []*http.Cookie) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.serve("POST", PathSignOut, cookies, "Sec-Fetch-Site", "same-origin", "Origin", testOrigin)
}

// TestSignOutEndsSession covers a session cookie copied before sign-out and
// replayed after it (OWASP ASVS 3.3.1: logout invalidates the session). On
// the replica that signed out, the copy is refused at once; on another
// replica it works until its lifetime ends, and then cannot be renewed,
// because sign-out revoked its refresh token.
func TestSignOutEndsSession(t *testing.T) {
	f, li, logs := newLogoutFixture(t)
	cookies := f.login()
	if id, err := f.authenticate(cookies); err != nil || id.Subject != "alice" {
		t.Fatalf("before sign-out: %+v, %v", id, err)
	}
	replica2, chain2 := f.build("cookie secret that is long enough to derive keys from")

	w := f.signOut(cookies)
	if w.Code != http.StatusOK {
		t.Fatalf("sign_out: %d %s", w.Code, w.Body)
	}
	if c := cookieNamed(w, config.DefaultLoginCookieName); c == nil || c.MaxAge >= 0 {
		t.Errorf("sign_out did not clear the session: %v", w.Header()["Set-Cookie"])
	}
	// RP-initiated logout at the provider.
	loc := continueURL(t, w)
	if loc.Scheme+"://"+loc.Host != li.front.URL || loc.Path != "/session/end" {
		t.Fatalf("sign_out sends the browser to %q, want the end_session_endpoint", loc)
	}
	q := loc.Query()
	hint := strings.Split(q.Get("id_token_hint"), ".")
	if q.Get("client_id") != "promgate" || len(hint) != 3 || q.Get("ui_locales") != "en" || q.Has("post_logout_redirect_uri") {
		t.Errorf("end_session query %v, want client_id, an id_token_hint and the endpoint's own ui_locales", q)
	}
	if payload, err := base64.RawURLEncoding.DecodeString(hint[min(1, len(hint)-1)]); err != nil || !strings.Contains(string(payload), `"sub":"alice"`) {
		t.Errorf("id_token_hint is not alice's ID token: %s", payload)
	}
	// RFC 7009 revocation of the refresh token, as the gateway's client.
	forms, auth := li.revocations()
	if len(forms) != 1 || forms[0].Get("token") != "refresh-token-value" || forms[0].Get("token_type_hint") != "refresh_token" || auth[0] != "promgate:client-secret" {
		t.Errorf("revocations %v by %v, want the refresh token once, by promgate", forms, auth)
	}

	// This replica refuses the copy at once, clears it, and does not renew
	// it at /oauth2/start.
	_, err := f.authenticate(cookies)
	wantReason(t, err, "signed_out")
	r := httptest.NewRequest("GET", "/ui/", nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	cw := httptest.NewRecorder()
	f.l.ClearCookies(cw, r)
	if c := cookieNamed(cw, config.DefaultLoginCookieName); c == nil || c.MaxAge >= 0 {
		t.Errorf("ClearCookies kept a signed-out session: %v", cw.Header()["Set-Cookie"])
	}
	refreshes := f.idp.refreshes.Load()
	f.clock.add(DefaultSessionLifetime)
	w = f.serve("GET", PathStart+"?rd=/ui/", cookies)
	if c := cookieNamed(w, config.DefaultLoginCookieName); w.Code != http.StatusFound || !strings.HasPrefix(w.Header().Get("Location"), f.idp.url+"/auth?") || c == nil || c.MaxAge >= 0 {
		t.Errorf("signed-out session at start: %d %q %v, want a new login and the cookie cleared", w.Code, w.Header().Get("Location"), w.Header()["Set-Cookie"])
	}
	if f.idp.refreshes.Load() != refreshes {
		t.Error("a signed-out session was refreshed")
	}
	f.clock.add(-DefaultSessionLifetime)

	// Another replica has not seen the sign-out: the copy works there
	// until its lifetime ends...
	id, err := chain2.Authenticate(requestWith(cookies))
	if err != nil || id.Subject != "alice" {
		t.Fatalf("another replica before the lifetime ends: %+v, %v", id, err)
	}
	f.clock.add(DefaultSessionLifetime)
	_, err = chain2.Authenticate(requestWith(cookies))
	wantReason(t, err, "session_expired")
	// ...and then its revoked refresh token does not renew it: the cookie
	// is cleared and the browser logs in again.
	saved := f.l
	f.l = replica2
	w = f.serve("GET", PathStart+"?rd=/ui/", cookies)
	f.l = saved
	if c := cookieNamed(w, config.DefaultLoginCookieName); w.Code != http.StatusFound || !strings.HasPrefix(w.Header().Get("Location"), f.idp.url+"/auth?") || c == nil || c.MaxAge >= 0 {
		t.Errorf("revoked session at another replica's start: %d %q %v, want a new login and the cookie cleared", w.Code, w.Header().Get("Location"), w.Header()["Set-Cookie"])
	}
	for _, secret := range []string{"refresh-token-value", "client-secret", "eyJ"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log shows %q: %s", secret, logs)
		}
	}
}

// TestSignOutRevocationFails: a provider that does not revoke does not stop
// the sign-out, and this replica still refuses the copied cookie.
func TestSignOutRevocationFails(t *testing.T) {
	f, li, logs := newLogoutFixture(t)
	li.revokeStatus.Store(http.StatusServiceUnavailable)
	cookies := f.login()
	w := f.signOut(cookies)
	if c := cookieNamed(w, config.DefaultLoginCookieName); w.Code != http.StatusOK || c == nil || c.MaxAge >= 0 {
		t.Fatalf("sign_out: %d %v", w.Code, w.Header()["Set-Cookie"])
	}
	_, err := f.authenticate(cookies)
	wantReason(t, err, "signed_out")
	if !strings.Contains(logs.String(), "refresh token not revoked") || strings.Contains(logs.String(), "refresh-token-value") {
		t.Errorf("log %s, want a warning without the token", logs)
	}
}

func TestSignOutPostLogoutRedirect(t *testing.T) {
	f, _, _ := newLogoutFixture(t)
	f.l.postLogoutURL = "https://gw.example/signed-out"
	w := f.signOut(f.login())
	if got := continueURL(t, w).Query().Get("post_logout_redirect_uri"); got != "https://gw.example/signed-out" {
		t.Errorf("post_logout_redirect_uri = %q", got)
	}
	// Without a session, the provider's logout still gets client_id.
	w = f.signOut(nil)
	if loc := continueURL(t, w); loc.Query().Get("client_id") != "promgate" || loc.Query().Has("id_token_hint") {
		t.Errorf("sign_out without a session sends the browser to %q", loc)
	}
}

// continueURL returns where a sign-out page sends the browser: its meta
// refresh, which must agree with its link.
func continueURL(t *testing.T, w *httptest.ResponseRecorder) *url.URL {
	t.Helper()
	body := w.Body.String()
	_, rest, ok1 := strings.Cut(body, `<meta http-equiv="refresh" content="0;url=`)
	refresh, _, ok2 := strings.Cut(rest, `"`)
	_, rest, ok3 := strings.Cut(body, `<a id="continue" href="`)
	link, _, ok4 := strings.Cut(rest, `"`)
	if !ok1 || !ok2 || !ok3 || !ok4 || refresh != link || w.Code != http.StatusOK || w.Header().Get("Location") != "" {
		t.Fatalf("sign-out page %d %s: want a refresh and a link to the same URL", w.Code, body)
	}
	u, err := url.Parse(html.UnescapeString(link))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSessionLifetime: a session lasts DefaultSessionLifetime, then
// /oauth2/start renews it with the refresh token (same session ID), and a
// refresh that fails ends it.
func TestSessionLifetime(t *testing.T) {
	f, _, logs := newLogoutFixture(t)
	cookies := f.login()
	sid := f.sessionID(cookies)
	f.clock.add(DefaultSessionLifetime - time.Second)
	if _, err := f.authenticate(cookies); err != nil {
		t.Fatalf("a second before the lifetime ends: %v", err)
	}
	f.clock.add(time.Second)
	_, err := f.authenticate(cookies)
	wantReason(t, err, "session_expired")
	// The gateway's error answer keeps a cookie that can be renewed...
	cw := httptest.NewRecorder()
	f.l.ClearCookies(cw, requestWith(cookies))
	if len(cw.Result().Cookies()) != 0 {
		t.Errorf("ClearCookies cleared a renewable session: %v", cw.Header()["Set-Cookie"])
	}
	// ...which /oauth2/start renews.
	w := f.serve("GET", PathStart+"?rd=/ui/x", cookies)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/x" || f.idp.refreshes.Load() != 1 {
		t.Fatalf("refresh at start: %d %q refreshes %d", w.Code, w.Header().Get("Location"), f.idp.refreshes.Load())
	}
	renewed := liveCookies(w)
	if id, err := f.authenticate(renewed); err != nil || id.Subject != "alice" {
		t.Fatalf("renewed session: %+v %v", id, err)
	}
	if got := f.sessionID(renewed); got != sid {
		t.Errorf("the renewed session's ID changed: signing out would not end the old cookies")
	}
	if c := cookieNamed(w, config.DefaultLoginCookieName); !c.Expires.Equal(f.clock.now().Add(DefaultSessionLifetime + refreshWindow).UTC()) {
		t.Errorf("renewed cookie expires %v, want the lifetime plus the refresh window", c.Expires)
	}

	// The provider refuses the refresh token: the session is over.
	f.idp.refreshToken = "another-refresh-token"
	f.clock.add(DefaultSessionLifetime)
	w = f.serve("GET", PathStart+"?rd=/ui/", renewed)
	if c := cookieNamed(w, config.DefaultLoginCookieName); w.Code != http.StatusFound || !strings.HasPrefix(w.Header().Get("Location"), f.idp.url+"/auth?") || c == nil || c.MaxAge >= 0 {
		t.Errorf("refused refresh: %d %q %v, want a new login and the cookie cleared", w.Code, w.Header().Get("Location"), w.Header()["Set-Cookie"])
	}
	if strings.Contains(logs.String(), "refresh-token-value") || !strings.Contains(logs.String(), "invalid_grant") {
		t.Errorf("log %s, want the error code without the token", logs)
	}

	// A copy replayed after the refresh window is not sent to the provider,
	// though the cookie's own expiry no longer binds it.
	f.idp.refreshToken = "refresh-token-value"
	f.clock.add(refreshWindow)
	before := f.idp.refreshes.Load()
	cw = httptest.NewRecorder()
	f.l.ClearCookies(cw, requestWith(renewed))
	w = f.serve("GET", PathStart, renewed)
	if c := cookieNamed(cw, config.DefaultLoginCookieName); c == nil || c.MaxAge >= 0 || w.Code != http.StatusFound || f.idp.refreshes.Load() != before {
		t.Errorf("a session past its refresh window: cleared %v, start %d, refreshes %d", cw.Header()["Set-Cookie"], w.Code, f.idp.refreshes.Load()-before)
	}
}

// TestSessionWithoutIDIsRefused: a cookie sealed before sessions had IDs
// cannot be signed out, so it is not accepted.
func TestSessionWithoutIDIsRefused(t *testing.T) {
	f := newLoginFixture(t)
	w := httptest.NewRecorder()
	b := []byte(`{"iss":"` + f.idp.url + `","claims":{"sub":"alice"},"exp":` + fmt.Sprint(f.clock.now().Add(time.Minute).Unix()) + `}`)
	if err := f.l.session.set(w, b, f.clock.now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, err := f.authenticate(liveCookies(w))
	wantReason(t, err, "bad_session")
}

func TestSignedOutBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newSignedOut(3)
	for _, id := range []string{"a", "b", "c"} {
		if s.add(id, now.Add(time.Minute), now) {
			t.Fatalf("add(%s) dropped an entry below the bound", id)
		}
	}
	if !s.add("d", now.Add(time.Minute), now) || s.has("a", now) || !s.has("b", now) || !s.has("d", now) || s.len() != 3 {
		t.Errorf("a full set drops its oldest entry: has a %v b %v d %v, len %d", s.has("a", now), s.has("b", now), s.has("d", now), s.len())
	}
	// Entries end with their lifetime and are forgotten.
	later := now.Add(time.Minute)
	if s.has("b", later) {
		t.Error("an ended entry still refuses")
	}
	s.add("e", later.Add(time.Minute), later)
	if s.len() != 1 {
		t.Errorf("len %d after expiry, want 1", s.len())
	}
	// Signing one session out again neither extends nor duplicates it.
	for range 1000 {
		s.add("e", later.Add(time.Hour), later)
	}
	if len(s.queue) != 1 || s.has("e", later.Add(time.Minute)) {
		t.Errorf("repeated sign-outs: queue %d, entry extended %v", len(s.queue), s.has("e", later.Add(time.Minute)))
	}
	// Many sign-outs over time keep the queue's array small.
	big := newSignedOut(100)
	for i := range 100000 {
		at := now.Add(time.Duration(i) * time.Second)
		big.add(fmt.Sprint(i), at.Add(10*time.Second), at)
	}
	if big.len() > 100 || cap(big.queue) > 1000 {
		t.Errorf("after 100000 sign-outs: %d entries, queue capacity %d", big.len(), cap(big.queue))
	}
}

func requestWith(cookies []*http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", "/ui/", nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	return r
}

// sessionID opens the session cookie and returns its ID.
func (f *loginFixture) sessionID(cookies []*http.Cookie) string {
	f.t.Helper()
	sd, err := f.l.readSession(requestWith(cookies))
	if err != nil || sd.ID == "" {
		f.t.Fatalf("session cookie: %v, id %q", err, sd.ID)
	}
	return sd.ID
}

// TestUserinfo checks that userinfo shows who the caller is, never a token.
func TestUserinfo(t *testing.T) {
	f := newLoginFixture(t)
	f.idp.refreshToken = "refresh-token-value"
	cookies := f.login()
	w := f.serve("GET", PathUserinfo, cookies)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"subject":"alice"`) || !strings.Contains(w.Body.String(), `"team-a"`) {
		t.Fatalf("userinfo: %d %s", w.Code, w.Body)
	}
	for _, secret := range []string{"refresh-token-value", "opaque-access-token", "eyJ", cookies[0].Value[:16], "at_hash", "nonce"} {
		if strings.Contains(w.Body.String(), secret) {
			t.Errorf("userinfo shows %q: %s", secret, w.Body)
		}
	}
	// No session: a browser goes to login, an API client gets 401 JSON.
	w = f.serve("GET", PathUserinfo, nil, "Sec-Fetch-Mode", "navigate")
	if w.Code != http.StatusFound || !strings.HasPrefix(w.Header().Get("Location"), PathStart+"?rd=") {
		t.Errorf("browser without session: %d %q", w.Code, w.Header().Get("Location"))
	}
	w = f.serve("GET", PathUserinfo, nil, "Accept", "application/json")
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != "Bearer" || !strings.Contains(w.Body.String(), `"errorType":"unauthorized"`) {
		t.Errorf("API without session: %d %s", w.Code, w.Body)
	}
	// A bad cookie is cleared.
	w = f.serve("GET", PathUserinfo, []*http.Cookie{{Name: config.DefaultLoginCookieName, Value: "1.bogus"}}, "Accept", "application/json")
	if c := cookieNamed(w, config.DefaultLoginCookieName); w.Code != http.StatusUnauthorized || c == nil || c.MaxAge >= 0 {
		t.Errorf("bad cookie at userinfo: %d %v", w.Code, w.Header()["Set-Cookie"])
	}
}

func TestLoginProviderUnavailable(t *testing.T) {
	f := newLoginFixture(t)
	f.l.p.state.Store(nil)
	w := f.serve("GET", PathStart, nil)
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("start with the provider down: %d", w.Code)
	}
}

func TestNewChainSecrets(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	_ = os.WriteFile(short, []byte("too short"), 0o600)
	secret := filepath.Join(dir, "secret")
	_ = os.WriteFile(secret, []byte("s"), 0o600)
	for _, cfg := range []*config.Login{
		{Issuer: "https://idp.example", ClientID: "c", ClientSecretFile: secret, CookieSecretFile: short, RedirectURL: testCallback},
		{Issuer: "https://idp.example", ClientID: "c", ClientSecretFile: filepath.Join(dir, "missing"), CookieSecretFile: secret, RedirectURL: testCallback},
	} {
		_, _, err := NewChain(canceled(), config.Authn{MTLS: config.MTLS{Subject: "cn", Groups: "ou"}, Login: cfg}, discardLogger(), newTestRegistry())
		if err == nil {
			t.Errorf("NewChain(%+v) succeeded", cfg)
		}
	}
	chain, login, err := NewChain(canceled(), config.Authn{MTLS: config.MTLS{Subject: "cn", Groups: "ou"}}, discardLogger(), newTestRegistry())
	if err != nil || login != nil || len(chain) != 1 {
		t.Errorf("mTLS only: %v %v %v", chain, login, err)
	}
	if _, err := chain.Authenticate(httptest.NewRequest("GET", "/", nil)); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no credentials: %v", err)
	}
}
