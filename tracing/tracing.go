package tracing

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/promgate/promgate/config"
)

// ScopeName names the gateway's tracer (the instrumentation scope).
const ScopeName = "github.com/promgate/promgate"

// Options are what New needs besides the configuration.
type Options struct {
	// Logger receives the exporter's failures, at most one line per
	// errorInterval. Required.
	Logger *slog.Logger
	// Registerer receives promgate_tracing_spans_total. Required.
	Registerer prometheus.Registerer
	// Version is the gateway's version, the resource's service.version.
	Version string
	// Getenv reads OTEL_SDK_DISABLED and the exporter's
	// OTEL_EXPORTER_OTLP_* variables; nil means os.Getenv. The SDK reads
	// its own (sampler, batch processor, resource) from the process.
	Getenv func(string) string
	// Exporter replaces the OTLP exporter, for tests; nil builds it from
	// the configuration and the environment.
	Exporter SpanExporter
}

// Provider is the gateway's tracer provider. A nil *Provider, and the one
// New returns when tracing is off, has no tracer and shuts down at once.
type Provider struct {
	batch    *batcher
	tracer   *tracer
	res      *resource.Resource
	endpoint string
}

// New builds the tracer provider of cfg. When tracing is off (cfg.Enabled
// false, or OTEL_SDK_DISABLED=true) it creates nothing and returns a
// Provider whose Tracer is nil. Errors list every problem of the exporter's
// configuration, naming keys and variables but never a header value.
func New(cfg config.Tracing, o Options) (*Provider, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if !cfg.Enabled || strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return &Provider{}, nil
	}
	spans := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "promgate_tracing_spans_total",
		Help: "Finished spans, by result: exported, failed (the endpoint refused them or could not be reached), or dropped (the export queue was full).",
	}, []string{"result"})
	spans.WithLabelValues("exported")
	spans.WithLabelValues("failed")
	dropped := spans.WithLabelValues("dropped")
	sampler, serr := samplerOf(cfg.SampleRatio, getenv)
	bc, berr := batchConfigOf(getenv)
	if err := errors.Join(serr, berr); err != nil {
		return nil, err
	}
	errLog := &errorLog{log: o.Logger.With("component", "tracing")}
	exp := o.Exporter
	var otlp *exporter
	endpoint := "(test exporter)"
	if exp == nil {
		ec, err := exportConfigOf(cfg, getenv)
		if err != nil {
			return nil, err
		}
		otlp = newExporter(ec, o.Version, spans)
		exp, endpoint = otlp, ec.endpoint
	}
	if err := o.Registerer.Register(spans); err != nil {
		return nil, err
	}
	// Library code reports its errors to the global handler, which would
	// print them on stderr; route them to the log, at a bounded rate.
	otel.SetErrorHandler(errLog)
	res, err := resource.New(context.Background(),
		// Later detectors win: OTEL_SERVICE_NAME and
		// OTEL_RESOURCE_ATTRIBUTES override the defaults.
		resource.WithAttributes(attribute.String("service.name", "promgate"), attribute.String("service.version", o.Version)),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, err
	}
	if otlp != nil {
		if otlp.resource, otlp.scope, err = encodeResourceAndScope(res, ScopeName, o.Version); err != nil {
			return nil, err
		}
		otlp.resSchema = res.SchemaURL()
	}
	b := newBatcher(bc, exp, func(n int) { dropped.Add(float64(n)) }, errLog.Handle)
	return &Provider{
		batch:    b,
		tracer:   newTracer(sampler, b),
		res:      res,
		endpoint: endpoint,
	}, nil
}

// Tracer returns the gateway's tracer, or nil when tracing is off.
func (p *Provider) Tracer() trace.Tracer {
	if p == nil || p.tracer == nil {
		return nil
	}
	return p.tracer
}

// Endpoint is where spans go, for the start-up log; "" when off. It never
// holds credentials.
func (p *Provider) Endpoint() string {
	if p == nil {
		return ""
	}
	return p.endpoint
}

// Shutdown exports the spans still queued, within ctx, and stops the
// exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.batch == nil {
		return nil
	}
	return p.batch.shutdown(ctx)
}

// ForceFlush exports the spans still queued, within ctx, and keeps going.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p == nil || p.batch == nil {
		return nil
	}
	return p.batch.forceFlush(ctx)
}

// errorInterval is the least time between two logged export failures.
const errorInterval = 30 * time.Second

// errorLog logs export failures and the OpenTelemetry libraries' errors, one a errorInterval, with the number left
// out since the last one.
type errorLog struct {
	log *slog.Logger

	mu      sync.Mutex
	last    time.Time
	dropped int
}

func (l *errorLog) Handle(err error) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < errorInterval {
		l.dropped++
		l.mu.Unlock()
		return
	}
	dropped := l.dropped
	l.last, l.dropped = now, 0
	l.mu.Unlock()
	l.log.Warn("tracing error", "err", err, "suppressed_since_last", dropped)
}
