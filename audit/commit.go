package audit

import (
	"errors"
	"os"
	"sync"
)

// groupCommit is the state of durable mode's group commit. Every record
// appended gets a sequence number; a Write returns once a write and fsync
// that covers its number has finished.
//
// The first Write that finds no commit under way leads one: it writes out
// everything pending under the writer's mutex (so that the file keeps the
// chain's order), then fsyncs outside it, while later Writes append to the
// buffer and wait. When the fsync returns, every record appended before the
// leader started is durable and its Write returns; one of those that arrived
// meanwhile leads the next commit. Under load, one write and one fsync serve
// as many records as arrive during one fsync, so the cost per record falls as
// concurrency rises, while a lone request pays one fsync.
type groupCommit struct {
	cond    sync.Cond // L is the writer's mutex
	seq     uint64    // sequence number of the last record appended
	synced  uint64    // every record up to this one is written and synced
	failed  uint64    // the last failed commit covered records up to this one
	syncing bool      // a leader is writing and syncing
}

// commitLocked returns once the record numbered seq is written out and, for a
// file, fsynced; or with an error when the commit that covered it failed. The
// writer's mutex is held on entry and on return; it is released while the
// leader syncs and while others wait.
func (w *Writer) commitLocked(seq uint64) error {
	g := &w.gc
	for g.synced < seq {
		if g.syncing {
			g.cond.Wait()
			if g.synced < seq && g.failed >= seq && !g.syncing {
				return errCommitFailed
			}
			continue
		}
		g.syncing = true
		upto := g.seq
		op := "write"
		err := w.flushPendingLocked()
		if f := w.f; err == nil && f != nil {
			op = "sync"
			w.dirty = false
			w.mu.Unlock()
			err = f.Sync()
			w.mu.Lock()
			if errors.Is(err, os.ErrClosed) {
				// Rotation or reopening closed the file meanwhile, and
				// synced it before closing.
				err = nil
			}
			if err != nil && w.f == f {
				w.dirty = true
			}
		}
		g.syncing = false
		g.cond.Broadcast()
		if err != nil {
			// The records stay pending (or dirty) and are retried by
			// the next commit or flush; until then none of them is
			// known to be durable.
			g.failed = upto
			return w.failLocked(op, err)
		}
		g.synced = upto
		w.okLocked()
	}
	return nil
}

// errCommitFailed is returned to the Writes whose records were in a commit
// that another Write led and that failed; the leader's error was logged.
var errCommitFailed = errors.New("audit commit: the write or fsync of this record failed")

// Durable reports whether Write waits for its record to be written and
// synced (audit.mode durable). The gateway then holds back the end of each
// response until its record's Write has returned.
func (w *Writer) Durable() bool { return w.durable }
