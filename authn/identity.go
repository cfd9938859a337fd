package authn

// Method names how an identity was authenticated. The values appear in the
// policy input, the audit record and metric labels.
type Method string

// Authentication methods.
const (
	MethodMTLS    Method = "mtls"
	MethodOIDC    Method = "oidc"
	MethodSession Method = "session"
)

// Identity is a verified caller. It is built only by an Authenticator and is
// read-only afterwards. It never holds a credential: no token, cookie or key.
type Identity struct {
	// Method is how the caller proved who it is.
	Method Method `json:"method"`
	// Subject is the caller's name: a certificate CN or SAN, or a token claim.
	Subject string `json:"subject"`
	// Groups are the caller's groups: certificate OUs or a token claim.
	Groups []string `json:"groups"`
	// Issuer is the token issuer, or the certificate's issuer DN for mTLS.
	Issuer string `json:"issuer,omitempty"`
	// Claims are a token's verified claims (OIDC only).
	Claims map[string]any `json:"claims,omitempty"`
	// Certificate describes the verified client certificate, when one was given.
	Certificate *Certificate `json:"certificate,omitempty"`
}

// Certificate describes a verified client certificate.
type Certificate struct {
	// Subject is the certificate's subject DN.
	Subject string `json:"subject"`
	// SANs are the DNS names, e-mail addresses, IP addresses and URIs.
	SANs []string `json:"sans"`
	// SPIFFEID is the spiffe:// URI SAN, if the certificate has exactly one.
	SPIFFEID string `json:"spiffe_id"`
	// FingerprintSHA256 is the hex SHA-256 of the DER certificate.
	FingerprintSHA256 string `json:"fingerprint_sha256"`
}
