package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Link names what a Break found wrong.
type Link string

// The links Verify checks.
const (
	// LinkHash: the record's hash does not match its content. The record
	// was changed (or its hash was).
	LinkHash Link = "hash"
	// LinkPrev: the record's prev_hash is not the hash of the record before
	// it. A record was removed before it, or it was inserted or moved here,
	// or the files were given out of order.
	LinkPrev Link = "prev_hash"
	// LinkFormat: the line is not a chained audit record: not JSON, no hash,
	// an empty line, or a record cut short at the end of a file.
	LinkFormat Link = "format"
	// LinkRestart: the record starts a new chain (chain_start) after the
	// first record. The writer does this when it could not read the record
	// before; the records before it are not linked to it.
	LinkRestart Link = "chain_start"
	// LinkLastHash: no record has the hash VerifyOptions.LastHash names,
	// so records were cut from the end (or the hash is of other files).
	LinkLastHash Link = "last_hash"
)

// Break is one place where the chain does not hold.
type Break struct {
	File string
	Line int    // 1-based; 0 for the whole set
	ID   string // the record's id, when it could be read
	Link Link
	Msg  string
}

func (b Break) String() string {
	var s strings.Builder
	if b.Line > 0 {
		fmt.Fprintf(&s, "%s:%d: ", b.File, b.Line)
	}
	fmt.Fprintf(&s, "%s: %s", b.Link, b.Msg)
	if b.ID != "" {
		fmt.Fprintf(&s, " (record id %q)", b.ID)
	}
	return s.String()
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// AllowRestart accepts records that start a new chain after the first
	// record, instead of reporting them as breaks. They are still counted.
	AllowRestart bool
	// LastHash is a hash (or a prefix of at least LastHashPrefix hex
	// characters) published earlier by the writer: the metric
	// promgate_audit_last_hash_info or a log line. Verify reports a break
	// unless some record of the set has it.
	LastHash string
	// MaxBreaks bounds Result.Breaks; 0 means 100. Every break is counted.
	MaxBreaks int
}

// Result is what Verify found.
type Result struct {
	Files   int
	Records int
	// Anchor is the prev_hash of the first record: ZeroHash when the set
	// begins with a chain start, else the hash of a record in a file that
	// was not given (rotated away), which Verify cannot check.
	Anchor string
	// AnchorStart is the chain_start reason of the first record, if any.
	AnchorStart string
	// Last is the hash of the last record.
	Last string
	// Restarts counts records after the first that start a new chain.
	Restarts int
	// Breaks are the first MaxBreaks breaks in order; NBreaks counts all.
	Breaks  []Break
	NBreaks int
}

// OK reports whether the chain holds over the whole set.
func (r *Result) OK() bool { return r.NBreaks == 0 }

// verifier checks records one by one across files.
type verifier struct {
	opts     VerifyOptions
	res      Result
	prev     string // hash the next record must link to; "" when unknown
	prevFile string
	prevLine int
	found    bool // LastHash seen
}

// Verify checks the hash chain over files, given oldest first: for a rotated
// set, audit.log.N ... audit.log.2 audit.log.1 audit.log. The first record of
// each file must link to the last record of the file before it. It reports
// every record that was changed, removed, inserted or moved, as the first
// record where a link breaks, and resynchronises after each break so that
// later breaks are reported too. The error is for files that cannot be read;
// a broken chain is a Result that is not OK.
//
// Verify cannot see records cut from the end of the last file, nor files
// removed from the beginning of the set: that is what opts.LastHash and the
// published last hash are for (see the package documentation).
func Verify(opts VerifyOptions, files ...string) (*Result, error) {
	if len(files) == 0 {
		return nil, errors.New("no audit files to verify")
	}
	if h := opts.LastHash; h != "" && (len(h) < LastHashPrefix || len(h) > 64 || strings.Trim(strings.ToLower(h), "0123456789abcdef") != "") {
		return nil, fmt.Errorf("last hash %q: want %d to 64 hex characters", h, LastHashPrefix)
	}
	v := newVerifier(opts)
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		err = v.file(name, f)
		f.Close() //nolint:errcheck // read-only file: a Close error loses nothing
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	return v.result(), nil
}

func newVerifier(opts VerifyOptions) *verifier {
	if opts.MaxBreaks <= 0 {
		opts.MaxBreaks = 100
	}
	opts.LastHash = strings.ToLower(opts.LastHash)
	return &verifier{opts: opts}
}

