package authz

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing/fstest"
	"time"
	"unicode"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/config"
)

// A fleet of gateways takes its policy from one signed OPA bundle
// (authz.bundle): a .tar.gz in OPA's bundle format, as `opa build -b
// policies/ --signing-key private.pem` makes it, served over HTTP(S) by any
// web server. Each replica polls the URL every poll_interval with
// If-None-Match, so an unchanged bundle costs a 304, and all replicas move to
// a new revision within one interval.
//
// A bundle is used only when, in this order:
//
//  1. its download is complete and at most max_size;
//  2. OPA's bundle reader verifies .signatures.json with the configured
//     public key: every file of the bundle must be listed with its hash, and
//     the list signed (an unsigned bundle, a wrong key, a changed, added or
//     removed file are all refused);
//  3. every module compiles under the same rules as a policy folder
//     (strict, Rego v1, no http.send or net.*), and the decision is defined.
//
// Otherwise the policy in use stays, the failure is logged and counted in
// promgate_policy_reloads_total{result="failure"}, and a bundle refused for
// its content is not fetched again until its ETag changes. The revision in
// every audit record is the manifest's revision (.manifest "revision"),
// sanitised, or the hash of the files when the manifest names none. At
// start the bundle must load: a gateway without a verified policy does not
// serve.

// bundleFetchTimeout bounds one download.
const bundleFetchTimeout = 30 * time.Second

// maxRevisionLen bounds the manifest revision written into audit records.
const maxRevisionLen = 64

type bundleSource struct {
	url      string
	interval time.Duration
	maxSize  int64
	verify   *bundle.VerificationConfig
	client   *http.Client

	mu   sync.Mutex // serialises polls
	etag string     // of the last bundle loaded or refused for its content
}

func newBundleSource(b config.Bundle) (*bundleSource, error) {
	b = b.WithDefaults()
	key, err := os.ReadFile(b.PublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("authz.bundle.public_key_file: %w", err)
	}
	if blk, _ := pem.Decode(key); blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("authz.bundle.public_key_file: %s holds no PEM PUBLIC KEY block", b.PublicKeyFile)
	} else if _, err := x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
		return nil, fmt.Errorf("authz.bundle.public_key_file: %w", err)
	}
	kc := &bundle.KeyConfig{Key: string(key), Algorithm: b.Algorithm}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if b.CAFile != "" {
		ca, err := os.ReadFile(b.CAFile)
		if err != nil {
			return nil, fmt.Errorf("authz.bundle.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("authz.bundle.ca_file: %s holds no PEM certificate", b.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &bundleSource{
		url:      b.URL,
		interval: time.Duration(b.PollInterval),
		maxSize:  int64(b.MaxSize),
		verify:   bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{b.KeyID: kc}, b.KeyID, "", nil),
		client: &http.Client{Transport: tr, Timeout: bundleFetchTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}, nil
}

// newFromBundle is New for authz.bundle: the first bundle must load.
func newFromBundle(cfg config.Authz, ref ast.Ref, logger *slog.Logger, reg prometheus.Registerer) (*Authorizer, error) {
	src, err := newBundleSource(cfg.Bundle)
	if err != nil {
		return nil, err
	}
	a := &Authorizer{dir: cfg.Bundle.URL, decision: ref, logger: logger.With("component", "authz"), bundle: src}
	if a.metrics, err = newMetrics(reg); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), bundleFetchTimeout)
	defer cancel()
	s, etag, err := a.fetchBundle(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("authz.bundle: %w", err)
	}
	src.etag = etag
	a.current.Store(s)
	a.metrics.reloaded(true)
	a.logger.Info("policy bundle loaded", "revision", s.revision, "files", len(s.files), "url", src.url)
	return a, nil
}

// errNotModified is a 304: the bundle in use is current.
var errNotModified = errors.New("not modified")

// contentError marks a bundle refused for what it holds (signature,
// modules), as opposed to a failed download: it is not fetched again until
// its ETag changes.
type contentError struct{ err error }

func (e contentError) Error() string { return e.err.Error() }
func (e contentError) Unwrap() error { return e.err }

