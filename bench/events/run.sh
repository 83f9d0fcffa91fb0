#!/bin/sh
# Event-rule engine benchmarks: per-event evaluation cost with the default
# pack and with 200 rules, sequence state memory with 100k keys, events/s the
# engine drains, and (as root, with prometheus-alertmanager installed) the
# event-to-Alertmanager latency of the built agent.
#   sh bench/events/run.sh            # from the repository root
set -eu
GO=${GO:-go}
COUNT=${COUNT:-5}
out=${OUT:-bench/results/events}
mkdir -p "$out"
$GO test -run '^$' -bench 'DefaultPack|200Rules|SequenceState100k|Throughput|ExistsVsIn' \
	-benchtime 2s -count "$COUNT" ./internal/eventrules/ | tee "$out/bench.txt"
# Median per benchmark and unit.
awk '/^Benchmark/ { for (i=3; i<NF; i+=2) print $1, $(i+1), $i }' "$out/bench.txt" |
	sort -k1,1 -k2,2 -k3,3g |
	awk '{ k=$1" "$2; if (k!=prev && prev!="") { printf "%-48s %14s  (median of %d)\n", prev, vals[int((n+1)/2)], n; n=0 }
	       prev=k; vals[++n]=$3 }
	     END { if (prev!="") printf "%-48s %14s  (median of %d)\n", prev, vals[int((n+1)/2)], n }' | tee "$out/medians.txt"
if [ "$(id -u)" = 0 ] && [ -x /usr/bin/prometheus-alertmanager ]; then
	$GO test -count=1 -run 'TestAgentToAlertmanager' -v ./test/scenarios/ 2>&1 | grep -E 'latency|PASS|FAIL' | tee "$out/latency.txt"
else
	echo "event-to-Alertmanager latency: skipped (needs root and prometheus-alertmanager)"
fi
