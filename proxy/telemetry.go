package proxy

import (
	"container/list"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Bounds of the per-identity and per-network series.
const (
	// maxTrackedSubjects and maxTrackedClients cap the subjects and client
	// networks that get series of their own; the rest share "other".
	maxTrackedSubjects = 1000
	maxTrackedClients  = 1000
	// maxTrackedLabels caps the enforced label names of
	// promgate_enforcement_refusals_total. They come from the policy, so a
	// handful is normal.
	maxTrackedLabels = 64
	// idleEviction is how long a subject or network must have been idle
	// before a newcomer may take its place when the table is full. A flood
	// of new callers cannot push out the ones that are active, so their
	// counters never reset under the detectors' rate() and increase();
	// newcomers are counted in "other" until a tracked entry goes idle.
	idleEviction = 15 * time.Minute
	// maxLabelValue bounds a subject's length in a label.
	maxLabelValue = 128
	// overflow is the shared label value beyond the caps.
	overflow = "other"
)

// authnMethods are the method label values of
// promgate_client_authn_failures_total: how the caller tried to
// authenticate, "none" when no credentials came, "unknown" for anything else.
var authnMethods = []string{"none", "mtls", "oidc", "session", "unknown"}

// upstreamCodes start at zero for every route: what Prometheus answers (200,
// 400 bad_data, 422 execution, 503 unavailable/timeout) and "error" for no
// answer at all.
var upstreamCodes = []string{"200", "400", "422", "500", "503", "error"}

// telemetry holds the gateway's per-identity and per-network series, which
// feed its own detectors. Every method is safe for concurrent use. Subjects,
// client networks and enforced labels are each capped; see the constants.
type telemetry struct {
	requests  *prometheus.CounterVec // subject, route
	bytes     *prometheus.CounterVec // subject, route
	refusals  *prometheus.CounterVec // subject, label
	authnFail *prometheus.CounterVec // client, method
	upstreamC *prometheus.CounterVec // route, code
	coalesced *prometheus.CounterVec // route

	now func() time.Time

	mu       sync.Mutex // guards the tables and series creation and deletion
	subjects *lru
	clients  *lru
	labels   map[string]bool
}

func newTelemetry(reg prometheus.Registerer, now func() time.Time) *telemetry {
	t := &telemetry{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_identity_requests_total",
			Help: "Requests by authenticated subject and route. At most 1000 subjects have series of their own; the rest count as subject=\"other\".",
		}, []string{"subject", "route"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_identity_response_bytes_total",
			Help: "Response body bytes sent, by authenticated subject and route, with the same subject cap as promgate_identity_requests_total.",
		}, []string{"subject", "route"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_enforcement_refusals_total",
			Help: "Queries refused because they could only match outside the caller's allowed label values, by subject and enforced label.",
		}, []string{"subject", "label"}),
		authnFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_client_authn_failures_total",
			Help: "Authentication failures by client network (the caller's /24 for IPv4, /56 for IPv6, after trusted_proxies) and method. At most 1000 networks have series of their own; the rest count as client=\"other\".",
		}, []string{"client", "method"}),
		upstreamC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_upstream_requests_total",
			Help: "Requests forwarded upstream, by route and the upstream's status code (\"error\" when no response came).",
		}, []string{"route", "code"}),
		coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_upstream_coalesced_total",
			Help: "Requests answered by an identical upstream request that was already in flight (upstream.coalesce), by route. They are not counted in promgate_upstream_requests_total.",
		}, []string{"route"}),
		now:      now,
		subjects: newLRU(maxTrackedSubjects),
		clients:  newLRU(maxTrackedClients),
		labels:   map[string]bool{},
	}
	if t.now == nil {
		t.now = time.Now
	}
	reg.MustRegister(t.requests, t.bytes, t.refusals, t.authnFail, t.upstreamC, t.coalesced)
	for _, rt := range Routes {
		t.coalesced.WithLabelValues(rt)
		t.requests.WithLabelValues(overflow, rt)
		t.bytes.WithLabelValues(overflow, rt)
		for _, code := range upstreamCodes {
			t.upstreamC.WithLabelValues(rt, code)
		}
	}
	for _, m := range authnMethods {
		t.authnFail.WithLabelValues(overflow, m)
	}
	return t
}

// request counts one request of an authenticated subject and the bytes of
// its response.
func (t *telemetry) request(subject, route string, bytes int64) {
	route = knownRoute(route)
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.subjectLocked(subject)
	t.requests.WithLabelValues(s, route).Inc()
	if bytes > 0 {
		t.bytes.WithLabelValues(s, route).Add(float64(bytes))
	}
}

