// Package authn turns a request's credentials into a verified Identity.
//
// Authenticators run in a fixed order (mTLS, then bearer tokens, then the
// browser session), never a map, so the outcome does not depend on iteration
// order. An Authenticator that finds none of its credentials says so with
// ErrNoCredentials and the next one runs; one that finds credentials it cannot
// verify ends the chain with an error, which the gateway answers with 401. A
// bad credential never falls back to a weaker method or to anonymous.
//
// The mTLS authenticator reads only certificates that crypto/tls verified
// against the client CA (the connection's verified chains), never the raw peer
// certificates.
//
// An Identity never holds a credential: no token, cookie or key is copied into
// it, so nothing downstream (policy input, audit, logs) can leak one.
package authn
