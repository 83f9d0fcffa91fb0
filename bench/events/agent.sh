#!/bin/sh
# What `vigil run` costs per process record under a steady exec load
# (/bin/true at RATE execs/s, 3 process records each), without event rules
# and with the default pack, as a user runs the agent (built binary,
# default configuration). With BASE=<commit> a build of that commit runs
# in the same interleaved rounds (the "before" rows). CPU profiles of this
# build go to $OUT/profiles. Needs root.
#   sudo sh bench/events/agent.sh
#   BASE=main DURATION=30s ROUNDS=3 sudo sh bench/events/agent.sh
set -eu
export PATH="$PATH:/usr/local/go/bin"
GO=${GO:-go}
out=${OUT:-bench/results/events}
mkdir -p "$out"
$GO build -o "$out/vigil" ./cmd/vigil
$GO build -o "$out/agentcost" ./bench/events/agentcost
args="-rate ${RATE:-1070} -duration ${DURATION:-60s} -rounds ${ROUNDS:-2}"
base=""
: >"$out/agent.md"
if [ -n "${BASE:-}" ]; then
	src=$(mktemp -d)
	trap 'rm -rf "$src"' EXIT
	git archive "$BASE" | tar -x -C "$src"
	(cd "$src" && $GO build -o "$src/vigil-base" ./cmd/vigil)
	base="-base $src/vigil-base"
	echo "base: $BASE ($(git rev-parse --short "$BASE"))" | tee -a "$out/agent.md"
fi
echo "this tree: $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ', with uncommitted changes')" | tee -a "$out/agent.md"
"$out/agentcost" -vigil "$out/vigil" $base $args -profile "$out/profiles" | tee -a "$out/agent.md"
