package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alecthomas/units"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/promgate/promgate/config"
)

func withClock(now func() time.Time) Option {
	return func(w *Writer) { w.now = now }
}

func withOpen(open func(string) (file, error)) Option {
	return func(w *Writer) { w.open = open }
}

// slowFlush keeps the flush loop out of the way of tests that flush by hand.
var slowFlush = WithFlushInterval(time.Hour)

// logSink collects log records.
type logSink struct {
	mu      sync.Mutex
	records []slog.Record
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *logSink) WithGroup(string) slog.Handler            { return s }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, r)
	return nil
}

// messages returns the messages logged at level.
func (s *logSink) messages(level slog.Level) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var msgs []string
	for _, r := range s.records {
		if r.Level == level {
			msgs = append(msgs, r.Message)
		}
	}
	return msgs
}

type testWriter struct {
	*Writer
	reg  *prometheus.Registry
	logs *logSink
}

func newTestWriter(t *testing.T, cfg config.Audit, opts ...Option) *testWriter {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := &logSink{}
	w, err := NewWriter(cfg, slog.New(logs), reg, opts...)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return &testWriter{Writer: w, reg: reg, logs: logs}
}

// counts returns promgate_audit_records_total and promgate_audit_failures_total.
func (tw *testWriter) counts() (records, failures float64) {
	return testutil.ToFloat64(tw.records), testutil.ToFloat64(tw.failures)
}

func (tw *testWriter) wantCounts(t *testing.T, records, failures float64) {
	t.Helper()
	gotR, gotF := tw.counts()
	if gotR != records || gotF != failures {
		t.Errorf("records_total, failures_total = %v, %v; want %v, %v", gotR, gotF, records, failures)
	}
}

func (tw *testWriter) mustWrite(t *testing.T, id string) {
	t.Helper()
	if err := tw.Write(&Record{ID: id}); err != nil {
		t.Fatalf("Write(%s): %v", id, err)
	}
}

// readIDs returns the IDs of the records in path, failing on any line that is
// not one whole JSON record.
func readIDs(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s: line %q is not a record: %v", path, sc.Text(), err)
		}
		if dec.More() {
			t.Fatalf("%s: line %q holds more than one value", path, sc.Text())
		}
		ids = append(ids, r.ID)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

func fileCfg(dir string) config.Audit {
	return config.Audit{Path: filepath.Join(dir, "audit.log"), OnFailure: config.OnFailureLog, Mode: config.AuditBuffered}
}

func TestNewWriterErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  config.Audit
		opts []Option
		want string
	}{
		{"empty path", config.Audit{}, nil, `audit.path: required`},
		{"missing folder", config.Audit{Path: filepath.Join(dir, "nope", "audit.log")}, nil, "audit.path: folder " + filepath.Join(dir, "nope") + " does not exist"},
		{"parent is a file", config.Audit{Path: filepath.Join(notDir, "audit.log")}, nil, "audit.path: " + notDir + " is not a folder"},
		{"path is a folder", config.Audit{Path: dir}, nil, "audit.path: " + dir + " is not a regular file"},
		{"device", config.Audit{Path: os.DevNull}, nil, "audit.path: " + os.DevNull + " is not a regular file"},
		{"negative size", config.Audit{Path: "-", MaxSize: -1}, nil, "audit.max_size: must not be negative"},
		{"negative files", config.Audit{Path: "-", MaxFiles: -1}, nil, "audit.max_files: must not be negative"},
		{"zero flush interval", config.Audit{Path: "-"}, []Option{WithFlushInterval(0)}, "audit: flush interval 0s must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewWriter(tc.cfg, nil, prometheus.NewRegistry(), tc.opts...)
			if err == nil {
				w.Close()
				t.Fatalf("NewWriter(%+v) succeeded, want error %q", tc.cfg, tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("NewWriter(%+v) = %q, want prefix %q", tc.cfg, err, tc.want)
			}
		})
	}
}

