#!/usr/bin/env bash
# Runs every midge_bench scenario against Debian's mosquitto and against
# midge with equivalent configs, and prints each figure with the ratio
# midge/mosquitto. Brokers are pinned to CPU 0 (midge with thread_count 1),
# the load generator to CPU 1; then midge runs again with 2 workers, unpinned.
# Each scenario gets a freshly started broker on a free loopback port.
#
#   bench/compare.sh [--quick] [--repeat N] [--build DIR] [--out FILE] [--no-two-workers]
#                    [--tls | --tls-only] [--acl | --acl-only] [--persist | --persist-only]
#                    [--only NAME[,NAME...]] [--scrape]
#
# --tls adds the TLS, WebSocket (ws) and wss scenarios (fan-in, fan-out,
# pairs, and TLS handshakes per second of broker CPU), both brokers serving
# the same EC P-256 certificate made here with the openssl command;
# --tls-only runs just those (~4 minutes, --quick ~45 s).
#
# --acl adds fan-in, fan-out and pairs with a 1,000-line acl_file on both
# brokers (the anonymous benchmark clients' own lines come after 300 others
# and a deny line that takes part of their subscriptions, so every publish
# and every delivery is checked); compare each ratio with the same scenario's
# without ACL. --acl-only runs just those.
#
# --persist adds QoS 1 and QoS 2 fan-in (8 publishers, window 100) to a
# persistent subscriber (clean session false): Mosquitto with persistence
# true, Midge without persistence, with it, and with persistence_sync true;
# each store in the run's temp dir. --persist-only runs just those.
#
# --only runs just the scenarios named (e.g. --only "fan-in q0,fan-out q0 x100").
#
# --scrape gives midge a metrics listener (`protocol http`) and fetches
# /metrics with curl once a second while each midge scenario runs, to
# measure what scraping costs (compare with a run without it).
#
# --repeat N runs every scenario N times (mosquitto and midge alternating)
# and reports the median of each figure: this VM's speed drifts by 20 % or
# more from minute to minute.
#
# Env: MIDGE_BIN, MIDGE_BENCH, MOSQUITTO_BIN override the binaries.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build="$repo/build"
quick=0
two_workers=1
repeat=1
out=""
plain=1
secure=0
acl=0
persist=0
only=""
scrape=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --build) build=$2; shift ;;
    --repeat) repeat=$2; shift ;;
    --out) out=$2; shift ;;
    --no-two-workers) two_workers=0 ;;
    --tls) secure=1 ;;
    --tls-only) secure=1; plain=0 ;;
    --acl) acl=1 ;;
    --acl-only) acl=1; plain=0 ;;
    --persist) persist=1 ;;
    --persist-only) persist=1; plain=0 ;;
    --only) only=$2; shift ;;
    --scrape) scrape=1 ;;
    -h|--help) sed -n 2,41p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
midge=${MIDGE_BIN:-$build/src/midge}
bench=${MIDGE_BENCH:-$build/bench/midge_bench}
mosquitto=${MOSQUITTO_BIN:-/usr/sbin/mosquitto}
py=/usr/bin/python3
for b in "$midge" "$bench" "$mosquitto"; do
  [ -x "$b" ] || { echo "compare.sh: $b not found (build first, or set MIDGE_BIN/MIDGE_BENCH)" >&2; exit 2; }
done
work=$(mktemp -d /tmp/midge-compare.XXXXXX)
# Started as root, both brokers drop to their own user: it must be able to reach the stores here.
chmod 755 "$work"
[ -n "$out" ] || out="$work/results.jsonl"
: > "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
have_perf=0
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -x, true >/dev/null 2>&1; then
  have_perf=1
fi

if [ $quick = 1 ]; then
  dur=1; conns=2000; retained=20000; drain=3; handshakes=1000
else
  dur=5; conns=10000; retained=100000; drain=10; handshakes=4000
fi

