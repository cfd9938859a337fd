package tlsutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tlsutil"
)

var versions = []struct {
	name string
	v    uint16
}{
	{"TLS1.2", tls.VersionTLS12},
	{"TLS1.3", tls.VersionTLS13},
}

// TestClientCertificates checks that every bad client certificate (another
// CA, expired, not yet valid, server-only, a CA as the leaf) fails the
// handshake, never falling back to an anonymous connection, that the SAN
// allow-list is exact, and that a missing certificate with an allow-list does
// not panic.
func TestClientCertificates(t *testing.T) {
	f := newFixture(t)
	foreign, err := tlsutil.NewDevCA("foreign CA")
	if err != nil {
		t.Fatal(err)
	}
	foreignPair, err := foreign.IssueKeyPair(clientSpec("mallory"))
	if err != nil {
		t.Fatal(err)
	}
	rootAsLeaf, err := tls.X509KeyPair(f.ca.CertPEM, f.ca.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	expired := clientSpec("expired")
	expired.NotBefore, expired.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour)
	notYet := clientSpec("not-yet")
	notYet.NotBefore, notYet.NotAfter = now.Add(time.Hour), now.Add(48*time.Hour)
	serverOnly := clientSpec("server-only")
	serverOnly.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	subCA := clientSpec("sub-ca")
	subCA.IsCA = true
	withSANs := clientSpec("alice")
	withSANs.DNSNames = []string{"alice.example"}
	withSANs.Emails = []string{"alice@example.com"}
	withSANs.IPAddresses = []net.IP{net.ParseIP("10.0.0.7")}
	withSANs.URIs = []string{"spiffe://example.org/ns/a/sa/alice"}
	cnOnly := clientSpec("alice.example") // the CN equals an allowed SAN; CNs are never matched

	const ifGiven, require = config.VerifyClientCertIfGiven, config.RequireAndVerifyClientCert
	tests := []struct {
		name       string
		clientAuth string
		sans       []string
		cert       *tls.Certificate
		wantErr    bool
		wantPeer   bool // the server saw a verified certificate
	}{
		{name: "valid cert, IfGiven", clientAuth: ifGiven, cert: f.keyPair(t, clientSpec("alice")), wantPeer: true},
		{name: "valid cert, Require", clientAuth: require, cert: f.keyPair(t, clientSpec("alice")), wantPeer: true},
		{name: "no cert, IfGiven", clientAuth: ifGiven},
		{name: "no cert, Require", clientAuth: require, wantErr: true},
		{name: "no cert, IfGiven with allow-list (exporter-toolkit #436)", clientAuth: ifGiven, sans: []string{"alice.example"}},
		{name: "foreign CA, IfGiven", clientAuth: ifGiven, cert: &foreignPair, wantErr: true},
		{name: "foreign CA, Require", clientAuth: require, cert: &foreignPair, wantErr: true},
		{name: "expired", clientAuth: ifGiven, cert: f.keyPair(t, expired), wantErr: true},
		{name: "not yet valid", clientAuth: ifGiven, cert: f.keyPair(t, notYet), wantErr: true},
		{name: "server-only EKU", clientAuth: ifGiven, cert: f.keyPair(t, serverOnly), wantErr: true},
		{name: "CA root as leaf", clientAuth: ifGiven, cert: &rootAsLeaf, wantErr: true},
		{name: "sub-CA with clientAuth EKU as leaf", clientAuth: ifGiven, cert: f.keyPair(t, subCA), wantErr: true},
		{name: "SAN allowed: DNS", clientAuth: require, sans: []string{"alice.example"}, cert: f.keyPair(t, withSANs), wantPeer: true},
		{name: "SAN allowed: email", clientAuth: require, sans: []string{"alice@example.com"}, cert: f.keyPair(t, withSANs), wantPeer: true},
		{name: "SAN allowed: IP", clientAuth: require, sans: []string{"10.0.0.7"}, cert: f.keyPair(t, withSANs), wantPeer: true},
		{name: "SAN allowed: URI", clientAuth: require, sans: []string{"spiffe://example.org/ns/a/sa/alice"}, cert: f.keyPair(t, withSANs), wantPeer: true},
		{name: "SAN not allowed", clientAuth: require, sans: []string{"bob.example"}, cert: f.keyPair(t, withSANs), wantErr: true},
		{name: "SAN not allowed, IfGiven", clientAuth: ifGiven, sans: []string{"bob.example"}, cert: f.keyPair(t, withSANs), wantErr: true},
		{name: "SAN prefix is not a match", clientAuth: require, sans: []string{"alice.exampl"}, cert: f.keyPair(t, withSANs), wantErr: true},
		{name: "SAN case differs", clientAuth: require, sans: []string{"Alice.example"}, cert: f.keyPair(t, withSANs), wantErr: true},
		{name: "URI prefix is not a match", clientAuth: require, sans: []string{"spiffe://example.org/ns/a"}, cert: f.keyPair(t, withSANs), wantErr: true},
		{name: "CN is never matched", clientAuth: require, sans: []string{"alice.example"}, cert: f.keyPair(t, cnOnly), wantErr: true},
	}
	for _, tc := range tests {
		s, _ := f.server(t, f.config(tc.clientAuth, tc.sans...))
		serverCfg := s.TLSConfig()
		for _, v := range versions {
			t.Run(tc.name+"/"+v.name, func(t *testing.T) {
				clientCfg := f.clientConfig(tc.cert)
				clientCfg.MinVersion, clientCfg.MaxVersion = v.v, v.v
				r := handshake(t, serverCfg, clientCfg)
				if gotErr := r.err() != nil; gotErr != tc.wantErr {
					t.Fatalf("handshake error = %v (server %v, client %v), want error %t", r.err(), r.serverErr, r.clientErr, tc.wantErr)
				}
				if tc.wantErr {
					if r.serverErr == nil {
						t.Errorf("server accepted the connection; only the client failed: %v", r.clientErr)
					}
					return
				}
				if got := len(r.server.PeerCertificates) > 0; got != tc.wantPeer {
					t.Errorf("server saw a client certificate = %t, want %t", got, tc.wantPeer)
				}
				if tc.wantPeer && len(r.server.VerifiedChains) == 0 {
					t.Error("server saw a client certificate without a verified chain")
				}
			})
		}
	}
}

