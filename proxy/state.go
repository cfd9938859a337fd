package proxy

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
)

// state is everything the gateway learns about one request. ServeHTTP owns
// it and hands it to the route's handler; the audit record is built from it
// in a deferred call, whatever happened.
type state struct {
	id         string
	start      time.Time
	remoteAddr string
	route      string
	// rt is the matched route, or nil before matching and for pages.
	rt       *route
	identity *authn.Identity
	query    []string // as sent
	enforced []string // as forwarded
	decision *authz.Decision
	revision string
	err      error // internal cause of a denial or failure
	// dropped names the request's parameters that were not forwarded.
	dropped []string
	// refusedMatch are the match[] values of a federate request that the
	// decision refuses (confineMatch).
	refusedMatch []string
	// clamped are the time parameters moved to the limits' edge.
	clamped []clamped
	// coalesced is set when another request's upstream answer was shared
	// with this one.
	coalesced bool
	// cache is set when the results cache assembled the answer.
	cache *audit.ResultsCache
	// tr holds the request's spans, or is nil when tracing is off.
	tr *reqTrace
	// silence is the silence an Alertmanager request creates, updates or
	// expires (alertmanager.go), or nil.
	silence *silenceRecord
	// remote counts a remote write or read request (write.go, read.go).
	remote *audit.Remote
}

// recorder captures the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	// hold keeps the body's last byte back until the audit record is
	// durable (durable.go); held is that byte while holding is set.
	hold    bool
	holding bool
	held    [1]byte
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
	if r.hold {
		n, err := r.writeHeld(b)
		r.bytes += int64(n)
		return n, err
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush lets streamed upstream responses through. While holding back, a
// response with no body byte yet is not flushed: its headers alone could
// complete it.
func (r *recorder) Flush() {
	if r.hold && r.bytes == 0 {
		return
	}
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

// clamped is one time parameter the gateway moved, and its new value.
type clamped struct{ name, value string }

// clamp sets params[name] to value and records the move for the response
// header and the audit record.
func (st *state) clamp(params url.Values, name, value string) {
	params.Set(name, value)
	st.clamped = append(st.clamped, clamped{name, value})
}
