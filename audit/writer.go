package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/config"
)

// ErrClosed is returned by Write and Flush after Close.
var ErrClosed = errors.New("audit writer is closed")

// DefaultFlushInterval is how often buffered records are written out and, for
// a file, synced to disk, unless WithFlushInterval says otherwise.
const DefaultFlushInterval = time.Second

const (
	// bufferSize is how many bytes of records are buffered before a Write
	// writes them out without waiting for the flush tick.
	bufferSize = 64 << 10
	// errorLogInterval bounds how often a failure is logged, so that a full
	// disk does not flood the log; the failures counter sees every one.
	errorLogInterval = 5 * time.Second
)

// Option changes how NewWriter builds a Writer.
type Option func(*Writer)

// WithFlushInterval sets how often buffered records are written out and
// synced. It must be positive; the default is DefaultFlushInterval.
func WithFlushInterval(d time.Duration) Option {
	return func(w *Writer) { w.interval = d }
}

// file is what a Writer needs of an open audit file. It is *os.File except in
// tests, which wrap it to inject failures.
type file interface {
	io.Writer
	Sync() error
	Close() error
	Stat() (fs.FileInfo, error)
}

// Writer appends audit records to a file or to stdout, one JSON object per
// line, in the order Write is called, each linked to the one before it by a
// hash chain. It is safe for concurrent use.
//
// A record is encoded to JSON before the writer's mutex is taken. Under the
// mutex, Write only links the record into the chain (one SHA-256 over the
// line) and appends it to a 64 KiB buffer; the buffer is written to the
// operating system when it fills, at the flush tick, on Flush and on Close,
// and synced to disk outside the mutex. Rotation and reopening happen under
// the mutex, so that the chain and the files agree on the order of records.
type Writer struct {
	path     string // "" means stdout
	maxSize  int64  // 0 means never rotate
	maxFiles int
	interval time.Duration
	log      *slog.Logger
	records  prometheus.Counter
	failures prometheus.Counter
	// unshippedRotations counts files rotation deleted without a shipping
	// confirmation (see ShippedSuffix).
	unshippedRotations prometheus.Counter

	// Hooks, replaced in tests.
	open   func(path string) (file, error)
	now    func() time.Time
	stdout io.Writer

	healthy atomic.Bool
	stop    chan struct{}
	done    chan struct{}

	// durable makes Write wait for group commit (commit.go).
	durable bool
	gc      groupCommit

	mu         sync.Mutex
	f          file      // the open file; nil in stdout mode and after a failed open
	out        io.Writer // f, or stdout; nil when no file is open
	pending    []byte    // encoded records not yet written to out
	midLine    bool      // a partial write left pending starting inside a record
	size       int64     // bytes in the current file plus pending
	dirty      bool      // bytes written to f since the last sync
	chain      chain
	failed     bool // the last write, flush, rotation or open failed
	closed     bool
	lastErrLog time.Time
	suppressed int // failures not logged since lastErrLog
}

