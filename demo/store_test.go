package demo

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// appendOne appends one sample and returns the error the store refused it
// with.
func appendOne(s *store, lset labels.Labels, t int64, v float64) error {
	var err error
	s.append([]sample{{series: s.series(lset), t: t, v: v}}, func(_ int, e error) { err = e })
	return err
}

// selectAll returns the samples of every series that ms selects in
// [mint, maxt], by the series' labels.
func selectAll(t *testing.T, s *store, mint, maxt int64, ms ...*labels.Matcher) map[string][]int64 {
	t.Helper()
	q, err := s.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), true, nil, ms...)
	out := map[string][]int64{}
	var order []string
	var it chunkenc.Iterator
	for set.Next() {
		sr := set.At()
		order = append(order, sr.Labels().String())
		it = sr.Iterator(it)
		ts := []int64{}
		for it.Next() == chunkenc.ValFloat {
			tt, _ := it.At()
			ts = append(ts, tt)
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[sr.Labels().String()] = ts
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Errorf("series not sorted: %q before %q", order[i-1], order[i])
		}
	}
	return out
}

func TestStoreAppend(t *testing.T) {
	lset := labels.FromStrings("__name__", "x")
	tests := []struct {
		name string
		t    int64
		v    float64
		want error
	}{
		{name: "newer", t: 2000, v: 1},
		{name: "same sample again", t: 2000, v: 1},
		{name: "same timestamp, other value", t: 2000, v: 2, want: storage.ErrDuplicateSampleForTimestamp},
		{name: "older", t: 1000, v: 1, want: storage.ErrOutOfOrderSample},
		{name: "stale marker", t: 3000, v: math.Float64frombits(value.StaleNaN)},
	}
	s := newStore()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := appendOne(s, lset, tc.t, tc.v); !errors.Is(err, tc.want) {
				t.Errorf("append(%d, %v) = %v, want %v", tc.t, tc.v, err, tc.want)
			}
		})
	}
	got := selectAll(t, s, math.MinInt64, math.MaxInt64)
	if diff := cmp.Diff(map[string][]int64{`{__name__="x"}`: {2000, 3000}}, got); diff != "" {
		t.Errorf("samples (-want +got):\n%s", diff)
	}
}

// TestStoreSelect checks the range and matcher selection over several
// chunks, and that a query reads a snapshot taken when it selected.
func TestStoreSelect(t *testing.T) {
	s := newStore()
	a := labels.FromStrings("__name__", "x", "ns", "a")
	b := labels.FromStrings("__name__", "x", "ns", "b")
	// a has a sample every second from 0 to 299 s (three chunks); b has
	// samples at 0-9 s and 290-299 s only, a gap inside one chunk.
	var batch []sample
	for i := range int64(300) {
		batch = append(batch, sample{series: s.series(a), t: i * 1000, v: float64(i)})
		if i < 10 || i >= 290 {
			batch = append(batch, sample{series: s.series(b), t: i * 1000, v: float64(i)})
		}
	}
	s.append(batch, func(i int, err error) { t.Fatalf("sample %d: %v", i, err) })
	if n := len(s.series(a).chunks); n != 3 {
		t.Errorf("a has %d chunks, want 3", n)
	}

	tests := []struct {
		name       string
		mint, maxt int64
		ms         []*labels.Matcher
		want       []string // selected series
	}{
		{name: "everything", mint: 0, maxt: 299_000, want: []string{`{__name__="x", ns="a"}`, `{__name__="x", ns="b"}`}},
		{name: "the gap", mint: 100_000, maxt: 200_000, want: []string{`{__name__="x", ns="a"}`}},
		{name: "one sample of b", mint: 9_000, maxt: 9_000, want: []string{`{__name__="x", ns="a"}`, `{__name__="x", ns="b"}`}},
		{name: "after the end", mint: 300_000, maxt: 400_000},
		{name: "matcher", mint: 0, maxt: 299_000, ms: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "ns", "b")}, want: []string{`{__name__="x", ns="b"}`}},
		{name: "no match", mint: 0, maxt: 299_000, ms: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "ns", "c")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, sel := range s.snapshot(tc.mint, tc.maxt, tc.ms) {
				got = append(got, sel.lset.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("series in [%d, %d] (-want +got):\n%s", tc.mint, tc.maxt, diff)
			}
		})
	}

	q, _ := s.Querier(0, 299_000)
	values, _, _ := q.LabelValues(context.Background(), "ns", nil)
	names, _, _ := q.LabelNames(context.Background(), nil, labels.MustNewMatcher(labels.MatchEqual, "ns", "b"))
	if diff := cmp.Diff([]string{"a", "b"}, values); diff != "" {
		t.Errorf("LabelValues (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"__name__", "ns"}, names); diff != "" {
		t.Errorf("LabelNames (-want +got):\n%s", diff)
	}

	// A series set selected before an append reads the samples of then.
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "ns", "a"))
	if err := appendOne(s, a, 300_000, 300); err != nil {
		t.Fatal(err)
	}
	if !set.Next() {
		t.Fatal("no series")
	}
	it := set.At().Iterator(nil)
	n := 0
	for it.Next() == chunkenc.ValFloat {
		n++
	}
	if n != 300 {
		t.Errorf("the snapshot has %d samples, want 300", n)
	}
	if got := selectAll(t, s, 0, 300_000); len(got[a.String()]) != 301 {
		t.Errorf("a new query reads %d samples of a, want 301", len(got[a.String()]))
	}
}
