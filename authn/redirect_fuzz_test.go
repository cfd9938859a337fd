package authn

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeRedirect checks that every accepted target stays on the gateway,
// also as a browser reads it: tabs and newlines dropped, backslashes as
// slashes, and after one more percent-decoding.
func FuzzSafeRedirect(f *testing.F) {
	for _, s := range append([]string{"/ui/", "/oauth2/userinfo?x=1", "/a/../b", "/%2e%2e/x"}, openRedirects...) {
		f.Add(s)
	}
	base, _ := url.Parse("https://gw.example/oauth2/callback")
	f.Fuzz(func(t *testing.T, rd string) {
		if !SafeRedirect(rd) {
			return
		}
		forms := []string{rd, strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(rd)}
		if dec, err := url.PathUnescape(rd); err == nil {
			forms = append(forms, dec)
		}
		for _, s := range forms {
			u, err := url.Parse(s)
			if err != nil {
				continue
			}
			if got := base.ResolveReference(u); got.Host != "gw.example" || got.Scheme != "https" {
				t.Fatalf("SafeRedirect(%q) accepted a target that leaves the gateway: %s", rd, got)
			}
		}
	})
}
