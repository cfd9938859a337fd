package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// upstream forwards allowed requests.
type upstream struct {
	target *url.URL
	rp     *httputil.ReverseProxy
	// raw is the transport without coalescing, for exporter scrapes.
	raw http.RoundTripper
}

func newUpstream(cfg *config.Config, rt http.RoundTripper, h *Handler) (*upstream, error) {
	target, err := url.Parse(cfg.Upstream.URL)
	if err != nil {
		return nil, errors.New("upstream.url: not a URL")
	}
	if rt == nil {
		if rt, err = NewTransport(cfg); err != nil {
			return nil, err
		}
	}
	raw := rt
	if cfg.Upstream.Coalesce {
		rt = newCoalescer(rt, func(r *http.Request) {
			if st := stateOf(r.Context()); st != nil {
				st.coalesced = true
			}
		})
	}
	u := &upstream{target: target, raw: raw}
	u.rp = &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { u.rewrite(pr, h.token(), cfg.Upstream.TenantHeader) },
		Transport:  rt,
		BufferPool: bufferPool{},
		ErrorLog:   slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			h.tel.upstream(stateOf(r.Context()).route, 0)
			u.fail(w, r, err)
		},
		ModifyResponse: func(resp *http.Response) error {
			st := stateOf(resp.Request.Context())
			if st.coalesced {
				h.tel.coalesce(st.route)
			} else {
				h.tel.upstream(st.route, resp.StatusCode)
			}
			// The upstream's cookies are not the gateway's to hand out.
			resp.Header.Del("Set-Cookie")
			if st.filter != nil {
				return filterResponse(resp, st.filter)
			}
			return nil
		},
	}
	return u, nil
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

// rewrite builds the upstream request from the enforced parameters only.
func (u *upstream) rewrite(pr *httputil.ProxyRequest, token, tenantHeader string) {
	st := stateOf(pr.In.Context())
	out := pr.Out
	hdr := make(http.Header, len(forwardHeaders)+3)
	for _, k := range forwardHeaders {
		if v := pr.In.Header.Values(k); len(v) > 0 {
			hdr[k] = v
		}
	}
	if st.filter != nil {
		// The body is read and filtered here, so ask for it uncompressed.
		hdr.Del("Accept-Encoding")
	}
	out.Header = hdr
	out.URL.Path, out.URL.RawPath = st.upstreamPath, ""
	pr.SetURL(u.target)
	out.Header.Set("X-Request-Id", st.id)
	if token != "" {
		out.Header.Set("Authorization", "Bearer "+token)
	}
	if tenantHeader != "" && st.tenant != "" {
		// Set after hop-by-hop removal, from the decision only: a client's
		// copy never got past the allow-list above.
		out.Header.Set(tenantHeader, st.tenant)
	}
	out.TransferEncoding = nil
	out.Trailer = nil
	if st.post {
		body := st.upstreamQuery
		out.Method = http.MethodPost
		out.URL.RawQuery = ""
		out.Body = io.NopCloser(strings.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		out.ContentLength = int64(len(body))
		out.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return
	}
	out.Method = http.MethodGet
	out.URL.RawQuery = st.upstreamQuery
	out.Body = nil
	out.GetBody = nil
	out.ContentLength = 0
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
		return fmt.Errorf("%w: read: %v", enforce.ErrUpstream, err)
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
// with the gateway's own credentials and the caller's tenant.
func (u *upstream) labelValues(ctx context.Context, name string, match []string, st *state, token, tenantHeader string) ([]string, error) {
	v := url.Values{"match[]": match}
	ref := &url.URL{Path: "/api/v1/label/" + name + "/values", RawQuery: v.Encode()}
	target := u.target.JoinPath(ref.Path)
	target.RawQuery = ref.RawQuery
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Request-Id", st.id)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if tenantHeader != "" && st.tenant != "" {
		req.Header.Set(tenantHeader, st.tenant)
	}
	resp, err := u.rp.Transport.RoundTrip(req)
	if err != nil {
		return nil, errors.New(upstreamCause(err))
	}
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
func (u *upstream) fail(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
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
