package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultDevValidity is how long development certificates are valid unless
// told otherwise.
const DefaultDevValidity = 90 * 24 * time.Hour

// backdate is how far before now certificates start, to absorb clock skew.
const backdate = 5 * time.Minute

// DevCA is an in-memory development certificate authority with an ECDSA
// P-256 key. It is meant for `promgate certs dev`, the demo and tests; it is
// not a production CA.
type DevCA struct {
	// Cert is the self-signed CA certificate.
	Cert *x509.Certificate
	// Key is the CA's private key.
	Key crypto.Signer
	// CertPEM and KeyPEM are Cert and Key in PEM (the key as PKCS #8).
	CertPEM, KeyPEM []byte
}

// CertSpec describes a certificate for DevCA.Issue. Zero fields take safe
// defaults: an ECDSA P-256 key, validity from five minutes ago for
// DefaultDevValidity, no extended key usage (which crypto/x509 treats as any
// usage) and no SANs.
type CertSpec struct {
	// CommonName and OUs form the subject.
	CommonName string
	OUs        []string
	// DNSNames, IPAddresses, Emails and URIs are the SANs.
	DNSNames    []string
	IPAddresses []net.IP
	Emails      []string
	URIs        []string
	// ExtKeyUsage is typically x509.ExtKeyUsageServerAuth or
	// x509.ExtKeyUsageClientAuth.
	ExtKeyUsage []x509.ExtKeyUsage
	// NotBefore and NotAfter bound validity; set them in the past to make an
	// expired certificate.
	NotBefore, NotAfter time.Time
	// IsCA marks the certificate as a CA (basic constraints and cert-sign key
	// usage), for example to present a CA certificate as a leaf.
	IsCA bool
	// RSA selects an RSA-2048 key instead of ECDSA P-256.
	RSA bool
}

// NewDevCA creates a self-signed development CA named name, valid for a year.
func NewDevCA(name string) (*DevCA, error) {
	now := time.Now()
	return newDevCA(name, now.Add(-backdate), now.Add(365*24*time.Hour))
}