// TestVerifyErrors checks that the connection check itself, not only
// crypto/tls, refuses what crypto/tls lets through.
func TestVerifyErrors(t *testing.T) {
	f := newFixture(t)
	subCA := clientSpec("sub-ca")
	subCA.IsCA = true
	alice := clientSpec("alice")
	alice.DNSNames = []string{"alice.example"}
	tests := []struct {
		name string
		sans []string
		cert *tls.Certificate
		want error
	}{
		{name: "CA as leaf", cert: f.keyPair(t, subCA), want: tlsutil.ErrClientCertIsCA},
		{name: "SAN not allowed", sans: []string{"bob.example"}, cert: f.keyPair(t, alice), want: tlsutil.ErrClientSANNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := f.server(t, f.config(config.RequireAndVerifyClientCert, tc.sans...))
			r := handshake(t, s.TLSConfig(), f.clientConfig(tc.cert))
			if !errors.Is(r.serverErr, tc.want) {
				t.Errorf("server error = %v, want %v", r.serverErr, tc.want)
			}
		})
	}
}

// TestDowngrade checks that a client cannot downgrade the connection: TLS 1.0
// and 1.1, CBC suites and RSA key exchange are refused, with an ECDSA and an
// RSA server key.
func TestDowngrade(t *testing.T) {
	f := newFixture(t)
	rsaSpec := serverSpec()
	rsaSpec.RSA = true
	rsaCert, rsaKey := f.issue(t, rsaSpec)
	rsaFixture := *f
	rsaFixture.certFile = f.write(t, "rsa.crt", rsaCert)
	rsaFixture.keyFile = f.write(t, "rsa.key", rsaKey)

	tests := []struct {
		name       string
		rsa        bool
		minVersion string
		clientMin  uint16
		clientMax  uint16
		suites     []uint16
		wantErr    bool
	}{
		{name: "TLS 1.0", clientMin: tls.VersionTLS10, clientMax: tls.VersionTLS10, wantErr: true},
		{name: "TLS 1.1", clientMin: tls.VersionTLS10, clientMax: tls.VersionTLS11, wantErr: true},
		{name: "TLS 1.2 accepted", clientMax: tls.VersionTLS12},
		{name: "TLS 1.2 refused by min_version TLS13", minVersion: "TLS13", clientMax: tls.VersionTLS12, wantErr: true},
		{name: "TLS 1.3 with min_version TLS13", minVersion: "TLS13", clientMax: tls.VersionTLS13},
		{name: "ECDHE-ECDSA AES-128-CBC-SHA", clientMax: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}, wantErr: true},
		{name: "ECDHE-ECDSA AES-256-CBC-SHA", clientMax: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}, wantErr: true},
		{name: "ECDHE-ECDSA AES-128-GCM", clientMax: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}},
		{name: "ECDHE-ECDSA ChaCha20", clientMax: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}},
		{name: "RSA: ECDHE-RSA AES-128-CBC-SHA", rsa: true, clientMax: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}, wantErr: true},
		{name: "RSA: RSA key exchange AES-128-GCM", rsa: true, clientMax: tls.VersionTLS12, suites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, wantErr: true},
		{name: "RSA: RSA key exchange AES-128-CBC", rsa: true, clientMax: tls.VersionTLS12, suites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}, wantErr: true},
		{name: "RSA: ECDHE-RSA AES-256-GCM", rsa: true, clientMax: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := f
			if tc.rsa {
				fx = &rsaFixture
			}
			cfg := fx.config(config.VerifyClientCertIfGiven)
			if tc.minVersion != "" {
				cfg.MinVersion = tc.minVersion
			}
			s, _ := fx.server(t, cfg)
			clientCfg := fx.clientConfig(nil)
			clientCfg.MinVersion, clientCfg.MaxVersion, clientCfg.CipherSuites = tc.clientMin, tc.clientMax, tc.suites
			r := handshake(t, s.TLSConfig(), clientCfg)
			if gotErr := r.serverErr != nil; gotErr != tc.wantErr {
				t.Fatalf("server handshake error = %v, want error %t (client: %v)", r.serverErr, tc.wantErr, r.clientErr)
			}
			if !tc.wantErr && r.clientErr != nil {
				t.Fatalf("client error = %v", r.clientErr)
			}
		})
	}
}

