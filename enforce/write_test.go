package enforce

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/prometheus/prompb"
)

// series builds a series from name, value pairs, in the order given.
func series(kv ...string) prompb.TimeSeries {
	ts := prompb.TimeSeries{Samples: []prompb.Sample{{Value: 1, Timestamp: 1000}}}
	for i := 0; i+1 < len(kv); i += 2 {
		ts.Labels = append(ts.Labels, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return ts
}

// names prints each series as a selector, for comparisons.
func names(req *prompb.WriteRequest) []string {
	var out []string
	for _, ts := range req.Timeseries {
		out = append(out, describeSeries(ts.Labels))
	}
	return out
}

func TestConfineWrite(t *testing.T) {
	single := Policy{Enforce: Enforcement{"namespace": {"a"}}}
	two := Policy{Enforce: Enforcement{"namespace": {"a", "c"}}}
	excl := Policy{Enforce: Enforcement{"namespace": {"a"}}, Matchers: []string{`{secret!="true"}`}}
	in := func() *prompb.WriteRequest {
		return &prompb.WriteRequest{
			Timeseries: []prompb.TimeSeries{
				series("__name__", "up", "job", "x", "namespace", "a"),
				series("__name__", "up", "job", "x", "namespace", "b"),
				series("__name__", "http_requests_total", "job", "x"),
				series("__name__", "secret_info", "namespace", "a", "secret", "true"),
			},
			Metadata: []prompb.MetricMetadata{
				{MetricFamilyName: "up"}, {MetricFamilyName: "http_requests"}, {MetricFamilyName: "secret_info"}, {MetricFamilyName: "other"},
			},
		}
	}
	tests := []struct {
		name      string
		policy    Policy
		mode      WriteMode
		want      []string
		wantMeta  []string
		wantStats WriteStats
		wantErr   string
	}{
		{
			name: "unrestricted passes everything", mode: WriteDrop,
			want: []string{
				`{__name__="up",job="x",namespace="a"}`, `{__name__="up",job="x",namespace="b"}`,
				`{__name__="http_requests_total",job="x"}`, `{__name__="secret_info",namespace="a",secret="true"}`,
			},
			wantMeta:  []string{"up", "http_requests", "secret_info", "other"},
			wantStats: WriteStats{Series: 4, Samples: 4, Metadata: 4},
		},
		{
			name: "drop keeps allowed series", policy: single, mode: WriteDrop,
			want:      []string{`{__name__="up",job="x",namespace="a"}`, `{__name__="secret_info",namespace="a",secret="true"}`},
			wantMeta:  []string{"up", "secret_info"},
			wantStats: WriteStats{Series: 4, Samples: 4, Metadata: 4, Foreign: 1, Missing: 1, DroppedMetadata: 2},
		},
		{
			name: "inject adds the one value, drops the foreign", policy: single, mode: WriteInject,
			want: []string{
				`{__name__="up",job="x",namespace="a"}`, `{__name__="http_requests_total",job="x",namespace="a"}`,
				`{__name__="secret_info",namespace="a",secret="true"}`,
			},
			wantMeta:  []string{"up", "http_requests", "secret_info"},
			wantStats: WriteStats{Series: 4, Samples: 4, Metadata: 4, Foreign: 1, Injected: 1, DroppedMetadata: 1},
		},
		{
			name: "inject with two values drops the unlabelled", policy: two, mode: WriteInject,
			want:      []string{`{__name__="up",job="x",namespace="a"}`, `{__name__="secret_info",namespace="a",secret="true"}`},
			wantMeta:  []string{"up", "secret_info"},
			wantStats: WriteStats{Series: 4, Samples: 4, Metadata: 4, Foreign: 1, Missing: 1, DroppedMetadata: 2},
		},
		{
			name: "decision matchers exclude", policy: excl, mode: WriteInject,
			want:      []string{`{__name__="up",job="x",namespace="a"}`, `{__name__="http_requests_total",job="x",namespace="a"}`},
			wantMeta:  []string{"up", "http_requests"},
			wantStats: WriteStats{Series: 4, Samples: 4, Metadata: 4, Foreign: 1, Excluded: 1, Injected: 1, DroppedMetadata: 2},
		},
		{
			name: "reject names the first offending series", policy: single, mode: WriteReject,
			wantErr: `series {__name__="up",job="x",namespace="b"} refused: label namespace="b" is not allowed`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			en, err := NewPolicyEnforcer(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			req := in()
			st, err := en.ConfineWrite(req, tc.mode, WriteLimits{})
			if tc.wantErr != "" {
				var ee *Error
				if !errors.As(err, &ee) || ee.Kind != Forbidden || ee.Msg != tc.wantErr {
					t.Fatalf("ConfineWrite error = %v, want Forbidden %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, names(req)); diff != "" {
				t.Errorf("series (-want +got):\n%s", diff)
			}
			var meta []string
			for _, m := range req.Metadata {
				meta = append(meta, m.MetricFamilyName)
			}
			if diff := cmp.Diff(tc.wantMeta, meta); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantStats, st); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfineWriteExemplars(t *testing.T) {
	en, _ := NewEnforcer(Enforcement{"namespace": {"a"}})
	ts := series("__name__", "up", "namespace", "a")
	ts.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "namespace", Value: "b"}, {Name: "trace_id", Value: "1"}}, Value: 1}}
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}
	st, err := en.ConfineWrite(req, WriteDrop, WriteLimits{})
	if err != nil || len(req.Timeseries) != 0 || st.Foreign != 1 {
		t.Errorf("exemplar naming another namespace: %d series kept, stats %+v, err %v; want the series dropped as foreign", len(req.Timeseries), st, err)
	}
	_, err = en.ConfineWrite(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}, WriteReject, WriteLimits{})
	if err == nil || !strings.Contains(err.Error(), "an exemplar names another value of label namespace") {
		t.Errorf("reject: err %v, want the exemplar named", err)
	}
}

func TestConfineWriteMalformed(t *testing.T) {
	en, _ := NewEnforcer(Enforcement{"namespace": {"a"}})
	lim := WriteLimits{MaxSeries: 2, MaxSamples: 3, MaxLabels: 3}
	tests := []struct {
		name string
		ts   []prompb.TimeSeries
		want string
	}{
		{"no labels", []prompb.TimeSeries{{Samples: []prompb.Sample{{}}}}, "series 0 of the request has no labels"},
		{"unsorted", []prompb.TimeSeries{series("namespace", "a", "__name__", "up")}, "labels are not sorted by name"},
		{"duplicate", []prompb.TimeSeries{series("__name__", "up", "namespace", "a", "namespace", "b")}, "label namespace appears twice"},
		{"empty name", []prompb.TimeSeries{series("", "x", "namespace", "a")}, "a label has an empty name"},
		{"empty value", []prompb.TimeSeries{series("__name__", "up", "namespace", "")}, "label namespace has an empty value"},
		{"invalid UTF-8", []prompb.TimeSeries{series("__name__", "up\xff", "namespace", "a")}, "not valid UTF-8"},
		{"too many labels", []prompb.TimeSeries{series("a", "1", "b", "2", "c", "3", "d", "4")}, "4 labels, above the limit of 3"},
		{"too many series", []prompb.TimeSeries{series("a", "1"), series("a", "2"), series("a", "3")}, "holds 3 series"},
		{"too many samples", []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "a", Value: "1"}}, Samples: make([]prompb.Sample, 4)}}, "holds 4 samples"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := en.ConfineWrite(&prompb.WriteRequest{Timeseries: tc.ts}, WriteDrop, lim)
			var ee *Error
			if !errors.As(err, &ee) || ee.Kind != BadData || !strings.Contains(ee.Msg, tc.want) {
				t.Errorf("ConfineWrite = %v, want BadData containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeWrite(t *testing.T) {
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("__name__", "up", "namespace", "a")}}
	body, err := EncodeWrite(req, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeWrite(body, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(req, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if _, err := DecodeWrite(body, 4); err == nil || !strings.Contains(err.Error(), "above the limit of 4") {
		t.Errorf("declared length over the limit: %v", err)
	}
	// A snappy header declaring 1 GiB in five bytes is refused before any
	// allocation.
	if _, err := DecodeWrite([]byte{0x80, 0x80, 0x80, 0x80, 0x04}, 64<<20); err == nil || !strings.Contains(err.Error(), "declares 1073741824 bytes") {
		t.Errorf("1 GiB declared: %v", err)
	}
	if _, err := DecodeWrite([]byte("not snappy"), 1<<20); err == nil {
		t.Error("garbage decoded")
	}
}
