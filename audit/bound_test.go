package audit

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/promgate/promgate/config"
)

// sha256Hex is the reference hash of a string field's full value.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// netstringSHA256 is the reference hash of a list field's full value, as
// docs/audit.md defines it: every entry as a netstring, in order.
func netstringSHA256(l []string) string {
	h := sha256.New()
	for _, s := range l {
		fmt.Fprintf(h, "%d:%s,", len(s), s) //nolint:errcheck // hash.Hash.Write never returns an error
	}
	return hex.EncodeToString(h.Sum(nil))
}

func listBytes(l []string) int {
	n := 0
	for _, s := range l {
		n += len(s)
	}
	return n
}

// fileSize flushes tw and returns the size of its file.
func fileSize(t *testing.T, tw *testWriter, path string) int64 {
	t.Helper()
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// lastRecord returns the last line of path and the record it decodes to.
func lastRecord(t *testing.T, path string) (string, Record) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var line string
	for sc.Scan() {
		line = sc.Text()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var r Record
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("last line %q is not a record: %v", line, err)
	}
	return line, r
}

// matchFlood is the request of issue 15: 972 match[] values, 1 MiB in all.
func matchFlood() []string {
	match := make([]string, 972)
	for i := range match {
		match[i] = fmt.Sprintf(`{__name__=~"%s",job="j%03d"}`, strings.Repeat("a", 1060), i)
	}
	return match
}

