package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// maxSharedBody bounds the answer one flight buffers to share with the
// requests that joined it. A larger answer still reaches the request that
// asked first; the others ask the upstream on their own.
const maxSharedBody = 8 << 20

// coalescer joins identical upstream requests that are in flight at the
// same time: while the first one waits for the upstream's answer, a second
// request with the same method, URL, body and headers (the request id and
// trace context aside) waits for that answer instead of asking again.
// Dashboards that many people watch, and Grafana panels refreshed together,
// send exactly such requests.
//
// It is sound because the upstream request is built, not passed through:
// it carries the enforced query, the decision's tenant and the allow-listed
// headers only, so two callers whose upstream requests are equal byte for
// byte are entitled to the same answer, and response filters still run per
// caller afterwards. A joined request gets an answer the upstream computed
// at most one upstream round trip before it arrived, as if it had been sent
// a moment earlier. Nothing is cached: once the answer is complete the next
// request asks again.
//
// Requests join only until the first one's response headers arrive; a
// request that arrives later starts a flight of its own. When nobody joined,
// the answer streams through untouched. When somebody did, the body is
// copied as it streams (up to maxSharedBody) and handed to the others at its
// end; if the first request fails, is cancelled or its answer is larger,
// the others fall back to asking the upstream themselves. A joined request
// never inherits another caller's cancellation or deadline.
type coalescer struct {
	next http.RoundTripper
	// joined is called for each request answered by another's flight.
	joined func(*http.Request)

	mu      sync.Mutex
	flights map[string]*flight
}

// flight is one upstream request that others may join.
type flight struct {
	done chan struct{}
	// waiters counts the requests joined so far. The flight is in the map,
	// open to joiners, until the first request's headers arrive; the count
	// is final from then on.
	waiters int

	// Set before done is closed. ok false means the others must ask on
	// their own.
	ok     bool
	resp   *http.Response // status line and headers; Body is not used
	body   []byte
	closer sync.Once
}

func newCoalescer(next http.RoundTripper, joined func(*http.Request)) *coalescer {
	return &coalescer{next: next, joined: joined, flights: make(map[string]*flight)}
}

// RoundTrip answers req from a flight in progress when one matches, and
// otherwise sends it, letting later identical requests join.
func (c *coalescer) RoundTrip(req *http.Request) (*http.Response, error) {
	key, ok := flightKey(req)
	if !ok {
		return c.next.RoundTrip(req)
	}
	c.mu.Lock()
	if f := c.flights[key]; f != nil {
		f.waiters++
		c.mu.Unlock()
		return c.join(f, req)
	}
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	c.mu.Unlock()

	resp, err := c.next.RoundTrip(req)

	c.mu.Lock()
	delete(c.flights, key)
	waiters := f.waiters
	c.mu.Unlock()

	if err != nil || waiters == 0 {
		f.finish(false, nil, nil)
		return resp, err
	}
	resp.Body = &teeBody{rc: resp.Body, f: f, resp: resp}
	return resp, nil
}

// join waits for f's answer, or asks the upstream itself when f cannot
// share one.
func (c *coalescer) join(f *flight, req *http.Request) (*http.Response, error) {
	select {
	case <-f.done:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	if !f.ok {
		return c.next.RoundTrip(req)
	}
	if c.joined != nil {
		c.joined(req)
	}
	resp := *f.resp
	resp.Header = f.resp.Header.Clone()
	resp.Body = sharedBody{bytes.NewReader(f.body)}
	resp.ContentLength = int64(len(f.body))
	resp.TransferEncoding = nil
	resp.Trailer = nil
	resp.Request = req
	resp.TLS = nil
	return &resp, nil
}

// sharedBody is the body of an answer shared from another request's
// flight; the upstream handler tells a coalesced answer by it.
type sharedBody struct{ *bytes.Reader }

func (sharedBody) Close() error { return nil }

// finish publishes the flight's outcome to the requests that joined it.
func (f *flight) finish(ok bool, resp *http.Response, body []byte) {
	f.closer.Do(func() {
		f.ok, f.body = ok, body
		if ok {
			f.resp = &http.Response{
				Status:     resp.Status,
				StatusCode: resp.StatusCode,
				Proto:      resp.Proto,
				ProtoMajor: resp.ProtoMajor,
				ProtoMinor: resp.ProtoMinor,
				Header:     resp.Header.Clone(),
			}
		}
		close(f.done)
	})
}

// teeBody copies the first request's body as it is read, and shares it
// once it has been read to the end.
type teeBody struct {
	rc   io.ReadCloser
	f    *flight
	resp *http.Response
	buf  []byte
	over bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if n > 0 && !t.over {
		if len(t.buf)+n > maxSharedBody {
			t.over, t.buf = true, nil
			t.f.finish(false, nil, nil)
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		t.f.finish(!t.over, t.resp, t.buf)
	case err != nil:
		t.f.finish(false, nil, nil)
	}
	return n, err
}

// Close ends the flight if the body was not read to its end: the others
// ask on their own.
func (t *teeBody) Close() error {
	t.f.finish(false, nil, nil)
	return t.rc.Close()
}

// flightKey is everything the upstream sees of req except its request id
// and trace context, and false when req cannot be joined safely. Neither
// changes the answer, and with tracing on every request's traceparent is
// its own, so keying on it would join nothing.
func flightKey(req *http.Request) (string, bool) {
	var body []byte
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		if req.Body != nil && req.Body != http.NoBody {
			return "", false
		}
	case http.MethodPost:
		if req.GetBody == nil {
			return "", false
		}
		rc, err := req.GetBody()
		if err != nil {
			return "", false
		}
		body, err = io.ReadAll(io.LimitReader(rc, 1<<20+1))
		rc.Close() //nolint:errcheck // a copy of the request body, only read
		if err != nil || len(body) > 1<<20 {
			return "", false
		}
	default:
		return "", false
	}
	var b strings.Builder
	b.Grow(256 + len(body))
	b.WriteString(req.Method)
	b.WriteByte(0)
	b.WriteString(req.URL.String())
	b.WriteByte(0)
	keys := make([]string, 0, len(req.Header))
	for k := range req.Header {
		if k != "X-Request-Id" && k != "Traceparent" && k != "Tracestate" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range req.Header[k] {
			b.WriteString(k)
			b.WriteByte(0)
			b.WriteString(v)
			b.WriteByte(0)
		}
	}
	b.WriteByte(0)
	b.Write(body)
	return b.String(), true
}
