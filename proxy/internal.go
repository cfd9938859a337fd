package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/promgate/promgate/promapi"
)

// Internal returns the handler of internal_listen: the gateway's own
// /metrics, /-/healthy and /-/ready. ready reports an error while the gateway
// should not get traffic.
func Internal(g prometheus.Gatherer, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("promgate is healthy.\n"))
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "promgate is not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("promgate is ready.\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		promapi.WriteError(w, promapi.Errorf(promapi.ErrNotFound, "not found"))
	})
	return mux
}

// TokenFile holds a bearer token read from a file, reloaded on demand.
type TokenFile struct {
	path  string
	token atomic.Pointer[string]
	// key names the file's setting in errors; "" is
	// upstream.bearer_token_file.
	key string
}

// NewTokenFile reads the token at path. An empty path gives an empty token.
func NewTokenFile(path string) (*TokenFile, error) {
	t := &TokenFile{path: path}
	empty := ""
	t.token.Store(&empty)
	if path == "" {
		return t, nil
	}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload re-reads the file. On error the old token stays.
func (t *TokenFile) Reload() error {
	if t.path == "" {
		return nil
	}
	key := t.key
	if key == "" {
		key = "upstream.bearer_token_file"
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return errors.New(key + ": must hold one non-empty line")
	}
	t.token.Store(&s)
	return nil
}

// Token returns the current token.
func (t *TokenFile) Token() string { return *t.token.Load() }

// Files returns the file watched, if any.
func (t *TokenFile) Files() []string {
	if t.path == "" {
		return nil
	}
	return []string{t.path}
}