// refusal counts a query of subject refused by the enforcement of label.
func (t *telemetry) refusal(subject, label string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.subjectLocked(subject)
	label = labelValue(label)
	if !t.labels[label] {
		if len(t.labels) >= maxTrackedLabels {
			label = overflow
		} else {
			t.labels[label] = true
		}
	}
	t.refusals.WithLabelValues(s, label).Inc()
}

// authnFailure counts a failed authentication from remoteIP (the caller's
// address after trusted_proxies, counted by its clientNetwork) with method (mtls, oidc, session, or none
// when no credentials came).
func (t *telemetry) authnFailure(remoteIP, method string) {
	if !contains(authnMethods, method) {
		method = "unknown"
	}
	if a, err := netip.ParseAddr(remoteIP); err == nil {
		remoteIP = a.Unmap().String() // ::ffff:192.0.2.1 is 192.0.2.0/24, not ::/56
	}
	network := clientNetwork(remoteIP)
	t.mu.Lock()
	defer t.mu.Unlock()
	c := overflow
	if network != overflow {
		c = t.track(t.clients, network, func(old string) {
			t.authnFail.DeletePartialMatch(prometheus.Labels{"client": old})
		})
	}
	if c != overflow {
		for _, m := range authnMethods {
			t.authnFail.WithLabelValues(c, m) // a new network starts at 0
		}
	}
	t.authnFail.WithLabelValues(c, method).Inc()
}

// upstream counts a request forwarded upstream and the status code it got;
// a code outside 100-599 (0 for a transport error or timeout) counts as
// "error".
func (t *telemetry) upstream(route string, code int) {
	c := "error"
	if code >= 100 && code <= 599 {
		c = strconv.Itoa(code)
	}
	t.upstreamC.WithLabelValues(knownRoute(route), c).Inc()
}

// coalesce counts a request answered by another one's upstream request.
func (t *telemetry) coalesce(route string) {
	t.coalesced.WithLabelValues(knownRoute(route)).Inc()
}

// subjectLocked returns the label value for subject: itself while tracked,
// else "other". A subject named "other" (or empty) is counted with the
// overflow and never tracked, so that evicting it cannot delete the overflow
// series.
func (t *telemetry) subjectLocked(subject string) string {
	subject = labelValue(subject)
	if subject == "" || subject == overflow {
		return overflow
	}
	return t.track(t.subjects, subject, func(old string) {
		l := prometheus.Labels{"subject": old}
		t.requests.DeletePartialMatch(l)
		t.bytes.DeletePartialMatch(l)
		t.refusals.DeletePartialMatch(l)
	})
}

// track marks key as seen in table and returns the label value to use: key,
// or "other" when the table is full of entries that are not idle. An entry
// idle for idleEviction makes room, and evict deletes its series.
func (t *telemetry) track(table *lru, key string, evict func(old string)) string {
	now := t.now()
	if table.touch(key, now) {
		return key
	}
	if table.full() {
		old, ok := table.evictIdle(now.Add(-idleEviction))
		if !ok {
			return overflow
		}
		evict(old)
	}
	table.add(key, now)
	return key
}

// labelValue makes s a bounded, valid UTF-8 label value.
func labelValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxLabelValue {
		return s
	}
	cut := maxLabelValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func knownRoute(route string) string {
	if contains(Routes, route) {
		return route
	}
	return RouteUnknown
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// lru is a bounded set of keys ordered by last use. It is not safe for
// concurrent use.
type lru struct {
	max   int
	order *list.List // front is the most recent; values are *lruEntry
	index map[string]*list.Element
}

type lruEntry struct {
	key  string
	seen time.Time
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), index: map[string]*list.Element{}}
}

// touch marks key as used now and reports whether it is tracked.
func (l *lru) touch(key string, now time.Time) bool {
	e, ok := l.index[key]
	if !ok {
		return false
	}
	e.Value.(*lruEntry).seen = now
	l.order.MoveToFront(e)
	return true
}

func (l *lru) full() bool { return l.order.Len() >= l.max }

func (l *lru) add(key string, now time.Time) {
	l.index[key] = l.order.PushFront(&lruEntry{key: key, seen: now})
}

// evictIdle removes the least recently used key if it was last used before
// cutoff.
func (l *lru) evictIdle(cutoff time.Time) (string, bool) {
	e := l.order.Back()
	if e == nil {
		return "", false
	}
	ent := e.Value.(*lruEntry)
	if !ent.seen.Before(cutoff) {
		return "", false
	}
	l.order.Remove(e)
	delete(l.index, ent.key)
	return ent.key, true
}
