#!/usr/bin/env bash
# Start-up time with a full store (issue 12): Midge against Debian's
# mosquitto, each loading its own store with the same content.
#
#   bench/recovery.sh [--build DIR] [--retained N] [--sessions N] [--queued K]
#                     [--restarts R] [--only retained|sessions] [--out FILE]
#
# Two cases, each on a fresh broker with `persistence true` and its store in
# this run's temp dir:
#   retained: N retained messages (1,000,000; 64-byte payloads, QoS 1);
#   sessions: N persistent sessions (100,000; clean session false), each
#             subscribed and offline with K QoS 1 messages queued (10).
# midge_bench fills the broker through MQTT (load-retained, load-sessions) and
# waits for the last PUBACK; the broker is stopped with SIGTERM (Mosquitto
# writes its database on exit) and started again R times (3). The start-up
# time runs from just before exec until a probe (probe-retained,
# probe-session), which retries its connection every millisecond, got the
# last retained message or the last session's first queued message: the
# listener accepts and the load really finished. Each figure is the median
# of the R starts; the store's size (du) and the broker's RSS after the probe
# are reported too. The page cache is warm (the store was just written).
# Broker on CPU 0 (midge with thread_count 1), midge_bench on CPU 1.
#
# Env: MIDGE_BIN, MIDGE_BENCH, MOSQUITTO_BIN override the binaries.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build="$repo/build"
retained=1000000
sessions=100000
queued=10
restarts=3
only=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift ;;
    --retained) retained=$2; shift ;;
    --sessions) sessions=$2; shift ;;
    --queued) queued=$2; shift ;;
    --restarts) restarts=$2; shift ;;
    --only) only=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n 2,24p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
midge=${MIDGE_BIN:-$build/src/midge}
bench=${MIDGE_BENCH:-$build/bench/midge_bench}
mosquitto=${MOSQUITTO_BIN:-/usr/sbin/mosquitto}
py=/usr/bin/python3
for b in "$midge" "$bench" "$mosquitto"; do
  [ -x "$b" ] || { echo "recovery.sh: $b not found (build first, or set MIDGE_BIN/MIDGE_BENCH)" >&2; exit 2; }
done
work=$(mktemp -d /tmp/midge-recovery.XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -n "$out" ] || out="$work/results.jsonl"
: > "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() {
  $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

write_conf() {  # kind port dir
  local kind=$1 port=$2 dir=$3
  {
    # Started as root, either broker drops to its own user, which cannot write $work.
    [ "$(id -u)" = 0 ] && echo "user root"
    echo "listener $port 127.0.0.1"
    echo "allow_anonymous true"
    echo "persistence true"
    echo "persistence_location $dir/"
    echo "max_inflight_messages 1000"
    echo "max_queued_messages 1000000"
    [ "$kind" = mosquitto ] || echo "thread_count 1"
  } > "$work/$kind.conf"
}

broker_pid=""
t_exec=""
start_broker() {  # kind -> broker_pid, t_exec (unix ns just before exec)
  local bin=$midge
  [ "$1" = mosquitto ] && bin=$mosquitto
  t_exec=$(date +%s%N)
  taskset -c 0 "$bin" -c "$work/$1.conf" >> "$work/$1.log" 2>&1 &
  broker_pid=$!
}

