package tlsutil_test

import (
	"crypto/tls"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tlsutil"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	tlsutil.NewMetrics(reg)
	checkReloads(t, reg, 0, 0)
	if got := expiry(t, reg, tlsutil.CertServer); got != -1 {
		t.Errorf("server expiry before any load = %v, want no series", got)
	}

	f := newFixture(t)
	_, reg = f.server(t, f.config(config.VerifyClientCertIfGiven))
	if got, want := expiry(t, reg, tlsutil.CertServer), float64(serverLeaf(t, f).Leaf.NotAfter.Unix()); got != want {
		t.Errorf("server expiry = %v, want %v", got, want)
	}
	if got, want := expiry(t, reg, tlsutil.CertClientCA), float64(f.ca.Cert.NotAfter.Unix()); got != want {
		t.Errorf("client CA expiry = %v, want %v", got, want)
	}
	checkReloads(t, reg, 0, 0) // the initial load is not a reload
}

func serverLeaf(t *testing.T, f *fixture) *tls.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(f.serverCertPEM, f.serverKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &pair
}

// TestConcurrentReload runs handshakes while the pair is reloaded, for the
// race detector: every handshake sees one whole snapshot.
func TestConcurrentReload(t *testing.T) {
	f := newFixture(t)
	s, _ := f.server(t, f.config(config.RequireAndVerifyClientCert))
	serverCfg := s.TLSConfig()
	client := f.clientConfig(f.keyPair(t, clientSpec("alice")))
	pairs := make([][2][]byte, 3)
	for i := range pairs {
		pairs[i][0], pairs[i][1] = f.issue(t, serverSpec())
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				if r := handshake(t, serverCfg, client.Clone()); r.err() != nil {
					t.Errorf("handshake during reloads: %v", r.err())
				}
			}
		})
	}
	for _, p := range pairs {
		f.write(t, "server.key", p[1])
		f.write(t, "server.crt", p[0])
		wg.Go(func() { _ = s.Reload() })
	}
	wg.Wait()
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
}
