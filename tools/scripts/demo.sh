#!/usr/bin/env bash
# shmbus demo: a feed handler and a strategy, two processes, one bus in
# shared memory.
#
#   tools/scripts/demo.sh            # run for 10 s
#   tools/scripts/demo.sh 30         # run for 30 s (or: DURATION=30 tools/scripts/demo.sh)
#
# On a fresh Debian 12 machine, as root (or a user with sudo), it
#   1. installs the build dependencies (tools/scripts/install-deps.sh),
#   2. builds shmbus-feed and shmbus-strategy into build/ (Release; a no-op
#      when they are up to date),
#   3. puts bus-inspect on the PATH (a link in /usr/local/bin when it may
#      write there), waits (at most 30 s) for the machine to be quiet after
#      the build, starts the strategy, then the feed, on bus `demo` (BUS),
#      runs for DURATION seconds and stops both,
#   4. prints both final summaries and what they mean,
# and removes the bus's shared memory on the way out with `bus-inspect gc`
# once both have exited, also on Ctrl-C or failure. Every wait is bounded.
#
# Environment:
#   DURATION   seconds of feed (default 10; the first argument wins)
#   RATE       messages per second, quotes and trades together (default
#              100000; 0 = as fast as the feed can go)
#   IDLE       the strategy's idle policy: spin | yield | block (default spin;
#              block on a single-CPU machine)
#   PIN        1 (default with 2+ CPUs): pin the feed and the strategy's
#              dispatcher thread to two different CPUs; 0: let the scheduler
#              place them. A spinning reader time-sliced on one core with its
#              own producer sees nothing while it runs and is lapped while the
#              producer does: pinning rules that out.
#   BUILD_DIR  build tree (default <repo>/build)
#   BUS        the bus (default demo: the README's `bus-inspect ... demo`
#              commands work while the demo runs). If another demo is using
#              it, this one runs on demo-<pid> and says so.
# Logs and the strategy's JSON figures stay in <build>/demo/ after the run.
#
# Exit status: 0 if both processes succeeded and the strategy received
# messages; 1 otherwise; 2 for a bad argument; 130 when interrupted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DURATION=${1:-${DURATION:-10}}
RATE=${RATE:-100000}
CPUS=$(nproc 2>/dev/null || echo 1)
if ((CPUS >= 2)); then IDLE=${IDLE:-spin}; PIN=${PIN:-1}; else IDLE=${IDLE:-block}; PIN=0; fi
BUILD=${BUILD_DIR:-$ROOT/build}
OUT=$BUILD/demo
BUS=${BUS:-demo}

if ! [[ $DURATION =~ ^[0-9]+([.][0-9]+)?$ ]] || [[ $DURATION =~ ^0+([.]0+)?$ ]]; then
  echo "demo: DURATION must be a positive number of seconds (got '$DURATION')" >&2
  exit 2
fi
if ! [[ $RATE =~ ^[0-9]+$ ]]; then
  echo "demo: RATE must be a whole number of messages per second, 0 for as fast as possible (got '$RATE')" >&2
  exit 2
fi
if [[ $PIN != 0 && $PIN != 1 ]]; then
  echo "demo: PIN must be 0 or 1 (got '$PIN')" >&2
  exit 2
fi
case $IDLE in spin | yield | block) ;; *)
  echo "demo: IDLE must be spin, yield or block (got '$IDLE')" >&2
  exit 2
  ;;
esac

say() { printf 'demo: %s\n' "$*"; }

# ------------------------------------------------------------------ cleanup
STRAT_PID=""
FEED_PID=""
TAIL_PID=""
BUS_USED=0 # set once a program may have created the bus
GC_DONE=0

alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }

# wait_for_exit PID SECONDS: 0 once PID has exited, 1 if it is still running
# after SECONDS. (bash reaps its children as they exit, so kill -0 fails
# once a child is gone.)
wait_for_exit() {
  local pid=$1 tenths=$(($2 * 10))
  while alive "$pid"; do
    ((tenths-- > 0)) || return 1
    sleep 0.1
  done
  return 0
}

# Removes the bus with `bus-inspect gc BUS`, which knows the segments' names
# and removes only what no live process uses, and prints what it says. Run
# it once the programs have exited: while one runs, gc keeps its segments.
remove_bus() {
  GC_DONE=1
  local inspect=$BUILD/tools/inspect/bus-inspect
  echo "---- bus-inspect gc $BUS (both programs have exited: their segments are dead)"
  if [[ ! -x $inspect ]]; then
    echo "demo: $inspect is missing, so bus $BUS stays in shared memory;" \
      "build bus-inspect and run: bus-inspect gc $BUS" >&2
    return
  fi
  timeout 10 "$inspect" gc "$BUS" 2>&1 || true
}

