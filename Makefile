# benthos-kinesis: build, test, demo, bench, lint. See README.md.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

BIN        := bin/benthos-kinesis
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -X main.version=$(VERSION) -X main.dateBuilt=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)
EMU        := resources/emulators
STATICCHECK_VERSION := v0.8.2
# Go tests: the race detector always; -count=1 so that results are never cached.
GOTEST_FLAGS ?= -race -count=1 -timeout 20m
# Every fuzz target also fuzzes this long in make test (make fuzz: FUZZTIME, default 2m each).
TEST_FUZZTIME ?= 5s

.PHONY: all build test lint bench chaos fuzz demo emulators-up emulators-down clean

all: build

build:
	go build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/benthos-kinesis

emulators-up:
	bash $(EMU)/up.sh

emulators-down:
	bash $(EMU)/down.sh

# test starts the emulators unless they are already running, runs every Go
# test with the race detector, then every fuzz target for TEST_FUZZTIME, and
# stops what it started.
test:
	@started=; \
	if ! bash $(EMU)/running.sh; then started=1; fi; \
	bash $(EMU)/up.sh; \
	set +e; \
	( source ./.emulators.env && go test $(GOTEST_FLAGS) ./... && FUZZTIME=$(TEST_FUZZTIME) bash resources/dev/fuzz.sh ); rc=$$?; \
	if [[ -n "$$started" ]]; then bash $(EMU)/down.sh; fi; \
	exit $$rc

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [[ -n "$$unformatted" ]]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	GOBIN=$(CURDIR)/bin go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	bin/staticcheck ./...

# bench runs the benchmarks against the emulators and the limit-enforcing
# fake and writes the figures into docs/BENCHMARKS.md.
bench: build
	bash resources/dev/bench.sh

# chaos runs the full multi-process fault suite (internal/chaos) three times
# in a row (CHAOS_RUNS) and writes its figures into docs/RELIABILITY.md. Tens
# of minutes; make test runs the short version of each scenario.
chaos:
	bash resources/dev/chaos.sh

# fuzz runs every Go fuzz target (go test -fuzz) for FUZZTIME each (default 2m).
fuzz:
	bash resources/dev/fuzz.sh

# demo installs and starts the emulators, runs a real pipeline end to end
# with the binary, prints what landed where, and stops everything.
demo: build
	bash resources/dev/demo.sh

clean:
	rm -rf bin
