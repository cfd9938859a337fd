package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/promapi"
)

// resultsCache answers query_range from parts kept from earlier answers
// (issue 23). It sits between the upstream handler and the coalescer, so it
// sees the upstream request as built: the enforced query, the decision's
// tenant header and the gateway's token. Response filters run after it,
// per caller, as for any upstream answer.
//
// A range is cut into parts at fixed boundaries of the request's step grid:
// Prometheus evaluates a range query at start + k*step, each point on its
// own (its lookback, ranges and subqueries are taken from that point), so a
// part asked on its own returns exactly the points the whole range has
// there. A part is P long, the split interval rounded up to a multiple of
// the step, at least 60 and at most 5,500 steps, and starts at o + n*P, where o is start
// modulo step: every request with the same step and grid offset shares the
// same parts.
//
//	part            cached?                     asked upstream as
//	ends before     yes, kept in full           the whole part, even where it
//	now-freshness                               lies outside [start, end]
//	otherwise       never                       [max(start, part start), end]
//
// Consecutive missing parts are asked in one request. The answer is the
// parts' series merged, trimmed to [start, end] and sorted by labels, as
// Prometheus sorts a range query's matrix.
//
// What is not cached passes through unchanged: a request whose range is
// shorter than one part or wholly newer than the freshness limit; one with
// "@ start()" or "@ end()" (their meaning moves with the range), "stats",
// "limit" or Thanos' "analyze"; one over Prometheus' 11,000 points. An
// upstream answer that is not a plain success (an error, warnings or infos,
// an encoding, another result type, a body over 64 MiB) is not cached or
// merged either: the original request is sent as it is and its answer
// returned, so the caller always gets what the upstream says.
//
// The key of a part is a SHA-256 over the upstream URL (without start, end
// and timeout), every header of the upstream request except the request id
// and trace context (so the tenant and the gateway's token), the step, and
// the part's bounds. The enforced query carries the caller's confinement, so
// two callers share a part only when their upstream requests are the same.
type resultsCache struct {
	next      http.RoundTripper
	store     *partStore
	freshness time.Duration
	split     time.Duration
	now       func() time.Time
	m         *cacheMetrics
	log       *slog.Logger
}

// cacheMaxPoints is Prometheus' own limit of points per series in a range query:
// beyond it the upstream refuses the request, which splitting would hide.
const cacheMaxPoints = 11000

// minPartSteps is the fewest steps in a part, which bounds the number of
// parts of a request to cacheMaxPoints/minPartSteps; maxPartSteps the most, so
// that one upstream request never asks for more than cacheMaxPoints.
const (
	minPartSteps = 60
	maxPartSteps = cacheMaxPoints / 2
)

// cacheKeyVersion changes when the stored form of a part changes.
const cacheKeyVersion = "promgate-results-v1"

func newResultsCache(cfg config.Cache, next http.RoundTripper, now func() time.Time, reg prometheus.Registerer, logger *slog.Logger) (*resultsCache, error) {
	m := newCacheMetrics(reg)
	store := newPartStore(int64(cfg.MaxBytes), m)
	if len(cfg.Memcached.Addresses) > 0 {
		mc, err := newMemcachedTier(cfg.Memcached)
		if err != nil {
			return nil, err
		}
		mc.m = m
		store.remote = mc
	}
	if now == nil {
		now = time.Now
	}
	return &resultsCache{next: next, store: store, freshness: time.Duration(cfg.MaxFreshness),
		split: time.Duration(cfg.SplitInterval), now: now, m: m, log: logger}, nil
}

// noCache reports whether the caller asked to bypass caches.
func noCache(r *http.Request) bool {
	for _, v := range r.Header.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-cache") {
				return true
			}
		}
	}
	return false
}

// rangeRequest is a query_range upstream request as the cache reads it.
type rangeRequest struct {
	params           url.Values
	start, end, step int64 // milliseconds
	base             [sha256.Size]byte
}

// part is one piece of the step grid: points from start to last, step apart.
type part struct {
	start, last int64
	cacheable   bool
	key         [sha256.Size]byte
	series      []partSeries // once known
	hit         bool
}

