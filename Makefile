# Closeloop — the two commands that matter: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/.bin

# Pinned code-generation tools (installed from the Go module proxy into .bin).
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

# Every module of the workspace, for test, vet and bench.
MODULES := libs libs/esdb proto services/console services/intake services/routing services/slaclock services/dispatch services/followup cmd/closeloop cmd/closeloopctl deploy
PKGS := $(addprefix ./,$(addsuffix /...,$(MODULES)))

.PHONY: run test chromium test-short fuzz-smoke bench scale proto proto-tools lint fmt build classifier

run: ## the five services and the console on an embedded NATS JetStream (data in ./data)
	$(GO) run ./cmd/closeloop

# Every command's main package: each service's, the runner and closeloopctl.
BINARIES := $(addprefix ./,$(wildcard services/*/cmd/*) cmd/closeloop cmd/closeloopctl)

build: ## the binaries (every service, the runner, closeloopctl) into ./bin
	$(GO) build -o ./bin/ $(BINARIES)

test: chromium ## the whole suite, with the race detector
	$(GO) test -race -count=1 -timeout 40m $(PKGS)

# The console's browser test drives a real headless Chromium: Debian's
# package, installed when missing (as root, or through sudo).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends chromium; }

# A short run of each fuzz target (CI runs it after the tests).
FUZZTIME ?= 10s
fuzz-smoke:
	$(GO) test -run '^$$' -fuzz FuzzValidateSubmission -fuzztime $(FUZZTIME) ./services/intake/internal/domain/
	$(GO) test -run '^$$' -fuzz FuzzDecodeEnvelope -fuzztime $(FUZZTIME) ./libs/eventlog/

chaos: ## the fault-injection harness, long form (>= 5,000 complaints, >= 100 kills); replay with CHAOS_SEED=<seed>
	CHAOS_LONG=1 $(GO) test -count=1 -timeout 90m -run '^TestChaos$$' -v ./cmd/closeloop/chaos/

test-short: chromium
	$(GO) test -short -count=1 $(PKGS)

bench: ## benchmarks (figures for the closing notes)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s -timeout 60m $(PKGS)

# The scale harness (cmd/closeloop/scale): a generated log of SCALE_COMPLAINTS
# complaints (default 30000; the data dir is reused for the same N), then each
# service started on it as its own process: start-to-ready, CPU and memory.
# Knobs: SCALE_OPEN_PERCENT, SCALE_DIR, SCALE_SERVICES, SCALE_STARTS,
# SCALE_WORKERS, SCALE_PROFILE=<service> (CPU profiles instead of the table).
scale: ## start-up and memory of each service on a big log (not part of make test)
	SCALE=1 $(GO) test -count=1 -timeout 12h -run '^TestScale$$' -v ./cmd/closeloop/scale/

# Routing's text classifier: train it on services/routing/data/complaints.tsv
# (with data/cues.json) into the committed policy/classifier.v1.json, then
# print its 10-fold cross-validation figures. Deterministic: the same data
# gives the same file.
classifier: ## retrain routing's text classifier and print its figures
	$(GO) run ./services/routing/cmd/classifier -train
	$(GO) run ./services/routing/cmd/classifier -cv 10

proto-tools:
	@mkdir -p $(BIN)
	@[ -x $(BIN)/buf ] && $(BIN)/buf --version | grep -qx '$(BUF_VERSION:v%=%)' || GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

proto: proto-tools ## regenerate proto/gen from the .proto sources
	cd proto && $(BIN)/buf lint && $(BIN)/buf generate

lint: ## go vet and a gofmt check
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')
