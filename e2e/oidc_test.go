//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The OIDC end-to-end test runs a real OpenID provider (oidc-provider, under
// node, scripts/idp/idp.mjs), a gateway configured with authn.oidc and
// authn.login in front of the shared recording proxy and Prometheus, and
// headless Chromium driven by playwright-core (scripts/idp/browser.mjs).
//
// The provider signs with a key the test generates and hands it in
// KEY_FILE, so that the test can also sign tokens that only the gateway's
// checks (audience, expiry) tell apart from genuine ones.

const (
	oidcAudience   = "https://promgate.test"
	oidcSecret     = "e2e-secret-promgate-client" //nolint:gosec // G101: the client secret of the test identity provider this test starts
	oidcBudget     = 20 * time.Second             // until the provider or discovery is up
	rotationBudget = 25 * time.Second             // JWKS cooldown (10 s) plus slack
)

// oidcStack is the provider and the gateway of the OIDC test.
type oidcStack struct {
	dir     string
	idpDir  string
	idpAddr string
	issuer  string
	idp     *process
	key     *rsa.PrivateKey
	kid     string
	gw      *gateway
}

func TestOIDC(t *testing.T) {
	start := time.Now()
	for _, c := range []string{"node", "chromium"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found in PATH: run scripts/install-deps.sh", c)
		}
	}
	o := &oidcStack{dir: filepath.Join(env.tmp, "oidc"), idpDir: filepath.Join(env.root, "scripts", "idp")}
	if _, err := os.Stat(filepath.Join(o.idpDir, "node_modules", "oidc-provider")); err != nil {
		t.Fatal("scripts/idp/node_modules is missing: run scripts/install-deps.sh (it runs npm install there)")
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if o.idpAddr, err = freePort(); err != nil {
		t.Fatal(err)
	}
	o.issuer = "http://" + o.idpAddr

	// The gateway starts before the provider: an unreachable issuer must
	// not stop it, and its tokens get 401 until discovery succeeds.
	o.startGateway(t)
	o.newKey(t)
	t.Run("issuer unavailable at start", func(t *testing.T) {
		res := oidcClient(t, o.gw).do(t, request{path: "/api/v1/query", query: url.Values{"query": {"up"}},
			header: bearer(o.sign(t, o.claims(nil)))})
		res.wantError(t, http.StatusUnauthorized, "unauthorized")
		if !strings.Contains(string(res.body), "unavailable") {
			t.Errorf("%s: want the issuer named unavailable", res)
		}
	})
	o.startIdP(t)
	o.waitIssuerUp(t, oidcBudget)

	t.Run("client credentials confined to the team", func(t *testing.T) {
		for _, tc := range []struct {
			client  string
			allowed []string
			own     string
		}{
			{"scraper-a", []string{nsTeamA, nsTeamAStage}, nsTeamA},
			{"scraper-b", []string{nsTeamB}, nsTeamB},
		} {
			tok := o.clientToken(t, tc.client)
			c := oidcClient(t, o.gw)
			res := c.do(t, request{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: bearer(tok)})
			res.checkSeen(t, vectorNS, tc.allowed, tc.own, nil)
			res.checkForwardedConfined(t, tc.allowed, "/api/v1/query")
			// A query for the other team's namespace is refused or confined.
			res = c.do(t, request{path: "/api/v1/query", query: url.Values{"query": {`up{namespace="kube-system"}`}}, header: bearer(tok)})
			if res.status == http.StatusOK {
				res.checkSeen(t, vectorNS, tc.allowed, "", nil)
			} else {
				res.wantError(t, http.StatusForbidden, "forbidden")
			}
		}
	})

	t.Run("forged and refused tokens", func(t *testing.T) {
		pubDER, err := x509.MarshalPKIXPublicKey(&o.key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
		now := time.Now()
		for _, tc := range []struct {
			name  string
			token string
		}{
			{"wrong audience", o.sign(t, o.claims(map[string]any{"aud": "grafana"}))},
			{"expired", o.sign(t, o.claims(map[string]any{"exp": now.Add(-time.Minute).Unix(), "iat": now.Add(-time.Hour).Unix()}))},
			{"no exp", o.sign(t, o.claims(map[string]any{"exp": nil}))},
			{"issuer with trailing slash", o.sign(t, o.claims(map[string]any{"iss": o.issuer + "/"}))},
			{"groups a string", o.sign(t, o.claims(map[string]any{"groups": "admins"}))},
			{"alg none", unsignedJWT(map[string]any{"alg": "none", "typ": "JWT", "kid": o.kid}, o.claims(nil))},
			{"HS256 with the public key as secret", signJWT(t, jose.HS256, pubPEM, o.kid, o.claims(nil), nil)},
			{"embedded attacker jwk", func() string {
				k, _ := rsa.GenerateKey(rand.Reader, 2048)
				return signJWT(t, jose.RS256, k, "", o.claims(nil), map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: &k.PublicKey}})
			}()},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := oidcClient(t, o.gw).do(t, request{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: bearer(tc.token)})
				res.wantError(t, http.StatusUnauthorized, "unauthorized")
				if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s: WWW-Authenticate %q", res, res.header.Get("WWW-Authenticate"))
				}
			})
		}
		// The same claims, genuinely signed, pass: the refusals above are the
		// gateway's checks, not a broken key.
		res := oidcClient(t, o.gw).do(t, request{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: bearer(o.sign(t, o.claims(nil)))})
		res.checkSeen(t, vectorNS, []string{nsTeamA, nsTeamAStage}, nsTeamA, nil)
	})

	t.Run("browser login", func(t *testing.T) {
		out := o.browser(t, "alice", "/api/v1/query?query=up")
		if out.Error != "" {
			t.Fatalf("browser: %s\nhops: %v", out.Error, out.Hops)
		}
		if out.Userinfo.Subject != "alice" || out.Userinfo.Method != "session" || !slices.Equal(out.Userinfo.Groups, []string{"team-a"}) {
			t.Errorf("userinfo %+v, want alice (session) in team-a", out.Userinfo)
		}
		var session *browserCookie
		for i, c := range out.Cookies {
			if strings.HasPrefix(c.Name, "__Host-promgate_session") {
				session = &out.Cookies[i]
			}
		}
		if session == nil {
			t.Fatalf("no session cookie in %+v", out.Cookies)
		}
		if !session.Secure || !session.HTTPOnly || session.SameSite != "Lax" || session.Path != "/" {
			t.Errorf("session cookie %+v, want Secure, HttpOnly, SameSite=Lax, Path=/", *session)
		}
		res := &result{req: request{path: "/api/v1/query?query=up (browser)"}, status: out.Query.Status, body: []byte(out.Query.Body), header: http.Header{}}
		res.checkSeen(t, vectorNS, []string{nsTeamA, nsTeamAStage}, nsTeamA, nil)
		// The Sign out button posts to the gateway, which sends the browser
		// on to the provider's RP-initiated logout.
		_, idpPort, _ := strings.Cut(o.idpAddr, ":")
		if out.SignOut.Status != http.StatusOK {
			t.Errorf("sign_out: status %d, want 200 and a page that moves on to the provider", out.SignOut.Status)
		}
		if want := "http: " + idpPort + " /session/end"; out.SignOutLanding != want || out.ProviderSignOut != "Sign-out Success" {
			t.Errorf("after sign_out the browser is on %q (%q), want the provider's logout at %q, confirmed", out.SignOutLanding, out.ProviderSignOut, want)
		}
		if slices.ContainsFunc(out.CookiesAfterSignOut, func(n string) bool { return strings.HasPrefix(n, "__Host-promgate_session") }) {
			t.Errorf("cookies after sign-out: %v", out.CookiesAfterSignOut)
		}
		if out.AfterSignOut.Status != http.StatusUnauthorized {
			t.Errorf("query after sign-out: status %d %s, want 401", out.AfterSignOut.Status, out.AfterSignOut.Body)
		}
		if out.UI.Status != http.StatusOK || !strings.Contains(out.UI.Body, "alice") || !strings.Contains(out.UI.Body, nsTeamA) || strings.Contains(out.UI.Body, nsTeamB) {
			t.Errorf("/ui/ through the session: status %d, want alice's page confined to team-a", out.UI.Status)
		}
		if n := out.HopsBeforeUI; n+2 > len(out.Hops) || !strings.HasPrefix(out.Hops[n], "302 ") || !strings.HasSuffix(out.Hops[n], " /ui/") || !strings.HasSuffix(out.Hops[n+1], " /oauth2/start") {
			t.Errorf("/ui/ without a session: hops %v, want a 302 from /ui/ to /oauth2/start", out.Hops[min(out.HopsBeforeUI, len(out.Hops)):])
		}
	})

	t.Run("a session is accepted by the other replicas", func(t *testing.T) {
		o.testSessionAcrossReplicas(t)
	})

	t.Run("sign-out ends a copied session", func(t *testing.T) {
		o.testSignOut(t)
	})

	t.Run("provider restart with a new signing key", func(t *testing.T) {
		oldKey, oldKid := o.key, o.kid
		if err := o.idp.stop(); err != nil {
			t.Logf("provider stop: %v", err)
		}
		o.newKey(t)
		o.startIdP(t)
		tok := o.clientToken(t, "scraper-a")
		if kidOf(tok) != o.kid || o.kid == oldKid {
			t.Fatalf("the restarted provider signs with kid %q, want the new %q", kidOf(tok), o.kid)
		}
		deadline := time.Now().Add(rotationBudget)
		var res *result
		for {
			res = oidcClient(t, o.gw).do(t, request{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: bearer(tok)})
			if res.status == http.StatusOK || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		res.checkSeen(t, vectorNS, []string{nsTeamA, nsTeamAStage}, nsTeamA, nil)
		if o.gw.proc.exited() {
			t.Error("the gateway exited")
		}
		// A new token under the old, withdrawn key is refused.
		saved := o.key
		o.key, o.kid = oldKey, oldKid
		old := o.sign(t, o.claims(map[string]any{"jti": "after-rotation"}))
		o.key, o.kid = saved, kidOf(tok)
		oidcClient(t, o.gw).do(t, request{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: bearer(old)}).
			wantError(t, http.StatusUnauthorized, "unauthorized")
	})

	t.Run("audit and logs", func(t *testing.T) {
		if err := o.gw.proc.stop(); err != nil {
			t.Errorf("gateway stop: %v", err)
		}
		b, err := os.ReadFile(o.gw.audit)
		if err != nil {
			t.Fatal(err)
		}
		methods := map[string]int{}
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var r auditRecord
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("audit line %q: %v", line, err)
			}
			if r.Identity != nil {
				methods[r.Identity.Method]++
			}
		}
		if methods["oidc"] == 0 || methods["session"] == 0 {
			t.Errorf("audit identities by method %v, want oidc and session records", methods)
		}
		logs, _ := os.ReadFile(o.gw.proc.stderr)
		for name, content := range map[string][]byte{"audit": b, "gateway log": logs} {
			for _, needle := range []string{"eyJ", "Bearer ey", oidcSecret, "cookie secret", "__Host-promgate_session="} {
				if i := bytes.Index(content, []byte(needle)); i >= 0 {
					t.Errorf("%s contains %q: ...%s...", name, needle, content[max(0, i-80):min(len(content), i+80)])
				}
			}
		}
	})
	t.Logf("OIDC e2e took %v", time.Since(start).Round(time.Millisecond))
}

