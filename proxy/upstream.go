package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/enforce"
	"github.com/promgate/promgate/promapi"
	"github.com/promgate/promgate/tlsutil"
)

// forwardHeaders is the allow-list of request headers sent upstream. Every
// other header, credentials and identity or tenant headers included, is
// dropped: the upstream request is built, not filtered.
var forwardHeaders = []string{"Accept", "Accept-Encoding", "Accept-Language", "User-Agent"}

// upstream forwards enforced requests. It holds no per-request state: each
// request's enforced form reaches it as an *outbound, explicitly.
type upstream struct {
	target *url.URL
	// rt reaches the upstream, coalescing identical requests when
	// upstream.coalesce is set; raw never coalesces (exporter scrapes).
	rt, raw  http.RoundTripper
	token    func() string
	cfg      *config.Config
	tel      *telemetry
	errorLog *log.Logger
	// cache answers query_range from kept parts (resultscache.go), or is
	// nil when cache.enabled is off.
	cache *resultsCache
}

// outbound is one enforced upstream request. It is built from the grant and
// the enforced parameters only, never copied from the caller's request.
type outbound struct {
	path  string
	query string // encoded parameters
	post  bool
	// tenant goes into upstream.tenant_header, from the decision only.
	tenant string
	// filter confines a restricted caller's successful answer, or is nil.
	filter bodyFilter
}

func newUpstream(cfg *config.Config, rt http.RoundTripper, token func() string, tel *telemetry, logger *slog.Logger) (*upstream, error) {
	target, err := url.Parse(cfg.Upstream.URL)
	if err != nil {
		return nil, errors.New("upstream.url: not a URL")
	}
	if rt == nil {
		if rt, err = NewTransport(cfg); err != nil {
			return nil, err
		}
	}
	u := &upstream{target: target, rt: rt, raw: rt, token: token, cfg: cfg,
		tel: tel, errorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	if cfg.Upstream.Coalesce {
		u.rt = newCoalescer(rt, nil)
	}
	return u, nil
}

// forward sends out upstream and streams the answer to w, through out's
// filter when it has one.
func (u *upstream) forward(w http.ResponseWriter, r *http.Request, st *state, out *outbound) {
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { u.rewrite(pr, st, out) },
		Transport:  u.transportFor(r, st),
		BufferPool: bufferPool{},
		ErrorLog:   u.errorLog,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			u.tel.upstream(st.route, 0)
			st.tr.answered(0)
			u.fail(w, r, st, err)
		},
		ModifyResponse: func(resp *http.Response) error {
			if _, shared := resp.Body.(sharedBody); shared {
				st.coalesced = true
				u.tel.coalesce(st.route)
			} else {
				u.tel.upstream(st.route, resp.StatusCode)
			}
			st.tr.answered(resp.StatusCode)
			// The upstream's cookies are not the gateway's to hand out.
			resp.Header.Del("Set-Cookie")
			if out.filter != nil {
				return filterResponse(resp, out.filter)
			}
			return nil
		},
	}
	rp.ServeHTTP(w, r)
}

// wellFormedTraceparent reports whether tp has the form of a W3C Trace
// Context traceparent, of version 00 or a later version's common prefix:
// the regular expression
//
//	^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[0-9a-f-]*)?$
//
// written out, since it runs for every request that carries one (the fuzz
// test checks the two agree).
func wellFormedTraceparent(tp string) bool {
	if len(tp) < 55 || (len(tp) > 55 && tp[55] != '-') {
		return false
	}
	for i := 0; i < len(tp); i++ {
		c := tp[i]
		switch {
		case i == 2 || i == 35 || i == 52 || i >= 55:
			if c != '-' && (i < 55 || !lowerHex(c)) {
				return false
			}
		case !lowerHex(c):
			return false
		}
	}
	return true
}

func lowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// stampHeaders sets the gateway's own headers on an upstream request: the
// request id, the upstream bearer token, the tenant from the decision, and
// the W3C trace context. It is the one place these are set, for every
// request the gateway sends upstream: forwarded queries, the metadata
// lookup, detector evaluations and exporter scrapes. With tracing on, tr
// holds the gateway's own spans (trace.go), children of the caller's trace,
// and the upstream span's context is what goes upstream; off (tr nil), the
// caller's traceparent and tracestate pass through when well-formed and
// sent once. Empty arguments set nothing; in may be nil.
func stampHeaders(hdr http.Header, in *http.Request, tr *reqTrace, requestID, token, tenantHeader, tenant string) {
	if requestID != "" {
		hdr.Set("X-Request-Id", requestID)
	}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	if tenantHeader != "" && tenant != "" {
		// Set after the allow-list: a client's copy never gets this far.
		hdr.Set(tenantHeader, tenant)
	}
	if tr.inject(hdr) {
		return
	}
	if in == nil {
		return
	}
	if tp, ok := callerTraceparent(in); ok {
		hdr.Set("Traceparent", tp)
		if ts, ok := callerTracestate(in); ok {
			hdr.Set("Tracestate", ts)
		}
	}
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// UpstreamTransport returns a RoundTripper that stamps the upstream bearer
// token on each request as the gateway does, for the background detector
// evaluator, which reaches the upstream with the gateway's own identity.
func UpstreamTransport(base http.RoundTripper, token func() string) http.RoundTripper {
	return stampingTransport{base: base, token: token}
}

type stampingTransport struct {
	base  http.RoundTripper
	token func() string
}

func (t stampingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	stampHeaders(r.Header, nil, nil, "", t.token(), "", "")
	return t.base.RoundTrip(r)
}

// NewTransport returns a Transport tuned for a busy upstream: a keep-alive
// pool sized for concurrency, no proxy from the environment, and no
// transparent compression, so that the client's Accept-Encoding passes
// through instead of a gzip round trip in the gateway.
func NewTransport(cfg *config.Config) (*http.Transport, error) {
	t := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: time.Duration(cfg.Limits.QueryTimeout),
		DisableCompression:    true,
	}
	if strings.HasPrefix(cfg.Upstream.URL, "https:") {
		tc, err := tlsutil.UpstreamConfig(cfg.Upstream.TLS, nil)
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig = tc
	} else {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return t, nil
}

// rewrite builds the upstream request from out only.
func (u *upstream) rewrite(pr *httputil.ProxyRequest, st *state, out *outbound) {
	o := pr.Out
	hdr := make(http.Header, len(forwardHeaders)+3)
	for _, k := range forwardHeaders {
		if v := pr.In.Header.Values(k); len(v) > 0 {
			hdr[k] = v
		}
	}
	if out.filter != nil {
		// The body is read and filtered here, so ask for it uncompressed.
		hdr.Del("Accept-Encoding")
	}
	o.Header = hdr
	o.URL.Path, o.URL.RawPath = out.path, ""
	pr.SetURL(u.target)
	stampHeaders(o.Header, pr.In, st.tr, st.id, u.token(), u.cfg.Upstream.TenantHeader, out.tenant)
	o.TransferEncoding = nil
	o.Trailer = nil
	if out.post {
		body := out.query
		o.Method = http.MethodPost
		o.URL.RawQuery = ""
		o.Body = io.NopCloser(strings.NewReader(body))
		o.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		o.ContentLength = int64(len(body))
		o.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return
	}
	o.Method = http.MethodGet
	o.URL.RawQuery = out.query
	o.Body = nil
	o.GetBody = nil
	o.ContentLength = 0
}

// maxFilteredBody bounds a response the gateway reads to filter it.
const maxFilteredBody = 64 << 20

// filterResponse replaces resp's body with the filtered one. Whatever cannot
// be read or filtered fails the request (502): a restricted caller never gets
// an unfiltered body.
func filterResponse(resp *http.Response, filter func([]byte) ([]byte, error)) error {
	defer resp.Body.Close()
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return fmt.Errorf("%w: encoded response (%s) cannot be filtered", enforce.ErrUpstream, truncate(ce, 32))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxFilteredBody+1))
	if err != nil {
		return fmt.Errorf("%w: read: %v", enforce.ErrUpstream, err) //nolint:errorlint // ErrUpstream alone classifies this error (fail checks DeadlineExceeded first); the cause is kept as text so that it cannot reclassify it
	}
	if len(b) > maxFilteredBody {
		return fmt.Errorf("%w: response larger than %d bytes", enforce.ErrUpstream, maxFilteredBody)
	}
	out, err := filter(b)
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	resp.Header.Del("Content-Encoding")
	return nil
}

// labelValues asks the upstream for the values of one label under match,
// for the caller's request in: with the gateway's own credentials, the
// caller's tenant and in's trace context, counted under the caller's route.
func (u *upstream) labelValues(in *http.Request, st *state, name string, match []string, tenant string) ([]string, error) {
	v := url.Values{"match[]": match}
	ref := &url.URL{Path: "/api/v1/label/" + name + "/values", RawQuery: v.Encode()}
	target := u.target.JoinPath(ref.Path)
	target.RawQuery = ref.RawQuery
	req, err := http.NewRequestWithContext(in.Context(), http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, err
	}
	stampHeaders(req.Header, in, st.tr, st.id, u.token(), u.cfg.Upstream.TenantHeader, tenant)
	resp, err := u.rt.RoundTrip(req)
	if err != nil {
		u.tel.upstream(st.route, 0)
		return nil, errors.New(upstreamCause(err))
	}
	u.tel.upstream(st.route, resp.StatusCode)
	defer resp.Body.Close()
	var env struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxFilteredBody)).Decode(&env); err != nil || env.Status != "success" {
		return nil, fmt.Errorf("upstream: label values answered %d", resp.StatusCode)
	}
	return env.Data, nil
}

// fail answers an upstream failure without revealing the upstream.
func (u *upstream) fail(w http.ResponseWriter, r *http.Request, st *state, err error) {
	cause := upstreamCause(err)
	var e *promapi.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(r.Context().Err(), context.DeadlineExceeded):
		e = &promapi.Error{Type: promapi.ErrTimeout, Msg: "query timed out (request id " + st.id + ")", Err: errors.New(cause)}
	case errors.Is(err, enforce.ErrUpstream):
		e = &promapi.Error{Type: promapi.ErrUnavailable, Msg: "the upstream's response could not be filtered for this caller (request id " + st.id + ")", Err: err}
	default:
		e = &promapi.Error{Type: promapi.ErrUnavailable, Msg: "upstream unavailable (request id " + st.id + ")", Err: errors.New(cause)}
	}
	st.err = e
	promapi.WriteError(w, e)
}

// upstreamCause describes an upstream failure without addresses, for logs
// and the audit record.
func upstreamCause(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "upstream: deadline exceeded"
	case errors.Is(err, context.Canceled):
		return "upstream: request canceled"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return "upstream: " + errno.Error()
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return "upstream: TLS certificate verification failed"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "upstream: name resolution failed"
	}
	if op, ok := errors.AsType[*net.OpError](err); ok {
		return "upstream: " + op.Op + " failed"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "upstream: connection closed"
	}
	return "upstream: request failed"
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// bufferPool reuses copy buffers across responses.
type bufferPool struct{}

func (bufferPool) Get() []byte  { return *(bufPool.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { bufPool.Put(&b) }
