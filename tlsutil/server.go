package tlsutil

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/promgate/promgate/config"
)

// cipherSuites are the TLS 1.2 suites of Mozilla's intermediate profile that
// Go implements: ECDHE key exchange with an AEAD cipher only. RSA key exchange
// (no forward secrecy) and every CBC suite (Lucky13, POODLE-style padding
// oracles) are absent. TLS 1.3 suites are not configurable and all AEAD.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// CipherSuites returns the TLS 1.2 cipher suites the server accepts, in
// preference order.
func CipherSuites() []uint16 { return slices.Clone(cipherSuites) }

// Errors returned by the server's connection check. The handshake fails with
// them; they reach the server's log through http.Server.ErrorLog.
var (
	ErrClientCertIsCA        = errors.New("client certificate is a CA certificate, not a leaf")
	ErrClientSANNotAllowed   = errors.New("no client certificate SAN is in tls.client_allowed_sans")
	ErrClientCertRequired    = errors.New("client certificate required")
	ErrClientCertNotExpected = errors.New("client certificate presented, but client_auth_type is NoClientCert")
)

// Server holds the public listener's certificate, key and client CAs, and the
// rules that every client connection is checked against. Its files are
// reloaded without a restart; see Reload.
type Server struct {
	cfg        config.TLS
	logger     *slog.Logger
	metrics    *Metrics
	clientAuth tls.ClientAuthType
	minVersion uint16
	allowed    sanSet

	mu   sync.Mutex // serialises loads
	snap atomic.Pointer[snapshot]

	// verifyHook, when set by tests, sees every connection that reaches the
	// connection check.
	verifyHook func(tls.ConnectionState)
}

// snapshot is one consistent generation of the TLS material. It is built
// whole and never modified after it is stored.
type snapshot struct {
	cert      *tls.Certificate
	clientCAs *x509.CertPool // nil when client certificates are not requested
	caExpiry  time.Time
	allowed   sanSet
	sum       [sha256.Size]byte
	config    *tls.Config // the per-handshake configuration of this generation
}

// ParseClientAuthType maps exporter-toolkit's client_auth_type names to
// crypto/tls values. RequestClientCert and RequireAnyClientCert are refused:
// they accept certificates without verifying them.
func ParseClientAuthType(s string) (tls.ClientAuthType, error) {
	switch s {
	case config.NoClientCert:
		return tls.NoClientCert, nil
	case config.VerifyClientCertIfGiven:
		return tls.VerifyClientCertIfGiven, nil
	case config.RequireAndVerifyClientCert:
		return tls.RequireAndVerifyClientCert, nil
	case "RequestClientCert", "RequireAnyClientCert":
		return 0, fmt.Errorf("%q does not verify certificates; use RequireAndVerifyClientCert or VerifyClientCertIfGiven", s)
	default:
		return 0, fmt.Errorf("unknown value %q; use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert", s)
	}
}

// ParseMinVersion maps TLS12 and TLS13 to crypto/tls versions. Older versions
// are refused.
func ParseMinVersion(s string) (uint16, error) {
	switch s {
	case "TLS12":
		return tls.VersionTLS12, nil
	case "TLS13":
		return tls.VersionTLS13, nil
	case "TLS10", "TLS11":
		return 0, fmt.Errorf("%q is refused: TLS 1.0 and 1.1 are broken; use TLS12 or TLS13", s)
	default:
		return 0, fmt.Errorf("unknown value %q; use TLS12 or TLS13", s)
	}
}

