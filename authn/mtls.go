package authn

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/promgate/promgate/config"
)

// MTLS authenticates a caller by its verified client certificate.
//
// The subject comes from one place, chosen in the config:
//
//	cn         the subject's common name
//	san_uri    the first URI SAN
//	san_dns    the first DNS SAN
//	san_email  the first e-mail SAN
//	spiffe_id  the one spiffe:// URI SAN; a certificate with several URI SANs
//	           is refused, as the X509-SVID specification requires, and so is
//	           one with a port, user info, query or fragment (see spiffeID)
//
// Groups are the subject's organizational units (OU), or none.
type MTLS struct {
	subject string
	groups  string
}

var _ Authenticator = (*MTLS)(nil)

// NewMTLS returns an authenticator for cfg.
func NewMTLS(cfg config.MTLS) (*MTLS, error) {
	switch cfg.Subject {
	case "cn", "san_uri", "san_dns", "san_email", "spiffe_id":
	default:
		return nil, fmt.Errorf("authn.mtls.subject: unknown value %q", cfg.Subject)
	}
	switch cfg.Groups {
	case "ou", "none":
	default:
		return nil, fmt.Errorf("authn.mtls.groups: unknown value %q", cfg.Groups)
	}
	return &MTLS{subject: cfg.Subject, groups: cfg.Groups}, nil
}

// Method returns MethodMTLS.
func (m *MTLS) Method() Method { return MethodMTLS }

// Authenticate maps the connection's verified client certificate to an
// identity.
func (m *MTLS) Authenticate(r *http.Request) (*Identity, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, ErrNoCredentials
	}
	if len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		// crypto/tls verifies every certificate it accepts with the
		// configured client auth types; an unverified one is a bug or a
		// misconfiguration, and is never trusted.
		return nil, &Error{Method: MethodMTLS, Reason: "unverified", Msg: "client certificate was not verified"}
	}
	leaf := r.TLS.VerifiedChains[0][0]
	cert := CertificateOf(leaf)
	subject, err := m.subjectOf(leaf, cert)
	if err != nil {
		return nil, err
	}
	id := &Identity{
		Method:      MethodMTLS,
		Subject:     subject,
		Issuer:      leaf.Issuer.String(),
		Certificate: cert,
	}
	if m.groups == "ou" && len(leaf.Subject.OrganizationalUnit) > 0 {
		id.Groups = append([]string(nil), leaf.Subject.OrganizationalUnit...)
	}
	return id, nil
}

func (m *MTLS) subjectOf(leaf *x509.Certificate, cert *Certificate) (string, error) {
	var s string
	switch m.subject {
	case "cn":
		s = leaf.Subject.CommonName
	case "san_uri":
		if len(leaf.URIs) > 0 {
			s = leaf.URIs[0].String()
		}
	case "san_dns":
		if len(leaf.DNSNames) > 0 {
			s = leaf.DNSNames[0]
		}
	case "san_email":
		if len(leaf.EmailAddresses) > 0 {
			s = leaf.EmailAddresses[0]
		}
	case "spiffe_id":
		if len(leaf.URIs) > 1 {
			return "", &Error{Method: MethodMTLS, Reason: "bad_subject", Msg: "client certificate has more than one URI SAN; a SPIFFE ID must be the only one"}
		}
		if len(leaf.URIs) == 1 && cert.SPIFFEID == "" && strings.EqualFold(leaf.URIs[0].Scheme, "spiffe") {
			return "", &Error{Method: MethodMTLS, Reason: "bad_subject", Msg: "client certificate's SPIFFE ID is not of the form spiffe://trust-domain/path (no port, user, query or fragment)"}
		}
		s = cert.SPIFFEID
	}
	if s == "" {
		return "", &Error{Method: MethodMTLS, Reason: "no_subject", Msg: "client certificate has no " + m.subject + " to name the caller"}
	}
	return s, nil
}

// CertificateOf describes a verified certificate for the policy input.
func CertificateOf(c *x509.Certificate) *Certificate {
	sum := sha256.Sum256(c.Raw)
	out := &Certificate{Subject: c.Subject.String(), FingerprintSHA256: hex.EncodeToString(sum[:])}
	out.SANs = append(out.SANs, c.DNSNames...)
	out.SANs = append(out.SANs, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		out.SANs = append(out.SANs, ip.String())
	}
	for _, u := range c.URIs {
		out.SANs = append(out.SANs, u.String())
	}
	out.SPIFFEID = spiffeID(c)
	return out
}

// spiffeID returns c's SPIFFE ID, or "". It is the rule of tlsutil.SPIFFEID,
// which authn may not import (authn depends on config only), and a test
// holds the two to the same answers:
//
//	spiffe://example.org/ns/a/sa/b      accepted: the only URI SAN
//	two URI SANs                        refused: not an X.509-SVID
//	spiffe:///a                         refused: no trust domain
//	spiffe://example.org:443/a          refused: port
//	spiffe://u@example.org/a            refused: user info
//	spiffe://example.org/a?x=1          refused: query
//	spiffe://example.org/a#x            refused: fragment
//	spiffe:example.org/a                refused: opaque, no authority
//
// A looser reading misleads policies that match on the ID's text:
// spiffe://example.org@evil.example/x starts with spiffe://example.org but
// names the trust domain evil.example, and a port or query gives one
// workload several spellings.
func spiffeID(c *x509.Certificate) string {
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
