# benthos-kinesis: build, test, demo, bench, lint. See README.md.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

BIN        := bin/benthos-kinesis
# Release stamps printed by `benthos-kinesis --version` (with the Benthos and Go
# versions, which the binary reads from its own build info).
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
DATE_BUILT ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS    := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.dateBuilt=$(DATE_BUILT)
EMU        := resources/emulators
STATICCHECK_VERSION := v0.8.2
# Go tests: the race detector always; -count=1 so that results are never cached.
GOTEST_FLAGS ?= -race -count=1 -timeout 20m
# Every fuzz target also fuzzes this long in make test (make fuzz: FUZZTIME, default 2m each).
TEST_FUZZTIME ?= 5s

.PHONY: all build dist test lint bench chaos fuzz demo emulators-up emulators-down clean

all: build

build:
	go build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/benthos-kinesis

# dist builds static release binaries (linux and darwin, amd64 and arm64) into
# dist/ as tar.gz archives with LICENSE, README.md and CHANGELOG.md, and their
# SHA-256 checksums in dist/SHA256SUMS.
dist:
	VERSION="$(VERSION)" COMMIT="$(COMMIT)" DATE_BUILT="$(DATE_BUILT)" bash resources/dev/dist.sh

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
