package tracing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// SpanExporter sends a batch of finished spans: the OTLP exporter, or a
// test's. The batcher calls it from one goroutine at a time.
type SpanExporter interface {
	ExportSpans(ctx context.Context, spans []*SpanData) error
	Shutdown(ctx context.Context) error
}

// batchConfig is the batch processor's settings: the OTEL_BSP_* variables,
// with the specification's defaults.
type batchConfig struct {
	scheduleDelay time.Duration // OTEL_BSP_SCHEDULE_DELAY, 5000 ms
	exportTimeout time.Duration // OTEL_BSP_EXPORT_TIMEOUT, 30000 ms
	maxQueue      int           // OTEL_BSP_MAX_QUEUE_SIZE, 2048
	maxBatch      int           // OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512
}

// batchConfigOf reads the OTEL_BSP_* variables. A bad value is an error
// naming the variable: the SDK would ignore it, but a gateway's
// configuration mistakes are refused at start.
func batchConfigOf(getenv func(string) string) (batchConfig, error) {
	bc := batchConfig{scheduleDelay: 5 * time.Second, exportTimeout: 30 * time.Second, maxQueue: 2048, maxBatch: 512}
	var errs []error
	for _, v := range []struct {
		name string
		ms   *time.Duration
		n    *int
	}{
		{"OTEL_BSP_SCHEDULE_DELAY", &bc.scheduleDelay, nil},
		{"OTEL_BSP_EXPORT_TIMEOUT", &bc.exportTimeout, nil},
		{"OTEL_BSP_MAX_QUEUE_SIZE", nil, &bc.maxQueue},
		{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", nil, &bc.maxBatch},
	} {
		s := strings.TrimSpace(getenv(v.name))
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 1<<24 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive integer", v.name, s))
			continue
		}
		if v.ms != nil {
			*v.ms = time.Duration(n) * time.Millisecond
		} else {
			*v.n = n
		}
	}
	// As the specification says: a batch is never larger than the queue.
	bc.maxBatch = min(bc.maxBatch, bc.maxQueue)
	return bc, errors.Join(errs...)
}

// sampling is a sampler built from the SDK's, with its parts: the root
// sampler, and whether it is parent-based (with the SDK's default choices:
// a sampled parent's children are sampled, the others not). StartServer
// decides with the parts, without a context.
type sampling struct {
	sdktrace.Sampler
	root        sdktrace.Sampler
	parentBased bool
	// always: the root sampler is AlwaysSample, which StartServer need
	// not ask.
	always bool
}

func parentBased(root sdktrace.Sampler) *sampling {
	return &sampling{Sampler: sdktrace.ParentBased(root), root: root, parentBased: true, always: alwaysOn(root)}
}

func plain(s sdktrace.Sampler) *sampling { return &sampling{Sampler: s, root: s, always: alwaysOn(s)} }

// alwaysOn: s samples every trace, as AlwaysSample and a ratio of 1 do
// (the SDK gives the latter its own description, as the specification
// asks).
func alwaysOn(s sdktrace.Sampler) bool {
	d := s.Description()
	return d == sdktrace.AlwaysSample().Description() || d == sdktrace.TraceIDRatioBased(1).Description()
}

// samplerOf is the sampler of cfg's sample ratio when it is set, else of
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (parent-based, every new
// trace sampled, when unset), built from the SDK's samplers.
func samplerOf(ratio *float64, getenv func(string) string) (*sampling, error) {
	if ratio != nil {
		return parentBased(sdktrace.TraceIDRatioBased(*ratio)), nil
	}
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
	fraction := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || f < 0 || f > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio between 0 and 1", arg)
		}
		return f, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return parentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return plain(sdktrace.AlwaysSample()), nil
	case "always_off":
		return plain(sdktrace.NeverSample()), nil
	case "parentbased_always_off":
		return parentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		f, err := fraction()
		return plain(sdktrace.TraceIDRatioBased(f)), err
	case "parentbased_traceidratio":
		f, err := fraction()
		return parentBased(sdktrace.TraceIDRatioBased(f)), err
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER: %q is not one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio", name)
}

