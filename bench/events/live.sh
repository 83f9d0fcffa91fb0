#!/bin/sh
# Live load on the event-rule engine: the built agent with the default pack
# while stress-ng execs as fast as it can (and a Python loop opens files the
# rules' kernel filter passes). Reports events/s evaluated, events lost by
# the engine's queue, and the agent's CPU time. Needs root and stress-ng.
#   sudo sh bench/events/live.sh
set -eu
GO=${GO:-go}
DUR=${DUR:-10}
tmp=$(mktemp -d)
trap 'kill $vpid 2>/dev/null; rm -rf "$tmp"' EXIT
$GO build -o "$tmp/vigil" ./cmd/vigil
printf 'rules:\n  enabled: false\nalerting:\n  state_file: %s/alerts.json\n' "$tmp" > "$tmp/v.yaml"
port=$((20000 + $$ % 20000))
"$tmp/vigil" run --config "$tmp/v.yaml" --web.listen-address 127.0.0.1:$port \
	--event-rules.file 'deploy/rules/events/*.yaml' --log.level warn >/dev/null 2>"$tmp/err" &
vpid=$!
for i in $(seq 100); do curl -sf http://127.0.0.1:$port/metrics >/dev/null && break; sleep 0.1; done
m() { curl -sf http://127.0.0.1:$port/metrics | awk -v k="$1" 'index($0, k) == 1 { s += $NF } END { print s + 0 }'; }
cpu() { awk '{ print $14 + $15 }' /proc/$vpid/stat; }
e0=$(m 'vigil_event_rules_events_total'); d0=$(m 'vigil_event_queue_dropped_total{subscriber="event-rules"}'); c0=$(cpu)
stress-ng --exec 2 --exec-method execve --timeout ${DUR}s --quiet &
python3 -c "
import time
end = time.time() + $DUR
while time.time() < end:
    for _ in range(1000):
        try: open('/etc/sudoers.d/README').close()
        except OSError: pass
" &
wait %2 %3 2>/dev/null || wait
sleep 1
e1=$(m 'vigil_event_rules_events_total'); d1=$(m 'vigil_event_queue_dropped_total{subscriber="event-rules"}'); c1=$(cpu)
tck=$(getconf CLK_TCK)
echo "events evaluated: $((e1 - e0)) in ${DUR}s = $(( (e1 - e0) / DUR ))/s; lost by the engine queue: $((d1 - d0)); agent CPU: $(echo "scale=2; ($c1 - $c0) / $tck / $DUR * 100" | bc)% of one core"
curl -sf http://127.0.0.1:$port/metrics | grep -E '^vigil_event_rules_events_total|^vigil_ringbuf|dropped' | grep -v ' 0$' || true
