#!/usr/bin/env bash
# Overhead of tracing file opens, side by side, in one run.
#
# The workload (bench/open/openloop) makes N openat+close pairs on one thread
# and reports its loop's wall time and its thread's CPU time. BPF programs on
# syscall tracepoints run in the workload's thread, so their cost shows in its
# CPU time, which other load on the machine disturbs far less than wall time. It runs alone, then under each tracer:
#   floor        empty BPF programs on syscalls:sys_{enter,exit}_openat
#   vigil-run    `vigil run` with the default config (probes: process, open;
#                no consumer of open events, so opens are only counted in the kernel)
#   vigil-trace  `vigil trace open --comm openloop -o json` (every open becomes an
#                event in user space, printed to /dev/null)
#   opensnoop    libbpf-tools opensnoop, output to a file
#   bpftrace     tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }
#   strace       strace -f -c
# and, for the syscall statistics probe (every syscall is hooked):
#   floor-raw    empty BPF programs on raw_syscalls:sys_{enter,exit} (classic tracepoint)
#   floor-rawtp  the same attached as raw tracepoints
#   vigil-sc     `vigil run` with probes.syscalls.enabled: true (plus the default probes)
#   syscount     libbpf-tools syscount (counts per syscall only)
#   syscount-lat libbpf-tools syscount -L (also times each syscall, as vigil does)
# Rounds are interleaved; the table reports medians. Then the event-rate
# tool measures open events delivered to user space.
#
# Usage (root): bench/open/run.sh            N=1000000 ROUNDS=5 STRACE_ROUNDS=3
set -euo pipefail

N=${N:-1000000}
ROUNDS=${ROUNDS:-5}
STRACE_ROUNDS=${STRACE_ROUNDS:-3}
CASES=${CASES:-"alone floor vigil-run vigil-trace opensnoop bpftrace strace floor-raw floor-rawtp vigil-sc syscount syscount-lat"}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/bench/results/open}
BIN=$OUT/bin
PORT=${PORT:-19481}
export PATH=$PATH:/usr/local/go/bin

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root to load BPF programs" >&2; exit 1; }
for t in opensnoop syscount bpftrace strace bpftool stdbuf; do
	command -v $t >/dev/null || { echo "run.sh: $t not found (Debian: libbpf-tools bpftrace strace bpftool coreutils)" >&2; exit 1; }
done
mkdir -p "$BIN"
(cd "$ROOT" && go build -o "$BIN/vigil" ./cmd/vigil && go build -o "$BIN/openloop" ./bench/open/openloop &&
	go build -o "$BIN/floor" ./bench/open/floor && go build -o "$BIN/eventrate" ./bench/open/eventrate)
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
printf 'probes:\n  syscalls:\n    enabled: true\n' >"$OUT/syscalls.yaml"
RESULTS=$OUT/results.tsv
: >"$RESULTS"

wait_for() { # file pattern seconds
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "run.sh: timed out waiting for '$2' in $1" >&2
	cat "$1" >&2 || true
	return 1
}

wait_prog() { # BPF program name
	local i
	for ((i = 0; i < 100; i++)); do
		bpftool prog show name "$1" >/dev/null 2>&1 && { sleep 0.3; return 0; }
		sleep 0.1
	done
	echo "run.sh: program $1 never loaded" >&2
	return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

TRACER=""
start_tracer() { # case
	local log=$OUT/$1.log
	TRACER=""
	case $1 in
	alone | strace) ;;
	floor) "$BIN/floor" >"$log" 2>&1 & TRACER=$!; wait_for "$log" attached 20 ;;
	floor-raw) "$BIN/floor" raw_syscalls >"$log" 2>&1 & TRACER=$!; wait_for "$log" attached 20 ;;
	floor-rawtp) "$BIN/floor" raw_syscalls_rawtp >"$log" 2>&1 & TRACER=$!; wait_for "$log" attached 20 ;;
	vigil-run) "$BIN/vigil" run --web.listen-address 127.0.0.1:$PORT >"$log" 2>&1 & TRACER=$!; wait_for "$log" "vigil started" 30 ;;
	vigil-sc) "$BIN/vigil" run -c "$OUT/syscalls.yaml" --web.listen-address 127.0.0.1:$PORT >"$log" 2>&1 & TRACER=$!; wait_for "$log" "vigil started" 30 ;;
	vigil-trace) "$BIN/vigil" trace open --comm openloop -o json >/dev/null 2>"$log" & TRACER=$!; wait_prog tp_exit_openat ;;
	opensnoop) stdbuf -oL opensnoop >"$log" 2>&1 & TRACER=$!; wait_for "$log" PID 30 ;;
	syscount) stdbuf -oL syscount >"$log" 2>&1 & TRACER=$!; wait_for "$log" "Tracing syscalls" 30 ;;
	syscount-lat) stdbuf -oL syscount -L >"$log" 2>&1 & TRACER=$!; wait_for "$log" "Tracing syscalls" 30 ;;
	bpftrace) bpftrace -e 'tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }' >"$log" 2>&1 & TRACER=$!; wait_for "$log" Attaching 30; sleep 0.5 ;;
	*) echo "unknown case $1" >&2; exit 1 ;;
	esac
}

