package reload

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// part is a reloadable part over one file; it fails while the file holds
// "bad".
type part struct {
	file string
	mu   sync.Mutex
	ok   int
	bad  int
	cur  string
}

func (p *part) Files() []string { return []string{p.file} }

func (p *part) Reload() error {
	b, err := os.ReadFile(p.file)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil || string(b) == "bad" {
		p.bad++
		return errors.New("bad file")
	}
	p.ok++
	p.cur = string(b)
	return nil
}

func (p *part) counts() (ok, bad int, cur string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok, p.bad, p.cur
}

// TestWatcher checks that the watcher reloads every part when one file
// changes, does not retry a failed reload until the files change again,
// reports success in its gauge, and returns when its context ends.
func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a", "a1")
	write("b", "b1")
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Second
		reg := prometheus.NewRegistry()
		w := New(interval, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
		a, b := &part{file: filepath.Join(dir, "a")}, &part{file: filepath.Join(dir, "b")}
		w.Register("a", a)
		w.Register("b", b)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		hup := make(chan os.Signal, 1)
		go func() { w.loop(ctx, hup); close(done) }()

		time.Sleep(3 * interval)
		synctest.Wait()
		if ok, bad, _ := a.counts(); ok+bad != 0 {
			t.Errorf("nothing changed: %d reloads", ok+bad)
		}

		write("a", "a2")
		time.Sleep(interval)
		synctest.Wait()
		if ok, _, cur := a.counts(); ok != 1 || cur != "a2" {
			t.Errorf("after a change: a reloaded %d times, holds %q", ok, cur)
		}
		if ok, _, _ := b.counts(); ok != 1 {
			t.Errorf("after a change: b reloaded %d times, want every part reloaded", ok)
		}
		if got := testutil.ToFloat64(w.ok); got != 1 {
			t.Errorf("last reload successful = %v, want 1", got)
		}

		write("b", "bad")
		time.Sleep(interval)
		synctest.Wait()
		time.Sleep(3 * interval)
		synctest.Wait()
		if _, bad, _ := b.counts(); bad != 1 {
			t.Errorf("failed reload tried %d times, want once until the files change", bad)
		}
		if got := testutil.ToFloat64(w.ok); got != 0 {
			t.Errorf("last reload successful = %v, want 0", got)
		}

		write("b", "b3")
		time.Sleep(interval)
		synctest.Wait()
		if _, _, cur := b.counts(); cur != "b3" {
			t.Errorf("after the fix: b holds %q", cur)
		}
		if got := testutil.ToFloat64(w.ok); got != 1 {
			t.Errorf("last reload successful = %v, want 1", got)
		}

		// SIGHUP reloads even when nothing changed.
		hup <- syscall.SIGHUP
		synctest.Wait()
		if ok, _, _ := a.counts(); ok != 4 {
			t.Errorf("after SIGHUP: a reloaded %d times, want 4", ok)
		}
		cancel()
		<-done
	})
}

// TestFingerprint checks that a change of content or of the file set
// changes the digest, and that a missing path is hashed, not skipped.
func TestFingerprint(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "x")
	if err := os.WriteFile(f, []byte("1"), 0o600); err != nil {
		t.Fatal(err)
	}
	one := Fingerprint([]string{dir})
	if err := os.WriteFile(f, []byte("2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if Fingerprint([]string{dir}) == one {
		t.Error("content change not seen")
	}
	missing := Fingerprint([]string{filepath.Join(dir, "gone")})
	if missing == Fingerprint(nil) {
		t.Error("a missing path hashes like no path")
	}
}