// NewWriter opens the audit output that cfg names and starts the flush loop.
// cfg.Path "-" writes to stdout, for a log shipper such as Fluent Bit, Vector
// or Promtail to collect. Any other path is a file that is appended to (and
// created with mode 0600); its folder must exist. With cfg.MaxSize above zero
// the file is rotated before it would grow beyond MaxSize: audit.log becomes
// audit.log.1, audit.log.1 becomes audit.log.2, and so on, keeping
// cfg.MaxFiles rotated files and deleting older ones. A file deleted before a
// shipper confirmed it in the checkpoint file cfg.Path+ShippedSuffix is
// counted and logged.
//
// The metrics promgate_audit_records_total, promgate_audit_failures_total,
// promgate_audit_unshipped_rotations_total and promgate_audit_last_hash_info
// are registered with reg; a nil reg registers nothing. Errors name the
// configuration key they concern.
func NewWriter(cfg config.Audit, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Writer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{
		maxSize:  int64(cfg.MaxSize),
		maxFiles: cfg.MaxFiles,
		interval: DefaultFlushInterval,
		log:      logger.With("component", "audit"),
		open:     openFile,
		now:      time.Now,
		stdout:   os.Stdout,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for _, o := range opts {
		o(w)
	}
	w.gc.cond.L = &w.mu

	switch cfg.Mode {
	case "", config.AuditDurable:
		w.durable = true
	case config.AuditBuffered:
	default:
		return nil, fmt.Errorf("audit.mode: unknown value %q; use durable or buffered", cfg.Mode)
	}
	switch {
	case w.interval <= 0:
		return nil, fmt.Errorf("audit: flush interval %v must be positive", w.interval)
	case cfg.MaxSize < 0:
		return nil, errors.New("audit.max_size: must not be negative")
	case cfg.MaxFiles < 0:
		return nil, errors.New("audit.max_files: must not be negative")
	case cfg.Path == "":
		return nil, errors.New(`audit.path: required: a file, or "-" for stdout`)
	case cfg.Path == "-":
		w.out = w.stdout
		w.chain.start = StartStdout
	default:
		w.path = filepath.Clean(cfg.Path)
		dir := filepath.Dir(w.path)
		st, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("audit.path: folder %s does not exist; create it or choose another path", dir)
		case err != nil:
			return nil, fmt.Errorf("audit.path: %w", err)
		case !st.IsDir():
			return nil, fmt.Errorf("audit.path: %s is not a folder", dir)
		}
		var broken bool
		w.chain.last, w.chain.start, broken = resume(w.path)
		switch {
		case broken:
			w.log.Warn("audit hash chain restarted: the last record cannot be linked to; audit verify will report the restart",
				"path", w.path, "chain_start", w.chain.start)
		case w.chain.start == "":
			w.log.Info("audit hash chain resumed", "path", w.path, "last_hash", w.lastHashLocked())
		default:
			w.log.Info("audit hash chain started", "path", w.path, "chain_start", w.chain.start)
		}
		if err := w.openLocked(); err != nil {
			return nil, fmt.Errorf("audit.path: %w", err)
		}
		if st, err := w.f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
			w.log.Warn("audit file is accessible to other users; chmod 600 it", "path", w.path, "mode", st.Mode().Perm().String())
		}
	}

	if w.chain.start != "" {
		w.chain.start = capChainStart(w.chain.start)
	}

	var err error
	if w.records, err = counter(reg, "promgate_audit_records_total",
		"Audit records accepted by the writer."); err == nil {
		w.failures, err = counter(reg, "promgate_audit_failures_total",
			"Audit write, flush, sync, rotation and open failures; each may have lost records.")
	}
	if err == nil {
		w.unshippedRotations, err = counter(reg, "promgate_audit_unshipped_rotations_total",
			"Audit files that rotation deleted without a shipper's confirmation in the checkpoint file audit.path + \".shipped\".")
	}
	if err == nil && reg != nil {
		// A second Writer on the same registry replaces the first one's
		// last hash: the newest writer is the one writing.
		c := lastHashCollector{w}
		if err = reg.Register(c); err != nil {
			if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
				reg.Unregister(are.ExistingCollector)
				err = reg.Register(c)
			}
		}
	}
	if err != nil {
		if w.f != nil {
			w.f.Close() //nolint:errcheck // error path: nothing was written yet; the registration error is returned
		}
		return nil, fmt.Errorf("audit: register metrics: %w", err)
	}

	w.healthy.Store(true)
	go w.run()
	return w, nil
}

// counter makes a counter and registers it with reg. A counter that is
// already registered (a second Writer on the same registry) is shared.
func counter(reg prometheus.Registerer, name, help string) (prometheus.Counter, error) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(prometheus.Counter); ok {
			return existing, nil
		}
	}
	return c, err
}

// openFile opens path for appending, creating it with mode 0600. It refuses
// anything but a regular file: a FIFO would block and a device cannot rotate.
func openFile(path string) (file, error) {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close() //nolint:errcheck // error path: nothing was written; the stat error is returned
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close() //nolint:errcheck // error path: nothing was written; the file is refused
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return f, nil
}

