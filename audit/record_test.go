package audit

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/promgate/promgate/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// lockedBuffer is a bytes.Buffer safe for the flush loop and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func withStdout(out *lockedBuffer) Option {
	return func(w *Writer) { w.stdout = out }
}

// encodeOne writes r through a stdout Writer and returns the output.
func encodeOne(t *testing.T, r *Record) string {
	t.Helper()
	var out lockedBuffer
	w, err := NewWriter(config.Audit{Path: "-"}, nil, nil, withStdout(&out))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(r); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.String()
}

// fullRecord sets every field, so that the golden line shows them all.
func fullRecord() *Record {
	return &Record{
		Time:            time.Date(2026, 3, 14, 16, 26, 53, 589793238, time.FixedZone("CET", 3600)),
		ID:              "01JQ6Z0S3TQ8W4YF5H9B2M7X1C",
		ClientRequestID: "grafana-\x1b[31m-\xff",
		TraceID:         "4bf92f3577b34da6a3ce929d0e0e4736",
		Identity: &Identity{
			Method:          "oidc",
			Subject:         "alice@example.com",
			Groups:          []string{"team-a", "oncall"},
			Issuer:          "https://idp.example",
			CertFingerprint: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		},
		RemoteAddr:       "10.0.0.7",
		Method:           "POST",
		Route:            "query_range",
		Path:             "/api/v1/query_range",
		Query:            []string{`sum(rate(http_requests_total{job="api"}[5m])) > 0 & <b>`},
		EnforcedQuery:    []string{`sum(rate(http_requests_total{job="api",namespace=~"team-a|team-a-staging"}[5m])) > 0 & <b>`},
		DroppedParams:    []string{"nocache"},
		RefusedMatch:     []string{`{namespace="team-b"}`},
		Clamped:          []string{"start=1773502013.000"},
		ResultsCache:     &ResultsCache{PartsHit: 5, PartsFetched: 1},
		Coalesced:        true,
		SilenceOperation: "create", SilenceID: "9c4f-1", SilenceMatchers: []string{`namespace="team-a"`},
		SilenceStartsAt: "2026-03-14T15:26:53Z", SilenceEndsAt: "2026-03-14T17:26:53Z",
		Decision: &Decision{
			Allow:          false,
			Reason:         "team-a may read its namespaces",
			PolicyRevision: "sha256:5e8848",
		},
		Status:     403,
		Bytes:      142,
		DurationMS: 3.25,
		Error:      "upstream said 401 to Authorization: Bearer abcDEF123",
	}
}

