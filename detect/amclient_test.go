package detect

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tlsutil"
)

// TestAMClient checks that the evaluator's Alertmanager client verifies the
// server with the configured CA, presents its client certificate and sends
// the token read from its file at each request.
func TestAMClient(t *testing.T) {
	ca, err := tlsutil.NewDevCA("am test CA")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.IssueKeyPair(tlsutil.CertSpec{CommonName: "am", IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		t.Fatal(err)
	}
	var gotCN, gotAuth string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			gotCN = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		gotAuth = r.Header.Get("Authorization")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	certPEM, keyPEM, err := ca.Issue(tlsutil.CertSpec{CommonName: "promgate-detectors", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"ca.crt": ca.CertPEM, "c.crt": certPEM, "c.key": keyPEM, "token": []byte("t0k3n\n")}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Detectors{
		AlertmanagerURL:             srv.URL,
		AlertmanagerTLS:             config.UpstreamTLS{CAFile: filepath.Join(dir, "ca.crt"), CertFile: filepath.Join(dir, "c.crt"), KeyFile: filepath.Join(dir, "c.key")},
		AlertmanagerBearerTokenFile: filepath.Join(dir, "token"),
	}
	c, err := amClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotCN != "promgate-detectors" || gotAuth != "Bearer t0k3n" {
		t.Errorf("client certificate %q, Authorization %q", gotCN, gotAuth)
	}
	// A rotated token is used at once.
	if err := os.WriteFile(cfg.AlertmanagerBearerTokenFile, []byte("rotated"), 0o600); err != nil {
		t.Fatal(err)
	}
	if resp, err = c.Get(srv.URL); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotAuth != "Bearer rotated" {
		t.Errorf("after rotation Authorization = %q", gotAuth)
	}
	// Without the CA the server is not trusted.
	cfg.AlertmanagerTLS.CAFile = ""
	if c, err = amClient(cfg); err != nil {
		t.Fatal(err)
	}
	if resp, err := c.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Error("the Alertmanager was trusted without its CA")
	}
	cfg.AlertmanagerBearerTokenFile = filepath.Join(dir, "missing")
	if _, err := amClient(cfg); err == nil {
		t.Error("a missing token file was accepted")
	}
}
