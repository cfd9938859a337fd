package authn

import (
	"errors"
	"net/http"
)

// ErrNoCredentials means the request carries none of an Authenticator's
// credentials. The chain then tries the next Authenticator.
var ErrNoCredentials = errors.New("no credentials")

// Error is a credential that was present but could not be verified.
type Error struct {
	// Method is the authenticator that refused.
	Method Method
	// Reason is a short, bounded token for metrics (no_subject, unverified...).
	Reason string
	// Msg is safe to show the client.
	Msg string
}

func (e *Error) Error() string { return e.Msg }

// Authenticator verifies one kind of credential.
type Authenticator interface {
	// Method names the credential kind.
	Method() Method
	// Authenticate returns the caller's identity, ErrNoCredentials when the
	// request has none of this kind of credential, or an *Error.
	Authenticate(r *http.Request) (*Identity, error)
}

// Chain runs authenticators in order. The first that finds credentials decides:
// its identity is the caller's, or its error ends authentication.
type Chain []Authenticator

// Authenticate returns the first identity found, ErrNoCredentials when no
// authenticator found credentials, or the first verification error.
func (c Chain) Authenticate(r *http.Request) (*Identity, error) {
	for _, a := range c {
		id, err := a.Authenticate(r)
		if errors.Is(err, ErrNoCredentials) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if id == nil {
			return nil, &Error{Method: a.Method(), Reason: "internal", Msg: "authentication failed"}
		}
		return id, nil
	}
	return nil, ErrNoCredentials
}
