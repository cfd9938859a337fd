package tlsutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tlsutil"
)

// fixture is a CA, a server certificate for localhost and 127.0.0.1, and
// their files in a temporary folder.
type fixture struct {
	dir                         string
	ca                          *tlsutil.DevCA
	caFile, certFile, keyFile   string
	serverCertPEM, serverKeyPEM []byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ca, err := tlsutil.NewDevCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: t.TempDir(), ca: ca}
	f.caFile = f.write(t, "ca.crt", ca.CertPEM)
	f.serverCertPEM, f.serverKeyPEM = f.issue(t, serverSpec())
	f.certFile = f.write(t, "server.crt", f.serverCertPEM)
	f.keyFile = f.write(t, "server.key", f.serverKeyPEM)
	return f
}

func serverSpec() tlsutil.CertSpec {
	return tlsutil.CertSpec{
		CommonName:  "localhost",
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

func clientSpec(cn string) tlsutil.CertSpec {
	return tlsutil.CertSpec{
		CommonName:  cn,
		OUs:         []string{"team-a"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

func (f *fixture) issue(t *testing.T, spec tlsutil.CertSpec) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := f.ca.Issue(spec)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func (f *fixture) keyPair(t *testing.T, spec tlsutil.CertSpec) *tls.Certificate {
	t.Helper()
	pair, err := f.ca.IssueKeyPair(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &pair
}

// write replaces dir/name atomically, as a careful deployment tool would.
func (f *fixture) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) config(clientAuth string, sans ...string) config.TLS {
	return config.TLS{
		CertFile:          f.certFile,
		KeyFile:           f.keyFile,
		ClientCAFile:      f.caFile,
		ClientAuthType:    clientAuth,
		MinVersion:        "TLS12",
		ClientAllowedSANs: sans,
	}
}

func (f *fixture) server(t *testing.T, cfg config.TLS) (*tlsutil.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	s, err := tlsutil.NewServer(cfg, nil, tlsutil.NewMetrics(reg))
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	return s, reg
}

// clientConfig trusts f's CA for the server and always sends cert, whatever
// CAs the server names: a client picking by CA name would send nothing for a
// foreign certificate, and the test would prove nothing.
func (f *fixture) clientConfig(cert *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: f.ca.Pool(), ServerName: "localhost"}
	if cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	return c
}

// result is what both ends of one connection saw.
type result struct {
	server, client       tls.ConnectionState
	serverErr, clientErr error
}

// err is the connection's outcome: the server's verdict first, since with
// TLS 1.3 the client finishes its handshake before the server has checked the
// client certificate.
func (r result) err() error {
	if r.serverErr != nil {
		return r.serverErr
	}
	return r.clientErr
}

// handshake runs one connection over loopback. The server writes "ok" after
// a successful handshake and closes; the client reads to the end, which also
// receives TLS 1.3 session tickets.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) result {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type end struct {
		state tls.ConnectionState
		err   error
	}
	done := make(chan end, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- end{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(conn, serverCfg)
		if err := tc.Handshake(); err != nil {
			done <- end{err: err}
			return
		}
		st := tc.ConnectionState()
		_, err = tc.Write([]byte("ok"))
		_ = tc.Close()
		done <- end{state: st, err: err}
	}()

	var r result
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(conn, clientCfg)
	r.clientErr = tc.Handshake()
	if r.clientErr == nil {
		var b []byte
		b, r.clientErr = io.ReadAll(tc)
		if r.clientErr == nil && string(b) != "ok" {
			r.clientErr = errors.New("server sent " + string(b))
		}
		r.client = tc.ConnectionState()
	}
	_ = conn.Close()
	s := <-done
	r.server, r.serverErr = s.state, s.err
	return r
}