// TestMatchFloodBounded writes the record of a denied 1 MiB match[] request
// through a file Writer: it adds at most 16 KiB to the file, proves the full
// list by its count, length and hash, and the chain still verifies.
func TestMatchFloodBounded(t *testing.T) {
	cfg := fileCfg(t.TempDir())
	tw := newTestWriter(t, cfg, slowFlush)
	tw.mustWrite(t, "before")
	before := fileSize(t, tw, cfg.Path)

	match := matchFlood()
	if n := listBytes(match); n < 1<<20 {
		t.Fatalf("the flood is %d bytes, want at least 1 MiB", n)
	}
	err := tw.Write(&Record{
		ID:         "flood",
		Identity:   &Identity{Method: "mtls", Subject: "mallory"},
		RemoteAddr: "192.0.2.7",
		Method:     "POST",
		Route:      "series",
		Path:       "/api/v1/series",
		Query:      match,
		Decision:   &Decision{Allow: false, Reason: "mallory may not read series", PolicyRevision: "sha256:5e8848"},
		Status:     403,
		// An error that quotes the request is as long as the request.
		Error: "forbidden: " + strings.Join(match, ","),
	})
	if err != nil {
		t.Fatal(err)
	}
	added := fileSize(t, tw, cfg.Path) - before
	t.Logf("a %d-byte match[] request added %d bytes to the audit file", listBytes(match), added)
	if added > 16<<10 || added > MaxRecordBytes {
		t.Errorf("the record added %d bytes, want at most %d", added, min(16<<10, MaxRecordBytes))
	}

	_, got := lastRecord(t, cfg.Path)
	if got.Truncated == nil || got.Truncated.Query == nil {
		t.Fatalf("record has no truncated.query: %+v", got.Truncated)
	}
	want := Cut{Bytes: listBytes(match), Count: len(match), SHA256: netstringSHA256(match)}
	if diff := cmp.Diff(want, *got.Truncated.Query); diff != "" {
		t.Errorf("truncated.query (-want +got):\n%s", diff)
	}
	if len(got.Query) == 0 || len(got.Query) > MaxListEntries || listBytes(got.Query) > MaxListBytes {
		t.Errorf("kept %d entries of %d bytes, want 1 to %d entries of at most %d bytes",
			len(got.Query), listBytes(got.Query), MaxListEntries, MaxListBytes)
	}
	for i, q := range got.Query {
		if q != match[i] && (i != len(got.Query)-1 || !strings.HasPrefix(match[i], q)) {
			t.Errorf("kept entry %d = %.40q..., not the request's entry %d", i, q, i)
		}
	}
	fullErr := "forbidden: " + strings.Join(match, ",")
	if want := (Cut{Bytes: len(fullErr), SHA256: sha256Hex(fullErr)}); got.Truncated.Error == nil || *got.Truncated.Error != want {
		t.Errorf("truncated.error = %+v, want %+v", got.Truncated.Error, want)
	}

	res, err := Verify(VerifyOptions{LastHash: tw.LastHash()}, cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Records != 2 {
		t.Errorf("Verify: %d records, breaks %v; want 2 records and no break", res.Records, res.Breaks)
	}
}

// TestTruncatedFields cuts each free-text field in turn: the record keeps a
// prefix that ends on a character boundary, and truncated names the full
// value's length and SHA-256.
func TestTruncatedFields(t *testing.T) {
	// Each long value puts a multi-byte character across the cap.
	euro := strings.Repeat("a", MaxFieldBytes-1) + "€" + strings.Repeat("b", 100)
	emoji := strings.Repeat("a", MaxFieldBytes-2) + "😀" + "tail"
	wantKept := map[string]string{
		euro:  strings.Repeat("a", MaxFieldBytes-1),
		emoji: strings.Repeat("a", MaxFieldBytes-2),
	}
	type field struct {
		name string
		set  func(r *Record, v string)
		get  func(r *Record) string
		cut  func(t *Truncation) *Cut
	}
	fields := []field{
		{"id", func(r *Record, v string) { r.ID = v }, func(r *Record) string { return r.ID }, func(t *Truncation) *Cut { return t.ID }},
		{"identity.method", func(r *Record, v string) { r.Identity.Method = v }, func(r *Record) string { return r.Identity.Method },
			func(t *Truncation) *Cut { return t.IdentityMethod }},
		{"identity.subject", func(r *Record, v string) { r.Identity.Subject = v }, func(r *Record) string { return r.Identity.Subject },
			func(t *Truncation) *Cut { return t.IdentitySubject }},
		{"identity.issuer", func(r *Record, v string) { r.Identity.Issuer = v }, func(r *Record) string { return r.Identity.Issuer },
			func(t *Truncation) *Cut { return t.IdentityIssuer }},
		{"identity.cert_fingerprint", func(r *Record, v string) { r.Identity.CertFingerprint = v },
			func(r *Record) string { return r.Identity.CertFingerprint }, func(t *Truncation) *Cut { return t.IdentityCertFingerprint }},
		{"remote_addr", func(r *Record, v string) { r.RemoteAddr = v }, func(r *Record) string { return r.RemoteAddr },
			func(t *Truncation) *Cut { return t.RemoteAddr }},
		{"method", func(r *Record, v string) { r.Method = v }, func(r *Record) string { return r.Method }, func(t *Truncation) *Cut { return t.Method }},
		{"route", func(r *Record, v string) { r.Route = v }, func(r *Record) string { return r.Route }, func(t *Truncation) *Cut { return t.Route }},
		{"path", func(r *Record, v string) { r.Path = v }, func(r *Record) string { return r.Path }, func(t *Truncation) *Cut { return t.Path }},
		{"decision.reason", func(r *Record, v string) { r.Decision.Reason = v }, func(r *Record) string { return r.Decision.Reason },
			func(t *Truncation) *Cut { return t.DecisionReason }},
		{"decision.policy_revision", func(r *Record, v string) { r.Decision.PolicyRevision = v },
			func(r *Record) string { return r.Decision.PolicyRevision }, func(t *Truncation) *Cut { return t.DecisionPolicyRevision }},
		{"error", func(r *Record, v string) { r.Error = v }, func(r *Record) string { return r.Error }, func(t *Truncation) *Cut { return t.Error }},
	}
	for _, f := range fields {
		for _, v := range []string{euro, emoji} {
			t.Run(fmt.Sprintf("%s/%d", f.name, len(v)), func(t *testing.T) {
				in := &Record{ID: "x", Identity: &Identity{}, Decision: &Decision{}}
				f.set(in, v)
				var got Record
				if err := json.Unmarshal([]byte(encodeOne(t, in)), &got); err != nil {
					t.Fatal(err)
				}
				kept := f.get(&got)
				if kept != wantKept[v] {
					t.Errorf("%s kept %d bytes, want the %d before the character across the cap", f.name, len(kept), len(wantKept[v]))
				}
				if !utf8.ValidString(kept) {
					t.Errorf("%s kept invalid UTF-8", f.name)
				}
				if got.Truncated == nil || f.cut(got.Truncated) == nil {
					t.Fatalf("no truncated.%s in %+v", f.name, got.Truncated)
				}
				want := Cut{Bytes: len(v), SHA256: sha256Hex(v)}
				if diff := cmp.Diff(want, *f.cut(got.Truncated)); diff != "" {
					t.Errorf("truncated.%s (-want +got):\n%s", f.name, diff)
				}
			})
		}
	}

	t.Run("client_request_id", func(t *testing.T) {
		in := strings.Repeat("a", 126) + "\n" + strings.Repeat("z", 50)
		escaped := strings.Repeat("a", 126) + `\x0a` + strings.Repeat("z", 50)
		var got Record
		if err := json.Unmarshal([]byte(encodeOne(t, &Record{ClientRequestID: in})), &got); err != nil {
			t.Fatal(err)
		}
		if want := strings.Repeat("a", 126); got.ClientRequestID != want {
			t.Errorf("client_request_id = %q, want %q (an escape is not split)", got.ClientRequestID, want)
		}
		want := Cut{Bytes: len(escaped), SHA256: sha256Hex(escaped)}
		if got.Truncated == nil || got.Truncated.ClientRequestID == nil || *got.Truncated.ClientRequestID != want {
			t.Errorf("truncated.client_request_id = %+v, want %+v (of the escaped value)", got.Truncated, want)
		}
	})

	type list struct {
		name string
		set  func(r *Record, v []string)
		get  func(r *Record) []string
		cut  func(t *Truncation) *Cut
	}
	lists := []list{
		{"query", func(r *Record, v []string) { r.Query = v }, func(r *Record) []string { return r.Query }, func(t *Truncation) *Cut { return t.Query }},
		{"enforced_query", func(r *Record, v []string) { r.EnforcedQuery = v }, func(r *Record) []string { return r.EnforcedQuery },
			func(t *Truncation) *Cut { return t.EnforcedQuery }},
		{"identity.groups", func(r *Record, v []string) { r.Identity.Groups = v }, func(r *Record) []string { return r.Identity.Groups },
			func(t *Truncation) *Cut { return t.IdentityGroups }},
	}
	many := make([]string, MaxListEntries+4)
	for i := range many {
		many[i] = fmt.Sprintf("up{i=\"%d\"}", i)
	}
	long := strings.Repeat("q", 3000)
	straddle := strings.Repeat("b", MaxListBytes-len(long)-1) + "€" + strings.Repeat("c", 500)
	listCases := []struct {
		name string
		in   []string
		want []string
	}{
		{"too many entries", many, many[:MaxListEntries]},
		{"too many bytes", []string{long, straddle, "dropped"}, []string{long, strings.Repeat("b", MaxListBytes-len(long)-1)}},
		{"nothing of the cut entry left", []string{strings.Repeat("q", MaxListBytes), "dropped"}, []string{strings.Repeat("q", MaxListBytes)}},
	}
	for _, l := range lists {
		for _, lc := range listCases {
			t.Run(l.name+"/"+lc.name, func(t *testing.T) {
				in := &Record{ID: "x", Identity: &Identity{}}
				l.set(in, lc.in)
				var got Record
				if err := json.Unmarshal([]byte(encodeOne(t, in)), &got); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(lc.want, l.get(&got)); diff != "" {
					t.Errorf("%s kept (-want +got):\n%s", l.name, diff)
				}
				if got.Truncated == nil || l.cut(got.Truncated) == nil {
					t.Fatalf("no truncated.%s in %+v", l.name, got.Truncated)
				}
				want := Cut{Bytes: listBytes(lc.in), Count: len(lc.in), SHA256: netstringSHA256(lc.in)}
				if diff := cmp.Diff(want, *l.cut(got.Truncated)); diff != "" {
					t.Errorf("truncated.%s (-want +got):\n%s", l.name, diff)
				}
			})
		}
	}

	t.Run("within the caps", func(t *testing.T) {
		in := &Record{
			ID: "x", Path: strings.Repeat("p", MaxFieldBytes),
			Query: []string{strings.Repeat("q", MaxListBytes)}, ClientRequestID: strings.Repeat("c", MaxClientRequestID),
		}
		var got Record
		if err := json.Unmarshal([]byte(encodeOne(t, in)), &got); err != nil {
			t.Fatal(err)
		}
		if got.Truncated != nil {
			t.Errorf("a record at its caps was cut: %+v", got.Truncated)
		}
		if got.Path != in.Path || !slices.Equal(got.Query, in.Query) || got.ClientRequestID != in.ClientRequestID {
			t.Error("a record at its caps was changed")
		}
	})
}

// TestNetstringExample pins the example of the Cut documentation.
func TestNetstringExample(t *testing.T) {
	c := listCut([]string{"up", "é"})
	if want := (Cut{Bytes: 4, Count: 2, SHA256: sha256Hex("2:up,2:é,")}); *c != want {
		t.Errorf("listCut = %+v, want %+v", *c, want)
	}
}

// oversizedRecord has every free-text field far over its cap, in characters
// that JSON escapes into six bytes, so that only the bound on the whole
// record keeps it small.
func oversizedRecord() *Record {
	ctl := strings.Repeat("\x01\u2028\xff", 20000)
	l := make([]string, 100)
	for i := range l {
		l[i] = fmt.Sprint(i) + ctl[:3000]
	}
	return &Record{
		Time: time.Date(2026, 3, 14, 16, 26, 53, 0, time.UTC), ID: ctl, ClientRequestID: ctl,
		TraceID:    "4bf92f3577b34da6a3ce929d0e0e4736",
		Identity:   &Identity{Method: ctl, Subject: ctl, Groups: l, Issuer: ctl, CertFingerprint: ctl},
		RemoteAddr: ctl, Method: ctl, Route: ctl, Path: ctl, Query: l, EnforcedQuery: l, DroppedParams: l, RefusedMatch: l, Clamped: l,
		SilenceOperation: ctl, SilenceID: ctl, SilenceMatchers: l, SilenceStartsAt: ctl, SilenceEndsAt: ctl,
		Decision: &Decision{Reason: ctl, PolicyRevision: ctl},
		Status:   math.MaxInt, Bytes: math.MinInt64, DurationMS: -math.MaxFloat64, Error: ctl,
	}
}

// TestRecordBound writes records whose fields, together or after JSON
// escaping, go far over MaxRecordBytes: every line stays within it, every
// cut is accounted for, and the chain verifies.
func TestRecordBound(t *testing.T) {
	cfg := fileCfg(t.TempDir())
	tw := newTestWriter(t, cfg, slowFlush)
	full := oversizedRecord()
	// Just over the bound together, each field within its own cap.
	wide := &Record{ID: "wide", Path: strings.Repeat("p", MaxFieldBytes), Error: strings.Repeat("e", MaxFieldBytes),
		Query: []string{strings.Repeat("q", MaxListBytes)}, EnforcedQuery: []string{strings.Repeat("f", MaxListBytes)}}
	for _, r := range []*Record{full, wide} {
		if err := tw.Write(r); err != nil {
			t.Fatal(err)
		}
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		line, got := lastRecord(t, cfg.Path)
		if len(line)+1 > MaxRecordBytes {
			t.Errorf("record %.10q is %d bytes, over %d", r.ID, len(line)+1, MaxRecordBytes)
		}
		if got.Truncated == nil {
			t.Fatalf("record %.10q was not cut", r.ID)
		}
		// Every cut names the full value.
		norm := normalize(r, time.Now())
		for i := range textFields {
			f := &textFields[i]
			c := *f.cut(got.Truncated)
			var want *Cut
			if f.list != nil {
				if l := f.list(&norm); l != nil && len(*l) > 0 {
					want = &Cut{Bytes: listBytes(*l), Count: len(*l), SHA256: netstringSHA256(*l)}
				}
			} else if s := f.str(&norm); s != nil && *s != "" {
				want = &Cut{Bytes: len(*s), SHA256: sha256Hex(*s)}
			}
			if c == nil {
				continue // not cut
			}
			if diff := cmp.Diff(want, c); diff != "" {
				t.Errorf("record %.10q, field %d: cut (-want +got):\n%s", r.ID, i, diff)
			}
		}
	}
	if _, got := lastRecord(t, cfg.Path); got.Path == "" || len(got.Query) == 0 || got.Truncated == nil || got.Truncated.ID != nil {
		t.Errorf("a record just over the bound lost more than it needed: %+v", got)
	}
	res, err := Verify(VerifyOptions{LastHash: tw.LastHash()}, cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Records != 2 {
		t.Errorf("Verify: %d records, breaks %v", res.Records, res.Breaks)
	}
}

// TestBoundAtZeroFits checks the arithmetic behind the bound: a record with
// every free-text field cut to nothing, every number at its longest and the
// longest chain_start fits in MaxRecordBytes.
func TestBoundAtZeroFits(t *testing.T) {
	b := &bounder{full: oversizedRecord()}
	rec := b.at(0)
	huge := &Cut{Bytes: math.MaxInt, Count: math.MaxInt, SHA256: ZeroHash}
	for i := range textFields {
		*textFields[i].cut(rec.Truncated) = huge
	}
	var e encoder
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	if err := e.encode(rec); err != nil {
		t.Fatal(err)
	}
	var c chain
	c.start = capChainStart(strings.Repeat("\x01", 10000))
	line, err := c.link(e.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(line) > MaxRecordBytes {
		t.Errorf("the longest fully cut record is %d bytes, over %d", len(line), MaxRecordBytes)
	}
	t.Logf("the longest fully cut record is %d bytes", len(line))
}

func TestCapChainStart(t *testing.T) {
	for _, s := range []string{StartStdout, strings.Repeat("é", 1000), strings.Repeat("\x01", 1000), strings.Repeat("\xff", 1000)} {
		got := capChainStart(s)
		m, err := marshalString(got)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) > maxChainStart || (got != s && len(m) < maxChainStart/2) || !strings.HasPrefix(s, got) {
			t.Errorf("capChainStart(%.20q...) = %.20q..., %d bytes of JSON", s, got, len(m))
		}
		if len(s) < maxChainStart/2 && got != s {
			t.Errorf("capChainStart(%q) = %q, want it unchanged", s, got)
		}
	}
}

func TestCutUTF8(t *testing.T) {
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"short", "abc", 5, "abc"},
		{"exact", "abc", 3, "abc"},
		{"ASCII", "abcdef", 4, "abcd"},
		{"zero", "abc", 0, ""},
		{"negative", "abc", -1, ""},
		{"two-byte split", "aé", 2, "a"},
		{"two-byte whole", "aéb", 3, "aé"},
		{"three-byte split after 1", "a€", 2, "a"},
		{"three-byte split after 2", "a€", 3, "a"},
		{"four-byte split after 3", "a😀", 4, "a"},
		{"four-byte whole", "a😀b", 5, "a😀"},
		{"only a character that does not fit", "😀", 3, ""},
		{"invalid bytes count as one", "a\xff\xfeb", 2, "a\xff"},
		{"stray continuation bytes", "a\x80\x80\x80\x80", 3, "a\x80\x80"},
		{"truncated sequence", "a\xe2\x82b", 2, "a\xe2"},
		{"U+FFFD itself", "a\uFFFDb", 2, "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cutUTF8(tc.s, tc.n); got != tc.want {
				t.Errorf("cutUTF8(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
			}
		})
	}
	// Every cut of valid UTF-8 is valid UTF-8, at most n bytes and at most
	// three bytes shorter.
	s := "aé€😀z" + strings.Repeat("ü😀", 5)
	for n := range len(s) + 2 {
		got := cutUTF8(s, n)
		if !strings.HasPrefix(s, got) || !utf8.ValidString(got) || len(got) > n || len(got) < min(n, len(s))-3 {
			t.Errorf("cutUTF8(%q, %d) = %q", s, n, got)
		}
	}
}

