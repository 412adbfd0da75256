#!/usr/bin/env bash
# Socket.IO fan-out benchmark: bus-bridge's Socket.IO endpoint against a Node socket.io@4 server
# and a python-socketio (aiohttp) server, each serving the same ~200-byte JSON events to 1, 50
# and 500 WebSocket clients of sio-loadgen on loopback. The server (and its source) runs on one
# CPU, the load generator on another (taskset). Two phases per server and client count:
#   max  the source offers OFFER deliveries/s in total (OFFER/clients events/s): delivered msg/s
#        is what the server sustains;
#   lat  a fixed LAT deliveries/s in total, within every server's reach: p50/p99 latency
#        (source stamp -> frame read by the client; bus publish time for the bridge).
#
#   bench/socketio/run.sh [BUILD_DIR]     (env: SECS=10 OFFER=1000000 LAT=5000 CLIENTS="1 50 500"
#                                          SERVERS="bridge node python" SERVER_CPU=0 LOAD_CPU=1)
# Needs: bus-bridge, sio-loadgen, sio-bench-source built in BUILD_DIR; node + `npm ci` here
# (run.sh does it); Debian's python3-socketio and python3-aiohttp under /usr/bin/python3.
# Prints one JSON line per run and a Markdown table at the end.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${1:-$HERE/../../build}
SECS=${SECS:-10}
OFFER=${OFFER:-1000000}
LAT=${LAT:-5000}
CLIENTS=${CLIENTS:-"1 50 500"}
SERVERS=${SERVERS:-"bridge node python"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
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
    bridge)
      cat >"$WORK/bridge.yaml" <<YAML
bridge:
  name: sio-bench
  bus: $BUS
  topic_scan_ms: 50
  http:
    address: 127.0.0.1
    port: $port
socketio:
  subscribe: ["md.>"]
  max_clients: 1000
  queue: 8192
  disconnect_after: 100000000
YAML
      taskset -c "$SERVER_CPU" "$BUILD/tools/bridge/app/bus-bridge" --config "$WORK/bridge.yaml" \
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
ROWS=()
for kind in $SERVERS; do
  for n in $CLIENTS; do
    for phase in max lat; do
      total=$([[ $phase == max ]] && echo "$OFFER" || echo "$LAT")
      rate=$(((total + n - 1) / n))
      port=$(free_port)
      start_server "$kind" "$port" "$rate"
      sub=()
      [[ $kind == bridge ]] && sub=(--subscribe md.quotes)
      out=$(taskset -c "$LOAD_CPU" "$BUILD/bench/sio-loadgen" --port "$port" --clients "$n" \
        --seconds "$SECS" --warmup 2 "${sub[@]}" || true)
      stop_server
      echo "{\"server\":\"$kind\",\"phase\":\"$phase\",\"events_per_s\":$rate,${out#\{}"
      ROWS+=("$kind $phase $n $rate $out")
    done
  done
done
echo
echo "| server | clients | max: delivered msg/s (loadgen CPU) | lat: offered msg/s | p50 us | p99 us | (loadgen CPU) |"
echo "|---|---|---|---|---|---|---|"
for kind in $SERVERS; do
  for n in $CLIENTS; do
    m=$(printf '%s\n' "${ROWS[@]}" | awk -v k="$kind" -v n="$n" '$1==k && $2=="max" && $3==n {print substr($0, index($0,"{"))}')
    l=$(printf '%s\n' "${ROWS[@]}" | awk -v k="$kind" -v n="$n" '$1==k && $2=="lat" && $3==n {print substr($0, index($0,"{"))}')
    g() { /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print(d.get(sys.argv[2],"-"))' "$1" "$2"; }
    echo "| $kind | $n | $(g "$m" msg_per_s) ($(g "$m" loadgen_cpu_pct)%) | $LAT | $(g "$l" p50_us) | $(g "$l" p99_us) | ($(g "$l" loadgen_cpu_pct)%) |"
  done
done
