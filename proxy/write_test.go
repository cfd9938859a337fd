package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"golang.org/x/time/rate"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/enforce"
)

func writeSeries(kv ...string) prompb.TimeSeries {
	ts := prompb.TimeSeries{Samples: []prompb.Sample{{Value: 1, Timestamp: 1000}}}
	for i := 0; i+1 < len(kv); i += 2 {
		ts.Labels = append(ts.Labels, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return ts
}

// mixedWrite holds a series of namespace a, one of b and one without.
func mixedWrite(t testing.TB) string {
	t.Helper()
	b, err := enforce.EncodeWrite(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		writeSeries("__name__", "up", "namespace", "a"),
		writeSeries("__name__", "up", "namespace", "b"),
		writeSeries("__name__", "up", "job", "x"),
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var writeHeaders = map[string]string{"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0", "X-Scope-OrgID": "tenant-b"}

// forwardedSeries decodes the last body the fake upstream received.
func forwardedSeries(t *testing.T, f *fixture) []string {
	t.Helper()
	_, body := f.up.last()
	req, err := enforce.DecodeWrite([]byte(body), 1<<20)
	if err != nil {
		t.Fatalf("forwarded body: %v", err)
	}
	var out []string
	for _, ts := range req.Timeseries {
		var parts []string
		for _, l := range ts.Labels {
			parts = append(parts, l.Name+"="+l.Value)
		}
		out = append(out, strings.Join(parts, ","))
	}
	return out
}

// remoteFixture is newFixtureTransport with the write and read routes on.
func remoteFixture(t *testing.T, rt http.RoundTripper) *fixture {
	t.Helper()
	f := newFixtureTransport(t, rt)
	f.h.cfg.Write.Routes = []string{"write", "read"}
	return f
}

func TestRemoteRoutesOff(t *testing.T) {
	f := newFixture(t)
	f.h.cfg.Write.Routes = []string{"read"}
	w := f.do(t, request{method: http.MethodPost, target: "/api/v1/write", body: mixedWrite(t), contentType: "application/x-protobuf", user: "root", header: writeHeaders})
	if w.Code != http.StatusNotFound || f.up.count() != 0 {
		t.Errorf("write not listed in write.routes: %d with %d forwarded, want 404 and none", w.Code, f.up.count())
	}
}

func lastRemote(f *fixture) *audit.Remote {
	f.aud.mu.Lock()
	defer f.aud.mu.Unlock()
	return f.aud.records[len(f.aud.records)-1].Remote
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name        string
		mode        string
		user        string
		contentType string
		header      map[string]string
		body        string
		status      int
		msg         string
		want        []string // forwarded series; nil: not forwarded
		remote      *audit.Remote
	}{
		{
			name: "drop keeps team-a's series", mode: "drop", user: "alice", status: 200,
			want:   []string{"__name__=up,namespace=a"},
			remote: &audit.Remote{WriteMode: "drop", Series: 3, Samples: 3, DroppedForeign: 1, DroppedMissing: 1, Forwarded: true},
		},
		{
			name: "inject adds namespace a", mode: "inject", user: "alice", status: 200,
			want:   []string{"__name__=up,namespace=a", "__name__=up,job=x,namespace=a"},
			remote: &audit.Remote{WriteMode: "inject", Series: 3, Samples: 3, DroppedForeign: 1, Injected: 1, Forwarded: true},
		},
		{
			name: "reject refuses the request", mode: "reject", user: "alice", status: 400,
			msg:    `series {__name__="up",namespace="b"} refused: label namespace="b" is not allowed (write mode reject: the whole request is refused)`,
			remote: &audit.Remote{WriteMode: "reject", Series: 3, Samples: 3},
		},
		{
			name: "admin unrestricted", mode: "reject", user: "root", status: 200,
			want: []string{"__name__=up,namespace=a", "__name__=up,namespace=b", "__name__=up,job=x"},
		},
		{name: "no policy access", mode: "drop", user: "mallory", status: 403, msg: "mallory"},
		{name: "no certificate", mode: "drop", status: 401},
		{name: "remote write 2.0 gets 415", mode: "drop", user: "alice", contentType: "application/x-protobuf;proto=io.prometheus.write.v2.Request", status: 415, msg: "remote write 2.0"},
		{name: "JSON gets 415", mode: "drop", user: "alice", contentType: "application/json", status: 415},
		{name: "gzip gets 415", mode: "drop", user: "alice", header: map[string]string{"Content-Encoding": "gzip"}, status: 415},
		{name: "not snappy", mode: "drop", user: "alice", body: "garbage!", status: 400, msg: "snappy"},
		{name: "not protobuf", mode: "drop", user: "alice", body: string(snappy.Encode(nil, []byte{0xff, 0xff, 0xff})), status: 400, msg: "not a remote write request"},
		{name: "declares 1 GiB", mode: "drop", user: "alice", body: "\x80\x80\x80\x80\x04", status: 400, msg: "declares 1073741824 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := remoteFixture(t, nil)
			f.h.cfg.Write.Mode = tc.mode
			if tc.user == "alice" {
				// The fake policy names a tenant for team-a only.
				f.h.cfg.Upstream.TenantHeader = "X-Scope-OrgID"
			}
			ct := tc.contentType
			if ct == "" {
				ct = "application/x-protobuf"
			}
			hdr := map[string]string{}
			for k, v := range writeHeaders {
				hdr[k] = v
			}
			for k, v := range tc.header {
				hdr[k] = v
			}
			body := tc.body
			if body == "" {
				body = mixedWrite(t)
			}
			w := f.do(t, request{method: http.MethodPost, target: "/api/v1/write", body: body, contentType: ct, user: tc.user, header: hdr})
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.msg != "" {
				if _, msg := errorBody(t, w); !strings.Contains(msg, tc.msg) {
					t.Errorf("error %q, want it to contain %q", msg, tc.msg)
				}
			}
			if tc.want == nil {
				if n := f.up.count(); n != 0 {
					t.Errorf("%d requests forwarded, want none", n)
				}
			} else {
				if diff := cmp.Diff(tc.want, forwardedSeries(t, f)); diff != "" {
					t.Errorf("forwarded series (-want +got):\n%s", diff)
				}
				up, _ := f.up.last()
				if up.URL.Path != "/api/v1/write" || up.Header.Get("Content-Encoding") != "snappy" || up.Header.Get("X-Prometheus-Remote-Write-Version") != "0.1.0" {
					t.Errorf("upstream request %s %v", up.URL.Path, up.Header)
				}
				if tc.user == "alice" && up.Header.Get("X-Scope-Orgid") != "tenant-a" {
					t.Errorf("tenant %q, want the decision's tenant-a, never the client's", up.Header.Get("X-Scope-Orgid"))
				}
			}
			if tc.remote != nil {
				if diff := cmp.Diff(tc.remote, lastRemote(f)); diff != "" {
					t.Errorf("audit remote (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestWriteDroppedMetric(t *testing.T) {
	f := remoteFixture(t, nil)
	f.h.cfg.Write.Mode = "inject"
	for range 2 {
		f.do(t, request{method: http.MethodPost, target: "/api/v1/write", body: mixedWrite(t), contentType: "application/x-protobuf", user: "alice", header: writeHeaders})
	}
	want := `
# HELP promgate_write_dropped_series_total Series of remote write requests dropped in drop and inject modes, by reason (foreign_value, missing_label, excluded). A request refused in reject mode is counted by promgate_requests_total with code 400.
# TYPE promgate_write_dropped_series_total counter
promgate_write_dropped_series_total{reason="excluded"} 0
promgate_write_dropped_series_total{reason="foreign_value"} 2
promgate_write_dropped_series_total{reason="missing_label"} 0
# HELP promgate_write_injected_series_total Series of remote write requests given an enforced label in inject mode.
# TYPE promgate_write_injected_series_total counter
promgate_write_injected_series_total 2
`
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), "promgate_write_dropped_series_total", "promgate_write_injected_series_total"); err != nil {
		t.Error(err)
	}
}

func TestWriteNothingLeft(t *testing.T) {
	f := remoteFixture(t, nil)
	b, _ := enforce.EncodeWrite(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{writeSeries("__name__", "up", "namespace", "b")}}, nil)
	w := f.do(t, request{method: http.MethodPost, target: "/api/v1/write", body: string(b), contentType: "application/x-protobuf", user: "alice", header: writeHeaders})
	if w.Code != http.StatusNoContent || f.up.count() != 0 {
		t.Errorf("status %d with %d forwarded, want 204 and nothing forwarded", w.Code, f.up.count())
	}
}

func TestWriteSampleRate(t *testing.T) {
	f := remoteFixture(t, nil)
	now := time.Unix(1_700_000_000, 0)
	f.h.now = func() time.Time { return now }
	f.h.remote.samples = &sampleLimiter{rps: rate.Limit(1), burst: 4, items: map[string]*rate.Limiter{}}
	body := mixedWrite(t) // 3 samples
	w := f.do(t, request{method: http.MethodPost, target: "/api/v1/write", body: body, contentType: "application/x-protobuf", user: "alice", header: writeHeaders})
	if w.Code != http.StatusOK {
		t.Fatalf("first request: %d %s", w.Code, w.Body)
	}
	w = f.do(t, request{method: http.MethodPost, target: "/api/v1/write", body: body, contentType: "application/x-protobuf", user: "alice", header: writeHeaders})
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "2" {
		t.Fatalf("second request: %d Retry-After %q, want 429 with Retry-After 2 (2 samples short at 1/s)", w.Code, w.Header().Get("Retry-After"))
	}
	if f.up.count() != 1 {
		t.Errorf("%d forwarded, want 1", f.up.count())
	}
	now = now.Add(2 * time.Second)
	w = f.do(t, request{method: http.MethodPost, target: "/api/v1/write", body: body, contentType: "application/x-protobuf", user: "alice", header: writeHeaders})
	if w.Code != http.StatusOK {
		t.Errorf("after Retry-After: %d", w.Code)
	}
}

func TestWriteUpstreamError(t *testing.T) {
	f := remoteFixture(t, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{"Retry-After": {"3"}},
			Body: io.NopCloser(strings.NewReader("out of order sample")), Request: r}, nil
	}))
	w := f.do(t, request{method: http.MethodPost, target: "/api/v1/write", body: mixedWrite(t), contentType: "application/x-protobuf", user: "alice", header: writeHeaders})
	if w.Code != http.StatusBadRequest || w.Body.String() != "out of order sample" || w.Header().Get("Retry-After") != "3" {
		t.Errorf("upstream 400: got %d %q %v", w.Code, w.Body, w.Header())
	}
}

// readBody builds a remote read request body for one query.
func readBody(t testing.TB, ms ...*prompb.LabelMatcher) string {
	t.Helper()
	b, err := enforce.EncodeRead(&prompb.ReadRequest{
		Queries:               []*prompb.Query{{StartTimestampMs: time.Now().Add(-time.Hour).UnixMilli(), EndTimestampMs: time.Now().UnixMilli(), Matchers: ms}},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS, prompb.ReadRequest_SAMPLES},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readUpstream answers remote read with resp, recording the request.
func readUpstream(got *[]*prompb.ReadRequest, resp func() *http.Response) roundTripFunc {
	return func(r *http.Request) (*http.Response, error) {
		b, _ := io.ReadAll(r.Body)
		req, err := enforce.DecodeRead(b, 1<<20, 16)
		if err != nil {
			return nil, err
		}
		*got = append(*got, req)
		out := resp()
		out.Request = r
		return out, nil
	}
}

func samplesResponse(t testing.TB, ls ...[]prompb.Label) func() *http.Response {
	rr := &prompb.ReadResponse{Results: []*prompb.QueryResult{{}}}
	for _, l := range ls {
		rr.Results[0].Timeseries = append(rr.Results[0].Timeseries, &prompb.TimeSeries{Labels: l, Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}})
	}
	raw, err := rr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	body := snappy.Encode(nil, raw)
	return func() *http.Response {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-protobuf"}, "Content-Encoding": {"snappy"}},
			Body: io.NopCloser(bytes.NewReader(body))}
	}
}

func streamedResponse(t testing.TB, frames ...[]prompb.Label) func() *http.Response {
	var body []byte
	for _, l := range frames {
		cr := &prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{{Labels: l, Chunks: []prompb.Chunk{{Type: prompb.Chunk_XOR, Data: []byte{0, 0}}}}}}
		raw, err := cr.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		body = enforce.AppendFrame(body, raw)
	}
	return func() *http.Response {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {streamedReadType}}, Body: io.NopCloser(bytes.NewReader(body))}
	}
}