// Write appends one record, as one line, after every record written before
// it. It does not modify r. The time is written in UTC (a zero time becomes
// now), the client request ID is sanitised and Error passes through Redact.
// Every free-text field is then cut to its cap, with its full length and
// SHA-256 in Truncated, so that the line is at most MaxRecordBytes long, all
// before the record is hashed into the chain.
//
// In durable mode (audit.mode, the default) Write returns only once the
// record is written and fsynced, sharing the write and the fsync with the
// records of concurrent Writes (group commit, commit.go). In buffered mode,
// while the writer is healthy, records are buffered and written out at the
// next flush tick or when the buffer fills. After a failure, each Write
// writes through and a nil error means the record reached the output. A
// non-nil error means the record was not stored (or, after a partial write,
// that its tail is still pending); the failure is counted and logged, and
// Healthy reports false until a later write succeeds.
func (w *Writer) Write(r *Record) error {
	var body *encoder
	var err error
	if r != nil {
		// Encoding needs no lock: only linking and appending do.
		rec := normalize(r, w.now())
		if math.IsNaN(rec.DurationMS) || math.IsInf(rec.DurationMS, 0) {
			rec.DurationMS = 0
		}
		if y := rec.Time.Year(); y < 0 || y > 9999 {
			rec.Time = w.now().UTC()
		}
		body = encoders.Get().(*encoder)
		defer encoders.Put(body)
		err = body.encodeBounded(&rec)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.failLocked("write", ErrClosed)
	}
	if r == nil {
		return w.failLocked("write", errors.New("nil record"))
	}
	if err != nil {
		return w.failLocked("encode", err)
	}
	saved := w.chain.last
	savedStart := w.chain.start
	line, err := w.chain.link(body.bytes())
	if err != nil {
		return w.failLocked("encode", err)
	}
	if kept, err := w.appendLocked(line, saved); err != nil {
		if !kept {
			// The record is not in the log: the next one links to the
			// record before it.
			w.chain.last, w.chain.start = saved, savedStart
		}
		return err
	}
	w.records.Inc()
	if w.durable {
		w.gc.seq++
		return w.commitLocked(w.gc.seq)
	}
	return nil
}

// encoder encodes a record without its chain fields. Encoders are pooled, so
// that concurrent Writes encode in parallel without allocating.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

func (e *encoder) encode(rec *Record) error {
	e.buf.Reset()
	return e.enc.Encode(rec)
}

// bytes returns the JSON object without the encoder's newline.
func (e *encoder) bytes() []byte {
	return bytes.TrimSuffix(e.buf.Bytes(), []byte("\n"))
}

// LastHash returns the hex hash of the last record written (or, before the
// first Write, the hash the next record links to: the last record of the
// earlier file, or ZeroHash when a new chain starts). Publish it, as the
// metric promgate_audit_last_hash_info and the log do, so that a truncated
// tail can be detected: see the threat model in the package documentation.
func (w *Writer) LastHash() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastHashLocked()
}

func (w *Writer) lastHashLocked() string {
	return hex.EncodeToString(w.chain.last[:])
}

// appendLocked adds line to the output, rotating first when the file would
// grow beyond maxSize. prev is the hash the line links to: the last record
// of the file that rotation moves away. kept reports whether the line is in
// the output or still pending; it is false when the record was dropped.
func (w *Writer) appendLocked(line []byte, prev [sha256.Size]byte) (kept bool, err error) {
	through := w.failed
	if w.out == nil {
		if err := w.openLocked(); err != nil {
			return false, w.failLocked("open", err)
		}
	}
	if w.path != "" && w.maxSize > 0 && w.size > 0 && w.size+int64(len(line)) > w.maxSize {
		if err := w.rotateLocked(prev); err != nil {
			return false, w.failLocked("rotate", err)
		}
	}
	w.pending = append(w.pending, line...)
	w.size += int64(len(line))
	if !through && len(w.pending) < bufferSize {
		return true, nil
	}
	if err := w.flushPendingLocked(); err != nil {
		kept = true
		if len(w.pending) >= len(line) {
			// Nothing of this record was written: drop it, so that an
			// error means the record is not in the log.
			w.pending = w.pending[:len(w.pending)-len(line)]
			w.size -= int64(len(line))
			kept = false
		}
		return kept, w.failLocked("write", err)
	}
	w.okLocked()
	return true, nil
}

// flushPendingLocked writes pending to out. On error, pending keeps what was
// not written, to be retried.
func (w *Writer) flushPendingLocked() error {
	if len(w.pending) == 0 {
		return nil
	}
	if w.out == nil {
		return errors.New("no audit file is open")
	}
	n, err := w.out.Write(w.pending)
	if n < 0 || n > len(w.pending) {
		n, err = 0, fmt.Errorf("write returned invalid count %d", n)
	}
	if n > 0 {
		w.dirty = true
		w.midLine = w.pending[n-1] != '\n'
		w.pending = w.pending[:copy(w.pending, w.pending[n:])]
	}
	if err == nil && len(w.pending) > 0 {
		err = io.ErrShortWrite
	}
	return err
}

