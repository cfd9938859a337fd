package authn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on what a token may put into an identity.
const (
	maxSubjectLen = 256
	maxGroups     = 512
	maxGroupLen   = 256
)

// claimMapper turns verified claims into a subject and groups.
type claimMapper struct {
	username string
	groups   string
}

// decodeClaims decodes a verified JWT payload, keeping numbers exact
// (json.Number), so that the policy sees the claims as the issuer wrote them.
func decodeClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the claims")
	}
	return claims, nil
}

// subject returns the caller's name: the configured claim, else sub,
// client_id and azp in that order. A claim that is present but not a
// non-empty string is refused rather than skipped, and so is an e-mail claim
// that is not exactly one address or that the issuer marks unverified, so
// that a claim such as "x@evil.com@corp.com" cannot pass for a corp.com
// user in a policy that matches the domain.
func (m claimMapper) subject(claims map[string]any) (string, error) {
	for _, name := range []string{m.username, "sub", "client_id", "azp"} {
		v, ok := claims[name]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("claim %q is not a string", name)
		}
		if s == "" {
			continue
		}
		if len(s) > maxSubjectLen || !printable(s) {
			return "", fmt.Errorf("claim %q is too long or holds control characters", name)
		}
		if name == "email" {
			if err := checkEmail(s, claims); err != nil {
				return "", err
			}
		}
		return s, nil
	}
	return "", fmt.Errorf("no %q, sub, client_id or azp claim names the caller", m.username)
}

func checkEmail(s string, claims map[string]any) error {
	if strings.Count(s, "@") != 1 {
		return fmt.Errorf("claim \"email\" is not a single address")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return fmt.Errorf("claim \"email\" is not a plain address")
	}
	if v, ok := claims["email_verified"]; ok {
		if b, ok := v.(bool); !ok || !b {
			return fmt.Errorf("claim \"email\" is not verified by the issuer (email_verified)")
		}
	}
	return nil
}

// groupsOf returns the groups claim. It must be absent or a list of
// non-empty strings; a string, a number or a list with anything else in it is
// refused, never guessed at: a lenient reading (a string "admins,team-a"
// split on commas, a number turned into a name) grants groups that the
// issuer never listed.
func (m claimMapper) groupsOf(claims map[string]any) ([]string, error) {
	v, ok := claims[m.groups]
	if !ok || v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("claim %q is not a list of strings", m.groups)
	}
	if len(list) > maxGroups {
		return nil, fmt.Errorf("claim %q has more than %d groups", m.groups, maxGroups)
	}
	var out []string
	for _, g := range list {
		s, ok := g.(string)
		if !ok || s == "" || len(s) > maxGroupLen || !printable(s) {
			return nil, fmt.Errorf("claim %q is not a list of non-empty strings", m.groups)
		}
		out = append(out, s)
	}
	return out, nil
}

// scopesOf reads the scope (space-separated string) or scp (list or string)
// claim.
func scopesOf(claims map[string]any) []string {
	var out []string
	for _, name := range []string{"scope", "scp"} {
		switch v := claims[name].(type) {
		case string:
			out = append(out, strings.Fields(v)...)
		case []any:
			for _, s := range v {
				if s, ok := s.(string); ok {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}
