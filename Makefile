# promgate's build and test entry points. `make test` is what CI runs.
GO      ?= go
FUZZTIME ?= 30s
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
STATIC_OUT ?= bin

# The release build: a static binary (no cgo, no dynamic loader) with the
# version stamped in. The Dockerfile runs `make static` and deploy's test
# builds with this same variable, so the image and the test cannot drift.
GO_BUILD_STATIC = CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X github.com/promgate/promgate/cli.Version=$(VERSION)"

.PHONY: all build static test vet lint unit e2e e2e-thanos fuzz deps clean

all: build

build:
	$(GO) build -o bin/promgate ./cmd/promgate

# promgate and the container's health probe, as the image ships them.
static:
	$(GO_BUILD_STATIC) -o $(STATIC_OUT)/promgate ./cmd/promgate
	$(GO_BUILD_STATIC) -o $(STATIC_OUT)/healthcheck ./deploy/healthcheck

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/

# golangci-lint (.golangci.yml), pinned. It is built into .tools/ under a
# name that carries its version, so it is built once per version and not on
# every run.
GOLANGCI_LINT_VERSION = v2.15.0
GOLANGCI_LINT = .tools/golangci-lint-$(GOLANGCI_LINT_VERSION)

$(GOLANGCI_LINT):
	@mkdir -p .tools
	GOBIN=$(CURDIR)/.tools $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv .tools/golangci-lint $@

lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

unit:
	$(GO) test -race -count=1 ./...

# A short pass of every fuzz target; crashers land in testdata/fuzz and
# become regression tests.
fuzz:
	GO=$(GO) scripts/fuzz.sh enforce FuzzQuery $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh enforce FuzzMatchers $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh proxy FuzzParseRequest $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh enforce FuzzExposition $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh enforce FuzzFilterTargets $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh authn FuzzSafeRedirect $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh audit FuzzSanitizeClientRequestID 10s
	GO=$(GO) scripts/fuzz.sh audit FuzzParseCheckpoint 10s
	GO=$(GO) scripts/fuzz.sh enforce FuzzCost 10s
	GO=$(GO) scripts/fuzz.sh authn FuzzSPIFFEID 10s
	GO=$(GO) scripts/fuzz.sh proxy FuzzTraceparent 10s
	GO=$(GO) scripts/fuzz.sh proxy FuzzProxyHeader 10s
	GO=$(GO) scripts/fuzz.sh tracing FuzzEnvHeaders 10s
	GO=$(GO) scripts/fuzz.sh tracing FuzzEncode 10s
	GO=$(GO) scripts/fuzz.sh tracing FuzzEncodeRequest 10s
	GO=$(GO) scripts/fuzz.sh audit FuzzParseLine 10s
	GO=$(GO) scripts/fuzz.sh enforce FuzzAMMatcher 10s
	GO=$(GO) scripts/fuzz.sh enforce FuzzParseSilence 10s
	GO=$(GO) scripts/fuzz.sh enforce FuzzAMBodies 10s
	GO=$(GO) scripts/fuzz.sh console FuzzThreshold 10s
	GO=$(GO) scripts/fuzz.sh enforce FuzzWrite 10s
	GO=$(GO) scripts/fuzz.sh enforce FuzzReadMatchers 10s
	GO=$(GO) scripts/fuzz.sh enforce FuzzReadAnswer 10s
	GO=$(GO) scripts/fuzz.sh proxy FuzzDecodeMatrix 10s
	GO=$(GO) scripts/fuzz.sh detect FuzzParseFlavour 10s

# Installs the real parts (Debian prometheus, testssl.sh, ...) when missing,
# and builds Thanos from its pinned module into .cache/thanos/ (about 2.5
# minutes of two cores the first time; scripts/build-thanos.sh).
deps:
	./scripts/install-deps.sh
	./scripts/build-thanos.sh

e2e: deps
	$(GO) test -tags e2e -count=1 -timeout 25m -v ./e2e/

test: vet lint unit fuzz e2e

# The Thanos end-to-end test alone (it is also part of `make e2e`).
e2e-thanos: deps
	$(GO) test -tags e2e -count=1 -v -run '^TestThanos$$' ./e2e/

# Benchmarks (bench/, docs/performance.md); none of them is part of `make test`.
# bench runs every cell of the side-by-side harness and writes
# bench/results/latest.md plus a dated copy; bench-smoke is the short pass CI
# runs to keep the harness working (under 60 s); bench-go runs the hot-path Go
# benchmarks and compares them with the stored baseline.
BENCH_BIN   = bench/.bin
BENCH_COUNT ?= 6
BENCH_PKGS  ?= ./proxy/ ./authz/ ./enforce/ ./audit/ ./authn/

.PHONY: bench bench-smoke bench-go bench-tools detectors-eval

bench-tools:
	@test -x $(BENCH_BIN)/prom-label-proxy || GOBIN=$(CURDIR)/$(BENCH_BIN) $(GO) install github.com/prometheus-community/prom-label-proxy@v0.11.1
	$(GO) build -o $(BENCH_BIN)/harness ./bench/harness

bench: bench-tools
	$(BENCH_BIN)/harness -mode full

bench-smoke: bench-tools
	$(BENCH_BIN)/harness -mode smoke

bench-go:
	$(GO) test -p 1 -run='^$$' -bench=. -benchmem -count=$(BENCH_COUNT) $(BENCH_PKGS) > bench/results/go-latest.txt
	@test -f bench/results/go-baseline.txt || { cp bench/results/go-latest.txt bench/results/go-baseline.txt; echo "bench-go: stored the first baseline"; }
	@if [ -x $(BENCH_BIN)/benchstat ] || GOBIN=$(CURDIR)/$(BENCH_BIN) $(GO) install golang.org/x/perf/cmd/benchstat@latest; then \
		$(BENCH_BIN)/benchstat bench/results/go-baseline.txt bench/results/go-latest.txt; \
	else cat bench/results/go-latest.txt; fi

# The detector noise benchmark: every detector on generated weeks of benign
# traffic and with its attack injected; writes docs/detectors-noise.md. Not
# part of make test.
detectors-eval:
	$(GO) run ./bench/detectors -out docs/detectors-noise.md

clean:
	rm -rf bin
