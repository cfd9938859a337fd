package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// asymmetricAlgs are the only signature algorithms accepted. none and every
// HS* are refused before any key is looked at: an HMAC "verified" with an
// issuer's public key is the classic algorithm-confusion forgery: the
// attacker knows the public key, so an HS256 token keyed with it would
// verify.
var asymmetricAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

func asymmetricAlgNames() []string {
	out := make([]string, len(asymmetricAlgs))
	for i, a := range asymmetricAlgs {
		out[i] = string(a)
	}
	return out
}

// JWKS refresh timing.
const (
	// jwksCooldown is the least time between two fetches of one issuer's
	// JWKS. A token with an unknown kid triggers a fetch only when the last
	// one is older, so a flood of tokens with random kids costs one fetch
	// per cooldown rather than one per token, and cannot turn the gateway
	// into a load generator against the issuer.
	jwksCooldown = 10 * time.Second
	// jwksMaxAge is how long fetched keys are used before they are fetched
	// again on the next verification, so that a key the issuer removed stops
	// being trusted.
	jwksMaxAge = time.Hour
	// jwksTimeout bounds one fetch.
	jwksTimeout = 10 * time.Second
	// jwksMaxBody bounds a JWKS document.
	jwksMaxBody = 1 << 20
)

var (
	errUnknownKey   = errors.New("no key of the issuer's JWKS has the token's kid")
	errBadSignature = errors.New("signature does not verify")
)

// keySet is one issuer's JWKS, fetched only from the jwks_uri of the issuer's
// discovery document. Keys named or embedded in a token's header (jwk, jku,
// x5u, x5c) are never used or fetched, since a token that names its own key
// verifies itself and a URL in its header makes the gateway fetch from
// wherever the attacker points: the key is chosen by kid among the fetched
// keys only. It implements go-oidc's KeySet.
type keySet struct {
	issuer   string
	url      string
	client   *http.Client
	now      func() time.Time
	cooldown time.Duration
	fetched  func(result string)

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetchedAt time.Time // last successful fetch
	attempt   time.Time // last attempt, successful or not
	inflight  chan struct{}
}

// VerifySignature verifies a compact JWS with the issuer's keys and returns
// its payload.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, asymmetricAlgs)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("a token must have exactly one signature")
	}
	k.mu.Lock()
	stale := !k.fetchedAt.IsZero() && k.now().Sub(k.fetchedAt) > jwksMaxAge
	k.mu.Unlock()
	if stale {
		k.refresh(ctx)
	}
	payload, err := k.try(jws)
	if !errors.Is(err, errUnknownKey) {
		return payload, err
	}
	// The issuer may have rotated its keys: fetch again, unless the last
	// fetch is too recent.
	if !k.refresh(ctx) {
		return nil, err
	}
	return k.try(jws)
}

// try verifies jws with the cached keys whose kid matches (every key when the
// token names none).
func (k *keySet) try(jws *jose.JSONWebSignature) ([]byte, error) {
	k.mu.Lock()
	keys := k.keys
	k.mu.Unlock()
	sig := jws.Signatures[0]
	kid, alg := sig.Protected.KeyID, sig.Protected.Algorithm
	found := false
	for i := range keys {
		key := &keys[i]
		if kid != "" && key.KeyID != kid {
			continue
		}
		if key.Algorithm != "" && key.Algorithm != alg {
			continue
		}
		found = true
		if payload, err := jws.Verify(key); err == nil {
			return payload, nil
		}
	}
	if !found {
		return nil, errUnknownKey
	}
	return nil, errBadSignature
}

// refresh fetches the JWKS unless a fetch ran less than the cooldown ago.
// Concurrent callers share one fetch. It reports whether the keys may have
// changed.
func (k *keySet) refresh(ctx context.Context) bool {
	k.mu.Lock()
	if ch := k.inflight; ch != nil {
		k.mu.Unlock()
		select {
		case <-ch:
			return true
		case <-ctx.Done():
			return false
		}
	}
	now := k.now()
	if !k.attempt.IsZero() && now.Sub(k.attempt) < k.cooldown {
		k.mu.Unlock()
		k.fetched("cooldown")
		return false
	}
	k.attempt = now
	ch := make(chan struct{})
	k.inflight = ch
	k.mu.Unlock()

	// The fetch outlives a cancelled request: others may be waiting on it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksTimeout)
	keys, err := k.fetch(fctx)
	cancel()

	k.mu.Lock()
	if err == nil {
		k.keys = keys
		k.fetchedAt = k.now()
	}
	k.inflight = nil
	k.mu.Unlock()
	close(ch)
	if err != nil {
		k.fetched("error")
		return false
	}
	k.fetched("ok")
	return true
}

// fetch downloads and parses the JWKS. Keys of unknown types, private or
// symmetric keys and keys not meant for signatures are skipped.
func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get jwks: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	if len(body) > jwksMaxBody {
		return nil, errors.New("jwks larger than 1 MiB")
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range doc.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(raw); err != nil {
			continue
		}
		if !key.Valid() || !key.IsPublic() || (key.Use != "" && key.Use != "sig") {
			continue
		}
		if _, symmetric := key.Key.([]byte); symmetric {
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks has no usable public signing key")
	}
	return keys, nil
}
