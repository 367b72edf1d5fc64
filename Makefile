# minitron build. `make reproduce` runs the main job on built-in data;
# `make test` runs the test suite. Both install missing system packages.
GO ?= go
BIN := bin/minitron
RUN ?= runs/default

.PHONY: all deps build test test-long reproduce reproduce-quick bench fuzz purego clean

all: build

# Debian packages the build and tests need: OpenBLAS for matrix products.
deps:
	@if ! ls /usr/include/cblas.h /usr/include/*/cblas.h 2>/dev/null | grep -q . || ! ls /usr/lib/*/libopenblas.so /usr/lib/libopenblas.so 2>/dev/null | grep -q .; then \
		echo "installing libopenblas-dev"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev) || \
		(sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev); \
	fi

build: deps
	$(GO) build -o $(BIN) ./cmd/minitron

# The CI suite: vet, the short tests, and the pure-Go (no cgo) build.
test: deps
	$(GO) vet ./...
	$(GO) test -short -count=1 -timeout 20m ./...
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/minitron

# Longer checks that stay out of CI.
test-long: deps
	$(GO) test -count=1 -timeout 60m ./...

purego:
	CGO_ENABLED=0 $(GO) build -o bin/minitron-purego ./cmd/minitron

reproduce: build
	./$(BIN) reproduce --out $(RUN)

reproduce-quick: build
	./$(BIN) reproduce --quick --out runs/quick

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./model/...

clean:
	rm -rf bin
