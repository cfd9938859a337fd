#!/usr/bin/env bash
# build-thanos.sh builds the Thanos binary the Thanos end-to-end test runs
# (issue 21): github.com/thanos-io/thanos at a pinned version, from the Go
# module proxy, into .cache/thanos/<version>/thanos (ignored by git). A
# cached binary is reused; a clean build takes about 3 minutes of `go mod
# tidy` and 14 of compiling on two cores, at the lowest CPU priority.
#
# Thanos' go.mod has replace directives, so `go install pkg@version` is
# refused: the build uses a scratch module that requires Thanos and copies
# its replace block. The slicelabels tag is required: without it, receive
# panics on the querier's first gRPC Info call.
#
# Usage: scripts/build-thanos.sh   (prints the binary's path on the last line)
set -euo pipefail

version=v0.42.4 # v0.42.5 needs a newer Go than the project's
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/.cache/thanos/$version"
bin="$out/thanos"
log() { printf 'build-thanos: %s\n' "$*" >&2; }

if [ -x "$bin" ]; then
	log "thanos $version: cached"
	echo "$bin"
	exit 0
fi
command -v go >/dev/null 2>&1 || { log "ERROR: go not found"; exit 1; }
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
start=$(date +%s)
go mod init promgate.local/thanos-build >/dev/null 2>&1
modfile="$(go mod download -json "github.com/thanos-io/thanos@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[ -f "$modfile" ] || { log "ERROR: no go.mod of thanos $version in the module cache"; exit 1; }
printf 'require github.com/thanos-io/thanos %s\n\n' "$version" >>go.mod
awk '/^replace \($/,/^\)$/' "$modfile" >>go.mod
cat >tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/thanos-io/thanos/cmd/thanos"
GO
log "thanos $version: go mod tidy"
nice -n 19 go mod tidy
log "thanos $version: go build -tags netgo,slicelabels (about 14 minutes on two cores)"
nice -n 19 go build -tags netgo,slicelabels -o "$bin.tmp" github.com/thanos-io/thanos/cmd/thanos
mv "$bin.tmp" "$bin"
log "thanos $version: built in $(($(date +%s) - start)) s"
echo "$bin"