// RoundTrip answers a query_range upstream request from the cache where it
// can, and sends it unchanged where it cannot.
func (c *resultsCache) RoundTrip(req *http.Request) (*http.Response, error) {
	return c.roundTrip(req, nil)
}

// roundTrip is RoundTrip; when it assembles the answer and st is not nil,
// it says how in st.cache.
func (c *resultsCache) roundTrip(req *http.Request, st *state) (*http.Response, error) {
	rr, why := c.readRequest(req)
	if why != "" {
		c.m.bypassed.WithLabelValues(why).Inc()
		return c.next.RoundTrip(req)
	}
	parts := c.plan(rr)
	if parts == nil {
		c.m.bypassed.WithLabelValues("fresh").Inc()
		return c.next.RoundTrip(req)
	}
	c.store.lookup(req, parts)
	for i := 0; i < len(parts); {
		if parts[i].hit {
			i++
			continue
		}
		j := i
		// One upstream request per run of missing parts, each within
		// Prometheus' points limit.
		for j+1 < len(parts) && !parts[j+1].hit && (parts[j+1].last-parts[i].start)/rr.step+1 <= cacheMaxPoints {
			j++
		}
		from, to := parts[i].start, parts[j].last
		if !parts[i].cacheable {
			from = max(from, rr.start)
		}
		if !parts[j].cacheable {
			to = min(to, rr.end)
		}
		series, resp, err := c.fetch(req, rr, from, to)
		if err != nil {
			return nil, err
		}
		if resp != nil {
			// Not a plain success: the caller gets the upstream's own
			// answer to its own request.
			resp.Body.Close()
			c.m.bypassed.WithLabelValues("answer").Inc()
			return c.next.RoundTrip(req)
		}
		for k := i; k <= j; k++ {
			parts[k].series = slicePart(series, parts[k].start, parts[k].last)
			if parts[k].cacheable {
				c.m.misses.Inc()
				c.store.put(req.Context(), parts[k].key, parts[k].series)
			}
		}
		i = j + 1
	}
	body := merge(parts, rr.start, rr.end)
	if st != nil {
		use := &audit.ResultsCache{}
		for _, p := range parts {
			if p.hit {
				use.PartsHit++
			} else {
				use.PartsFetched++
			}
		}
		st.cache = use
	}
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

// readRequest reads the parameters of req, and returns why it is not cached
// when it is not.
func (c *resultsCache) readRequest(req *http.Request) (*rangeRequest, string) {
	var params url.Values
	switch req.Method {
	case http.MethodGet:
		params = req.URL.Query()
	case http.MethodPost:
		if req.GetBody == nil {
			return nil, "request"
		}
		rc, err := req.GetBody()
		if err != nil {
			return nil, "request"
		}
		b, err := io.ReadAll(io.LimitReader(rc, 1<<20+1))
		rc.Close() //nolint:errcheck // a copy of the request body, only read
		if err != nil || len(b) > 1<<20 {
			return nil, "request"
		}
		if params, err = url.ParseQuery(string(b)); err != nil {
			return nil, "request"
		}
	default:
		return nil, "request"
	}
	for _, p := range []string{"stats", "limit", "analyze"} {
		if params.Has(p) {
			return nil, "params"
		}
	}
	q := params.Get("query")
	if strings.Contains(q, "start()") || strings.Contains(q, "end()") {
		// "@ start()" and "@ end()" move with the range. The test is on
		// the text: a label value holding them is only not cached.
		return nil, "at_modifier"
	}
	start, err1 := promapi.ParseTime(params.Get("start"))
	end, err2 := promapi.ParseTime(params.Get("end"))
	step, err3 := promapi.ParseDuration(params.Get("step"))
	if err1 != nil || err2 != nil || err3 != nil || step < time.Millisecond {
		return nil, "params"
	}
	rr := &rangeRequest{params: params, start: start.UnixMilli(), end: end.UnixMilli(), step: step.Milliseconds()}
	if rr.end < rr.start || (rr.end-rr.start)/rr.step+1 > cacheMaxPoints {
		return nil, "params"
	}
	rr.base = baseKey(req, params)
	return rr, ""
}

// baseKey hashes what the upstream sees of req other than its range, its
// timeout, its request id and trace context.
func baseKey(req *http.Request, params url.Values) [sha256.Size]byte {
	h := sha256.New()
	w := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	w(cacheKeyVersion)
	w(req.URL.Scheme)
	w(req.URL.Host)
	w(req.URL.Path)
	names := make([]string, 0, len(params))
	for k := range params {
		if k != "start" && k != "end" && k != "timeout" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		for _, v := range params[k] {
			w("p")
			w(k)
			w(v)
		}
	}
	hdrs := make([]string, 0, len(req.Header))
	for k := range req.Header {
		switch k {
		case "X-Request-Id", "Traceparent", "Tracestate", "Accept-Encoding", "User-Agent", "Accept-Language", "Content-Length":
		default:
			hdrs = append(hdrs, k)
		}
	}
	slices.Sort(hdrs)
	for _, k := range hdrs {
		for _, v := range req.Header[k] {
			w("h")
			w(k)
			w(v)
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// partLength is the length of one part for a step, both in milliseconds:
// the split interval rounded up to a multiple of the step, and at least
// minPartSteps steps.
func partLength(split time.Duration, step int64) int64 {
	p := (split.Milliseconds() + step - 1) / step * step
	return min(max(p, minPartSteps*step), maxPartSteps*step)
}

// plan cuts rr into parts, or returns nil when nothing of it can be cached.
func (c *resultsCache) plan(rr *rangeRequest) []part {
	p := partLength(c.split, rr.step)
	if rr.end-rr.start < p {
		return nil
	}
	o := ((rr.start % rr.step) + rr.step) % rr.step
	cutoff := c.now().Add(-c.freshness).UnixMilli()
	first := floorDiv(rr.start-o, p)
	last := floorDiv(rr.end-o, p)
	parts := make([]part, 0, last-first+1)
	any := false
	for n := first; n <= last; n++ {
		s := o + n*p
		pt := part{start: s, last: s + p - rr.step, cacheable: s+p <= cutoff}
		if pt.cacheable {
			any = true
			pt.key = partKey(rr.base, rr.step, s, p)
		}
		parts = append(parts, pt)
	}
	if !any {
		return nil
	}
	return parts
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func partKey(base [sha256.Size]byte, step, start, length int64) [sha256.Size]byte {
	var b [sha256.Size + 24]byte
	copy(b[:], base[:])
	// Two's complement bits: a negative start is a key like any other.
	binary.BigEndian.PutUint64(b[sha256.Size:], uint64(step))      //nolint:gosec // bits, not a quantity
	binary.BigEndian.PutUint64(b[sha256.Size+8:], uint64(start))   //nolint:gosec // bits, not a quantity
	binary.BigEndian.PutUint64(b[sha256.Size+16:], uint64(length)) //nolint:gosec // bits, not a quantity
	return sha256.Sum256(b[:])
}

// errNotPlain marks an upstream answer that is not a plain matrix success.
var errNotPlain = errors.New("not a plain matrix answer")

// fetch asks the upstream for req over [from, to]. It returns the series,
// or the upstream's response when it is not a plain success (the caller
// closes it), or a transport error.
func (c *resultsCache) fetch(req *http.Request, rr *rangeRequest, from, to int64) ([]partSeries, *http.Response, error) {
	params := make(url.Values, len(rr.params))
	for k, v := range rr.params {
		params[k] = v
	}
	params.Set("start", formatMillis(from))
	params.Set("end", formatMillis(to))
	enc := params.Encode()
	out := req.Clone(req.Context())
	// The parts are read here, so ask for them uncompressed.
	out.Header.Del("Accept-Encoding")
	if req.Method == http.MethodPost {
		out.Body = io.NopCloser(strings.NewReader(enc))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(enc)), nil }
		out.ContentLength = int64(len(enc))
	} else {
		u := *req.URL
		u.RawQuery = enc
		out.URL = &u
	}
	resp, err := c.next.RoundTrip(out)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK || (resp.Header.Get("Content-Encoding") != "" && !strings.EqualFold(resp.Header.Get("Content-Encoding"), "identity")) {
		return nil, resp, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxFilteredBody+1))
	resp.Body.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("results cache: read upstream answer: %w", err)
	}
	series, err := decodeMatrix(b)
	if err != nil || len(b) > maxFilteredBody {
		// Resent as the caller's own request, which streams.
		resp.Body = io.NopCloser(bytes.NewReader(nil))
		return nil, resp, nil
	}
	return series, nil, nil
}

func formatMillis(ms int64) string {
	return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)
}

