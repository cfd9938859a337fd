package enforce

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/prometheus/prompb"
)

func readQuery(ms ...*prompb.LabelMatcher) *prompb.Query {
	return &prompb.Query{StartTimestampMs: 0, EndTimestampMs: 1000, Matchers: ms}
}

func TestConfineRead(t *testing.T) {
	en, err := NewEnforcer(Enforcement{"namespace": {"a", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	eq := func(n, v string) *prompb.LabelMatcher {
		return &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: n, Value: v}
	}
	re := func(n, v string) *prompb.LabelMatcher {
		return &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: n, Value: v}
	}
	tests := []struct {
		name string
		q    *prompb.Query
		want string // the confined selector, or "error: ..."
	}{
		{"no namespace matcher", readQuery(eq("__name__", "up")), `{__name__="up",namespace=~"a|c"}`},
		{"allowed value", readQuery(eq("__name__", "up"), eq("namespace", "a")), `{__name__="up",namespace="a"}`},
		{"regex narrowed", readQuery(eq("__name__", "up"), re("namespace", "a|b")), `{__name__="up",namespace=~"a|b",namespace="a"}`},
		{"foreign value refused", readQuery(eq("__name__", "up"), eq("namespace", "b")), `error: label namespace="b" is not allowed`},
		{"empty value refused", readQuery(eq("__name__", "up"), eq("namespace", "")), "error: "},
		{"unknown type", readQuery(&prompb.LabelMatcher{Type: 9, Name: "x", Value: "y"}), "error: unknown matcher type 9"},
		{"bad regex", readQuery(re("job", "(")), "error: matcher job does not compile"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := en.ConfineRead(tc.q)
			got := ""
			if err != nil {
				got = "error: " + err.Error()
				if !strings.HasPrefix(got, tc.want) {
					t.Errorf("ConfineRead = %q, want %q", got, tc.want)
				}
				return
			}
			got = SelectorString(ms)
			if got != tc.want {
				t.Errorf("ConfineRead = %q, want %q", got, tc.want)
			}
			// The query now carries the confined matchers.
			again, err := ReadMatchers(tc.q)
			if err != nil || SelectorString(again) != got {
				t.Errorf("query matchers %v (%v), want %q", again, err, got)
			}
			if !en.selectorConfined(again) {
				t.Errorf("%s is not confined", got)
			}
		})
	}
}

func TestDecodeRead(t *testing.T) {
	req := &prompb.ReadRequest{
		Queries:               []*prompb.Query{readQuery(&prompb.LabelMatcher{Name: "__name__", Value: "up"})},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS, prompb.ReadRequest_SAMPLES},
	}
	req.Queries[0].XXX_unrecognized = []byte{0xfa, 0x01, 0x01, 0x01} // an unknown field 31
	body, err := EncodeRead(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRead(body, 1<<20, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Queries[0].XXX_unrecognized) != 0 {
		t.Errorf("unknown fields kept: %x", got.Queries[0].XXX_unrecognized)
	}
	if diff := cmp.Diff(req.AcceptedResponseTypes, got.AcceptedResponseTypes); diff != "" {
		t.Errorf("accepted types (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		req  *prompb.ReadRequest
		want string
	}{
		{&prompb.ReadRequest{}, "holds no query"},
		{&prompb.ReadRequest{Queries: []*prompb.Query{readQuery(), readQuery()}}, "holds 2 queries, above the limit of 1"},
		{&prompb.ReadRequest{Queries: []*prompb.Query{{StartTimestampMs: 5, EndTimestampMs: 1}}}, "ends before it starts"},
		{&prompb.ReadRequest{Queries: []*prompb.Query{readQuery()}, AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{7}}, "unknown accepted response type 7"},
	} {
		body, _ := EncodeRead(tc.req)
		if _, err := DecodeRead(body, 1<<20, 1); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeRead = %v, want %q", err, tc.want)
		}
	}
}

func chunkedFrame(t *testing.T, idx int64, ls ...[]prompb.Label) []byte {
	t.Helper()
	cr := &prompb.ChunkedReadResponse{QueryIndex: idx}
	for _, l := range ls {
		cr.ChunkedSeries = append(cr.ChunkedSeries, &prompb.ChunkedSeries{Labels: l, Chunks: []prompb.Chunk{{Type: prompb.Chunk_XOR, Data: []byte{0, 1}}}})
	}
	b, err := cr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadFrames(t *testing.T) {
	en, _ := NewEnforcer(Enforcement{"namespace": {"a"}})
	a := []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "namespace", Value: "a"}}
	b := []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "namespace", Value: "b"}}
	var stream []byte
	stream = AppendFrame(stream, chunkedFrame(t, 0, a, a))
	stream = AppendFrame(stream, chunkedFrame(t, 0, b))
	br := bufio.NewReader(bytes.NewReader(stream))
	frame, data, err := ReadFrame(br, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, c, err := en.CheckChunkedFrame(data, 1); err != nil || s != 2 || c != 2 {
		t.Errorf("first frame: %d series, %d chunks, %v", s, c, err)
	}
	if !bytes.Equal(frame, stream[:len(frame)]) {
		t.Error("the frame is not passed on as read")
	}
	_, data, err = ReadFrame(br, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := en.CheckChunkedFrame(data, 1); !errors.Is(err, ErrUpstream) {
		t.Errorf("foreign series: %v, want ErrUpstream", err)
	}
	if _, _, err := en.CheckChunkedFrame(chunkedFrame(t, 3, a), 1); !errors.Is(err, ErrUpstream) {
		t.Errorf("query index out of range: %v", err)
	}
	if _, _, err := ReadFrame(br, 1<<20, nil); !errors.Is(err, io.EOF) {
		t.Errorf("end of stream: %v, want io.EOF", err)
	}
	bad := AppendFrame(nil, []byte("xyz"))
	bad[len(bad)-1] ^= 1
	if _, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(bad)), 1<<20, nil); !errors.Is(err, ErrUpstream) {
		t.Errorf("checksum mismatch: %v", err)
	}
	if _, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(stream)), 4, nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("frame over the limit: %v", err)
	}
	if _, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(stream[:5])), 1<<20, nil); !errors.Is(err, ErrUpstream) {
		t.Errorf("cut frame: %v", err)
	}
}

func TestCheckReadResponse(t *testing.T) {
	en, _ := NewEnforcer(Enforcement{"namespace": {"a"}})
	ok := &prompb.TimeSeries{Labels: []prompb.Label{{Name: "namespace", Value: "a"}}, Samples: []prompb.Sample{{}, {}}}
	bad := &prompb.TimeSeries{Labels: []prompb.Label{{Name: "job", Value: "x"}}}
	if s, n, err := en.CheckReadResponse(&prompb.ReadResponse{Results: []*prompb.QueryResult{{Timeseries: []*prompb.TimeSeries{ok}}}}); err != nil || s != 1 || n != 2 {
		t.Errorf("allowed: %d %d %v", s, n, err)
	}
	if _, _, err := en.CheckReadResponse(&prompb.ReadResponse{Results: []*prompb.QueryResult{{Timeseries: []*prompb.TimeSeries{ok, bad}}}}); !errors.Is(err, ErrUpstream) {
		t.Errorf("series without namespace: %v, want ErrUpstream", err)
	}
}