# name|midge_bench arguments (without host/port)
scenarios=(
  "fan-in q0|--scenario fan-in --qos 0 --publishers 8 --window 100"
  "fan-in q1|--scenario fan-in --qos 1 --publishers 8 --window 100"
  "fan-out q0 x100|--scenario fan-out --qos 0 --subscribers 100 --window 100"
  "pairs q0 x100|--scenario pairs --qos 0 --publishers 100 --window 100"
  "latency q0 10k/s|--scenario latency --qos 0 --rate 10000"
  "connections|--scenario connections --connections $conns"
  "retained q0|--scenario retained --qos 0 --retained $retained"
)
if [ $quick = 0 ]; then
  scenarios+=(
    "fan-in q2|--scenario fan-in --qos 2 --publishers 8 --window 100"
    "fan-out q1 x100|--scenario fan-out --qos 1 --subscribers 100 --window 100"
    "pairs q1 x100|--scenario pairs --qos 1 --publishers 100 --window 100"
    "shared q0 8->4|--scenario shared --qos 0 --publishers 8 --subscribers 4 --window 100"
    "shared q1 8->4|--scenario shared --qos 1 --publishers 8 --subscribers 4 --window 100"
    "fan-in q0 16KB|--scenario fan-in --qos 0 --publishers 8 --window 100 --payload 16384"
    "fan-out q0 x100 16KB|--scenario fan-out --qos 0 --subscribers 100 --window 100 --payload 16384"
    "fan-in q0 64KB|--scenario fan-in --qos 0 --publishers 8 --window 100 --payload 65536"
    "fan-out q0 x100 64KB|--scenario fan-out --qos 0 --subscribers 100 --window 100 --payload 65536"
    "flood fan-in q0|--scenario fan-in --qos 0 --publishers 8 --window 0"
    "retained q1|--scenario retained --qos 1 --retained $retained"
  )
fi
[ $plain = 1 ] || scenarios=()
if [ -n "$only" ]; then
  kept=()
  for entry in "${scenarios[@]}"; do
    case ",$only," in *",${entry%%|*},"*) kept+=("$entry") ;; esac
  done
  scenarios=("${kept[@]}")
fi

# name|transport|midge_bench arguments: over TLS, WebSocket and both (wss).
secure_scenarios=()
if [ $secure = 1 ]; then
  command -v openssl >/dev/null || { echo "compare.sh: --tls needs the openssl command" >&2; exit 2; }
  for t in tls ws wss; do
    secure_scenarios+=(
      "$t fan-in q0|$t|--scenario fan-in --qos 0 --publishers 8 --window 100"
      "$t fan-out q0 x100|$t|--scenario fan-out --qos 0 --subscribers 100 --window 100"
    )
    [ $t = wss ] && continue
    secure_scenarios+=("$t pairs q0 x100|$t|--scenario pairs --qos 0 --publishers 100 --window 100")
    [ $quick = 1 ] && continue
    secure_scenarios+=(
      "$t fan-in q0 16KB|$t|--scenario fan-in --qos 0 --publishers 8 --window 100 --payload 16384"
      "$t fan-out q0 x100 16KB|$t|--scenario fan-out --qos 0 --subscribers 100 --window 100 --payload 16384"
      "$t pairs q0 x100 16KB|$t|--scenario pairs --qos 0 --publishers 100 --window 100 --payload 16384"
    )
  done
  secure_scenarios+=("tls handshakes|tls|--scenario handshakes --handshakes $handshakes --concurrency 64")
fi
if [ $acl = 1 ]; then
  secure_scenarios+=(
    "acl fan-in q0|acl|--scenario fan-in --qos 0 --publishers 8 --window 100"
    "acl fan-out q0 x100|acl|--scenario fan-out --qos 0 --subscribers 100 --window 100"
    "acl pairs q0 x100|acl|--scenario pairs --qos 0 --publishers 100 --window 100"
  )
  [ $plain = 1 ] || scenarios=(
    "fan-in q0|--scenario fan-in --qos 0 --publishers 8 --window 100"
    "fan-out q0 x100|--scenario fan-out --qos 0 --subscribers 100 --window 100"
    "pairs q0 x100|--scenario pairs --qos 0 --publishers 100 --window 100"
  )
fi

