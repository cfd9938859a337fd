package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
)

func TestRateLimitPerIdentity(t *testing.T) {
	f := newFixture(t)
	f.h.limiter = newLimiter(1, 2)
	codes := map[string][]int{}
	for _, user := range []string{"alice", "alice", "alice", "root"} {
		w := f.do(t, request{user: user, target: "/api/v1/query?query=up"})
		codes[user] = append(codes[user], w.Code)
	}
	if got := codes["alice"]; got[0] != 200 || got[1] != 200 || got[2] != http.StatusTooManyRequests {
		t.Errorf("alice got %v, want 200 200 429", got)
	}
	if got := codes["root"]; got[0] != 200 {
		t.Errorf("root got %v: another identity's bucket must not be shared", got)
	}
	if n := f.up.count(); n != 3 {
		t.Errorf("upstream saw %d requests, want 3", n)
	}
}

func TestLimiterIsBounded(t *testing.T) {
	l := newLimiter(1, 1)
	now := time.Now()
	for i := 0; i < maxLimiters+100; i++ {
		l.allow(string(rune(i)), now)
	}
	if n := l.order.Len(); n != maxLimiters {
		t.Errorf("tracked %d identities, want the cap %d", n, maxLimiters)
	}
}

func TestQueryTimeout(t *testing.T) {
	f := newFixture(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer slow.Close()
	cfg := *f.h.cfg
	cfg.Upstream.URL = slow.URL
	cfg.Limits.QueryTimeout = model.Duration(100 * time.Millisecond)
	h, err := New(Options{Config: &cfg, Authn: f.h.authn, Authz: f.dec, Audit: f.aud,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	w := f.do(t, request{user: "root", target: "/api/v1/query?query=up"})
	if w.Code != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504; body %s", w.Code, w.Body.String())
	}
	if typ, _ := errorBody(t, w); typ != "timeout" {
		t.Errorf("errorType %q, want timeout", typ)
	}
}

func TestClientIP(t *testing.T) {
	c, err := newClientIP([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, remote, xff, want string
	}{
		{"untrusted peer ignores XFF", "192.0.2.7:1", "198.51.100.1", "192.0.2.7"},
		{"trusted peer, one hop", "10.0.0.1:1", "198.51.100.1", "198.51.100.1"},
		{"right-most untrusted hop", "10.0.0.1:1", "6.6.6.6, 198.51.100.1, 10.0.0.2", "198.51.100.1"},
		{"all trusted", "10.0.0.1:1", "10.0.0.3", "10.0.0.3"},
		{"garbage stops the walk", "10.0.0.1:1", "198.51.100.1, nonsense", "10.0.0.1"},
		{"no XFF", "10.0.0.1:1", "", "10.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := c.of(r); got != tc.want {
				t.Errorf("of() = %q, want %q", got, tc.want)
			}
		})
	}
}
