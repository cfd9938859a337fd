// Package authn turns a request's credentials into a verified Identity.
//
// Authenticators run in a fixed order, never a map, so the outcome does not
// depend on iteration order: bearer tokens (when authn.oidc is configured),
// then the client certificate (mTLS), then the browser session (when
// authn.login is configured). NewChain builds that order. An Authenticator
// that finds none of its credentials says so with ErrNoCredentials and the
// next one runs; one that finds credentials it cannot verify ends the chain
// with an error, which the gateway answers with 401. A bad credential never
// falls back to a weaker method or to anonymous.
//
// # Client certificate and bearer token together
//
// A request that carries both a verified client certificate and a bearer
// token is authenticated by the token: the token's subject and groups are
// the caller's (Method oidc), and the certificate is kept in
// Identity.Certificate, so the policy sees both (input.identity.certificate)
// and the audit record holds the token's subject with the certificate's
// fingerprint. This is Grafana forwarding its user's token over its own
// client certificate: the user is the caller, and a policy may also require
// the forwarding certificate. A token that fails verification is a 401 even
// though the certificate is valid: falling back to the certificate would let
// anyone who holds it present a forged or expired token and be served as
// the certificate's owner. A session cookie next to a certificate is ignored:
// the certificate decides.
//
// # Bearer tokens
//
//   - Exactly one "Authorization: Bearer <compact JWT>" header. Two headers,
//     another scheme (Basic, a lower-case "bearer"), or a JWS in the JSON
//     serialization (several signatures) is a 401.
//   - The issuer is chosen by the token's exact iss, byte for byte
//     ("https://idp/" is not "https://idp"), and the signature is checked
//     only against that issuer's JWKS, fetched from the jwks_uri of its
//     discovery document. Keys named or embedded in the token header (jwk,
//     jku, x5u, x5c) are never used and nothing is fetched from them.
//   - Only asymmetric algorithms (RS*, PS*, ES*, EdDSA); none and HS* are
//     refused before any key is looked at.
//   - exp is required and must be in the future (no leeway); nbf, when
//     present, may be at most 30 s ahead. aud must name one of the issuer's
//     configured audiences; required_scopes must all be in scope or scp.
//   - The subject is the username_claim (default sub), else sub, client_id,
//     azp. A claim of the wrong type, an e-mail that is not exactly one plain
//     address or is marked email_verified: false, and a groups claim that is
//     not a list of non-empty strings are refused with 401, never guessed at.
//   - The JWKS is refreshed on an unknown kid at most once per 10 s per
//     issuer, so a flood of random kids costs one fetch per 10 s, and again
//     on use after an hour.
//   - Verified tokens are cached by the SHA-256 of the token, until their exp
//     and never beyond, in a bounded cache (10,000 entries).
//   - An issuer unreachable at start does not stop the gateway: discovery is
//     retried with backoff in the background, its tokens get 401 "issuer
//     unavailable" meanwhile, and promgate_oidc_issuer_up shows it.
//
// # Browser login and session
//
// /oauth2/start sends the browser to the provider with the authorization
// code flow, PKCE (S256), a state and a nonce, and sets a short-lived (10
// minutes) encrypted login-state cookie that binds the state to the browser.
// /oauth2/callback clears that cookie whatever happens, refuses a state that
// differs from it, a state already used on this replica, an expired one, a
// code that the provider refuses for the PKCE verifier, and an ID token with
// another nonce or audience. The session cookie then replaces any session the
// browser had, so a planted session does not survive a login.
//
// The session cookie needs no shared store between replicas: the verified
// ID token's claims, a random session ID, the end of the session's
// lifetime, the refresh token (if any) and, when the provider supports
// RP-initiated logout, the raw ID token are sealed with AES-256-GCM under a
// key derived from cookie_secret_file, with the cookie's name as additional
// data. Every replica shares that file; accept_cookie_secret_files names
// further secrets that open cookies but never seal them, so that the key can
// be rotated replica by replica without ending a session. A cookie that is tampered with, renamed, sealed by another
// deployment, sent twice, without a session ID or past its lifetime is a
// 401, and Login.ClearCookies expires it. Cookies are __Host- prefixed,
// Secure, HttpOnly and SameSite=Lax. A session larger than one cookie is
// split over up to four; a larger one is refused at login with a clear
// message. Redirect targets (rd) at login and sign-out must be paths on the
// gateway (see SafeRedirect). /oauth2/userinfo shows the identity and never
// a token.
//
// # Session lifetime and refresh
//
// A session lasts DefaultSessionLifetime (15 minutes) after login or its
// last refresh, or less if the ID token expires sooner. Then the gateway
// asks the provider again: a browser sent to /oauth2/start (the gateway
// sends navigations to its pages there) has the session renewed with the
// refresh token, keeping its session ID, and comes straight back. A session
// without a refresh token (many providers issue one only for the
// offline_access scope), one whose refresh the provider refuses, and one
// more than 12 hours past its lifetime are over: the cookie is cleared and
// the browser logs in again.
// Until it is renewed, a session past its lifetime is a 401, but its cookie
// is kept so that /oauth2/start can renew it.
//
// # Sign-out
//
// /oauth2/sign_out takes only a POST from a page of the gateway: a GET is
// 405, so that a link, an image or a prefetch cannot sign anyone out, and a
// POST whose Sec-Fetch-Site is not same-origin or whose Origin is not the
// gateway's (the origin of redirect_url) is 403, as is one with neither
// header. It clears the cookies, revokes the refresh token at the provider's
// revocation_endpoint (RFC 7009), and sends the browser on to the provider's
// end_session_endpoint (RP-initiated logout, with id_token_hint) when
// discovery lists them. That last step is a page that refreshes to the
// provider, not a 303: browsers apply the form-action policy of the page
// that posted the sign-out to the redirects that follow, and the gateway's
// pages allow only 'self'. A copy of the session cookie kept past sign-out
// is stopped as follows:
//
//	replica that signed out  refused at once: the session ID is kept in a
//	                         bounded in-memory list (50,000 sessions) until
//	                         every cookie given before sign-out has expired
//	other replicas           accepted until the copy's lifetime ends (at
//	                         most 15 minutes after sign-out), then refused:
//	                         its refresh token was revoked, so it cannot be
//	                         renewed
//	restart, or a full list  as other replicas
//
// If the provider lists no revocation_endpoint or the revocation fails (a
// warning is logged), other replicas renew copies until the provider's
// refresh token expires; the replica that signed out still refuses them.
//
// The mTLS authenticator reads only certificates that crypto/tls verified
// against the client CA (the connection's verified chains), never the raw peer
// certificates.
//
// An Identity never holds a credential: no token, cookie or key is copied into
// it, so nothing downstream (policy input, audit, logs) can leak one.
package authn
