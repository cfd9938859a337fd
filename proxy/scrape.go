package proxy

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/enforce"
	"github.com/promgate/promgate/promapi"
	"github.com/promgate/promgate/reload"
)

// The exporter sidecar (upstream.kind metrics) serves only scrapes: GET of
// an exact configured path (/metrics for upstream.url, and each
// upstream.exporters path), authenticated and rate-limited by the chain,
// decided by the policy with route scrape, and forwarded to that exporter.
//
//	decision                 what the caller gets
//	unrestricted             the exporter's response streamed as is: status,
//	                         Content-Type, Content-Encoding (gzip is never
//	                         decompressed), capped at max_scrape_body
//	enforce, enforce_regex   only the samples whose labels the decision
//	or matchers              allows, in the exporter's format (text or
//	                         OpenMetrics 1.0), gzip when the client accepts
//	                         it; a protobuf Accept is narrowed to text and
//	                         OpenMetrics upstream, and a malformed, oversized,
//	                         unreadable or non-200 answer is a 502 with
//	                         nothing of the body
//
// Accept, Accept-Encoding, User-Agent and X-Prometheus-Scrape-Timeout-Seconds
// are forwarded; the scrape timeout also caps the upstream deadline, which
// limits.query_timeout caps already. Query strings are refused (400): the
// gateway never lets a caller steer an exporter with parameters.

// defaultMaxScrapeBody applies when the configuration leaves the cap unset.
const defaultMaxScrapeBody = 64 << 20

// errScrapeTooLarge ends a read past upstream.max_scrape_body.
var errScrapeTooLarge = errors.New("exporter response larger than upstream.max_scrape_body")

// scrapeTarget is one exporter behind the sidecar.
type scrapeTarget struct {
	url   string
	rt    http.RoundTripper
	token func() string
}

// scrapeSet is the sidecar's path table, built once per Handler.
type scrapeSet struct {
	targets map[string]*scrapeTarget
	maxBody int64
	// tokenFiles are the exporters' own token files, reloaded by the
	// gateway's reload watcher.
	tokenFiles []*TokenFile
}

// newScrapeSet builds the path table: upstream.url at /metrics over the
// gateway's upstream transport and token, and each exporter over its own
// transport (its TLS) and token file.
func newScrapeSet(cfg *config.Config, rt http.RoundTripper, token func() string) (*scrapeSet, error) {
	s := &scrapeSet{targets: map[string]*scrapeTarget{}, maxBody: int64(cfg.Upstream.MaxScrapeBody)}
	if s.maxBody <= 0 {
		s.maxBody = defaultMaxScrapeBody
	}
	if cfg.Upstream.URL != "" {
		s.targets[config.DefaultScrapePath] = &scrapeTarget{url: cfg.Upstream.URL, rt: rt, token: token}
	}
	for i, e := range cfg.Upstream.Exporters {
		c := *cfg
		c.Upstream.URL, c.Upstream.TLS = e.URL, e.TLS
		t, err := NewTransport(&c)
		if err != nil {
			return nil, fmt.Errorf("upstream.exporters[%d]: %w", i, err)
		}
		tf, err := NewTokenFile(e.BearerTokenFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.exporters[%d]: %w", i, err)
		}
		s.targets[e.Path] = &scrapeTarget{url: e.URL, rt: t, token: tf.Token}
		s.tokenFiles = append(s.tokenFiles, tf)
	}
	return s, nil
}

// ExporterTokens returns the exporters' token files as one reloadable
// part, for the gateway's reload watcher. It has no files when the gateway
// is not an exporter sidecar.
func (h *Handler) ExporterTokens() reload.Part {
	var files []*TokenFile
	if h.scrapes != nil {
		files = h.scrapes.tokenFiles
	}
	paths := []string{}
	for _, f := range files {
		paths = append(paths, f.Files()...)
	}
	return reload.Func{Paths: paths, Fn: func() error {
		var errs []error
		for _, f := range files {
			errs = append(errs, f.Reload())
		}
		return errors.Join(errs...)
	}}
}

// target returns the exporter of a request's path, or nil.
func (s *scrapeSet) target(r *http.Request) *scrapeTarget {
	if r.URL.RawPath != "" && r.URL.RawPath != r.URL.Path {
		return nil
	}
	return s.targets[r.URL.Path]
}