// maxLine bounds one record, far above MaxRecordBytes, so that files written
// before records were bounded still verify.
const maxLine = 64 << 20

func (v *verifier) breakAt(b Break) {
	v.res.NBreaks++
	if len(v.res.Breaks) < v.opts.MaxBreaks {
		v.res.Breaks = append(v.res.Breaks, b)
	}
}

// file checks the records of one file.
func (v *verifier) file(name string, r io.Reader) error {
	v.res.Files++
	br := bufio.NewReaderSize(r, 256<<10)
	firstInFile := true
	for n := 1; ; n++ {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return nil
		}
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, errLongLine) {
			return err
		}
		switch {
		case errors.Is(err, errLongLine):
			v.breakAt(Break{File: name, Line: n, Link: LinkFormat, Msg: fmt.Sprintf("a line longer than %d bytes is not a record", maxLine)})
			v.prev = ""
			continue
		case errors.Is(err, io.EOF):
			v.breakAt(Break{File: name, Line: n, Link: LinkFormat, Msg: "the file ends inside a record (no newline): it was cut here"})
			return nil
		}
		v.record(name, n, line, firstInFile)
		firstInFile = false
	}
}

var errLongLine = errors.New("line too long")

// readLine returns the next line without its newline, io.EOF with a final
// line that has no newline, or errLongLine after skipping a line over
// maxLine bytes.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxLine {
			line = nil
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, errLongLine
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, err
		}
	}
}

// record checks one line.
func (v *verifier) record(file string, n int, line []byte, firstInFile bool) {
	first := v.res.Records == 0 && v.prevLine == 0
	at := Break{File: file, Line: n}
	if len(bytes.TrimSpace(line)) == 0 {
		at.Link, at.Msg = LinkFormat, "an empty line is not a record: it was inserted"
		v.breakAt(at)
		v.prevLine = n
		return
	}
	c, err := parseLine(line)
	if err != nil {
		at.Link, at.Msg = LinkFormat, "not a chained audit record: "+err.Error()
		v.breakAt(at)
		v.prev, v.prevFile, v.prevLine = "", file, n
		return
	}
	at.ID = c.ID
	v.res.Records++
	defer func() {
		// Resynchronise on the stored hash, so that a changed record
		// does not also break the link of the next one.
		v.prev, v.prevFile, v.prevLine = c.Hash, file, n
		v.res.Last = c.Hash
		if v.opts.LastHash != "" && strings.HasPrefix(c.Hash, v.opts.LastHash) {
			v.found = true
		}
	}()
	if c.Computed != c.Hash {
		at.Link, at.Msg = LinkHash, "the record was changed: its hash does not match its content"
		v.breakAt(at)
		return
	}
	if (c.ChainStart != "") != (c.PrevHash == ZeroHash) {
		at.Link, at.Msg = LinkFormat, "chain_start and a zero prev_hash must come together"
		v.breakAt(at)
		return
	}
	if first {
		v.res.Anchor, v.res.AnchorStart = c.PrevHash, c.ChainStart
		return
	}
	if c.ChainStart != "" {
		v.res.Restarts++
		if !v.opts.AllowRestart {
			at.Link, at.Msg = LinkRestart, "the chain restarts here ("+c.ChainStart+"); the records before it are not linked to it"
			v.breakAt(at)
		}
		return
	}
	if v.prev == "" || c.PrevHash == v.prev {
		return // after an unreadable line the link cannot be checked
	}
	at.Link = LinkPrev
	if firstInFile {
		at.Msg = fmt.Sprintf("the first record does not link to the last record of %s: records were removed between the files, "+
			"or the files are not given oldest first (audit.log.2 audit.log.1 audit.log)", v.prevFile)
	} else {
		at.Msg = fmt.Sprintf("prev_hash is not the hash of the record before it (line %d): a record was removed before it, "+
			"or it was inserted or moved here", v.prevLine)
	}
	v.breakAt(at)
}

func (v *verifier) result() *Result {
	if v.opts.LastHash != "" && !v.found {
		v.breakAt(Break{Link: LinkLastHash, Msg: fmt.Sprintf("no record has the published hash %s: records were cut from the end, "+
			"or the hash belongs to other files", v.opts.LastHash)})
	}
	res := v.res
	return &res
}
