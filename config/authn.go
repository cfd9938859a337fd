package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults of the OIDC and login sections, applied by the authenticators when
// a key is left empty.
const (
	DefaultUsernameClaim   = "sub"
	DefaultGroupsClaim     = "groups"
	DefaultLoginCookieName = "__Host-promgate_session"
)

// DefaultLoginScopes are requested at login when login.scopes is empty.
var DefaultLoginScopes = []string{"openid", "email", "profile", "groups"}

// reservedCookieNames are cookies of the gateway itself and of common OpenID
// providers (oidc-provider's _session and _interaction, Keycloak's, Dex's),
// which share the host's cookie jar when they run on the same host name.
var reservedCookieNames = []string{
	"__Host-promgate_csrf", "_session", "_session.sig", "_interaction", "_interaction.sig",
	"_interaction_resume", "_interaction_resume.sig", "KEYCLOAK_SESSION", "KEYCLOAK_IDENTITY",
}

// validateOIDC checks authn.oidc and authn.login.
func (a *Authn) validateOIDC() []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	seen := map[string]bool{}
	for i, o := range a.OIDC {
		p := fmt.Sprintf("authn.oidc[%d]", i)
		if msg := checkIssuer(o.Issuer); msg != "" {
			add(p+".issuer", "%s", msg)
		} else if seen[o.Issuer] {
			add(p+".issuer", "%q is listed twice; list each issuer once with all its audiences", o.Issuer)
		}
		seen[o.Issuer] = true
		if len(o.Audiences) == 0 {
			add(p+".audiences", "required: at least one audience a token must name (aud)")
		}
		for j, aud := range o.Audiences {
			if aud == "" || aud != strings.TrimSpace(aud) {
				add(fmt.Sprintf("%s.audiences[%d]", p, j), "empty or padded audience %q", aud)
			}
		}
		checkClaimName(add, p+".username_claim", o.UsernameClaim)
		checkClaimName(add, p+".groups_claim", o.GroupsClaim)
		for j, s := range o.RequiredScopes {
			if s == "" || strings.ContainsAny(s, " \t\n") {
				add(fmt.Sprintf("%s.required_scopes[%d]", p, j), "%q is not a scope", s)
			}
		}
	}

	l := a.Login
	if l == nil {
		return errs
	}
	if msg := checkIssuer(l.Issuer); msg != "" {
		add("authn.login.issuer", "%s", msg)
	}
	if l.ClientID == "" {
		add("authn.login.client_id", "required: the gateway's client ID at the provider")
	}
	if l.ClientSecretFile == "" {
		add("authn.login.client_secret_file", "required: a file holding the client secret")
	}
	if l.CookieSecretFile == "" {
		add("authn.login.cookie_secret_file", "required: a file holding at least 32 random bytes")
	}
	for j, f := range l.AcceptCookieSecretFiles {
		if f == "" || f == l.CookieSecretFile {
			add(fmt.Sprintf("authn.login.accept_cookie_secret_files[%d]", j), "must name a file other than cookie_secret_file")
		}
	}
	if u, err := url.Parse(l.RedirectURL); l.RedirectURL == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		add("authn.login.redirect_url", "%q is not an https URL such as https://promgate.example/oauth2/callback (the session cookie is Secure)", l.RedirectURL)
	} else if u.Path != "/oauth2/callback" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		add("authn.login.redirect_url", "must end in /oauth2/callback with no query, e.g. https://%s/oauth2/callback", u.Host)
	}
	if len(l.Scopes) > 0 && !slices.Contains(l.Scopes, "openid") {
		add("authn.login.scopes", "must include openid: the login needs an ID token")
	}
	for j, s := range l.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\n") {
			add(fmt.Sprintf("authn.login.scopes[%d]", j), "%q is not a scope", s)
		}
	}
	checkClaimName(add, "authn.login.username_claim", l.UsernameClaim)
	checkClaimName(add, "authn.login.groups_claim", l.GroupsClaim)
	if l.CookieName != "" {
		switch {
		case !strings.HasPrefix(l.CookieName, "__Host-"):
			add("authn.login.cookie_name", "%q must start with __Host- so that the cookie is Secure, host-only and for every path", l.CookieName)
		case !validCookieName(l.CookieName):
			add("authn.login.cookie_name", "%q is not a valid cookie name", l.CookieName)
		case slices.Contains(reservedCookieNames, l.CookieName):
			add("authn.login.cookie_name", "%q collides with a cookie of the gateway or of an OpenID provider", l.CookieName)
		}
	}
	if d := time.Duration(l.SessionLifetime); d != 0 && (d < time.Minute || d > 24*time.Hour) {
		add("authn.login.session_lifetime", "%s is outside 1m to 24h", l.SessionLifetime)
	}
	if u := l.PostLogoutRedirectURL; u != "" {
		if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" {
			add("authn.login.post_logout_redirect_url", "%q is not an https URL registered at the provider", u)
		}
	}
	return errs
}

// checkIssuer returns why s is not an acceptable issuer URL, or "".
func checkIssuer(s string) string {
	if s == "" {
		return "required: the issuer URL, exactly as the provider's discovery document writes it"
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Sprintf("%q is not an absolute URL", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Sprintf("%q must not carry credentials, a query or a fragment", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Sprintf("%q uses http; only https issuers are accepted (http only on a loopback address, for tests)", s)
		}
	default:
		return fmt.Sprintf("%q is not an https URL", s)
	}
	return ""
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkClaimName(add func(string, string, ...any), path, name string) {
	if name != "" && (name != strings.TrimSpace(name) || strings.ContainsAny(name, "\x00\n")) {
		add(path, "%q is not a claim name", name)
	}
}

// validCookieName reports whether name is an RFC 6265 token, which is what
// net/http accepts as a cookie name (the same alphabet as header names).
func validCookieName(name string) bool {
	return headerNameRE.MatchString(name)
}
