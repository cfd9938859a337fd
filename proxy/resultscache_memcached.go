package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
// (github.com/bradfitz/gomemcache). An item is the part's 32-byte key
// followed by its series as JSON; the key is checked on every read, so an
// item filed under the wrong name is a miss, never an answer. Anyone who
// can write to the servers can change answers: they must be reachable by
// the gateways only.
type memcachedTier struct {
	c       *memcache.Client
	maxItem int
	setters chan struct{}
	m       *cacheMetrics
}

func newMemcachedTier(cfg config.Memcached) (*memcachedTier, error) {
	ss := new(memcache.ServerList)
	if err := ss.SetServers(cfg.Addresses...); err != nil {
		return nil, errors.New("cache.memcached.addresses: cannot resolve the servers")
	}
	c := memcache.NewFromSelector(ss)
	c.Timeout = time.Duration(cfg.Timeout)
	c.MaxIdleConns = 64
	return &memcachedTier{c: c, maxItem: int(cfg.MaxItemSize), setters: make(chan struct{}, memcachedSetters)}, nil
}

func memcachedKey(key [sha256.Size]byte) string {
	return "promgate:rc1:" + hex.EncodeToString(key[:])
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
		if !ok || len(it.Value) < sha256.Size || !bytes.Equal(it.Value[:sha256.Size], k[:]) {
			continue
		}
		series, derr := decodeSeries(it.Value[sha256.Size:])
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
		if err != nil || sha256.Size+len(b) > t.maxItem {
			return
		}
		v := make([]byte, 0, sha256.Size+len(b))
		v = append(v, key[:]...)
		v = append(v, b...)
		if err := t.c.Set(&memcache.Item{Key: memcachedKey(key), Value: v, Expiration: int32(memcachedTTL / time.Second)}); err != nil && t.m != nil {
			t.m.errors.Inc()
		}
	}()
}
