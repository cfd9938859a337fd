package audit

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Record is one audit record: one JSON object on one line per request, allowed
// or not. It has only typed fields and no free-form map, so a header, a token
// or a cookie cannot reach the audit log by accident. The JSON field names are
// part of DESIGN.md's contract; testdata/record.golden pins them.
type Record struct {
	// Time is when the request arrived. Writer writes it in UTC with
	// nanoseconds (RFC 3339); a zero Time is set to the time of the Write.
	Time time.Time `json:"time"`
	// ID is the request ID the gateway made.
	ID string `json:"id"`
	// ClientRequestID is the client's X-Request-Id. It is recorded only, never
	// trusted: Writer escapes non-printable characters and truncates it to
	// MaxClientRequestID bytes.
	ClientRequestID string `json:"client_request_id,omitempty"`
	// TraceID is the W3C trace id of the request: the caller's traceparent's
	// when it sent a valid one, or the gateway's own trace when tracing is
	// on. It is exactly 32 lowercase hex digits, not all zero; Writer drops
	// any other value, so it is never free text and needs no cap. The
	// caller's tracestate is never recorded.
	TraceID string `json:"trace_id,omitempty"`
	// Identity is the authenticated caller, nil when authentication failed or
	// did not happen.
	Identity *Identity `json:"identity,omitempty"`
	// RemoteAddr is the client address (after trusted_proxies).
	RemoteAddr string `json:"remote_addr"`
	// Method is the HTTP method.
	Method string `json:"method"`
	// Route is the route name (query, series, ...), or the name the gateway
	// gives unknown paths.
	Route string `json:"route"`
	// Path is the canonical request path.
	Path string `json:"path"`
	// Query holds the expressions as sent: the query parameter or every
	// match[] value.
	Query []string `json:"query,omitempty"`
	// EnforcedQuery holds the expressions as forwarded upstream.
	EnforcedQuery []string `json:"enforced_query,omitempty"`
	// DroppedParams names the request's parameters that the gateway did
	// not forward because the route does not take them, sorted.
	DroppedParams []string `json:"dropped_params,omitempty"`
	// RefusedMatch holds the match[] values of a federate request, as sent,
	// that the decision's confinement refuses. They were not forwarded: the
	// others were, when any remained; otherwise the request was refused.
	RefusedMatch []string `json:"refused_match,omitempty"`
	// Clamped lists the time parameters the gateway moved to the edge of
	// the allowed window before forwarding, each as name=value with the
	// value as sent upstream (Unix seconds), such as "start=1765090800.000".
	Clamped []string `json:"clamped,omitempty"`
	// The silence fields record what an Alertmanager silence create, update
	// or expire concerned (who is the record's identity): the operation
	// (create, update or expire), the silence's id (for a create, the one the
	// Alertmanager gave it), its matchers in Alertmanager's filter syntax as
	// forwarded (as sent when refused before; for an expire, as read from
	// the Alertmanager), and the time it starts and ends (RFC 3339).
	SilenceOperation string   `json:"silence_operation,omitempty"`
	SilenceID        string   `json:"silence_id,omitempty"`
	SilenceMatchers  []string `json:"silence_matchers,omitempty"`
	SilenceStartsAt  string   `json:"silence_starts_at,omitempty"`
	SilenceEndsAt    string   `json:"silence_ends_at,omitempty"`
	// Remote counts what a remote write or read request carried and what
	// the gateway did to it (remote.go). It holds counts only, never
	// sample data.
	Remote *Remote `json:"remote,omitempty"`
	// Coalesced is set when the upstream's answer was another identical
	// request's, shared with this one (upstream.coalesce): this request
	// itself did not reach the upstream.
	Coalesced bool `json:"coalesced,omitempty"`
	// ResultsCache is set when the results cache assembled the answer of a
	// query_range (proxy/resultscache.go): how many of its parts came from
	// the cache and how many were fetched from the upstream.
	ResultsCache *ResultsCache `json:"results_cache,omitempty"`
	// Decision is the policy decision, nil when the policy was not asked.
	Decision *Decision `json:"decision,omitempty"`
	// Status is the HTTP status sent to the client.
	Status int `json:"status"`
	// Bytes is the size of the response body sent to the client.
	Bytes int64 `json:"bytes"`
	// DurationMS is how long the request took, in milliseconds.
	DurationMS float64 `json:"duration_ms"`
	// Error is the internal cause of a denial or failure. It must never hold a
	// secret; that is the caller's job, and Writer also passes it through
	// Redact as a second line of defence.
	Error string `json:"error,omitempty"`
	// Truncated names the fields that Writer cut to keep the record within
	// its caps (MaxFieldBytes, MaxListEntries, MaxListBytes,
	// MaxRecordBytes), each with the length and SHA-256 of its full value.
	// Writer sets it and ignores what the caller put there.
	Truncated *Truncation `json:"truncated,omitempty"`

	// The last three fields belong to the hash chain. Writer sets them and
	// ignores what the caller put there; they must stay last, in this order,
	// because the chain hashes the line as written (see doc.go, "Hash chain").

	// ChainStart is set only on a record that starts a chain instead of
	// linking to an earlier record: it says why (a new audit trail, output to
	// stdout, or a previous record that could not be read). Its PrevHash is
	// ZeroHash.
	ChainStart string `json:"chain_start,omitempty"`
	// PrevHash is the Hash of the record before this one, in this file or,
	// for the first record of a file, in the file before it.
	PrevHash string `json:"prev_hash,omitempty"`
	// Hash is the lowercase hex SHA-256 of PrevHash (as its 64 hex
	// characters) followed by the canonical JSON of this record: the line as
	// written, without its `,"hash":"..."` member.
	Hash string `json:"hash,omitempty"`
}