// TestTextFieldsCoverRecord checks that textFields names every string and
// string list of a record, each once, and a Truncation member for each.
func TestTextFieldsCoverRecord(t *testing.T) {
	// Give every string field a distinct value, then read them back through
	// textFields.
	r := &Record{Identity: &Identity{}, Decision: &Decision{}}
	// The chain fields are the writer's own. TraceID is not free text:
	// normalize keeps only a valid trace id (32 hex digits), so it never
	// needs a cut (TestTraceIDNeverCut).
	skip := map[string]bool{"ChainStart": true, "PrevHash": true, "Hash": true, "TraceID": true}
	var want []string
	var fill func(v reflect.Value, prefix string)
	fill = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			f, name := v.Field(i), prefix+v.Type().Field(i).Name
			switch {
			case skip[name]:
			case f.Kind() == reflect.String:
				f.SetString(name)
				want = append(want, name)
			case f.Type() == reflect.TypeFor[[]string]():
				f.Set(reflect.ValueOf([]string{name}))
				want = append(want, name)
			case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct && !f.IsNil():
				fill(f.Elem(), name+".")
			}
		}
	}
	fill(reflect.ValueOf(r).Elem(), "")
	var got []string
	var tr Truncation
	cuts := map[**Cut]bool{}
	for i := range textFields {
		f := &textFields[i]
		if f.list != nil {
			got = append(got, (*f.list(r))...)
		} else {
			got = append(got, *f.str(r))
		}
		cuts[f.cut(&tr)] = true
	}
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("textFields differ from the record's string fields (-want +got):\n%s", diff)
	}
	if n := reflect.TypeFor[Truncation]().NumField(); len(cuts) != n || len(textFields) != n {
		t.Errorf("%d textFields point at %d distinct Truncation members; Truncation has %d", len(textFields), len(cuts), n)
	}
}

