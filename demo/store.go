package demo

import (
	"bytes"
	"context"
	"math"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// samplesPerChunk is how many samples a chunk holds before the next one is
// cut, as in Prometheus' head block.
const samplesPerChunk = 120

// store is the upstream's storage: every series in memory, its float
// samples in Gorilla (XOR) chunks, the encoding of Prometheus' head block.
// It is a [storage.Queryable] for the PromQL engine and the API, and takes
// samples in batches that a query sees entirely or not at all.
//
// Like Prometheus without out-of-order ingestion it refuses a sample older
// than its series' newest ([storage.ErrOutOfOrderSample]) and one at the
// same timestamp with another value
// ([storage.ErrDuplicateSampleForTimestamp]); the same sample twice is
// ignored. It has no histograms, exemplars, deletion or retention: the
// data lives as long as the process.
type store struct {
	mu     sync.RWMutex
	byHash map[uint64][]*memSeries
	all    []*memSeries
}

var _ storage.Queryable = (*store)(nil)

func newStore() *store {
	return &store{byHash: map[uint64][]*memSeries{}}
}

// memSeries is one series. Its chunks are in time order and never overlap;
// all but the last are immutable.
type memSeries struct {
	lset   labels.Labels
	chunks []memChunk
	app    chunkenc.Appender // appends to the last chunk
	maxt   int64             // newest timestamp, math.MinInt64 when empty
	lastV  float64
}

type memChunk struct {
	chunk      chunkenc.Chunk
	mint, maxt int64
}

// sample is one sample to append to a series of the store.
type sample struct {
	series *memSeries
	t      int64
	v      float64
}

// series returns the series of lset, creating it (without samples) when
// the store has none.
func (s *store) series(lset labels.Labels) *memSeries {
	h := lset.Hash()
	s.mu.RLock()
	ms := s.find(h, lset)
	s.mu.RUnlock()
	if ms != nil {
		return ms
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ms := s.find(h, lset); ms != nil {
		return ms
	}
	ms = &memSeries{lset: lset, maxt: math.MinInt64}
	s.byHash[h] = append(s.byHash[h], ms)
	s.all = append(s.all, ms)
	return ms
}

func (s *store) find(h uint64, lset labels.Labels) *memSeries {
	for _, ms := range s.byHash[h] {
		if labels.Equal(ms.lset, lset) {
			return ms
		}
	}
	return nil
}

// append appends samples in one critical section. A refused sample is
// skipped and reported to refused with its index; the others are appended.
func (s *store) append(samples []sample, refused func(i int, err error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, smp := range samples {
		if err := smp.series.append(smp.t, smp.v); err != nil && refused != nil {
			refused(i, err)
		}
	}
}

func (ms *memSeries) append(t int64, v float64) error {
	switch {
	case t < ms.maxt:
		return storage.ErrOutOfOrderSample
	case t == ms.maxt:
		if math.Float64bits(v) == math.Float64bits(ms.lastV) {
			return nil
		}
		return storage.ErrDuplicateSampleForTimestamp
	}
	if n := len(ms.chunks); n == 0 || ms.chunks[n-1].chunk.NumSamples() >= samplesPerChunk {
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		if err != nil {
			return err
		}
		ms.chunks = append(ms.chunks, memChunk{chunk: c, mint: t})
		ms.app = app
	}
	ms.app.Append(0, t, v)
	ms.chunks[len(ms.chunks)-1].maxt = t
	ms.maxt, ms.lastV = t, v
	return nil
}

// Querier returns a querier of the samples in [mint, maxt].
func (s *store) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{s: s, mint: mint, maxt: maxt}, nil
}

type querier struct {
	s          *store
	mint, maxt int64
}

// selected is the snapshot of one series that a query reads: the chunks
// that overlap the query's range, the last one copied if it was still
// being appended to.
type selected struct {
	lset   labels.Labels
	chunks []memChunk
}

// snapshot returns the series of the store that match every matcher and
// have a sample in [mint, maxt], sorted by their labels.
func (s *store) snapshot(mint, maxt int64, ms []*labels.Matcher) []*selected {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*selected
	for _, sr := range s.all {
		if !matches(sr.lset, ms) || !sr.hasSample(mint, maxt) {
			continue
		}
		sel := &selected{lset: sr.lset}
		for i, c := range sr.chunks {
			if c.maxt < mint || c.mint > maxt {
				continue
			}
			if i == len(sr.chunks)-1 {
				// The open chunk changes with the next append: the query
				// reads a copy.
				cp, err := chunkenc.FromData(chunkenc.EncXOR, bytes.Clone(c.chunk.Bytes()))
				if err != nil {
					continue
				}
				c.chunk = cp
			}
			sel.chunks = append(sel.chunks, c)
		}
		out = append(out, sel)
	}
	slices.SortFunc(out, func(a, b *selected) int { return labels.Compare(a.lset, b.lset) })
	return out
}

func matches(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

// hasSample reports whether the series has a sample in [mint, maxt].
func (ms *memSeries) hasSample(mint, maxt int64) bool {
	var it chunkenc.Iterator
	for _, c := range ms.chunks {
		if c.maxt < mint || c.mint > maxt {
			continue
		}
		if c.mint >= mint || c.maxt <= maxt {
			// The chunk overlaps the range and its first or last sample
			// is in it.
			return true
		}
		it = c.chunk.Iterator(it)
		if it.Seek(mint) != chunkenc.ValNone && it.AtT() <= maxt {
			return true
		}
	}
	return false
}

// Select returns the series that match every matcher and have a sample in
// the range of hints (else of the querier), always sorted by their labels.
func (q *querier) Select(_ context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = hints.Start, hints.End
	}
	return &seriesSet{list: q.s.snapshot(mint, maxt, ms), i: -1}
}

// LabelValues returns the sorted values of name among the series that
// match every matcher and have a sample in the querier's range.
func (q *querier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]struct{}{}
	for _, sel := range q.s.snapshot(q.mint, q.maxt, ms) {
		if v := sel.lset.Get(name); v != "" {
			seen[v] = struct{}{}
		}
	}
	return sortedKeys(seen), nil, nil
}

// LabelNames returns the sorted label names of the series that match every
// matcher and have a sample in the querier's range.
func (q *querier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]struct{}{}
	for _, sel := range q.s.snapshot(q.mint, q.maxt, ms) {
		sel.lset.Range(func(l labels.Label) { seen[l.Name] = struct{}{} })
	}
	return sortedKeys(seen), nil, nil
}

func (*querier) Close() error { return nil }

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type seriesSet struct {
	list []*selected
	i    int
}

func (s *seriesSet) Next() bool {
	if s.i+1 >= len(s.list) {
		s.i = len(s.list)
		return false
	}
	s.i++
	return true
}

func (s *seriesSet) At() storage.Series              { return s.list[s.i] }
func (*seriesSet) Err() error                        { return nil }
func (*seriesSet) Warnings() annotations.Annotations { return nil }

func (sel *selected) Labels() labels.Labels { return sel.lset }

// Iterator chains the iterators of the selected chunks, which never
// overlap. Samples of the first and last chunk may lie outside the selected
// range: the engine skips them, as it does with Prometheus' blocks.
func (sel *selected) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	its := make([]chunkenc.Iterator, len(sel.chunks))
	for i, c := range sel.chunks {
		its[i] = c.chunk.Iterator(nil)
	}
	return storage.ChainSampleIteratorFromIterators(it, its)
}