// Identity is the audited part of an authenticated caller. It deliberately has
// no claims and no certificate body: only what identifies the caller.
type Identity struct {
	// Method is how the caller authenticated: mtls, oidc or session.
	Method string `json:"method"`
	// Subject is the caller's name.
	Subject string `json:"subject"`
	// Groups are the caller's groups.
	Groups []string `json:"groups,omitempty"`
	// Issuer is the token issuer, or the certificate issuer's DN.
	Issuer string `json:"issuer,omitempty"`
	// CertFingerprint is the hex SHA-256 of the client certificate, when one
	// was presented and verified.
	CertFingerprint string `json:"cert_fingerprint,omitempty"`
}

// ResultsCache is how the results cache assembled a query_range answer.
type ResultsCache struct {
	// PartsHit are the parts read from the cache (memory or memcached).
	PartsHit int `json:"parts_hit"`
	// PartsFetched are the parts fetched from the upstream, cacheable or
	// too fresh to cache.
	PartsFetched int `json:"parts_fetched"`
}

// Decision is the audited part of a policy decision.
type Decision struct {
	// Allow is the decision.
	Allow bool `json:"allow"`
	// Reason is the policy's explanation.
	Reason string `json:"reason"`
	// PolicyRevision identifies the policy snapshot that decided.
	PolicyRevision string `json:"policy_revision"`
}

// MaxClientRequestID is the most bytes of a client's X-Request-Id that a
// record keeps, after escaping.
const MaxClientRequestID = 128

// normalize returns a copy of r ready to be capped and written: time in UTC
// (now when zero), the client request ID escaped (but not yet cut), a trace
// id that is not one dropped, the error redacted and the fields the writer
// owns cleared. It never modifies r.
func normalize(r *Record, now time.Time) Record {
	c := *r
	if c.Time.IsZero() {
		c.Time = now
	}
	c.Time = c.Time.UTC()
	c.ClientRequestID = escapeClientRequestID(c.ClientRequestID)
	if !ValidTraceID(c.TraceID) {
		c.TraceID = ""
	}
	c.Truncated = nil
	c.ChainStart, c.PrevHash, c.Hash = "", "", ""
	if c.Error != "" {
		c.Error = Redact(c.Error)
	}
	return c
}

// ValidTraceID reports whether s is a W3C Trace Context trace id: 32
// lowercase hex digits, not all zero.
func ValidTraceID(s string) bool {
	if len(s) != 32 {
		return false
	}
	zero := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
		zero = zero && c == '0'
	}
	return !zero
}

