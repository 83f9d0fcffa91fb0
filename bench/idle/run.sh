#!/bin/sh
# Idle cost of the agent with its embedded defaults (default probes and
# rules): CPU as % of one core, RSS, and wake-ups (context switches) per
# second, each the median of several windows once start-up has settled.
# Needs root. Run from the repository root on a quiet machine:
#   sudo sh bench/idle/run.sh
# Knobs: WINDOW (seconds per window, 20), WINDOWS (5), SETTLE (seconds
# after start-up, 20), VIGIL (use this binary instead of building one),
# EXTRA_CONFIG (YAML appended to the config, e.g. to turn probes off and
# split the cost), GODEBUG/GOGC/GOMEMLIMIT pass through to the agent.
set -eu
GO=${GO:-go}
WINDOW=${WINDOW:-20}
WINDOWS=${WINDOWS:-5}
SETTLE=${SETTLE:-20}
tmp=$(mktemp -d)
vpid=
trap '[ -n "$vpid" ] && kill $vpid 2>/dev/null; rm -rf "$tmp"' EXIT
if [ -n "${VIGIL:-}" ]; then
	bin=$VIGIL
else
	bin=$tmp/vigil
	$GO build -o "$bin" ./cmd/vigil
fi
# Only the data and state locations differ from the embedded defaults.
printf 'rules:\n  data_dir: %s/tsdb\nalerting:\n  state_file: %s/alerts.json\n%s\n' "$tmp" "$tmp" "${EXTRA_CONFIG:-}" > "$tmp/v.yaml"
port=$((20000 + $$ % 20000))
"$bin" run --config "$tmp/v.yaml" --web.listen-address 127.0.0.1:$port --log.level warn >/dev/null 2>"$tmp/err" &
vpid=$!
up=
for i in $(seq 200); do
	if curl -sf http://127.0.0.1:$port/healthz >/dev/null 2>&1; then up=1; break; fi
	kill -0 $vpid 2>/dev/null || break
	sleep 0.1
done
if [ -z "$up" ]; then echo "vigil did not start:" >&2; cat "$tmp/err" >&2; exit 1; fi
sleep "$SETTLE"

tck=$(getconf CLK_TCK)
# utime+stime of the whole process (exited threads included), in ticks.
cpu() { awk '{ print $14 + $15 }' /proc/$vpid/stat; }
# Context switches of every thread: each is the thread going to sleep or
# being woken, the cost an idle agent should not have.
switches() { cat /proc/$vpid/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s }'; }
rss() { awk '/^VmRSS/ { print $2 }' /proc/$vpid/status; }
# Ring-buffer records read by all probes: on a machine that is not really
# idle, the agent's cost follows the activity it observes.
events() { curl -sf http://127.0.0.1:$port/metrics | awk '/^vigil_probe_events_received_total/ { s += $NF } END { printf "%d\n", s }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: > "$tmp/cpu"; : > "$tmp/rss"; : > "$tmp/wake"; : > "$tmp/ev"
for w in $(seq "$WINDOWS"); do
	c0=$(cpu); s0=$(switches); e0=$(events); t0=$(date +%s.%N)
	sleep "$WINDOW"
	c1=$(cpu); s1=$(switches); e1=$(events); t1=$(date +%s.%N)
	el=$(echo "$t1 - $t0" | bc -l)
	echo "($c1 - $c0) / $tck / $el * 100" | bc -l >> "$tmp/cpu"
	echo "($s1 - $s0) / $el" | bc -l >> "$tmp/wake"
	echo "($e1 - $e0) / $el" | bc -l >> "$tmp/ev"
	rss >> "$tmp/rss"
done
printf 'idle CPU:   %.3f %% of one core (median of %d x %ds; windows:%s)\n' \
	"$(median < "$tmp/cpu")" "$WINDOWS" "$WINDOW" "$(awk '{ printf " %.3f", $1 }' "$tmp/cpu")"
printf 'RSS:        %.1f MB (median; max %.1f MB)\n' "$(median < "$tmp/rss" | awk '{ print $1 / 1024 }')" "$(sort -n "$tmp/rss" | tail -1 | awk '{ print $1 / 1024 }')"
printf 'wake-ups:   %.1f /s (context switches of all threads, median)\n' "$(median < "$tmp/wake")"
printf 'events:     %.1f /s read from the rings (median; windows:%s)\n' "$(median < "$tmp/ev")" "$(awk '{ printf " %.0f", $1 }' "$tmp/ev")"
awk '/^(RssAnon|RssFile|RssShmem)/ { printf "            %s %.1f MB\n", $1, $2 / 1024 }' /proc/$vpid/status
