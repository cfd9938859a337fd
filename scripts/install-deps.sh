#!/usr/bin/env bash
# install-deps.sh installs the real components promgate's end-to-end tests
# run against: Prometheus and promtool (Debian package "prometheus") and
# testssl.sh (Debian package "testssl.sh", binary /usr/bin/testssl) and
# Alertmanager (Debian package "prometheus-alertmanager") and node_exporter
# (Debian package "prometheus-node-exporter", for the exporter sidecar tests).
#
# It is idempotent: it installs only what is missing, runs `apt-get update`
# only when a package has no install candidate yet, says what it did, and
# fails loudly when it cannot install something. It never skips silently.
#
# Usage: scripts/install-deps.sh   (as root, or with sudo available)
set -euo pipefail

log() { printf 'install-deps: %s\n' "$*"; }
die() { printf 'install-deps: ERROR: %s\n' "$*" >&2; exit 1; }

# package_for maps a command to the Debian package that ships it.
package_for() {
	case "$1" in
	prometheus | promtool) echo prometheus ;;
	testssl) echo testssl.sh ;;
	prometheus-alertmanager | amtool) echo prometheus-alertmanager ;;
	prometheus-node-exporter) echo prometheus-node-exporter ;;
	chromium) echo chromium ;;
	memcached) echo memcached ;;
	haproxy) echo haproxy ;;
	nginx) echo nginx ;;
	*) die "no package known for command $1" ;;
	esac
}

commands=(prometheus promtool testssl prometheus-alertmanager amtool prometheus-node-exporter chromium)
# memcached: the results cache's shared tier (e2e TestResultsCache).
commands+=(memcached)
# The fleet test's load balancer (issue 21): three gateways behind HAProxy.
commands+=(haproxy)
# The signed policy bundle's server in the bundle test (issue 21).
commands+=(nginx)
missing_pkgs=()
for cmd in "${commands[@]}"; do
	if path=$(command -v "$cmd"); then
		log "$cmd: already installed ($path)"
	else
		pkg=$(package_for "$cmd")
		log "$cmd: missing (Debian package $pkg)"
		case " ${missing_pkgs[*]-} " in
		*" $pkg "*) ;;
		*) missing_pkgs+=("$pkg") ;;
		esac
	fi
done

# The OIDC tests' identity provider (oidc-provider) and browser driver
# (playwright-core), and the console test's accessibility checker
# (axe-core), pinned in scripts/idp/package.json, installed with npm.
idp_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/idp"
if [ -d "$idp_dir/node_modules/oidc-provider" ] && [ -d "$idp_dir/node_modules/playwright-core" ] &&
	[ -d "$idp_dir/node_modules/axe-core" ]; then
	log "scripts/idp: node modules already installed"
else
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
		die "node and npm not found: install Node.js 20 or later (the OIDC e2e tests run oidc-provider)"
	log "scripts/idp: npm install (oidc-provider, playwright-core, axe-core)"
	(cd "$idp_dir" && npm install --no-audit --no-fund) || die "npm install in $idp_dir failed"
fi

if [ "${#missing_pkgs[@]}" -eq 0 ]; then
	log "nothing to install"
	exit 0
fi

command -v apt-get >/dev/null 2>&1 ||
	die "apt-get not found: install ${missing_pkgs[*]} by hand (the e2e tests need prometheus, promtool and testssl)"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 ||
		die "not root and sudo not found: run as root to install ${missing_pkgs[*]}"
	SUDO=(sudo)
fi

# has_candidate reports whether apt knows an installable version of $1.
has_candidate() {
	local cand
	cand=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
	[ -n "$cand" ] && [ "$cand" != "(none)" ]
}

need_update=false
for pkg in "${missing_pkgs[@]}"; do
	if ! has_candidate "$pkg"; then
		need_update=true
	fi
done
if $need_update; then
	log "running apt-get update (package lists do not offer ${missing_pkgs[*]})"
	"${SUDO[@]}" apt-get update || die "apt-get update failed"
fi

log "installing ${missing_pkgs[*]}"
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y --no-install-recommends "${missing_pkgs[@]}"; then
	if ! $need_update; then
		# Stale lists can name .deb files the mirror no longer has.
		log "install failed; retrying after apt-get update"
		"${SUDO[@]}" apt-get update || die "apt-get update failed"
		"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends "${missing_pkgs[@]}" ||
			die "apt-get install ${missing_pkgs[*]} failed"
	else
		die "apt-get install ${missing_pkgs[*]} failed"
	fi
fi

for cmd in "${commands[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || die "$cmd is still missing after installing ${missing_pkgs[*]}"
	log "$cmd: installed ($(command -v "$cmd"))"
done
