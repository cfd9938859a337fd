package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/detect"
	"github.com/promgate/promgate/proxy"
	"github.com/promgate/promgate/reload"
	"github.com/promgate/promgate/tlsutil"
	"github.com/promgate/promgate/tracing"
)

// reloadInterval is how often watched files are checked for changes.
const reloadInterval = 10 * time.Second

// gateway is everything serve runs, built before anything listens.
type gateway struct {
	cfg     *config.Config
	log     *slog.Logger
	reg     *prometheus.Registry
	tls     *tlsutil.Server
	authz   *authz.Authorizer
	audit   *audit.Writer
	token   *proxy.TokenFile
	handler *proxy.Handler
	// evaluator runs the detectors in the background, or is nil.
	evaluator *detect.Evaluator
	// watcher reloads every reloadable part together.
	watcher *reload.Watcher
	// tracing exports the requests' spans; its Tracer is nil when off.
	tracing *tracing.Provider
}

// build constructs every component of cfg. With check set, it touches
// nothing outside (the audit file is not opened) and collects every error.
func build(ctx context.Context, cfg *config.Config, logger *slog.Logger, check bool) (*gateway, error) {
	g := &gateway{cfg: cfg, log: logger, reg: prometheus.NewRegistry()}
	var errs []error
	var err error
	if g.tls, err = tlsutil.NewServer(cfg.TLS, logger, tlsutil.NewMetrics(g.reg)); err != nil {
		errs = append(errs, err)
	}
	if g.authz, err = authz.New(cfg.Authz, logger, g.reg); err != nil {
		errs = append(errs, err)
	}
	if check {
		// check contacts no issuer: a cancelled context stops discovery.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		ctx = cctx
	}
	chain, login, err := authn.NewChain(ctx, cfg.Authn, logger, g.reg)
	if err != nil {
		errs = append(errs, err)
	}
	if g.token, err = proxy.NewTokenFile(cfg.Upstream.BearerTokenFile); err != nil {
		errs = append(errs, err)
	}
	transport, err := proxy.NewTransport(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	if check {
		if err := checkAuditPath(cfg.Audit.Path); err != nil {
			errs = append(errs, err)
		}
	} else if len(errs) == 0 {
		if g.audit, err = audit.NewWriter(cfg.Audit, logger, g.reg, audit.WithFlushInterval(time.Duration(cfg.Audit.FlushInterval))); err != nil {
			errs = append(errs, err)
		}
	}
	catalog, err := detect.Load()
	if err != nil {
		errs = append(errs, fmt.Errorf("detectors: %w", err))
	} else {
		// Only detectors every upstream version understands; the export
		// writes the others for the version it is told.
		catalog = catalog.Portable()
	}
	if g.tracing, err = tracing.New(cfg.Tracing, tracing.Options{Logger: logger, Registerer: g.reg, Version: readBuildInfo().version}); err != nil {
		errs = append(errs, err)
	} else if check {
		// check only reads the exporter's configuration: nothing is sent.
		_ = g.tracing.Shutdown(ctx) // nothing was queued; check's context is already cancelled
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Detectors.Enabled && cfg.Upstream.Kind == config.KindPrometheusAPI {
		// The token is read at each query, so a rotated token file reaches
		// the evaluator as it reaches the proxy.
		q := detect.NewHTTPQuerier(cfg.Upstream.URL, proxy.UpstreamTransport(transport, g.token.Token), nil)
		if g.evaluator, err = detect.NewEvaluator(cfg.Detectors, catalog, q, logger, g.reg); err != nil {
			return nil, err
		}
	}
	var auditor proxy.Auditor = g.audit
	if check {
		auditor = discardAuditor{}
	}
	g.handler, err = proxy.New(proxy.Options{
		Config:        cfg,
		Authn:         chain,
		Login:         login,
		Authz:         g.authz,
		Audit:         auditor,
		Logger:        logger,
		Registerer:    g.reg,
		Transport:     transport,
		UpstreamToken: g.token.Token,
		Detectors:     catalog,
		DetectorState: g.detectorState,
		Tracer:        g.tracing.Tracer(),
		Gatherer:      g.reg,
	})
	if err != nil {
		return nil, err
	}
	g.authz.InitRoutes(proxy.Routes)
	g.registerOwnMetrics()
	g.watcher = reload.New(reloadInterval, logger, g.reg)
	g.watcher.Register("tls", g.tls)
	if g.authz.FromBundle() {
		// Polled by g.authz.Run; SIGHUP asks for the bundle at once.
		g.watcher.Register("policy bundle", reload.Func{Fn: g.authz.Reload})
	} else {
		g.watcher.Register("policies", reload.Func{Paths: []string{cfg.Authz.Policies}, Fn: g.authz.Reload})
	}
	g.watcher.Register("upstream token", g.token)
	g.watcher.Register("exporter tokens", g.handler.ExporterTokens())
	g.watcher.Register("alertmanager token", g.handler.AlertmanagerToken())
	g.watcher.Register("named upstream tokens", g.handler.UpstreamTokens())
	return g, nil
}

type discardAuditor struct{}

func (discardAuditor) Write(*audit.Record) error { return nil }
func (discardAuditor) Healthy() bool             { return true }

func checkAuditPath(path string) error {
	if path == "-" {
		return nil
	}
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("audit.path: folder %s: %w", filepath.Dir(path), err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("audit.path: %s is not a folder", filepath.Dir(path))
	}
	return nil
}

func (g *gateway) registerOwnMetrics() {
	b := readBuildInfo()
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "promgate_build_info",
		Help: "A metric with a constant 1 value labeled by promgate's version, revision and Go version.",
	}, []string{"version", "revision", "goversion"})
	info.WithLabelValues(b.version, b.revision, b.goVersion).Set(1)
	g.reg.MustRegister(info,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	configFile := fs.String("config", "promgate.yml", "configuration file")
	logLevel := fs.String("log.level", "info", "log level: debug, info, warn or error")
	replicaID := fs.String("replica-id", "", "this replica's id in a fleet (overrides replica_id); its audit chain is audit.path with -ID before the extension")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*configFile)
	if err != nil {
		return err
	}
	if err := applyReplica(cfg, *replicaID); err != nil {
		return err
	}
	g, err := build(ctx, cfg, logger, false)
	if err != nil {
		return err
	}
	return g.serve(ctx)
}

