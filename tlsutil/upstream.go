package tlsutil

import (
	"crypto/tls"
	"errors"
	"time"

	"github.com/promgate/promgate/config"
)

// UpstreamConfig builds the client configuration for an https upstream:
// RootCAs from ca_file (the system pool when it is empty), the client
// certificate from cert_file and key_file when they are set (sent through
// GetClientCertificate, whatever CAs the upstream names), ServerName, and TLS
// 1.2 at least. The files are read once; changing them needs a restart.
// Errors are prefixed by their YAML path such as "upstream.tls.ca_file: ".
// A nil m records no metrics.
func UpstreamConfig(cfg config.UpstreamTLS, m *Metrics) (*tls.Config, error) {
	var files []string
	for _, f := range []string{cfg.CAFile, cfg.CertFile, cfg.KeyFile} {
		if f != "" {
			files = append(files, f)
		}
	}
	fs := readFiles(files)
	now := time.Now()
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: cfg.ServerName,
	}

	var errs []error
	if cfg.CAFile != "" {
		pool, _, err := loadCAPool(fs, "upstream.tls.ca_file", cfg.CAFile, now)
		if err != nil {
			errs = append(errs, err)
		}
		c.RootCAs = pool
	}
	switch {
	case cfg.CertFile != "" && cfg.KeyFile != "":
		cert, err := loadKeyPair(fs, "upstream.tls.cert_file", cfg.CertFile, "upstream.tls.key_file", cfg.KeyFile, now)
		if err != nil {
			errs = append(errs, err)
			break
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
		m.setExpiry(CertUpstreamClient, cert.Leaf.NotAfter)
	case cfg.CertFile != "":
		errs = append(errs, errors.New("upstream.tls.key_file: required when cert_file is set"))
	case cfg.KeyFile != "":
		errs = append(errs, errors.New("upstream.tls.cert_file: required when key_file is set"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}
