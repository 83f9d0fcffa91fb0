# vigil — build, run and test.
#   sudo make run     build and run the agent with the embedded defaults
#   make test         install test dependencies (Debian packages), then run every test
GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/prometheus/common/version.Version=$(VERSION) \
             -X github.com/prometheus/common/version.Revision=$(REVISION) \
             -X github.com/prometheus/common/version.Branch=main
TEST_PKGS ?= ./...
# Debian packages the tests use as real peers and references.
TEST_DEBS := clang llvm libbpf-dev bpftool bpftrace libbpf-tools prometheus prometheus-alertmanager \
             strace iproute2 nftables stress-ng iperf3 util-linux procps coreutils curl python3 nginx \
             wrk redis-server redis-tools libssl-dev openssl
GEN_DEBS  := clang llvm libbpf-dev bpftool

.PHONY: all build run test test-deps unit generate vet fmt bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o vigil ./cmd/vigil

run: build
	./vigil run

# Full test suite. Kernel and end-to-end tests need root (they skip with a
# reason otherwise); CI runs them as root.
test: test-deps vet
	$(GO) test -race -count=1 -timeout 40m $(TEST_PKGS)

# Only the tests that need neither root nor Debian peers.
unit:
	$(GO) test -count=1 -short ./...

test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "missing Debian packages:$$missing (run 'sudo make test-deps'); tests needing them will skip"; fi; \
	fi

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd internal test bench 2>/dev/null)" || { gofmt -l cmd internal test bench; echo "gofmt needed"; exit 1; }

fmt:
	gofmt -w cmd internal test bench 2>/dev/null || true

# Regenerate vmlinux.h and the BPF objects (needs clang; installed from Debian when missing).
generate:
	@missing=""; for p in $(GEN_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/include/amd64/vmlinux.h
	$(GO) generate ./...

bench:
	@ls bench/*/run.sh 2>/dev/null | while read s; do echo "== $$s"; bash $$s || exit 1; done

clean:
	rm -f vigil
