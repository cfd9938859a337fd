package proxy

import (
	"encoding/json"
	"math"
	"testing"
)

// FuzzDecodeMatrix feeds the results cache's reader of upstream answers
// (and of memcached items) arbitrary bytes. It must never panic; what it
// accepts must come out of merge as an answer it accepts again, with every
// point kept and the same series, and survive the memcached encoding.
func FuzzDecodeMatrix(f *testing.F) {
	for _, s := range []string{
		`{"status":"success","data":{"resultType":"matrix","result":[]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a"},"values":[[1700000000,"1"],[1700000015.5,"NaN"]]}]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"histograms":[[1700000000,{"count":"3","sum":"1","buckets":[[0,"-0.5","0.5","1"]]}]]}]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"1"]]},{"metric":{"a":"a"},"values":[[2,"+Inf"]]}]},"warnings":["w"]}`,
		`{"status":"error","errorType":"bad_data","error":"x"}`,
		`{"status":"success","data":{"resultType":"vector","result":[]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1e400,"1"]]}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		series, err := decodeMatrix(b)
		if err != nil {
			return
		}
		points := func(ss []partSeries) (n int) {
			for _, s := range ss {
				n += len(s.Values) + len(s.Histograms)
			}
			return n
		}
		metrics := map[string]bool{}
		for _, s := range series {
			metrics[string(s.Metric)] = true
		}
		out := merge([]part{{series: series}}, math.MinInt64, math.MaxInt64)
		again, err := decodeMatrix(out)
		if err != nil {
			t.Fatalf("merge wrote an answer decodeMatrix refuses: %v\n%s", err, out)
		}
		if points(again) != points(series) {
			t.Fatalf("merge kept %d of %d points:\n%s", points(again), points(series), out)
		}
		for _, s := range again {
			if !metrics[string(s.Metric)] {
				t.Fatalf("merge made up series %s", s.Metric)
			}
		}
		enc, err := json.Marshal(series)
		if err != nil {
			t.Fatalf("memcached encoding: %v", err)
		}
		back, err := decodeSeries(enc)
		if err != nil || points(back) != points(series) {
			t.Fatalf("memcached round trip: %v, %d of %d points", err, points(back), points(series))
		}
	})
}
