#!/usr/bin/env bash
# Socket.IO fan-out benchmark: bus-bridge's Socket.IO endpoint against a Node socket.io@4 server
# and a python-socketio (aiohttp) server, each serving the same ~200-byte JSON events to 1, 50
# and 500 WebSocket clients of sio-loadgen on loopback. The server (and its source) runs on one
# CPU, the load generator on another (taskset). Two phases per server and client count:
#   sweep  offered deliveries/s in total (RATES, ascending; OFFER/clients events/s each) until
#          one is not sustained: "sustained" = delivered >= 99 % of offered and p99 <= P99_US.
#          The highest sustained rate is the server's figure (and the first failing one is shown).
#   lat    a fixed LAT deliveries/s in total, within every server's reach: p50/p99 latency
#          (source stamp -> frame read by the client; bus publish time for the bridge).
#   Every run also reports the server's CPU and CPU microseconds per delivered message.
#   RATES="" skips the sweep (only the fixed-rate run: LAT=100000 makes it a CPU-cost run).
#
#   bench/socketio/run.sh [BUILD_DIR]
#     env: SECS=5 LAT=5000 CLIENTS="1 50 500" SERVERS="bridge node python" P99_US=50000
#          RATES="10000 30000 100000 200000 300000 500000 800000 1200000"
#          SERVER_CPU=0 LOAD_CPU=1 (LOAD_CPU may be a list: taskset -c syntax)
#          LOADGEN_THREADS=T splits the clients over T threads of sio-loadgen (own epoll each)
#          LOADGEN=/path/to/another/sio-loadgen (same options and JSON; no --threads then)
#          BRIDGE_BEFORE=/path/to/an/older/bus-bridge adds server "before" (same config) for an
#          A/B in one run: SERVERS="before bridge node python".
#          WS_COALESCE_US=N sets http.ws_coalesce_us for server "bridge" only (default: the
#          bridge's own, 1000). WS_MAX_WRITES=N sets http.ws_max_writes_per_s likewise (the
#          server-wide budget; default the bridge's own, 100000; 0 turns it off).
# Needs: bus-bridge, sio-loadgen, sio-bench-source built in BUILD_DIR; node + `npm ci` here
# (run.sh does it); Debian's python3-socketio and python3-aiohttp under /usr/bin/python3.
# Prints one JSON line per run and a Markdown table at the end.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${1:-$HERE/../../build}
SECS=${SECS:-5}
RATES=${RATES-"10000 30000 100000 200000 300000 500000 800000 1200000"}
P99_US=${P99_US:-50000}
LAT=${LAT:-5000}
CLIENTS=${CLIENTS:-"1 50 500"}
SERVERS=${SERVERS:-"bridge node python"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
LOADGEN=${LOADGEN:-$BUILD/bench/sio-loadgen}
read -r -a LOADGEN_ARGS <<<"${LOADGEN_THREADS:+--threads $LOADGEN_THREADS}"
BUS=sio-bench-$$
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$BUILD/tools/inspect/bus-inspect" gc "$BUS" >/dev/null 2>&1 || rm -f /dev/shm/*"$BUS"* 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for b in tools/bridge/app/bus-bridge bench/sio-loadgen bench/sio-bench-source; do
  [[ -x $BUILD/$b ]] || { echo "run.sh: $BUILD/$b is missing: build it first" >&2; exit 2; }
done
(cd "$HERE" && { [[ -d node_modules/socket.io ]] || npm ci --no-audit --no-fund >/dev/null; })
/usr/bin/python3 -c 'import socketio, aiohttp' 2>/dev/null ||
  { echo "run.sh: apt-get install -y python3-socketio python3-aiohttp" >&2; exit 2; }

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {  # bounded: 15 s
  for _ in $(seq 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "run.sh: nothing listens on $1 after 15 s" >&2; return 1
}

# start_server KIND PORT RATE: the server and its source on SERVER_CPU, pid(s) in PIDS.
start_server() {
  local kind=$1 port=$2 rate=$3
  case $kind in
    bridge | before)
      local bin=$BUILD/tools/bridge/app/bus-bridge
      [[ $kind == before ]] && bin=$BRIDGE_BEFORE
      cat >"$WORK/bridge.yaml" <<YAML
bridge:
  name: sio-bench
  bus: $BUS
  topic_scan_ms: 50
  http:
    address: 127.0.0.1
    port: $port
$([[ $kind == bridge && -n ${WS_COALESCE_US:-} ]] && echo "    ws_coalesce_us: $WS_COALESCE_US")
$([[ $kind == bridge && -n ${WS_MAX_WRITES:-} ]] && echo "    ws_max_writes_per_s: $WS_MAX_WRITES")
socketio:
  subscribe: ["md.>"]
  max_clients: 1000
  queue: 8192
  disconnect_after: 100000000
YAML
      taskset -c "$SERVER_CPU" "$bin" --config "$WORK/bridge.yaml" \
        >"$WORK/bridge.log" 2>&1 &
      PIDS+=($!)
      wait_port "$port"
      taskset -c "$SERVER_CPU" "$BUILD/bench/sio-bench-source" --bus "$BUS" --rate "$rate" \
        --seconds $((SECS + 30)) >"$WORK/source.log" 2>&1 &
      PIDS+=($!) ;;
    node)
      NODE_PATH=$HERE/node_modules taskset -c "$SERVER_CPU" node "$HERE/node_server.mjs" "$port" \
        "$rate" >"$WORK/node.log" 2>&1 &
      PIDS+=($!)
      wait_port "$port" ;;
    python)
      taskset -c "$SERVER_CPU" /usr/bin/python3 "$HERE/py_server.py" "$port" "$rate" \
        >"$WORK/python.log" 2>&1 &
      PIDS+=($!)
      wait_port "$port" ;;
  esac
}
stop_server() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

