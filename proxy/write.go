package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/enforce"
	"github.com/promgate/promgate/promapi"
)

// Remote write (POST /api/v1/write), protocol 1.0: a snappy block holding
// a prompb.WriteRequest. The request is checked in this order, and nothing
// is forwarded unless every step passes:
//
//	step                                   refused with
//	Content-Encoding snappy                415
//	Content-Type application/x-protobuf,   415 (remote write 2.0's
//	  proto absent or prometheus.WriteRequest   io.prometheus.write.v2.Request
//	                                        too: the sender falls back to 1.0)
//	no query string                        400
//	body within write.max_body             413
//	snappy header within max_decoded_body  400, before decompressing
//	the policy (route write)               403
//	decodes; limits and label rules        400 naming the first bad series
//	confinement in the write mode          400 naming the series (reject)
//	the identity's samples bucket          429 with Retry-After
//	the identity's requests in flight      429
//
// The enforced request is encoded again and sent to write.upstream_path
// with the decision's tenant; the upstream's status comes back to the
// sender, with at most maxUpstreamError bytes of an error body. A request
// left with nothing to write is answered 204 without reaching the upstream.

// Remote write and read media types.
const (
	protobufType     = "application/x-protobuf"
	writeV1Proto     = "prometheus.WriteRequest"
	writeV2Proto     = "io.prometheus.write.v2.Request"
	streamedReadType = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
	remoteVersion    = "0.1.0"
)

// maxUpstreamError bounds the upstream error body passed back to a
// remote write or read client.
const maxUpstreamError = 4 << 10

// remote is the remote write and read routes' state: metrics and the
// identities' sample buckets.
type remote struct {
	dropped  *prometheus.CounterVec
	injected prometheus.Counter
	samples  *sampleLimiter
}

func newRemote(w config.Write, reg prometheus.Registerer) *remote {
	r := &remote{
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promgate_write_dropped_series_total",
			Help: "Series of remote write requests dropped in drop and inject modes, by reason (foreign_value, missing_label, excluded). A request refused in reject mode is counted by promgate_requests_total with code 400.",
		}, []string{"reason"}),
		injected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "promgate_write_injected_series_total",
			Help: "Series of remote write requests given an enforced label in inject mode.",
		}),
	}
	for _, reason := range enforce.DropReasons {
		r.dropped.WithLabelValues(reason)
	}
	reg.MustRegister(r.dropped, r.injected)
	if w.SamplesPerSecond > 0 {
		burst := w.SamplesBurst
		if burst <= 0 {
			burst = w.MaxSamplesPerRequest
		}
		r.samples = &sampleLimiter{rps: rate.Limit(w.SamplesPerSecond), burst: burst, items: map[string]*rate.Limiter{}}
	}
	return r
}

// sampleLimiter is a token bucket in samples per rate bucket.
type sampleLimiter struct {
	rps   rate.Limit
	burst int
	mu    sync.Mutex
	items map[string]*rate.Limiter
}

// take takes n samples from key's bucket. When the bucket cannot give
// them now, it takes nothing and returns how long to wait.
func (l *sampleLimiter) take(key string, n int, now time.Time) (time.Duration, bool) {
	if l == nil || n == 0 {
		return 0, true
	}
	l.mu.Lock()
	lim, ok := l.items[key]
	if !ok {
		if len(l.items) >= maxLimiters {
			// Forget one bucket; a forgotten identity starts full again,
			// which is as generous as a new one.
			for k := range l.items {
				delete(l.items, k)
				break
			}
		}
		lim = rate.NewLimiter(l.rps, l.burst)
		l.items[key] = lim
	}
	l.mu.Unlock()
	res := lim.ReserveN(now, n)
	if !res.OK() {
		// More than the burst: the configuration keeps the burst at least
		// max_samples_per_request, so this is a full bucket's worth.
		return time.Duration(float64(n) / float64(l.rps) * float64(time.Second)), false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// checkRemoteHeaders checks a remote write or read request's encoding and
// media type. proto is the protobuf message the route takes.
func checkRemoteHeaders(r *http.Request, proto string) error {
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		return promapi.Errorf(promapi.ErrBadData, "query parameters are not accepted on this route")
	}
	if ce := r.Header.Get("Content-Encoding"); !strings.EqualFold(ce, "snappy") {
		return &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusUnsupportedMediaType,
			Msg: "unsupported Content-Encoding: the body must be snappy block-compressed (Content-Encoding: snappy)"}
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != protobufType {
		return &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusUnsupportedMediaType,
			Msg: "unsupported Content-Type: use " + protobufType}
	}
	if p, ok := params["proto"]; ok && p != proto {
		if p == writeV2Proto {
			return &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusUnsupportedMediaType,
				Msg: "remote write 2.0 (" + writeV2Proto + ") is not supported by the gateway; send remote write 1.0 (" + writeV1Proto + ")"}
		}
		return &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("unsupported protobuf message %q; use %s", truncate(p, 64), proto)}
	}
	return nil
}

