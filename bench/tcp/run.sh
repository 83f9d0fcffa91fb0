#!/usr/bin/env bash
# TCP probe benchmarks (root): iperf3 throughput over loopback and a veth
# pair alone vs under `vigil run` (tcp probe only) at several RTT sampling
# settings and vs libbpf-tools tcplife, then agent RSS with 10,000
# concurrent connections. Results: bench/results/tcp-*.txt and a markdown
# table on stdout (copied into docs/performance.md).
#   ROUNDS=5 SECS=4 CONNS=10000 bash bench/tcp/run.sh
#   ONLY=rss bash bench/tcp/run.sh      (or ONLY=throughput)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-4}
CONNS=${CONNS:-10000}
ONLY=${ONLY:-all}
PORT=${PORT:-15299}
WEB=127.0.0.1:${WEBPORT:-19499}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
OUT=bench/results
mkdir -p "$OUT"
[ "$(id -u)" = 0 ] || { echo "bench/tcp: needs root" >&2; exit 1; }
for t in iperf3 ip curl; do command -v $t >/dev/null || { echo "bench/tcp: needs $t" >&2; exit 1; }; done

$GO build -o "$OUT/vigil" ./cmd/vigil
$GO build -o "$OUT/conns" ./bench/tcp/conns

# Config: every probe off except tcp, with the given rtt_sample_every.
mkconfig() { # $1 = rtt_sample_every, $2 = file, $3 = traffic accounting (true/false)
	"$OUT/vigil" config default | awk -v every="$1" -v traffic="${3:-true}" '
		/^probes:/ {inp=1; print; next}
		inp && /^  [a-z_]+:$/ {probe=$1; sub(":","",probe)}
		inp && /^    enabled:/ {sub(/true|false/, probe=="tcp" ? "true" : "false")}
		inp && probe=="tcp" && /^    rtt_sample_every:/ {sub(/[0-9]+/, every)}
		inp && probe=="tcp" && /^    (interface|cgroup)_traffic:/ {sub(/true|false/, traffic)}
		{print}' > "$2"
}
for e in 1 8 64 0; do mkconfig $e "$OUT/tcp-every$e.yaml" false; done
mkconfig 8 "$OUT/tcp-traffic.yaml" true

VPID=""
start_vigil() { # $1 = config
	"$OUT/vigil" run -c "$1" --web.listen-address "$WEB" --log.level warn 2>>"$OUT/tcp-vigil.log" &
	VPID=$!
	for _ in $(seq 100); do curl -sf "http://$WEB/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "vigil did not start; see $OUT/tcp-vigil.log" >&2; exit 1
}
stop_vigil() { [ -n "$VPID" ] && kill "$VPID" && wait "$VPID" 2>/dev/null || true; VPID=""; }
TPID=""
start_tcplife() { tcplife >/dev/null 2>&1 & TPID=$!; sleep 2; }
stop_tcplife() { [ -n "$TPID" ] && kill "$TPID" && wait "$TPID" 2>/dev/null || true; TPID=""; }

NS=vigil-b-$$
cleanup() { stop_vigil; stop_tcplife; ip netns del $NS-c 2>/dev/null || true; ip netns del $NS-s 2>/dev/null || true; }
trap cleanup EXIT
ip netns add $NS-c; ip netns add $NS-s
ip link add vbc$$ netns $NS-c type veth peer name vbs$$ netns $NS-s
ip -n $NS-c addr add 10.200.254.1/24 dev vbc$$; ip -n $NS-s addr add 10.200.254.2/24 dev vbs$$
for n in $NS-c $NS-s; do ip -n $n link set lo up; done
ip -n $NS-c link set vbc$$ up; ip -n $NS-s link set vbs$$ up

iperf() { # $1 = path (loopback|veth) -> "Gbit/s iperf-cpu-seconds"
	local srv cli host
	if [ "$1" = veth ]; then srv="ip netns exec $NS-s"; cli="ip netns exec $NS-c"; host=10.200.254.2
	else srv=""; cli=""; host=127.0.0.1; fi
	$srv iperf3 -s -1 -p $PORT >/dev/null 2>&1 &
	local spid=$!
	sleep 0.3
	$cli iperf3 -c $host -p $PORT -t "$SECS" -J > "$OUT/tcp-iperf.json"
	wait $spid || true
	python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))["end"]
cpu = j["cpu_utilization_percent"]
secs = j["sum_received"]["seconds"]
print("%.3f %.3f" % (j["sum_received"]["bits_per_second"]/1e9, (cpu["host_total"]+cpu["remote_total"])/100*secs))' "$OUT/tcp-iperf.json"
}

# Seconds the kernel spent in the tcp probe's BPF programs (bpf_stats).
bpf_seconds() {
	curl -s "http://$WEB/metrics" | awk '/^vigil_bpf_program_run_seconds_total\{probe="tcp"/ {s+=$2} END {printf "%.6f", s}'
}

