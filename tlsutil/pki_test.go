package tlsutil_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tlsutil"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s: want exactly one CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWriteDevPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	paths, err := tlsutil.WriteDevPKI(dir, tlsutil.DevOptions{
		Clients: []tlsutil.ClientSpec{
			{CommonName: "alice", OUs: []string{"team-a", "oncall"}, Emails: []string{"alice@example.com"}},
			{CommonName: "Grafana Agent #1", OUs: []string{"team-b"}, URIs: []string{"spiffe://example.org/grafana"}, DNSNames: []string{"grafana.example"}},
		},
		Validity: 30 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range []string{"ca.key", "ca.crt", "server.crt", "server.key",
		"client-alice.crt", "client-alice.key", "client-grafana-agent--1.crt", "client-grafana-agent--1.key"} {
		want = append(want, filepath.Join(dir, n))
	}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Fatalf("WriteDevPKI paths (-want +got):\n%s", diff)
	}

	t.Run("modes", func(t *testing.T) {
		st, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != 0o700 {
			t.Errorf("%s mode = %v, want 0700", dir, got)
		}
		for _, p := range paths {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			var want fs.FileMode = 0o644
			if strings.HasSuffix(p, ".key") {
				want = 0o600
			}
			if got := st.Mode().Perm(); got != want {
				t.Errorf("%s mode = %v, want %v", p, got, want)
			}
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(paths) {
			t.Errorf("%s holds %d entries, want %d (no temporary files left)", dir, len(entries), len(paths))
		}
	})

	ca := readCert(t, filepath.Join(dir, "ca.crt"))
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	t.Run("CA", func(t *testing.T) {
		if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
			t.Errorf("ca.crt: IsCA %t, basic constraints %t, key usage %v; want a CA with cert-sign", ca.IsCA, ca.BasicConstraintsValid, ca.KeyUsage)
		}
		if d := time.Until(ca.NotAfter); d < 29*24*time.Hour || d > 31*24*time.Hour {
			t.Errorf("ca.crt expires in %v, want about 30 days", d)
		}
	})

	t.Run("server", func(t *testing.T) {
		c := readCert(t, filepath.Join(dir, "server.crt"))
		for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("server.crt for %s: %v", host, err)
			}
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			t.Error("server.crt verifies as a client certificate")
		}
		checkKey(t, filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	})

	t.Run("clients", func(t *testing.T) {
		tests := []struct {
			file, cn string
			ous      []string
			sans     []string
		}{
			{"client-alice", "alice", []string{"team-a", "oncall"}, []string{"alice@example.com"}},
			{"client-grafana-agent--1", "Grafana Agent #1", []string{"team-b"}, []string{"grafana.example", "spiffe://example.org/grafana"}},
		}
		for _, tc := range tests {
			t.Run(tc.file, func(t *testing.T) {
				c := readCert(t, filepath.Join(dir, tc.file+".crt"))
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
					t.Errorf("verify as client: %v", err)
				}
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err == nil {
					t.Error("client certificate verifies as a server certificate")
				}
				if c.Subject.CommonName != tc.cn {
					t.Errorf("CN = %q, want %q", c.Subject.CommonName, tc.cn)
				}
				// The OUs form one DER SET OF, which is stored sorted.
				if diff := cmp.Diff(tc.ous, c.Subject.OrganizationalUnit, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
					t.Errorf("OUs (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tc.sans, tlsutil.SANs(c)); diff != "" {
					t.Errorf("SANs (-want +got):\n%s", diff)
				}
				if c.IsCA {
					t.Error("client certificate is a CA")
				}
				if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
					t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
				}
				checkKey(t, filepath.Join(dir, tc.file+".crt"), filepath.Join(dir, tc.file+".key"))
			})
		}
	})

	t.Run("serves", func(t *testing.T) {
		// The written files work end to end through NewServer.
		s, err := tlsutil.NewServer(config.TLS{
			CertFile:          filepath.Join(dir, "server.crt"),
			KeyFile:           filepath.Join(dir, "server.key"),
			ClientCAFile:      filepath.Join(dir, "ca.crt"),
			ClientAuthType:    config.RequireAndVerifyClientCert,
			MinVersion:        "TLS13",
			ClientAllowedSANs: []string{"alice@example.com"},
		}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client-alice.crt"), filepath.Join(dir, "client-alice.key"))
		if err != nil {
			t.Fatal(err)
		}
		clientCfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}}
		if r := handshake(t, s.TLSConfig(), clientCfg); r.err() != nil {
			t.Fatalf("handshake: %v", r.err())
		}
	})

	t.Run("refuses to overwrite", func(t *testing.T) {
		before, err := os.ReadFile(filepath.Join(dir, "ca.key"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = tlsutil.WriteDevPKI(dir, tlsutil.DevOptions{})
		if err == nil || !strings.Contains(err.Error(), "refusing to overwrite an existing CA") {
			t.Fatalf("WriteDevPKI over an existing CA = %v, want a refusal", err)
		}
		after, err := os.ReadFile(filepath.Join(dir, "ca.key"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Error("ca.key changed")
		}
	})
}

func checkKey(t *testing.T, certFile, keyFile string) {
	t.Helper()
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Errorf("%s and %s: %v", certFile, keyFile, err)
	}
}

func TestWriteDevPKIRefuses(t *testing.T) {
	tests := []struct {
		name     string
		existing string // a file present before the call
		opts     tlsutil.DevOptions
		want     string
	}{
		{name: "existing ca.key", existing: "ca.key", want: "refusing to overwrite an existing CA"},
		{name: "existing ca.crt", existing: "ca.crt", want: "refusing to overwrite an existing CA"},
		{name: "duplicate client file", opts: tlsutil.DevOptions{Clients: []tlsutil.ClientSpec{{CommonName: "A B"}, {CommonName: "a-b"}}}, want: "would both be written to client-a-b.crt"},
		{name: "client without a usable name", opts: tlsutil.DevOptions{Clients: []tlsutil.ClientSpec{{CommonName: ".."}}}, want: "leaves no file name"},
		{name: "bad host", opts: tlsutil.DevOptions{Hosts: []string{"a/b"}}, want: "neither an IP address nor a DNS name"},
		{name: "bad URI", opts: tlsutil.DevOptions{Clients: []tlsutil.ClientSpec{{CommonName: "x", URIs: []string{"not a uri"}}}}, want: "not an absolute URI"},
		{name: "negative validity", opts: tlsutil.DevOptions{Validity: -time.Hour}, want: "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.existing != "" {
				if err := os.WriteFile(filepath.Join(dir, tc.existing), []byte("mine"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := tlsutil.WriteDevPKI(dir, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteDevPKI = %v, want an error containing %q", err, tc.want)
			}
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			var wantNames []string
			if tc.existing != "" {
				wantNames = []string{tc.existing}
			}
			if diff := cmp.Diff(wantNames, names); diff != "" {
				t.Errorf("files after a refusal (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	ca, err := tlsutil.NewDevCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	notBefore := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	notAfter := time.Now().Add(-time.Hour).Truncate(time.Second)
	pair, err := ca.IssueKeyPair(tlsutil.CertSpec{
		CommonName:  "x",
		IPAddresses: []net.IP{net.ParseIP("::1")},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		IsCA:        true,
		RSA:         true,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := pair.Leaf
	if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("IsCA spec did not make a CA certificate")
	}
	if !c.NotBefore.Equal(notBefore) || !c.NotAfter.Equal(notAfter) {
		t.Errorf("validity %v–%v, want %v–%v", c.NotBefore, c.NotAfter, notBefore, notAfter)
	}
	if c.PublicKeyAlgorithm != x509.RSA {
		t.Errorf("key algorithm %v, want RSA", c.PublicKeyAlgorithm)
	}
	if err := c.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("not signed by the CA: %v", err)
	}
	if _, _, err := ca.Issue(tlsutil.CertSpec{NotBefore: notAfter, NotAfter: notBefore}); err == nil {
		t.Error("Issue with NotAfter before NotBefore succeeded")
	}
}
