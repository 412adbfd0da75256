#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) into build-fuzz/ and
# runs each for SECONDS (default 30) on its corpus, with a per-input timeout.
# A crash, a hang past the timeout or a sanitizer report fails the run (exit
# 1) and leaves the input as build-fuzz/findings/<target>/crash-* (or
# timeout-*, leak-*) to replay: build-fuzz/.../<target> <file>.
#
#   tools/scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Targets: segment_fuzz (scribbled shared memory), json_fuzz (JSON ->
# FlatBuffer), verifier_fuzz (untrusted FlatBuffers), sio_parser_fuzz (the
# Engine.IO / Socket.IO parsers). Seed corpora live in tests/fuzz/corpus/ and
# tests/bridge/socketio/fuzz/corpus/; new inputs go to build-fuzz/corpus/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(segment_fuzz json_fuzz verifier_fuzz sio_parser_fuzz)
out=${FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${JOBS:-$(nproc)}
cxx=$(command -v clang++-14 || command -v clang++ || true)
[[ -n $cxx ]] || { echo "fuzz: clang++ is not installed (apt-get install -y clang libclang-rt-14-dev)" >&2; exit 2; }

cmake -S "$root" -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
  -DSHMBUS_SANITIZER=address -DSHMBUS_BUILD_FUZZERS=ON -DSHMBUS_BUILD_BENCHMARKS=OFF \
  -DSHMBUS_BUILD_PYTHON=OFF >"$out.configure.log" 2>&1 || { tail -30 "$out.configure.log"; exit 1; }
cmake --build "$out" -j "$jobs" --target "${targets[@]}" >"$out.build.log" 2>&1 ||
  { grep -E "error" -A3 "$out.build.log" | head -40; tail -20 "$out.build.log"; exit 1; }

failed=()
for t in "${targets[@]}"; do
  bin=$(find "$out" -type f -name "$t" -perm -u+x | head -1)
  seeds=$root/tests/fuzz/corpus/${t%_fuzz}
  [[ $t == sio_parser_fuzz ]] && seeds=$root/tests/bridge/socketio/fuzz/corpus
  corpus=$out/corpus/$t
  findings=$out/findings/$t
  mkdir -p "$corpus" "$findings"
  echo "==== fuzz $t for ${seconds} s"
  if (cd "$findings" && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
        "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 "$corpus" "$seeds" >"$out/$t.log" 2>&1); then
    grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$out/$t.log" | tail -2
  else
    tail -40 "$out/$t.log"
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $out/findings/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds} s each, no finding"
