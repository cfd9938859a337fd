package authz

import (
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/promgate/promgate/authn"
)

// Input is what the gateway knows about one request when it asks the policy.
// Its document (see MarshalJSON) has the shape DESIGN.md fixes:
//
//	identity  authenticated, method, subject, groups, issuer, claims,
//	          certificate{subject, sans, spiffe_id, fingerprint_sha256}
//	request   method, path, route, remote_addr
//	query     expressions, selectors[{metric, matchers[{name, type, value}]}]
//
// Every identity and request key is always present: strings are "" and lists
// are [] when unknown, claims is {} without a token, and certificate holds
// empty strings without a client certificate. The query key is absent when
// Query is nil.
type Input struct {
	// Identity is the verified caller; nil means unauthenticated, which the
	// policy sees as identity.authenticated == false.
	Identity *authn.Identity
	// Request describes the HTTP request.
	Request Request
	// Query holds the PromQL of the request; nil when the route carries none.
	Query *Query
	// Alertmanager is the silence or alerts under decision on an
	// Alertmanager route (alertmanager.go), or nil.
	Alertmanager *Alertmanager
	// QueryFunc, when Query is nil, builds it on demand: only if the policy
	// revision that decides reads input.query. Converting every selector of
	// a large query for a policy that never looks at it was the biggest part
	// of building the input. An error denies.
	QueryFunc func() (*Query, error)
}

// Request describes the HTTP request. Route is one of the gateway's route
// names (query, query_range, series, ...).
type Request struct {
	Method     string
	Path       string
	Route      string
	RemoteAddr string
}

// Query is the PromQL a request carries, as the caller wrote it: every
// expression, and every vector selector found in them.
type Query struct {
	Expressions []string
	Selectors   []Selector
}

// Selector is one vector selector of a query.
type Selector struct {
	// Metric is the metric name, or "" when the selector has none.
	Metric string
	// Matchers are all label matchers, the __name__ one included.
	Matchers []Matcher
}

// Matcher is one label matcher. Type is =, !=, =~ or !~.
type Matcher struct {
	Name  string
	Type  string
	Value string
}

// Input document keys, interned once.
var (
	keyIdentity      = ast.StringTerm("identity")
	keyAuthenticated = ast.StringTerm("authenticated")
	keyMethod        = ast.StringTerm("method")
	keySubject       = ast.StringTerm("subject")
	keyGroups        = ast.StringTerm("groups")
	keyIssuer        = ast.StringTerm("issuer")
	keyClaims        = ast.StringTerm("claims")
	keyCertificate   = ast.StringTerm("certificate")
	keySANs          = ast.StringTerm("sans")
	keySPIFFEID      = ast.StringTerm("spiffe_id")
	keyFingerprint   = ast.StringTerm("fingerprint_sha256")
	keyRequest       = ast.StringTerm("request")
	keyPath          = ast.StringTerm("path")
	keyRoute         = ast.StringTerm("route")
	keyRemoteAddr    = ast.StringTerm("remote_addr")
	keyQuery         = ast.StringTerm("query")
	keyExpressions   = ast.StringTerm("expressions")
	keySelectors     = ast.StringTerm("selectors")
	keyMetric        = ast.StringTerm("metric")
	keyMatchers      = ast.StringTerm("matchers")
	keyName          = ast.StringTerm("name")
	keyType          = ast.StringTerm("type")
	keyValue         = ast.StringTerm("value")
)

// value builds the input document directly as a Rego value, without a JSON
// round trip. It is on the path of every evaluated decision, so it keeps
// allocations down: the terms of one document come from one slab, common
// strings (HTTP and authentication methods, route names, matcher types) and
// empty values are shared, and so is the certificate of a caller without
// one. Shared terms are never modified: OPA copies a document before
// changing it (with ... as), and nothing else writes to an input.
func (in Input) value() (ast.Value, error) {
	b := newTermBuilder(in)
	identity, err := b.identity(in.Identity)
	if err != nil {
		return nil, err
	}
	request := ast.NewObject(
		ast.Item(keyMethod, b.common(in.Request.Method)),
		ast.Item(keyPath, b.str(in.Request.Path)),
		ast.Item(keyRoute, b.common(in.Request.Route)),
		ast.Item(keyRemoteAddr, b.str(in.Request.RemoteAddr)),
	)
	items := [4][2]*ast.Term{
		ast.Item(keyIdentity, b.term(identity)),
		ast.Item(keyRequest, b.term(request)),
	}
	n := 2
	if in.Query != nil {
		items[n] = ast.Item(keyQuery, b.term(b.query(in.Query)))
		n++
	}
	if in.Alertmanager != nil {
		am, err := in.Alertmanager.value()
		if err != nil {
			return nil, err
		}
		items[n] = ast.Item(keyAlertmanager, ast.NewTerm(am))
		n++
	}
	return ast.NewObject(items[:n]...), nil
}

// sharedStrings are the string terms that many inputs hold, made once.
var sharedStrings = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, s := range []string{
		// HTTP methods.
		"GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS",
		// Authentication methods.
		string(authn.MethodMTLS), string(authn.MethodOIDC), string(authn.MethodSession),
		// Route names (proxy/routes.go, which authz does not import; a
		// name missing here is only allocated).
		"query", "query_range", "query_exemplars", "series", "labels",
		"label_values", "federate", "rules", "alerts", "metadata", "buildinfo",
		"format_query", "detectors", "ui", "page", "unknown", "scrape",
		"runtimeinfo", "flags", "tsdb", "config", "walreplay", "targets",
		"am_alerts", "am_alert_groups", "am_alert_push", "am_silences", "am_silence", "am_status", "am_receivers",
		// Matcher types and the metric name label.
		"=", "!=", "=~", "!~", "__name__",
	} {
		m[s] = ast.StringTerm(s)
	}
	return m
}()

