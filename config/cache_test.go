package config

import (
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
)

func TestCacheDefaults(t *testing.T) {
	c, err := Parse([]byte(good), "/etc/promgate")
	if err != nil {
		t.Fatal(err)
	}
	want := Cache{MaxBytes: 256 * units.MiB, MaxFreshness: model.Duration(10 * time.Minute), SplitInterval: model.Duration(time.Hour),
		Memcached: Memcached{Timeout: model.Duration(200 * time.Millisecond), MaxItemSize: units.MiB}}
	if c.Cache.Enabled || c.Cache.MaxBytes != want.MaxBytes || c.Cache.MaxFreshness != want.MaxFreshness ||
		c.Cache.SplitInterval != want.SplitInterval || c.Cache.Memcached.Timeout != want.Memcached.Timeout ||
		c.Cache.Memcached.MaxItemSize != want.Memcached.MaxItemSize || len(c.Cache.Memcached.Addresses) != 0 {
		t.Errorf("cache defaults = %+v, want %+v", c.Cache, want)
	}
	in := good + "cache:\n  enabled: true\n  max_bytes: 1GiB\n  split_interval: 30m\n  memcached:\n    addresses: [\"10.0.0.1:11211\", \"mc:11211\"]\n    signing_key_file: mc.key\n"
	if c, err = Parse([]byte(in), "/etc/promgate"); err != nil {
		t.Fatal(err)
	}
	if !c.Cache.Enabled || c.Cache.MaxBytes != units.GiB || c.Cache.SplitInterval != model.Duration(30*time.Minute) || len(c.Cache.Memcached.Addresses) != 2 ||
		c.Cache.Memcached.SigningKeyFile != "/etc/promgate/mc.key" {
		t.Errorf("cache = %+v", c.Cache)
	}
}

func TestCacheBad(t *testing.T) {
	for _, tc := range []struct{ name, block, want string }{
		{"small", "  max_bytes: 1KiB\n", "cache.max_bytes: 1KiB is below 1MiB"},
		{"fresh", "  max_freshness: 10s\n", "cache.max_freshness: 10s is below 1m"},
		{"split", "  split_interval: 2d\n", "cache.split_interval: 2d is not between 1m and 24h"},
		{"unsigned", "  memcached:\n    addresses: [\"mc:11211\"]\n", "cache.memcached.signing_key_file: required with addresses"},
		{"address", "  memcached:\n    addresses: [memcached]\n", `cache.memcached.addresses[0]: "memcached" is not host:port`},
		{"timeout", "  memcached:\n    timeout: 0s\n", "cache.memcached.timeout: must be positive"},
		{"unknown", "  ttl: 1h\n", "cache.ttl: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(good+"cache:\n"+tc.block), "/etc/promgate")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
