package authn

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cookie limits. Browsers keep at least 4096 bytes per cookie (name, value
// and attributes); a session larger than one cookie is split over at most
// maxChunks cookies, and a larger one is refused at login with a clear error.
const (
	chunkSize = 3800
	maxChunks = 4
	// minSecret is the least length of the cookie secret file's content.
	minSecret = 32
)

var (
	errNoCookie    = errors.New("no cookie")
	errBadCookie   = errors.New("cookie does not decrypt")
	errTooLarge    = errors.New("session too large for cookies")
	errTwoCookies  = errors.New("cookie sent twice")
	errBadChunking = errors.New("cookie chunks do not fit together")
)

// sealer encrypts cookie values with AES-256-GCM. The cookie's name is the
// additional data, so a value moved to another cookie name does not open,
// and each purpose (session, login state) has its own key derived from the
// secret with HKDF, so one cannot stand in for the other.
//
// Key rotation: a sealer seals with its first secret and opens with any of
// them (accept), so that replicas can move to a new secret one at a time
// while every session stays valid on all of them.
type sealer struct {
	aead   cipher.AEAD
	accept []cipher.AEAD // further keys that open but never seal
}

func newSealer(secret []byte, purpose string, accept ...[]byte) (*sealer, error) {
	aead, err := newAEAD(secret, purpose)
	if err != nil {
		return nil, err
	}
	s := &sealer{aead: aead}
	for i, a := range accept {
		aead, err := newAEAD(a, purpose)
		if err != nil {
			return nil, fmt.Errorf("accepted secret %d: %w", i, err)
		}
		s.accept = append(s.accept, aead)
	}
	return s, nil
}

func newAEAD(secret []byte, purpose string) (cipher.AEAD, error) {
	if len(secret) < minSecret {
		return nil, fmt.Errorf("cookie secret has %d bytes; it needs at least %d random bytes (e.g. openssl rand -base64 48)", len(secret), minSecret)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "promgate cookie v1 "+purpose, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (s *sealer) seal(name string, plain []byte) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(name)))
}

func (s *sealer) open(name, value string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(b) < s.aead.NonceSize()+s.aead.Overhead() {
		return nil, errBadCookie
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], []byte(name))
	for _, a := range s.accept {
		if err == nil {
			break
		}
		plain, err = a.Open(nil, b[:n], b[n:], []byte(name))
	}
	if err != nil {
		return nil, errBadCookie
	}
	return plain, nil
}

// sessionData is what a session cookie holds, encrypted.
type sessionData struct {
	// ID names the session from login to sign-out: a refresh keeps it, so
	// that signing out ends every cookie the session was ever given. A
	// cookie without one (sealed before sessions had IDs) is refused.
	ID string `json:"sid"`
	// Issuer and Claims are the verified ID token's.
	Issuer string          `json:"iss"`
	Claims json.RawMessage `json:"claims"`
	// Expiry ends this stretch of the session: the session lifetime after
	// login or the last refresh, or the ID token's exp if that comes first.
	Expiry int64 `json:"exp"`
	// RefreshToken renews the session at /oauth2/start when present, and is
	// revoked at sign-out. It never leaves the encrypted cookie.
	RefreshToken string `json:"rt,omitempty"`
	// IDToken is the raw ID token, kept only when the provider has an
	// end_session_endpoint, as the id_token_hint of RP-initiated logout.
	IDToken string `json:"idt,omitempty"`
}

// cookieJar writes and reads one logical cookie that may span chunks named
// name, name_1, ... name_{maxChunks-1}. The first chunk's value starts with
// the chunk count.
type cookieJar struct {
	name string
	s    *sealer
}

func (j cookieJar) chunkName(i int) string {
	if i == 0 {
		return j.name
	}
	return j.name + "_" + strconv.Itoa(i)
}

// cookies returns the cookies that store plain, or errTooLarge.
func (j cookieJar) cookies(plain []byte, expires time.Time) ([]*http.Cookie, error) {
	v := j.s.seal(j.name, plain)
	n := (len(v) + chunkSize - 1) / chunkSize
	if n > maxChunks {
		return nil, errTooLarge
	}
	var out []*http.Cookie
	for i := range n {
		part := v[i*chunkSize : min(len(v), (i+1)*chunkSize)]
		if i == 0 {
			part = strconv.Itoa(n) + "." + part
		}
		out = append(out, j.cookie(j.chunkName(i), part, expires))
	}
	return out, nil
}

// cookie returns a __Host- cookie: Secure, host-only, Path=/, HttpOnly and
// SameSite=Lax.
func (j cookieJar) cookie(name, value string, expires time.Time) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if expires.IsZero() {
		c.MaxAge = -1
	} else {
		c.Expires = expires.UTC()
		c.MaxAge = max(1, int(time.Until(expires).Seconds()))
	}
	return c
}

// set writes plain and deletes stale chunks of an earlier, larger value.
func (j cookieJar) set(w http.ResponseWriter, plain []byte, expires time.Time) error {
	cs, err := j.cookies(plain, expires)
	if err != nil {
		return err
	}
	for _, c := range cs {
		http.SetCookie(w, c)
	}
	for i := len(cs); i < maxChunks; i++ {
		http.SetCookie(w, j.cookie(j.chunkName(i), "", time.Time{}))
	}
	return nil
}

// clear deletes every chunk.
func (j cookieJar) clear(w http.ResponseWriter) {
	for i := range maxChunks {
		http.SetCookie(w, j.cookie(j.chunkName(i), "", time.Time{}))
	}
}

