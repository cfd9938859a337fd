package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
)

// ZeroHash is the PrevHash of a record that starts a chain (ChainStart set).
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Reasons a Writer starts a new chain, written in the ChainStart field of the
// first record.
const (
	StartNewTrail = "new audit trail: no earlier audit file"
	StartStdout   = "new chain: audit records go to stdout, where earlier records cannot be read back"
)

// hashMember is what precedes the hash at the end of every line.
const hashMember = `,"hash":"`

// hashSuffixLen is the length of `,"hash":"<64 hex>"}` at the end of a line.
const hashSuffixLen = len(hashMember) + 2*sha256.Size + len(`"}`)

// chain links records: it holds the last hash and computes the next one.
// It is not safe for concurrent use; the Writer's mutex guards it.
type chain struct {
	last  [sha256.Size]byte
	start string // ChainStart of the next record; "" to link to last
	h     hash.Hash
	line  []byte
}

// link turns body, the JSON object of a record without its chain fields (as
// encoding/json writes it, without the newline), into the chained line with
// its newline, and makes it the last record. The returned slice is valid
// until the next call.
//
// The line is body without its closing brace, then chain_start when the
// record starts a chain, then prev_hash, then hash: exactly what
// encoding/json writes for the Record with these fields set, because they
// are its last fields. The hash covers the hex of prev_hash followed by the
// line up to and without `,"hash":...`, closed by a brace.
func (c *chain) link(body []byte) ([]byte, error) {
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return nil, errors.New("record did not encode as a JSON object")
	}
	var prev [2 * sha256.Size]byte
	hex.Encode(prev[:], c.last[:])
	b := append(c.line[:0], body[:len(body)-1]...)
	if c.start != "" {
		b = append(b, `,"chain_start":`...)
		s, err := marshalString(c.start)
		if err != nil {
			return nil, err
		}
		b = append(b, s...)
	}
	b = append(b, `,"prev_hash":"`...)
	b = append(b, prev[:]...)
	b = append(b, `"}`...)
	if c.h == nil {
		c.h = sha256.New()
	}
	c.h.Reset()
	c.h.Write(prev[:])
	c.h.Write(b)
	var sum [sha256.Size]byte
	c.h.Sum(sum[:0])
	b = b[:len(b)-1]
	b = append(b, hashMember...)
	b = hex.AppendEncode(b, sum[:])
	b = append(b, "\"}\n"...)
	c.line = b
	c.last = sum
	c.start = ""
	return b, nil
}

// marshalString encodes s as a JSON string without HTML escaping, as the
// Writer's encoder does.
func marshalString(s string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// chained is one line of an audit file taken apart.
type chained struct {
	ID         string
	PrevHash   string
	ChainStart string
	Hash       string // as stored
	Computed   string // SHA-256 of PrevHash and the canonical JSON
}

// parseLine takes one line (without its newline) apart and recomputes its
// hash. It fails when the line is not a chained record: no trailing hash
// member, not a JSON object, or a prev_hash that is not 64 lowercase hex
// characters. A changed record parses; its Computed differs from its Hash.
func parseLine(line []byte) (chained, error) {
	var c chained
	if len(line) < hashSuffixLen+2 {
		return c, errors.New("too short to be a chained record")
	}
	cut := len(line) - hashSuffixLen
	tail := line[cut:]
	if !bytes.HasPrefix(tail, []byte(hashMember)) || !bytes.HasSuffix(tail, []byte(`"}`)) {
		return c, errors.New(`it does not end with a "hash" member`)
	}
	c.Hash = string(tail[len(hashMember) : len(hashMember)+2*sha256.Size])
	if !isHex(c.Hash) {
		return c, errors.New("its hash is not 64 lowercase hex characters")
	}
	canonical := make([]byte, 0, cut+1)
	canonical = append(append(canonical, line[:cut]...), '}')
	var fields struct {
		ID         string `json:"id"`
		PrevHash   string `json:"prev_hash"`
		ChainStart string `json:"chain_start"`
	}
	if err := json.Unmarshal(canonical, &fields); err != nil {
		return c, fmt.Errorf("it is not a JSON object: %w", err)
	}
	if !isHex(fields.PrevHash) {
		return c, errors.New("its prev_hash is not 64 lowercase hex characters")
	}
	c.ID, c.PrevHash, c.ChainStart = fields.ID, fields.PrevHash, fields.ChainStart
	h := sha256.New()
	h.Write([]byte(c.PrevHash))
	h.Write(canonical)
	c.Computed = hex.EncodeToString(h.Sum(nil))
	return c, nil
}

func isHex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// maxTail is the most bytes resume reads back from the end of a file to find
// its last line. A longer last line counts as unreadable.
const maxTail = 16 << 20

// errNoRecord means a file does not exist or holds no bytes.
var errNoRecord = errors.New("no record")

// lastLine returns the last line of the file at path, without its newline.
// It returns errNoRecord for a missing or empty file, and an error when the
// file does not end with a newline (a record cut short) or its last line is
// longer than maxTail.
func lastLine(path string) ([]byte, error) {
	return lastLineWithin(path, maxTail)
}

// lastLineWithin is lastLine reading at most limit bytes of the file's end.
func lastLineWithin(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoRecord
	}
	if err != nil {
		return nil, err
	}
	defer f.Close() //nolint:errcheck // read-only file: a Close error loses nothing
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size == 0 {
		return nil, errNoRecord
	}
	n := min(size, limit)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if buf[len(buf)-1] != '\n' {
		return nil, errors.New("the file ends inside a record (no newline)")
	}
	buf = buf[:len(buf)-1]
	i := bytes.LastIndexByte(buf, '\n')
	if i < 0 && n < size {
		return nil, fmt.Errorf("the last record is longer than %d bytes", limit)
	}
	return buf[i+1:], nil
}

// resume finds where the chain of the audit file at path goes on: the hash of
// the last record of the file or, when the file is missing or empty, of
// path.1 (the file rotated last). It returns the hash to link to, or
// ZeroHash and the ChainStart reason of a new chain, and whether the previous
// record was unreadable (which the caller logs as a warning).
//
// A last record that cannot be read, does not parse, has no hash or whose
// hash does not match its content cannot be linked to: the chain restarts,
// and the reason names the file and what was wrong.
func resume(path string) (last [sha256.Size]byte, start string, broken bool) {
	for _, p := range []string{path, path + ".1"} {
		line, err := lastLine(p)
		if errors.Is(err, errNoRecord) {
			continue
		}
		if err == nil {
			var c chained
			if c, err = parseLine(line); err == nil && c.Computed != c.Hash {
				err = errors.New("its hash does not match its content")
			}
			if err == nil {
				if _, err := hex.Decode(last[:], []byte(c.Hash)); err == nil {
					return last, "", false
				}
			}
		}
		return [sha256.Size]byte{}, fmt.Sprintf("chain restarted: the last record of %s cannot be linked to: %v", p, err), true
	}
	return [sha256.Size]byte{}, StartNewTrail, false
}
