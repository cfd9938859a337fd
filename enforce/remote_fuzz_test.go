package enforce

import (
	"bufio"
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// remotePolicies are the confinements the remote fuzz targets check against:
// one value (inject applies), two values and a regular expression, and a
// decision matcher.
var remotePolicies = []Policy{
	{Enforce: Enforcement{"namespace": {"a"}}},
	{Enforce: Enforcement{"namespace": {"a", "c"}}, EnforceRegex: map[string][]string{"namespace": {"team-.+"}}},
	{Enforce: Enforcement{"namespace": {"a"}}, Matchers: []string{`{secret!="true"}`}},
}

func writeSeed(f *testing.F, req *prompb.WriteRequest) {
	body, err := EncodeWrite(req, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
}

// FuzzWrite decodes a remote write body and confines it in every mode. It
// checks that nothing panics, that every series kept is well-formed (sorted,
// unique, non-empty, valid UTF-8 labels) and allowed by an independent check,
// and that the encoded result decodes to the same request, which a second
// confinement leaves unchanged.
func FuzzWrite(f *testing.F) {
	writeSeed(f, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("__name__", "up", "job", "x", "namespace", "a"),
		series("__name__", "up", "job", "x", "namespace", "b"),
		series("__name__", "http_requests_total", "job", "x"),
	}, Metadata: []prompb.MetricMetadata{{MetricFamilyName: "up"}, {MetricFamilyName: "http_requests"}}})
	writeSeed(f, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:    []prompb.Label{{Name: "__name__", Value: "rpc_seconds"}, {Name: "namespace", Value: "team-x"}},
		Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "namespace", Value: "b"}}, Value: 1}},
		Histograms: []prompb.Histogram{{
			Count: &prompb.Histogram_CountInt{CountInt: 3}, Sum: 2, Schema: 1,
			PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 1}}, PositiveDeltas: []int64{3},
		}},
	}}})
	writeSeed(f, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("namespace", "a", "__name__", "up")}})
	writeSeed(f, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("__name__", "secret_info", "namespace", "a", "secret", "true")}})
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x04})
	ens := make([]*Enforcer, len(remotePolicies))
	for i, p := range remotePolicies {
		en, err := NewPolicyEnforcer(p)
		if err != nil {
			f.Fatal(err)
		}
		ens[i] = en
	}
	lim := WriteLimits{MaxSeries: 1000, MaxSamples: 10000, MaxLabels: 32}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 64<<10 {
			return
		}
		for _, en := range ens {
			for _, mode := range []WriteMode{WriteInject, WriteReject, WriteDrop} {
				req, err := DecodeWrite(body, 1<<20)
				raw, rawErr := DecodeSnappy(body, 1<<20, nil)
				if rawErr != nil {
					return
				}
				wire, wst, werr := en.ConfineWriteWire(raw, mode, lim, nil, nil)
				if werr == nil {
					// Whatever the generated decoder thinks of the body,
					// what the wire path forwards must hold.
					checkForwarded(t, en, mode, wire)
				}
				if err != nil {
					return
				}
				st, err := en.ConfineWrite(req, mode, lim)
				if werr != nil && (err == nil || werr.(*Error).Kind != err.(*Error).Kind) { //nolint:errorlint,forcetypeassert // the package returns *Error itself
					// The wire path may refuse what the generated decoder
					// skips (groups, odd encodings of unknown fields), never
					// a request it reads the same.
					if ee, ok := werr.(*Error); !ok || !strings.HasPrefix(ee.Msg, "the body is not a remote write request") { //nolint:errorlint // as above
						t.Fatalf("mode %s: ConfineWrite gives %v, ConfineWriteWire refuses: %v", mode, err, werr)
					}
					continue
				}
				if err != nil {
					if _, ok := err.(*Error); !ok { //nolint:errorlint // the package returns *Error itself, never wrapped
						t.Fatalf("error %T %v is not an *Error", err, err)
					}
					if werr == nil {
						t.Fatalf("mode %s: ConfineWrite refuses (%v), ConfineWriteWire accepts", mode, err)
					}
					if werr.(*Error).Kind != err.(*Error).Kind { //nolint:errorlint,forcetypeassert // as above
						t.Fatalf("mode %s: error kinds differ: %v and %v", mode, err, werr)
					}
					continue
				}
				if wst != st {
					t.Fatalf("mode %s: stats %+v, the wire path's %+v", mode, st, wst)
				}
				var fromWire prompb.WriteRequest
				if err := fromWire.Unmarshal(wire); err != nil {
					t.Fatalf("the wire path's output does not decode: %v", err)
				}
				// The wire path copies samples, histograms and exemplars as
				// sent, unknown fields included; compare without those.
				if _, err := checkWrite(&fromWire, WriteLimits{}); err != nil {
					t.Fatalf("the wire path's output is malformed: %v", err)
				}
				want, _ := req.Marshal()
				got, _ := fromWire.Marshal()
				if !bytes.Equal(want, got) {
					t.Fatalf("mode %s: the paths' results differ:\nprompb %v\nwire   %v", mode, req, &fromWire)
				}
				if st.Series-st.Dropped() != len(req.Timeseries) {
					t.Fatalf("stats %+v but %d series kept", st, len(req.Timeseries))
				}
				for _, ts := range req.Timeseries {
					if msg := checkLabels(ts.Labels, 0); msg != "" {
						t.Fatalf("kept series %s is malformed: %s", describeSeries(ts.Labels), msg)
					}
					if !en.protoAllowed(ts.Labels) {
						t.Fatalf("mode %s kept %s, which the decision does not allow", mode, describeSeries(ts.Labels))
					}
					for _, e := range ts.Exemplars {
						for _, l := range en.labels {
							if v, ok := lookupLabel(e.Labels, l.name); ok && v != labelValue(ts.Labels, l.name) {
								t.Fatalf("kept exemplar names %s=%q on %s", l.name, v, describeSeries(ts.Labels))
							}
						}
					}
				}
				out, err := EncodeWrite(req, nil)
				if err != nil {
					t.Fatal(err)
				}
				again, err := DecodeWrite(out, 1<<20)
				if err != nil {
					t.Fatalf("the encoded result does not decode: %v", err)
				}
				st2, err := en.ConfineWrite(again, mode, lim)
				if err != nil || st2.Dropped() != 0 || st2.Injected != 0 || len(again.Timeseries) != len(req.Timeseries) {
					t.Fatalf("a second confinement changed the request: %+v, %v", st2, err)
				}
			}
		}
	})
}

