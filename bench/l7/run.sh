#!/usr/bin/env bash
# Overhead of the L7 data path on an HTTP server: nginx serving a 1 KB
# response on loopback under `wrk -c 50 -t 2 -d 10s --latency`, alone and
# with `vigil run` (embedded defaults plus the l7 probe, and whatever HTTP
# deriver the build enables with it), in interleaved rounds: alone, with,
# alone, with ... The table reports medians over the rounds:
#
#   - requests/s and its ratio with/alone, p50 and p99 latency and their change;
#   - BPF time share: run time of all vigil's programs (the agent turns on
#     kernel.bpf_stats and exports vigil_bpf_program_run_seconds_total) over
#     the wrk window, as % of one core, and per request;
#   - agent CPU per request: utime+stime of the agent (/proc/PID/stat) over
#     the window divided by the requests wrk completed;
#   - l7 records read and dropped (ring full) per request.
#
# TLS=1 serves HTTPS (self-signed certificate): without TLS uprobes the probe
# streams the ciphertext of the syscalls; with them the plaintext of SSL_read
# and SSL_write.
#
# Usage (root, from anywhere):
#   bench/l7/run.sh                 ROUNDS=5 DURATION=10s CONNS=50 THREADS=2
#   TLS=1 bench/l7/run.sh
# Knobs: VIGIL (use this binary instead of building one), EXTRA_CONFIG
# (YAML appended under the generated config, e.g. to turn the deriver off),
# PORT (nginx, 18480), WEB_PORT (vigil, 19480), OUT (work dir, kept).
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
TLS=${TLS:-0}
PORT=${PORT:-18480}
WEB_PORT=${WEB_PORT:-19480}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/bench/results/l7}
export PATH=$PATH:/usr/local/go/bin

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root to load BPF programs" >&2; exit 1; }
for t in nginx wrk curl openssl; do
	command -v $t >/dev/null || { echo "run.sh: $t not found (Debian: nginx wrk curl openssl)" >&2; exit 1; }
done
mkdir -p "$OUT"
rm -rf "$OUT/nginx"
mkdir -p "$OUT/nginx/www" "$OUT/nginx/tmp"
if [ -n "${VIGIL:-}" ]; then
	bin=$VIGIL
else
	bin=$OUT/vigil
	(cd "$ROOT" && go build -o "$bin" ./cmd/vigil)
fi

# nginx: its own prefix, 2 workers, no access log, a static 1 KB body sent
# with write/writev (sendfile off: sendfile bodies never pass through the
# read/write syscalls the probe hooks).
head -c 1024 /dev/zero | tr '\0' 'x' >"$OUT/nginx/www/index.html"
scheme=http listen="listen 127.0.0.1:$PORT;"
if [ "$TLS" = 1 ]; then
	scheme=https
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
		-keyout "$OUT/nginx/key.pem" -out "$OUT/nginx/cert.pem" 2>/dev/null
	listen="listen 127.0.0.1:$PORT ssl; ssl_certificate $OUT/nginx/cert.pem; ssl_certificate_key $OUT/nginx/key.pem;"
fi
cat >"$OUT/nginx/nginx.conf" <<NGINX
user root;
worker_processes 2;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile off;
	keepalive_requests 1000000;
	client_body_temp_path $OUT/nginx/tmp/body;
	proxy_temp_path $OUT/nginx/tmp/proxy;
	fastcgi_temp_path $OUT/nginx/tmp/fastcgi;
	uwsgi_temp_path $OUT/nginx/tmp/uwsgi;
	scgi_temp_path $OUT/nginx/tmp/scgi;
	server {
		$listen
		root $OUT/nginx/www;
		location / { index index.html; }
	}
}
NGINX

cat >"$OUT/vigil.yaml" <<YAML
web:
  listen_address: 127.0.0.1:$WEB_PORT
probes:
  l7: {enabled: true}
rules:
  data_dir: $OUT/tsdb
alerting:
  state_file: $OUT/alerts.json
