package proxy

import (
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/promapi"
)

// failureGuard limits authentication failures per client network, so that
// a credential spray costs the gateway little. It cannot be turned against
// others: a request without credentials costs nothing to refuse and never
// counts; only presented-but-invalid credentials do; and a caller whose
// certificate the TLS handshake already verified is authenticated without
// consulting the limiter at all. Only a caller presenting a credential that
// needs work to check (a bearer token, a session cookie) from a network
// that keeps failing is refused before the check.
type failureGuard struct {
	lim     *limiter
	v4, v6  int
	refused prometheus.Counter
}

func newFailureGuard(c config.AuthFailures, reg prometheus.Registerer) *failureGuard {
	g := &failureGuard{lim: newLimiter(c.PerSecond, c.Burst), v4: c.PrefixV4, v6: c.PrefixV6,
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "promgate_authn_failure_limited_total",
			Help: "Requests refused with 429 before their credentials were checked, because their client network exceeded limits.auth_failures.",
		})}
	reg.MustRegister(g.refused)
	return g
}

func (g *failureGuard) network(remoteAddr string) string { return networkOf(remoteAddr, g.v4, g.v6) }

// handshakeVerified reports whether the TLS handshake verified a client
// certificate: checking it again costs the gateway nothing.
func handshakeVerified(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}

// authenticate sets st.identity, or answers the failure. It returns nil
// with no identity when it has answered the request itself (a browser sent
// to the login).
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, st *state) error {
	network := h.failures.network(st.remoteAddr)
	if !handshakeVerified(r) && presentsCredentials(r) && h.failures.lim.exhausted(network, h.now()) {
		// This network keeps failing authentication: refuse before
		// spending any work on its credentials.
		h.failures.refused.Inc()
		w.Header().Set("Retry-After", "10")
		return promapi.Errorf(promapi.ErrTooManyRequests, "too many failed authentications from your network; retry later")
	}
	id, err := h.authn.Authenticate(r)
	if err == nil {
		st.identity = id
		return nil
	}
	method := "none"
	if !errors.Is(err, authn.ErrNoCredentials) {
		h.failures.lim.allow(network, h.now())
	}
	if ae, ok := errors.AsType[*authn.Error](err); ok {
		method = string(ae.Method)
		if ae.Method == authn.MethodSession && h.login != nil {
			// A tampered, foreign or expired cookie is cleared, so the
			// browser stops sending it.
			h.login.ClearCookies(w, r)
		}
	}
	h.tel.authnFailure(st.remoteAddr, method)
	if h.login != nil && isConsole(r) && wantsHTML(r) {
		// A browser without a session goes to the login, and comes back.
		st.route = RouteUI
		st.err = err
		http.Redirect(w, r, h.login.StartURL(r), http.StatusFound)
		return nil
	}
	if h.login == nil && isConsole(r) && wantsHTML(r) {
		// No login here: the browser gets a page, not JSON, naming the
		// credential it needs (console.go).
		return h.consoleSignIn(w, r, st, err)
	}
	return h.authnError(err)
}

// presentsCredentials reports whether a request carries anything an
// authenticator would check: an Authorization header, a cookie, or a
// client certificate.
func presentsCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" ||
		(r.TLS != nil && len(r.TLS.PeerCertificates) > 0)
}

// inflight bounds the requests each identity has in flight to the upstream,
// so that one caller cannot hold every upstream connection with slow
// queries. The bound is limits.max_concurrency, or the decision's when it
// is stricter; zero means none.
type inflight struct {
	mu  sync.Mutex
	n   map[string]int
	max int
	// refused counts the requests refused with 429.
	refused prometheus.Counter
}

func newInflight(max int, reg prometheus.Registerer) *inflight {
	f := &inflight{n: map[string]int{}, max: max, refused: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "promgate_concurrency_limited_total",
		Help: "Requests refused with 429 because their identity already had limits.max_concurrency requests in flight to the upstream.",
	})}
	reg.MustRegister(f.refused)
	return f
}

// acquire takes one of the identity's slots, or fails with 429. release
// gives it back.
func (f *inflight) acquire(g *grant, id *authn.Identity) (release func(), err error) {
	limit := f.max
	if d := g.dec.Limits.MaxConcurrency; d > 0 && (limit == 0 || d < limit) {
		limit = d
	}
	if limit <= 0 {
		return func() {}, nil
	}
	key := bucketOf(id, &g.dec)
	f.mu.Lock()
	if f.n[key] >= limit {
		f.mu.Unlock()
		f.refused.Inc()
		return nil, promapi.Errorf(promapi.ErrTooManyRequests, "%s already has %s requests in flight, the limit; retry when one has finished", id.Subject, strconv.Itoa(limit))
	}
	f.n[key]++
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		if f.n[key]--; f.n[key] <= 0 {
			delete(f.n, key)
		}
		f.mu.Unlock()
	}, nil
}

// pageLimit bounds the login pages per client network: each start and
// callback costs a round trip to the provider.
const (
	pagePerSecond = 5
	pageBurst     = 30
)