func TestFileCreatedPrivateAndAppended(t *testing.T) {
	dir := t.TempDir()
	cfg := fileCfg(dir)
	for _, id := range []string{"first", "second"} {
		tw := newTestWriter(t, cfg, slowFlush)
		tw.mustWrite(t, id)
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("audit file mode = %v, want 0600", perm)
	}
	if diff := cmp.Diff([]string{"first", "second"}, readIDs(t, cfg.Path)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestWideModeWarned(t *testing.T) {
	cfg := fileCfg(t.TempDir())
	if err := os.WriteFile(cfg.Path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg.Path, 0o644); err != nil {
		t.Fatal(err)
	}
	tw := newTestWriter(t, cfg, slowFlush)
	if got := tw.logs.messages(slog.LevelWarn); len(got) != 1 || !strings.Contains(got[0], "accessible to other users") {
		t.Errorf("warnings = %q, want one about the mode", got)
	}
}

func TestMetricsStartAtZero(t *testing.T) {
	tw := newTestWriter(t, config.Audit{Path: "-"}, withStdout(&lockedBuffer{}))
	want := `
# HELP promgate_audit_failures_total Audit write, flush, sync, rotation and open failures; each may have lost records.
# TYPE promgate_audit_failures_total counter
promgate_audit_failures_total 0
# HELP promgate_audit_last_hash_info The first 16 hex characters of the hash of the last audit record written, in the hash label; always 1. Prometheus keeps the history, so that ` + "`promgate audit verify -last-hash`" + ` can prove no record was cut from the end.
# TYPE promgate_audit_last_hash_info gauge
promgate_audit_last_hash_info{hash="0000000000000000"} 1
# HELP promgate_audit_records_total Audit records accepted by the writer.
# TYPE promgate_audit_records_total counter
promgate_audit_records_total 0
# HELP promgate_audit_unshipped_rotations_total Audit files that rotation deleted without a shipper's confirmation in the checkpoint file audit.path + ".shipped".
# TYPE promgate_audit_unshipped_rotations_total counter
promgate_audit_unshipped_rotations_total 0
`
	if err := testutil.GatherAndCompare(tw.reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	tw.mustWrite(t, "a")
	tw.wantCounts(t, 1, 0)

	// A second writer on the same registry (a restart of the audit trail)
	// shares the counters instead of failing.
	w2, err := NewWriter(config.Audit{Path: "-"}, nil, tw.reg, withStdout(&lockedBuffer{}))
	if err != nil {
		t.Fatalf("second NewWriter on one registry: %v", err)
	}
	defer w2.Close()
	if err := w2.Write(&Record{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	tw.wantCounts(t, 2, 0)
	// The last hash exported is the newest writer's.
	want = "# HELP promgate_audit_last_hash_info The first 16 hex characters of the hash of the last audit record written, in the hash label; always 1. Prometheus keeps the history, so that `promgate audit verify -last-hash` can prove no record was cut from the end.\n" +
		"# TYPE promgate_audit_last_hash_info gauge\n" +
		`promgate_audit_last_hash_info{hash="` + w2.LastHash()[:LastHashPrefix] + `"} 1` + "\n"
	if err := testutil.GatherAndCompare(tw.reg, strings.NewReader(want), "promgate_audit_last_hash_info"); err != nil {
		t.Error(err)
	}
}

func TestStdout(t *testing.T) {
	var out lockedBuffer
	tw := newTestWriter(t, config.Audit{Path: "-", MaxSize: 1, MaxFiles: 1, Mode: config.AuditBuffered}, withStdout(&out), slowFlush)
	for i := range 3 {
		tw.mustWrite(t, fmt.Sprint(i))
	}
	if got := out.String(); got != "" {
		t.Errorf("records written before Flush: %q", got)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "\n"); got != 3 {
		t.Errorf("stdout holds %d lines, want 3 (stdout never rotates)", got)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentWrites writes 10,000 records from 50 goroutines and checks that
// every one is a whole line, none is lost or repeated, and each goroutine's
// records keep their order, also while the file rotates and the flush loop
// syncs. Run it with -race.
func TestConcurrentWrites(t *testing.T) {
	const goroutines, perG = 50, 200
	tests := []struct {
		name    string
		maxSize units.Base2Bytes
	}{
		{name: "one file"},
		{name: "rotating", maxSize: 64 * units.KiB},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := fileCfg(dir)
			cfg.MaxSize, cfg.MaxFiles = tc.maxSize, 1000
			tw := newTestWriter(t, cfg, WithFlushInterval(2*time.Millisecond))
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range perG {
						r := &Record{
							ID:    fmt.Sprintf("g%02d-%05d", g, i),
							Query: []string{strings.Repeat("x", i%97)}, // varied sizes straddle the buffer
						}
						if err := tw.Write(r); err != nil {
							t.Errorf("Write: %v", err)
							return
						}
						if !tw.Healthy() {
							t.Errorf("Healthy() = false during concurrent writes")
							return
						}
					}
				})
			}
			wg.Wait()
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			names := listDir(t, dir)
			if tc.maxSize == 0 && len(names) != 1 {
				t.Fatalf("files = %q, want only audit.log", names)
			}
			if tc.maxSize > 0 && len(names) < 3 {
				t.Fatalf("files = %q, want several rotated files", names)
			}
			var ids []string
			for i := len(names) - 1; i >= 1; i-- {
				ids = append(ids, readIDs(t, fmt.Sprintf("%s.%d", cfg.Path, i))...)
			}
			ids = append(ids, readIDs(t, cfg.Path)...)
			if len(ids) != goroutines*perG {
				t.Fatalf("files hold %d records, want %d", len(ids), goroutines*perG)
			}
			next := make([]int, goroutines)
			for _, id := range ids {
				var g, i int
				if _, err := fmt.Sscanf(id, "g%02d-%05d", &g, &i); err != nil {
					t.Fatalf("bad id %q: %v", id, err)
				}
				if i != next[g] {
					t.Fatalf("goroutine %d: record %d after %d: lost, repeated or reordered", g, i, next[g]-1)
				}
				next[g]++
			}
			tw.wantCounts(t, goroutines*perG, 0)
		})
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestRotation(t *testing.T) {
	const n = 300
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%04d", i)
	}
	// Each record line is about 270 bytes, 170 of them the hash chain.
	tests := []struct {
		name     string
		maxSize  units.Base2Bytes
		maxFiles int
		leftover []string // files present before the writer starts
		want     []string // files after
		minKept  int      // at least this many of the newest records survive
		all      bool     // every record survives
	}{
		{name: "two rotated files", maxSize: 3072, maxFiles: 2, want: []string{"audit.log", "audit.log.1", "audit.log.2"}, minKept: 20},
		{name: "leftovers beyond max_files deleted", maxSize: 3072, maxFiles: 2, leftover: []string{"audit.log.3", "audit.log.4"},
			want: []string{"audit.log", "audit.log.1", "audit.log.2"}, minKept: 20},
		{name: "no rotated files kept", maxSize: 3072, maxFiles: 0, want: []string{"audit.log"}, minKept: 5},
		{name: "never rotate", maxSize: 0, maxFiles: 2, want: []string{"audit.log"}, all: true},
		{name: "record bigger than max_size gets its own file", maxSize: 10, maxFiles: 3,
			want: []string{"audit.log", "audit.log.1", "audit.log.2", "audit.log.3"}, minKept: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range tc.leftover {
				if err := os.WriteFile(filepath.Join(dir, name), []byte("old\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := fileCfg(dir)
			cfg.MaxSize, cfg.MaxFiles = tc.maxSize, tc.maxFiles
			tw := newTestWriter(t, cfg, slowFlush)
			for _, id := range ids {
				tw.mustWrite(t, id)
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, listDir(t, dir)); diff != "" {
				t.Fatalf("files (-want +got):\n%s", diff)
			}
			// Oldest first: audit.log.N, ..., audit.log.1, audit.log.
			var got []string
			for _, name := range slices.Backward(tc.want) {
				path := filepath.Join(dir, name)
				if st, err := os.Stat(path); err != nil {
					t.Fatal(err)
				} else if tc.maxSize >= 1024 && st.Size() > int64(tc.maxSize) {
					t.Errorf("%s is %d bytes, over max_size %d", name, st.Size(), tc.maxSize)
				}
				fileIDs := readIDs(t, path)
				if len(fileIDs) == 0 {
					t.Errorf("%s is empty", name)
				}
				got = append(got, fileIDs...)
			}
			if tc.all && len(got) != n {
				t.Fatalf("kept %d records, want all %d", len(got), n)
			}
			if len(got) < tc.minKept {
				t.Fatalf("kept %d records, want at least %d", len(got), tc.minKept)
			}
			if diff := cmp.Diff(ids[n-len(got):], got); diff != "" {
				t.Errorf("kept records are not the newest in order (-want +got):\n%s", diff)
			}
			tw.wantCounts(t, n, 0)
		})
	}
}

// TestRotationLogsRotatedFilesLastHash checks that the "rotated audit file"
// log line names the last record of the file just rotated, which is what
// `audit verify -last-hash` needs to check that file's end.
func TestRotationLogsRotatedFilesLastHash(t *testing.T) {
	cfg := fileCfg(t.TempDir())
	cfg.MaxSize, cfg.MaxFiles = 10, 1
	tw := newTestWriter(t, cfg, slowFlush)
	tw.mustWrite(t, "r0")
	h0 := tw.LastHash()
	tw.mustWrite(t, "r1") // rotates audit.log, holding r0, to audit.log.1
	var logged []string
	tw.logs.mu.Lock()
	for _, r := range tw.logs.records {
		if r.Message != "rotated audit file" {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "last_hash" {
				logged = append(logged, a.Value.String())
			}
			return true
		})
	}
	tw.logs.mu.Unlock()
	if len(logged) != 1 || logged[0] != h0 {
		t.Fatalf("rotation logged last_hash %q, want [%s], the hash of r0", logged, h0)
	}
	res, err := Verify(VerifyOptions{LastHash: logged[0]}, cfg.Path+".1")
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Errorf("verify audit.log.1 -last-hash <logged>: %v", res.Breaks)
	}
}

// flakyFile fails writes with ENOSPC while fail is set. With partial set, the
// failing write first writes that many bytes.
type flakyFile struct {
	*os.File
	fail    *atomic.Bool
	partial int
}

func (f flakyFile) Write(p []byte) (int, error) {
	if !f.fail.Load() {
		return f.File.Write(p)
	}
	n := min(f.partial, len(p))
	if n > 0 {
		if _, err := f.File.Write(p[:n]); err != nil {
			return 0, err
		}
	}
	return n, syscall.ENOSPC
}

func flakyOpen(fail *atomic.Bool, partial int) Option {
	return withOpen(func(path string) (file, error) {
		f, err := openFile(path)
		if err != nil {
			return nil, err
		}
		return flakyFile{File: f.(*os.File), fail: fail, partial: partial}, nil
	})
}

// TestWriteFailureAndRecovery injects a full disk: the failure is returned,
// counted and logged, Healthy goes false, and everything recovers once the
// disk has room again.
func TestWriteFailureAndRecovery(t *testing.T) {
	cfg := fileCfg(t.TempDir())
	var fail atomic.Bool
	tw := newTestWriter(t, cfg, flakyOpen(&fail, 0), slowFlush)

	tw.mustWrite(t, "ok-1")
	fail.Store(true)
	tw.mustWrite(t, "buffered") // only buffered while healthy
	if err := tw.Flush(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Flush on a full disk = %v, want ENOSPC", err)
	}
	if tw.Healthy() {
		t.Fatal("Healthy() = true after a failed flush")
	}
	tw.wantCounts(t, 2, 1)
	if err := tw.Write(&Record{ID: "refused"}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write while unhealthy = %v, want ENOSPC (writes go through)", err)
	}
	tw.wantCounts(t, 2, 2)
	if got := tw.logs.messages(slog.LevelError); len(got) != 1 {
		t.Errorf("error logs = %q, want exactly one (rate-limited)", got)
	}

	fail.Store(false)
	tw.mustWrite(t, "ok-2")
	if !tw.Healthy() {
		t.Fatal("Healthy() = false after a successful write")
	}
	tw.wantCounts(t, 3, 2)
	if got := tw.logs.messages(slog.LevelInfo); !slices.Contains(got, "audit writes recovered") {
		t.Errorf("info logs = %q, want a recovery message", got)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	// The buffered record was retried; the refused one is not in the log.
	if diff := cmp.Diff([]string{"ok-1", "buffered", "ok-2"}, readIDs(t, cfg.Path)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestPartialWrite checks that a write cut short on a full disk is completed
// later, so that the file still holds only whole lines, and that the tail of
// a cut record is not written at the top of a new file.
func TestPartialWrite(t *testing.T) {
	t.Run("same file", func(t *testing.T) {
		cfg := fileCfg(t.TempDir())
		var fail atomic.Bool
		tw := newTestWriter(t, cfg, flakyOpen(&fail, 7), slowFlush)
		tw.mustWrite(t, "a")
		fail.Store(true)
		if err := tw.Flush(); err == nil {
			t.Fatal("Flush succeeded on a full disk")
		}
		fail.Store(false)
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		tw.mustWrite(t, "b")
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"a", "b"}, readIDs(t, cfg.Path)); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
	})
	t.Run("file replaced", func(t *testing.T) {
		cfg := fileCfg(t.TempDir())
		var fail atomic.Bool
		tw := newTestWriter(t, cfg, flakyOpen(&fail, 7), slowFlush)
		tw.mustWrite(t, "cut")
		tw.mustWrite(t, "whole")
		fail.Store(true)
		if err := tw.Flush(); err == nil {
			t.Fatal("Flush succeeded on a full disk")
		}
		fail.Store(false)
		if err := os.Rename(cfg.Path, cfg.Path+".old"); err != nil {
			t.Fatal(err)
		}
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"whole"}, readIDs(t, cfg.Path)); diff != "" {
			t.Errorf("records in the new file (-want +got):\n%s", diff)
		}
	})
}

func TestErrorLogRateLimited(t *testing.T) {
	cfg := fileCfg(t.TempDir())
	var fail atomic.Bool
	fail.Store(true)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	tw := newTestWriter(t, cfg, flakyOpen(&fail, 0), slowFlush, withClock(clock))
	tw.mustWrite(t, "x")
	_ = tw.Flush() // first failure: logged
	for range 100 {
		_ = tw.Write(&Record{ID: "y"})
		advance(10 * time.Millisecond)
	}
	if got := len(tw.logs.messages(slog.LevelError)); got != 1 {
		t.Errorf("%d error logs within a second, want 1", got)
	}
	advance(errorLogInterval)
	_ = tw.Write(&Record{ID: "z"})
	if got := len(tw.logs.messages(slog.LevelError)); got != 2 {
		t.Errorf("%d error logs after the interval, want 2", got)
	}
	tw.wantCounts(t, 1, 102)

	tw.logs.mu.Lock()
	var suppressed int64
	for _, r := range tw.logs.records {
		r.Attrs(func(a slog.Attr) bool {
			if r.Level == slog.LevelError && a.Key == "suppressed" {
				suppressed = a.Value.Int64()
			}
			return true
		})
	}
	tw.logs.mu.Unlock()
	if suppressed != 100 {
		t.Errorf("second error log says %d suppressed, want 100", suppressed)
	}
}

// TestFileRemovedOrReplaced checks that the writer notices when the file at
// the path is no longer the one it has open, and writes to the new one.
func TestFileRemovedOrReplaced(t *testing.T) {
	tests := []struct {
		name    string
		replace func(path string) error
		want    string // warning
		old     string // where the first record went, if it survives
	}{
		{
			name:    "removed",
			replace: os.Remove,
			want:    "audit file was removed; recreating",
		},
		{
			name: "renamed and recreated (logrotate create)",
			replace: func(path string) error {
				if err := os.Rename(path, path+".rotated"); err != nil {
					return err
				}
				return os.WriteFile(path, nil, 0o600)
			},
			want: "audit file was replaced; reopening",
			old:  ".rotated",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fileCfg(t.TempDir())
			tw := newTestWriter(t, cfg, slowFlush)
			tw.mustWrite(t, "before")
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := tc.replace(cfg.Path); err != nil {
				t.Fatal(err)
			}
			tw.mustWrite(t, "pending") // buffered across the replacement
			if err := tw.Flush(); err != nil {
				t.Fatalf("Flush after the file went: %v", err)
			}
			tw.mustWrite(t, "after")
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"pending", "after"}, readIDs(t, cfg.Path)); diff != "" {
				t.Errorf("records in the new file (-want +got):\n%s", diff)
			}
			if tc.old != "" {
				if diff := cmp.Diff([]string{"before"}, readIDs(t, cfg.Path+tc.old)); diff != "" {
					t.Errorf("records in the old file (-want +got):\n%s", diff)
				}
			}
			if got := tw.logs.messages(slog.LevelWarn); !slices.Contains(got, tc.want) {
				t.Errorf("warnings = %q, want %q", got, tc.want)
			}
			tw.wantCounts(t, 3, 0)
		})
	}
}

