package main

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// otlpSink is the OTLP/HTTP endpoint of the traced gateway (case 4c): it
// takes every export and throws it away, so that the run measures what
// tracing costs the gateway, not a collector.
type otlpSink struct {
	url     string
	srv     *http.Server
	exports atomic.Int64
	bytes   atomic.Int64
}

func startOTLPSink() (*otlpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &otlpSink{url: "http://" + ln.Addr().String() + "/v1/traces"}
	s.srv = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			s.exports.Add(1)
			s.bytes.Add(n)
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.WriteHeader(http.StatusOK)
		}),
	}
	go func() { _ = s.srv.Serve(ln) }() // ends with Close
	return s, nil
}

func (s *otlpSink) close() {
	if s != nil {
		_ = s.srv.Close() // the sink's state is only counters
	}
}