// oidcGatewayConfig is the OIDC gateway: certificates optional, bearer
// tokens of the provider and its browser login.
const oidcGatewayConfig = `listen: %[1]s
internal_listen: %[2]s
tls:
  cert_file: %[3]s/server.crt
  key_file: %[3]s/server.key
  client_ca_file: %[3]s/ca.crt
  client_auth_type: VerifyClientCertIfGiven
upstream:
  url: %[4]s
authn:
  oidc:
    - issuer: %[5]s
      audiences: [%[6]s]
      required_scopes: [metrics:read]
  login:
    issuer: %[5]s
    client_id: promgate
    client_secret_file: client-secret
    redirect_url: https://%[1]s/oauth2/callback
    cookie_secret_file: cookie-secret
authz:
  policies: %[7]s
audit:
  path: audit.log
limits:
  requests_per_second: 1000
  burst: 1000
`

func (o *oidcStack) startGateway(t *testing.T) {
	t.Helper()
	g := &gateway{name: "oidc", authType: "VerifyClientCertIfGiven", upstream: env.rec.url}
	var err error
	if g.addr, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if g.internal, err = freePort(); err != nil {
		t.Fatal(err)
	}
	g.dir = filepath.Join(o.dir, "gw")
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g.config = filepath.Join(g.dir, "promgate.yml")
	g.audit = filepath.Join(g.dir, "audit.log")
	cfg := fmt.Sprintf(oidcGatewayConfig, g.addr, g.internal, env.pki, g.upstream, o.issuer, oidcAudience, filepath.Join(env.root, "policies"))
	cookieSecret := make([]byte, 48)
	_, _ = rand.Read(cookieSecret)
	for name, content := range map[string]string{
		"promgate.yml":  cfg,
		"client-secret": oidcSecret + "\n",
		"cookie-secret": base64.StdEncoding.EncodeToString(cookieSecret) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(g.dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.startGateway(g); err != nil {
		t.Fatal(err)
	}
	if err := env.waitGateway(g); err != nil {
		t.Fatal(err)
	}
	o.gw = g
	t.Cleanup(func() {
		if !g.proc.exited() {
			_ = g.proc.stop()
		}
	})
}

// newKey makes the provider's next signing key and writes it for KEY_FILE.
func (o *oidcStack) newKey(t *testing.T) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	o.key, o.kid = k, fmt.Sprintf("e2e-%x", b)
	jwk, err := jose.JSONWebKey{Key: k, KeyID: o.kid, Algorithm: "RS256", Use: "sig"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.dir, "idp-key.json"), jwk, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startIdP starts the provider with the current key and waits for it.
func (o *oidcStack) startIdP(t *testing.T) {
	t.Helper()
	_, port, _ := strings.Cut(o.idpAddr, ":")
	p, err := env.start(fmt.Sprintf("idp-%d", time.Now().UnixNano()), o.idpDir, "env",
		"PORT="+port, "AUDIENCE="+oidcAudience, "CLIENT_SECRET="+oidcSecret,
		"REDIRECT_URI=https://"+o.gw.addr+"/oauth2/callback", "KEY_FILE="+filepath.Join(o.dir, "idp-key.json"),
		"node", "idp.mjs")
	if err != nil {
		t.Fatal(err)
	}
	o.idp = p
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.stop()
		}
	})
	deadline := time.Now().Add(oidcBudget)
	for {
		if p.exited() {
			b, _ := os.ReadFile(p.stderr)
			t.Fatalf("the provider exited: %v\n%s", p.err, b)
		}
		resp, err := http.Get(o.issuer + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the provider is not up on %s after %v", o.idpAddr, oidcBudget)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitIssuerUp waits for promgate_oidc_issuer_up 1 on the internal listener.
func (o *oidcStack) waitIssuerUp(t *testing.T, budget time.Duration) {
	t.Helper()
	want := fmt.Sprintf("promgate_oidc_issuer_up{issuer=%q} 1", o.issuer)
	deadline := time.Now().Add(budget)
	for {
		resp, err := http.Get("http://" + o.gw.internal + "/metrics")
		if err == nil {
			b, _ := readAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(b, []byte(want)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q on the internal /metrics after %v", want, budget)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// clientToken gets an access token with the client-credentials grant.
func (o *oidcStack) clientToken(t *testing.T, client string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, o.issuer+"/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"metrics:read"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, client+"-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("client credentials for %s: status %d, error %q (%v)", client, resp.StatusCode, body.Error, err)
	}
	return body.AccessToken
}

// claims returns access-token claims like the provider's for scraper-a,
// with edits applied (a nil value deletes the claim).
func (o *oidcStack) claims(edit map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": o.issuer, "sub": "scraper-a", "client_id": "scraper-a", "aud": oidcAudience,
		"groups": []string{"team-a"}, "scope": "metrics:read", "jti": fmt.Sprint(now.UnixNano()),
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
	for k, v := range edit {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign signs claims with the provider's current key, as the provider would.
func (o *oidcStack) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	return signJWT(t, jose.RS256, o.key, o.kid, claims, map[jose.HeaderKey]any{"typ": "at+jwt"})
}

func signJWT(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any, hdr map[jose.HeaderKey]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
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

func unsignedJWT(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func kidOf(tok string) string {
	h, _, _ := strings.Cut(tok, ".")
	b, _ := base64.RawURLEncoding.DecodeString(h)
	var v struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &v)
	return v.Kid
}

func bearer(tok string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + tok}}
}

// oidcClient is a client of gw without a client certificate.
func oidcClient(t *testing.T, gw *gateway) *client { return newClient(t, gw, env.pki, "") }

// browserOutput is what scripts/idp/browser.mjs prints.
type browserOutput struct {
	Hops     []string `json:"hops"`
	Error    string   `json:"error"`
	Userinfo struct {
		Method  string   `json:"method"`
		Subject string   `json:"subject"`
		Groups  []string `json:"groups"`
	} `json:"userinfo"`
	Cookies []browserCookie `json:"cookies"`
	Query   browserResponse `json:"query"`
	SignOut struct {
		Status int `json:"status"`
	} `json:"signOut"`
	SignOutLanding      string          `json:"signOutLanding"`
	ProviderSignOut     string          `json:"providerSignOut"`
	CookiesAfterSignOut []string        `json:"cookiesAfterSignOut"`
	AfterSignOut        browserResponse `json:"afterSignOut"`
	UI                  browserResponse `json:"ui"`
	UIAfterSignOutURL   string          `json:"uiAfterSignOutURL"`
	HopsBeforeUI        int             `json:"hopsBeforeUI"`
}

type browserCookie struct {
	Name     string `json:"name"`
	Secure   bool   `json:"secure"`
	HTTPOnly bool   `json:"httpOnly"`
	SameSite string `json:"sameSite"`
	Path     string `json:"path"`
}

type browserResponse struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// browser runs the login in headless Chromium with a fresh profile.
func (o *oidcStack) browser(t *testing.T, user, queryPath string) *browserOutput {
	t.Helper()
	profile, err := os.MkdirTemp(o.dir, "chromium-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "browser.mjs")
	cmd.Dir = o.idpDir
	cmd.Env = append(os.Environ(), "GATEWAY=https://"+o.gw.addr, "LOGIN_USER="+user, "QUERY_PATH="+queryPath, "USER_DATA_DIR="+profile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node browser.mjs: %v\n%s\n%s", err, stdout, lastLines(stderr.String(), 30))
	}
	var out browserOutput
	line := bytes.TrimSpace(stdout)
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal(line, &out); err != nil {
		t.Fatalf("browser output %q: %v", stdout, err)
	}
	return &out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// testSignOut logs in with the code flow (no browser), keeps a copy of the
// session cookie, signs out with a same-origin POST, and replays the copy:
// the gateway that saw the sign-out refuses it (401 for the API, a redirect
// to the login for a page), and the provider saw the refresh token revoked.
func (o *oidcStack) testSignOut(t *testing.T) {
	var disc struct {
		Revocation string `json:"revocation_endpoint"`
		EndSession string `json:"end_session_endpoint"`
	}
	resp, err := http.Get(o.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if err != nil || disc.Revocation == "" || disc.EndSession == "" {
		t.Fatalf("the provider's discovery lists revocation_endpoint %q and end_session_endpoint %q (%v); the test needs both", disc.Revocation, disc.EndSession, err)
	}

	copied := o.codeLogin(t, "alice")
	c := oidcClient(t, o.gw)
	withCookie := func(extra ...string) map[string][]string {
		h := map[string][]string{"Cookie": {cookieHeader(copied)}}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = []string{extra[i+1]}
		}
		return h
	}
	query := request{path: "/api/v1/query", query: url.Values{"query": {"up"}}, header: withCookie()}
	c.do(t, query).checkSeen(t, vectorNS, []string{nsTeamA, nsTeamAStage}, nsTeamA, nil)

	// Sign-out CSRF: a GET (a link, an image) and a cross-site POST are
	// refused and leave the session working.
	for _, tc := range []struct {
		req    request
		status int
	}{
		{request{path: authnPathSignOut, header: withCookie()}, http.StatusMethodNotAllowed},
		{request{method: http.MethodPost, path: authnPathSignOut, header: withCookie("Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")}, http.StatusForbidden},
		{request{method: http.MethodPost, path: authnPathSignOut, header: withCookie("Origin", "https://evil.example")}, http.StatusForbidden},
		{request{method: http.MethodPost, path: authnPathSignOut, header: withCookie()}, http.StatusForbidden},
	} {
		res := c.do(t, tc.req)
		if res.status != tc.status || res.header.Get("Location") != "" || len(res.header.Values("Set-Cookie")) != 0 {
			t.Errorf("%s: status %d, Location %q, Set-Cookie %d; want %d and nothing else", tc.req, res.status, res.header.Get("Location"), len(res.header.Values("Set-Cookie")), tc.status)
		}
	}
	c.do(t, query).checkSeen(t, vectorNS, []string{nsTeamA, nsTeamAStage}, nsTeamA, nil)

	// Sign out from a page of the gateway.
	idpLog := func() string {
		b, _ := os.ReadFile(o.idp.stderr)
		return string(b)
	}
	revokedBefore := strings.Count(idpLog(), `"event":"grant.revoked","route":"revocation"`)
	res := c.do(t, request{method: http.MethodPost, path: authnPathSignOut,
		header: withCookie("Sec-Fetch-Site", "same-origin", "Origin", "https://"+o.gw.addr)})
	if res.status != http.StatusOK {
		t.Fatalf("sign-out: status %d %s", res.status, res.body)
	}
	cleared := false
	for _, sc := range res.header.Values("Set-Cookie") {
		cleared = cleared || (strings.HasPrefix(sc, "__Host-promgate_session=;") && strings.Contains(sc, "Max-Age=0"))
	}
	if !cleared {
		t.Errorf("sign-out did not clear the session cookie: %q", res.header.Values("Set-Cookie"))
	}
	// The page moves the browser on to the provider's logout.
	_, rest, _ := strings.Cut(string(res.body), `<meta http-equiv="refresh" content="0;url=`)
	target, _, _ := strings.Cut(rest, `"`)
	loc, err := url.Parse(html.UnescapeString(target))
	if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != disc.EndSession || loc.Query().Get("client_id") != "promgate" || loc.Query().Get("id_token_hint") == "" {
		t.Errorf("sign-out sends the browser to %s %s, want the end_session_endpoint %s with client_id and id_token_hint", loc.Host, loc.Path, disc.EndSession)
	} else {
		// The provider accepts the hint: its logout page, not an error.
		end, err := http.Get(loc.String())
		if err != nil {
			t.Fatal(err)
		}
		end.Body.Close()
		if end.StatusCode != http.StatusOK {
			t.Errorf("the provider's end_session_endpoint answered %d to the gateway's redirect", end.StatusCode)
		}
	}
	// The provider revoked the refresh token (and with it the grant)
	// before the gateway answered.
	if n := strings.Count(idpLog(), `"event":"grant.revoked","route":"revocation"`); n != revokedBefore+1 {
		t.Errorf("the provider logged %d revocations during sign-out, want 1; its output:\n%s", n-revokedBefore, lastLines(idpLog(), 20))
	}

	// The copy kept past sign-out no longer works.
	res = c.do(t, query)
	res.wantError(t, http.StatusUnauthorized, "unauthorized")
	if !strings.Contains(string(res.body), "signed out") {
		t.Errorf("%s: want the session named signed out", res)
	}
	res = c.do(t, request{path: authnPathUserinfo, header: withCookie("Accept", "application/json")})
	if res.status != http.StatusUnauthorized {
		t.Errorf("userinfo with the copied cookie: status %d %s, want 401", res.status, res.body)
	}
	res = c.do(t, request{path: "/ui/", header: withCookie("Accept", "text/html", "Sec-Fetch-Mode", "navigate")})
	if res.status != http.StatusFound || !strings.HasPrefix(res.header.Get("Location"), "/oauth2/start?") {
		t.Errorf("/ui/ with the copied cookie: status %d to %q, want a redirect to the login", res.status, res.header.Get("Location"))
	}
	// /oauth2/start does not renew it either: it starts a new login.
	res = c.do(t, request{path: "/oauth2/start", query: url.Values{"rd": {"/ui/"}}, header: withCookie()})
	if res.status != http.StatusFound || !strings.HasPrefix(res.header.Get("Location"), o.issuer+"/auth?") {
		t.Errorf("/oauth2/start with the copied cookie: status %d to %q, want a new login at the provider", res.status, res.header.Get("Location"))
	}
}

// Gateway paths of the sign-out test.
const (
	authnPathSignOut  = "/oauth2/sign_out"
	authnPathUserinfo = "/oauth2/userinfo"
)

// codeLogin logs user in through the gateway with the authorization code
// flow, as a browser without JavaScript would (the provider's development
// login form), and returns the gateway's session cookies.
func (o *oidcStack) codeLogin(t *testing.T, user string) []*http.Cookie {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{
		Jar:       jar,
		Timeout:   requestBudget,
		Transport: &http.Transport{TLSClientConfig: clientTLS(t, env.pki, "", "")},
	}
	defer hc.CloseIdleConnections()
	gw := "https://" + o.gw.addr
	resp, err := hc.Get(gw + "/oauth2/start?rd=" + url.QueryEscape(authnPathUserinfo))
	for range 3 {
		if err != nil {
			t.Fatal(err)
		}
		body, _ := readAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(resp.Request.URL.Path, "/interaction/") {
			if resp.Request.URL.String() != gw+authnPathUserinfo || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"subject":"`+user+`"`) {
				t.Fatalf("login ended at %s with %d %s", resp.Request.URL.Path, resp.StatusCode, body)
			}
			var out []*http.Cookie
			u, _ := url.Parse(gw)
			for _, c := range jar.Cookies(u) {
				if strings.HasPrefix(c.Name, "__Host-promgate_session") {
					out = append(out, c)
				}
			}
			if len(out) == 0 {
				t.Fatal("no session cookie after login")
			}
			return out
		}
		// The provider's development pages: a login form, then perhaps a
		// consent form.
		form := url.Values{"prompt": {"consent"}}
		if strings.Contains(string(body), `name="prompt" value="login"`) {
			form = url.Values{"prompt": {"login"}, "login": {user}, "password": {"any password"}}
		}
		resp, err = hc.PostForm(resp.Request.URL.String(), form)
	}
	t.Fatal("login did not finish after three provider pages")
	return nil
}

func cookieHeader(cs []*http.Cookie) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}
