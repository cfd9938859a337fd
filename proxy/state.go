package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
)

// state is everything the gateway learns about one request. It lives in the
// request context behind an unexported key; the audit record is built from it
// in a deferred call, whatever happened.
type state struct {
	id         string
	start      time.Time
	remoteAddr string
	route      string
	identity   *authn.Identity
	query      []string // as sent
	enforced   []string // as forwarded
	decision   *authz.Decision
	revision   string
	err        error // internal cause of a denial or failure

	// Set before the upstream call, read by Rewrite.
	upstreamPath  string
	upstreamQuery string // encoded parameters
	tenant        string // for upstream.tenant_header
	// filter rewrites a successful upstream body for a restricted caller.
	filter func([]byte) ([]byte, error)
	post   bool
	// coalesced is set when another request's upstream answer was shared
	// with this one.
	coalesced bool
}

type stateKey struct{}

func withState(ctx context.Context, st *state) context.Context {
	return context.WithValue(ctx, stateKey{}, st)
}

func stateOf(ctx context.Context) *state {
	st, _ := ctx.Value(stateKey{}).(*state)
	return st
}

// recorder captures the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush lets streamed upstream responses through.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Hijack is refused: the gateway never upgrades connections.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("hijacking is not supported")
}