// TestTLSConfig checks the listener's settings and the client_auth_type
// mapping.
func TestTLSConfig(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		clientAuth string
		minVersion string
		want       tls.ClientAuthType
		wantMin    uint16
	}{
		{config.NoClientCert, "TLS12", tls.NoClientCert, tls.VersionTLS12},
		{config.VerifyClientCertIfGiven, "TLS12", tls.VerifyClientCertIfGiven, tls.VersionTLS12},
		{config.RequireAndVerifyClientCert, "TLS13", tls.RequireAndVerifyClientCert, tls.VersionTLS13},
	}
	for _, tc := range tests {
		t.Run(tc.clientAuth, func(t *testing.T) {
			cfg := f.config(tc.clientAuth)
			cfg.MinVersion = tc.minVersion
			s, _ := f.server(t, cfg)
			c := s.TLSConfig()
			perConn, err := c.GetConfigForClient(&tls.ClientHelloInfo{})
			if err != nil {
				t.Fatal(err)
			}
			for name, c := range map[string]*tls.Config{"TLSConfig": c, "GetConfigForClient": perConn} {
				if c.ClientAuth != tc.want {
					t.Errorf("%s: ClientAuth = %v, want %v", name, c.ClientAuth, tc.want)
				}
				if c.MinVersion != tc.wantMin {
					t.Errorf("%s: MinVersion = %x, want %x", name, c.MinVersion, tc.wantMin)
				}
				wantSuites := []uint16{
					tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
					tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
					tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
					tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
					tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
					tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
				}
				if diff := cmp.Diff(wantSuites, c.CipherSuites); diff != "" {
					t.Errorf("%s: CipherSuites (-want +got):\n%s", name, diff)
				}
				if diff := cmp.Diff([]string{"h2", "http/1.1"}, c.NextProtos); diff != "" {
					t.Errorf("%s: NextProtos (-want +got):\n%s", name, diff)
				}
				if c.VerifyConnection == nil {
					t.Errorf("%s: VerifyConnection is nil", name)
				}
				if c.VerifyPeerCertificate != nil {
					t.Errorf("%s: VerifyPeerCertificate is set; identity checks belong in VerifyConnection (CVE-2025-68121)", name)
				}
			}
			for _, id := range c.CipherSuites {
				for _, insecure := range tls.InsecureCipherSuites() {
					if id == insecure.ID {
						t.Errorf("insecure suite %s offered", insecure.Name)
					}
				}
				if name := tls.CipherSuiteName(id); strings.Contains(name, "CBC") || strings.HasPrefix(name, "TLS_RSA_") {
					t.Errorf("suite %s offered", name)
				}
			}
		})
	}
}

