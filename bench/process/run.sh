#!/usr/bin/env bash
# Benchmarks of the process probe (needs root and the Debian packages
# stress-ng, bpftrace, libbpf-tools, util-linux). Writes its tables to
# stdout and to bench/results/process-*.{txt,md}.
#
#   sudo bench/process/run.sh            # full run (about 2 minutes)
#   DURATION=5s RUNS=3 bench/process/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
DURATION=${DURATION:-10s}
RUNS=${RUNS:-10}
IDLE=${IDLE:-30s}
out=bench/results
mkdir -p "$out"

if [ "$(id -u)" != 0 ]; then
	echo "bench/process/run.sh needs root (it loads eBPF programs)" >&2
	exit 1
fi
for tool in stress-ng bpftrace setpriv; do
	command -v "$tool" >/dev/null || echo "warning: $tool not installed; its part is skipped or fails" >&2
done

go build -o "$out/vigil" ./cmd/vigil
go build -o "$out/execloop" ./bench/process/execloop

echo "== user-space cost per record (Go benchmarks, no kernel)"
go test -run '^$' -bench . -benchtime 200000x -count 5 ./internal/probe/process/ | tee "$out/process-go.txt"

echo "== the built agent under load, next to execsnoop and bpftrace"
go run ./bench/process/driver -vigil "$out/vigil" -execloop "$out/execloop" \
	-duration "$DURATION" -runs "$RUNS" -idle "$IDLE" | tee "$out/process.md"
