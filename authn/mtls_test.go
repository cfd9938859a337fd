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
