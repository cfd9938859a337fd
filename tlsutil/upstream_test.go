package tlsutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tlsutil"
)

func TestUpstreamConfig(t *testing.T) {
	f := newFixture(t)
	upstreamCert := f.keyPair(t, tlsutil.CertSpec{
		CommonName:  "upstream.internal",
		DNSNames:    []string{"upstream.internal"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.TLS.PeerCertificates[0].Subject.CommonName) //nolint:gosec // G705: a test server tells the test client its own certificate's CN as plain text; no browser
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{*upstreamCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    f.ca.Pool(),
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	defer srv.Close()

	clientSpec := clientSpec("promgate")
	clientSpec.NotAfter = time.Now().Add(40 * 24 * time.Hour).Truncate(time.Second)
	clientCert, clientKey := f.issue(t, clientSpec)
	certFile := f.write(t, "upstream-client.crt", clientCert)
	keyFile := f.write(t, "upstream-client.key", clientKey)

	tests := []struct {
		name    string
		cfg     config.UpstreamTLS
		wantErr string // regexp matching the request error; "" means success
	}{
		{
			name: "CA, client cert and server name",
			cfg:  config.UpstreamTLS{CAFile: f.caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "upstream.internal"},
		},
		{
			name:    "no client cert",
			cfg:     config.UpstreamTLS{CAFile: f.caFile, ServerName: "upstream.internal"},
			wantErr: "certificate required|connection reset|broken pipe|EOF",
		},
		{
			name:    "server name does not match",
			cfg:     config.UpstreamTLS{CAFile: f.caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "other.internal"},
			wantErr: "certificate is valid for upstream.internal, not other.internal",
		},
		{
			name:    "system pool does not trust the dev CA",
			cfg:     config.UpstreamTLS{CertFile: certFile, KeyFile: keyFile, ServerName: "upstream.internal"},
			wantErr: "certificate signed by unknown authority",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			c, err := tlsutil.UpstreamConfig(tc.cfg, tlsutil.NewMetrics(reg))
			if err != nil {
				t.Fatalf("UpstreamConfig: %v", err)
			}
			if c.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion = %x, want TLS 1.2", c.MinVersion)
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: c}}
			defer client.CloseIdleConnections()
			resp, err := client.Get(srv.URL)
			if tc.wantErr != "" {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("GET succeeded, want an error matching %q", tc.wantErr)
				}
				if !regexp.MustCompile(tc.wantErr).MatchString(err.Error()) {
					t.Errorf("GET error = %v, want it to match %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if got, want := string(body), "hello promgate"; got != want {
				t.Errorf("body = %q, want %q", got, want)
			}
			if got, want := expiry(t, reg, tlsutil.CertUpstreamClient), float64(clientSpec.NotAfter.Unix()); got != want {
				t.Errorf("upstream client expiry = %v, want %v", got, want)
			}
		})
	}
}

func TestUpstreamConfigErrors(t *testing.T) {
	f := newFixture(t)
	_, otherKey := f.issue(t, clientSpec("other"))
	expiredSpec := clientSpec("expired")
	expiredSpec.NotBefore, expiredSpec.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	expiredCert, expiredKey := f.issue(t, expiredSpec)
	certPEM, keyPEM := f.issue(t, clientSpec("promgate"))
	cert := f.write(t, "c.crt", certPEM)
	key := f.write(t, "c.key", keyPEM)
	other := f.write(t, "other.key", otherKey)
	expCert := f.write(t, "expired.crt", expiredCert)
	expKey := f.write(t, "expired.key", expiredKey)
	garbage := f.write(t, "garbage", []byte("garbage"))
	missing := f.dir + "/missing"

	tests := []struct {
		name string
		cfg  config.UpstreamTLS
		want []string
	}{
		{"missing ca_file", config.UpstreamTLS{CAFile: missing}, []string{"upstream.tls.ca_file: open "}},
		{"garbage ca_file", config.UpstreamTLS{CAFile: garbage}, []string{"upstream.tls.ca_file: ", "no CERTIFICATE PEM block"}},
		{"cert without key", config.UpstreamTLS{CertFile: cert}, []string{"upstream.tls.key_file: required when cert_file is set"}},
		{"key without cert", config.UpstreamTLS{KeyFile: key}, []string{"upstream.tls.cert_file: required when key_file is set"}},
		{"key does not match", config.UpstreamTLS{CertFile: cert, KeyFile: other}, []string{"upstream.tls.key_file: ", "private key does not match"}},
		{"expired cert", config.UpstreamTLS{CertFile: expCert, KeyFile: expKey}, []string{"upstream.tls.cert_file: ", "expired at"}},
		{"missing key", config.UpstreamTLS{CertFile: cert, KeyFile: missing}, []string{"upstream.tls.key_file: open "}},
		{"every problem", config.UpstreamTLS{CAFile: garbage, CertFile: cert, KeyFile: other}, []string{"upstream.tls.ca_file: ", "upstream.tls.key_file: "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tlsutil.UpstreamConfig(tc.cfg, nil)
			if err == nil {
				t.Fatalf("UpstreamConfig = %v, nil; want an error", c)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q, want it to contain %q", err, w)
				}
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "upstream.tls.") {
					t.Errorf("error line %q lacks its YAML path", line)
				}
			}
		})
	}

	t.Run("empty config uses the system pool", func(t *testing.T) {
		c, err := tlsutil.UpstreamConfig(config.UpstreamTLS{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.RootCAs != nil || c.GetClientCertificate != nil || c.InsecureSkipVerify {
			t.Errorf("UpstreamConfig({}) = %+v, want system roots, no client certificate, verification on", c)
		}
	})
}
