# gslbd: the commands a newcomer and CI run. `make run` serves the demo
# config on 127.0.0.1:5353 (DNS) and 127.0.0.1:9053 (HTTP); `make test`
# runs the whole suite.

GO       ?= go
BIN      ?= bin/gslbd
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
FUZZTIME ?= 20s
# New inputs are minimized for at most this long: the default (60s) spent
# most of a 20s run minimizing, with no new inputs tried.
FUZZMINTIME ?= 1s
BENCHTIME ?= 10s

# make install: the binary, the systemd units and, unless one is there, a
# configuration with a fresh admin token. DESTDIR stages a package;
# INSTALL_USER=no skips creating the gslbd system user.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR    ?= /etc/systemd/system
DESTDIR    ?=
INSTALL_USER ?= $(if $(DESTDIR),no,yes)
# The fixed offered rate make bench also measures latency at (dnsperf -Q).
BENCHQPS ?= 20000

.PHONY: all build run test test-short fuzz bench faults lint fmt clean install

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gslbd

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/gslbd
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/gslbd
	sed -e 's#/usr/local/bin/gslbd#$(BINDIR)/gslbd#g' -e 's#/etc/gslbd/#$(SYSCONFDIR)/gslbd/#g' \
	  deploy/systemd/gslbd.service > $(DESTDIR)$(UNITDIR)/gslbd.service
	install -m 0644 deploy/systemd/gslbd.socket $(DESTDIR)$(UNITDIR)/gslbd.socket
	@if [ "$(INSTALL_USER)" = yes ] && ! id gslbd >/dev/null 2>&1; then \
	  echo "creating system user gslbd"; useradd --system --no-create-home --shell /usr/sbin/nologin gslbd; fi
	@conf=$(DESTDIR)$(SYSCONFDIR)/gslbd; \
	if [ ! -e $$conf/token ]; then \
	  (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > $$conf/token); echo "wrote a new admin token to $$conf/token"; fi; \
	if [ ! -e $$conf/gslbd.yaml ]; then \
	  sed -e 's|# token_file: /etc/gslbd/token|token_file: $(SYSCONFDIR)/gslbd/token|' configs/example.yaml > $$conf/gslbd.yaml; \
	  echo "wrote $$conf/gslbd.yaml from configs/example.yaml: edit it, then gslbd check-config --config $(SYSCONFDIR)/gslbd/gslbd.yaml"; \
	else echo "kept the existing $$conf/gslbd.yaml"; fi; \
	chmod 0640 $$conf/gslbd.yaml $$conf/token; \
	if [ "$(INSTALL_USER)" = yes ]; then chgrp gslbd $$conf $$conf/gslbd.yaml $$conf/token; fi
	@echo "then: systemctl daemon-reload && systemctl enable --now gslbd.socket gslbd.service"

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
	$(GO) test -run='^$$' -fuzz='^FuzzServeDNS$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./gslb
	$(GO) test -run='^$$' -fuzz='^FuzzFastPath$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./gslb
	$(GO) test -run='^$$' -fuzz='^FuzzLoadConfig$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./gslb/config
	$(GO) test -run='^$$' -fuzz='^FuzzUpdate$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./gslb/acme
	$(GO) test -run='^$$' -fuzz='^FuzzClientSubnet$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./gslb
	$(GO) test -run='^$$' -fuzz='^FuzzParseReport$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./health
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./session/redisstore
	$(GO) test -run='^$$' -fuzz='^FuzzParseChange$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINTIME) ./session/redisstore

bench: build
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	$(GO) run ./cmd/dnsbench -gslbd $(BIN) -duration $(BENCHTIME) -qps $(BENCHQPS)
	$(GO) run ./cmd/dnsbench restart -gslbd $(BIN)

# The fault suite (docs/faults.md): gslbd under a steady dnsperf load,
# one fault at a time, each window against no-fault ones of the same run;
# about 4 minutes. Needs dnsperf and redis-server; exits 1 when a fault
# loses more queries than the rule allows.
FAULTSWINDOW ?= 8s
FAULTSQPS ?= 3000
faults: build
	$(GO) run ./cmd/dnsbench faults -gslbd $(BIN) -window $(FAULTSWINDOW) -qps $(FAULTSQPS)

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed; skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
