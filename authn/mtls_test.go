package authn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tlsutil"
)

// testCert builds an unsigned-looking certificate value; Authenticate only
// reads fields of certificates that crypto/tls already verified.
func testCert(cn string, ous []string, uris ...string) *x509.Certificate {
	c := &x509.Certificate{Raw: []byte(cn)}
	c.Subject.CommonName = cn
	c.Subject.OrganizationalUnit = ous
	c.Issuer.CommonName = "test CA"
	c.DNSNames = []string{"svc.example"}
	c.EmailAddresses = []string{"alice@example.com"}
	for _, u := range uris {
		pu, _ := url.Parse(u)
		c.URIs = append(c.URIs, pu)
	}
	return c
}

func TestMTLS(t *testing.T) {
	tests := []struct {
		name      string
		cfg       config.MTLS
		state     *tls.ConnectionState
		want      *Identity
		wantErr   error
		wantRsn   string
		subjectIs string
	}{
		{name: "no TLS", cfg: config.MTLS{Subject: "cn", Groups: "ou"}, wantErr: ErrNoCredentials},
		{name: "no certificate", cfg: config.MTLS{Subject: "cn", Groups: "ou"}, state: &tls.ConnectionState{}, wantErr: ErrNoCredentials},
		{name: "unverified certificate", cfg: config.MTLS{Subject: "cn", Groups: "ou"},
			state: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{testCert("alice", nil)}}, wantRsn: "unverified"},
		{name: "cn and ou", cfg: config.MTLS{Subject: "cn", Groups: "ou"}, state: verified(testCert("alice", []string{"team-a", "ops"})), subjectIs: "alice"},
		{name: "san_dns", cfg: config.MTLS{Subject: "san_dns", Groups: "none"}, state: verified(testCert("alice", []string{"x"})), subjectIs: "svc.example"},
		{name: "san_email", cfg: config.MTLS{Subject: "san_email", Groups: "ou"}, state: verified(testCert("alice", nil)), subjectIs: "alice@example.com"},
		{name: "san_uri", cfg: config.MTLS{Subject: "san_uri", Groups: "ou"}, state: verified(testCert("alice", nil, "https://id.example/alice")), subjectIs: "https://id.example/alice"},
		{name: "spiffe", cfg: config.MTLS{Subject: "spiffe_id", Groups: "ou"}, state: verified(testCert("alice", nil, "spiffe://cluster.local/ns/a/sa/prom")), subjectIs: "spiffe://cluster.local/ns/a/sa/prom"},
		{name: "spiffe with two URIs", cfg: config.MTLS{Subject: "spiffe_id", Groups: "ou"}, state: verified(testCert("alice", nil, "spiffe://a/x", "spiffe://b/y")), wantRsn: "bad_subject"},
		{name: "spiffe missing", cfg: config.MTLS{Subject: "spiffe_id", Groups: "ou"}, state: verified(testCert("alice", nil, "https://x")), wantRsn: "no_subject"},
		{name: "spiffe with a port", cfg: config.MTLS{Subject: "spiffe_id", Groups: "ou"}, state: verified(testCert("alice", nil, "spiffe://cluster.local:8443/ns/a")), wantRsn: "bad_subject"},
		{name: "spiffe with user info", cfg: config.MTLS{Subject: "spiffe_id", Groups: "ou"}, state: verified(testCert("alice", nil, "spiffe://cluster.local@evil.example/ns/a")), wantRsn: "bad_subject"},
		{name: "empty cn", cfg: config.MTLS{Subject: "cn", Groups: "ou"}, state: verified(testCert("", nil)), wantRsn: "no_subject"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewMTLS(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.TLS = tc.state
			id, err := Chain{m}.Authenticate(r)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			case tc.wantRsn != "":
				ae, ok := errors.AsType[*Error](err)
				if !ok || ae.Reason != tc.wantRsn {
					t.Fatalf("err = %v, want reason %q", err, tc.wantRsn)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if id.Subject != tc.subjectIs || id.Method != MethodMTLS {
				t.Errorf("identity %+v, want subject %q", id, tc.subjectIs)
			}
			leaf := tc.state.VerifiedChains[0][0]
			var wantGroups []string
			if tc.cfg.Groups == "ou" && len(leaf.Subject.OrganizationalUnit) > 0 {
				wantGroups = leaf.Subject.OrganizationalUnit
			}
			if diff := cmp.Diff(wantGroups, id.Groups); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
			if id.Certificate == nil || len(id.Certificate.FingerprintSHA256) != 64 {
				t.Errorf("certificate %+v", id.Certificate)
			}
		})
	}
}

