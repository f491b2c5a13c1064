# paas-runner — see README.md.
GO       ?= go
BIN      ?= bin/paas-runner
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)

.PHONY: build test lint dev bench chaos fuzz deb clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/paas-runner

## test: vet and run every test with the race detector.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt needed" && false)

## dev: run the daemon against an embedded fake GitLab with a demo pipeline.
dev: build
	./$(BIN) dev

## bench: Go micro-benchmarks plus the process-level benchmark table.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin dist