// serveScrape serves the exporter sidecar's scrape route.
func (h *Handler) serveScrape(w http.ResponseWriter, r *http.Request, st *state) error {
	tgt := h.scrapes.target(r)
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		return promapi.Errorf(promapi.ErrBadData, "query parameters are not forwarded to exporters; remove params from the scrape configuration")
	}
	g, err := h.admit(r.Context(), r, st, &ask{route: RouteScrape, kind: kindPlain})
	if err != nil {
		return err
	}
	filter := !g.en.Unrestricted()
	if filter {
		// The audit record shows the confinement the exposition was
		// filtered by.
		if st.enforced, err = g.en.Matchers(nil); err != nil {
			return &promapi.Error{Type: promapi.ErrForbidden, Msg: "access denied: the policy decision is invalid", Err: err}
		}
	}
	st.tr.upstream()
	ctx := r.Context()
	if d, ok := scrapeTimeout(r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	req, err := scrapeRequest(ctx, r, tgt, st, filter)
	if err != nil {
		return err
	}
	resp, err := tgt.rt.RoundTrip(req)
	if err != nil {
		h.tel.upstream(st.route, 0)
		st.tr.answered(0)
		return scrapeError(ctx, err, st)
	}
	defer resp.Body.Close()
	h.tel.upstream(st.route, resp.StatusCode)
	st.tr.answered(resp.StatusCode)
	if !filter {
		return passScrape(w, resp, h.scrapes.maxBody, st)
	}
	return filterScrape(ctx, w, resp, g.en, acceptsGzip(r.Header.Values("Accept-Encoding")), h.scrapes.maxBody, st)
}

// scrapeRequest builds the exporter request: the allow-listed headers, a
// valid scrape timeout, and the gateway's own headers from the one upstream
// builder with the exporter's token. A filtered scrape asks only for what
// the filter reads: text or OpenMetrics, plain or gzip.
func scrapeRequest(ctx context.Context, r *http.Request, tgt *scrapeTarget, st *state, filter bool) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tgt.url, nil)
	if err != nil {
		return nil, &promapi.Error{Type: promapi.ErrInternal, Msg: "internal error (request id " + st.id + ")", Err: err}
	}
	for _, k := range []string{"Accept", "Accept-Encoding", "User-Agent"} {
		if v := r.Header.Values(k); len(v) > 0 {
			req.Header[k] = v
		}
	}
	if t := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); t != "" {
		if _, ok := scrapeTimeout(t); ok {
			req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", t)
		}
	}
	if filter {
		req.Header.Set("Accept", filterableAccept(strings.Join(r.Header.Values("Accept"), ",")))
		req.Header.Del("Accept-Encoding")
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			req.Header.Set("Accept-Encoding", "gzip")
		}
	}
	stampHeaders(req.Header, r, st.tr, st.id, tgt.token(), "", "")
	return req, nil
}

