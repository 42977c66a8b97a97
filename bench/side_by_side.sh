#!/usr/bin/env bash
# Side by side in one run, each broker pinned to CPU 0 with one thread and
# midge_bench on CPU 1: Debian's mosquitto, midge, optionally a second midge
# build ("before"), FlashMQ and the null relay (../shared/bench/nullbroker.c,
# the ceiling of this machine). Each scenario runs --repeat times, the
# brokers alternating, and the median of delivered msg/s is printed with the
# broker's CPU and the ratio to mosquitto. QoS 0 scenarios only (the null
# relay knows nothing else).
#
#   bench/side_by_side.sh [--repeat N] [--duration S] [--before MIDGE_BIN]
#                         [--flashmq FLASHMQ_BIN] [--null NULLBROKER_SOURCE_OR_BIN]
#                         [SCENARIO...]
#
# A SCENARIO is "name|midge_bench arguments"; by default the 16 KB and 64 KB
# fan-in and fan-out of issue 9. FlashMQ is not packaged for Debian: build it
# from its sources (cmake) and pass the binary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
repeat=3 duration=5 before="" flashmq="" null=""
midge=${MIDGE_BIN:-$root/build/src/midge}
bench=${MIDGE_BENCH:-$root/build/bench/midge_bench}
mosquitto=${MOSQUITTO_BIN:-/usr/sbin/mosquitto}
scenarios=()
while [ $# -gt 0 ]; do
  case $1 in
    --repeat) repeat=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    --flashmq) flashmq=$2; shift 2 ;;
    --null) null=$2; shift 2 ;;
    *) scenarios+=("$1"); shift ;;
  esac
done
[ ${#scenarios[@]} -gt 0 ] || scenarios=(
  "16KB fan-in 8->1|--scenario fan-in --qos 0 --publishers 8 --window 100 --payload 16384"
  "16KB fan-out 1->100|--scenario fan-out --qos 0 --subscribers 100 --window 100 --payload 16384"
  "64KB fan-in 8->1|--scenario fan-in --qos 0 --publishers 8 --window 100 --payload 65536"
  "64KB fan-out 1->100|--scenario fan-out --qos 0 --subscribers 100 --window 100 --payload 65536"
)
work=$(mktemp -d /tmp/midge-sbs.XXXXXX)
if [ -n "$null" ] && [[ $null == *.c ]]; then
  gcc -O2 -o "$work/nullbroker" "$null"
  null=$work/nullbroker
fi
kinds=(mosquitto midge)
[ -n "$before" ] && kinds+=(before)
[ -n "$flashmq" ] && kinds+=(flashmq)
[ -n "$null" ] && kinds+=(null)

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() {  # kind port: starts the broker, sets pid
  local kind=$1 port=$2 conf="$work/$1-$2.conf"
  case $kind in
    mosquitto)
      { [ "$(id -u)" = 0 ] && echo "user root"
        printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\n' "$port"; } > "$conf"
      taskset -c 0 "$mosquitto" -c "$conf" > "$work/$kind-$port.log" 2>&1 & ;;
    midge|before)
      # max_pending_output: hold what Mosquitto holds (a window of 100 large
      # messages per publisher), so that no run drops QoS 0 messages.
      printf 'listener %s 127.0.0.1\nallow_anonymous true\nthread_count 1\nmax_pending_output 268435456\n' "$port" > "$conf"
      local bin=$midge
      [ "$kind" = before ] && bin=$before
      taskset -c 0 "$bin" -c "$conf" > "$work/$kind-$port.log" 2>&1 & ;;
    flashmq)
      printf 'thread_count 1\nallow_anonymous true\nclient_max_write_buffer_size 268435456\nlog_file %s\nlisten {\n  protocol mqtt\n  port %s\n  inet4_bind_address 127.0.0.1\n}\n' \
        "$work/$kind-$port.log" "$port" > "$conf"
      taskset -c 0 "$flashmq" --config-file "$conf" > "$work/$kind-$port.out" 2>&1 & ;;
    null)
      taskset -c 0 "$null" "$port" > "$work/$kind-$port.log" 2>&1 & ;;
  esac
  pid=$!
  for _ in $(seq 100); do
    /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2).close()" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "side_by_side.sh: $kind did not start (see $work)" >&2
  return 1
}

results=$work/results.txt
: > "$results"
for s in "${scenarios[@]}"; do
  name=${s%%|*} args=${s#*|}
  for r in $(seq "$repeat"); do
    for kind in "${kinds[@]}"; do
      port=$(free_port)
      start "$kind" "$port" || continue
      # shellcheck disable=SC2086
      line=$(taskset -c 1 "$bench" --host 127.0.0.1 --port "$port" --duration "$duration" \
             --broker-pid "$pid" --json --quiet $args | grep '^{' || true)
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      [ -n "$line" ] || continue
      printf '%s\t%s\t%s\n' "$name" "$kind" "$line" >> "$results"
    done
  done
done

/usr/bin/python3 - "$results" "${kinds[@]}" <<'EOF'
import json, statistics, sys
path, kinds = sys.argv[1], sys.argv[2:]
rows = {}
for line in open(path):
    name, kind, js = line.rstrip("\n").split("\t", 2)
    rows.setdefault(name, {}).setdefault(kind, []).append(json.loads(js))
print("%-22s" % "scenario" + "".join("%22s" % k for k in kinds))
for name, by_kind in rows.items():
    base = None
    cells = []
    for k in kinds:
        runs = by_kind.get(k, [])
        if not runs:
            cells.append("%22s" % "-")
            continue
        rate = statistics.median(r["delivered_per_s"] for r in runs)
        cpu = statistics.median(r["broker_cpu_pct"] for r in runs)
        ok = "".join("p" if r["check"] == "pass" else "f" for r in runs)
        if k == "mosquitto":
            base = rate
        ratio = " %.2fx" % (rate / base) if base else ""
        cells.append("%22s" % ("%.1fk %d%%%s %s" % (rate / 1000, cpu, ratio, ok)))
    print("%-22s" % name + "".join(cells))
print("(median delivered msg/s over the runs, the broker's CPU in % of one core, the ratio to "
      "mosquitto, and p/f per run: every message delivered or not)")
EOF
echo "side_by_side.sh: runs in $results"