// applyReplica sets the replica id (the flag wins over the file) and gives
// the replica its own audit file.
func applyReplica(cfg *config.Config, flag string) error {
	if flag != "" {
		if !config.ReplicaIDPattern.MatchString(flag) {
			return fmt.Errorf("-replica-id: %q is not a replica id: use letters, digits, '.', '_' and '-', at most 63", flag)
		}
		cfg.ReplicaID = flag
	}
	cfg.Audit.Path = audit.ReplicaPath(cfg.Audit.Path, cfg.ReplicaID)
	return nil
}

// serve listens on both addresses and runs until ctx is done, then shuts
// down gracefully and flushes the audit trail.
func (g *gateway) serve(ctx context.Context) (err error) {
	defer func() {
		// A failed final flush loses the records of the last requests:
		// say so unconditionally (the writer's own log is rate-limited)
		// and end with an error.
		if cerr := g.audit.Close(); cerr != nil {
			g.log.Error("audit trail: the final flush failed; the records of the last requests may be missing", "err", cerr)
			err = errors.Join(err, fmt.Errorf("audit: %w", cerr))
		}
	}()
	rawPub, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	pub, err := proxy.LimitListener(rawPub, g.cfg.Limits.MaxConnectionsPerNetwork, g.cfg.TrustedProxies, g.reg)
	if err != nil {
		rawPub.Close() //nolint:errcheck // error path: the LimitListener error is returned
		return err
	}
	if g.cfg.ProxyProtocol {
		// Inside the limit: the header is read in the connection's own
		// goroutine, never in the accept loop.
		if pub, err = proxy.ClientAddrListener(pub, g.cfg.TrustedProxies); err != nil {
			rawPub.Close() //nolint:errcheck // error path: the proxy_protocol error is returned
			return err
		}
	}
	errLog := slog.NewLogLogger(g.log.With("component", "http").Handler(), slog.LevelDebug)
	qt := time.Duration(g.cfg.Limits.QueryTimeout)
	public := &http.Server{
		Handler:           g.handler,
		TLSConfig:         g.tls.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      qt + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 100,
			MaxReadFrameSize:     1 << 20,
		},
	}
	var internal *http.Server
	var intLn net.Listener
	if g.cfg.InternalListen != "" {
		if intLn, err = net.Listen("tcp", g.cfg.InternalListen); err != nil {
			pub.Close() //nolint:errcheck // error path: the internal_listen error is returned
			return fmt.Errorf("internal_listen: %w", err)
		}
		internal = &http.Server{
			Handler:           proxy.Internal(g.reg, g.ready),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          errLog,
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go g.watcher.Run(ctx)
	go g.authz.Run(ctx) // polls authz.bundle; returns at once for a folder
	if g.evaluator != nil {
		go g.evaluator.Run(ctx)
	}

	errc := make(chan error, 2)
	go func() { errc <- public.Serve(tls.NewListener(pub, public.TLSConfig)) }()
	g.log.Info("public listener started", "addr", pub.Addr().String(), "upstream_kind", g.cfg.Upstream.Kind, "policy_revision", g.authz.Revision(), "proxy_protocol", g.cfg.ProxyProtocol, "replica_id", g.cfg.ReplicaID)
	if ep := g.tracing.Endpoint(); ep != "" {
		g.log.Info("tracing on", "endpoint", ep)
	}
	if internal != nil {
		go func() { errc <- internal.Serve(intLn) }()
		g.log.Info("internal listener started", "addr", intLn.Addr().String())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	g.log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	_ = public.Shutdown(sctx)
	if internal != nil {
		_ = internal.Shutdown(sctx)
	}
	// Every request has ended, and with it its spans: export what is queued.
	if err := g.tracing.Shutdown(sctx); err != nil {
		g.log.Warn("tracing: spans not exported at shutdown", "err", err)
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// detectorState is the background evaluator's state, or nil without one.
func (g *gateway) detectorState() map[string]detect.State {
	if g.evaluator == nil {
		return nil
	}
	return g.evaluator.State()
}

func (g *gateway) ready() error {
	if g.cfg.Audit.OnFailure == config.OnFailureDeny && !g.audit.Healthy() {
		return errors.New("the audit trail cannot be written")
	}
	return nil
}
