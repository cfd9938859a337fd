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
// round trip.
func (in Input) value() (ast.Value, error) {
	identity, err := identityValue(in.Identity)
	if err != nil {
		return nil, err
	}
	request := ast.NewObject(
		ast.Item(keyMethod, ast.StringTerm(in.Request.Method)),
		ast.Item(keyPath, ast.StringTerm(in.Request.Path)),
		ast.Item(keyRoute, ast.StringTerm(in.Request.Route)),
		ast.Item(keyRemoteAddr, ast.StringTerm(in.Request.RemoteAddr)),
	)
	doc := ast.NewObject(
		ast.Item(keyIdentity, ast.NewTerm(identity)),
		ast.Item(keyRequest, ast.NewTerm(request)),
	)
	if in.Query != nil {
		doc.Insert(keyQuery, ast.NewTerm(queryValue(in.Query)))
	}
	return doc, nil
}

func identityValue(id *authn.Identity) (ast.Object, error) {
	authenticated := id != nil
	if id == nil {
		id = &authn.Identity{}
	}
	claims := ast.NewObject()
	if len(id.Claims) > 0 {
		v, err := ast.InterfaceToValue(id.Claims)
		if err != nil {
			return nil, fmt.Errorf("convert claims: %w", err)
		}
		obj, ok := v.(ast.Object)
		if !ok {
			return nil, fmt.Errorf("convert claims: got %T, want an object", v)
		}
		claims = obj
	}
	var cert authn.Certificate
	if id.Certificate != nil {
		cert = *id.Certificate
	}
	certificate := ast.NewObject(
		ast.Item(keySubject, ast.StringTerm(cert.Subject)),
		ast.Item(keySANs, stringsTerm(cert.SANs)),
		ast.Item(keySPIFFEID, ast.StringTerm(cert.SPIFFEID)),
		ast.Item(keyFingerprint, ast.StringTerm(cert.FingerprintSHA256)),
	)
	return ast.NewObject(
		ast.Item(keyAuthenticated, ast.BooleanTerm(authenticated)),
		ast.Item(keyMethod, ast.StringTerm(string(id.Method))),
		ast.Item(keySubject, ast.StringTerm(id.Subject)),
		ast.Item(keyGroups, stringsTerm(id.Groups)),
		ast.Item(keyIssuer, ast.StringTerm(id.Issuer)),
		ast.Item(keyClaims, ast.NewTerm(claims)),
		ast.Item(keyCertificate, ast.NewTerm(certificate)),
	), nil
}

func queryValue(q *Query) ast.Object {
	selectors := make([]*ast.Term, len(q.Selectors))
	for i, s := range q.Selectors {
		matchers := make([]*ast.Term, len(s.Matchers))
		for j, m := range s.Matchers {
			matchers[j] = ast.ObjectTerm(
				ast.Item(keyName, ast.StringTerm(m.Name)),
				ast.Item(keyType, ast.StringTerm(m.Type)),
				ast.Item(keyValue, ast.StringTerm(m.Value)),
			)
		}
		selectors[i] = ast.ObjectTerm(
			ast.Item(keyMetric, ast.StringTerm(s.Metric)),
			ast.Item(keyMatchers, ast.ArrayTerm(matchers...)),
		)
	}
	return ast.NewObject(
		ast.Item(keyExpressions, stringsTerm(q.Expressions)),
		ast.Item(keySelectors, ast.ArrayTerm(selectors...)),
	)
}

func stringsTerm(ss []string) *ast.Term {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(terms...)
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
