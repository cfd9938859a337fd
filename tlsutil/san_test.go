package tlsutil_test

import (
	"crypto/x509"
	"net"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/promgate/promgate/tlsutil"
)

func mustURLs(t *testing.T, ss ...string) []*url.URL {
	t.Helper()
	var out []*url.URL
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func TestSANs(t *testing.T) {
	c := &x509.Certificate{
		DNSNames:       []string{"a.example"},
		EmailAddresses: []string{"a@example.com"},
		IPAddresses:    []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("::1")},
		URIs:           mustURLs(t, "spiffe://example.org/a"),
	}
	want := []string{"a.example", "a@example.com", "10.0.0.1", "::1", "spiffe://example.org/a"}
	if diff := cmp.Diff(want, tlsutil.SANs(c)); diff != "" {
		t.Errorf("SANs (-want +got):\n%s", diff)
	}
	if got := tlsutil.SANs(&x509.Certificate{}); got != nil {
		t.Errorf("SANs of a certificate without SANs = %#v, want nil", got)
	}
}

func TestSPIFFEID(t *testing.T) {
	tests := []struct {
		name string
		uris []string
		want string
	}{
		{"one SPIFFE ID", []string{"spiffe://example.org/ns/a/sa/b"}, "spiffe://example.org/ns/a/sa/b"},
		{"none", nil, ""},
		{"two URIs", []string{"spiffe://example.org/a", "spiffe://example.org/b"}, ""},
		{"SPIFFE and another URI", []string{"spiffe://example.org/a", "https://example.org/"}, ""},
		{"not spiffe", []string{"https://example.org/a"}, ""},
		{"no trust domain", []string{"spiffe:///a"}, ""},
		{"port", []string{"spiffe://example.org:443/a"}, ""},
		{"user info", []string{"spiffe://u@example.org/a"}, ""},
		{"query", []string{"spiffe://example.org/a?x=1"}, ""},
		{"fragment", []string{"spiffe://example.org/a#x"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &x509.Certificate{URIs: mustURLs(t, tc.uris...)}
			if got := tlsutil.SPIFFEID(c); got != tc.want {
				t.Errorf("SPIFFEID(%q) = %q, want %q", tc.uris, got, tc.want)
			}
		})
	}
}
