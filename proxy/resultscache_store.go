package proxy

import (
	"container/list"
	"context"
	"crypto/sha256"
	"net/http"
	"sync"
)

// partStore holds parts in process, least recently used evicted first
// beyond maxBytes, with an optional shared tier (memcached) behind it.
type partStore struct {
	maxBytes int64
	m        *cacheMetrics
	remote   remoteTier

	mu    sync.Mutex
	bytes int64
	items map[[sha256.Size]byte]*list.Element
	order *list.List // front = most recent
}

// remoteTier is a cache shared between gateway replicas.
type remoteTier interface {
	// getMulti returns the parts it holds of keys; a failure is reported
	// and counts as misses.
	getMulti(ctx context.Context, keys [][sha256.Size]byte) (map[[sha256.Size]byte][]partSeries, error)
	// set stores a part in the background, or drops it when busy.
	set(key [sha256.Size]byte, series []partSeries)
}

type storeEntry struct {
	key    [sha256.Size]byte
	series []partSeries
	size   int64
}

func newPartStore(maxBytes int64, m *cacheMetrics) *partStore {
	return &partStore{maxBytes: maxBytes, m: m, items: map[[sha256.Size]byte]*list.Element{}, order: list.New()}
}

// sizeOf estimates the memory a part holds: its JSON and the slices and
// labels that index it.
func sizeOf(series []partSeries) int64 {
	n := int64(64)
	for _, s := range series {
		n += int64(len(s.Metric)) + 96 + int64(s.labels.Len())*32
		for _, p := range s.Values {
			n += int64(len(p)) + 24
		}
		for _, p := range s.Histograms {
			n += int64(len(p)) + 24
		}
	}
	return n
}

// lookup fills the cacheable parts it holds, in memory first, then in the
// remote tier (whose parts are kept in memory too).
func (s *partStore) lookup(req *http.Request, parts []part) {
	var missing [][sha256.Size]byte
	s.mu.Lock()
	for i := range parts {
		p := &parts[i]
		if !p.cacheable {
			continue
		}
		if e, ok := s.items[p.key]; ok {
			s.order.MoveToFront(e)
			p.series, p.hit = e.Value.(*storeEntry).series, true
			s.m.hits.WithLabelValues("memory").Inc()
			continue
		}
		missing = append(missing, p.key)
	}
	s.mu.Unlock()
	if len(missing) == 0 || s.remote == nil {
		return
	}
	got, err := s.remote.getMulti(req.Context(), missing)
	if err != nil {
		s.m.errors.Inc()
	}
	for i := range parts {
		p := &parts[i]
		if !p.cacheable || p.hit {
			continue
		}
		if series, ok := got[p.key]; ok {
			p.series, p.hit = series, true
			s.m.hits.WithLabelValues("memcached").Inc()
			s.putLocal(p.key, series)
		}
	}
}

// put stores a part in memory and in the remote tier.
func (s *partStore) put(_ context.Context, key [sha256.Size]byte, series []partSeries) {
	s.putLocal(key, series)
	if s.remote != nil {
		s.remote.set(key, series)
	}
}

func (s *partStore) putLocal(key [sha256.Size]byte, series []partSeries) {
	size := sizeOf(series)
	if size > s.maxBytes/16 {
		// One part may not push out a sixteenth of the cache.
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok {
		s.order.MoveToFront(e)
		return
	}
	for s.bytes+size > s.maxBytes && s.order.Len() > 0 {
		old := s.order.Back()
		s.order.Remove(old)
		ent := old.Value.(*storeEntry)
		delete(s.items, ent.key)
		s.bytes -= ent.size
		s.m.evictions.Inc()
	}
	s.items[key] = s.order.PushFront(&storeEntry{key: key, series: series, size: size})
	s.bytes += size
	s.m.bytes.Set(float64(s.bytes))
}
