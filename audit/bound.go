package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The caps on one record (issue 15). A request can carry a megabyte of
// match[] values, a query, a header or an error that quotes them; written
// whole, a caller refused with 403 could grow the trail by a megabyte a
// request and rotate the records of their own earlier requests away within a
// minute. The writer cuts every free-text field instead, and records the full
// length and SHA-256 of what it cut (see Truncation), so that a record still
// proves what was asked.
//
// The caps apply to the bytes of a value before JSON escaping:
//
//	field                                        cap
//	every string field                           MaxFieldBytes (client_request_id: MaxClientRequestID)
//	every list (query, refused_match, ...)       MaxListEntries entries and MaxListBytes bytes together
//	the whole line, chain fields and newline     MaxRecordBytes
//
// When a record is still longer than MaxRecordBytes after the field caps
// (many long fields, or characters that JSON escapes into six bytes), the
// writer lowers the field cap, and with it the list cap (always twice the
// field cap), for every field at once, by bisection between 0 and
// MaxFieldBytes, until the line fits. At 0 every free-text field is empty and
// only its length and hash remain, which always fits.
const (
	// MaxFieldBytes is the most bytes a record keeps of one string field.
	MaxFieldBytes = 2 << 10
	// MaxListEntries is the most entries a record keeps of one list field.
	MaxListEntries = 16
	// MaxListBytes is the most bytes a record keeps of the entries of one
	// list field together: twice MaxFieldBytes, so that one long query
	// survives whole.
	MaxListBytes = 2 * MaxFieldBytes
	// MaxRecordBytes bounds one line of the audit file, hash chain and
	// newline included.
	MaxRecordBytes = 8 << 10
)

// maxChainStart bounds the JSON string of a chain_start reason, quotes
// included. The reason names a file and an error, both of which can be long.
const maxChainStart = 512

// chainReserve is what linking adds at most to an encoded record: its
// closing brace becomes chain_start, prev_hash, hash, the brace and a newline.
const chainReserve = len(`,"chain_start":`) + maxChainStart + len(`,"prev_hash":""`) + 2*sha256.Size +
	hashSuffixLen + len("\n") - len("}")

// maxBody is the most bytes an encoded record may have before linking.
const maxBody = MaxRecordBytes - chainReserve

// Truncation names the fields of a record that the writer cut, each with the
// length and hash of its full value. A field that was not cut is absent.
// Nested fields are named by their path, such as identity.subject.
type Truncation struct {
	ID                      *Cut `json:"id,omitempty"`
	ClientRequestID         *Cut `json:"client_request_id,omitempty"`
	IdentityMethod          *Cut `json:"identity.method,omitempty"`
	IdentitySubject         *Cut `json:"identity.subject,omitempty"`
	IdentityGroups          *Cut `json:"identity.groups,omitempty"`
	IdentityIssuer          *Cut `json:"identity.issuer,omitempty"`
	IdentityCertFingerprint *Cut `json:"identity.cert_fingerprint,omitempty"`
	RemoteAddr              *Cut `json:"remote_addr,omitempty"`
	Method                  *Cut `json:"method,omitempty"`
	Route                   *Cut `json:"route,omitempty"`
	Path                    *Cut `json:"path,omitempty"`
	Query                   *Cut `json:"query,omitempty"`
	EnforcedQuery           *Cut `json:"enforced_query,omitempty"`
	DroppedParams           *Cut `json:"dropped_params,omitempty"`
	RefusedMatch            *Cut `json:"refused_match,omitempty"`
	Clamped                 *Cut `json:"clamped,omitempty"`
	SilenceOperation        *Cut `json:"silence_operation,omitempty"`
	SilenceID               *Cut `json:"silence_id,omitempty"`
	SilenceMatchers         *Cut `json:"silence_matchers,omitempty"`
	SilenceStartsAt         *Cut `json:"silence_starts_at,omitempty"`
	SilenceEndsAt           *Cut `json:"silence_ends_at,omitempty"`
	DecisionReason          *Cut `json:"decision.reason,omitempty"`
	DecisionPolicyRevision  *Cut `json:"decision.policy_revision,omitempty"`
	Error                   *Cut `json:"error,omitempty"`
}