// openLocked opens the audit file at w.path (stdout needs no opening). If a
// partial write left the tail of a record pending, the tail is dropped: its
// head went to the previous file, and the new file must start with a whole
// line.
func (w *Writer) openLocked() error {
	if w.path == "" {
		w.out = w.stdout
		return nil
	}
	f, err := w.open(w.path)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close() //nolint:errcheck // error path: nothing was written; the stat error is returned
		return fmt.Errorf("stat %s: %w", w.path, err)
	}
	w.f, w.out = f, f
	if w.midLine {
		if i := bytes.IndexByte(w.pending, '\n'); i >= 0 {
			w.pending = w.pending[:copy(w.pending, w.pending[i+1:])]
		} else {
			w.pending = w.pending[:0]
		}
		w.midLine = false
		w.log.Warn("dropped the tail of an audit record whose head went to the previous file", "path", w.path)
	}
	if st.Size() > 0 && !endsWithNewline(w.path, st.Size()) {
		// A record cut short (a crash, a full disk, an editor): end its
		// line, so that the next record is not glued to it. audit verify
		// reports the cut record.
		w.pending = append(w.pending, 0)
		copy(w.pending[1:], w.pending)
		w.pending[0] = '\n'
		w.log.Warn("audit file did not end with a newline; ended the cut record's line", "path", w.path)
	}
	w.size = st.Size() + int64(len(w.pending))
	return nil
}

// endsWithNewline reports whether the file at path ends with a newline. A
// file that cannot be read is taken to: the writer only appends.
func endsWithNewline(path string, size int64) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close() //nolint:errcheck // read-only file: a Close error loses nothing
	var b [1]byte
	if _, err := f.ReadAt(b[:], size-1); err != nil {
		return true
	}
	return b[0] == '\n'
}

// closeFileLocked syncs and closes the open file, if any.
func (w *Writer) closeFileLocked() error {
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f, w.out = nil, nil
	err := f.Sync()
	w.dirty = false
	return errors.Join(err, f.Close())
}

// checkFileLocked makes sure the open file is still the one at w.path. When
// the file was removed or replaced (logrotate without copytruncate, an
// operator, an attacker), it reopens the path, so that the pending records go
// to the file that is there now.
func (w *Writer) checkFileLocked() error {
	if w.path == "" {
		return nil
	}
	if w.f == nil {
		return w.openLocked()
	}
	onDisk, err := os.Stat(w.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stat %s: %w", w.path, err)
	}
	if err == nil {
		open, err := w.f.Stat()
		if err != nil {
			return fmt.Errorf("stat open %s: %w", w.path, err)
		}
		if os.SameFile(onDisk, open) {
			return nil
		}
		w.log.Warn("audit file was replaced; reopening", "path", w.path, "last_hash", w.lastHashLocked())
	} else {
		w.log.Warn("audit file was removed; recreating", "path", w.path, "last_hash", w.lastHashLocked())
	}
	if err := w.closeFileLocked(); err != nil {
		w.log.Warn("close replaced audit file", "path", w.path, "err", err)
	}
	return w.openLocked()
}

// rotateLocked writes pending into the current file, shifts the rotated
// files up by one, moves the current file to .1 and opens a fresh one. Every
// file it deletes, by removing it or by renaming another over it, is first
// checked against the shipping checkpoint (confirmLocked).
func (w *Writer) rotateLocked(last [sha256.Size]byte) error {
	if err := w.flushPendingLocked(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", w.path, err)
	}
	w.dirty = false
	name := func(i int) string { return w.path + "." + strconv.Itoa(i) }
	// newer lists the files of the set newer than name(i), oldest first.
	newer := func(i int) []string {
		files := make([]string, 0, i)
		for j := i - 1; j >= 1; j-- {
			files = append(files, name(j))
		}
		return append(files, w.path)
	}
	// Files beyond max_files are left over from a larger setting.
	for i := w.maxFiles + 1; ; i++ {
		u := w.confirmLocked(name(i), newer(i))
		err := os.Remove(name(i))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("remove old audit file: %w", err)
		}
		w.deletedLocked(u)
	}
	if w.maxFiles == 0 {
		u := w.confirmLocked(w.path, nil)
		if err := os.Remove(w.path); err != nil {
			return fmt.Errorf("remove full audit file: %w", err)
		}
		w.deletedLocked(u)
	} else {
		// The first rename replaces, and so deletes, name(max_files).
		for i := w.maxFiles - 1; i >= 1; i-- {
			u := w.confirmLocked(name(i+1), newer(i+1))
			err := os.Rename(name(i), name(i+1))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("shift rotated audit file: %w", err)
			}
			if err == nil {
				w.deletedLocked(u)
			}
		}
		u := w.confirmLocked(name(1), newer(1))
		if err := os.Rename(w.path, name(1)); err != nil {
			return fmt.Errorf("rotate audit file: %w", err)
		}
		w.deletedLocked(u)
	}
	if err := w.closeFileLocked(); err != nil {
		w.log.Warn("close rotated audit file", "path", w.path, "err", err)
	}
	if err := w.openLocked(); err != nil {
		return err
	}
	// The new file's first record links to last, the hash of the rotated
	// file's last record (w.chain.last is already the new record's). Logged,
	// so that the end of the rotated file can be checked later (audit verify
	// -last-hash).
	w.log.Info("rotated audit file", "path", w.path, "rotated_to", name(1), "last_hash", hex.EncodeToString(last[:]))
	return nil
}

