//go:build tools

// Package thanosbuild pins the Thanos build that the Thanos end-to-end test
// runs (scripts/build-thanos.sh). Its go.mod requires Thanos at the pinned
// version with Thanos' own replace block, and its go.sum pins every module
// of the build by hash, so the build downloads nothing unverified and needs
// no `go mod tidy`.
package thanosbuild

import _ "github.com/thanos-io/thanos/cmd/thanos"
