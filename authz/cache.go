package authz

import (
	"container/list"
	"encoding/json"
	"strconv"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// decisionCacheSize bounds the decisions kept per policy revision.
const decisionCacheSize = 10000

// decisionCache remembers the decisions of one policy revision by their
// input. It is only used when the decision is a pure function of the input:
// the policy reads no input.query and calls no non-deterministic built-in
// (time, random numbers, UUIDs). It belongs to a snapshot, so a reload
// starts with an empty one. Errors are never cached.
type decisionCache struct {
	mu    sync.Mutex
	items map[string]*list.Element
	order *list.List // front = most recent
}

type cacheEntry struct {
	key string
	dec Decision
}

func newDecisionCache() *decisionCache {
	return &decisionCache{items: map[string]*list.Element{}, order: list.New()}
}

func (c *decisionCache) get(key string) (Decision, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return Decision{}, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).dec, true
}

func (c *decisionCache) put(key string, d Decision) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; ok {
		return
	}
	if c.order.Len() >= decisionCacheSize {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, dec: d})
}

// cacheKey encodes everything of in that a policy without input.query can
// read, each field length-prefixed so that no two inputs share a key.
func cacheKey(in Input) (string, bool) {
	if in.Alertmanager != nil {
		// A silence or alert is not worth a cache entry.
		return "", false
	}
	var b strings.Builder
	b.Grow(cacheKeySize(in))
	field := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	list := func(ss []string) {
		b.WriteString(strconv.Itoa(len(ss)))
		b.WriteByte('[')
		for _, s := range ss {
			field(s)
		}
	}
	if id := in.Identity; id == nil {
		b.WriteString("-")
	} else {
		b.WriteString("+")
		field(string(id.Method))
		field(id.Subject)
		list(id.Groups)
		field(id.Issuer)
		if len(id.Claims) > 0 {
			// encoding/json sorts map keys, so equal claims encode equally.
			j, err := json.Marshal(id.Claims)
			if err != nil {
				return "", false
			}
			field(string(j))
		} else {
			field("")
		}
		if c := id.Certificate; c != nil {
			b.WriteString("+")
			field(c.Subject)
			list(c.SANs)
			field(c.SPIFFEID)
			field(c.FingerprintSHA256)
		} else {
			b.WriteString("-")
		}
	}
	field(in.Request.Method)
	field(in.Request.Path)
	field(in.Request.Route)
	field(in.Request.RemoteAddr)
	return b.String(), true
}

// cacheKeySize estimates the length of in's key, so that the key is built
// in one allocation; a short estimate only costs a copy.
func cacheKeySize(in Input) int {
	n := 64 + len(in.Request.Method) + len(in.Request.Path) + len(in.Request.Route) + len(in.Request.RemoteAddr)
	if id := in.Identity; id != nil {
		n += len(id.Method) + len(id.Subject) + len(id.Issuer)
		for _, g := range id.Groups {
			n += 4 + len(g)
		}
		if c := id.Certificate; c != nil {
			n += 32 + len(c.Subject) + len(c.SPIFFEID) + len(c.FingerprintSHA256)
			for _, s := range c.SANs {
				n += 4 + len(s)
			}
		}
	}
	return n
}

// deterministic reports whether no module calls a built-in that OPA marks
// non-deterministic, so that one input always gets the same decision from
// one revision.
func deterministic(modules map[string]*ast.Module) bool {
	ok := true
	check := func(name string) {
		if bi, found := ast.BuiltinMap[name]; found && bi.Nondeterministic {
			ok = false
		}
		if strings.HasPrefix(name, "time.") || strings.HasPrefix(name, "rand.") || strings.HasPrefix(name, "uuid.") {
			ok = false
		}
	}
	for _, m := range modules {
		// Calls in rule bodies are expressions; calls nested in terms (a
		// rule head's value, an argument) are Call values.
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if e.IsCall() {
				check(e.Operator().String())
			}
			return !ok
		})
		ast.WalkTerms(m, func(t *ast.Term) bool {
			if c, isCall := t.Value.(ast.Call); isCall && len(c) > 0 {
				check(c[0].String())
			}
			return !ok
		})
		if !ok {
			return false
		}
	}
	return true
}

// maxCompiled bounds the allowed decisions a revision keeps compiled.
const maxCompiled = 4096

// compiledDecisions remembers the allowed decisions of one revision by
// their value, so that every input the policy gives one answer shares one
// parsed Decision and one compiled Enforcer, whether or not the decision
// cache applies (a policy reading input.query, or a new remote address,
// evaluates again but rarely answers anything new). Parsing is a pure
// function of the value, so the answer is the one parseDecision would give.
// Denials are not kept: they compile nothing, and their reasons often name
// the caller. When full, it starts again empty.
type compiledDecisions struct {
	mu sync.RWMutex
	m  map[int][]compiledDecision // by ast.Value.Hash
	n  int
}

type compiledDecision struct {
	v ast.Value
	d Decision
}

func newCompiledDecisions() *compiledDecisions {
	return &compiledDecisions{m: map[int][]compiledDecision{}}
}

// parse returns the Decision of v, from memory or from parseDecision.
func (c *compiledDecisions) parse(v ast.Value) (Decision, error) {
	h := v.Hash()
	c.mu.RLock()
	for _, e := range c.m[h] {
		if ast.ValueEqual(e.v, v) {
			c.mu.RUnlock()
			return e.d, nil
		}
	}
	c.mu.RUnlock()
	d, err := parseDecision(v)
	if err != nil || !d.Allow {
		return d, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.m[h] {
		if ast.ValueEqual(e.v, v) {
			return e.d, nil
		}
	}
	if c.n >= maxCompiled {
		c.m, c.n = map[int][]compiledDecision{}, 0
	}
	c.m[h] = append(c.m[h], compiledDecision{v: v, d: d})
	c.n++
	return d, nil
}