// TestUnwritableFolder makes the file impossible to recreate: its folder is
// removed, the path becomes a folder, or (as non-root) the folder becomes
// read-only. Writes fail, Healthy goes false and failures are counted, until
// the path is writable again.
func TestUnwritableFolder(t *testing.T) {
	tests := []struct {
		name    string
		root    bool // meaningful when running as root
		break_  func(t *testing.T, dir, path string)
		restore func(t *testing.T, dir, path string)
	}{
		{
			name: "folder removed",
			root: true,
			break_: func(t *testing.T, dir, _ string) {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
			},
			restore: func(t *testing.T, dir, _ string) {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "path replaced by a folder",
			root: true,
			break_: func(t *testing.T, _, path string) {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			},
			restore: func(t *testing.T, _, path string) {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "folder read-only",
			break_: func(t *testing.T, dir, path string) {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, 0o500); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(dir, 0o700) }) //nolint:errcheck // cleanup: if it fails, removing the temporary folder fails and says so
			},
			restore: func(t *testing.T, dir, _ string) {
				if err := os.Chmod(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.root && os.Geteuid() == 0 {
				t.Skip("root ignores folder permissions; the other cases cover the failure")
			}
			dir := filepath.Join(t.TempDir(), "log")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			cfg := fileCfg(dir)
			tw := newTestWriter(t, cfg, slowFlush)
			tw.mustWrite(t, "before")
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}

			tc.break_(t, dir, cfg.Path)
			tw.mustWrite(t, "pending")
			if err := tw.Flush(); err == nil {
				t.Fatal("Flush succeeded with the path unwritable")
			}
			if tw.Healthy() {
				t.Fatal("Healthy() = true with the path unwritable")
			}
			if err := tw.Write(&Record{ID: "refused"}); err == nil {
				t.Fatal("Write succeeded with the path unwritable")
			}
			if tw.Healthy() {
				t.Fatal("Healthy() = true after a failed write")
			}
			tw.wantCounts(t, 2, 2)

			tc.restore(t, dir, cfg.Path)
			tw.mustWrite(t, "after")
			if !tw.Healthy() {
				t.Fatal("Healthy() = false after the path became writable again")
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"pending", "after"}, readIDs(t, cfg.Path)); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			tw.wantCounts(t, 3, 2)
		})
	}
}

