package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// exporter sends finished spans to an OTLP/HTTP endpoint as protobuf. It
// implements SpanExporter; the batcher calls it from one goroutine at a
// time.
type exporter struct {
	cfg       exportConfig
	client    *http.Client
	userAgent string
	// spans counts exported and failed spans.
	spans *prometheus.CounterVec
	// backoff is the first wait before a retry; it doubles up to maxBackoff.
	backoff time.Duration
	stopped atomic.Bool
	// resource and scope are the encoded resource and instrumentation
	// scope of every span, made once (New sets them).
	resource, scope []byte
	resSchema       string
	// buf is the request body's buffer, and zw the gzip writer, reused
	// from one export to the next (one goroutine exports at a time).
	buf, zbuf []byte
	zw        *gzip.Writer
}

const maxBackoff = 5 * time.Second

func newExporter(cfg exportConfig, version string, spans *prometheus.CounterVec) *exporter {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       cfg.tls,
	}
	return &exporter{
		cfg:       cfg,
		client:    &http.Client{Transport: tr},
		userAgent: "promgate/" + version + " (OTLP/HTTP protobuf)",
		spans:     spans,
		backoff:   200 * time.Millisecond,
	}
}

var errShutdown = errors.New("tracing: the exporter is shut down")

// ExportSpans sends one batch, retrying what the specification calls
// retryable (429, 502, 503, 504 and failed connections) until the export
// timeout. Errors name the endpoint and the status, never a header.
func (e *exporter) ExportSpans(ctx context.Context, spans []*SpanData) error {
	return e.exportEntries(ctx, spanEntries(spans), len(spans))
}

// exportEntries is ExportSpans for the queue's entries, which hold spans
// spans: a Request's are encoded from it, never made.
func (e *exporter) exportEntries(ctx context.Context, batch []entry, spans int) error {
	if e.stopped.Load() {
		return errShutdown
	}
	if len(batch) == 0 {
		return nil
	}
	err := e.export(ctx, batch)
	result := "exported"
	if err != nil {
		result = "failed"
	}
	e.spans.WithLabelValues(result).Add(float64(spans))
	return err
}

func (e *exporter) export(ctx context.Context, batch []entry) (err error) {
	e.buf = appendRequest(e.buf[:0], e.resource, e.scope, e.resSchema, batch)
	body := e.buf
	if e.cfg.gzip {
		zb := bytes.NewBuffer(e.zbuf[:0])
		if e.zw == nil {
			e.zw = gzip.NewWriter(zb)
		} else {
			e.zw.Reset(zb)
		}
		if _, err := e.zw.Write(body); err != nil {
			return fmt.Errorf("tracing: compress spans: %w", err)
		}
		if err := e.zw.Close(); err != nil {
			return fmt.Errorf("tracing: compress spans: %w", err)
		}
		e.zbuf = zb.Bytes()
		body = e.zbuf
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.timeout)
	defer cancel()
	// The transport may still read a body after an early answer; a failed
	// export's buffers are therefore not reused.
	defer func() {
		if err != nil {
			e.buf, e.zbuf = nil, nil
		}
	}()
	wait := e.backoff
	for {
		retry, after, err := e.post(ctx, body)
		if err == nil || !retry {
			return err
		}
		if after <= 0 {
			after = wait
			wait = min(2*wait, maxBackoff)
		}
		t := time.NewTimer(after)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", err, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// post sends body once. It reports whether a failure may be retried, and
// after how long when the endpoint said so (Retry-After).
func (e *exporter) post(ctx context.Context, body []byte) (retry bool, after time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.endpoint, bytes.NewReader(body))
	if err != nil {
		return false, 0, fmt.Errorf("tracing: export to %s: %w", e.cfg.endpoint, err)
	}
	for k, v := range e.cfg.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", e.userAgent)
	if e.cfg.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		// Network failures are retryable; the error of Do names the URL,
		// which carries no credentials (refused by validation).
		return ctx.Err() == nil, 0, fmt.Errorf("tracing: export: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // the answer's body is not used; reading it keeps the connection
	if resp.StatusCode/100 == 2 {
		return false, 0, nil
	}
	err = fmt.Errorf("tracing: export to %s: the endpoint answered %d", e.cfg.endpoint, resp.StatusCode)
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			after = min(time.Duration(s)*time.Second, maxBackoff)
		}
		return true, after, err
	}
	return false, 0, err
}

// Shutdown stops exporting; the batch processor has flushed before.
func (e *exporter) Shutdown(ctx context.Context) error {
	e.stopped.Store(true)
	e.client.CloseIdleConnections()
	return ctx.Err()
}