// scrapeTimeout parses Prometheus' scrape timeout header: a positive,
// finite number of seconds.
func scrapeTimeout(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f > 86400 {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

// scrapeError answers a failed exporter request without its address.
func scrapeError(ctx context.Context, err error, st *state) error {
	cause := errors.New(upstreamCause(err))
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &promapi.Error{Type: promapi.ErrTimeout, Msg: "scrape timed out (request id " + st.id + ")", Err: cause}
	}
	return &promapi.Error{Type: promapi.ErrUnavailable, Msg: "exporter unavailable (request id " + st.id + ")", Err: cause}
}

// passScrape streams an unrestricted caller's response. Above the cap, the
// response is refused when its length is announced, and cut off (the
// connection aborted, so the client cannot take it as complete) otherwise;
// a failed read is cut off the same way.
func passScrape(w http.ResponseWriter, resp *http.Response, maxBody int64, st *state) error {
	if resp.ContentLength > maxBody {
		return &promapi.Error{Type: promapi.ErrUnavailable, Msg: fmt.Sprintf("the exporter's response is larger than the gateway's limit of %d bytes (upstream.max_scrape_body; request id %s)", maxBody, st.id), Err: errScrapeTooLarge}
	}
	hdr := w.Header()
	for _, k := range []string{"Content-Type", "Content-Encoding"} {
		if v := resp.Header.Get(k); v != "" {
			hdr.Set(k, v)
		}
	}
	if resp.ContentLength >= 0 {
		hdr.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	_, err := io.CopyBuffer(w, io.LimitReader(resp.Body, maxBody), *buf)
	if err == nil {
		var one [1]byte
		if n, _ := io.ReadFull(resp.Body, one[:]); n > 0 {
			err = errScrapeTooLarge
		}
	}
	if err != nil {
		st.err = fmt.Errorf("scrape cut off: %w", errors.New(upstreamCause(err)))
		if errors.Is(err, errScrapeTooLarge) {
			st.err = fmt.Errorf("scrape cut off: %w", err)
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

// filterScrape reads the whole exposition (capped, gzip decoded), filters
// it and writes it only once it parsed.
func filterScrape(ctx context.Context, w http.ResponseWriter, resp *http.Response, en *enforce.Enforcer, clientGzip bool, maxBody int64, st *state) error {
	fail := func(msg string, err error) error {
		return &promapi.Error{Type: promapi.ErrUnavailable, Msg: msg + " (request id " + st.id + ")", Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Sprintf("the exporter answered HTTP %d; its body is not passed on to a restricted caller", resp.StatusCode), nil)
	}
	ct := resp.Header.Get("Content-Type")
	format, err := enforce.ParseFormat(ct)
	if err != nil {
		return fail("the exporter's response format cannot be filtered for this caller", err)
	}
	var body io.Reader = &capReader{r: resp.Body, n: maxBody}
	switch ce := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		gz, err := gzip.NewReader(body)
		if err != nil {
			return scrapeReadError(ctx, fail, err)
		}
		defer gz.Close() //nolint:errcheck // a decompressing reader: its read errors are checked where it is read
		// The decompressed size is capped too: a small gzip bomb must not
		// fill the memory.
		body = &capReader{r: gz, n: maxBody}
	default:
		return fail("the exporter's response encoding cannot be filtered for this caller", fmt.Errorf("content encoding %q", truncate(ce, 32)))
	}
	var out bytes.Buffer
	if _, err := en.FilterExposition(&out, body, format); err != nil {
		if errors.Is(err, enforce.ErrUpstream) {
			return fail("the exporter's exposition is malformed; nothing of it was passed on", err)
		}
		return scrapeReadError(ctx, fail, err)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", ct)
	hdr.Set("Vary", "Accept-Encoding")
	payload := out.Bytes()
	if clientGzip {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		if _, err := zw.Write(payload); err != nil {
			return &promapi.Error{Type: promapi.ErrInternal, Msg: "internal error (request id " + st.id + ")", Err: err}
		}
		if err := zw.Close(); err != nil {
			return &promapi.Error{Type: promapi.ErrInternal, Msg: "internal error (request id " + st.id + ")", Err: err}
		}
		payload = zb.Bytes()
		hdr.Set("Content-Encoding", "gzip")
	}
	hdr.Set("Content-Length", strconv.Itoa(len(payload)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(payload)
	return nil
}

// scrapeReadError maps a failed read of the exporter's body.
func scrapeReadError(ctx context.Context, fail func(string, error) error, err error) error {
	switch {
	case errors.Is(err, errScrapeTooLarge):
		return fail("the exporter's response is larger than the gateway's limit (upstream.max_scrape_body)", err)
	case errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || isFlateError(err) || errors.Is(err, io.ErrUnexpectedEOF) && ctx.Err() == nil:
		return fail("the exporter's gzip body is corrupt or truncated; nothing of it was passed on", err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &promapi.Error{Type: promapi.ErrTimeout, Msg: "scrape timed out", Err: errors.New(upstreamCause(err))}
	}
	return fail("the exporter's response could not be read", errors.New(upstreamCause(err)))
}

func isFlateError(err error) bool {
	_, ok := errors.AsType[flate.CorruptInputError](err)
	return ok
}

// capReader fails with errScrapeTooLarge once more than n bytes are read.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n < 0 {
		return 0, errScrapeTooLarge
	}
	if int64(len(p)) > c.n+1 {
		p = p[:c.n+1]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n < 0 {
		return n, errScrapeTooLarge
	}
	return n, err
}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "gzip" && name != "x-gzip" {
				continue
			}
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
						q = f
					}
				}
			}
			return q > 0
		}
	}
	return false
}

// filterableAccept narrows a scrape's Accept header to the formats the
// filter reads: protocol buffers and OpenMetrics 2.0 are removed, the rest
// is kept with its preferences; nothing left means the text format.
func filterableAccept(accept string) string {
	var keep []string
	for part := range strings.SplitSeq(accept, ",") {
		part = strings.TrimSpace(part)
		mt, params, _ := strings.Cut(part, ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "", "application/vnd.google.protobuf":
			continue
		case "application/openmetrics-text":
			if strings.Contains(strings.ReplaceAll(params, " ", ""), "version=2.") {
				continue
			}
		}
		keep = append(keep, part)
	}
	if len(keep) == 0 {
		return "text/plain;version=0.0.4"
	}
	return strings.Join(keep, ",")
}
