package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// ShippedSuffix names the shipping checkpoint: the file audit.path plus this
// suffix, such as /var/log/promgate/audit.log.shipped. A shipper that has
// stored a rotated audit file off the host writes into it the hash of that
// file's last record (64 lowercase hex characters, a trailing newline
// allowed), replacing what was there, preferably by renaming a temporary
// file over it:
//
//	tail -n 1 audit.log.1 | jq -r .hash > audit.log.shipped.tmp && mv audit.log.shipped.tmp audit.log.shipped
//
// When rotation is about to delete a file (the oldest beyond audit.max_files,
// or audit.log itself with max_files 0), the file counts as shipped when the
// checkpoint names its last record or the last record of a newer file of the
// set (audit.log.N-1 … audit.log.1, audit.log): the shipper confirms files in
// order, so confirming a newer one confirms the older ones. A hash from the
// middle of a file confirms nothing: finding it would mean reading every
// newer file, under the lock that every request waits for. Deleting a file
// that is not confirmed, or whose last record cannot be read, is counted in
// promgate_audit_unshipped_rotations_total and logged as a warning; an empty
// file holds nothing to lose and is not counted.
const ShippedSuffix = ".shipped"

const (
	// maxCheckpoint bounds how much of the checkpoint file is read.
	maxCheckpoint = 4 << 10
	// shipTail is how much of a file's end rotation reads to find its last
	// record's hash: many records at the current cap. A file whose last
	// line is longer (written before the cap) counts as unconfirmed.
	shipTail = 8 * MaxRecordBytes
)

// parseCheckpoint returns the record hash a checkpoint file holds: 64
// lowercase hex characters, with surrounding white space ignored.
func parseCheckpoint(b []byte) (string, error) {
	s := string(bytes.TrimSpace(b))
	if !isHex(s) {
		if len(s) > 80 {
			s = s[:80] + "…"
		}
		return "", fmt.Errorf("checkpoint %q is not a record hash (64 lowercase hex characters)", s)
	}
	return s, nil
}

// readCheckpoint reads and parses the checkpoint file at path.
func readCheckpoint(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close() //nolint:errcheck // read-only file: a Close error loses nothing
	b, err := io.ReadAll(io.LimitReader(f, maxCheckpoint+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxCheckpoint {
		return "", fmt.Errorf("%s is longer than %d bytes", path, maxCheckpoint)
	}
	h, err := parseCheckpoint(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// fileLastHash returns the stored hash of the last record of the file at
// path, or errNoRecord when the file is missing or empty.
func fileLastHash(path string) (string, error) {
	line, err := lastLineWithin(path, shipTail)
	if err != nil {
		return "", err
	}
	c, err := parseLine(line)
	if err != nil {
		return "", fmt.Errorf("the last line of %s is not a chained record: %w", path, err)
	}
	return c.Hash, nil
}

// unshipped is a file that rotation deletes without a shipping
// confirmation, and why it is not confirmed.
type unshipped struct {
	path string
	last string // hash of its last record, "" when unreadable
	err  error
}

// confirmLocked checks, before rotation deletes the file at path, whether
// the checkpoint confirms it as shipped (see ShippedSuffix). newer are the
// files of the set newer than it. It returns nil when the file is
// confirmed, missing or empty.
func (w *Writer) confirmLocked(path string, newer []string) *unshipped {
	last, err := fileLastHash(path)
	if errors.Is(err, errNoRecord) {
		return nil
	}
	if err != nil {
		return &unshipped{path: path, err: err}
	}
	checkpoint, err := readCheckpoint(w.path + ShippedSuffix)
	if err != nil {
		return &unshipped{path: path, last: last, err: err}
	}
	if checkpoint == last {
		return nil
	}
	for _, p := range newer {
		if h, err := fileLastHash(p); err == nil && h == checkpoint {
			return nil
		}
	}
	return &unshipped{path: path, last: last, err: fmt.Errorf(
		"checkpoint %s names neither its last record nor the last record of a newer audit file", checkpoint)}
}

// deletedLocked counts and logs a file rotation deleted without a shipping
// confirmation; u is what confirmLocked returned before the deletion.
func (w *Writer) deletedLocked(u *unshipped) {
	if u == nil {
		return
	}
	w.unshippedRotations.Inc()
	w.log.Warn("audit rotation deleted a file not confirmed as shipped",
		"path", u.path, "last_hash", u.last, "checkpoint", w.path+ShippedSuffix, "err", u.err)
}
