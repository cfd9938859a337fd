package proxy

import (
	"container/list"
	"sync"

	"github.com/promgate/promgate/enforce"
)

// queryCacheBytes bounds the query text the parse cache holds. Dashboards
// send the same queries every refresh, and PromQL parsing is the largest
// part of a request's own work for a query with many selectors.
const queryCacheBytes = 8 << 20

// queryCache keeps parsed queries by their text. A parsed enforce.Query is
// immutable (rewriting copies it), so one may serve many requests. Parse
// errors are not kept.
type queryCache struct {
	mu    sync.Mutex
	bytes int
	items map[string]*list.Element
	order *list.List // front = most recent
}

type queryEntry struct {
	text string
	q    *enforce.Query
}

func newQueryCache() *queryCache {
	return &queryCache{items: map[string]*list.Element{}, order: list.New()}
}

// parse returns the parsed text, from the cache when it was seen before.
func (c *queryCache) parse(text string) (*enforce.Query, error) {
	c.mu.Lock()
	if e, ok := c.items[text]; ok {
		c.order.MoveToFront(e)
		q := e.Value.(*queryEntry).q
		c.mu.Unlock()
		return q, nil
	}
	c.mu.Unlock()
	q, err := enforce.ParseQuery(text)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[text]; ok || len(text) > queryCacheBytes/16 {
		return q, nil
	}
	for c.bytes+len(text) > queryCacheBytes && c.order.Len() > 0 {
		old := c.order.Back()
		c.order.Remove(old)
		ent := old.Value.(*queryEntry)
		delete(c.items, ent.text)
		c.bytes -= len(ent.text)
	}
	c.items[text] = c.order.PushFront(&queryEntry{text: text, q: q})
	c.bytes += len(text)
	return q, nil
}
