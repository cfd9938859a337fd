package proxy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/promgate/promgate/config"
)

// memcachedTTL is how long memcached keeps a part. A part never changes
// once cached; the expiry only returns memory that nobody asks for.
const memcachedTTL = 24 * time.Hour

// memcachedSetters bounds the background stores in flight; beyond it a part
// is not stored in memcached (it stays in memory).
const memcachedSetters = 16

// memcachedTier shares parts between gateway replicas through memcached
// (github.com/bradfitz/gomemcache). An item is the part's 32-byte key, an
// HMAC-SHA256 of the key and the series under the signing key
// (cache.memcached.signing_key_file), then the series as JSON. Both are
// checked on every read: an item filed under the wrong name, or written by
// anyone without the key, is a miss, never an answer.
type memcachedTier struct {
	c       *memcache.Client
	maxItem int
	setters chan struct{}
	signKey []byte
	m       *cacheMetrics
}

// minSigningKey is the fewest bytes of a signing key.
const minSigningKey = 32

func newMemcachedTier(cfg config.Memcached) (*memcachedTier, error) {
	key, err := readSigningKey(cfg.SigningKeyFile)
	if err != nil {
		return nil, err
	}
	ss := new(memcache.ServerList)
	if err := ss.SetServers(cfg.Addresses...); err != nil {
		return nil, errors.New("cache.memcached.addresses: cannot resolve the servers")
	}
	c := memcache.NewFromSelector(ss)
	c.Timeout = time.Duration(cfg.Timeout)
	c.MaxIdleConns = 64
	return &memcachedTier{c: c, maxItem: int(cfg.MaxItemSize), setters: make(chan struct{}, memcachedSetters), signKey: key}, nil
}

// readSigningKey reads the memcached signing key: the file's content
// without surrounding whitespace, at least minSigningKey bytes. The error
// names the file, never its content.
func readSigningKey(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("cache.memcached.signing_key_file: required with addresses")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cache.memcached.signing_key_file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < minSigningKey {
		return nil, fmt.Errorf("cache.memcached.signing_key_file %s: %d bytes, want at least %d of random data (openssl rand -base64 48)", path, len(b), minSigningKey)
	}
	return b, nil
}

func memcachedKey(key [sha256.Size]byte) string {
	return "promgate:rc2:" + hex.EncodeToString(key[:])
}

// itemMAC is the signature of an item: HMAC-SHA256 of its name's version,
// the part's key and the series' JSON.
func (t *memcachedTier) itemMAC(key [sha256.Size]byte, series []byte) []byte {
	h := hmac.New(sha256.New, t.signKey)
	h.Write([]byte("promgate:rc2\x00"))
	h.Write(key[:])
	h.Write(series)
	return h.Sum(nil)
}

// open returns the series of an item read under key, or false when the
// item is not one this gateway's fleet wrote for key.
func (t *memcachedTier) open(key [sha256.Size]byte, v []byte) ([]byte, bool) {
	const head = sha256.Size * 2
	if len(v) < head || !bytes.Equal(v[:sha256.Size], key[:]) {
		return nil, false
	}
	series := v[head:]
	if !hmac.Equal(v[sha256.Size:head], t.itemMAC(key, series)) {
		return nil, false
	}
	return series, true
}

func (t *memcachedTier) getMulti(_ context.Context, keys [][sha256.Size]byte) (map[[sha256.Size]byte][]partSeries, error) {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = memcachedKey(k)
	}
	items, err := t.c.GetMulti(names)
	out := make(map[[sha256.Size]byte][]partSeries, len(items))
	for i, k := range keys {
		it, ok := items[names[i]]
		if !ok {
			continue
		}
		b, ok := t.open(k, it.Value)
		if !ok {
			if t.m != nil {
				t.m.rejected.Inc()
			}
			continue
		}
		series, derr := decodeSeries(b)
		if derr != nil {
			continue
		}
		out[k] = series
	}
	return out, err
}

func (t *memcachedTier) set(key [sha256.Size]byte, series []partSeries) {
	select {
	case t.setters <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-t.setters }()
		b, err := json.Marshal(series)
		if err != nil || 2*sha256.Size+len(b) > t.maxItem {
			return
		}
		v := make([]byte, 0, 2*sha256.Size+len(b))
		v = append(v, key[:]...)
		v = append(v, t.itemMAC(key, b)...)
		v = append(v, b...)
		if err := t.c.Set(&memcache.Item{Key: memcachedKey(key), Value: v, Expiration: int32(memcachedTTL / time.Second)}); err != nil && t.m != nil {
			t.m.errors.Inc()
		}
	}()
}