# name|midge_bench arguments: the subscriber holds a persistent session; each
# runs on mosquitto (persistence true), midge without persistence, midge with
# it, and midge with persistence_sync true.
persist_scenarios=()
if [ $persist = 1 ]; then
  persist_scenarios=(
    "persist fan-in q1|--scenario fan-in --qos 1 --publishers 8 --window 100 --persistent"
    "persist fan-in q2|--scenario fan-in --qos 2 --publishers 8 --window 100 --persistent"
  )
fi

# A CA and a server certificate (EC P-256, SAN 127.0.0.1 and localhost)
# that both brokers serve and midge_bench checks.
make_certs() {
  local d="$work/certs"
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj /CN=compare-ca -keyout ca.key -out ca.crt
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
      -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > ext.cnf
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile ext.cnf -out server.crt
  ) > "$work/certs.log" 2>&1 || { echo "compare.sh: openssl failed; see $work/certs.log" >&2; exit 2; }
  chmod -R a+rX "$d"
}

# 1,000 lines as a site with many users and devices might write them; the
# benchmark's clients are anonymous, so theirs are the lines before any user.
make_acl() {
  {
    echo "# generated by bench/compare.sh"
    for i in $(seq 300); do echo "topic read sensors/room$i/#"; done
    echo "topic deny bench/+/secret"
    echo "topic readwrite bench/#"
    for u in $(seq 100); do
      echo "user user$u"
      echo "topic readwrite home/user$u/#"
      echo "topic read sensors/+/user$u"
      echo "topic write commands/user$u/+"
      echo "topic deny home/user$u/private/#"
      echo "topic read status/#"
    done
    for k in $(seq 97); do echo "pattern readwrite devices/%c/channel$k/#"; done
  } > "$work/acl"
  chmod a+r "$work/acl"
}

# The scenarios repeated for midge with 2 workers.
two_worker_names=("fan-in q0" "fan-in q1" "fan-out q0 x100" "pairs q0 x100" "connections"
                  "fan-in q0 16KB" "fan-out q0 x100 16KB" "fan-in q0 64KB" "fan-out q0 x100 64KB")

free_port() {
  $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

broker_pid=""
start_broker() {  # kind threads pin [transport] -> sets broker_pid, port
  local kind=$1 threads=$2 pin=$3 transport=${4:-tcp}
  port=$(free_port)
  local conf="$work/$kind-$port.conf"
  {
    # Mosquitto started as root drops to user mosquitto, which cannot read $work.
    [ "$kind" = mosquitto ] && [ "$(id -u)" = 0 ] && echo "user root"
    # Mosquitto 2.0.11 refuses to start with websockets listeners only.
    case $transport in ws|wss) echo "listener $(free_port) 127.0.0.1" ;; esac
    echo "listener $port 127.0.0.1"
    case $transport in ws|wss) echo "protocol websockets" ;; esac
    case $transport in tls|wss)
      echo "certfile $work/certs/server.crt"
      echo "keyfile $work/certs/server.key" ;;
    esac
    [ "$transport" = acl ] && echo "acl_file $work/acl"
    case $transport in persist|persist-sync)
      mkdir -p "$work/db-$port"
      echo "persistence true"
      echo "persistence_location $work/db-$port/" ;;
    esac
    [ "$transport" = persist-sync ] && echo "persistence_sync true"
    echo "allow_anonymous true"
    echo "max_inflight_messages 1000"
    echo "max_queued_messages 1000000"
    # Mosquitto holds every QoS 0 message for a subscriber up to
    # max_queued_messages; midge drops what exceeds max_pending_output
    # (1 MiB by default), which a window of 100 large messages per publisher
    # exceeds. Both hold everything here, so that no run loses messages.
    [ "$kind" = mosquitto ] || printf 'thread_count %s\nmax_pending_output 268435456\n' "$threads"
    if [ "$kind" != mosquitto ] && [ $scrape = 1 ]; then
      metrics_port=$(free_port)
      printf 'listener %s 127.0.0.1\nprotocol http\n' "$metrics_port"
    fi
  } > "$conf"
  local bin=$midge
  [ "$kind" = mosquitto ] && bin=$mosquitto
  if [ -n "$pin" ]; then
    taskset -c "$pin" "$bin" -c "$conf" > "$work/$kind-$port.log" 2>&1 &
  else
    "$bin" -c "$conf" > "$work/$kind-$port.log" 2>&1 &
  fi
  broker_pid=$!
  for _ in $(seq 100); do
    if $py -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2).close()" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "compare.sh: $kind did not start; see $work/$kind-$port.log" >&2
  return 1
}

