package proxy

import (
	"container/list"
	"math"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/promapi"
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

// newBuckets returns a limiter whose buckets may each have their own rate
// (allowAt); rps and burst are the rate of allow. It is never nil, since a
// decision may set a rate where the configuration sets none.
func newBuckets(rps float64, burst int) *limiter {
	return &limiter{rps: rate.Limit(rps), burst: burst, items: map[string]*list.Element{}, order: list.New()}
}

// allow reports whether key may make a request now, taking a token. A
// bucket that exists keeps the rate it has (a decision may have set it); a
// new one fills at the limiter's rate. A nil limiter allows all.
func (l *limiter) allow(key string, now time.Time) bool {
	if l == nil {
		return true
	}
	return l.take(key, l.rps, l.burst, false, now)
}

// allowAt reports whether key may make a request now, its bucket filling at
// rps with room for burst. A bucket whose rate changed (a new decision) keeps
// its tokens and takes the new rate. A zero or negative rps allows all.
func (l *limiter) allowAt(key string, rps rate.Limit, burst int, now time.Time) bool {
	if l == nil {
		return true
	}
	return l.take(key, rps, burst, true, now)
}

// take takes a token from key's bucket, making the bucket at rps and burst
// when it is new, and, with set, moving an existing bucket to them.
func (l *limiter) take(key string, rps rate.Limit, burst int, set bool, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[key]; ok {
		l.order.MoveToFront(e)
		lim := e.Value.(*limiterEntry).lim
		if set && lim.Limit() != rps {
			lim.SetLimitAt(now, rps)
		}
		if set && lim.Burst() != burst {
			lim.SetBurstAt(now, burst)
		}
		return lim.Limit() <= 0 || lim.AllowN(now, 1)
	}
	if rps <= 0 {
		return true
	}
	if l.order.Len() >= maxLimiters {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.items, old.Value.(*limiterEntry).key)
	}
	ent := &limiterEntry{key: key, lim: rate.NewLimiter(rps, burst)}
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
	if !ok {
		return false
	}
	lim := e.Value.(*limiterEntry).lim
	return lim.Limit() > 0 && lim.TokensAt(now) < 1
}

// rateKey is the identity's own rate-limit bucket: its method, issuer and
// subject, so that one sub from two issuers are two callers. Requests that
// no decision names another bucket for draw from it: those no route
// serves, and those refused before the policy answered.
func rateKey(id *authn.Identity) string {
	return "id\x00" + string(id.Method) + "\x00" + id.Issuer + "\x00" + id.Subject
}

// bucketOf is the rate-limit and concurrency bucket of a decided request:
// the decision's rate_key, shared by every caller the policy gives it, or
// else the identity's own. The prefixes keep the two kinds apart.
func bucketOf(id *authn.Identity, dec *authz.Decision) string {
	if dec.RateKey != "" {
		return "key\x00" + dec.RateKey
	}
	return rateKey(id)
}

// rateLimit takes one token from the decided request's bucket, denials
// included, so that the policy evaluations a caller causes are bounded too.
// A decision's requests_per_second and burst replace the configured ones
// for its bucket, looser or stricter: that is how a policy lets a shared
// identity such as Grafana's own certificate ask more than one user does.
// A decision's burst alone applies to the configured rate.
func (h *Handler) rateLimit(id *authn.Identity, dec *authz.Decision) error {
	rps, burst := h.cfg.Limits.RequestsPerSecond, h.cfg.Limits.Burst
	dl := dec.Limits
	switch {
	case dl.RequestsPerSecond > 0:
		rps, burst = dl.RequestsPerSecond, dl.Burst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(rps)))
		}
	case dl.Burst > 0:
		burst = dl.Burst
	}
	if !h.limiter.allowAt(bucketOf(id, dec), rate.Limit(rps), burst, h.now()) {
		return errRateLimited(id)
	}
	return nil
}

// identityLimit applies the identity's own bucket before a route runs. A
// request no route serves never reaches a decision, so it draws from it
// here. A served one only checks it: requests refused before the policy
// answered (malformed ones) empty it after the fact (Handler.serve), and
// while it is empty the identity is refused before anything is parsed.
func (h *Handler) identityLimit(rt *route, method string, id *authn.Identity) error {
	now := h.now()
	if rt == nil || !slices.Contains(rt.methods, method) {
		if !h.limiter.allow(rateKey(id), now) {
			return errRateLimited(id)
		}
		return nil
	}
	if h.limiter.exhausted(rateKey(id), now) {
		return errRateLimited(id)
	}
	return nil
}

func errRateLimited(id *authn.Identity) error {
	return promapi.Errorf(promapi.ErrTooManyRequests, "rate limit exceeded for %s; slow down", id.Subject)
}
