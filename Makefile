# paas-runner — see README.md.
GO       ?= go
BIN      ?= bin/paas-runner
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)

.PHONY: build test lint dev bench chaos fuzz deb packaging-check clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/paas-runner

## test: vet and run every test with the race detector.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

## lint: go vet, gofmt, then golangci-lint (.golangci.yml) when installed.
## Not run by CI; install it with
##   go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(shell command -v golangci-lint 2>/dev/null || ls "$$($(GO) env GOPATH)/bin/golangci-lint" 2>/dev/null)
lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt needed" && false)
	@if [ -n "$(GOLANGCI_LINT)" ]; then \
	  echo "$(GOLANGCI_LINT) run ./..."; "$(GOLANGCI_LINT)" run ./...; \
	else \
	  echo "notice: golangci-lint not installed, skipped (go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION))"; \
	fi

## dev: run the daemon against an embedded fake GitLab with a demo pipeline.
dev: build
	./$(BIN) dev

## bench: Go micro-benchmarks plus the process-level benchmark table
## (docs/readme/bench.md; sizes: PAAS_BENCH_JOBS, PAAS_BENCH_INFLIGHT,
## PAAS_BENCH_LATENCY, PAAS_BENCH_RUNNING, PAAS_BENCH_WARMUP, PAAS_BENCH_STEADY).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	PAAS_BENCH=1 $(GO) test -count=1 -timeout 30m -run '^TestProcessBench$$' -v ./test/e2e

## chaos: the resilience suite at full size (docs/readme/resilience.md):
## SIGKILL chaos, API faults, rejected pushes, SIGTERM and SIGHUP; then, as
## root with a hand-started dockerd, the Docker daemon restarted mid-run
## (CHAOS_DOCKER_RESTART=0 skips it; it stops and restarts the host's dockerd).
CHAOS_JOBS  ?= 100
CHAOS_KILLS ?= 10
CHAOS_DOCKER_RESTART ?= 1
chaos:
	PAAS_E2E_JOBS=$(CHAOS_JOBS) PAAS_E2E_KILLS=$(CHAOS_KILLS) $(GO) test -race -count=1 -timeout 30m \
	  -run '^(TestResilience|TestSIGTERMWithLaunchesInFlight|TestSIGHUPReload)$$' -v ./test/e2e
	PAAS_CHAOS_DOCKER_RESTART=$(CHAOS_DOCKER_RESTART) $(GO) test -race -count=1 -timeout 15m \
	  -run '^TestDockerDaemonRestart$$' -v ./test/e2e

## fuzz: run every fuzz target for FUZZTIME, one after the other.
FUZZTIME ?= 10s
FUZZ_TARGETS := FuzzParse:./config FuzzDecode:./state FuzzImportHeptapod:./state \
	FuzzParseJob:./coordinator FuzzParseRange:./coordinator FuzzRewriteDependencyProxy:./paas/deploy \
	FuzzEncodeMatchesMarshal:./state
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== $${t%%:*} ($${t#*:}, $(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) "$${t#*:}"; \
	done

clean:
	rm -rf bin dist

## deb: Debian package with nfpm (installed with `go install` when missing).
NFPM_VERSION ?= v2.45.2
ARCH         ?= $(shell $(GO) env GOARCH)
DEB_VERSION  ?= $(shell echo $(VERSION) | sed -e 's/^v//' -e 's/^\([^0-9]\)/0.0.0~\1/')
deb: build
	mkdir -p dist
	./$(BIN) manpage | gzip -9n > dist/paas-runner.1.gz
	@command -v nfpm >/dev/null 2>&1 || $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	VERSION=$(DEB_VERSION) ARCH=$(ARCH) PATH="$$PATH:$$($(GO) env GOPATH)/bin" \
	  nfpm package --config packaging/deb/nfpm.yaml --packager deb --target dist/
	@ls -1 dist/*.deb

## packaging-check: verify the systemd unit and the .deb contents.
packaging-check: deb
	packaging/check.sh
