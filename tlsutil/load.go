package tlsutil

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// fileSet is the content of a set of files read at one moment, with a digest
// that changes whenever any content (or the error reading it) does.
type fileSet struct {
	data map[string][]byte
	errs map[string]error
	sum  [sha256.Size]byte
}

// readFiles reads every path once. Missing or unreadable files are recorded,
// not fatal: the caller decides which ones it needs.
func readFiles(paths []string) fileSet {
	fs := fileSet{data: map[string][]byte{}, errs: map[string]error{}}
	h := sha256.New()
	frame := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, p := range paths {
		frame([]byte(p))
		b, err := os.ReadFile(p)
		if err != nil {
			fs.errs[p] = err
			frame([]byte("error"))
			frame([]byte(err.Error()))
			continue
		}
		fs.data[p] = b
		frame([]byte("data"))
		frame(b)
	}
	h.Sum(fs.sum[:0])
	return fs
}

func (fs fileSet) get(path string) ([]byte, error) {
	if err, ok := fs.errs[path]; ok {
		return nil, err
	}
	b, ok := fs.data[path]
	if !ok {
		return nil, fmt.Errorf("%s was not read", path)
	}
	return b, nil
}

// parseCertificates returns every CERTIFICATE block of b. Any other PEM block
// type is an error: a private key in a certificate bundle is a mistake worth
// reporting.
func parseCertificates(b []byte, allowKeys bool) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse certificate %d: %w", len(certs)+1, err)
			}
			certs = append(certs, c)
		case allowKeys:
			// A combined certificate and key file.
		default:
			return nil, fmt.Errorf("unexpected PEM block %q; only CERTIFICATE blocks belong here", block.Type)
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block found")
	}
	return certs, nil
}

// loadKeyPair parses a certificate chain and its key. It checks that the key
// matches the leaf and that the leaf has not expired. Errors name the YAML
// field at fault.
func loadKeyPair(fs fileSet, certField, certPath, keyField, keyPath string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := fs.get(certPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certField, err)
	}
	certs, err := parseCertificates(certPEM, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", certField, certPath, err)
	}
	leaf := certs[0]
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("%s: %s: certificate %q expired at %s", certField, certPath, leaf.Subject, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	keyPEM, err := fs.get(keyPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyField, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %s does not hold the private key of %s: %w", keyField, keyPath, certPath, err)
	}
	pair.Leaf = leaf
	return &pair, nil
}

// loadCAPool parses a CA bundle: at least one certificate, no other PEM
// blocks, and at least one certificate not yet expired. It returns the pool
// and the earliest NotAfter among the certificates.
func loadCAPool(fs fileSet, field, path string, now time.Time) (*x509.CertPool, time.Time, error) {
	b, err := fs.get(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: %w", field, err)
	}
	certs, err := parseCertificates(b, false)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: %s: %w", field, path, err)
	}
	pool := x509.NewCertPool()
	earliest := certs[0].NotAfter
	valid := 0
	for _, c := range certs {
		pool.AddCert(c)
		if c.NotAfter.Before(earliest) {
			earliest = c.NotAfter
		}
		if !now.After(c.NotAfter) {
			valid++
		}
	}
	if valid == 0 {
		return nil, time.Time{}, fmt.Errorf("%s: %s: every certificate has expired, so no peer could be verified", field, path)
	}
	return pool, earliest, nil
}
