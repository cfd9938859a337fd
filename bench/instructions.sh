#!/bin/sh
# Instructions one request costs in proxy's BenchmarkServeTracing cases,
# counted by valgrind (callgrind): deterministic where CPU times on a shared
# machine are not, so it settles differences of a few per cent that the
# harness's timings cannot. Each case runs twice, with N1 and N2 requests
# on one CPU; (count(N2) - count(N1)) / (N2 - N1) is one request's cost,
# the set-up (policy compilation, certificates, listeners) cancelled out.
# With GOGC=off in the environment the garbage collector's share is left
# out. Asynchronous preemption is off: its signals trip callgrind up. The
# runtime's use of RDTSCP is off too: it reads the clock with it where the
# CPU has the instruction, and valgrind 3.19 cannot decode it.
#
#   bench/instructions.sh [case ...]      default: off on-not-sampled on on-otlp
#   PROXY_TEST=path/to/proxy.test          an already built test binary
#   N1=2000 N2=6000                        the two request counts
set -eu
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
N1=${N1:-2000}
N2=${N2:-6000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=${PROXY_TEST:-}
if [ -z "$bin" ]; then
	bin=$work/proxy.test
	go test -c -o "$bin" ./proxy
fi
case "$bin" in /*) ;; *) bin=$(pwd)/$bin ;; esac
[ $# -gt 0 ] || set -- off on-not-sampled on on-otlp
count() { # case N → instructions
	(cd proxy && GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off valgrind --tool=callgrind --cache-sim=no --branch-sim=no \
		--callgrind-out-file="$work/cg" "$bin" -test.run '^$' -test.bench "^BenchmarkServeTracing/$1\$" \
		-test.benchtime "$2x" -test.cpu 1 >"$work/log" 2>&1) || { cat "$work/log" >&2; exit 1; }
	sed -n 's/^summary: //p' "$work/cg"
}
printf '%-16s %14s\n' case 'instr/request'
for c in "$@"; do
	a=$(count "$c" "$N1")
	b=$(count "$c" "$N2")
	printf '%-16s %14d\n' "$c" $(((b - a) / (N2 - N1)))
done