// Flush writes out buffered records and, for a file, syncs it to disk. It
// first checks that the open file is still the one at the configured path and
// reopens the path if not. The flush loop calls it every flush interval.
func (w *Writer) Flush() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	err := w.checkFileLocked()
	op := "open"
	if err == nil {
		op = "flush"
		err = w.flushPendingLocked()
	}
	if err != nil {
		err = w.failLocked(op, err)
		w.mu.Unlock()
		return err
	}
	f := w.f
	sync := f != nil && w.dirty
	w.dirty = false
	if !sync {
		w.okLocked()
	}
	w.mu.Unlock()
	if !sync {
		return nil
	}

	// Sync outside the lock, so that Write does not wait for the disk. A file
	// closed meanwhile by rotation or reopening was synced before it closed.
	err = f.Sync()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil && !errors.Is(err, os.ErrClosed) {
		if w.f == f {
			w.dirty = true
		}
		return w.failLocked("sync", err)
	}
	w.okLocked()
	return nil
}

// Healthy reports whether records are being stored: false from a failed
// write, flush, sync, rotation or reopen until a later one succeeds, and after
// Close. With audit.on_failure: deny the gateway answers 503 and forwards
// nothing while it is false.
func (w *Writer) Healthy() bool {
	return w.healthy.Load()
}

// Close writes out and syncs everything pending, closes the file and stops
// the flush loop. Calling it again does nothing and returns nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done

	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.healthy.Store(false)
	if len(w.pending) > 0 {
		err := w.checkFileLocked()
		if err == nil {
			err = w.flushPendingLocked()
		}
		if err != nil {
			err = w.failLocked("flush", err)
			return errors.Join(err, w.closeFileLocked())
		}
	}
	if err := w.closeFileLocked(); err != nil {
		return w.failLocked("close", err)
	}
	w.log.Info("audit writer closed", "path", w.displayPath(), "last_hash", w.lastHashLocked())
	return nil
}

// run flushes every interval until Close.
func (w *Writer) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			// Failures are counted and logged by Flush.
			_ = w.Flush()
		}
	}
}

// failLocked records a failure: unhealthy, counted, and logged at most once
// per errorLogInterval with the number of failures left unlogged.
func (w *Writer) failLocked(op string, err error) error {
	err = fmt.Errorf("audit %s: %w", op, err)
	w.failed = true
	w.healthy.Store(false)
	w.failures.Inc()
	now := w.now()
	if !w.lastErrLog.IsZero() && now.Sub(w.lastErrLog) < errorLogInterval {
		w.suppressed++
		return err
	}
	w.log.Error("audit write failed", "op", op, "path", w.displayPath(), "err", err, "suppressed", w.suppressed)
	w.lastErrLog, w.suppressed = now, 0
	return err
}

// okLocked records a success after failures.
func (w *Writer) okLocked() {
	if !w.failed {
		return
	}
	w.failed = false
	if !w.closed {
		w.healthy.Store(true)
	}
	w.log.Info("audit writes recovered", "path", w.displayPath(), "suppressed", w.suppressed)
	w.suppressed = 0
}

func (w *Writer) displayPath() string {
	if w.path == "" {
		return "-"
	}
	return w.path
}
