package config

import (
	"fmt"
	"net"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
)

// Cache is the results cache of query_range (issue 23): a range is split at
// fixed boundaries on the request's step grid, parts older than
// MaxFreshness are kept and served again, and only the missing parts are
// asked of the upstream. Off by default.
type Cache struct {
	// Enabled turns the results cache on for query_range. Instant queries
	// are never cached.
	Enabled bool `yaml:"enabled"`
	// MaxBytes bounds the in-process cache (the parts' JSON); the least
	// recently used parts are evicted beyond it. Default 256MiB.
	MaxBytes units.Base2Bytes `yaml:"max_bytes"`
	// MaxFreshness is how old a part must be before it is cached: samples
	// newer than this may still arrive, so a part that ends later than
	// now minus MaxFreshness is always asked of the upstream. Default 10m,
	// as Thanos' query-frontend.
	MaxFreshness model.Duration `yaml:"max_freshness"`
	// SplitInterval is the length of a part, rounded up to a multiple of
	// the request's step. Default 1h.
	SplitInterval model.Duration `yaml:"split_interval"`
	// Memcached shares the cached parts between gateway replicas.
	Memcached Memcached `yaml:"memcached"`
}

// Memcached is the optional second tier of the results cache. The servers
// must be reachable by the gateways only: whoever can write to them can
// change what callers are answered.
type Memcached struct {
	// Addresses are host:port of the memcached servers; empty means no
	// memcached. Keys are spread over them by the client's hashing.
	Addresses []string `yaml:"addresses"`
	// Timeout bounds one memcached operation; a slower one counts as a
	// miss. Default 200ms.
	Timeout model.Duration `yaml:"timeout"`
	// MaxItemSize is the largest part stored in memcached, which refuses
	// items above its own -I limit (1MiB by default). Default 1MiB.
	MaxItemSize units.Base2Bytes `yaml:"max_item_size"`
	// SigningKeyFile holds at least 32 bytes of random data, the same on
	// every replica (openssl rand -base64 48). Every item is signed with
	// it (HMAC-SHA256), and an item whose signature does not match is a
	// miss: whoever can write to memcached without the key cannot change
	// what callers are answered. Required with addresses.
	SigningKeyFile string `yaml:"signing_key_file"`
}

// DefaultCache is the cache block's defaults.
func DefaultCache() Cache {
	return Cache{
		MaxBytes:      256 * units.MiB,
		MaxFreshness:  model.Duration(10 * time.Minute),
		SplitInterval: model.Duration(time.Hour),
		Memcached: Memcached{
			Timeout:     model.Duration(200 * time.Millisecond),
			MaxItemSize: units.MiB,
		},
	}
}

// validate checks the cache block, whether or not it is enabled.
func (c *Cache) validate() []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if c.MaxBytes < units.MiB {
		add("cache.max_bytes", "%v is below 1MiB", c.MaxBytes)
	}
	if c.MaxFreshness < model.Duration(time.Minute) {
		add("cache.max_freshness", "%v is below 1m: samples that recent may still arrive", c.MaxFreshness)
	}
	if c.SplitInterval < model.Duration(time.Minute) || c.SplitInterval > model.Duration(24*time.Hour) {
		add("cache.split_interval", "%v is not between 1m and 24h", c.SplitInterval)
	}
	for i, a := range c.Memcached.Addresses {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			add(fmt.Sprintf("cache.memcached.addresses[%d]", i), "%q is not host:port", a)
		}
	}
	if len(c.Memcached.Addresses) > 0 && c.Memcached.SigningKeyFile == "" {
		add("cache.memcached.signing_key_file", "required with addresses: items are signed, so that whoever can write to memcached cannot change answers (openssl rand -base64 48, the same file on every replica)")
	}
	if c.Memcached.Timeout <= 0 {
		add("cache.memcached.timeout", "must be positive")
	}
	if c.Memcached.MaxItemSize < 1024 {
		add("cache.memcached.max_item_size", "%v is below 1KiB", c.Memcached.MaxItemSize)
	}
	return errs
}