// present reports whether r carries any chunk.
func (j cookieJar) present(r *http.Request) bool {
	for i := range maxChunks {
		if len(cookieValues(r, j.chunkName(i))) > 0 {
			return true
		}
	}
	return false
}

// read returns the decrypted value, errNoCookie when r has none, or an error
// for anything else: a cookie sent twice, chunks that do not fit, or a value
// that does not decrypt under this name and secret.
func (j cookieJar) read(r *http.Request) ([]byte, error) {
	first := cookieValues(r, j.name)
	switch len(first) {
	case 0:
		if j.present(r) {
			return nil, errBadChunking
		}
		return nil, errNoCookie
	case 1:
	default:
		return nil, errTwoCookies
	}
	count, rest, ok := strings.Cut(first[0], ".")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 1 || n > maxChunks {
		return nil, errBadChunking
	}
	var b strings.Builder
	b.WriteString(rest)
	for i := 1; i < n; i++ {
		vs := cookieValues(r, j.chunkName(i))
		if len(vs) != 1 {
			return nil, errBadChunking
		}
		b.WriteString(vs[0])
	}
	return j.s.open(j.name, b.String())
}

func cookieValues(r *http.Request, name string) []string {
	var out []string
	for _, c := range r.CookiesNamed(name) {
		out = append(out, c.Value)
	}
	return out
}

// Session authenticates a browser by the session cookie that the login
// handlers set.
type Session struct {
	l *Login
}

var _ Authenticator = (*Session)(nil)

// Method returns MethodSession.
func (s *Session) Method() Method { return MethodSession }

// Authenticate decrypts the session cookie. A request without it has no
// credentials; a cookie that is tampered with, renamed, from another
// deployment, signed out on this replica or past its lifetime is refused
// (the gateway's error answer should pass it to Login.ClearCookies, which
// keeps only a cookie that /oauth2/start can still renew).
func (s *Session) Authenticate(r *http.Request) (*Identity, error) {
	sd, err := s.l.readSession(r)
	if errors.Is(err, errNoCookie) {
		return nil, ErrNoCredentials
	}
	if err != nil || sd.ID == "" {
		return nil, &Error{Method: MethodSession, Reason: "bad_session", Msg: "the session cookie is not valid; sign in again at /oauth2/start"}
	}
	now := s.l.now()
	if s.l.signedOut.has(sd.ID, now) {
		return nil, &Error{Method: MethodSession, Reason: "signed_out", Msg: "this session was signed out; sign in again at /oauth2/start"}
	}
	if !now.Before(time.Unix(sd.Expiry, 0)) {
		return nil, &Error{Method: MethodSession, Reason: "session_expired", Msg: "the session has expired; renew it or sign in again at /oauth2/start"}
	}
	return s.l.identityOf(sd)
}

// signedOut remembers the sessions signed out on this replica, each until
// the last cookie it could have been given before sign-out has expired, so
// that a copy of the cookie kept past sign-out is refused at once here.
// Other replicas do not see it; they refuse the copy when its lifetime ends
// and the refresh token it holds, revoked at sign-out, no longer renews it.
//
// It holds at most max sessions. Sessions enter in the order their entries
// end (every entry lasts one session lifetime from its sign-out), so the
// oldest entry is both the first to expire and, when a flood of sign-outs
// fills the set, the one dropped: its cookie then works on this replica
// until its own lifetime ends, as on any other replica.
type signedOut struct {
	mu    sync.Mutex
	max   int
	until map[string]time.Time
	queue []signedOutEntry // in order of sign-out
	// dropped counts live entries dropped because the set was full.
	dropped int
}

type signedOutEntry struct {
	id    string
	until time.Time
}

func newSignedOut(max int) *signedOut {
	return &signedOut{max: max, until: map[string]time.Time{}}
}

// add records id as signed out until until. It reports whether a live entry
// had to be dropped to make room.
func (s *signedOut) add(id string, until, now time.Time) (dropped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if old, ok := s.until[id]; ok && now.Before(old) {
		// Already signed out: the first sign-out's entry outlasts every
		// cookie given before it, and this replica renews none after it.
		// Not extending it keeps repeated sign-outs of one cookie from
		// growing the queue.
		return false
	}
	if _, ok := s.until[id]; !ok && len(s.until) >= s.max {
		for len(s.until) >= s.max && len(s.queue) > 0 {
			e := s.pop()
			if s.until[e.id].Equal(e.until) {
				delete(s.until, e.id)
				dropped = true
			}
		}
		if dropped {
			s.dropped++
		}
	}
	s.until[id] = until
	s.queue = append(s.queue, signedOutEntry{id: id, until: until})
	return dropped
}

// has reports whether id was signed out and its entry has not ended.
func (s *signedOut) has(id string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.until[id]
	return ok && now.Before(until)
}

// len returns the number of sessions held, ended or not.
func (s *signedOut) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.until)
}

// expire forgets entries that have ended, from the front of the queue.
func (s *signedOut) expire(now time.Time) {
	for len(s.queue) > 0 && !now.Before(s.queue[0].until) {
		e := s.pop()
		if s.until[e.id].Equal(e.until) {
			delete(s.until, e.id)
		}
	}
}

// pop removes the queue's first entry, compacting the queue now and then
// so that its array does not grow without bound.
func (s *signedOut) pop() signedOutEntry {
	e := s.queue[0]
	s.queue[0] = signedOutEntry{}
	s.queue = s.queue[1:]
	if cap(s.queue) > 64 && len(s.queue) < cap(s.queue)/4 {
		s.queue = append([]signedOutEntry(nil), s.queue...)
	}
	return e
}