var (
	nsA    = []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "namespace", Value: "a"}}
	nsB    = []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "namespace", Value: "b"}}
	upName = &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}
)

func TestRead(t *testing.T) {
	snappyHdr := map[string]string{"Content-Encoding": "snappy", "X-Prometheus-Remote-Read-Version": "0.1.0"}
	t.Run("the query is confined, SAMPLES pass", func(t *testing.T) {
		var got []*prompb.ReadRequest
		f := remoteFixture(t, readUpstream(&got, samplesResponse(t, nsA))) //nolint:bodyclose // the fake upstream's responses are closed by the gateway
		w := f.do(t, request{method: http.MethodPost, target: "/api/v1/read", body: readBody(t, upName), contentType: "application/x-protobuf", user: "alice", header: snappyHdr})
		if w.Code != 200 || w.Header().Get("Content-Encoding") != "snappy" {
			t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
		}
		ms, _ := enforce.ReadMatchers(got[0].Queries[0])
		if s := enforce.SelectorString(ms); s != `{__name__="up",namespace="a"}` {
			t.Errorf("forwarded %s", s)
		}
		if r := lastRemote(f); r.Series != 1 || r.Samples != 1 || r.Queries != 1 || !r.Forwarded {
			t.Errorf("audit remote %+v", r)
		}
	})
	t.Run("a foreign query is refused", func(t *testing.T) {
		var got []*prompb.ReadRequest
		f := remoteFixture(t, readUpstream(&got, samplesResponse(t, nsA))) //nolint:bodyclose // the fake upstream's responses are closed by the gateway
		w := f.do(t, request{method: http.MethodPost, target: "/api/v1/read", contentType: "application/x-protobuf", user: "alice", header: snappyHdr,
			body: readBody(t, upName, &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "namespace", Value: "b"})})
		if w.Code != 403 || len(got) != 0 {
			t.Errorf("%d with %d forwarded, want 403 and none", w.Code, len(got))
		}
	})
	t.Run("a foreign series in SAMPLES is never passed", func(t *testing.T) {
		var got []*prompb.ReadRequest
		f := remoteFixture(t, readUpstream(&got, samplesResponse(t, nsA, nsB))) //nolint:bodyclose // the fake upstream's responses are closed by the gateway
		w := f.do(t, request{method: http.MethodPost, target: "/api/v1/read", body: readBody(t, upName), contentType: "application/x-protobuf", user: "alice", header: snappyHdr})
		if w.Code != http.StatusBadGateway || bytes.Contains(w.Body.Bytes(), []byte("namespace")) {
			t.Errorf("%d %s, want 502 naming nothing", w.Code, w.Body)
		}
	})
	t.Run("streamed frames pass", func(t *testing.T) {
		var got []*prompb.ReadRequest
		f := remoteFixture(t, readUpstream(&got, streamedResponse(t, nsA, nsA))) //nolint:bodyclose // the fake upstream's responses are closed by the gateway
		w := f.do(t, request{method: http.MethodPost, target: "/api/v1/read", body: readBody(t, upName), contentType: "application/x-protobuf", user: "alice", header: snappyHdr})
		want, _ := io.ReadAll(streamedResponse(t, nsA, nsA)().Body) //nolint:bodyclose // the fake upstream's responses are closed by the gateway
		if w.Code != 200 || w.Header().Get("Content-Type") != streamedReadType || !bytes.Equal(w.Body.Bytes(), want) {
			t.Errorf("%d %v, %d bytes, want the stream as sent", w.Code, w.Header(), w.Body.Len())
		}
		if r := lastRemote(f); r.Series != 2 || r.Chunks != 2 {
			t.Errorf("audit remote %+v", r)
		}
	})
	t.Run("a foreign streamed series cuts the stream", func(t *testing.T) {
		var got []*prompb.ReadRequest
		f := remoteFixture(t, readUpstream(&got, streamedResponse(t, nsA, nsB))) //nolint:bodyclose // the fake upstream's responses are closed by the gateway
		var w *httptest.ResponseRecorder
		func() {
			defer func() {
				if p := recover(); p != http.ErrAbortHandler { //nolint:errorlint // a panic value compared by identity, as net/http does
					t.Errorf("panic %v, want http.ErrAbortHandler", p)
				}
			}()
			w = f.do(t, request{method: http.MethodPost, target: "/api/v1/read", body: readBody(t, upName), contentType: "application/x-protobuf", user: "alice", header: snappyHdr})
		}()
		if w != nil {
			t.Fatal("the handler returned normally")
		}
		f.aud.mu.Lock()
		rec := f.aud.records[len(f.aud.records)-1]
		f.aud.mu.Unlock()
		if !strings.Contains(rec.Error, "stream cut off") {
			t.Errorf("audit error %q", rec.Error)
		}
	})
	t.Run("a foreign first frame is a 502", func(t *testing.T) {
		var got []*prompb.ReadRequest
		f := remoteFixture(t, readUpstream(&got, streamedResponse(t, nsB))) //nolint:bodyclose // the fake upstream's responses are closed by the gateway
		w := f.do(t, request{method: http.MethodPost, target: "/api/v1/read", body: readBody(t, upName), contentType: "application/x-protobuf", user: "alice", header: snappyHdr})
		if w.Code != http.StatusBadGateway {
			t.Errorf("%d, want 502", w.Code)
		}
	})
}

func TestWriteBodyLimit(t *testing.T) {
	f := remoteFixture(t, nil)
	f.h.cfg.Write.MaxBody = 64
	body := mixedWrite(t) + strings.Repeat("x", 64)
	w := f.do(t, request{method: http.MethodPost, target: "/api/v1/write", body: body, contentType: "application/x-protobuf", user: "alice", header: writeHeaders})
	if w.Code != http.StatusRequestEntityTooLarge || f.up.count() != 0 {
		t.Errorf("announced body over write.max_body: %d with %d forwarded, want 413 and none", w.Code, f.up.count())
	}
	// Without Content-Length (chunked), the read stops at the limit.
	r := httptest.NewRequest(http.MethodPost, "https://gw.example/api/v1/write", io.MultiReader(strings.NewReader(body)))
	r.ContentLength = -1
	r.Header.Set("Content-Type", "application/x-protobuf")
	for k, v := range writeHeaders {
		r.Header.Set(k, v)
	}
	r.TLS = verifiedState(f.certs["alice"])
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, r)
	if rec.Code != http.StatusRequestEntityTooLarge || f.up.count() != 0 {
		t.Errorf("unannounced body over write.max_body: %d with %d forwarded, want 413 and none", rec.Code, f.up.count())
	}
}
