package authn

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/promgate/promgate/config"
)

// TestCookieKeyRotation walks a fleet through a cookie key rotation: a
// session sealed with the old secret is accepted by a replica that seals
// with the new one and accepts the old, cookies that replica seals open
// with the new secret alone, and a replica that does not accept the old
// secret refuses the old session.
func TestCookieKeyRotation(t *testing.T) {
	const (
		oldSecret = "the old cookie secret, long enough to derive keys"
		newSecret = "the new cookie secret, long enough to derive keys"
	)
	f := newLoginFixture(t) // seals with the fixture's secret
	f.l, f.chain = f.build(oldSecret)
	oldCookies := f.login()

	oldFile := filepath.Join(f.dir, "old-secret")
	if err := os.WriteFile(oldFile, []byte(oldSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	replica := func(secret string, accept ...string) (*Login, Chain) {
		l, chain, err := f.buildWith(secret, func(c *config.Login) { c.AcceptCookieSecretFiles = accept })
		if err != nil {
			t.Fatal(err)
		}
		if err := l.p.discover(context.Background()); err != nil {
			t.Fatal(err)
		}
		return l, chain
	}
	auth := func(chain Chain, cookies []*http.Cookie) (*Identity, error) {
		r := httptest.NewRequest("GET", "/api/v1/query", nil)
		for _, c := range cookies {
			r.AddCookie(c)
		}
		return chain.Authenticate(r)
	}

	// Another replica sharing the old secret accepts the session.
	_, same := replica(oldSecret)
	if id, err := auth(same, oldCookies); err != nil || id.Subject != "alice" {
		t.Fatalf("replica with the same secret: %+v, %v", id, err)
	}
	rotated, rotatedChain := replica(newSecret, oldFile)
	if id, err := auth(rotatedChain, oldCookies); err != nil || id.Subject != "alice" {
		t.Fatalf("rotated replica, old session: %+v, %v", id, err)
	}
	// What the rotated replica seals opens with the new secret alone.
	w := httptest.NewRecorder()
	b := []byte(`{"sid":"s1","iss":"` + f.idp.url + `","claims":{"sub":"bob","groups":["team-a"]},"exp":9999999999}`)
	if err := rotated.session.set(w, b, f.clock.now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	newCookies := liveCookies(w)
	_, newOnly := replica(newSecret)
	if id, err := auth(newOnly, newCookies); err != nil || id.Subject != "bob" {
		t.Fatalf("new secret alone, new session: %+v, %v", id, err)
	}
	if _, err := auth(newOnly, oldCookies); err == nil {
		t.Error("a replica without the old secret accepted an old session")
	}
	_, oldOnly := replica(oldSecret)
	if _, err := auth(oldOnly, newCookies); err == nil {
		t.Error("a replica with the old secret alone opened a cookie sealed with the new one")
	}
	if _, _, err := f.buildWith(newSecret, func(c *config.Login) {
		short := filepath.Join(f.dir, "short")
		_ = os.WriteFile(short, []byte("short"), 0o600)
		c.AcceptCookieSecretFiles = []string{short}
	}); err == nil || !strings.Contains(err.Error(), "accept_cookie_secret_files[0]") {
		t.Errorf("a short accepted secret: %v", err)
	}
}
