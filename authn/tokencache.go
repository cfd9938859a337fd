package authn

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCacheSize bounds the verified-token cache.
const tokenCacheSize = 10000

// tokenCache remembers verified tokens until their exp, never beyond. It is
// keyed by the SHA-256 of the whole token, so that a lookup can match only
// the exact bytes that were verified and the cache holds no token.
type tokenCache struct {
	max int

	mu      sync.Mutex
	entries map[[32]byte]cacheEntry
}

type cacheEntry struct {
	id  *Identity
	exp time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[32]byte]cacheEntry)}
}

func tokenKey(raw string) [32]byte { return sha256.Sum256([]byte(raw)) }

// get returns the identity of a verified token that has not expired at now.
func (c *tokenCache) get(key [32]byte, now time.Time) (*Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if !now.Before(e.exp) {
		delete(c.entries, key)
		return nil, false
	}
	return e.id, true
}

// put stores id until exp. When the cache is full, expired entries go
// first, then arbitrary ones, so its size stays bounded under a flood of
// valid tokens.
func (c *tokenCache) put(key [32]byte, id *Identity, exp, now time.Time) {
	if !now.Before(exp) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.exp) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max-c.max/8 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cacheEntry{id: id, exp: exp}
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