${EXTRA_CONFIG:-}
YAML

vpid=
cleanup() {
	[ -n "$vpid" ] && kill "$vpid" 2>/dev/null && wait "$vpid" 2>/dev/null
	[ -f "$OUT/nginx/nginx.pid" ] && kill "$(cat "$OUT/nginx/nginx.pid")" 2>/dev/null
	true
}
trap cleanup EXIT
nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf"
url=$scheme://127.0.0.1:$PORT/
for _ in $(seq 50); do curl -skf -o /dev/null "$url" && break; sleep 0.1; done
[ "$(curl -sk "$url" | wc -c)" = 1024 ] || { echo "run.sh: nginx does not serve the 1 KB body" >&2; cat "$OUT/nginx/error.log" >&2; exit 1; }

metrics() { curl -sf "http://127.0.0.1:$WEB_PORT/metrics"; }
start_vigil() {
	"$bin" run -c "$OUT/vigil.yaml" --log.level warn >"$OUT/vigil.log" 2>&1 &
	vpid=$!
	for _ in $(seq 200); do
		metrics 2>/dev/null | grep -q 'vigil_probe_program_attached{.*probe="l7"' && return
		kill -0 "$vpid" 2>/dev/null || break
		sleep 0.1
	done
	echo "run.sh: vigil did not start with the l7 probe:" >&2; cat "$OUT/vigil.log" >&2; exit 1
}
stop_vigil() { kill "$vpid"; wait "$vpid" 2>/dev/null || true; vpid=; }