func TestRecordGolden(t *testing.T) {
	got := encodeOne(t, fullRecord())
	path := filepath.Join("testdata", "record.golden")
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

// jsonKeys returns the JSON names of t's fields, failing on any field type
// that could carry free-form data (maps, interfaces).
func jsonKeys(t *testing.T, typ reflect.Type) []string {
	t.Helper()
	var keys []string
	for f := range typ.Fields() {
		switch f.Type.Kind() {
		case reflect.Map, reflect.Interface:
			t.Errorf("%s.%s is a %s: records must have only typed fields", typ.Name(), f.Name, f.Type.Kind())
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			t.Errorf("%s.%s has no JSON name", typ.Name(), f.Name)
			continue
		}
		keys = append(keys, name)
	}
	slices.Sort(keys)
	return keys
}

// TestRecordFields pins the record's fields to DESIGN.md's list, plus
// client_request_id, trace_id, error, truncated and chain_start, both in the
// types and in the output.
func TestRecordFields(t *testing.T) {
	documented := map[string][]string{
		"record": {"bytes", "chain_start", "clamped", "client_request_id", "coalesced", "decision", "dropped_params", "duration_ms", "enforced_query", "error", "hash", "id",
			"identity", "method", "path", "prev_hash", "query", "refused_match", "remote", "remote_addr", "results_cache", "route",
			"silence_ends_at", "silence_id", "silence_matchers", "silence_operation", "silence_starts_at", "status", "time", "trace_id", "truncated"},
		"identity":      {"cert_fingerprint", "groups", "issuer", "method", "subject"},
		"decision":      {"allow", "policy_revision", "reason"},
		"results_cache": {"parts_fetched", "parts_hit"},
		"truncated": {"clamped", "client_request_id", "decision.policy_revision", "decision.reason", "dropped_params", "enforced_query", "error", "id",
			"identity.cert_fingerprint", "identity.groups", "identity.issuer", "identity.method", "identity.subject",
			"method", "path", "query", "refused_match", "remote_addr", "route",
			"silence_ends_at", "silence_id", "silence_matchers", "silence_operation", "silence_starts_at"},
		"cut": {"bytes", "count", "sha256"},
	}
	types := map[string]reflect.Type{
		"record":        reflect.TypeFor[Record](),
		"identity":      reflect.TypeFor[Identity](),
		"decision":      reflect.TypeFor[Decision](),
		"results_cache": reflect.TypeFor[ResultsCache](),
		"truncated":     reflect.TypeFor[Truncation](),
		"cut":           reflect.TypeFor[Cut](),
	}
	for name, typ := range types {
		if diff := cmp.Diff(documented[name], jsonKeys(t, typ)); diff != "" {
			t.Errorf("%s fields differ from the documented ones (-want +got):\n%s", name, diff)
		}
	}

	keysOf := func(t *testing.T, raw []byte) []string {
		t.Helper()
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("unmarshal %s: %v", raw, err)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return keys
	}

	t.Run("full", func(t *testing.T) {
		line := []byte(encodeOne(t, fullRecord()))
		// Only a record with a field over its cap has truncated, and only
		// a remote write or read record has remote (TestRemoteRecord).
		want := slices.DeleteFunc(slices.Clone(documented["record"]), func(k string) bool { return k == "truncated" || k == "remote" })
		if diff := cmp.Diff(want, keysOf(t, line)); diff != "" {
			t.Errorf("record keys (-want +got):\n%s", diff)
		}
		var nested struct {
			Identity json.RawMessage `json:"identity"`
			Decision json.RawMessage `json:"decision"`
		}
		if err := json.Unmarshal(line, &nested); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(documented["identity"], keysOf(t, nested.Identity)); diff != "" {
			t.Errorf("identity keys (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(documented["decision"], keysOf(t, nested.Decision)); diff != "" {
			t.Errorf("decision keys (-want +got):\n%s", diff)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		line := []byte(encodeOne(t, oversizedRecord()))
		want := slices.DeleteFunc(slices.Clone(documented["record"]), func(k string) bool {
			return k == "remote" || k == "coalesced" || k == "results_cache"
		})
		if diff := cmp.Diff(want, keysOf(t, line)); diff != "" {
			t.Errorf("record keys (-want +got):\n%s", diff)
		}
		var nested struct {
			Truncated map[string]json.RawMessage `json:"truncated"`
		}
		if err := json.Unmarshal(line, &nested); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k, v := range nested.Truncated {
			keys = append(keys, k)
			want := []string{"bytes", "sha256"}
			if k == "query" || k == "enforced_query" || k == "clamped" || k == "dropped_params" || k == "refused_match" || k == "identity.groups" || k == "silence_matchers" {
				want = documented["cut"]
			}
			if diff := cmp.Diff(want, keysOf(t, v)); diff != "" {
				t.Errorf("truncated.%s keys (-want +got):\n%s", k, diff)
			}
		}
		slices.Sort(keys)
		if diff := cmp.Diff(documented["truncated"], keys); diff != "" {
			t.Errorf("truncated keys (-want +got):\n%s", diff)
		}
	})
	t.Run("minimal", func(t *testing.T) {
		line := []byte(encodeOne(t, &Record{ID: "x"}))
		want := []string{"bytes", "chain_start", "duration_ms", "hash", "id", "method", "path", "prev_hash", "remote_addr", "route", "status", "time"}
		if diff := cmp.Diff(want, keysOf(t, line)); diff != "" {
			t.Errorf("minimal record keys (-want +got):\n%s", diff)
		}
	})
}

func TestWriteNormalizes(t *testing.T) {
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	tests := []struct {
		name string
		in   Record
		want Record
	}{
		{
			name: "zone converted to UTC",
			in:   Record{Time: time.Date(2026, 1, 2, 4, 4, 5, 6, time.FixedZone("CET", 3600))},
			want: Record{Time: fixed},
		},
		{
			name: "zero time becomes now",
			in:   Record{},
			want: Record{Time: fixed},
		},
		{
			name: "time beyond JSON's range becomes now",
			in:   Record{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
			want: Record{Time: fixed},
		},
		{
			name: "non-finite duration becomes 0",
			in:   Record{Time: fixed, DurationMS: float64Inf()},
			want: Record{Time: fixed},
		},
		{
			name: "client request ID escaped",
			in:   Record{Time: fixed, ClientRequestID: "a\nb"},
			want: Record{Time: fixed, ClientRequestID: `a\x0ab`},
		},
		{
			name: "trace id kept",
			in:   Record{Time: fixed, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"},
			want: Record{Time: fixed, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"},
		},
		{
			name: "trace id not W3C dropped",
			in:   Record{Time: fixed, TraceID: "4BF92F3577B34DA6A3CE929D0E0E4736"},
			want: Record{Time: fixed},
		},
		{
			name: "all-zero trace id dropped",
			in:   Record{Time: fixed, TraceID: "00000000000000000000000000000000"},
			want: Record{Time: fixed},
		},
		{
			name: "error redacted",
			in:   Record{Time: fixed, Error: "token from https://bob:hunter2@idp.example/x refused"}, //nolint:gosec // G101: a made-up credential; the test checks that it is redacted
			want: Record{Time: fixed, Error: "token from https://<redacted>@idp.example/x refused"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out lockedBuffer
			w, err := NewWriter(config.Audit{Path: "-"}, nil, nil, withStdout(&out), withClock(func() time.Time { return fixed.In(time.Local) }))
			if err != nil {
				t.Fatal(err)
			}
			in := tc.in
			if err := w.Write(&in); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if diff := cmp.Diff(tc.in, in); diff != "" {
				t.Errorf("Write modified its argument (-before +after):\n%s", diff)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var got Record
			if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
				t.Fatalf("unmarshal %q: %v", out.String(), err)
			}
			if !strings.Contains(out.String(), `"time":"`+tc.want.Time.Format(time.RFC3339Nano)+`"`) {
				t.Errorf("line %s does not carry the UTC RFC 3339 time %s", out.String(), tc.want.Time.Format(time.RFC3339Nano))
			}
			got.ChainStart, got.PrevHash, got.Hash = "", "", ""
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("written record (-want +got):\n%s", diff)
			}
		})
	}
}

func float64Inf() float64 {
	var zero float64
	return 1 / zero
}

// TestOneLinePerRecord checks that no field value can break the line and forge
// a record.
func TestOneLinePerRecord(t *testing.T) {
	forged := "x\n{\"id\":\"forged\"}\r\n\u2028\u2029\x00"
	r := &Record{
		ID: forged, ClientRequestID: forged, RemoteAddr: forged, Method: forged, Route: forged,
		Path: forged, Query: []string{forged}, EnforcedQuery: []string{forged}, Error: forged,
		Identity: &Identity{Method: forged, Subject: forged, Groups: []string{forged}, Issuer: forged, CertFingerprint: forged},
		Decision: &Decision{Reason: forged, PolicyRevision: forged},
	}
	out := encodeOne(t, r)
	if n := strings.Count(out, "\n"); n != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("output has %d newlines, want exactly one at the end: %q", n, out)
	}
	for _, c := range []string{"\r", "\u2028", "\u2029", "\x00"} {
		if strings.Contains(out, c) {
			t.Errorf("output contains raw %q: %q", c, out)
		}
	}
	var got Record
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Path != forged {
		t.Errorf("path = %q, want %q", got.Path, forged)
	}
}

func TestValidTraceID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"4bf92f3577b34da6a3ce929d0e0e4736", true},
		{"00000000000000000000000000000001", true},
		{"00000000000000000000000000000000", false},
		{"4BF92F3577B34DA6A3CE929D0E0E4736", false},
		{"4bf92f3577b34da6a3ce929d0e0e473", false},
		{"4bf92f3577b34da6a3ce929d0e0e47360", false},
		{"4bf92f3577b34da6a3ce929d0e0e473g", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := ValidTraceID(tc.in); got != tc.want {
			t.Errorf("ValidTraceID(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestSanitizeClientRequestID(t *testing.T) {
	long := strings.Repeat("a", 200)
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"plain", "req-123_ABC.x", "req-123_ABC.x"},
		{"unicode kept", "demande-été-😀", "demande-été-😀"},
		{"newline and CR", "a\r\nb", `a\x0d\x0ab`},
		{"escape sequence", "\x1b[31mred", `\x1b[31mred`},
		{"NUL and DEL", "a\x00b\x7f", `a\x00b\x7f`},
		{"invalid UTF-8", "a\xff\xfeb", `a\xff\xfeb`},
		{"backslash doubled", `a\x41`, `a\\x41`},
		{"line separators", "a\u2028b\u2029c", `a\u{2028}b\u{2029}c`},
		{"bidi override", "a\u202eb", `a\u{202E}b`},
		{"truncated", long, long[:MaxClientRequestID]},
		{"escape not split", strings.Repeat("a", 126) + "\n", strings.Repeat("a", 126)},
		{"rune not split", strings.Repeat("a", 126) + "é€", strings.Repeat("a", 126) + "é"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SanitizeClientRequestID(tc.in)
			if got != tc.want {
				t.Errorf("SanitizeClientRequestID(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if len(got) > MaxClientRequestID {
				t.Errorf("SanitizeClientRequestID(%q) is %d bytes, over %d", tc.in, len(got), MaxClientRequestID)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	tests := []struct {
		name, in, want string
	}{
		{"plain message kept", "policy denied: label namespace=\"b\" is not allowed", "policy denied: label namespace=\"b\" is not allowed"},
		{"bearer prose kept", "bearer token expired", "bearer token expired"},
		{"bearer credential", "got Bearer abcDEF123.xyz", "got Bearer <redacted>"},
		{"lower-case bearer", "bearer 0123456789abcdef", "bearer <redacted>"},
		{"basic credential", "Basic YWxpY2U6c2VjcmV0", "Basic <redacted>"},
		{"bare JWT", "token " + jwt + " has expired", "token <redacted jwt> has expired"},
		{"authorization header", "header Authorization: Bearer " + jwt + "\nnext line", "header Authorization: <redacted>\nnext line"},
		{"cookie header", "Cookie: __Host-promgate=abc; other=1", "Cookie: <redacted>"},
		{"x-id-token header", "X-Id-Token=xyz", "X-Id-Token=<redacted>"},
		{"URL userinfo", "dial https://bob:hunter2@upstream:9090/api", "dial https://<redacted>@upstream:9090/api"},
		{"query parameters", "GET /cb?code=4/0AX&state=s1&access_token=ya29.a0", "GET /cb?code=<redacted>&state=s1&access_token=<redacted>"},
		{"client secret", "client_secret=s3cr3t password=\"p w\"", "client_secret=<redacted> password=<redacted>"},
		{"JSON members", `{"access_token":"ya29","token_type":"Bearer","refresh_token":"1\"x"}`, `{"access_token":"<redacted>","token_type":"Bearer","refresh_token":"<redacted>"}`},
		{"PEM key", "bad key -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- done", "bad key <redacted private key> done"},
		{"cut PEM key", "bad key -----BEGIN PRIVATE KEY-----\nMIIE", "bad key <redacted private key>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Redact(tc.in); got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzSanitizeClientRequestID checks that any client request ID becomes at
// most MaxClientRequestID bytes of printable UTF-8.
func FuzzSanitizeClientRequestID(f *testing.F) {
	for _, s := range []string{"", "req-1", "a\r\nb", "\xff\xfe", "a\u2028b", strings.Repeat("é", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SanitizeClientRequestID(s)
		if len(got) > MaxClientRequestID {
			t.Fatalf("SanitizeClientRequestID(%q) is %d bytes", s, len(got))
		}
		if !utf8.ValidString(got) {
			t.Fatalf("SanitizeClientRequestID(%q) = %q is not UTF-8", s, got)
		}
		for _, r := range got {
			if !unicode.IsPrint(r) {
				t.Fatalf("SanitizeClientRequestID(%q) = %q holds non-printable %U", s, got, r)
			}
		}
		if len(s) <= MaxClientRequestID/4 && !strings.Contains(got, `\`) && got != s {
			t.Fatalf("SanitizeClientRequestID(%q) = %q changed a printable ID", s, got)
		}
	})
}