// SanitizeClientRequestID makes a client-supplied request ID safe to record:
// printable characters are kept, a backslash becomes \\, other characters
// become \xNN (bytes that are not UTF-8, and ASCII controls) or \u{N} (other
// non-printable runes), and the result is cut to at most MaxClientRequestID
// bytes without splitting a character or an escape. A record whose ID was cut
// names its full escaped length and hash in Truncated.
func SanitizeClientRequestID(s string) string {
	return cutEscaped(escapeClientRequestID(s), MaxClientRequestID)
}

// escapeClientRequestID escapes s as SanitizeClientRequestID does, without
// cutting it.
func escapeClientRequestID(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var part string
		switch {
		case r == utf8.RuneError && size <= 1:
			part = `\x` + hex2(s[i])
		case r == '\\':
			part = `\\`
		case r < utf8.RuneSelf && !unicode.IsPrint(r):
			part = `\x` + hex2(byte(r)) //nolint:gosec // G115: r < utf8.RuneSelf here, so it fits a byte
		case !unicode.IsPrint(r):
			part = `\u{` + strings.ToUpper(strconv.FormatUint(uint64(r), 16)) + `}` //nolint:gosec // G115: a decoded rune is 0 to utf8.MaxRune, never negative
		default:
			part = s[i : i+size]
		}
		b.WriteString(part)
		i += size
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}

// redactions are applied in order. Each names a kind of secret that has shown
// up in error messages of proxies and identity libraries: a header echoed
// back, a URL with credentials, a token in a query string or a JSON body, or a
// key in a PEM block.
var redactions = []struct {
	re   *regexp.Regexp
	repl string
}{
	// PEM private keys, also when the END line was cut off.
	{regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`), `<redacted private key>`},
	// Credential headers quoted in a message, up to the end of the line.
	{regexp.MustCompile(`(?i)\b(authorization|proxy-authorization|cookie|set-cookie|x-id-token|x-auth-request-access-token|x-forwarded-access-token)(\s*[:=]\s*)[^\r\n]*`), `$1$2<redacted>`},
	// JWTs and JWEs anywhere: base64url JSON header, dot-separated parts.
	{regexp.MustCompile(`eyJ[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*){1,4}`), `<redacted jwt>`},
	// URL user information: scheme://user:password@host.
	{regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]+@`), `$1<redacted>@`},
	// JSON members that carry secrets.
	{regexp.MustCompile(`(?i)("(?:access_token|refresh_token|id_token|client_secret|password|secret|token|api_key|apikey|cookie_secret|code)"\s*:\s*)"(?:[^"\\]|\\.)*"`), `$1"<redacted>"`},
	// Query-string or key=value pairs that carry secrets.
	{regexp.MustCompile(`(?i)\b(access_token|refresh_token|id_token|client_secret|password|passwd|secret|token|api_key|apikey|cookie_secret|code|session|sig|signature|x-amz-signature)=(?:"[^"]*"|[^&\s"',;]*)`), `$1=<redacted>`},
}

// Redact replaces what looks like a credential in s with a placeholder:
// bearer and basic credentials, JWTs, credential headers (Authorization,
// Cookie, X-Id-Token, ...), URL user information, secret-named query
// parameters and JSON members (access_token, client_secret, password, code,
// ...) and PEM private keys. Writer applies it to Record.Error. It is a second
// line of defence, not a licence to put secrets into errors: it cannot know
// every shape a secret takes.
func Redact(s string) string {
	for _, r := range redactions {
		s = r.re.ReplaceAllString(s, r.repl)
	}
	return schemeCredential.ReplaceAllStringFunc(s, func(m string) string {
		sub := schemeCredential.FindStringSubmatch(m)
		if lowerWord.MatchString(sub[3]) {
			return m // "bearer token expired": prose, not a credential
		}
		return sub[1] + sub[2] + "<redacted>"
	})
}

// schemeCredential is an HTTP authentication scheme followed by a credential.
// A credential made of lowercase letters only is taken for prose, so that
// messages such as "bearer token expired" stay readable; real credentials are
// random and mix cases, digits or symbols.
var (
	schemeCredential = regexp.MustCompile(`(?i)\b(bearer|basic|negotiate|digest)(\s+)([A-Za-z0-9\-._~+/]+=*)`)
	lowerWord        = regexp.MustCompile(`^[a-z]+$`)
)