if [ "$ONLY" != rss ]; then
MODES="alone vigil-default vigil-every1 vigil-every64 vigil-rtt-off vigil-traffic tcplife"
RES="$OUT/tcp-throughput.txt"
: > "$RES"
for r in $(seq "$ROUNDS"); do
	for path in loopback veth; do
		for m in $MODES; do
			case $m in
			vigil-default) start_vigil "$OUT/tcp-every8.yaml" ;;
			vigil-every1) start_vigil "$OUT/tcp-every1.yaml" ;;
			vigil-every64) start_vigil "$OUT/tcp-every64.yaml" ;;
			vigil-rtt-off) start_vigil "$OUT/tcp-every0.yaml" ;;
			vigil-traffic) start_vigil "$OUT/tcp-traffic.yaml" ;;
			tcplife) start_tcplife ;;
			esac
			read -r g cpu < <(iperf $path)
			b=0
			case $m in vigil-*) b=$(bpf_seconds) ;; esac
			stop_vigil; stop_tcplife
			echo "$path $m $r $g $cpu $b" | tee -a "$RES"
		done
	done
done

echo
echo "| path | mode | median Gbit/s | runs (Gbit/s) | vs alone | BPF time / iperf3 CPU time (median) | BPF ns per MB |"
echo "|---|---|---|---|---|---|---|"
python3 - "$RES" "$SECS" <<'PY'
import sys, statistics, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    path, mode, _, g, cpu, bpf = line.split()
    runs[(path, mode)].append((float(g), float(cpu), float(bpf)))
for path in ("loopback", "veth"):
    base = statistics.median(x[0] for x in runs[(path, "alone")])
    for mode in ("alone", "vigil-default", "vigil-every1", "vigil-every64", "vigil-rtt-off", "vigil-traffic", "tcplife"):
        v = runs[(path, mode)]
        m = statistics.median(x[0] for x in v)
        share, per_mb = "-", "-"
        if mode.startswith("vigil"):
            share = "%.2f%%" % (100 * statistics.median(x[2] / x[1] for x in v if x[1] > 0))
            # bytes moved = Gbit/s * seconds / 8
            per_mb = "%.0f" % statistics.median(x[2] * 1e9 / (x[0] * 1e9 / 8 * float(sys.argv[2]) / 1e6) for x in v if x[0] > 0)
        print(f"| {path} | {mode} | {m:.2f} | {' '.join(f'{x[0]:.1f}' for x in v)} | {m/base:.3f} | {share} | {per_mb} |")
PY

echo
echo "## BPF cost per program (rtt_sample_every 8, traffic accounting on, iperf3 over loopback, bpf_stats)"
start_vigil "$OUT/tcp-traffic.yaml"
iperf loopback >/dev/null
echo "| program | runs | ns per run |"
echo "|---|---|---|"
curl -s "http://$WEB/metrics" | awk '/^vigil_bpf_program_(run_seconds|runs)_total\{probe="tcp"/ {
	split($1, a, "program=\""); split(a[2], b, "\""); if ($1 ~ /run_seconds/) t[b[1]] = $2; else r[b[1]] = $2 }
	END { for (p in r) if (r[p] > 1000) printf "| %s | %d | %.0f |\n", p, r[p], t[p] * 1e9 / r[p] }' | sort -u
stop_vigil
fi
[ "$ONLY" = throughput ] && exit 0

echo
echo "## RSS with $CONNS concurrent connections"
start_vigil "$OUT/tcp-every8.yaml"
rss() { awk '/^VmRSS/ {print $2}' /proc/$VPID/status; }
hwm() { awk '/^VmHWM/ {print $2}' /proc/$VPID/status; }
idle=$(rss)
"$OUT/conns" -n "$CONNS" -hold 60s > "$OUT/tcp-conns.txt" &
CPID=$!
until grep -q '^open' "$OUT/tcp-conns.txt" 2>/dev/null; do sleep 0.2; kill -0 $CPID || { echo "conns failed" >&2; exit 1; }; done
sleep 1
held=$(rss)
t0=$(date +%s.%N)
curl -s "http://$WEB/metrics" > "$OUT/tcp-metrics-10k.txt"
t1=$(date +%s.%N)
scraped=$(rss)
active=$(awk '/^vigil_tcp_connections_active/ {s+=$2} END {print s}' "$OUT/tcp-metrics-10k.txt")
kill $CPID; wait $CPID 2>/dev/null || true
sleep 1
after=$(rss)
peak=$(hwm)
stop_vigil
cat "$OUT/tcp-conns.txt"
echo "| moment | VmRSS MiB |"
echo "|---|---|"
printf '| idle, after start | %.1f |\n' "$(echo "$idle/1024" | bc -l)"
printf '| %d connections open (%s established in the socket table) | %.1f |\n' "$CONNS" "$active" "$(echo "$held/1024" | bc -l)"
printf '| after a /metrics scrape (took %.3f s) | %.1f |\n' "$(echo "$t1-$t0" | bc -l)" "$(echo "$scraped/1024" | bc -l)"
printf '| after all closed | %.1f |\n' "$(echo "$after/1024" | bc -l)"
printf '| peak (VmHWM) | %.1f |\n' "$(echo "$peak/1024" | bc -l)"
