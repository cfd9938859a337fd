// Package tlsutil builds promgate's TLS configurations: the public listener's
// server side, with client certificate verification and hot reload, and the
// client side of an https upstream. It also makes development PKIs for
// `promgate certs dev`, the demo and tests.
//
// # Listener guarantees
//
// A Server refuses, at construction and at every reload:
//
//   - a certificate whose key does not match it, or whose leaf has expired;
//   - a client CA bundle that is missing, holds no certificate, holds a PEM
//     block other than CERTIFICATE, or holds only expired certificates, when
//     client_auth_type asks for client certificates;
//   - client_auth_type RequestClientCert and RequireAnyClientCert, which accept
//     certificates without verifying them, and any unknown value;
//   - min_version below TLS12.
//
// Errors are prefixed by their YAML path, such as "tls.key_file: ", and all of
// them are reported at once.
//
// The listener negotiates TLS 1.2 or 1.3 only. Its TLS 1.2 cipher suites are
// the AEAD suites of Mozilla's intermediate profile that Go implements:
// ECDHE-ECDSA and ECDHE-RSA with AES-128-GCM, AES-256-GCM and
// ChaCha20-Poly1305. RSA key exchange (no forward secrecy) and CBC suites
// (padding oracles such as Lucky13) are refused. ALPN offers h2 and http/1.1.
//
// A presented client certificate fails the handshake, never falling back to an
// anonymous connection, when it does not chain to a current client CA, has
// expired, lacks the clientAuth extended key usage (a server-only
// certificate), is itself a CA certificate, or, with client_allowed_sans set,
// carries none of the allowed SANs. SANs match exactly: DNS names, e-mail
// addresses and URIs byte for byte, IP addresses by value; the subject CN is
// never consulted.
//
// These checks run in tls.Config.VerifyConnection, which crypto/tls calls on
// every handshake, resumed ones included. A check in VerifyPeerCertificate
// would be skipped on resumption, and a session created before a reload
// removed a CA or narrowed the allow-list could be resumed with the old trust
// (CVE-2025-68121). For the same reason the chain is verified again against
// the client CAs current at the handshake.
//
// With VerifyClientCertIfGiven and client_allowed_sans, a client that presents
// no certificate completes the handshake without an identity; the gateway then
// answers 401 unless another method authenticates it. The allow-list is never
// applied to a missing certificate, which is what made exporter-toolkit panic
// (prometheus/exporter-toolkit#436). With RequireAndVerifyClientCert a missing
// certificate fails the handshake.
//
// # Reload
//
// Reload reads the certificate, key and client CA files again, builds a
// complete snapshot, and swaps it in atomically; new handshakes use it, and
// established connections keep theirs. A half-written pair (a new certificate
// with the old key, a truncated file) fails the reload: the previous snapshot
// stays, the failure is logged at error level and counted in
// promgate_tls_reloads_total{result="failure"}, and nothing exits. The
// gateway's reload watcher (package reload) calls Reload when Files change
// or on SIGHUP. One handshake never mixes two snapshots.
//
// # Upstream
//
// UpstreamConfig trusts only ca_file when it is set (the system pool
// otherwise), sends the configured client certificate, and requires TLS 1.2.
//
// # Development PKI
//
// WriteDevPKI writes an ECDSA P-256 CA, a server certificate and client
// certificates with private keys of mode 0600. It refuses a folder that
// already holds ca.key or ca.crt, so an existing CA is never replaced. DevCA
// and CertSpec make the same certificates in memory, including deliberately
// bad ones (expired, wrong usage, CA as leaf) for tests.
package tlsutil
