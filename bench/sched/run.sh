#!/usr/bin/env bash
# Cost of the sched probe, side by side with libbpf-tools runqlat, in one run.
#
# 1. Overhead on a context-switch heavy workload: `perf bench sched pipe -l N`
#    (two processes ping-pong over pipes; every op is two context switches
#    and two wake-ups) alone, under `vigil run` with only the sched probe
#    enabled, and under `runqlat` (interval one hour: it only aggregates).
#    Rounds are interleaved; the table reports the median wall time per case
#    and its ratio to the workload alone.
# 2. BPF run time per event of each side's programs during those rounds
#    (bpftool prog show: run_time_ns / run_cnt, kernel.bpf_stats_enabled on).
# 3. The probe's CPU cost with no workload (idle) and under
#    `stress-ng --cpu 4`: BPF run time of its programs over WINDOW seconds as
#    a share of one core, with the events per second behind it.
#
# Usage (root): bench/sched/run.sh          N=200000 ROUNDS=5 WINDOW=10
set -euo pipefail

N=${N:-200000}
ROUNDS=${ROUNDS:-5}
WINDOW=${WINDOW:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/bench/results/sched}
PORT=${PORT:-19482}
export PATH=$PATH:/usr/local/go/bin

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root to load BPF programs" >&2; exit 1; }
for t in perf runqlat bpftool stress-ng jq; do
	command -v $t >/dev/null || { echo "run.sh: $t not found (Debian: linux-perf libbpf-tools bpftool stress-ng jq)" >&2; exit 1; }
done
mkdir -p "$OUT"
(cd "$ROOT" && go build -o "$OUT/vigil" ./cmd/vigil)
cat >"$OUT/sched.yaml" <<YAML
web:
  listen_address: 127.0.0.1:$PORT
probes:
  process: {enabled: false}
  open: {enabled: false}
  tcp: {enabled: false}
  sched: {enabled: true}
rules:
  enabled: false
alerting:
  state_file: $OUT/alerts.json
YAML

old_stats=$(sysctl -n kernel.bpf_stats_enabled)
tracer=
cleanup() {
	[ -n "$tracer" ] && kill "$tracer" 2>/dev/null && wait "$tracer" 2>/dev/null
	sysctl -qw kernel.bpf_stats_enabled="$old_stats"
}
trap cleanup EXIT
sysctl -qw kernel.bpf_stats_enabled=1

# progs PID: "name run_cnt run_time_ns" for every BPF program PID holds
# (program ids from its fds' fdinfo; bpftool here cannot list holders).
progs() {
	local id
	for id in $(grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2>/dev/null | awk '{ print $2 }' | sort -u); do
		bpftool prog show id "$id" -j | jq -r '"\(.name) \(.run_cnt // 0) \(.run_time_ns // 0)"'
	done
}

start_tracer() { # case
	case $1 in
	vigil)
		"$OUT/vigil" run -c "$OUT/sched.yaml" --log.level warn >"$OUT/vigil.log" 2>&1 &
		tracer=$!
		for _ in $(seq 100); do
			curl -sf "http://127.0.0.1:$PORT/metrics" 2>/dev/null | grep -q 'vigil_probe_program_attached{.*probe="sched"' && return
			sleep 0.1
		done
		echo "run.sh: vigil did not start:" >&2; cat "$OUT/vigil.log" >&2; exit 1 ;;
	runqlat)
		runqlat 3600 1 >/dev/null 2>&1 &
		tracer=$!
		for _ in $(seq 100); do
			[ -n "$(progs $tracer)" ] && return
			sleep 0.1
		done
		echo "run.sh: runqlat did not attach" >&2; exit 1 ;;
	esac
}

stop_tracer() { # case: records the programs' run time first
	[ -z "$tracer" ] && return
	progs "$tracer" | sed "s/^/$1 /" >>"$OUT/progs.txt"
	kill "$tracer"; wait "$tracer" 2>/dev/null || true
	tracer=
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$OUT/rounds.txt"
: >"$OUT/progs.txt"
for r in $(seq "$ROUNDS"); do
	for c in alone vigil runqlat; do
		[ $c = alone ] || start_tracer $c
		t=$(perf bench sched pipe -l "$N" 2>&1 | awk '/Total time/ { print $3 }')
		echo "$c $t" >>"$OUT/rounds.txt"
		stop_tracer $c
	done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
base=$(awk '$1 == "alone" { print $2 }' "$OUT/rounds.txt" | median)
echo
echo "perf bench sched pipe -l $N: median wall time of $ROUNDS interleaved rounds"
printf '%-8s %10s %10s %8s\n' case seconds usec/op ratio
for c in alone vigil runqlat; do
	m=$(awk -v c=$c '$1 == c { print $2 }' "$OUT/rounds.txt" | median)
	awk -v c=$c -v m="$m" -v b="$base" -v n="$N" 'BEGIN { printf "%-8s %10.3f %10.3f %8.3f\n", c, m, m * 1e6 / n, m / b }'
done
echo
echo "BPF run time per event (all rounds together)"
printf '%-8s %-16s %12s %10s\n' case program runs ns/run
awk '{ k = $1 " " $2; n[k] += $3; t[k] += $4 } END { for (k in n) if (n[k] > 0) { split(k, a, " "); printf "%-8s %-16s %12d %10.1f\n", a[1], a[2], n[k], t[k] / n[k] } }' \
	"$OUT/progs.txt" | sort

# Idle and busy cost of the probe alone.
cost() { # label
	start_tracer vigil
	sleep 1
	local a b
	a=$(progs "$tracer" | awk '{ n += $2; t += $3 } END { print n, t }')
	sleep "$WINDOW"
	b=$(progs "$tracer" | awk '{ n += $2; t += $3 } END { print n, t }')
	kill "$tracer"; wait "$tracer" 2>/dev/null || true
	tracer=
	echo "$a $b" | awk -v l="$1" -v w="$WINDOW" '{ n = $3 - $1; t = $4 - $2
		printf "%-22s %12.0f %10.1f %12.4f\n", l, n / w, (n ? t / n : 0), t / 1e9 / w * 100 }'
}
echo
echo "load now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sched probe cost over ${WINDOW}s (BPF run time of its programs)"
printf '%-22s %12s %10s %12s\n' state events/s ns/event "% of 1 core"
cost idle
stress-ng --cpu 4 --timeout $((WINDOW + 3))s --quiet &
stress=$!
sleep 1
cost "stress-ng --cpu 4"
wait "$stress" || true
stress-ng --switch 2 --timeout $((WINDOW + 3))s --quiet &
stress=$!
sleep 1
cost "stress-ng --switch 2"
wait "$stress" || true