echo "# CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs;" \
  "server on CPU $SERVER_CPU, load generator on CPU $LOAD_CPU; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ " $SERVERS " != *" before "* || -x ${BRIDGE_BEFORE:-} ]] ||
  { echo "run.sh: server 'before' needs BRIDGE_BEFORE=<an executable bus-bridge>" >&2; exit 2; }

# CPU time (clock ticks) used so far by the server's processes (for the bridge: bus-bridge and
# its source, which stands in for the Node / Python servers' in-process event generation).
server_ticks() {
  local t=0 p
  for p in "${PIDS[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}

# run_one KIND CLIENTS TOTAL: one run at TOTAL deliveries/s offered; prints the loadgen's JSON
# with the server's CPU over the load generator's whole run (connect, warm-up, window):
# server_cpu_pct (of one core) and server_us_per_msg (that CPU / messages delivered at the
# window's rate over the same time) — a figure a busy shared machine disturbs far less than the
# highest sustained rate.
run_one() {
  local kind=$1 n=$2 total=$3 port rate out sub=() c0 c1 t0 t1
  rate=$(((total + n - 1) / n))
  port=$(free_port)
  start_server "$kind" "$port" "$rate"
  [[ $kind == bridge || $kind == before ]] && sub=(--subscribe md.quotes)
  c0=$(server_ticks) t0=$(date +%s.%N)
  out=$(taskset -c "$LOAD_CPU" "$LOADGEN" --port "$port" --clients "$n" \
    --seconds "$SECS" --warmup 2 "${sub[@]}" "${LOADGEN_ARGS[@]}" || true)
  c1=$(server_ticks) t1=$(date +%s.%N)
  stop_server
  [[ -n $out ]] || out='{}'
  out=$(/usr/bin/python3 -c 'import json,sys,os
d=json.loads(sys.argv[1]); cpu=(int(sys.argv[3])-int(sys.argv[2]))/os.sysconf("SC_CLK_TCK")
wall=float(sys.argv[5])-float(sys.argv[4]); m=d.get("msg_per_s",0)
d["server_cpu_pct"]=round(100*cpu/wall); d["server_us_per_msg"]=round(1e6*cpu/(m*wall),2) if m else None
print(json.dumps(d,separators=(",",":")))' "$out" "$c0" "$c1" "$t0" "$t1")
  echo "{\"server\":\"$kind\",\"offered\":$((rate * n)),\"events_per_s\":$rate,${out#\{}" >&2
  echo "$out"
}
g() { /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print(d.get(sys.argv[2],"-"))' "$1" "$2"; }
sustained() {  # JSON OFFERED -> 0 when delivered >= 99 % of offered and p99 within P99_US
  /usr/bin/python3 -c 'import json,sys
d=json.loads(sys.argv[1] or "{}"); off=float(sys.argv[2]); b=float(sys.argv[3])
ok=d.get("msg_per_s",0)>=0.99*off and 0<d.get("p99_us",1e18)<=b
sys.exit(0 if ok else 1)' "$1" "$2" "$P99_US"
}

ROWS=()
for kind in $SERVERS; do
  for n in $CLIENTS; do
    best='-' best_json='{}' fail='-'
    for total in ${RATES}; do
      out=$(run_one "$kind" "$n" "$total")
      offered=$(( ((total + n - 1) / n) * n ))
      if sustained "$out" "$offered"; then
        best=$offered best_json=$out
      else
        fail="$offered: $(g "$out" msg_per_s) delivered, p99 $(g "$out" p99_us) us"
        break
      fi
    done
    lat=$(run_one "$kind" "$n" "$LAT")
    ROWS+=("| $kind | $n | $best | $(g "$best_json" p99_us) | $(g "$best_json" loadgen_cpu_pct)% | $fail | $(g "$lat" msg_per_s) | $(g "$lat" p50_us) | $(g "$lat" p99_us) | $(g "$lat" server_cpu_pct)% | $(g "$lat" server_us_per_msg) |")
  done
done
echo
echo "| server | clients | sustained msg/s | its p99 us | loadgen CPU | first not sustained (offered: delivered, p99) | at $LAT/s: delivered | p50 us | p99 us | server CPU | server us/msg |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
