package proxy

import (
	"net/http"

	"github.com/promgate/promgate/config"
)

// A durable auditor (audit.mode: durable) returns from Write only once the
// record is on disk. The gateway then holds the last byte of every response
// body back until the record's Write has returned, so that no client holds a
// complete answer whose record a crash could still lose: a response with a
// Content-Length lacks its last byte, a chunked one its last byte and its
// terminating chunk (sent when the handler returns), and an empty one its
// headers, which are not flushed before the end. When the record of a
// request the policy allowed cannot be made durable and audit.on_failure is
// deny, the response is aborted instead of completed: the client sees a
// broken connection, not an answer. A refusal (401, 403, 404, 429, and the
// 503 that on_failure: deny answers while the trail is broken) carries no
// data and is completed; the lost record is logged and counted.
//
// The cost is one extra small write per response into the connection's
// buffer; a streamed response (Flush) gets everything but that one byte at
// once.

// durableAuditor is implemented by *audit.Writer.
type durableAuditor interface {
	Durable() bool
}

// holdsBack reports whether responses wait for their audit record.
func holdsBack(a Auditor) bool {
	d, ok := a.(durableAuditor)
	return ok && d.Durable()
}

// writeHeld writes b, keeping its last byte back in r.held.
func (r *recorder) writeHeld(b []byte) (int, error) {
	if len(b) == 0 {
		return r.ResponseWriter.Write(b)
	}
	if r.holding {
		if _, err := r.ResponseWriter.Write(r.held[:]); err != nil {
			return 0, err
		}
		r.holding = false
	}
	if n := len(b) - 1; n > 0 {
		if w, err := r.ResponseWriter.Write(b[:n]); err != nil {
			return w, err
		}
	}
	r.held[0], r.holding = b[len(b)-1], true
	return len(b), nil
}

// release writes the held byte: the record is durable.
func (r *recorder) release() {
	if r.holding {
		r.holding = false
		_, _ = r.ResponseWriter.Write(r.held[:]) // the client may have gone; nothing else to tell it
	}
}

// abortsOnAuditFailure reports whether a response whose record could not be
// made durable is aborted.
func (h *Handler) abortsOnAuditFailure(st *state) bool {
	return h.hold && h.cfg.Audit.OnFailure == config.OnFailureDeny && st.decision != nil && st.decision.Allow
}

// errAbort is what ServeHTTP panics with to break the connection of a
// response whose record was lost; net/http neither logs nor completes it.
var errAbort = http.ErrAbortHandler
