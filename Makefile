# promgate's build and test entry points. `make test` is what CI runs.
GO      ?= go
FUZZTIME ?= 20s

.PHONY: all build test vet unit e2e fuzz deps clean

all: build

build:
	$(GO) build -o bin/promgate ./cmd/promgate

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/

unit:
	$(GO) test -race -count=1 ./...

# A short pass of every fuzz target; crashers land in testdata/fuzz and
# become regression tests.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzQuery$$' -fuzztime=$(FUZZTIME) ./enforce/
	$(GO) test -run='^$$' -fuzz='^FuzzMatchers$$' -fuzztime=$(FUZZTIME) ./enforce/
	$(GO) test -run='^$$' -fuzz='^FuzzParseRequest$$' -fuzztime=$(FUZZTIME) ./proxy/

# Installs the real parts (Debian prometheus, testssl.sh) when missing.
deps:
	./scripts/install-deps.sh

e2e: deps
	$(GO) test -tags e2e -count=1 -v ./e2e/

test: vet unit fuzz e2e

clean:
	rm -rf bin