stop_broker() {
  kill "$broker_pid" 2>/dev/null || true
  wait "$broker_pid" 2>/dev/null || true
}

run_one() {  # label kind threads broker_pin bench_pin name args [transport]
  local label=$1 kind=$2 threads=$3 bpin=$4 gpin=$5 name=$6 args=$7 transport=${8:-tcp}
  start_broker "$kind" "$threads" "$bpin" "$transport" || return 0
  local perf_pid="" perf_out="$work/perf-$port.txt" events=raw_syscalls:sys_enter
  # write(2) is RocksDB's WAL append (midge's sockets use sendmsg), fdatasync its sync.
  case $transport in persist*) events+=,syscalls:sys_enter_write,syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync ;; esac
  if [ $have_perf = 1 ]; then
    perf stat -e "$events" -x, -o "$perf_out" -p "$broker_pid" > /dev/null 2>&1 &
    perf_pid=$!
  fi
  local scraper=""
  if [ "$kind" != mosquitto ] && [ $scrape = 1 ]; then
    (while sleep 1; do curl -s "http://127.0.0.1:$metrics_port/metrics" > /dev/null; done) &
    scraper=$!
  fi
  local cmd=("$bench" --host 127.0.0.1 --port "$port" --duration "$dur" --drain-timeout "$drain"
             --broker-pid "$broker_pid" --label "$label" --json --quiet)
  # shellcheck disable=SC2206
  cmd+=($args)
  case $transport in tls|wss) cmd+=(--tls --cafile "$work/certs/ca.crt") ;; esac
  case $transport in ws|wss) cmd+=(--ws) ;; esac
  local line
  if [ -n "$gpin" ]; then
    line=$(taskset -c "$gpin" "${cmd[@]}" | grep '^{' || true)
  else
    line=$("${cmd[@]}" | grep '^{' || true)
  fi
  [ -z "$scraper" ] || { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null || true; }
  local syscalls=-1 writes=-1 syncs=-1 store_kb=-1
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    syscalls=$(awk -F, '/raw_syscalls/ {print $1}' "$perf_out" 2>/dev/null | head -1)
    [[ "$syscalls" =~ ^[0-9]+$ ]] || syscalls=-1
    writes=$(awk -F, '/sys_enter_write,/ {print $1}' "$perf_out" 2>/dev/null | head -1)
    [[ "$writes" =~ ^[0-9]+$ ]] || writes=-1
    syncs=$(awk -F, '/sys_enter_f(data)?sync,/ {n += $1; found = 1} END {if (found) print n}' "$perf_out" 2>/dev/null)
    [[ "$syncs" =~ ^[0-9]+$ ]] || syncs=-1
  fi
  stop_broker
  if [ -d "$work/db-$port" ]; then  # after the stop: Mosquitto writes its file on exit
    store_kb=$(du -sk "$work/db-$port" | cut -f1)
    rm -rf "$work/db-$port"
  fi
  [ -n "$line" ] || line='{"error":"no output"}'
  $py -c 'import json,sys; d=json.loads(sys.argv[1]); d["name"]=sys.argv[2]; d["broker_syscalls"]=int(sys.argv[3])
d["broker_writes"]=int(sys.argv[4]); d["broker_syncs"]=int(sys.argv[5]); d["store_kb"]=int(sys.argv[6]); d["setup"]=sys.argv[7]
print(json.dumps(d))' \
    "$line" "$name" "$syscalls" "$writes" "$syncs" "$store_kb" "$transport" >> "$out"
  printf '  %-10s %-18s %s\n' "$label" "$name" "$(echo "$line" | grep -o '"check":"[a-z]*"' || echo 'no result')" >&2
}