// TestTraceIDNeverCut checks that trace_id needs no cap: the writer keeps a
// W3C trace id and drops anything else, however long.
func TestTraceIDNeverCut(t *testing.T) {
	for _, id := range []string{strings.Repeat("a", 10*MaxFieldBytes), "4bf92f3577b34da6a3ce929d0e0e4736\n{}"} {
		out := encodeOne(t, &Record{ID: "x", TraceID: id})
		if strings.Contains(out, "trace_id") || strings.Contains(out, "truncated") {
			t.Errorf("trace id %.40q: written as %s", id, out)
		}
	}
	out := encodeOne(t, &Record{ID: "x", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"})
	if !strings.Contains(out, `"id":"x","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","remote_addr"`) {
		t.Errorf("valid trace id not written after id: %s", out)
	}
}

func TestRecordTruncatedGolden(t *testing.T) {
	r := fullRecord()
	r.Query = make([]string, MaxListEntries+2)
	for i := range r.Query {
		r.Query[i] = fmt.Sprintf(`up{instance="%d"}`, i)
	}
	r.Decision.Reason = strings.Repeat("ab", MaxFieldBytes/2-1) + "é€"
	got := encodeOne(t, r)
	path := filepath.Join("testdata", "record_truncated.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("record line mismatch (-want +got):\n%s", diff)
	}
}

// BenchmarkWriteFlood measures the cost of bounding the record of a 1 MiB
// match[] request.
func BenchmarkWriteFlood(b *testing.B) {
	w, err := NewWriter(config.Audit{Path: "-", Mode: config.AuditBuffered}, nil, nil, withStdout(&lockedBuffer{}))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	r := &Record{ID: "flood", Route: "series", Query: matchFlood(), Status: 403}
	for b.Loop() {
		if err := w.Write(r); err != nil {
			b.Fatal(err)
		}
	}
}