// emptyCertificate is identity.certificate for a caller without one.
var emptyCertificate = ast.ObjectTerm(
	ast.Item(keySubject, ast.InternedEmptyString),
	ast.Item(keySANs, ast.InternedEmptyArray),
	ast.Item(keySPIFFEID, ast.InternedEmptyString),
	ast.Item(keyFingerprint, ast.InternedEmptyString),
)

// termBuilder hands out the terms of one input document from a slab sized
// for it, so that a document costs one allocation for all its terms.
type termBuilder struct {
	slab []ast.Term
}

func newTermBuilder(in Input) *termBuilder {
	// identity and request, the strings of both, claims, the groups.
	n := 2 + 3 + 1 + 1 + 4
	if id := in.Identity; id != nil {
		n += len(id.Groups)
		if id.Certificate != nil {
			// certificate, its strings, the SANs.
			n += 5 + len(id.Certificate.SANs)
		}
	}
	if q := in.Query; q != nil {
		// query, expressions, selectors; per selector the selector, its
		// metric and matchers; per matcher the matcher and its strings.
		n += 3 + len(q.Expressions)
		for _, s := range q.Selectors {
			n += 3 + 4*len(s.Matchers)
		}
	}
	return &termBuilder{slab: make([]ast.Term, 0, n)}
}

// term returns a term holding v.
func (b *termBuilder) term(v ast.Value) *ast.Term {
	if len(b.slab) == cap(b.slab) {
		b.slab = make([]ast.Term, 0, 16)
	}
	b.slab = append(b.slab, ast.Term{Value: v})
	return &b.slab[len(b.slab)-1]
}

// str returns a term holding s, shared when s is empty.
func (b *termBuilder) str(s string) *ast.Term {
	if s == "" {
		return ast.InternedEmptyString
	}
	return b.term(ast.String(s))
}

// common returns a term holding s, shared when s is one of sharedStrings:
// for fields that mostly hold one of them (methods, routes, matcher types).
func (b *termBuilder) common(s string) *ast.Term {
	if t, ok := sharedStrings[s]; ok {
		return t
	}
	return b.term(ast.String(s))
}

// strs returns an array term of ss.
func (b *termBuilder) strs(ss []string) *ast.Term {
	if len(ss) == 0 {
		return ast.InternedEmptyArray
	}
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = b.str(s)
	}
	return b.term(ast.NewArray(terms...))
}

func (b *termBuilder) identity(id *authn.Identity) (ast.Object, error) {
	authenticated := id != nil
	if id == nil {
		id = &authn.Identity{}
	}
	claims := ast.InternedEmptyObject
	if len(id.Claims) > 0 {
		v, err := ast.InterfaceToValue(id.Claims)
		if err != nil {
			return nil, fmt.Errorf("convert claims: %w", err)
		}
		if _, ok := v.(ast.Object); !ok {
			return nil, fmt.Errorf("convert claims: got %T, want an object", v)
		}
		claims = b.term(v)
	}
	certificate := emptyCertificate
	if cert := id.Certificate; cert != nil {
		certificate = b.term(ast.NewObject(
			ast.Item(keySubject, b.str(cert.Subject)),
			ast.Item(keySANs, b.strs(cert.SANs)),
			ast.Item(keySPIFFEID, b.str(cert.SPIFFEID)),
			ast.Item(keyFingerprint, b.str(cert.FingerprintSHA256)),
		))
	}
	return ast.NewObject(
		ast.Item(keyAuthenticated, ast.InternedTerm(authenticated)),
		ast.Item(keyMethod, b.common(string(id.Method))),
		ast.Item(keySubject, b.str(id.Subject)),
		ast.Item(keyGroups, b.strs(id.Groups)),
		ast.Item(keyIssuer, b.str(id.Issuer)),
		ast.Item(keyClaims, claims),
		ast.Item(keyCertificate, certificate),
	), nil
}

func (b *termBuilder) query(q *Query) ast.Object {
	selectors := ast.InternedEmptyArray
	if len(q.Selectors) > 0 {
		terms := make([]*ast.Term, len(q.Selectors))
		for i, s := range q.Selectors {
			matchers := ast.InternedEmptyArray
			if len(s.Matchers) > 0 {
				ms := make([]*ast.Term, len(s.Matchers))
				for j, m := range s.Matchers {
					ms[j] = b.term(ast.NewObject(
						ast.Item(keyName, b.common(m.Name)),
						ast.Item(keyType, b.common(m.Type)),
						ast.Item(keyValue, b.str(m.Value)),
					))
				}
				matchers = b.term(ast.NewArray(ms...))
			}
			terms[i] = b.term(ast.NewObject(
				ast.Item(keyMetric, b.str(s.Metric)),
				ast.Item(keyMatchers, matchers),
			))
		}
		selectors = b.term(ast.NewArray(terms...))
	}
	return ast.NewObject(
		ast.Item(keyExpressions, b.strs(q.Expressions)),
		ast.Item(keySelectors, selectors),
	)
}

// MarshalJSON returns the input document exactly as the policy sees it, for
// `promgate policy eval` and for debugging.
func (in Input) MarshalJSON() ([]byte, error) {
	v, err := in.value()
	if err != nil {
		return nil, err
	}
	x, err := ast.JSON(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(x)
}
