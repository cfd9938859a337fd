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
type sealer struct {
	aead cipher.AEAD
}

func newSealer(secret []byte, purpose string) (*sealer, error) {
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
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
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
	if err != nil {
		return nil, errBadCookie
	}
	return plain, nil
}

// sessionData is what a session cookie holds, encrypted.
type sessionData struct {
	// Issuer and Claims are the verified ID token's.
	Issuer string          `json:"iss"`
	Claims json.RawMessage `json:"claims"`
	// Expiry is the ID token's exp: the session ends with it.
	Expiry int64 `json:"exp"`
	// RefreshToken renews the session at /oauth2/start when present. It
	// never leaves the encrypted cookie.
	RefreshToken string `json:"rt,omitempty"`
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
// deployment or expired is refused (the gateway's error answer should clear
// it with Login.ClearCookies).
func (s *Session) Authenticate(r *http.Request) (*Identity, error) {
	sd, err := s.l.readSession(r)
	if errors.Is(err, errNoCookie) {
		return nil, ErrNoCredentials
	}
	if err != nil {
		return nil, &Error{Method: MethodSession, Reason: "bad_session", Msg: "the session cookie is not valid; sign in again at /oauth2/start"}
	}
	if !s.l.now().Before(time.Unix(sd.Expiry, 0)) {
		return nil, &Error{Method: MethodSession, Reason: "session_expired", Msg: "the session has expired; sign in again at /oauth2/start"}
	}
	return s.l.identityOf(sd)
}