# snapshot: "agent_ticks bpf_seconds l7_records l7_drops http_events
# l7_bpf_seconds" now.
snapshot() {
	local ticks
	ticks=$(awk '{ print $14 + $15 }' "/proc/$vpid/stat")
	metrics | awk -v t="$ticks" '
		/^vigil_bpf_program_run_seconds_total/ { bpf += $NF }
		/^vigil_bpf_program_run_seconds_total\{.*probe="l7"/ { l7 += $NF }
		/^vigil_probe_events_received_total\{probe="l7"\}/ { rec += $NF }
		/^vigil_probe_events_dropped_total\{probe="l7"/ { drop += $NF }
		/^http_(server|client)_request_duration_seconds_count/ { http += $NF }
		END { printf "%s %.9f %d %d %d %.9f\n", t, bpf, rec, drop, http, l7 }'
}

# to_us VALUE: wrk's latency (e.g. 812.00us, 1.20ms, 1.01s) in microseconds.
to_us() { echo "$1" | awk '{ v = $1 + 0; if ($1 ~ /us$/) print v; else if ($1 ~ /ms$/) print v * 1e3; else if ($1 ~ /s$/) print v * 1e6; else print v }'; }

# one_round CASE: runs wrk and appends a line to rounds.txt:
# case rps p50_us p99_us requests seconds [ticks bpf_s records drops http l7_bpf_s]
one_round() {
	local c=$1 a b t0 t1 w rps p50 p99 reqs
	[ "$c" = with ] && { start_vigil; sleep 2; a=$(snapshot); }
	t0=$(date +%s.%N)
	w=$(wrk -c "$CONNS" -t "$THREADS" -d "$DURATION" --latency "$url")
	t1=$(date +%s.%N)
	[ "$c" = with ] && { b=$(snapshot); stop_vigil; }
	echo "$w" >>"$OUT/wrk.txt"
	rps=$(echo "$w" | awk '/^Requests\/sec/ { print $2 }')
	p50=$(to_us "$(echo "$w" | awk '$1 == "50%" { print $2 }')")
	p99=$(to_us "$(echo "$w" | awk '$1 == "99%" { print $2 }')")
	reqs=$(echo "$w" | awk '/requests in/ { print $1 }')
	if echo "$w" | grep -q 'Non-2xx'; then
		echo "run.sh: nginx answered errors:" >&2; echo "$w" >&2; exit 1
	fi
	# Timeouts and resets count against the case that had them; say so.
	echo "$w" | grep 'Socket errors' | sed "s/^ */run.sh: $c round: /" >&2 || true
	if [ "$c" = with ]; then
		echo "$c $rps $p50 $p99 $reqs $(echo "$t1 - $t0" | bc -l) $a $b" | awk '{
			print $1, $2, $3, $4, $5, $6, $13 - $7, $14 - $8, $15 - $9, $16 - $10, $17 - $11, $18 - $12 }' >>"$OUT/rounds.txt"
	else
		echo "$c $rps $p50 $p99 $reqs $(echo "$t1 - $t0" | bc -l)" >>"$OUT/rounds.txt"
	fi
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
: >"$OUT/rounds.txt"
: >"$OUT/wrk.txt"
for r in $(seq "$ROUNDS"); do
	one_round alone
	one_round with
	echo "round $r: $(tail -2 "$OUT/rounds.txt" | awk '{ printf "%s %s req/s p99 %s us; ", $1, $2, $4 }')"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v c="$1" -v k="$2" '$1 == c { print $k }' "$OUT/rounds.txt" | median; }
tck=$(getconf CLK_TCK)
per_round() { # expression over the "with" columns, one value per round
	awk -v tck="$tck" '$1 == "with" { rps = $2; reqs = $5; sec = $6; ticks = $7; bpf = $8; rec = $9; drop = $10; http = $11; l7 = $12; print '"$1"' }' "$OUT/rounds.txt" | median
}
a_rps=$(col alone 2) w_rps=$(col with 2)
a_p50=$(col alone 3) w_p50=$(col with 3)
a_p99=$(col alone 4) w_p99=$(col with 4)
bpf_share=$(per_round 'bpf / sec * 100')
bpf_req=$(per_round 'bpf * 1e9 / reqs')
l7_share=$(per_round 'l7 / sec * 100')
l7_req=$(per_round 'l7 * 1e9 / reqs')
cpu_share=$(per_round 'ticks / tck / sec * 100')
cpu_req=$(per_round 'ticks / tck * 1e6 / reqs')
rec_req=$(per_round 'rec / reqs')
drop_req=$(per_round 'drop / reqs')
http_req=$(per_round 'http / reqs')

mode=HTTP; [ "$TLS" = 1 ] && mode="HTTPS (TLS=1)"
echo
echo "nginx ($mode, 1 KB, 2 workers) under \`wrk -c $CONNS -t $THREADS -d $DURATION --latency\`, medians of $ROUNDS interleaved rounds"
echo
echo "| | alone | with vigil (l7 on) | change |"
echo "|---|---|---|---|"
awk -v a="$a_rps" -v w="$w_rps" 'BEGIN { printf "| requests/s | %.0f | %.0f | ratio %.3f |\n", a, w, w / a }'
awk -v a="$a_p50" -v w="$w_p50" 'BEGIN { printf "| p50 latency | %.0f µs | %.0f µs | %+.1f %% |\n", a, w, (w / a - 1) * 100 }'
awk -v a="$a_p99" -v w="$w_p99" 'BEGIN { printf "| p99 latency | %.0f µs | %.0f µs | %+.1f %% |\n", a, w, (w / a - 1) * 100 }'
awk -v s="$bpf_share" -v r="$bpf_req" 'BEGIN { printf "| BPF run time (all vigil programs) | | %.1f %% of one core | %.2f µs per request |\n", s, r / 1e3 }'
awk -v s="$l7_share" -v r="$l7_req" 'BEGIN { printf "| of which the l7 probe | | %.1f %% of one core | %.2f µs per request |\n", s, r / 1e3 }'
awk -v s="$cpu_share" -v r="$cpu_req" 'BEGIN { printf "| agent CPU (utime+stime) | | %.1f %% of one core | %.2f µs per request |\n", s, r }'
awk -v r="$rec_req" -v d="$drop_req" -v h="$http_req" 'BEGIN { printf "| l7 records read / dropped per request | | %.2f / %.3f | http events per request %.2f |\n", r, d, h }'
