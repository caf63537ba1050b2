# gslbd: the commands a newcomer and CI run. `make run` serves the demo
# config on 127.0.0.1:5353 (DNS) and 127.0.0.1:9053 (HTTP); `make test`
# runs the whole suite.

GO       ?= go
BIN      ?= bin/gslbd
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
FUZZTIME ?= 20s
BENCHTIME ?= 10s
# The fixed offered rate make bench also measures latency at (dnsperf -Q).
BENCHQPS ?= 20000

.PHONY: all build run test test-short fuzz bench lint fmt clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gslbd

run: build
	$(BIN) serve --config configs/demo.yaml

# The whole suite: vet, race-enabled tests (integration tests build and
# start the real binary), then each fuzz target for a short bounded time.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	$(MAKE) fuzz

test-short:
	$(GO) test -short -count=1 ./...

fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzServeDNS$$' -fuzztime=$(FUZZTIME) ./gslb
	$(GO) test -run='^$$' -fuzz='^FuzzFastPath$$' -fuzztime=$(FUZZTIME) ./gslb
	$(GO) test -run='^$$' -fuzz='^FuzzLoadConfig$$' -fuzztime=$(FUZZTIME) ./gslb/config
	$(GO) test -run='^$$' -fuzz='^FuzzUpdate$$' -fuzztime=$(FUZZTIME) ./gslb/acme

bench: build
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	$(GO) run ./cmd/dnsbench -gslbd $(BIN) -duration $(BENCHTIME) -qps $(BENCHQPS)

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed; skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
