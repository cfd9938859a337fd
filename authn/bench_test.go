package authn

import (
	"testing"

	"github.com/promgate/promgate/config"
)

// BenchmarkVerify measures the bearer verify path: cached (a token seen
// before, looked up by its SHA-256) and uncached (signature, claims and
// mapping, with the JWKS in memory).
func BenchmarkVerify(b *testing.B) {
	clock := newClock()
	idp := newTestIssuer(b, clock)
	bearer, _ := newTestBearer(b, clock, config.OIDC{Issuer: idp.url, Audiences: []string{"promgate"}})
	tok := idp.sign(b, idp.claims(clock.now()), nil)
	r := bearerRequest("Bearer " + tok)
	if _, err := bearer.Authenticate(r); err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := bearer.Authenticate(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		key := tokenKey(tok)
		b.ReportAllocs()
		for b.Loop() {
			bearer.cache.mu.Lock()
			delete(bearer.cache.entries, key)
			bearer.cache.mu.Unlock()
			if _, err := bearer.Authenticate(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
