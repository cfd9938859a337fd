#!/usr/bin/env bash
# build-thanos.sh builds the Thanos binary the Thanos end-to-end test runs
# (e2e/thanos_test.go, part of `make test`): github.com/thanos-io/thanos at
# a pinned version, from the Go module proxy, into
# .cache/thanos/<version>/thanos (ignored by git). A cached binary is
# reused; a build from a clean build cache takes about 2.5 minutes of two
# cores, plus the download of the modules it needs.
#
# The build is pinned by the module in scripts/thanos-build: its go.mod
# requires Thanos with Thanos' own replace block (Thanos' go.mod has replace
# directives, so `go install pkg@version` is refused), and its go.sum pins
# every module of the build by hash. The build runs with -mod=readonly:
# nothing is resolved anew and nothing unverified is downloaded.
#
# The slicelabels tag is required: without it, receive panics on the
# querier's first gRPC Info call.
#
# To move to another Thanos version: set version below, set the require line
# in scripts/thanos-build/go.mod, replace its replace block with the one of
# that version's go.mod, and run `go mod tidy` in scripts/thanos-build.
#
# Usage: scripts/build-thanos.sh   (prints the binary's path on the last line)
set -euo pipefail

version=v0.42.4 # v0.42.5 needs a newer Go than the project's
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/.cache/thanos/$version"
bin="$out/thanos"
log() { printf 'build-thanos: %s\n' "$*" >&2; }

if [ -x "$bin" ]; then
	log "thanos $version: cached in ${out#"$root"/}"
	echo "$bin"
	exit 0
fi
command -v go >/dev/null 2>&1 || { log "ERROR: go not found"; exit 1; }
pinned="$(sed -n 's/^require github.com\/thanos-io\/thanos \(v[^ ]*\)$/\1/p' "$root/scripts/thanos-build/go.mod")"
if [ "$pinned" != "$version" ]; then
	log "ERROR: scripts/thanos-build/go.mod requires thanos ${pinned:-(none)}, this script builds $version"
	exit 1
fi
mkdir -p "$out"
cd "$root/scripts/thanos-build"
start=$(date +%s)
log "thanos $version: go build -tags netgo,slicelabels (about 2.5 minutes of two cores from a clean build cache)"
nice -n 10 go build -mod=readonly -trimpath -tags netgo,slicelabels -ldflags='-s -w' \
	-o "$bin.tmp" github.com/thanos-io/thanos/cmd/thanos
mv "$bin.tmp" "$bin"
log "thanos $version: built in $(($(date +%s) - start)) s"
echo "$bin"
