package tlsutil_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tlsutil"
)

// syncBuffer is a bytes.Buffer safe for a logger used from several
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func reloads(success, failure int) string {
	return fmt.Sprintf(`
# HELP promgate_tls_reloads_total Reloads of the listener's certificate, key and client CAs, by result.
# TYPE promgate_tls_reloads_total counter
promgate_tls_reloads_total{result="failure"} %d
promgate_tls_reloads_total{result="success"} %d
`, failure, success)
}

func checkReloads(t *testing.T, reg prometheus.Gatherer, success, failure int) {
	t.Helper()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(reloads(success, failure)), "promgate_tls_reloads_total"); err != nil {
		t.Error(err)
	}
}

// expiry returns promgate_tls_cert_expiry_timestamp_seconds{cert=cert}, or
// -1 when the series does not exist.
func expiry(t *testing.T, reg prometheus.Gatherer, cert string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "promgate_tls_cert_expiry_timestamp_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == cert {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// servedSerial is the serial of the certificate the server presents to a new
// handshake.
func servedSerial(t *testing.T, f *fixture, serverCfg *tls.Config) *big.Int {
	t.Helper()
	r := handshake(t, serverCfg, f.clientConfig(nil))
	if err := r.err(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return r.client.PeerCertificates[0].SerialNumber
}

func serial(t *testing.T, certPEM []byte) *big.Int {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

// TestReload checks that a certificate rotation cannot take the listener
// down: a new pair is served to new handshakes; a half-written or broken set
// of files keeps the old pair, is logged and counted, and nothing exits.
func TestReload(t *testing.T) {
	tests := []struct {
		name    string
		change  func(t *testing.T, f *fixture, newCert, newKey []byte)
		wantErr string // "" means the reload succeeds and serves newCert
	}{
		{
			name: "new pair",
			change: func(t *testing.T, f *fixture, newCert, newKey []byte) {
				f.write(t, "server.key", newKey)
				f.write(t, "server.crt", newCert)
			},
		},
		{
			name: "cert written, key not yet",
			change: func(t *testing.T, f *fixture, newCert, _ []byte) {
				f.write(t, "server.crt", newCert)
			},
			wantErr: "tls.key_file: ",
		},
		{
			name: "key written, cert not yet",
			change: func(t *testing.T, f *fixture, _, newKey []byte) {
				f.write(t, "server.key", newKey)
			},
			wantErr: "tls.key_file: ",
		},
		{
			name: "garbage key",
			change: func(t *testing.T, f *fixture, newCert, _ []byte) {
				f.write(t, "server.crt", newCert)
				f.write(t, "server.key", []byte("-----BEGIN PRIVATE KEY-----\ngarbage\n"))
			},
			wantErr: "tls.key_file: ",
		},
		{
			name: "truncated cert",
			change: func(t *testing.T, f *fixture, newCert, newKey []byte) {
				f.write(t, "server.crt", newCert[:len(newCert)/2])
				f.write(t, "server.key", newKey)
			},
			wantErr: "tls.cert_file: ",
		},
		{
			name: "empty key",
			change: func(t *testing.T, f *fixture, newCert, _ []byte) {
				f.write(t, "server.crt", newCert)
				f.write(t, "server.key", nil)
			},
			wantErr: "tls.key_file: ",
		},
		{
			name: "key removed",
			change: func(t *testing.T, f *fixture, _, _ []byte) {
				if err := os.Remove(f.keyFile); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "tls.key_file: open ",
		},
		{
			name: "garbage client CA",
			change: func(t *testing.T, f *fixture, newCert, newKey []byte) {
				f.write(t, "server.key", newKey)
				f.write(t, "server.crt", newCert)
				f.write(t, "ca.crt", []byte("oops"))
			},
			wantErr: "tls.client_ca_file: ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			reg := prometheus.NewPedanticRegistry()
			var logs syncBuffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			s, err := tlsutil.NewServer(f.config(config.VerifyClientCertIfGiven), logger, tlsutil.NewMetrics(reg))
			if err != nil {
				t.Fatal(err)
			}
			serverCfg := s.TLSConfig()
			oldSerial := serial(t, f.serverCertPEM)
			if got := servedSerial(t, f, serverCfg); got.Cmp(oldSerial) != 0 {
				t.Fatalf("served serial %v, want %v", got, oldSerial)
			}
			oldExpiry := expiry(t, reg, tlsutil.CertServer)

			newSpec := serverSpec()
			newSpec.NotAfter = time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
			newCert, newKey := f.issue(t, newSpec)
			tc.change(t, f, newCert, newKey)
			err = s.Reload()

			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Reload() = %v", err)
				}
				if got, want := servedSerial(t, f, serverCfg), serial(t, newCert); got.Cmp(want) != 0 {
					t.Errorf("after reload: served serial %v, want the new %v", got, want)
				}
				if got, want := expiry(t, reg, tlsutil.CertServer), float64(newSpec.NotAfter.Unix()); got != want {
					t.Errorf("server expiry = %v, want %v", got, want)
				}
				checkReloads(t, reg, 1, 0)
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("Reload() = %v, want an error starting with %q", err, tc.wantErr)
			}
			if got := servedSerial(t, f, serverCfg); got.Cmp(oldSerial) != 0 {
				t.Errorf("after failed reload: served serial %v, want the old %v", got, oldSerial)
			}
			if got := expiry(t, reg, tlsutil.CertServer); got != oldExpiry {
				t.Errorf("server expiry = %v, want the old %v", got, oldExpiry)
			}
			checkReloads(t, reg, 0, 1)
			if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "tls reload failed") {
				t.Errorf("log = %q, want an error record", l)
			}
		})
	}
}

// TestReloadClientCA checks that new handshakes verify against the client CAs
// of the latest successful reload.
func TestReloadClientCA(t *testing.T) {
	f := newFixture(t)
	s, reg := f.server(t, f.config(config.RequireAndVerifyClientCert))
	serverCfg := s.TLSConfig()
	next, err := tlsutil.NewDevCA("next CA")
	if err != nil {
		t.Fatal(err)
	}
	nextPair, err := next.IssueKeyPair(clientSpec("carol"))
	if err != nil {
		t.Fatal(err)
	}
	oldPair := f.keyPair(t, clientSpec("alice"))
	if r := handshake(t, serverCfg, f.clientConfig(&nextPair)); r.err() == nil {
		t.Fatal("client of the next CA accepted before the reload")
	}

	// Rotation: trust both, then only the next CA.
	f.write(t, "ca.crt", append(append([]byte{}, f.ca.CertPEM...), next.CertPEM...))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string]*tls.Certificate{"old": oldPair, "next": &nextPair} {
		if r := handshake(t, serverCfg, f.clientConfig(pair)); r.err() != nil {
			t.Errorf("both CAs trusted: %s client refused: %v", name, r.err())
		}
	}
	f.write(t, "ca.crt", next.CertPEM)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := handshake(t, serverCfg, f.clientConfig(oldPair)); r.serverErr == nil {
		t.Error("old CA removed: old client accepted")
	}
	if r := handshake(t, serverCfg, f.clientConfig(&nextPair)); r.err() != nil {
		t.Errorf("old CA removed: next client refused: %v", r.err())
	}
	if got, want := expiry(t, reg, tlsutil.CertClientCA), float64(next.Cert.NotAfter.Unix()); got != want {
		t.Errorf("client CA expiry = %v, want %v", got, want)
	}
	checkReloads(t, reg, 2, 0)
}