// FuzzReadMatchers decodes a remote read body and confines each query. It
// checks, under every policy FuzzQuery uses, that nothing panics, that every
// confined query passes the independent check of check_test.go, that a
// second confinement adds nothing, and that the caller's matchers are kept.
func FuzzReadMatchers(f *testing.F) {
	seed := func(ms ...*prompb.LabelMatcher) {
		body, err := EncodeRead(&prompb.ReadRequest{Queries: []*prompb.Query{readQuery(ms...)},
			AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	seed(&prompb.LabelMatcher{Name: "__name__", Value: "up"})
	seed(&prompb.LabelMatcher{Name: "__name__", Value: "up"}, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "namespace", Value: "a|b|team-x"})
	seed(&prompb.LabelMatcher{Type: prompb.LabelMatcher_NEQ, Name: "namespace", Value: "a"})
	seed(&prompb.LabelMatcher{Type: prompb.LabelMatcher_NRE, Name: "secret", Value: "t.*"})
	seed(&prompb.LabelMatcher{Name: "namespace", Value: "b"})
	ens := make([]*Enforcer, len(fuzzPolicies))
	for i, p := range fuzzPolicies {
		en, err := NewPolicyEnforcer(p)
		if err != nil {
			f.Fatal(err)
		}
		ens[i] = en
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 16<<10 {
			return
		}
		for i, en := range ens {
			req, err := DecodeRead(body, 1<<20, 16)
			if err != nil {
				return
			}
			for _, q := range req.Queries {
				before, err := ReadMatchers(q)
				if err != nil {
					return
				}
				ms, err := en.ConfineRead(q)
				if err != nil {
					continue
				}
				if err := checkConfined(ms, fuzzPolicies[i]); err != nil {
					t.Fatalf("%s confined to %s, which the independent check refuses: %v", SelectorString(before), SelectorString(ms), err)
				}
				for _, m := range before {
					if !slices.ContainsFunc(ms, func(x *labels.Matcher) bool { return x.String() == m.String() }) {
						t.Fatalf("the caller's matcher %s was dropped", m)
					}
				}
				twice, err := en.ConfineRead(q)
				if err != nil || SelectorString(twice) != SelectorString(ms) {
					t.Fatalf("confining %s again gives %s (%v)", SelectorString(ms), SelectorString(twice), err)
				}
			}
		}
	})
}

// checkForwarded checks what the wire path would forward: it decodes, and
// every series in it is well-formed and allowed.
func checkForwarded(t *testing.T, en *Enforcer, mode WriteMode, wire []byte) {
	t.Helper()
	var req prompb.WriteRequest
	if err := req.Unmarshal(wire); err != nil {
		t.Fatalf("mode %s: the wire path's output does not decode: %v", mode, err)
	}
	for _, ts := range req.Timeseries {
		if msg := checkLabels(ts.Labels, 0); msg != "" || len(ts.Labels) == 0 {
			t.Fatalf("mode %s: the wire path forwards malformed %s: %s", mode, describeSeries(ts.Labels), msg)
		}
		if !en.protoAllowed(ts.Labels) {
			t.Fatalf("mode %s: the wire path forwards %s, which the decision does not allow", mode, describeSeries(ts.Labels))
		}
	}
}

// FuzzReadAnswer reads an upstream's remote read answer both ways, as a
// streamed one (frames) and as a SAMPLES one, under a confined enforcer. It
// checks that nothing panics, that a frame longer than the limit is never
// returned, and that an answer that passes holds allowed series only.
func FuzzReadAnswer(f *testing.F) {
	a := []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "namespace", Value: "a"}}
	b := []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "namespace", Value: "b"}}
	for _, ls := range [][]prompb.Label{a, b} {
		cr := &prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{{Labels: ls, Chunks: []prompb.Chunk{{Type: prompb.Chunk_XOR, Data: []byte{0, 1}}}}}}
		raw, err := cr.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(AppendFrame(nil, raw))
		rr := &prompb.ReadResponse{Results: []*prompb.QueryResult{{Timeseries: []*prompb.TimeSeries{{Labels: ls, Samples: []prompb.Sample{{Value: 1}}}}}}}
		raw, err = rr.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(snappy.Encode(nil, raw))
	}
	en, err := NewEnforcer(Enforcement{"namespace": {"a"}})
	if err != nil {
		f.Fatal(err)
	}
	const maxFrame = 4 << 10
	f.Fuzz(func(t *testing.T, body []byte) {
		br := bufio.NewReader(bytes.NewReader(body))
		for {
			frame, data, err := ReadFrame(br, maxFrame, nil)
			if err != nil {
				break
			}
			if len(data) > maxFrame || len(frame) < len(data)+5 {
				t.Fatalf("frame of %d bytes with %d of data, limit %d", len(frame), len(data), maxFrame)
			}
			if _, _, err := en.CheckChunkedFrame(data, 1); err != nil {
				break
			}
			var cr prompb.ChunkedReadResponse
			if err := cr.Unmarshal(data); err != nil {
				t.Fatalf("a checked frame does not decode: %v", err)
			}
			for _, s := range cr.ChunkedSeries {
				if s != nil && !en.protoAllowed(s.Labels) {
					t.Fatalf("a checked frame holds %s", describeSeries(s.Labels))
				}
			}
		}
		rr, err := DecodeReadResponse(body, 1<<20)
		if err != nil {
			return
		}
		if _, _, err := en.CheckReadResponse(rr); err != nil {
			return
		}
		for _, r := range rr.Results {
			for _, ts := range r.GetTimeseries() {
				if ts != nil && !en.protoAllowed(ts.Labels) {
					t.Fatalf("a checked answer holds %s", describeSeries(ts.Labels))
				}
			}
		}
	})
}
