package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/enforce"
	"github.com/promgate/promgate/promapi"
)

// Remote read (POST /api/v1/read): a snappy block holding a
// prompb.ReadRequest. Each query's matchers are confined as a PromQL
// selector's are (enforce.ConfineRead); a query that can only match outside
// the caller's set is refused (403), and the policy sees the queries as
// match[] selectors (route read). The time range of each query is held to
// the limits' max_range and max_lookback. The upstream's answer is checked
// series by series, as defence in depth:
//
//	answer                  checked                          a series outside the set
//	SAMPLES                 decoded whole (max_read_response) 502, nothing of it sent
//	STREAMED_XOR_CHUNKS     frame by frame (each at most      the stream is cut off (the
//	                        max_read_response)                connection aborted), never
//	                                                          ended cleanly
//
// The caller's accepted response types go upstream unchanged; Prometheus
// 2.42 asks for STREAMED_XOR_CHUNKS first and the upstream chooses.

const readV1Proto = "prometheus.ReadRequest"

// serveRead serves the remote read route.
func (h *Handler) serveRead(w http.ResponseWriter, r *http.Request, st *state) error {
	wc := &h.cfg.Write
	if err := checkRemoteHeaders(r, readV1Proto); err != nil {
		return err
	}
	body, err := readRemoteBody(r, int64(wc.MaxBody))
	if err != nil {
		return err
	}
	req, err := enforce.DecodeRead(body, int(wc.MaxDecodedBody), wc.MaxReadQueries)
	if err != nil {
		return h.enforceError(err, st.identity)
	}
	rec := &audit.Remote{Queries: len(req.Queries)}
	st.remote = rec
	match := make([]string, len(req.Queries))
	for i, q := range req.Queries {
		ms, err := enforce.ReadMatchers(q)
		if err != nil {
			return h.enforceError(err, st.identity)
		}
		match[i] = enforce.SelectorString(ms)
	}
	st.query = match
	g, err := h.admit(r.Context(), r, st, &ask{route: RouteRead, kind: kindMatch, match: match})
	if err != nil {
		return err
	}
	if err := h.checkReadWindow(req, g.limits); err != nil {
		return err
	}
	enforced := make([]string, len(req.Queries))
	for i, q := range req.Queries {
		ms, err := g.en.ConfineRead(q)
		if err != nil {
			return h.enforceError(err, st.identity)
		}
		enforced[i] = enforce.SelectorString(ms)
	}
	st.enforced = enforced
	release, err := h.inflight.acquire(g, st.identity)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		return err
	}
	defer release()
	out, err := enforce.EncodeRead(req)
	if err != nil {
		return &promapi.Error{Type: promapi.ErrInternal, Msg: "internal error (request id " + st.id + ")", Err: err}
	}
	rec.Forwarded = true
	hdr := http.Header{
		"Content-Type":                     {protobufType},
		"Content-Encoding":                 {"snappy"},
		"X-Prometheus-Remote-Read-Version": {remoteVersion},
	}
	maxResp := int(wc.MaxReadResponse)
	return h.remoteForward(w, r, st, g, wc.ReadUpstreamPath, hdr, out, func(resp *http.Response) error {
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt == "application/x-streamed-protobuf" {
			return streamRead(w, resp, g, st, rec, len(req.Queries), maxResp)
		}
		return samplesRead(w, resp, g, st, rec, maxResp)
	})
}

// checkReadWindow holds each query's time range to the limits.
func (h *Handler) checkReadWindow(req *prompb.ReadRequest, l limits) error {
	now := h.now()
	for _, q := range req.Queries {
		start, end := time.UnixMilli(q.StartTimestampMs), time.UnixMilli(q.EndTimestampMs)
		if l.maxRange > 0 && end.Sub(start) > l.maxRange {
			return promapi.Errorf(promapi.ErrBadData, "time range %s exceeds the maximum of %s", end.Sub(start).Round(time.Second), l.maxRange)
		}
		if l.maxLookback > 0 && now.Sub(start) > l.maxLookback {
			return promapi.Errorf(promapi.ErrBadData, "query reaches %s into the past, beyond the maximum lookback of %s", now.Sub(start).Round(time.Second), l.maxLookback)
		}
	}
	return nil
}

// samplesRead checks a SAMPLES answer whole and sends it as received.
func samplesRead(w http.ResponseWriter, resp *http.Response, g *grant, st *state, rec *audit.Remote, maxResp int) error {
	fail := func(err error) error {
		return &promapi.Error{Type: promapi.ErrUnavailable, Msg: "the upstream's response could not be checked for this caller (request id " + st.id + ")", Err: err}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxResp)+1))
	if err != nil {
		return fail(fmt.Errorf("%w: read: %s", enforce.ErrUpstream, upstreamCause(err)))
	}
	if len(b) > maxResp {
		return fail(fmt.Errorf("%w: response larger than write.max_read_response", enforce.ErrUpstream))
	}
	// A SAMPLES answer decompresses to at most a few times its size; the
	// cap keeps a hostile one bounded.
	rr, err := enforce.DecodeReadResponse(b, 8*maxResp)
	if err != nil {
		return fail(err)
	}
	series, samples, err := g.en.CheckReadResponse(rr)
	rec.Series, rec.Samples = series, samples
	if err != nil {
		return fail(err)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", protobufType)
	hdr.Set("Content-Encoding", "snappy")
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(b)
	return nil
}

// streamRead checks a STREAMED_XOR_CHUNKS answer frame by frame, sending
// each frame once it is checked. Once the first frame is sent the status is
// gone, so a failure aborts the connection: the client sees the stream
// break, never a clean end.
func streamRead(w http.ResponseWriter, resp *http.Response, g *grant, st *state, rec *audit.Remote, queries, maxResp int) error {
	br := bufio.NewReaderSize(resp.Body, 32<<10)
	var buf []byte
	started := false
	flusher, _ := w.(http.Flusher)
	for {
		frame, data, err := enforce.ReadFrame(br, maxResp, buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			var series, chunks int
			series, chunks, err = g.en.CheckChunkedFrame(data, queries)
			rec.Series += series
			rec.Chunks += chunks
		}
		if err != nil {
			if !started {
				return &promapi.Error{Type: promapi.ErrUnavailable, Msg: "the upstream's response could not be checked for this caller (request id " + st.id + ")", Err: err}
			}
			st.err = fmt.Errorf("remote read stream cut off: %w", err)
			panic(http.ErrAbortHandler)
		}
		if !started {
			w.Header().Set("Content-Type", streamedReadType)
			w.WriteHeader(resp.StatusCode)
			started = true
		}
		if _, err := w.Write(frame); err != nil {
			st.err = fmt.Errorf("remote read stream: client write: %w", err)
			return nil
		}
		if flusher != nil {
			flusher.Flush()
		}
		buf = frame[:0]
	}
	if !started {
		w.Header().Set("Content-Type", streamedReadType)
		w.WriteHeader(resp.StatusCode)
	}
	return nil
}