stop_tracer() {
	[ -n "$TRACER" ] || return 0
	kill -INT "$TRACER" 2>/dev/null || true
	wait "$TRACER" 2>/dev/null || true
	TRACER=""
}
trap stop_tracer EXIT

for ((r = 1; r <= ROUNDS; r++)); do
	for c in $CASES; do
		[ "$c" = strace ] && ((r > STRACE_ROUNDS)) && continue
		start_tracer "$c"
		t0=0
		[ -n "$TRACER" ] && t0=$(cpu_ticks "$TRACER")
		if [ "$c" = strace ]; then
			res=$(strace -f -c -o "$OUT/strace.txt" "$BIN/openloop" -n "$N")
		else
			res=$("$BIN/openloop" -n "$N")
		fi
		read -r ns cpuns <<<"$res"
		t1=0
		[ -n "$TRACER" ] && t1=$(cpu_ticks "$TRACER")
		stop_tracer
		printf '%s\t%d\t%s\t%d\t%s\n' "$c" "$r" "$ns" "$((t1 - t0))" "$cpuns" >>"$RESULTS"
		awk -v r="$r" -v c="$c" -v w="$ns" -v u="$cpuns" 'BEGIN { printf "round %d %-12s wall %6.3f s  cpu %6.3f s\n", r, c, w/1e9, u/1e9 }' >&2
	done
done

TICK=$(getconf CLK_TCK)
echo
echo "Workload: $N openat+close pairs (bench/open/openloop), $ROUNDS rounds (strace: $STRACE_ROUNDS), $(nproc) CPUs, $(uname -r)."
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| tracer | workload CPU (s) | CPU slowdown | added CPU ns per openat+close | wall (s) | wall slowdown | tracer's own CPU (s) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
alone=$(awk -F'\t' '$1=="alone"{print $3}' "$RESULTS" | median)
alonecpu=$(awk -F'\t' '$1=="alone"{print $5}' "$RESULTS" | median)
for c in $CASES; do
	m=$(awk -F'\t' -v c="$c" '$1==c{print $3}' "$RESULTS" | median)
	cpu=$(awk -F'\t' -v c="$c" '$1==c{print $4}' "$RESULTS" | median)
	wc=$(awk -F'\t' -v c="$c" '$1==c{print $5}' "$RESULTS" | median)
	awk -v c="$c" -v m="$m" -v a="$alone" -v wc="$wc" -v ac="$alonecpu" -v n="$N" -v cpu="$cpu" -v tick="$TICK" 'BEGIN {
		printf "| %s | %.3f | %.2fx | %.0f | %.3f | %.2fx | %.2f |\n", c, wc/1e9, wc/ac, (wc-ac)/n, m/1e9, m/a, cpu/tick }'
done

echo
echo "Open events delivered to user space (bench/open/eventrate, vigil's open probe, events filtered in the kernel to comm openloop):"
echo
echo '```'
"$BIN/eventrate" -openloop "$BIN/openloop" -n "$N"
"$BIN/eventrate" -openloop "$BIN/openloop" -n "$N" -drain -ringbuf $((1 << 28))
echo '```'
grep -h "lost" "$OUT"/opensnoop.log 2>/dev/null | tail -3 || true