# Stops what is still running (TERM, then KILL after 5 s), waits until it has
# exited, and removes the bus.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local pid
  for pid in "$TAIL_PID" "$FEED_PID" "$STRAT_PID"; do
    if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "$FEED_PID" "$STRAT_PID"; do
    if alive "$pid" && ! wait_for_exit "$pid" 5; then
      echo "demo: pid $pid did not stop on SIGTERM within 5 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      wait_for_exit "$pid" 5 || true
    fi
  done
  if ((rc == 130)); then
    # Interrupted: the programs stopped on the signal and wrote what they saw.
    local log
    for log in "$OUT/feed.log" "$OUT/strategy.log"; do
      [[ -f $log ]] && sed -n '/: done after/,$p' "$log"
    done
  fi
  if ((BUS_USED == 1 && GC_DONE == 0)); then remove_bus; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted; stopping both processes and removing bus $BUS" >&2; exit 130' INT TERM

# ------------------------------------------------------------------ 1. dependencies
say "[1/4] dependencies: tools/scripts/install-deps.sh"
"$ROOT/tools/scripts/install-deps.sh"

# ------------------------------------------------------------------ 2. build
# Release, no tests or benchmarks: only what the demo runs. An existing build
# tree is reused as it is configured. Warnings are errors here too: the demo
# targets Debian 12's g++ 12, like every other build of the project.
mkdir -p "$OUT"
say "[2/4] build: $BUILD (Release; shmbus-feed and shmbus-strategy; logs in $OUT)"
# The tree is configured with the project's defaults (tests and benchmarks
# on): only the demo's targets are built now, and a later build of build/
# gets everything, as the README says.
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  if ! cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$OUT/configure.log" 2>&1; then
    tail -n 40 "$OUT/configure.log" >&2
    echo "demo: cmake configure failed (full log: $OUT/configure.log)" >&2
    exit 1
  fi
fi
build_start=$SECONDS
if ! cmake --build "$BUILD" -j2 --target shmbus-feed shmbus-strategy bus-inspect >"$OUT/build.log" 2>&1; then
  tail -n 40 "$OUT/build.log" >&2
  echo "demo: build failed (full log: $OUT/build.log)" >&2
  exit 1
fi
say "      built in $((SECONDS - build_start)) s"
BIN=$BUILD/tools

# bus-inspect on the PATH, as the README's commands use it.
inspect_bin=$BIN/inspect/bus-inspect
if [[ $(command -v bus-inspect 2>/dev/null) != /usr/local/bin/bus-inspect || ! -e /usr/local/bin/bus-inspect ]] &&
  [[ -w /usr/local/bin ]]; then
  ln -sf "$inspect_bin" /usr/local/bin/bus-inspect
fi
if [[ $(readlink -f "$(command -v bus-inspect 2>/dev/null || true)") == "$(readlink -f "$inspect_bin")" ]]; then
  say "      bus-inspect is on your PATH ($(command -v bus-inspect) -> $inspect_bin)"
else
  say "      bus-inspect: add it to your PATH with: export PATH=\"$BIN/inspect:\$PATH\""
fi

# What an earlier run left behind (a crash, a kill -9) goes first.
"$inspect_bin" gc "$BUS" >/dev/null 2>&1 || true
# One demo per bus: if another one is running on it, use a bus of our own.
if "$inspect_bin" list "$BUS" --json 2>/dev/null | grep -q '"alive":true'; then
  say "      bus $BUS is in use by another running demo; this one runs on bus $BUS-$$"
  BUS=$BUS-$$
fi

# The first figures a newcomer sees should be the bus's, not the compiler's:
# wait until the CPUs have been mostly idle for two seconds in a row (at most
# 30 s), and say so.
cpu_idle_pct() {  # share of CPU time idle over the next second, in percent
  local a b
  read -r -a a < <(head -1 /proc/stat)
  sleep 1
  read -r -a b < <(head -1 /proc/stat)
  local total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  local idle=$((b[4] - a[4] + b[5] - a[5]))
  ((total > 0)) && echo $((100 * idle / total)) || echo 100
}
quiet=0
waited=0
while ((quiet < 2 && waited < 30)); do
  pct=$(cpu_idle_pct)
  waited=$((waited + 1))
  if ((pct >= 80)); then quiet=$((quiet + 1)); else quiet=0; fi
done
if ((quiet >= 2)); then
  ((waited > 2)) && say "      waited ${waited} s for the machine to settle after the build (CPUs now ${pct}% idle)"
else
  say "      the machine is still busy after 30 s (CPUs ${pct}% idle): the latency figures below include that load"
fi

