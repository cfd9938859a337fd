package config

import (
	"fmt"
	"strings"

	"github.com/alecthomas/units"
)

// Write modes: what the remote write route does with a series that does not
// carry the decision's labels (DESIGN.md, "Remote write and read"). A series
// with a foreign value is never forwarded, whatever the mode.
const (
	// WriteInject adds an enforced label that a series lacks when the
	// decision allows exactly one value of it, and drops the series it
	// cannot fix (foreign values, or a missing label with several allowed
	// values).
	WriteInject = "inject"
	// WriteReject refuses the whole request (400) at the first series
	// that does not carry allowed values. Senders drop a batch answered
	// 400 and do not retry it.
	WriteReject = "reject"
	// WriteDrop forwards the allowed series and drops the others.
	WriteDrop = "drop"
)

// Write configures the remote write (POST /api/v1/write) and remote read
// (POST /api/v1/read) routes. Those listed in routes are served, and the
// policy decides who may use them (route write and route read).
type Write struct {
	// Routes turns the routes on: write (POST /api/v1/write), read (POST
	// /api/v1/read), or both. Off by default: a route not listed is not
	// found (404), exactly as a path the gateway never serves, so that
	// upgrading gives no caller a new way to write.
	Routes []string `yaml:"routes"`
	// Mode is the write mode when the decision names none (its
	// write_mode): inject, reject or drop. Default drop.
	Mode string `yaml:"mode"`
	// UpstreamPath is the upstream's remote write path: /api/v1/write for
	// Prometheus (--web.enable-remote-write-receiver), /api/v1/push for
	// Mimir and Cortex, /api/v1/receive for Thanos Receive. Default
	// /api/v1/write.
	UpstreamPath string `yaml:"upstream_path"`
	// ReadUpstreamPath is the upstream's remote read path. Default
	// /api/v1/read.
	ReadUpstreamPath string `yaml:"read_upstream_path"`
	// MaxBody bounds the compressed body of a remote write or read
	// request (413 beyond it). Default 16MiB.
	MaxBody units.Base2Bytes `yaml:"max_body"`
	// MaxDecodedBody bounds the size the snappy header declares for the
	// decompressed body; it is checked before anything is decompressed.
	// Default 64MiB.
	MaxDecodedBody units.Base2Bytes `yaml:"max_decoded_body"`
	// MaxSeriesPerRequest bounds the time series (and metadata entries) of
	// one write request. Default 20000.
	MaxSeriesPerRequest int `yaml:"max_series_per_request"`
	// MaxSamplesPerRequest bounds the samples, histogram samples and
	// exemplars of one write request. Default 100000.
	MaxSamplesPerRequest int `yaml:"max_samples_per_request"`
	// MaxLabelsPerSeries bounds the labels of one series or exemplar.
	// Default 64.
	MaxLabelsPerSeries int `yaml:"max_labels_per_series"`
	// SamplesPerSecond and SamplesBurst are the token bucket, in samples,
	// of each identity's writes (the decision's rate_key shares one). A
	// request beyond it is answered 429 with Retry-After, which senders
	// honour. Zero SamplesPerSecond means no bound. SamplesBurst must hold
	// at least max_samples_per_request, so that every valid request can
	// pass; default max_samples_per_request.
	SamplesPerSecond float64 `yaml:"samples_per_second"`
	SamplesBurst     int     `yaml:"samples_burst"`
	// MaxReadQueries bounds the queries of one remote read request.
	// Default 16.
	MaxReadQueries int `yaml:"max_read_queries"`
	// MaxReadResponse bounds a remote read answer the gateway checks: the
	// compressed SAMPLES body, and each frame of a streamed one. Default
	// 64MiB.
	MaxReadResponse units.Base2Bytes `yaml:"max_read_response"`
}

// DefaultWrite is the write block's defaults.
func DefaultWrite() Write {
	return Write{
		Mode:                 WriteDrop,
		UpstreamPath:         "/api/v1/write",
		ReadUpstreamPath:     "/api/v1/read",
		MaxBody:              16 * units.MiB,
		MaxDecodedBody:       64 * units.MiB,
		MaxSeriesPerRequest:  20000,
		MaxSamplesPerRequest: 100000,
		MaxLabelsPerSeries:   64,
		MaxReadQueries:       16,
		MaxReadResponse:      64 * units.MiB,
	}
}

// ValidWriteMode reports whether m is a write mode.
func ValidWriteMode(m string) bool {
	return m == WriteInject || m == WriteReject || m == WriteDrop
}

// validate checks the write block.
func (w *Write) validate() []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("write.%s: %s", path, fmt.Sprintf(format, args...)))
	}
	for i, r := range w.Routes {
		if r != "write" && r != "read" {
			add(fmt.Sprintf("routes[%d]", i), "unknown route %q; use write or read", r)
		}
	}
	if !ValidWriteMode(w.Mode) {
		add("mode", "unknown value %q; use inject, reject or drop", w.Mode)
	}
	for _, p := range []struct{ key, v string }{{"upstream_path", w.UpstreamPath}, {"read_upstream_path", w.ReadUpstreamPath}} {
		if !strings.HasPrefix(p.v, "/") || strings.ContainsAny(p.v, "?#% \t") {
			add(p.key, "%q is not an absolute path such as /api/v1/write", p.v)
		}
	}
	for _, s := range []struct {
		key string
		v   units.Base2Bytes
	}{{"max_body", w.MaxBody}, {"max_decoded_body", w.MaxDecodedBody}, {"max_read_response", w.MaxReadResponse}} {
		if s.v <= 0 {
			add(s.key, "must be positive")
		}
	}
	// The decoded size is held in memory and must fit in an int32 snappy
	// header (4 GiB) with room to spare.
	if w.MaxDecodedBody > units.GiB {
		add("max_decoded_body", "%s is above the 1GiB ceiling", w.MaxDecodedBody)
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"max_series_per_request", w.MaxSeriesPerRequest}, {"max_samples_per_request", w.MaxSamplesPerRequest}, {"max_labels_per_series", w.MaxLabelsPerSeries}, {"max_read_queries", w.MaxReadQueries}} {
		if n.v <= 0 {
			add(n.key, "must be positive")
		}
	}
	if w.SamplesPerSecond < 0 {
		add("samples_per_second", "must not be negative")
	}
	if w.SamplesBurst < 0 {
		add("samples_burst", "must not be negative")
	}
	if w.SamplesPerSecond > 0 && w.SamplesBurst > 0 && w.SamplesBurst < w.MaxSamplesPerRequest {
		add("samples_burst", "%d is below max_samples_per_request (%d): a full request could never pass", w.SamplesBurst, w.MaxSamplesPerRequest)
	}
	return errs
}
