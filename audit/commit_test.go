package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/units"

	"github.com/promgate/promgate/config"
)

// syncFile counts fsyncs, can hold each one until released, and can fail
// them.
type syncFile struct {
	*os.File
	s *syncs
}

type syncs struct {
	n       atomic.Int64
	fail    atomic.Bool
	hold    atomic.Bool
	entered chan struct{} // a Sync started (when hold is set)
	release chan struct{} // lets one held Sync finish
}

func (f syncFile) Sync() error {
	if f.s.hold.Load() {
		f.s.entered <- struct{}{}
		<-f.s.release
	}
	f.s.n.Add(1)
	if f.s.fail.Load() {
		return syscall.EIO
	}
	return f.File.Sync()
}

func (s *syncs) open() Option {
	return withOpen(func(path string) (file, error) {
		f, err := openFile(path)
		if err != nil {
			return nil, err
		}
		return syncFile{File: f.(*os.File), s: s}, nil
	})
}

func newSyncs() *syncs {
	return &syncs{entered: make(chan struct{}), release: make(chan struct{})}
}

func durableCfg(dir string) config.Audit {
	return config.Audit{Path: filepath.Join(dir, "audit.log"), OnFailure: config.OnFailureDeny, Mode: config.AuditDurable}
}

// TestDurableWriteIsOnDisk checks that in durable mode a record is in the
// file, and was fsynced, when Write returns: no flush tick is needed.
func TestDurableWriteIsOnDisk(t *testing.T) {
	cfg := durableCfg(t.TempDir())
	s := newSyncs()
	tw := newTestWriter(t, cfg, s.open(), slowFlush)
	if !tw.Durable() {
		t.Fatal("Durable() = false for mode durable")
	}
	for i := range 3 {
		tw.mustWrite(t, fmt.Sprint("r", i))
		if got := readIDs(t, cfg.Path); len(got) != i+1 {
			t.Fatalf("after Write %d the file holds %q", i, got)
		}
		if got := s.n.Load(); got != int64(i+1) {
			t.Fatalf("after Write %d: %d fsyncs, want %d (one per lone write)", i, got, i+1)
		}
	}
}

// TestDurableIsTheDefault checks that a configuration without a mode is
// durable, and that an unknown mode is refused.
func TestDurableIsTheDefault(t *testing.T) {
	tw := newTestWriter(t, config.Audit{Path: filepath.Join(t.TempDir(), "a.log")})
	if !tw.Durable() {
		t.Error("Durable() = false without audit.mode")
	}
	if _, err := NewWriter(config.Audit{Path: "-", Mode: "lazy"}, nil, nil); err == nil || err.Error() != `audit.mode: unknown value "lazy"; use durable or buffered` {
		t.Errorf("NewWriter(mode lazy) = %v", err)
	}
	b := newTestWriter(t, config.Audit{Path: "-", Mode: config.AuditBuffered}, withStdout(&lockedBuffer{}))
	if b.Durable() {
		t.Error("Durable() = true for mode buffered")
	}
}

// TestGroupCommit holds the first fsync while more records arrive: they wait,
// and all of them share the next single write and fsync.
func TestGroupCommit(t *testing.T) {
	cfg := durableCfg(t.TempDir())
	s := newSyncs()
	tw := newTestWriter(t, cfg, s.open(), slowFlush)
	s.hold.Store(true)

	var wg sync.WaitGroup
	done := make(chan string, 20)
	write := func(id string) {
		defer wg.Done()
		if err := tw.Write(&Record{ID: id}); err != nil {
			t.Errorf("Write(%s): %v", id, err)
		}
		done <- id
	}
	wg.Add(1)
	go write("leader")
	<-s.entered // the leader is in its fsync
	const followers = 10
	for i := range followers {
		wg.Add(1)
		go write(fmt.Sprint("f", i))
	}
	// Every follower has appended its record (and is waiting) once the
	// buffer holds them; nothing has returned yet.
	waitFor(t, func() bool {
		tw.mu.Lock()
		defer tw.mu.Unlock()
		return tw.gc.seq == followers+1
	})
	if len(done) != 0 {
		t.Fatalf("%d Writes returned before their fsync", len(done))
	}
	s.release <- struct{}{} // the leader's fsync ends
	if id := <-done; id != "leader" {
		t.Fatalf("first to return: %s, want the leader", id)
	}
	<-s.entered // one follower leads the next commit, for all of them
	if len(done) != 0 {
		t.Fatalf("%d followers returned before their fsync", len(done))
	}
	s.hold.Store(false)
	s.release <- struct{}{}
	wg.Wait()
	if got := s.n.Load(); got != 2 {
		t.Errorf("%d fsyncs for %d records, want 2 (group commit)", got, followers+1)
	}
	if got := readIDs(t, cfg.Path); len(got) != followers+1 || got[0] != "leader" {
		t.Errorf("records = %q", got)
	}
	res, err := Verify(VerifyOptions{}, cfg.Path)
	if err != nil || !res.OK() {
		t.Errorf("Verify = %v, %v", res, err)
	}
}