// Cut describes the full value of a field that a record holds only the
// beginning of. The hash input is defined so that a verifier holding the
// request can recompute it:
//
//	field   Bytes                      Count     SHA256 over
//	string  len(value)                 absent    the value's bytes
//	list    sum of len(entry)          entries   every entry as a netstring, in order: len(entry) in decimal, ":", entry, ","
//
// The value is the one the writer would have written without the cap: the
// error after Redact, the client request ID after escaping (see
// SanitizeClientRequestID), every other field as the caller gave it, invalid
// UTF-8 included (JSON shows such bytes as U+FFFD; the hash covers the bytes).
// For example the list ["up", "é"] hashes the 9 bytes `2:up,2:é,`.
type Cut struct {
	// Bytes is the length of the full value in bytes.
	Bytes int `json:"bytes"`
	// Count is the number of entries of a full list.
	Count int `json:"count,omitempty"`
	// SHA256 is the lowercase hex SHA-256 of the full value.
	SHA256 string `json:"sha256"`
}

// textField is a free-text field of a record: a string (str) or a list of
// strings (list), and where its Cut goes.
type textField struct {
	str  func(*Record) *string // nil when the record has no such field (no identity)
	list func(*Record) *[]string
	cut  func(*Truncation) **Cut
	// max is the field's own cap when lower than MaxFieldBytes, and cutTo
	// cuts its value to n bytes.
	max   int
	cutTo func(s string, n int) string
}

// textFields are every free-text field of Record, Identity and Decision.
// TestTextFieldsCoverRecord keeps the list complete.
var textFields = []textField{
	{str: func(r *Record) *string { return &r.ID }, cut: func(t *Truncation) **Cut { return &t.ID }},
	{
		str: func(r *Record) *string { return &r.ClientRequestID }, cut: func(t *Truncation) **Cut { return &t.ClientRequestID },
		max: MaxClientRequestID, cutTo: cutEscaped,
	},
	{str: identityField(func(id *Identity) *string { return &id.Method }), cut: func(t *Truncation) **Cut { return &t.IdentityMethod }},
	{str: identityField(func(id *Identity) *string { return &id.Subject }), cut: func(t *Truncation) **Cut { return &t.IdentitySubject }},
	{
		list: func(r *Record) *[]string {
			if r.Identity == nil {
				return nil
			}
			return &r.Identity.Groups
		},
		cut: func(t *Truncation) **Cut { return &t.IdentityGroups },
	},
	{str: identityField(func(id *Identity) *string { return &id.Issuer }), cut: func(t *Truncation) **Cut { return &t.IdentityIssuer }},
	{
		str: identityField(func(id *Identity) *string { return &id.CertFingerprint }),
		cut: func(t *Truncation) **Cut { return &t.IdentityCertFingerprint },
	},
	{str: func(r *Record) *string { return &r.RemoteAddr }, cut: func(t *Truncation) **Cut { return &t.RemoteAddr }},
	{str: func(r *Record) *string { return &r.Method }, cut: func(t *Truncation) **Cut { return &t.Method }},
	{str: func(r *Record) *string { return &r.Route }, cut: func(t *Truncation) **Cut { return &t.Route }},
	{str: func(r *Record) *string { return &r.Path }, cut: func(t *Truncation) **Cut { return &t.Path }},
	{list: func(r *Record) *[]string { return &r.Query }, cut: func(t *Truncation) **Cut { return &t.Query }},
	{list: func(r *Record) *[]string { return &r.EnforcedQuery }, cut: func(t *Truncation) **Cut { return &t.EnforcedQuery }},
	{list: func(r *Record) *[]string { return &r.DroppedParams }, cut: func(t *Truncation) **Cut { return &t.DroppedParams }},
	{list: func(r *Record) *[]string { return &r.RefusedMatch }, cut: func(t *Truncation) **Cut { return &t.RefusedMatch }},
	{list: func(r *Record) *[]string { return &r.Clamped }, cut: func(t *Truncation) **Cut { return &t.Clamped }},
	{str: func(r *Record) *string { return &r.SilenceOperation }, cut: func(t *Truncation) **Cut { return &t.SilenceOperation }},
	{str: func(r *Record) *string { return &r.SilenceID }, cut: func(t *Truncation) **Cut { return &t.SilenceID }},
	{list: func(r *Record) *[]string { return &r.SilenceMatchers }, cut: func(t *Truncation) **Cut { return &t.SilenceMatchers }},
	{str: func(r *Record) *string { return &r.SilenceStartsAt }, cut: func(t *Truncation) **Cut { return &t.SilenceStartsAt }},
	{str: func(r *Record) *string { return &r.SilenceEndsAt }, cut: func(t *Truncation) **Cut { return &t.SilenceEndsAt }},
	{str: decisionField(func(d *Decision) *string { return &d.Reason }), cut: func(t *Truncation) **Cut { return &t.DecisionReason }},
	{
		str: decisionField(func(d *Decision) *string { return &d.PolicyRevision }),
		cut: func(t *Truncation) **Cut { return &t.DecisionPolicyRevision },
	},
	{str: func(r *Record) *string { return &r.Error }, cut: func(t *Truncation) **Cut { return &t.Error }},
}

