package proxy

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimiters caps the identities tracked by the rate limiter. The least
// recently seen identity is forgotten first, so a flood of new identities
// cannot grow memory without bound.
const maxLimiters = 10000

// limiter is a token bucket per identity.
type limiter struct {
	rps   rate.Limit
	burst int

	mu    sync.Mutex
	items map[string]*list.Element
	order *list.List // front = most recent
}

type limiterEntry struct {
	key string
	lim *rate.Limiter
}

func newLimiter(rps float64, burst int) *limiter {
	if rps <= 0 {
		return nil
	}
	return &limiter{rps: rate.Limit(rps), burst: burst, items: map[string]*list.Element{}, order: list.New()}
}

// allow reports whether key may make a request now. A nil limiter allows all.
func (l *limiter) allow(key string, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[key]; ok {
		l.order.MoveToFront(e)
		return e.Value.(*limiterEntry).lim.AllowN(now, 1)
	}
	if l.order.Len() >= maxLimiters {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.items, old.Value.(*limiterEntry).key)
	}
	ent := &limiterEntry{key: key, lim: rate.NewLimiter(l.rps, l.burst)}
	l.items[key] = l.order.PushFront(ent)
	return ent.lim.AllowN(now, 1)
}

// exhausted reports whether key has no token left, without taking one. A
// nil limiter is never exhausted.
func (l *limiter) exhausted(key string, now time.Time) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.items[key]
	return ok && e.Value.(*limiterEntry).lim.TokensAt(now) < 1
}
