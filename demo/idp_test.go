package demo

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// TestDevIdP runs the code flow against the development provider with the
// same client libraries promgate's login uses (x/oauth2 with PKCE, go-oidc
// for the ID token), and checks its refusals.
func TestDevIdP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	const redirect = "https://gw.example/oauth2/callback"
	p, err := NewDevIdP(issuer, "promgate", "s3cret", redirect, []DevUser{{Name: "alice", Groups: []string{"team-a"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p.Handler())
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "promgate", ClientSecret: "s3cret", RedirectURL: redirect, Endpoint: prov.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "groups"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	login := func(t *testing.T, verifier string) string {
		t.Helper()
		u := conf.AuthCodeURL("st4te", oidc.Nonce("n0nce"), oauth2.S256ChallengeOption(verifier))
		resp, err := http.Get(u) //nolint:gosec // G107: the test provider's own URL
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Fatalf("sign-in page: %d %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
		au, _ := url.Parse(u)
		form := au.Query()
		form.Set("user", "alice")
		resp, err = noFollow.PostForm(issuer+"/authorize", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), redirect+"?") || loc.Query().Get("state") != "st4te" {
			t.Fatalf("sign in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc.Query().Get("code")
	}

	verifier := oauth2.GenerateVerifier()
	code := login(t, verifier)
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := prov.Verifier(&oidc.Config{ClientID: "promgate"}).Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Groups []string `json:"groups"`
		Nonce  string   `json:"nonce"`
	}
	if err := idt.Claims(&claims); err != nil || idt.Subject != "alice" || !slices.Equal(claims.Groups, []string{"team-a"}) || claims.Nonce != "n0nce" {
		t.Errorf("ID token: sub %q, claims %+v (%v)", idt.Subject, claims, err)
	}
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
		t.Error("a code was accepted twice")
	}
	if _, err := conf.Exchange(ctx, login(t, verifier), oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
		t.Error("a wrong PKCE verifier was accepted")
	}
	bad := *conf
	bad.ClientSecret = "wrong"
	if _, err := bad.Exchange(ctx, login(t, verifier), oauth2.VerifierOption(verifier)); err == nil {
		t.Error("a wrong client secret was accepted")
	}
	for name, q := range map[string]url.Values{
		"foreign redirect": {"client_id": {"promgate"}, "redirect_uri": {"https://evil.example/cb"}, "response_type": {"code"}, "scope": {"openid"}, "code_challenge": {"x"}, "code_challenge_method": {"S256"}},
		"no PKCE":          {"client_id": {"promgate"}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"}},
	} {
		resp, err := noFollow.Get(issuer + "/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, resp.StatusCode)
		}
	}
}
