// Package reload is the gateway's one reload watcher. Every reloadable part
// (TLS certificates, policies, the upstream token, exporters' token files)
// registers with it; on SIGHUP, or when the content of any registered file
// changes, it reloads every part. Each part builds its whole new snapshot
// before swapping it in and keeps the old one when that fails, so a reload
// never leaves the gateway half-configured.
//
// Changes are found by polling a SHA-256 over the names and contents of the
// registered paths (folders recursively), which works the same on every
// file system, Kubernetes' symlink-swapped ConfigMap and Secret volumes
// included, without inotify.
package reload

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Part is one reloadable piece of the gateway.
type Part interface {
	// Files are the files and folders whose change should reload it.
	Files() []string
	// Reload rebuilds the part from its files, keeping the previous state
	// when it fails.
	Reload() error
}

// Func adapts a reload function and its files to a Part.
type Func struct {
	Paths []string
	Fn    func() error
}

// Files returns the paths.
func (f Func) Files() []string { return f.Paths }

// Reload calls Fn.
func (f Func) Reload() error { return f.Fn() }

// Watcher reloads its registered parts together.
type Watcher struct {
	log      *slog.Logger
	interval time.Duration

	mu    sync.Mutex
	names []string
	parts []Part

	ok, when prometheus.Gauge
}

// New returns a watcher that polls every interval and registers its two
// metrics on reg.
func New(interval time.Duration, logger *slog.Logger, reg prometheus.Registerer) *Watcher {
	w := &Watcher{
		log:      logger.With("component", "reload"),
		interval: interval,
		ok: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "promgate_config_last_reload_successful",
			Help: "Whether the last reload of certificates, policies and token files succeeded (1) or kept the old ones (0).",
		}),
		when: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "promgate_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful reload.",
		}),
	}
	w.ok.Set(1)
	w.when.SetToCurrentTime()
	reg.MustRegister(w.ok, w.when)
	return w
}

// Register adds a part under a name used in logs. Register before Run.
func (w *Watcher) Register(name string, p Part) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.names = append(w.names, name)
	w.parts = append(w.parts, p)
}

// Reload reloads every part now and reports what failed, by part name.
func (w *Watcher) Reload() error {
	w.mu.Lock()
	names, parts := w.names, w.parts
	w.mu.Unlock()
	var errs []error
	for i, p := range parts {
		if err := p.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", names[i], err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		w.ok.Set(0)
		w.log.Error("reload kept the previous configuration", "err", err)
		return err
	}
	w.ok.Set(1)
	w.when.SetToCurrentTime()
	w.log.Info("reloaded", "parts", names)
	return nil
}

func (w *Watcher) files() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, p := range w.parts {
		out = append(out, p.Files()...)
	}
	return out
}

// Run reloads on SIGHUP and when a registered file changes, until ctx is
// done. A failed reload is retried when the files change again or on the
// next SIGHUP.
func (w *Watcher) Run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	w.loop(ctx, hup)
}

// loop is Run with the signal channel given.
func (w *Watcher) loop(ctx context.Context, hup <-chan os.Signal) {
	last := Fingerprint(w.files())
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			w.log.Info("reload requested by SIGHUP")
			last = Fingerprint(w.files())
			_ = w.Reload()
		case <-t.C:
			if sum := Fingerprint(w.files()); sum != last {
				last = sum
				_ = w.Reload()
			}
		}
	}
}

// Fingerprint hashes the names and contents of paths (folders
// recursively). Unreadable entries are hashed as their error, so they count
// as changes too.
func Fingerprint(paths []string) [32]byte {
	h := sha256.New()
	for _, p := range paths {
		var files []string
		_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				fmt.Fprintf(h, "err %s %v\n", path, err) //nolint:errcheck // hash.Hash.Write never returns an error
				return nil
			}
			if !d.IsDir() {
				files = append(files, path)
			}
			return nil
		})
		sort.Strings(files)
		for _, f := range files {
			fmt.Fprintf(h, "file %s\n", f) //nolint:errcheck // hash.Hash.Write never returns an error
			if fh, err := os.Open(f); err != nil {
				fmt.Fprintf(h, "err %v\n", err) //nolint:errcheck // hash.Hash.Write never returns an error
			} else {
				_, _ = io.Copy(h, fh)
				_ = fh.Close()
			}
		}
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}