func identityField(f func(*Identity) *string) func(*Record) *string {
	return func(r *Record) *string {
		if r.Identity == nil {
			return nil
		}
		return f(r.Identity)
	}
}

func decisionField(f func(*Decision) *string) func(*Record) *string {
	return func(r *Record) *string {
		if r.Decision == nil {
			return nil
		}
		return f(r.Decision)
	}
}

// limit returns the field's cap at field cap c.
func (f *textField) limit(c int) int {
	if f.list != nil {
		return 2 * c
	}
	if f.max > 0 {
		return min(c, f.max)
	}
	return c
}

// exceeds reports whether some field of r is over its cap at field cap c.
func exceeds(r *Record, c int) bool {
	for i := range textFields {
		f := &textFields[i]
		if f.list != nil {
			l := f.list(r)
			if l == nil {
				continue
			}
			if len(*l) > MaxListEntries {
				return true
			}
			n := 0
			for _, s := range *l {
				n += len(s)
			}
			if n > f.limit(c) {
				return true
			}
		} else if s := f.str(r); s != nil && len(*s) > f.limit(c) {
			return true
		}
	}
	return false
}

// encodeBounded encodes the normalized record full with every free-text
// field cut to its cap, so that the linked line is at most MaxRecordBytes
// long. It does not modify full.
func (e *encoder) encodeBounded(full *Record) error {
	fits := func() bool { return len(e.bytes()) <= maxBody }
	if !exceeds(full, MaxFieldBytes) {
		if err := e.encode(full); err != nil || fits() {
			return err
		}
	}
	b := &bounder{full: full}
	if err := e.encode(b.at(MaxFieldBytes)); err != nil || fits() {
		return err
	}
	// lo is taken to fit (checked below), hi does not.
	lo, hi := 0, MaxFieldBytes
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if err := e.encode(b.at(mid)); err != nil {
			return err
		}
		if fits() {
			lo = mid
		} else {
			hi = mid
		}
	}
	if err := e.encode(b.at(lo)); err != nil {
		return err
	}
	if !fits() {
		// Every free-text field is empty: only a bug gets here.
		return fmt.Errorf("record is %d bytes with every field cut, over the bound of %d", len(e.bytes()), maxBody)
	}
	return nil
}

// bounder makes copies of a record cut at a given field cap. The cuts of
// the full values are computed once, when first needed.
type bounder struct {
	full  *Record
	out   Record
	id    Identity
	dec   Decision
	t     Truncation
	cuts  []*Cut     // by index in textFields
	lists [][]string // kept entries, by index in textFields
}