// TestResumption checks that the SAN allow-list and the client CAs apply to
// resumed sessions too: the connection check runs when a session is resumed,
// so an allow-list narrowed or a CA removed after the session was created is
// enforced (CVE-2025-68121).
func TestResumption(t *testing.T) {
	f := newFixture(t)
	alice := clientSpec("alice")
	alice.URIs = []string{"spiffe://example.org/alice"}
	aliceCert := f.keyPair(t, alice)

	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			tests := []struct {
				name    string
				between func(t *testing.T, s *tlsutil.Server)
				wantErr error // nil: the second connection resumes
			}{
				{name: "unchanged resumes"},
				{
					name: "allow-list narrowed",
					between: func(t *testing.T, s *tlsutil.Server) {
						if err := s.SetAllowedSANsForTest([]string{"spiffe://example.org/bob"}); err != nil {
							t.Fatal(err)
						}
					},
					wantErr: tlsutil.ErrClientSANNotAllowed,
				},
				{
					name: "client CA replaced by reload",
					between: func(t *testing.T, s *tlsutil.Server) {
						other, err := tlsutil.NewDevCA("other CA")
						if err != nil {
							t.Fatal(err)
						}
						f.write(t, "ca.crt", other.CertPEM)
						t.Cleanup(func() { f.write(t, "ca.crt", f.ca.CertPEM) })
						if err := s.Reload(); err != nil {
							t.Fatal(err)
						}
					},
					wantErr: errAny,
				},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					s, _ := f.server(t, f.config(config.VerifyClientCertIfGiven, "spiffe://example.org/alice"))
					var mu sync.Mutex
					var seen []bool // DidResume of each connection the check saw
					s.SetVerifyHookForTest(func(cs tls.ConnectionState) {
						mu.Lock()
						defer mu.Unlock()
						seen = append(seen, cs.DidResume)
					})
					serverCfg := s.TLSConfig() // one listener: one set of ticket keys
					clientCfg := f.clientConfig(aliceCert)
					clientCfg.MinVersion, clientCfg.MaxVersion = v.v, v.v
					clientCfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)

					first := handshake(t, serverCfg, clientCfg)
					if err := first.err(); err != nil {
						t.Fatalf("first connection: %v", err)
					}
					if first.server.DidResume {
						t.Fatal("first connection resumed")
					}
					if tc.between != nil {
						tc.between(t, s)
					}
					second := handshake(t, serverCfg, clientCfg)
					mu.Lock()
					defer mu.Unlock()
					if tc.wantErr == nil {
						if err := second.err(); err != nil {
							t.Fatalf("second connection: %v", err)
						}
						if !second.server.DidResume || !second.client.DidResume {
							t.Fatalf("second connection did not resume (server %t, client %t)", second.server.DidResume, second.client.DidResume)
						}
						if diff := cmp.Diff([]bool{false, true}, seen); diff != "" {
							t.Errorf("DidResume seen by VerifyConnection (-want +got):\n%s", diff)
						}
						return
					}
					if second.serverErr == nil {
						t.Fatalf("second connection accepted (resumed: %t)", second.server.DidResume)
					}
					if tc.wantErr != errAny && !errors.Is(second.serverErr, tc.wantErr) { //nolint:errorlint // compares the table's wanted error with its errAny marker, not a returned error
						t.Errorf("second connection: server error = %v, want %v", second.serverErr, tc.wantErr)
					}
					if tc.wantErr == tlsutil.ErrClientSANNotAllowed { //nolint:errorlint // as above: which error the table case wants
						// Proof that the refusal came on a resumed session: a check
						// made only during full verification would have missed it.
						if diff := cmp.Diff([]bool{false, true}, seen); diff != "" {
							t.Errorf("DidResume seen by VerifyConnection (-want +got):\n%s", diff)
						}
					}
				})
			}
		})
	}
}