// readRemoteBody reads a remote write or read body, up to max bytes.
func readRemoteBody(r *http.Request, maxBody int64) ([]byte, error) {
	if r.ContentLength > maxBody {
		return nil, &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("the body is larger than the limit of %d bytes (write.max_body); send smaller batches", maxBody)}
	}
	var b []byte
	var err error
	if n := r.ContentLength; n > 0 {
		// The announced size, read in one piece; a body longer than it
		// is cut by net/http, a shorter one fails.
		b = make([]byte, n)
		_, err = io.ReadFull(r.Body, b)
	} else {
		b, err = io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	}
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusRequestEntityTooLarge,
				Msg: fmt.Sprintf("the body is larger than the limit of %d bytes (write.max_body); send smaller batches", maxBody)}
		}
		return nil, &promapi.Error{Type: promapi.ErrBadData, Msg: "the request body could not be read", Err: err}
	}
	return b, nil
}

// serveWrite serves the remote write route.
func (h *Handler) serveWrite(w http.ResponseWriter, r *http.Request, st *state) error {
	wc := &h.cfg.Write
	if err := checkRemoteHeaders(r, writeV1Proto); err != nil {
		return err
	}
	if v := r.Header.Get("X-Prometheus-Remote-Write-Version"); v != "" && !strings.HasPrefix(v, "0.") && !strings.HasPrefix(v, "1.") {
		return &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("remote write version %q is not supported; send remote write 1.0 (X-Prometheus-Remote-Write-Version: %s)", truncate(v, 32), remoteVersion)}
	}
	body, err := readRemoteBody(r, int64(wc.MaxBody))
	if err != nil {
		return err
	}
	bufs := writeBufPool.Get().(*writeBufs)
	defer bufs.put()
	bufs.raw, err = enforce.DecodeSnappy(body, int(wc.MaxDecodedBody), bufs.raw)
	if err != nil {
		return h.enforceError(err, st.identity)
	}
	g, err := h.admit(r.Context(), r, st, &ask{route: RouteWrite, kind: kindPlain})
	if err != nil {
		return err
	}
	var stats enforce.WriteStats
	mode := g.dec.WriteMode
	if mode == "" {
		mode = wc.Mode
	}
	rec := &audit.Remote{WriteMode: mode}
	st.remote = rec
	bufs.out, stats, err = g.en.ConfineWriteWire(bufs.raw, enforce.WriteMode(mode), enforce.WriteLimits{
		MaxSeries: wc.MaxSeriesPerRequest, MaxSamples: wc.MaxSamplesPerRequest, MaxLabels: wc.MaxLabelsPerSeries,
	}, &bufs.wb, bufs.out[:0])
	rec.Series, rec.Samples, rec.Histograms, rec.Exemplars, rec.Metadata = stats.Series, stats.Samples, stats.Histograms, stats.Exemplars, stats.Metadata
	rec.DroppedForeign, rec.DroppedMissing, rec.DroppedExcluded = stats.Foreign, stats.Missing, stats.Excluded
	rec.DroppedMetadata, rec.Injected = stats.DroppedMetadata, stats.Injected
	if err != nil {
		if ee, ok := errors.AsType[*enforce.Error](err); ok && ee.Kind == enforce.Forbidden {
			// Reject mode: the whole request is refused with 400, which
			// senders drop without retrying.
			h.tel.refusal(st.identity.Subject, ee.Label)
			return &promapi.Error{Type: promapi.ErrBadData, Msg: ee.Msg + " (write mode reject: the whole request is refused)"}
		}
		return h.enforceError(err, st.identity)
	}
	h.countDropped(stats)
	if wait, ok := h.remote.samples.take(bucketOf(st.identity, &g.dec), stats.Samples+stats.Histograms+stats.Exemplars, h.now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1)))))
		return promapi.Errorf(promapi.ErrTooManyRequests, "sample rate limit exceeded for %s (write.samples_per_second); slow down", st.identity.Subject)
	}
	if len(bufs.out) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	release, err := h.inflight.acquire(g, st.identity)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		return err
	}
	defer release()
	// The compressed body is not pooled: the transport may still read it
	// after RoundTrip returns.
	out := snappy.Encode(nil, bufs.out)
	rec.Forwarded = true
	hdr := http.Header{
		"Content-Type":                      {protobufType},
		"Content-Encoding":                  {"snappy"},
		"X-Prometheus-Remote-Write-Version": {remoteVersion},
	}
	return h.remoteForward(w, r, st, g, wc.UpstreamPath, hdr, out, nil)
}

