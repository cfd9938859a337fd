package tlsutil

import (
	"crypto/x509"
	"fmt"
	"net"
	"strings"
)

// SANs returns the subject alternative names of c in a fixed order: DNS
// names, e-mail addresses, IP addresses (in their canonical text form) and
// URIs.
func SANs(c *x509.Certificate) []string {
	var out []string
	out = append(out, c.DNSNames...)
	out = append(out, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

// SPIFFEID returns the certificate's SPIFFE ID: its URI SAN when it has
// exactly one URI SAN and that URI is spiffe://<trust domain>/... . Otherwise
// it returns "". A certificate with several URI SANs is not an X.509-SVID, so
// none of them is believed.
func SPIFFEID(c *x509.Certificate) string {
	if len(c.URIs) != 1 {
		return ""
	}
	u := c.URIs[0]
	if u.Scheme != "spiffe" || u.Host == "" || u.User != nil || u.Port() != "" ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return ""
	}
	return u.String()
}

// sanSet is an exact-match allow-list of SANs.
type sanSet struct {
	names map[string]struct{}
	ips   []net.IP
}

func newSANSet(field string, sans []string) (sanSet, error) {
	var s sanSet
	for i, san := range sans {
		if san == "" || san != strings.TrimSpace(san) {
			return sanSet{}, fmt.Errorf("%s[%d]: empty or padded SAN %q", field, i, san)
		}
		if s.names == nil {
			s.names = map[string]struct{}{}
		}
		s.names[san] = struct{}{}
		if ip := net.ParseIP(san); ip != nil {
			s.ips = append(s.ips, ip)
		}
	}
	return s, nil
}

func (s sanSet) empty() bool { return len(s.names) == 0 }

// allows reports whether one of c's SANs is in the set. DNS names, e-mail
// addresses and URIs match byte for byte; IP addresses match by value, so
// "::1" and "0:0::1" are the same address. The subject CN is never consulted.
func (s sanSet) allows(c *x509.Certificate) bool {
	for _, list := range [][]string{c.DNSNames, c.EmailAddresses} {
		for _, v := range list {
			if _, ok := s.names[v]; ok {
				return true
			}
		}
	}
	for _, u := range c.URIs {
		if _, ok := s.names[u.String()]; ok {
			return true
		}
	}
	for _, ip := range c.IPAddresses {
		for _, allowed := range s.ips {
			if ip.Equal(allowed) {
				return true
			}
		}
	}
	return false
}