wait_listener() {  # port
  for _ in $(seq 600); do
    $py -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2).close()" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "recovery.sh: broker did not start; see $work/*.log" >&2
  return 1
}

stop_broker() {  # -> stop_s
  local t0
  t0=$(date +%s.%N)
  kill -TERM "$broker_pid" 2>/dev/null || true
  wait "$broker_pid" 2>/dev/null || true
  stop_s=$($py -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 3))" "$t0" "$(date +%s.%N)")
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo -1; }

bench_json() {  # midge_bench arguments -> the JSON line
  taskset -c 1 "$bench" --host 127.0.0.1 --json --quiet "$@" | grep '^{' || echo '{"check":"fail","error":"no output"}'
}

run_case() {  # kind case
  local kind=$1 case=$2 port dir load probe_args
  port=$(free_port)
  dir="$work/$kind-$case"
  mkdir -p "$dir"
  write_conf "$kind" "$port" "$dir"
  if [ "$case" = retained ]; then
    load=(--scenario load-retained --retained "$retained")
    probe_args=(--scenario probe-retained --retained "$retained")
  else
    load=(--scenario load-sessions --sessions "$sessions" --queued "$queued" --concurrency 256)
    probe_args=(--scenario probe-session --sessions "$sessions")
  fi
  echo "  $(date +%T) $kind $case: loading" >&2
  start_broker "$kind"
  wait_listener "$port"
  local loaded
  loaded=$(bench_json --port "$port" --broker-pid "$broker_pid" --drain-timeout 60 "${load[@]}")
  local rss_loaded
  rss_loaded=$(rss_kb "$broker_pid")
  stop_broker
  local first_stop=$stop_s store_kb
  store_kb=$(du -sk "$dir" | cut -f1)
  local starts=() rss_restored=-1 probes=()
  for i in $(seq "$restarts"); do
    start_broker "$kind"
    local t0=$t_exec p
    p=$(bench_json --port "$port" --duration 600 "${probe_args[@]}")
    rss_restored=$(rss_kb "$broker_pid")
    stop_broker
    probes+=("$p")
    starts+=("$($py -c 'import json,sys; d=json.loads(sys.argv[1]); r=d.get("ready_unix_ns",0)
print(round((r-int(sys.argv[2]))/1e9,3) if r>0 and d.get("check")=="pass" else -1)' "$p" "$t0")")
    echo "  $(date +%T) $kind $case: start $i ${starts[-1]} s" >&2
  done
  $py - "$kind" "$case" "$loaded" "$rss_loaded" "$first_stop" "$store_kb" "$rss_restored" \
    "${probes[-1]}" "${starts[@]}" >> "$out" <<'PY'
import json, statistics, sys
kind, case, loaded, rss_loaded, stop_s, store_kb, rss_restored, probe = sys.argv[1:9]
starts = [float(x) for x in sys.argv[9:]]
ok = [s for s in starts if s >= 0]
d = {"broker": kind, "case": case, "load": json.loads(loaded), "rss_loaded_kb": int(rss_loaded),
     "stop_s": float(stop_s), "store_kb": int(store_kb), "rss_restored_kb": int(rss_restored),
     "probe": json.loads(probe), "starts_s": starts,
     "start_s": statistics.median(ok) if ok else -1, "failed_starts": len(starts) - len(ok)}
print(json.dumps(d))
PY
  rm -rf "$dir"
}

cases=(retained sessions)
[ -z "$only" ] || cases=("$only")
echo "recovery.sh: results in $out" >&2
t_start=$(date +%s)
for c in "${cases[@]}"; do
  for kind in mosquitto midge; do
    run_case "$kind" "$c"
  done
done
echo "recovery.sh: $(( $(date +%s) - t_start )) s" >&2

$py - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(r["case"], r["broker"]): r for r in rows}
def what(r):
    l = r["load"]
    if r["case"] == "retained":
        return "%d retained" % l.get("retained", 0)
    return "%d sessions x%d" % (l.get("sessions", 0), l.get("queued", 0))
print("%-22s %-10s %8s %8s %9s %9s %8s %9s %9s %6s" % ("recovery", "broker", "start s", "ratio",
      "load s", "stop s", "store MB", "rss MB", "rss MB", "check"))
print("%-22s %-10s %8s %8s %9s %9s %8s %9s %9s %6s" % ("", "", "(median)", "md/mq", "", "", "",
      "loaded", "restored", ""))
for case in ("retained", "sessions"):
    mq = by.get((case, "mosquitto"))
    for i, kind in enumerate(("mosquitto", "midge")):
        r = by.get((case, kind))
        if not r:
            continue
        ratio = "%.2fx" % (r["start_s"] / mq["start_s"]) if mq and mq["start_s"] > 0 and r["start_s"] >= 0 else "-"
        check = "pass" if r["load"].get("check") == "pass" and r["failed_starts"] == 0 and \
            r["probe"].get("check") == "pass" else "fail"
        print("%-22s %-10s %8.3f %8s %9.1f %9.2f %8.1f %9.1f %9.1f %6s" % (what(r) if i == 0 else "", kind,
              r["start_s"], ratio, r["load"].get("seconds", -1), r["stop_s"], r["store_kb"] / 1024,
              r["rss_loaded_kb"] / 1024, r["rss_restored_kb"] / 1024, check))
for r in rows:
    for part in ("load", "probe"):
        if r[part].get("error"):
            print("error: %s %s %s: %s" % (r["broker"], r["case"], part, r[part]["error"]))
print("start s: from exec until the probe got the restored message (median of the restarts);")
print("load s: filling through MQTT; stop s: SIGTERM until exit (mosquitto writes its file then)")
PY