// partSeries is one series of a part: its labels and its points, each
// point kept as the upstream wrote it.
type partSeries struct {
	Metric     json.RawMessage   `json:"metric"`
	Values     []json.RawMessage `json:"values,omitempty"`
	Histograms []json.RawMessage `json:"histograms,omitempty"`

	labels labels.Labels
}

// decodeMatrix reads a plain successful matrix answer: no warnings, no
// infos, nothing but status and data, and series of metric, values and
// histograms only. Anything else is errNotPlain.
func decodeMatrix(b []byte) ([]partSeries, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, errNotPlain
	}
	if len(env) != 2 || string(env["status"]) != `"success"` || env["data"] == nil {
		return nil, errNotPlain
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(env["data"], &data); err != nil || len(data) != 2 || string(data["resultType"]) != `"matrix"` || data["result"] == nil {
		return nil, errNotPlain
	}
	return decodeSeries(data["result"])
}

// decodeSeries reads a matrix's result array.
func decodeSeries(b []byte) ([]partSeries, error) {
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, errNotPlain
	}
	out := make([]partSeries, 0, len(raw))
	for _, r := range raw {
		var s partSeries
		for k, v := range r {
			var err error
			switch k {
			case "metric":
				s.Metric = v
			case "values":
				err = json.Unmarshal(v, &s.Values)
			case "histograms":
				err = json.Unmarshal(v, &s.Histograms)
			default:
				err = errNotPlain
			}
			if err != nil {
				return nil, errNotPlain
			}
		}
		var m map[string]string
		if err := json.Unmarshal(s.Metric, &m); err != nil || s.Metric == nil {
			return nil, errNotPlain
		}
		s.labels = labels.FromMap(m)
		for _, p := range s.Values {
			if _, ok := pointTime(p); !ok {
				return nil, errNotPlain
			}
		}
		for _, p := range s.Histograms {
			if _, ok := pointTime(p); !ok {
				return nil, errNotPlain
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// pointTime reads the timestamp of a point [t, v] in milliseconds. The
// point was validated as JSON, so its first element ends at the first comma.
func pointTime(p json.RawMessage) (int64, bool) {
	b := bytes.TrimSpace(p)
	if len(b) < 2 || b[0] != '[' {
		return 0, false
	}
	i := bytes.IndexByte(b, ',')
	if i < 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(b[1:i])), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return int64(math.Round(f * 1000)), true
}

// pointWindow returns the points of ps (in time order, as Prometheus writes
// them) from start to last, found by binary search.
func pointWindow(ps []json.RawMessage, start, last int64) []json.RawMessage {
	if len(ps) == 0 {
		return nil
	}
	if t0, _ := pointTime(ps[0]); t0 >= start {
		if tn, _ := pointTime(ps[len(ps)-1]); tn <= last {
			return ps
		}
	}
	i := sort.Search(len(ps), func(i int) bool { t, _ := pointTime(ps[i]); return t >= start })
	j := sort.Search(len(ps), func(j int) bool { t, _ := pointTime(ps[j]); return t > last })
	if i >= j {
		return nil
	}
	return ps[i:j]
}

// slicePart returns the points of series from start to last, dropping
// series left without points.
func slicePart(series []partSeries, start, last int64) []partSeries {
	out := make([]partSeries, 0, len(series))
	for _, s := range series {
		ps := partSeries{Metric: s.Metric, labels: s.labels,
			Values: pointWindow(s.Values, start, last), Histograms: pointWindow(s.Histograms, start, last)}
		if len(ps.Values)+len(ps.Histograms) > 0 {
			out = append(out, ps)
		}
	}
	return out
}

// merge writes the answer of [start, end] from the parts in order.
func merge(parts []part, start, end int64) []byte {
	type merged struct {
		s          *partSeries
		values     []json.RawMessage
		histograms []json.RawMessage
	}
	byMetric := map[string]*merged{}
	var order []*merged
	size := 64
	for i := range parts {
		series := parts[i].series
		for j := range series {
			s := &series[j]
			m := byMetric[string(s.Metric)]
			if m == nil {
				m = &merged{s: s}
				byMetric[string(s.Metric)] = m
				order = append(order, m)
				size += len(s.Metric) + 32
			}
			vs, hs := pointWindow(s.Values, start, end), pointWindow(s.Histograms, start, end)
			m.values = append(m.values, vs...)
			m.histograms = append(m.histograms, hs...)
			for _, p := range vs {
				size += len(p) + 1
			}
			for _, p := range hs {
				size += len(p) + 1
			}
		}
	}
	slices.SortFunc(order, func(a, b *merged) int { return labels.Compare(a.s.labels, b.s.labels) })
	buf := bytes.NewBuffer(make([]byte, 0, size))
	buf.WriteString(`{"status":"success","data":{"resultType":"matrix","result":[`)
	first := true
	for _, m := range order {
		if len(m.values)+len(m.histograms) == 0 {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		buf.WriteString(`{"metric":`)
		buf.Write(m.s.Metric)
		writePoints(buf, "values", m.values)
		writePoints(buf, "histograms", m.histograms)
		buf.WriteByte('}')
	}
	buf.WriteString(`]}}`)
	return buf.Bytes()
}

func writePoints(buf *bytes.Buffer, name string, points []json.RawMessage) {
	if len(points) == 0 {
		return
	}
	buf.WriteString(`,"` + name + `":[`)
	for i, p := range points {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(p)
	}
	buf.WriteByte(']')
}

// cacheMetrics are the results cache's own metrics.
type cacheMetrics struct {
	hits      *prometheus.CounterVec
	misses    prometheus.Counter
	bytes     prometheus.Gauge
	evictions prometheus.Counter
	bypassed  *prometheus.CounterVec
	errors    prometheus.Counter
	rejected  prometheus.Counter
}

func newCacheMetrics(reg prometheus.Registerer) *cacheMetrics {
	m := &cacheMetrics{
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "promgate_results_cache_hits_total",
			Help: "Parts of query_range answers served from the results cache, by tier (memory, memcached)."}, []string{"tier"}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "promgate_results_cache_misses_total",
			Help: "Cacheable parts of query_range answers asked of the upstream because the cache did not hold them."}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "promgate_results_cache_bytes",
			Help: "Bytes of parts held by the in-process results cache."}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "promgate_results_cache_evictions_total",
			Help: "Parts evicted from the in-process results cache to stay under cache.max_bytes."}),
		bypassed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "promgate_results_cache_bypassed_total",
			Help: "query_range requests sent upstream as they are, by reason."}, []string{"reason"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "promgate_results_cache_memcached_errors_total",
			Help: "memcached operations that failed or timed out (counted as misses)."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "promgate_results_cache_memcached_rejected_total",
			Help: "memcached items refused because their key or signature did not match: written under another name, with another signing key, or by someone without it (counted as misses)."}),
	}
	for _, t := range []string{"memory", "memcached"} {
		m.hits.WithLabelValues(t)
	}
	for _, r := range []string{"no_cache", "request", "params", "at_modifier", "fresh", "answer"} {
		m.bypassed.WithLabelValues(r)
	}
	reg.MustRegister(m.hits, m.misses, m.bytes, m.evictions, m.bypassed, m.errors, m.rejected)
	return m
}

// transportFor is the round tripper of one forwarded request: the results
// cache for query_range when it is on and the caller did not send
// Cache-Control: no-cache, else the upstream's own.
func (u *upstream) transportFor(r *http.Request, st *state) http.RoundTripper {
	if u.cache == nil || st.route != RouteQueryRange {
		return u.rt
	}
	if noCache(r) {
		u.cache.m.bypassed.WithLabelValues("no_cache").Inc()
		return u.rt
	}
	return cacheFor{c: u.cache, st: st}
}

// cacheFor is the results cache for one request: what it did goes into the
// request's audit record.
type cacheFor struct {
	c  *resultsCache
	st *state
}

func (f cacheFor) RoundTrip(req *http.Request) (*http.Response, error) {
	return f.c.roundTrip(req, f.st)
}
