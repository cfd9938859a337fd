package proxy

import (
	"strings"
	"testing"
)

func TestQueryCache(t *testing.T) {
	c := newQueryCache()
	a, err := c.parse("up")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.parse("up")
	if err != nil || a != b {
		t.Errorf("the second parse of the same text was not served from the cache")
	}
	if _, err := c.parse("up{"); err == nil {
		t.Error("a parse error was not returned")
	}
	if _, ok := c.items["up{"]; ok {
		t.Error("a parse error was cached")
	}
	// The cache stays within its byte bound.
	long := strings.Repeat("x", queryCacheBytes/32)
	for i := 0; i < 100; i++ {
		if _, err := c.parse(long + strings.Repeat("y", i)); err != nil {
			t.Fatal(err)
		}
	}
	if c.bytes > queryCacheBytes {
		t.Errorf("cache holds %d bytes, bound %d", c.bytes, queryCacheBytes)
	}
}