func verified(c *x509.Certificate) *tls.ConnectionState {
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
}

func TestNewMTLSRefusesUnknown(t *testing.T) {
	for _, cfg := range []config.MTLS{{Subject: "serial", Groups: "ou"}, {Subject: "cn", Groups: "o"}} {
		if _, err := NewMTLS(cfg); err == nil {
			t.Errorf("NewMTLS(%+v) succeeded", cfg)
		}
	}
}

// TestSPIFFEIDSameAsTLSUtil holds authn's SPIFFE rule to tlsutil's: a URI
// SAN is a SPIFFE ID for both or for neither, with the same text, and every
// loosely formed one below is refused by both, as a subject and in the
// policy's certificate.spiffe_id.
func TestSPIFFEIDSameAsTLSUtil(t *testing.T) {
	refused := [][]string{
		{"spiffe://example.org:443/a"},                       // port
		{"spiffe://u@example.org/a"},                         // user info
		{"spiffe://example.org@evil.example/a"},              // user info posing as the trust domain
		{"spiffe://u:p@example.org/a"},                       // user and password
		{"spiffe://example.org/a?x=1"},                       // query
		{"spiffe://example.org/a#x"},                         // fragment
		{"spiffe:///a"},                                      // no trust domain
		{"spiffe:example.org/a"},                             // opaque: no authority
		{"spiffe://example.org/a", "spiffe://example.org/b"}, // two URI SANs
		{"spiffe://example.org/a", "https://example.org/"},   // SPIFFE and another URI
		{"https://example.org/a"},                            // another scheme
	}
	accepted := []string{
		"spiffe://example.org/ns/a/sa/b",
		"spiffe://example.org",
	}
	for _, uris := range refused {
		c := testCert("alice", nil, uris...)
		if got, want := spiffeID(c), tlsutil.SPIFFEID(c); got != "" || want != "" {
			t.Errorf("spiffeID(%q) = %q, tlsutil.SPIFFEID = %q, want both refused", uris, got, want)
		}
		if got := CertificateOf(c).SPIFFEID; got != "" {
			t.Errorf("CertificateOf(%q).SPIFFEID = %q, want empty", uris, got)
		}
		m, err := NewMTLS(config.MTLS{Subject: "spiffe_id", Groups: "none"})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.TLS = verified(c)
		if id, err := m.Authenticate(r); err == nil {
			t.Errorf("subject spiffe_id with %q: identity %q, want a refusal", uris, id.Subject)
		}
	}
	for _, uri := range accepted {
		c := testCert("alice", nil, uri)
		if got, want := spiffeID(c), tlsutil.SPIFFEID(c); got != uri || want != uri {
			t.Errorf("spiffeID(%q) = %q, tlsutil.SPIFFEID = %q, want both %q", uri, got, want, uri)
		}
	}
}

// FuzzSPIFFEID checks that authn and tlsutil give every URI SAN the same
// answer.
func FuzzSPIFFEID(f *testing.F) {
	for _, s := range []string{
		"spiffe://example.org/a", "SPIFFE://example.org/a", "spiffe://example.org:1/a", "spiffe://u@h/a",
		"spiffe://h/a?", "spiffe://h/a#", "spiffe://h/a%2Fb", "spiffe://h//a", "spiffe:h", "spiffe://[::1]/a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		c := &x509.Certificate{URIs: []*url.URL{u}}
		if got, want := spiffeID(c), tlsutil.SPIFFEID(c); got != want {
			t.Errorf("spiffeID(%q) = %q, tlsutil.SPIFFEID = %q", s, got, want)
		}
	})
}