// TestRotationFailure makes rotation impossible: the record is refused and
// the writer is unhealthy until rotation works again.
func TestRotationFailure(t *testing.T) {
	dir := t.TempDir()
	cfg := fileCfg(dir)
	cfg.MaxSize, cfg.MaxFiles = 200, 1
	// audit.log.1 as a non-empty folder cannot be replaced by a rename.
	if err := os.MkdirAll(filepath.Join(cfg.Path+".1", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	tw := newTestWriter(t, cfg, slowFlush)
	var err error
	for i := 0; err == nil && i < 10; i++ {
		err = tw.Write(&Record{ID: "c" + fmt.Sprint(i)})
	}
	if err == nil {
		t.Fatal("no Write failed although rotation cannot work")
	}
	if tw.Healthy() {
		t.Fatal("Healthy() = true after a failed rotation")
	}
	if err := os.RemoveAll(cfg.Path + ".1"); err != nil {
		t.Fatal(err)
	}
	tw.mustWrite(t, "d")
	if !tw.Healthy() {
		t.Fatal("Healthy() = false after rotation worked again")
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readIDs(t, cfg.Path); got[len(got)-1] != "d" {
		t.Errorf("current file ends with %q, want d", got)
	}
	_, failures := tw.counts()
	if failures != 1 {
		t.Errorf("failures_total = %v, want 1", failures)
	}
}

// TestPeriodicFlush checks that buffered records reach the file within one
// flush interval without any Flush call, and are synced.
func TestPeriodicFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := fileCfg(t.TempDir())
		w, err := NewWriter(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(&Record{ID: "a"}); err != nil {
			t.Fatal(err)
		}
		if got := readIDs(t, cfg.Path); len(got) != 0 {
			t.Fatalf("records on disk before the interval: %q", got)
		}
		time.Sleep(DefaultFlushInterval + time.Millisecond)
		synctest.Wait()
		if diff := cmp.Diff([]string{"a"}, readIDs(t, cfg.Path)); diff != "" {
			t.Errorf("records after one interval (-want +got):\n%s", diff)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBufferFullWritesOut(t *testing.T) {
	cfg := fileCfg(t.TempDir())
	tw := newTestWriter(t, cfg, slowFlush)
	big := strings.Repeat("q", 1024)
	n := 0
	for st, _ := os.Stat(cfg.Path); st.Size() == 0; st, _ = os.Stat(cfg.Path) {
		if err := tw.Write(&Record{ID: fmt.Sprint(n), Query: []string{big}}); err != nil {
			t.Fatal(err)
		}
		n++
		if n > 2*bufferSize/len(big) {
			t.Fatalf("nothing written after %d records of 1 KiB", n)
		}
	}
}

func TestClose(t *testing.T) {
	cfg := fileCfg(t.TempDir())
	tw := newTestWriter(t, cfg)
	tw.mustWrite(t, "a")
	if err := tw.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if diff := cmp.Diff([]string{"a"}, readIDs(t, cfg.Path)); diff != "" {
		t.Errorf("records after Close (-want +got):\n%s", diff)
	}
	if err := tw.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if tw.Healthy() {
		t.Error("Healthy() = true after Close")
	}
	if err := tw.Write(&Record{ID: "late"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := tw.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
	tw.wantCounts(t, 1, 1)
	if _, err := os.Stat(cfg.Path); errors.Is(err, fs.ErrNotExist) {
		t.Error("file gone after Close")
	}
}

func TestNilRecord(t *testing.T) {
	tw := newTestWriter(t, config.Audit{Path: "-"}, withStdout(&lockedBuffer{}))
	if err := tw.Write(nil); err == nil {
		t.Fatal("Write(nil) succeeded")
	}
	tw.wantCounts(t, 0, 1)
}