# ------------------------------------------------------------------ 3. run
strat_cpu=()
feed_cpu=()
pin_text="not pinned"
if [[ $PIN == 1 ]]; then
  # Keep CPU 0 (most interrupts) free where there are enough CPUs.
  if ((CPUS >= 3)); then s_cpu=1 f_cpu=2; else s_cpu=0 f_cpu=1; fi
  strat_cpu=(--cpu "$s_cpu")
  feed_cpu=(--cpu "$f_cpu")
  pin_text="strategy on CPU $s_cpu, feed on CPU $f_cpu"
fi
rm -f "$OUT/strategy.json" "$OUT/strategy.log" "$OUT/feed.log"
rate_text=$([[ $RATE == 0 ]] && echo "as fast as it can" || echo "$RATE msg/s")
load_before=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
say "[3/4] run: bus $BUS; strategy first (idle $IDLE), then the feed at $rate_text for $DURATION s ($pin_text)"

BUS_USED=1
"$BIN/shmbus-strategy" --bus "$BUS" --idle "$IDLE" "${strat_cpu[@]}" --wait 30 --json "$OUT/strategy.json" \
  >"$OUT/strategy.log" 2>&1 &
STRAT_PID=$!
# The feed creates the topics, and publishes once the strategy is subscribed
# to both (at most 30 s), so nothing is sent before anyone listens.
"$BIN/shmbus-feed" --bus "$BUS" --rate "$RATE" --duration "$DURATION" "${feed_cpu[@]}" --wait-consumers 1 --wait 30 \
  >"$OUT/feed.log" 2>&1 &
FEED_PID=$!
# The strategy's one-line-per-second report, live.
tail -n +1 -f --pid="$STRAT_PID" "$OUT/strategy.log" &
TAIL_PID=$!

failed=0
feed_budget=$((${DURATION%.*} + 45)) # its run, up to 30 s waiting for the strategy, and slack
feed_deadline=$((SECONDS + feed_budget))
# Halfway through, look at the live bus as an operator would (read-only:
# bus-inspect never registers as a consumer and never slows the producer).
inspect_at=$((SECONDS + (${DURATION%.*} + 1) / 2))
inspected=0
rm -f "$OUT/inspect.log"
while alive "$FEED_PID"; do
  if ((inspected == 0 && SECONDS >= inspect_at)) && grep -q "^strategy: " "$OUT/strategy.log" 2>/dev/null; then
    inspected=1
    {
      echo "\$ bus-inspect list $BUS"
      timeout 10 "$BIN/inspect/bus-inspect" list "$BUS" 2>&1 || true
      echo
      echo "\$ bus-inspect tail $BUS md.quotes -n 2"
      timeout 10 "$BIN/inspect/bus-inspect" tail "$BUS" md.quotes -n 2 2>&1 || true
    } >"$OUT/inspect.log"
  fi
  stop_why=""
  if ((SECONDS >= feed_deadline)); then
    stop_why="the feed is still running after ${feed_budget} s"
  elif ! alive "$STRAT_PID"; then
    stop_why="the strategy exited while the feed was running"
  fi
  if [[ -n $stop_why ]]; then
    echo "demo: $stop_why; stopping the feed" >&2
    kill -INT "$FEED_PID" 2>/dev/null || true
    wait_for_exit "$FEED_PID" 5 || kill -KILL "$FEED_PID" 2>/dev/null || true
    failed=1
    break
  fi
  sleep 0.2
done
feed_rc=0
wait "$FEED_PID" || feed_rc=$?
FEED_PID=""

# Let the strategy read the last messages, then stop it (SIGINT: it prints
# its final summary and writes its JSON on the way out).
sleep 0.5
kill "$TAIL_PID" 2>/dev/null || true
wait "$TAIL_PID" 2>/dev/null || true
TAIL_PID=""
strat_rc=0
if alive "$STRAT_PID"; then
  kill -INT "$STRAT_PID" 2>/dev/null || true
  if ! wait_for_exit "$STRAT_PID" 10; then
    echo "demo: the strategy did not stop within 10 s of SIGINT; killing it" >&2
    kill -KILL "$STRAT_PID" 2>/dev/null || true
    failed=1
  fi
fi
wait "$STRAT_PID" || strat_rc=$?
STRAT_PID=""

# ------------------------------------------------------------------ 4. results
echo
say "[4/4] results"
echo "---- feed (exit $feed_rc)"
if ((feed_rc == 0)); then sed -n '/^feed: done after/,$p' "$OUT/feed.log"; else tail -n 20 "$OUT/feed.log"; fi
echo "---- strategy (exit $strat_rc)"
if ((strat_rc == 0)); then sed -n '/^strategy: done after/,$p' "$OUT/strategy.log"; else tail -n 20 "$OUT/strategy.log"; fi
if [[ -s $OUT/inspect.log ]]; then
  echo "---- the bus halfway through, as bus-inspect showed it"
  cat "$OUT/inspect.log"
fi
remove_bus
echo "----"

