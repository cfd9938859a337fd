package authz

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/promgate/promgate/config"
)

// validWriteMode reports whether m is a write mode a decision may name.
func validWriteMode(m string) bool { return config.ValidWriteMode(m) }

// parseWriteMode reads "write_mode": inject, reject or drop.
func parseWriteMode(v ast.Value) (string, error) {
	s, ok := v.(ast.String)
	if !ok {
		return "", fmt.Errorf(`%w: "write_mode" has type %s, want a string`, ErrMalformed, ast.ValueName(v))
	}
	if !validWriteMode(string(s)) {
		return "", fmt.Errorf(`%w: "write_mode" %q is not inject, reject or drop`, ErrMalformed, string(s))
	}
	return string(s), nil
}