// NewServer checks cfg and loads its files: the certificate chain and key
// (the key must match the leaf, and the leaf must not have expired) and, when
// client certificates are requested, the client CA bundle (at least one
// certificate). Every problem found is returned, each prefixed by its YAML
// path such as "tls.key_file: ". A nil m records no metrics; a nil logger
// logs nothing.
func NewServer(cfg config.TLS, logger *slog.Logger, m *Metrics) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	clientAuth, err := ParseClientAuthType(cfg.ClientAuthType)
	if err != nil {
		errs = append(errs, fmt.Errorf("tls.client_auth_type: %w", err))
	}
	minVersion, err := ParseMinVersion(cfg.MinVersion)
	if err != nil {
		errs = append(errs, fmt.Errorf("tls.min_version: %w", err))
	}
	allowed, err := newSANSet("tls.client_allowed_sans", cfg.ClientAllowedSANs)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.CertFile == "" {
		errs = append(errs, errors.New("tls.cert_file: required: promgate serves only TLS"))
	}
	if cfg.KeyFile == "" {
		errs = append(errs, errors.New("tls.key_file: required: promgate serves only TLS"))
	}
	if len(errs) == 0 && clientAuth == tls.NoClientCert && !allowed.empty() {
		errs = append(errs, errors.New("tls.client_allowed_sans: set, but client_auth_type is NoClientCert, so no certificate is ever checked"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &Server{
		cfg:        cfg,
		logger:     logger.With("component", "tlsutil"),
		metrics:    m,
		clientAuth: clientAuth,
		minVersion: minVersion,
		allowed:    allowed,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.load()
	if err != nil {
		return nil, err
	}
	s.install(snap)
	return s, nil
}

// Files returns the files the server reads, in a fixed order and without
// duplicates: the certificate, the key and, when client certificates are
// requested, the client CA bundle.
func (s *Server) Files() []string {
	files := []string{s.cfg.CertFile}
	if s.cfg.KeyFile != s.cfg.CertFile {
		files = append(files, s.cfg.KeyFile)
	}
	if s.clientAuth != tls.NoClientCert && !slices.Contains(files, s.cfg.ClientCAFile) {
		files = append(files, s.cfg.ClientCAFile)
	}
	return files
}

// load reads every file once and builds a complete snapshot from what it
// read. The caller holds s.mu.
func (s *Server) load() (*snapshot, error) {
	fs := readFiles(s.Files())
	now := time.Now()

	var errs []error
	snap := &snapshot{allowed: s.allowed, sum: fs.sum}
	cert, err := loadKeyPair(fs, "tls.cert_file", s.cfg.CertFile, "tls.key_file", s.cfg.KeyFile, now)
	if err != nil {
		errs = append(errs, err)
	}
	snap.cert = cert
	if s.clientAuth != tls.NoClientCert {
		if s.cfg.ClientCAFile == "" {
			errs = append(errs, fmt.Errorf("tls.client_ca_file: required when client_auth_type is %s", s.cfg.ClientAuthType))
		} else {
			snap.clientCAs, snap.caExpiry, err = loadCAPool(fs, "tls.client_ca_file", s.cfg.ClientCAFile, now)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.finish(snap)
	return snap, nil
}

// finish builds the per-handshake configuration of snap. Its callbacks are
// bound to snap, so one handshake never mixes two generations.
func (s *Server) finish(snap *snapshot) {
	snap.config = &tls.Config{
		MinVersion:   s.minVersion,
		CipherSuites: CipherSuites(),
		NextProtos:   []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return snap.cert, nil
		},
		ClientAuth:       s.clientAuth,
		ClientCAs:        snap.clientCAs,
		VerifyConnection: func(cs tls.ConnectionState) error { return s.verifyConnection(snap, cs) },
	}
}

func (s *Server) install(snap *snapshot) {
	s.snap.Store(snap)
	s.metrics.setExpiry(CertServer, snap.cert.Leaf.NotAfter)
	if snap.clientCAs != nil {
		s.metrics.setExpiry(CertClientCA, snap.caExpiry)
	}
}

// TLSConfig returns the listener's configuration. Each call returns a new
// *tls.Config; all of them follow reloads. Use one per listener: each has its
// own session ticket keys, so sessions resume only on the Config that issued
// them.
//
// Every handshake gets the configuration of the snapshot current when its
// ClientHello arrives (GetConfigForClient): that snapshot's certificate,
// client CA pool and connection check. The returned Config's own ClientCAs is
// an empty pool, so if its callbacks were ever bypassed no client certificate
// would verify.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   s.minVersion,
		CipherSuites: CipherSuites(),
		NextProtos:   []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.snap.Load().cert, nil
		},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.snap.Load().config, nil
		},
		ClientAuth:       s.clientAuth,
		ClientCAs:        x509.NewCertPool(),
		VerifyConnection: func(cs tls.ConnectionState) error { return s.verifyConnection(s.snap.Load(), cs) },
	}
}

// verifyConnection runs on every handshake, resumed ones included, after
// crypto/tls verified the chain (or restored it from a session ticket).
//
//	certificate | client_auth_type           | result
//	------------+----------------------------+---------------------------------------------
//	none        | NoClientCert               | allowed
//	none        | VerifyClientCertIfGiven    | allowed, even with client_allowed_sans: the
//	            |                            | connection carries no identity and the
//	            |                            | gateway answers 401 (exporter-toolkit #436)
//	none        | RequireAndVerifyClientCert | refused (crypto/tls refuses first)
//	given       | NoClientCert               | refused: never requested
//	given       | Verify*                    | the leaf must not be a CA, must chain to the
//	            |                            | current client CAs with the clientAuth EKU
//	            |                            | now, and, with client_allowed_sans, must
//	            |                            | carry an allowed SAN
//
// The chain is verified again here because a resumed session carries the
// chain verified when it was created, possibly against CAs that a reload has
// since removed (CVE-2025-68121).
func (s *Server) verifyConnection(snap *snapshot, cs tls.ConnectionState) error {
	if s.verifyHook != nil {
		s.verifyHook(cs)
	}
	if len(cs.PeerCertificates) == 0 {
		if s.clientAuth == tls.RequireAndVerifyClientCert {
			return ErrClientCertRequired
		}
		return nil
	}
	if s.clientAuth == tls.NoClientCert || snap.clientCAs == nil {
		return ErrClientCertNotExpected
	}
	leaf := cs.PeerCertificates[0]
	if leaf.IsCA {
		return ErrClientCertIsCA
	}
	intermediates := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         snap.clientCAs,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return fmt.Errorf("verify client certificate: %w", err)
	}
	if !snap.allowed.empty() && !snap.allowed.allows(leaf) {
		return ErrClientSANNotAllowed
	}
	return nil
}

// Reload reads every file again and builds a complete new snapshot. On success
// it swaps the snapshot in, so that new handshakes use it; connections already
// established are not affected. On failure it keeps the previous snapshot,
// logs the error, counts it in promgate_tls_reloads_total{result="failure"}
// and returns it.
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.load()
	if err != nil {
		s.metrics.reloaded(false)
		s.logger.Error("tls reload failed; keeping the previous certificate and client CAs", "err", err)
		return err
	}
	s.install(snap)
	s.metrics.reloaded(true)
	s.logger.Info("tls reloaded",
		"subject", snap.cert.Leaf.Subject.String(),
		"not_after", snap.cert.Leaf.NotAfter.UTC())
	return nil
}