echo "compare.sh: results in $out (mode: $([ $quick = 1 ] && echo quick || echo full))" >&2
start=$(date +%s)
for entry in "${scenarios[@]}"; do
  name=${entry%%|*}
  args=${entry#*|}
  for _ in $(seq "$repeat"); do
    run_one mosquitto mosquitto 1 0 1 "$name" "$args"
    run_one midge midge 1 0 1 "$name" "$args"
    if [ $two_workers = 1 ]; then
      for n in "${two_worker_names[@]}"; do
        [ "$n" = "$name" ] && run_one midge-2w midge 2 "" "" "$name" "$args"
      done
    fi
  done
done
[ $secure = 0 ] || make_certs
[ $acl = 0 ] || make_acl
for entry in "${secure_scenarios[@]}"; do
  name=${entry%%|*}
  rest=${entry#*|}
  transport=${rest%%|*}
  args=${rest#*|}
  for _ in $(seq "$repeat"); do
    run_one mosquitto mosquitto 1 0 1 "$name" "$args" "$transport"
    run_one midge midge 1 0 1 "$name" "$args" "$transport"
  done
done
for entry in "${persist_scenarios[@]}"; do
  name=${entry%%|*}
  args=${entry#*|}
  for _ in $(seq "$repeat"); do
    run_one mosquitto mosquitto 1 0 1 "$name" "$args" persist
    run_one midge-off midge 1 0 1 "$name" "$args"
    run_one midge midge 1 0 1 "$name" "$args" persist
    run_one midge-sync midge 1 0 1 "$name" "$args" persist-sync
  done
done
echo "compare.sh: $(( $(date +%s) - start )) s" >&2

$py - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = {}
order = []
for r in rows:
    if r.get("name") not in order:
        order.append(r.get("name"))
    runs.setdefault((r.get("name"), r.get("label")), []).append(r)

def median_row(rs):
    """Each numeric figure is the median over the repeats; a check fails if any run failed."""
    out = dict(rs[0])
    for k, v in rs[0].items():
        vals = sorted(x[k] for x in rs if isinstance(x.get(k), (int, float)) and not isinstance(x.get(k), bool))
        if isinstance(v, (int, float)) and not isinstance(v, bool) and vals:
            n = len(vals)
            out[k] = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    checks = [x.get("check", "?") for x in rs]
    out["check"] = "fail" if "fail" in checks else checks[0]
    out["runs"] = len(rs)
    return out

for r in rows:
    if r.get("broker_cpu_pct", 0) > 0 and "delivered_per_s" in r:
        r["delivered_per_cpu_s"] = r["delivered_per_s"] * 100.0 / r["broker_cpu_pct"]
by = {key: median_row(rs) for key, rs in runs.items()}
repeats = max(len(rs) for rs in runs.values()) if runs else 0

def metrics(r):
    s = r.get("scenario")
    if s == "handshakes":
        return [("hs/s", "handshakes_per_s"), ("hs/cpu-s", "handshakes_per_broker_cpu_s")]
    if s == "connections":
        return [("connect/s", "connect_per_s"), ("conn/cpu-s", "connect_per_broker_cpu_s"),
                ("B/conn", "bytes_per_conn")]
    if s == "retained":
        return [("retained s", "deliver_s"), ("retained/s", "delivered_per_s")]
    if s == "latency":
        return [("p50 us", "p50_us"), ("p99 us", "p99_us")]
    if r.get("window") == 0:
        return [("msg/s", "delivered_per_s"), ("p50 us", "p50_us"), ("max gap ms", "max_gap_ms"),
                ("rss kB", "broker_rss_kb")]
    if r.get("payload", 0) >= 16384 or r.get("name", "").split(" ")[0] in ("tls", "ws", "wss"):  # the load generator may be the limit: say what it cost the broker
        return [("msg/s", "delivered_per_s"), ("msg/cpu-s", "delivered_per_cpu_s"), ("p50 us", "p50_us")]
    return [("msg/s", "delivered_per_s"), ("p50 us", "p50_us")]

def fmt(v):
    if v is None: return "-"
    if isinstance(v, float) and abs(v) < 100: return "%.2f" % v
    return "%d" % round(v)

def sc_per_msg(r):
    d = r.get("delivered") or r.get("received") or r.get("connected") or r.get("completed") or 0
    sc = r.get("broker_syscalls", -1)
    return "%.3f" % (sc / d) if sc >= 0 and d else "-"

persist_names = [n for n in order if (n or "").startswith("persist ")]
order = [n for n in order if n not in persist_names]
if order:
    print("%-18s %-10s %11s %11s %8s %11s %13s %9s %7s" % ("scenario", "figure", "mosquitto", "midge",
          "ratio", "midge 2w", "sc/msg md/mq", "cpu% md", "checks"))
for name in order:
    mq = by.get((name, "mosquitto"), {})
    md = by.get((name, "midge"), {})
    m2 = by.get((name, "midge-2w"), {})
    base = md or mq
    for i, (title, key) in enumerate(metrics(base)):
        a, b, c = mq.get(key), md.get(key), m2.get(key)
        ratio = "%.2fx" % (b / a) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 else "-"
        checks = "/".join(x.get("check", "?")[0] for x in (mq, md, m2) if x) if i == 0 else ""
        sc = "%s/%s" % (sc_per_msg(md), sc_per_msg(mq)) if i == 0 else ""
        cpu = ""
        if i == 0 and md.get("broker_cpu_pct", -1) >= 0:
            cpu = "%d/%d" % (md["broker_cpu_pct"], md.get("bench_cpu_pct", -1))
        print("%-18s %-10s %11s %11s %8s %11s %13s %9s %7s" % (name if i == 0 else "", title, fmt(a), fmt(b),
              ratio, fmt(c) if m2 else "", sc, cpu, checks))

def ratio(a, b):
    return "%.2fx" % (a / b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0 else "-"

def per(n, d):
    return "%.1f" % (n / d) if isinstance(d, (int, float)) and d > 0 else "-"

if persist_names:
    print("%-18s %-11s %10s %8s %8s %9s %8s %9s %9s %8s %6s" % ("persistence", "broker", "msg/s", "p50 us",
          "vs mosq", "vs md off", "cpu% md", "msg/write", "msg/fsync", "store kB", "check"))
for name in persist_names:
    mq = by.get((name, "mosquitto"), {})
    off = by.get((name, "midge-off"), {})
    for i, (label, title) in enumerate((("mosquitto", "mosquitto p"), ("midge-off", "midge off"),
                                        ("midge", "midge p"), ("midge-sync", "midge p+sync"))):
        r = by.get((name, label))
        if not r:
            continue
        rate = r.get("delivered_per_s")
        is_midge = label != "mosquitto"
        # RocksDB appends each committed batch with one write(2); midge's sockets use sendmsg.
        writes = per(r.get("delivered", 0), r.get("broker_writes")) if label in ("midge", "midge-sync") else "-"
        syncs = per(r.get("delivered", 0), r.get("broker_syncs")) if label == "midge-sync" else "-"
        cpu = "%d/%d" % (r["broker_cpu_pct"], r.get("bench_cpu_pct", -1)) if is_midge and r.get("broker_cpu_pct", -1) >= 0 else ""
        store = fmt(r.get("store_kb")) if r.get("store_kb", -1) >= 0 else "-"
        print("%-18s %-11s %10s %8s %8s %9s %8s %9s %9s %8s %6s" % (name if i == 0 else "", title, fmt(rate),
              fmt(r.get("p50_us")), ratio(rate, mq.get("delivered_per_s")),
              ratio(rate, off.get("delivered_per_s")) if is_midge else "", cpu, writes, syncs, store,
              r.get("check", "?")))
if persist_names:
    print("persistence: the subscriber holds a persistent session (clean session false); mosquitto p =")
    print("persistence true (it writes its file every autosave_interval and on exit); msg/write = delivered")
    print("messages per write(2) of the broker (RocksDB WAL appends: messages per committed batch);")
    print("msg/fsync = per fdatasync/fsync (perf syscall tracepoints); store kB = du after the stop")
errors = [(r.get("name"), r.get("label"), r.get("error")) for r in rows if r.get("error")]
for e in errors:
    print("error: %s / %s: %s" % e)
print("checks: p=pass f=fail n=none (mosquitto/midge/midge-2w); sc/msg = broker syscalls per delivered")
print("message (perf raw_syscalls); cpu% md = midge broker/load generator CPU, % of one core")
if repeats > 1:
    print("every figure is the median of %d runs" % repeats)
PY