func newDevCA(name string, notBefore, notAfter time.Time) (*DevCA, error) {
	if name == "" {
		return nil, errors.New("dev CA name is empty")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"promgate development"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &DevCA{Cert: cert, Key: key, CertPEM: encodeCert(der), KeyPEM: keyPEM}, nil
}

// Pool returns a pool holding only the CA certificate.
func (ca *DevCA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue creates a key and a certificate for it signed by the CA, both in PEM.
func (ca *DevCA) Issue(spec CertSpec) (certPEM, keyPEM []byte, err error) {
	var key crypto.Signer
	if spec.RSA {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: spec.CommonName, OrganizationalUnit: spec.OUs},
		NotBefore:      spec.NotBefore,
		NotAfter:       spec.NotAfter,
		DNSNames:       spec.DNSNames,
		IPAddresses:    spec.IPAddresses,
		ExtKeyUsage:    spec.ExtKeyUsage,
		EmailAddresses: spec.Emails,
		KeyUsage:       x509.KeyUsageDigitalSignature,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-backdate)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(DefaultDevValidity)
	}
	if !tmpl.NotAfter.After(tmpl.NotBefore) {
		return nil, nil, fmt.Errorf("certificate %q: NotAfter %s is not after NotBefore %s", spec.CommonName, tmpl.NotAfter, tmpl.NotBefore)
	}
	if spec.RSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if spec.IsCA {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	for _, s := range spec.URIs {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" {
			return nil, nil, fmt.Errorf("certificate %q: URI SAN %q is not an absolute URI", spec.CommonName, s)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate %q: %w", spec.CommonName, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// IssueKeyPair is Issue returning a tls.Certificate, for use in tls.Config.
func (ca *DevCA) IssueKeyPair(spec CertSpec) (tls.Certificate, error) {
	certPEM, keyPEM, err := ca.Issue(spec)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ClientSpec describes one client certificate of a development PKI.
type ClientSpec struct {
	// CommonName is the subject CN; the file name is derived from it.
	CommonName string
	// OUs become the subject's organizational units (promgate's default
	// groups).
	OUs []string
	// DNSNames, URIs and Emails are the SANs.
	DNSNames []string
	URIs     []string
	Emails   []string
}

// DevOptions configures WriteDevPKI.
type DevOptions struct {
	// Hosts are the server certificate's SANs, IP addresses or DNS names.
	// Default: localhost, 127.0.0.1 and ::1.
	Hosts []string
	// Clients are the client certificates to issue.
	Clients []ClientSpec
	// Validity applies to the CA and every certificate. Default:
	// DefaultDevValidity.
	Validity time.Duration
}

// Names of the files WriteDevPKI writes.
const (
	DevCACertFile     = "ca.crt"
	DevCAKeyFile      = "ca.key"
	DevServerCertFile = "server.crt"
	DevServerKeyFile  = "server.key"
)

// DevClientFiles returns the certificate and key file names of the client
// certificate with common name cn, as WriteDevPKI writes them.
func DevClientFiles(cn string) (certFile, keyFile string, err error) {
	name := sanitizeName(cn)
	if name == "" {
		return "", "", fmt.Errorf("client common name %q leaves no file name", cn)
	}
	return "client-" + name + ".crt", "client-" + name + ".key", nil
}

// sanitizeName lower-cases s and replaces every byte outside [a-z0-9._-]
// with '-'. Leading dots are dropped so that no name is hidden or "..".
func sanitizeName(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	return strings.TrimLeft(string(b), ".")
}

// WriteDevPKI writes a development PKI into dir, creating it with mode 0700:
// ca.crt and ca.key, server.crt and server.key (server authentication, SANs
// from opts.Hosts), and client-<name>.crt and .key for each client (client
// authentication, OUs from the spec), where name is the common name
// lower-cased with every byte outside [a-z0-9._-] replaced by '-'. Keys are
// ECDSA P-256 in PKCS #8 with mode 0600; certificates have mode 0644. It
// returns the paths written.
//
// WriteDevPKI refuses to run when dir already holds ca.key or ca.crt, so that
// an existing CA is never replaced.
func WriteDevPKI(dir string, opts DevOptions) ([]string, error) {
	validity := opts.Validity
	if validity == 0 {
		validity = DefaultDevValidity
	}
	if validity < 0 {
		return nil, fmt.Errorf("validity %s is negative", validity)
	}
	hosts := opts.Hosts
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}

	// Build everything in memory first, so that bad options write nothing.
	type file struct {
		name string
		data []byte
		mode fs.FileMode
	}
	now := time.Now()
	notBefore, notAfter := now.Add(-backdate), now.Add(validity)
	ca, err := newDevCA("promgate development CA", notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	server := CertSpec{
		CommonName:  hosts[0],
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			server.IPAddresses = append(server.IPAddresses, ip)
		} else if h == "" || strings.ContainsAny(h, " \t\n/") {
			return nil, fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
		} else {
			server.DNSNames = append(server.DNSNames, h)
		}
	}
	serverCert, serverKey, err := ca.Issue(server)
	if err != nil {
		return nil, err
	}
	files := []file{
		{DevCAKeyFile, ca.KeyPEM, 0o600},
		{DevCACertFile, ca.CertPEM, 0o644},
		{DevServerCertFile, serverCert, 0o644},
		{DevServerKeyFile, serverKey, 0o600},
	}
	seen := map[string]string{}
	for _, c := range opts.Clients {
		certFile, keyFile, err := DevClientFiles(c.CommonName)
		if err != nil {
			return nil, err
		}
		if prev, ok := seen[certFile]; ok {
			return nil, fmt.Errorf("clients %q and %q would both be written to %s", prev, c.CommonName, certFile)
		}
		seen[certFile] = c.CommonName
		certPEM, keyPEM, err := ca.Issue(CertSpec{
			CommonName:  c.CommonName,
			OUs:         c.OUs,
			DNSNames:    c.DNSNames,
			URIs:        c.URIs,
			Emails:      c.Emails,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			NotBefore:   notBefore,
			NotAfter:    notAfter,
		})
		if err != nil {
			return nil, err
		}
		files = append(files, file{certFile, certPEM, 0o644}, file{keyFile, keyPEM, 0o600})
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	for _, name := range []string{DevCAKeyFile, DevCACertFile} {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s already exists; refusing to overwrite an existing CA: remove it or choose another folder", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("check %s: %w", p, err)
		}
	}
	var written []string
	for i, f := range files {
		p := filepath.Join(dir, f.name)
		// ca.key is created exclusively, which closes the race with the
		// check above; the other files are replaced atomically.
		if i == 0 {
			err = writeExclusive(p, f.data, f.mode)
		} else {
			err = writeAtomic(p, f.data, f.mode)
		}
		if err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}

func writeExclusive(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; refusing to overwrite an existing CA: remove it or choose another folder", path)
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close() //nolint:errcheck // error path: the chmod error is returned
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close() //nolint:errcheck // error path: the write error is returned
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) //nolint:errcheck // after a successful rename this finds nothing; before it, removing the temporary file is best effort
	if err := f.Chmod(mode); err != nil {
		f.Close() //nolint:errcheck // error path: the chmod error is returned
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close() //nolint:errcheck // error path: the write error is returned
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return nil
}