var errAny = errors.New("any error")

// TestNewServerErrors checks that configuration and file problems are all
// reported, each prefixed by its YAML path.
func TestNewServerErrors(t *testing.T) {
	f := newFixture(t)
	_, otherKey := f.issue(t, serverSpec())
	expiredSpec := serverSpec()
	expiredSpec.NotBefore, expiredSpec.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	expiredCert, expiredKey := f.issue(t, expiredSpec)
	expiredCASpec := tlsutil.CertSpec{CommonName: "expired CA", IsCA: true, NotBefore: expiredSpec.NotBefore, NotAfter: expiredSpec.NotAfter}
	expiredCAPEM, _ := f.issue(t, expiredCASpec)
	files := map[string]string{
		"expiredCA":   f.write(t, "expired-ca.crt", expiredCAPEM),
		"other.key":   f.write(t, "other.key", otherKey),
		"expired.crt": f.write(t, "expired.crt", expiredCert),
		"expired.key": f.write(t, "expired.key", expiredKey),
		"garbage":     f.write(t, "garbage", []byte("not PEM at all\n")),
		"keyInCA":     f.write(t, "key-in-ca.pem", append(append([]byte{}, f.ca.CertPEM...), f.serverKeyPEM...)),
		"missing":     f.dir + "/missing.pem",
	}
	tests := []struct {
		name string
		edit func(c *config.TLS)
		want []string // substrings, each a line of the joined error
	}{
		{"RequestClientCert", func(c *config.TLS) { c.ClientAuthType = "RequestClientCert" }, []string{`tls.client_auth_type: "RequestClientCert" does not verify certificates`}},
		{"RequireAnyClientCert", func(c *config.TLS) { c.ClientAuthType = "RequireAnyClientCert" }, []string{`tls.client_auth_type: "RequireAnyClientCert" does not verify certificates`}},
		{"empty client_auth_type", func(c *config.TLS) { c.ClientAuthType = "" }, []string{`tls.client_auth_type: unknown value ""`}},
		{"TLS11", func(c *config.TLS) { c.MinVersion = "TLS11" }, []string{`tls.min_version: "TLS11" is refused`}},
		{"padded SAN", func(c *config.TLS) { c.ClientAllowedSANs = []string{"a", " b"} }, []string{`tls.client_allowed_sans[1]: empty or padded SAN`}},
		{"allow-list with NoClientCert", func(c *config.TLS) { c.ClientAuthType, c.ClientAllowedSANs = config.NoClientCert, []string{"a"} }, []string{"tls.client_allowed_sans: set, but client_auth_type is NoClientCert"}},
		{"no cert_file", func(c *config.TLS) { c.CertFile = "" }, []string{"tls.cert_file: required"}},
		{"missing cert_file", func(c *config.TLS) { c.CertFile = files["missing"] }, []string{"tls.cert_file: open "}},
		{"garbage cert_file", func(c *config.TLS) { c.CertFile = files["garbage"] }, []string{"tls.cert_file: ", "no CERTIFICATE PEM block"}},
		{"missing key_file", func(c *config.TLS) { c.KeyFile = files["missing"] }, []string{"tls.key_file: open "}},
		{"key does not match", func(c *config.TLS) { c.KeyFile = files["other.key"] }, []string{"tls.key_file: ", "private key does not match public key"}},
		{"expired leaf", func(c *config.TLS) { c.CertFile, c.KeyFile = files["expired.crt"], files["expired.key"] }, []string{"tls.cert_file: ", "expired at"}},
		{"no client_ca_file", func(c *config.TLS) { c.ClientCAFile = "" }, []string{"tls.client_ca_file: required when client_auth_type is VerifyClientCertIfGiven"}},
		{"missing client_ca_file", func(c *config.TLS) { c.ClientCAFile = files["missing"] }, []string{"tls.client_ca_file: open "}},
		{"client_ca_file without certificates", func(c *config.TLS) { c.ClientCAFile = files["garbage"] }, []string{"tls.client_ca_file: ", "no CERTIFICATE PEM block"}},
		{"client_ca_file with a key", func(c *config.TLS) { c.ClientCAFile = files["keyInCA"] }, []string{"tls.client_ca_file: ", `unexpected PEM block "PRIVATE KEY"`}},
		{"client_ca_file with only expired CAs", func(c *config.TLS) { c.ClientCAFile = files["expiredCA"] }, []string{"tls.client_ca_file: ", "every certificate has expired"}},
		{"every file problem at once", func(c *config.TLS) { c.KeyFile, c.ClientCAFile = files["other.key"], files["missing"] }, []string{"tls.key_file: ", "tls.client_ca_file: open "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.config(config.VerifyClientCertIfGiven)
			tc.edit(&cfg)
			s, err := tlsutil.NewServer(cfg, nil, nil)
			if err == nil {
				t.Fatalf("NewServer = %v, nil; want an error", s)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewServer error = %q, want it to contain %q", err, w)
				}
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "tls.") {
					t.Errorf("error line %q lacks its YAML path", line)
				}
			}
		})
	}

	t.Run("NoClientCert reads no CA", func(t *testing.T) {
		cfg := f.config(config.NoClientCert)
		cfg.ClientCAFile = files["missing"]
		s, err := tlsutil.NewServer(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{f.certFile, f.keyFile}, s.Files()); diff != "" {
			t.Errorf("Files() (-want +got):\n%s", diff)
		}
	})
}

// TestServerHTTP checks the configuration in net/http: HTTP/2 is negotiated
// and the handler sees the verified client certificate.
func TestServerHTTP(t *testing.T) {
	f := newFixture(t)
	s, _ := f.server(t, f.config(config.RequireAndVerifyClientCert))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s %s", r.Proto, r.TLS.PeerCertificates[0].Subject.CommonName) //nolint:gosec // G705: a test server tells the test client its own certificate's CN as plain text; no browser
	}))
	srv.TLS = s.TLSConfig()
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	clientCfg := f.clientConfig(f.keyPair(t, clientSpec("alice")))
	clientCfg.NextProtos = []string{"h2", "http/1.1"}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: clientCfg, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL) // ServerName is localhost

	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if got, want := string(body), "HTTP/2.0 alice"; got != want {
		t.Errorf("GET = %d %q, want %q", resp.StatusCode, got, want)
	}
}