// at returns the record cut at field cap c. It is valid until the next
// call.
func (b *bounder) at(c int) *Record {
	if b.cuts == nil {
		b.cuts = make([]*Cut, len(textFields))
		b.lists = make([][]string, len(textFields))
	}
	b.out, b.t = *b.full, Truncation{}
	if b.full.Identity != nil {
		b.id = *b.full.Identity
		b.out.Identity = &b.id
	}
	if b.full.Decision != nil {
		b.dec = *b.full.Decision
		b.out.Decision = &b.dec
	}
	cut := false
	for i := range textFields {
		f := &textFields[i]
		if f.list != nil {
			l := f.list(b.full)
			if l == nil {
				continue
			}
			kept, short := keepList(b.lists[i], *l, MaxListEntries, f.limit(c))
			b.lists[i] = kept
			if !short {
				continue
			}
			*f.list(&b.out) = kept
			if b.cuts[i] == nil {
				b.cuts[i] = listCut(*l)
			}
		} else {
			s := f.str(b.full)
			if s == nil || len(*s) <= f.limit(c) {
				continue
			}
			cutTo := cutUTF8
			if f.cutTo != nil {
				cutTo = f.cutTo
			}
			*f.str(&b.out) = cutTo(*s, f.limit(c))
			if b.cuts[i] == nil {
				b.cuts[i] = &Cut{Bytes: len(*s), SHA256: sha256String(*s)}
			}
		}
		*f.cut(&b.t) = b.cuts[i]
		cut = true
	}
	b.out.Truncated = nil
	if cut {
		b.out.Truncated = &b.t
	}
	return &b.out
}

// keepList appends to dst[:0] the entries of full that fit in n entries and
// budget bytes: whole entries in order, then the first one that does not fit
// cut to the bytes that remain, when any of it remains. short reports that
// dst holds less than full.
func keepList(dst, full []string, n, budget int) (kept []string, short bool) {
	kept = dst[:0]
	for i, s := range full {
		if i == n {
			return kept, true
		}
		if len(s) > budget {
			if s = cutUTF8(s, budget); s != "" {
				kept = append(kept, s)
			}
			return kept, true
		}
		kept = append(kept, s)
		budget -= len(s)
	}
	return kept, false
}

// listCut returns the Cut of a full list: its total bytes, its entries and
// the SHA-256 of its netstrings.
func listCut(l []string) *Cut {
	h := sha256.New()
	c := &Cut{Count: len(l)}
	var ns []byte // one netstring at a time, so that entries are not copied one by one
	for _, s := range l {
		c.Bytes += len(s)
		ns = strconv.AppendInt(ns[:0], int64(len(s)), 10)
		ns = append(append(append(ns, ':'), s...), ',')
		h.Write(ns)
	}
	c.SHA256 = hex.EncodeToString(h.Sum(nil))
	return c
}

// sha256String returns the hex SHA-256 of s without copying s whole.
func sha256String(s string) string {
	h := sha256.New()
	var buf [4 << 10]byte
	for len(s) > 0 {
		n := copy(buf[:], s)
		h.Write(buf[:n])
		s = s[n:]
	}
	return hex.EncodeToString(h.Sum(nil))
}

// cutUTF8 returns the longest prefix of s of at most n bytes that does not
// end inside a UTF-8 encoded character. A byte that is not part of valid
// UTF-8 counts as a character of its own.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	// Only the nearest byte before n that starts a character can begin one
	// that straddles n.
	for j := n - 1; j >= 0 && j > n-utf8.UTFMax; j-- {
		if !utf8.RuneStart(s[j]) {
			continue
		}
		if r, size := utf8.DecodeRuneInString(s[j:]); j+size > n && (r != utf8.RuneError || size > 1) {
			return s[:j]
		}
		break
	}
	return s[:n]
}

// cutEscaped cuts a client request ID escaped by escapeClientRequestID to at
// most n bytes without splitting a character or an escape.
func cutEscaped(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for i < len(s) {
		size := 1
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == 'x':
			size = 4
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == 'u':
			size = strings.IndexByte(s[i:], '}') + 1
			if size == 0 {
				size = len(s) - i
			}
		case s[i] == '\\':
			size = 2
		default:
			_, size = utf8.DecodeRuneInString(s[i:])
		}
		if i+size > n {
			break
		}
		i += size
	}
	return s[:i]
}

// capChainStart cuts a chain_start reason so that its JSON string is at
// most maxChainStart bytes, the budget chainReserve keeps for it.
func capChainStart(s string) string {
	for {
		m, _ := marshalString(s) // a string always encodes
		if len(m) <= maxChainStart {
			return s
		}
		s = cutUTF8(s, min(len(s)-1, len(s)*maxChainStart/len(m)))
	}
}