// writeBufs are one write request's buffers: the decompressed body, the
// enforced body, and the wire path's scratch.
type writeBufs struct {
	raw, out []byte
	wb       enforce.WireBuffers
}

// maxPooledWrite bounds the buffers kept for reuse, so that one large
// request does not pin its memory.
const maxPooledWrite = 8 << 20

var writeBufPool = sync.Pool{New: func() any { return &writeBufs{} }}

func (b *writeBufs) put() {
	if cap(b.raw) > maxPooledWrite || cap(b.out) > maxPooledWrite {
		return
	}
	writeBufPool.Put(b)
}

// countDropped adds a write's dropped and injected series to the metrics.
func (h *Handler) countDropped(s enforce.WriteStats) {
	for _, c := range []struct {
		reason string
		n      int
	}{{enforce.DropForeign, s.Foreign}, {enforce.DropMissing, s.Missing}, {enforce.DropExcluded, s.Excluded}} {
		if c.n > 0 {
			h.remote.dropped.WithLabelValues(c.reason).Add(float64(c.n))
		}
	}
	if s.Injected > 0 {
		h.remote.injected.Add(float64(s.Injected))
	}
}

// remoteForward POSTs an enforced remote write or read body upstream with
// the gateway's own headers and the decision's tenant. A 2xx answer goes to
// onOK when it is set, and is otherwise passed back with no body; any other
// status is passed back with at most maxUpstreamError bytes of its body.
func (h *Handler) remoteForward(w http.ResponseWriter, r *http.Request, st *state, g *grant, path string, hdr http.Header, body []byte,
	onOK func(*http.Response) error,
) error {
	st.tr.upstream()
	ctx := r.Context()
	// The upstream the decision chose (the default one unless it names
	// another), with its own address, transport, token and tenant header.
	up := g.up
	if up == nil {
		up = h.up
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, up.target.JoinPath(path).String(), bytes.NewReader(body))
	if err != nil {
		return &promapi.Error{Type: promapi.ErrInternal, Msg: "internal error (request id " + st.id + ")", Err: err}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if ua := r.Header.Get("User-Agent"); ua != "" {
		req.Header.Set("User-Agent", ua)
	}
	stampHeaders(req.Header, r, st.tr, st.id, up.token(), up.cfg.Upstream.TenantHeader, g.tenant)
	resp, err := up.raw.RoundTrip(req)
	if err != nil {
		h.tel.upstream(st.route, 0)
		st.tr.answered(0)
		return remoteError(ctx, err, st)
	}
	defer resp.Body.Close()
	h.tel.upstream(st.route, resp.StatusCode)
	st.tr.answered(resp.StatusCode)
	resp.Header.Del("Set-Cookie")
	if resp.StatusCode/100 == 2 && onOK != nil {
		return onOK(resp)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" && printableASCII(ra) && len(ra) <= 32 {
		w.Header().Set("Retry-After", ra)
	}
	if resp.StatusCode/100 == 2 {
		w.WriteHeader(resp.StatusCode)
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamError))
	st.err = fmt.Errorf("upstream answered %d", resp.StatusCode)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(bytes.ToValidUTF8(b, []byte("\uFFFD")))
	return nil
}

// remoteError answers a failed upstream request without its address.
func remoteError(ctx context.Context, err error, st *state) error {
	cause := errors.New(upstreamCause(err))
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &promapi.Error{Type: promapi.ErrTimeout, Msg: "upstream timed out (request id " + st.id + ")", Err: cause}
	}
	return &promapi.Error{Type: promapi.ErrUnavailable, Msg: "upstream unavailable (request id " + st.id + ")", Err: cause}
}
