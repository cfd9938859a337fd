package policies

import "embed"

// FS holds the default policy: the Rego modules (tests included), the data
// file and the README. `promgate demo` serves it and `promgate policy test`
// runs its tests when no folder is given.
//
//go:embed *.rego *.json README.md
var FS embed.FS