// fetchBundle downloads the bundle unless etag is current, verifies and
// compiles it.
func (a *Authorizer) fetchBundle(ctx context.Context, etag string) (*snapshot, string, error) {
	src := a.bundle
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.url, nil)
	if err != nil {
		return nil, "", err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := src.client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close() //nolint:errcheck // read-only body: a Close error loses nothing
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return nil, etag, errNotModified
	default:
		return nil, "", fmt.Errorf("download: the server answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, src.maxSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("download: %w", err)
	}
	newTag := resp.Header.Get("ETag")
	if int64(len(body)) > src.maxSize {
		return nil, newTag, contentError{fmt.Errorf("the bundle is larger than authz.bundle.max_size (%d bytes)", src.maxSize)}
	}
	b, err := bundle.NewCustomReader(bundle.NewTarballLoader(bytes.NewReader(body))).
		WithBundleVerificationConfig(src.verify).
		WithSkipBundleVerification(false).
		WithCapabilities(capabilities()).
		WithRegoVersion(ast.RegoV1).
		Read()
	if err != nil {
		return nil, newTag, contentError{fmt.Errorf("refused: %w", err)}
	}
	fsys, err := bundleFS(b)
	if err != nil {
		return nil, newTag, contentError{err}
	}
	s, err := a.buildFrom(ctx, fsys, "bundle", "", revisionOf(b.Manifest.Revision))
	if err != nil {
		return nil, newTag, contentError{fmt.Errorf("refused: %w", err)}
	}
	return s, newTag, nil
}

// bundleFS lays a verified bundle out as a policy folder: its modules at
// their paths, its data merged into one data.json at the root.
func bundleFS(b bundle.Bundle) (fstest.MapFS, error) {
	fsys := fstest.MapFS{}
	for _, m := range b.Modules {
		name := strings.TrimPrefix(m.Path, "/")
		if name == "" || name == "data.json" {
			return nil, fmt.Errorf("refused: module path %q", m.Path)
		}
		fsys[name] = &fstest.MapFile{Data: m.Raw, Mode: 0o444}
	}
	if len(b.Data) > 0 {
		data, err := json.Marshal(b.Data)
		if err != nil {
			return nil, fmt.Errorf("refused: data: %w", err)
		}
		fsys["data.json"] = &fstest.MapFile{Data: data, Mode: 0o444}
	}
	return fsys, nil
}

// revisionOf returns the manifest's revision fit for a log and an audit
// record: printable, at most maxRevisionLen bytes; "" when it has none.
func revisionOf(r string) string {
	r = strings.Map(func(c rune) rune {
		if c > unicode.MaxASCII || !unicode.IsPrint(c) {
			return '_'
		}
		return c
	}, r)
	if len(r) > maxRevisionLen {
		r = r[:maxRevisionLen]
	}
	return r
}

// pollBundle asks for a newer bundle once and swaps it in when it verifies
// and compiles.
func (a *Authorizer) pollBundle(ctx context.Context) error {
	src := a.bundle
	src.mu.Lock()
	defer src.mu.Unlock()
	old := a.current.Load()
	s, etag, err := a.fetchBundle(ctx, src.etag)
	switch {
	case errors.Is(err, errNotModified):
		return nil
	case err != nil:
		if _, ok := errors.AsType[contentError](err); ok && etag != "" {
			src.etag = etag
		}
		a.metrics.reloaded(false)
		a.logger.Error("policy bundle refused; keeping the policy in use", "err", err, "revision", old.revision, "url", src.url)
		return fmt.Errorf("authz.bundle: %w", err)
	}
	src.etag = etag
	a.current.Store(s)
	a.metrics.reloaded(true)
	if s.revision != old.revision {
		a.logger.Info("policy bundle loaded", "revision", s.revision, "previous_revision", old.revision, "files", len(s.files))
	}
	return nil
}

// Run polls the policy bundle every authz.bundle.poll_interval until ctx is
// done. Without a bundle it returns at once: a folder is watched by the
// reload watcher.
func (a *Authorizer) Run(ctx context.Context) {
	if a.bundle == nil {
		return
	}
	t := time.NewTicker(a.bundle.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, bundleFetchTimeout)
			_ = a.pollBundle(pctx) // logged and counted
			cancel()
		}
	}
}

// FromBundle reports whether the policy comes from authz.bundle.
func (a *Authorizer) FromBundle() bool { return a.bundle != nil }
