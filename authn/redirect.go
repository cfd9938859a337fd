package authn

import (
	"net/url"
	"strings"
)

// maxRedirectLen bounds a post-login or post-sign-out redirect target.
const maxRedirectLen = 2048

// SafeRedirect reports whether rd may be used as the target of a redirect
// after login or sign-out. Only a path on the gateway itself is accepted:
//
//	/ui/?x=1               accepted
//	//evil.com             refused: protocol-relative URL of another host
//	/\evil.com             refused: browsers read \ as /
//	/%09/evil.com          refused: browsers drop tabs and newlines
//	/%2f%2fevil.com        refused: decodes to //evil.com
//	https://evil.example/  refused: absolute URL
//	javascript:alert(1)    refused: not a path
//
// These are the open redirects of oauth2-proxy CVE-2020-5233,
// CVE-2020-11053 and CVE-2021-21291: a login link on the gateway's own host
// that lands the user, freshly signed in, on an attacker's page. The check
// runs on the raw value and on its percent-decoded form.
func SafeRedirect(rd string) bool {
	if rd == "" || len(rd) > maxRedirectLen {
		return false
	}
	if !safePath(rd) {
		return false
	}
	dec, err := url.PathUnescape(rd)
	if err != nil || !safePath(dec) {
		return false
	}
	u, err := url.Parse(rd)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(u.Path, "//")
}

// safePath checks one form of the target: it starts with a single slash and
// holds no backslash and no control or space characters.
func safePath(s string) bool {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}