# The strategy's figures, read from its JSON with CMake's JSON support (cmake
# is here: we just built with it; jq and python may not be).
declare -A fig=()
if [[ -s $OUT/strategy.json ]]; then
  cat >"$OUT/figures.cmake" <<'EOF'
file(READ "${JSON}" j)
set(out "")
foreach(spec "received;received;total" "drops;drops;total" "signals;signals;published"
             "signals_failed;signals;not_published" "duration;duration_s" "rate;rate_msgs_per_s"
             "p50;latency_ns;p50" "p90;latency_ns;p90" "p99;latency_ns;p99" "p999;latency_ns;p99_9"
             "max;latency_ns;max" "count;latency_ns;count")
  list(POP_FRONT spec key)
  string(JSON value ERROR_VARIABLE err GET "${j}" ${spec})
  if(err)
    set(value "")
  endif()
  string(APPEND out "${key}=${value}\n")
endforeach()
file(WRITE "${OUT}" "${out}")
EOF
  if cmake -DJSON="$OUT/strategy.json" -DOUT="$OUT/figures.env" -P "$OUT/figures.cmake" 2>/dev/null; then
    while IFS='=' read -r key value; do fig[$key]=$value; done <"$OUT/figures.env"
  fi
fi
published=$(sed -n 's/^feed: done after .*: published \([0-9]*\) messages.*/\1/p' "$OUT/feed.log")
feed_rate=$(sed -n 's/^feed: done after .* \([0-9]*\) msg\/s average.*/\1/p' "$OUT/feed.log")
received=${fig[received]:-0}
drops=${fig[drops]:-0}

fmt_ns() {
  awk -v n="${1:-0}" 'BEGIN {
    if (n < 1000) printf "%d ns", n; else if (n < 1e6) printf "%.2f us", n / 1e3;
    else if (n < 1e9) printf "%.2f ms", n / 1e6; else printf "%.2f s", n / 1e9 }'
}

if [[ -n $published && -n ${fig[received]:-} ]]; then
  if ((received + drops == published)); then
    accounting="every published message is accounted for (received + dropped = published)"
  elif ((received + drops < published)); then
    accounting="$((published - received - drops)) published messages were neither received nor reported as gaps (the strategy was stopped before it read them)"
  else
    accounting="received + dropped exceeds published by $((received + drops - published)) (unexpected: please report)"
  fi
  echo
  echo "What happened: the feed published ${published} market-data messages in ${DURATION} s" \
    "(${feed_rate:-?} msg/s: quotes on md.quotes, trades on md.trades, lossy rings) and the strategy," \
    "a separate process, received ${received} of them and lost ${drops} to gaps (a lapped lossy ring" \
    "reports exactly which sequences it lost); ${accounting}." \
    "One-way latency, from the feed's publish stamp to the strategy's handler, on the bus clock:" \
    "p50 $(fmt_ns "${fig[p50]}"), p90 $(fmt_ns "${fig[p90]}"), p99 $(fmt_ns "${fig[p99]}")," \
    "p99.9 $(fmt_ns "${fig[p999]}"), max $(fmt_ns "${fig[max]}") over ${fig[count]} messages." \
    "From them the strategy published ${fig[signals]} mean-reversion signals on the reliable topic" \
    "'signals' (${fig[signals_failed]} not published)." | fold -s -w 100
  echo
  contention=""
  if ((${fig[p50]:-0} >= 100000)); then
    contention=" Here even the median is queueing: the strategy was descheduled for milliseconds at a time while messages kept arriving (the 1-minute load average was ${load_before} just before the run)."
  fi
  note="Note: this machine has ${CPUS} CPU(s). The feed spins to pace its sends and the strategy"
  note+=" ${IDLE}s while it waits for messages, so the two processes, the OS and anything else running"
  note+=" share ${CPUS} core(s): the median shows the bus, while the tail (p99.9, max) is mostly the"
  note+=" processes being preempted or descheduled$( ((CPUS <= 2)) && echo " on a small shared VM")."
  note+="${contention} Run on dedicated, isolated cores (isolcpus, --cpu) for figures that show the bus alone."
  echo "$note" | fold -s -w 100
  echo
  say "logs and JSON figures: $OUT/{feed.log,strategy.log,strategy.json}"
fi

status=0
if ((feed_rc != 0)); then
  echo "demo: FAILED: the feed exited with status $feed_rc (see $OUT/feed.log)" >&2
  status=1
fi
if ((strat_rc != 0)); then
  echo "demo: FAILED: the strategy exited with status $strat_rc (see $OUT/strategy.log)" >&2
  status=1
fi
if ((failed != 0)); then
  echo "demo: FAILED: a process had to be stopped by force (see above)" >&2
  status=1
fi
if ((strat_rc == 0 && received == 0)); then
  echo "demo: FAILED: the strategy received no messages" >&2
  status=1
fi
exit "$status"