// batcher queues ended spans and exports them in batches from one
// goroutine: when maxBatch are queued, or scheduleDelay after the last
// export. A full queue drops the span and counts it: the request path
// never waits for the exporter. The queue is a slice under a mutex, and the
// loop is woken only when a batch is full (or by its timer), not for every
// span: a channel send a span would wake the loop's goroutine thousands of
// times a second, which costs more than the spans themselves.
//
// A gateway request's spans (a Request) are queued, counted, dropped and
// exported together: one entry, one lock a request. The sizes (maxQueue,
// maxBatch) count spans, as the OTEL_BSP_* variables say; a batch holds
// whole requests, so it may hold fewer than maxBatch spans, or more when one
// request alone has more.
type batcher struct {
	cfg     batchConfig
	exp     SpanExporter
	dropped func(n int)
	// failed receives the exporter's errors (logged at a bounded rate).
	failed func(error)

	mu    sync.Mutex
	queue []entry
	// queued is how many spans queue holds.
	queued  int
	stopped bool

	// full wakes the loop when a batch is full.
	full chan struct{}
	// flush asks the loop to export everything queued and answer on the
	// channel it carries.
	flush chan chan struct{}
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// entry is one queued span, or one request's spans.
type entry struct {
	span *SpanData
	req  *Request
}

func (e entry) spans() int {
	if e.req != nil {
		return e.req.spans()
	}
	return 1
}

// release lets go of what e holds once exported or dropped: a Request is
// reused.
func (e entry) release() {
	if e.req != nil {
		e.req.release()
	}
}

// entryExporter is an exporter that takes the queue's entries as they are
// (the OTLP exporter, which encodes a Request without making its spans).
// Any other SpanExporter gets them as SpanData.
type entryExporter interface {
	exportEntries(ctx context.Context, batch []entry, spans int) error
}

func newBatcher(cfg batchConfig, exp SpanExporter, dropped func(n int), failed func(error)) *batcher {
	b := &batcher{
		cfg: cfg, exp: exp, dropped: dropped, failed: failed,
		queue: make([]entry, 0, cfg.maxBatch),
		full:  make(chan struct{}, 1),
		flush: make(chan chan struct{}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go b.loop()
	return b
}

// spanEntries is spans as entries.
func spanEntries(spans []*SpanData) []entry {
	out := make([]entry, len(spans))
	for i, s := range spans {
		out[i].span = s
	}
	return out
}

func (b *batcher) enqueue(s *SpanData) { b.push(entry{span: s}) }

func (b *batcher) enqueueRequest(r *Request) { b.push(entry{req: r}) }

// push queues e, or drops it whole (counted) when it does not fit.
func (b *batcher) push(e entry) {
	k := e.spans()
	b.mu.Lock()
	n := b.queued
	if b.stopped || n+k > b.cfg.maxQueue {
		b.mu.Unlock()
		b.dropped(k)
		e.release()
		return
	}
	b.queue = append(b.queue, e)
	b.queued = n + k
	b.mu.Unlock()
	if n < b.cfg.maxBatch && n+k >= b.cfg.maxBatch {
		select {
		case b.full <- struct{}{}:
		default:
		}
	}
}

// firstBatch returns how many of q's entries make its first batch, how
// many spans they hold, and whether the batch is whole: maxBatch spans, or
// as many as fit before the next entry. An entry with more spans than
// maxBatch is a (whole) batch of its own.
func firstBatch(q []entry, maxBatch int) (n, spans int, whole bool) {
	for i, e := range q {
		k := e.spans()
		if spans > 0 && spans+k > maxBatch {
			return i, spans, true
		}
		spans += k
		if spans >= maxBatch {
			return i + 1, spans, true
		}
	}
	return len(q), spans, false
}

// take empties the queue into spare and returns what it held; with whole,
// only whole batches, and what is over stays queued (in spare's array).
func (b *batcher) take(spare []entry, whole bool) []entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queue
	cut, spans := len(q), b.queued
	if whole {
		cut, spans = 0, 0
		for {
			n, k, ok := firstBatch(q[cut:], b.cfg.maxBatch)
			if !ok {
				break
			}
			cut += n
			spans += k
		}
	}
	b.queued -= spans
	b.queue = append(spare[:0], q[cut:]...)
	clear(q[cut:])
	return q[:cut]
}

// export sends one batch of entries holding spans spans.
func (b *batcher) export(ctx context.Context, batch []entry, spans int) error {
	if x, ok := b.exp.(entryExporter); ok {
		return x.exportEntries(ctx, batch, spans)
	}
	all := make([]*SpanData, 0, spans)
	for _, e := range batch {
		if e.req != nil {
			all = append(all, e.req.spanData()...)
		} else {
			all = append(all, e.span)
		}
	}
	return b.exp.ExportSpans(ctx, all)
}

func (b *batcher) loop() {
	defer close(b.done)
	timer := time.NewTimer(b.cfg.scheduleDelay)
	defer timer.Stop()
	spare := make([]entry, 0, b.cfg.maxBatch)
	// exportAll exports the queue, a batch at a time, and keeps its array
	// for the next turn. With whole (a batch is full), only whole batches
	// go: a wake-up that comes late, when more than a batch is queued,
	// would otherwise send a short batch as well, and each export has a
	// cost of its own (measured in the bench harness: 1.6 times as many
	// exports for the same bytes).
	exportAll := func(whole bool) {
		all := b.take(spare, whole)
		q := all
		for len(q) > 0 {
			n, spans, _ := firstBatch(q, b.cfg.maxBatch)
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.exportTimeout)
			if err := b.export(ctx, q[:n], spans); err != nil { // counted by the exporter
				b.failed(err)
			}
			cancel()
			for _, e := range q[:n] {
				e.release()
			}
			clear(q[:n])
			q = q[n:]
		}
		spare = all[:0]
		if cap(spare) > 4*b.cfg.maxBatch {
			spare = make([]entry, 0, b.cfg.maxBatch)
		}
		timer.Reset(b.cfg.scheduleDelay)
	}
	for {
		select {
		case <-b.full:
			exportAll(true)
		case <-timer.C:
			exportAll(false)
		case ack := <-b.flush:
			exportAll(false)
			close(ack)
		case <-b.stop:
			b.mu.Lock()
			b.stopped = true
			b.mu.Unlock()
			exportAll(false)
			return
		}
	}
}

// forceFlush exports everything queued, within ctx.
func (b *batcher) forceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case b.flush <- ack:
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// shutdown exports what is queued and stops the loop and the exporter,
// within ctx. Spans ended afterwards are dropped (counted).
func (b *batcher) shutdown(ctx context.Context) error {
	b.once.Do(func() { close(b.stop) })
	select {
	case <-b.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.exp.Shutdown(ctx)
}