// TestDurableSyncFailure checks that a failed fsync fails the Write of every
// record it covered, marks the writer unhealthy, and that the records are
// retried: the next successful commit makes them durable.
func TestDurableSyncFailure(t *testing.T) {
	cfg := durableCfg(t.TempDir())
	s := newSyncs()
	tw := newTestWriter(t, cfg, s.open(), slowFlush)
	tw.mustWrite(t, "ok-1")
	s.fail.Store(true)
	if err := tw.Write(&Record{ID: "unsynced"}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Write with a failing fsync = %v, want EIO", err)
	}
	if tw.Healthy() {
		t.Fatal("Healthy() = true after a failed fsync")
	}
	tw.wantCounts(t, 2, 1)
	s.fail.Store(false)
	tw.mustWrite(t, "ok-2")
	if !tw.Healthy() {
		t.Fatal("Healthy() = false after a successful commit")
	}
	if got, want := readIDs(t, cfg.Path), []string{"ok-1", "unsynced", "ok-2"}; !slices.Equal(got, want) {
		t.Errorf("records = %q, want %q", got, want)
	}
}

// TestDurableFollowersOfAFailedCommit checks that the records waiting on a
// commit that another Write leads get an error when its fsync fails, not a
// false success.
func TestDurableFollowersOfAFailedCommit(t *testing.T) {
	cfg := durableCfg(t.TempDir())
	s := newSyncs()
	tw := newTestWriter(t, cfg, s.open(), slowFlush)
	s.hold.Store(true)
	first := make(chan error, 1)
	go func() { first <- tw.Write(&Record{ID: "first"}) }()
	<-s.entered
	errs := make(chan error, 2)
	for _, id := range []string{"f1", "f2"} {
		go func() { errs <- tw.Write(&Record{ID: id}) }()
	}
	waitFor(t, func() bool {
		tw.mu.Lock()
		defer tw.mu.Unlock()
		return tw.gc.seq == 3
	})
	s.release <- struct{}{} // the first commit succeeds
	if err := <-first; err != nil {
		t.Fatalf("first Write: %v", err)
	}
	<-s.entered // one follower leads the commit of both
	s.fail.Store(true)
	s.hold.Store(false)
	s.release <- struct{}{}
	for range 2 {
		if err := <-errs; err == nil {
			t.Error("a Write returned nil although its commit's fsync failed")
		}
	}
	tw.wantCounts(t, 3, 1)
}

// TestDurableStdout checks that in durable mode a record reaches stdout
// before Write returns.
func TestDurableStdout(t *testing.T) {
	var out lockedBuffer
	tw := newTestWriter(t, config.Audit{Path: "-"}, withStdout(&out), slowFlush)
	tw.mustWrite(t, "a")
	if out.String() == "" {
		t.Error("stdout is empty after a durable Write")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkWriteDurable is BenchmarkWrite in durable mode: every Write
// returns only after its record is fsynced, concurrent Writes sharing one
// fsync. Compare records/s with BenchmarkWrite (buffered); -cpu sets the
// parallelism, and SetParallelism raises it to what a loaded gateway has.
func BenchmarkWriteDurable(b *testing.B) {
	allowed := fullRecord()
	allowed.Error, allowed.ClientRequestID = "", ""
	for _, par := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers-per-cpu-%d", par), func(b *testing.B) {
			cfg := config.Audit{Path: filepath.Join(b.TempDir(), "audit.log"), MaxSize: 100 * units.MiB, MaxFiles: 2, Mode: config.AuditDurable}
			w, err := NewWriter(cfg, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			b.ReportAllocs()
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := *allowed
				for pb.Next() {
					if err := w.Write(&r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
