package config

import (
	"net/url"
	"slices"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
)

// Bundle is a signed OPA bundle (a .tar.gz in OPA's bundle format, made by
// `opa build --signing-key ...`) that every replica of a fleet loads from
// one URL. The gateway polls it with If-None-Match; a new bundle is used
// only when its signature verifies with PublicKeyFile and every module
// compiles, and otherwise the policy in use stays. Unsigned bundles are
// always refused.
type Bundle struct {
	// URL is the bundle, http or https. Empty means the policies folder.
	URL string `yaml:"url"`
	// PublicKeyFile holds the PEM public key (RSA or ECDSA) that must have
	// signed the bundle's .signatures.json.
	PublicKeyFile string `yaml:"public_key_file"`
	// KeyID names the key, for signatures that name none (default
	// "default"); a signature's own kid must equal it.
	KeyID string `yaml:"key_id"`
	// Algorithm is the signature algorithm: RS256 (default), RS384, RS512,
	// PS256, PS384, PS512, ES256, ES384 or ES512.
	Algorithm string `yaml:"algorithm"`
	// PollInterval is how often the URL is asked for a new bundle (default
	// 1m, at least 1s). Replicas converge on a new revision within it.
	PollInterval model.Duration `yaml:"poll_interval"`
	// CAFile holds the CAs of the bundle server's certificate, when the
	// system roots do not.
	CAFile string `yaml:"ca_file"`
	// MaxSize bounds the bundle's download (default 16MiB).
	MaxSize units.Base2Bytes `yaml:"max_size"`
}

// Bundle defaults.
const (
	DefaultBundleKeyID        = "default"
	DefaultBundleAlgorithm    = "RS256"
	DefaultBundlePollInterval = model.Duration(time.Minute)
	DefaultBundleMaxSize      = 16 * units.MiB
)

// BundleAlgorithms are the signature algorithms a bundle may use.
var BundleAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

// WithDefaults returns b with its defaults filled in.
func (b Bundle) WithDefaults() Bundle {
	if b.KeyID == "" {
		b.KeyID = DefaultBundleKeyID
	}
	if b.Algorithm == "" {
		b.Algorithm = DefaultBundleAlgorithm
	}
	if b.PollInterval == 0 {
		b.PollInterval = DefaultBundlePollInterval
	}
	if b.MaxSize == 0 {
		b.MaxSize = DefaultBundleMaxSize
	}
	return b
}

// validate adds the problems of authz.bundle.
func (b Bundle) validate(add func(key, format string, args ...any)) {
	if b.URL == "" {
		return
	}
	b = b.WithDefaults()
	if u, err := url.Parse(b.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("authz.bundle.url", "%q is not an http or https URL", b.URL)
	} else if u.User != nil {
		add("authz.bundle.url", "must not carry credentials")
	}
	if b.PublicKeyFile == "" {
		add("authz.bundle.public_key_file", "required: unsigned bundles are refused")
	}
	if !slices.Contains(BundleAlgorithms, b.Algorithm) {
		add("authz.bundle.algorithm", "unknown value %q; use one of %v", b.Algorithm, BundleAlgorithms)
	}
	if time.Duration(b.PollInterval) < time.Second {
		add("authz.bundle.poll_interval", "must be at least 1s")
	}
	if b.MaxSize <= 0 {
		add("authz.bundle.max_size", "must be positive")
	}
}
