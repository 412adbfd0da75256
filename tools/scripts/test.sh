#!/usr/bin/env bash
# Runs every test of shmbus, as CI does: on a fresh Debian 12 machine as root
# it installs what it needs, then
#   1. builds (RelWithDebInfo) and runs the whole suite, benchmark smoke tests included;
#   2. builds and runs it under ThreadSanitizer;
#   3. builds and runs it under AddressSanitizer + UndefinedBehaviorSanitizer;
#   4. installs the library and builds the README's example as an out-of-tree
#      project with find_package(shmbus), then runs it.
# Build trees go to build-test/ (reused between runs). Exit status is non-zero
# if anything failed.
#
#   tools/scripts/test.sh              everything
#   tools/scripts/test.sh quick        step 1 only; as a user other than root it
#                                      installs nothing: it checks the packages
#                                      and says what to install if one is missing
#   JOBS=4 tools/scripts/test.sh       parallelism (default: nproc)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
mode=${1:-all}
case $mode in all | quick) ;; *) echo "test.sh: unknown mode '$mode' (all or quick)" >&2; exit 2 ;; esac
jobs=${JOBS:-$(nproc)}
out="$root/build-test"
mkdir -p "$out"

# CI (everything, as root on a fresh machine) installs what is missing. The
# quick run of a developer needs no root: what the tests use is checked, and
# the benchmark peers CMake leaves out when absent are not asked for.
if [[ $mode == quick && $(id -u) -ne 0 ]]; then
  "$root/tools/scripts/install-deps.sh" --test --check
else
  "$root/tools/scripts/install-deps.sh" --bench
fi
# Tests that talk to real servers start them on ports of their own; the
# script that starts them (and stops them on exit) lives beside this one.
if [[ -x "$root/tools/scripts/services.sh" ]]; then
  # shellcheck source=/dev/null
  source "$root/tools/scripts/services.sh"
  services_start
  trap services_stop EXIT
fi

failures=()
step() { printf '\n==== %s\n' "$*"; }

run_suite() {  # name, then extra cmake arguments
  local name=$1; shift
  local dir="$out/$name"
  step "build ($name)"
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; failures+=("$name: configure"); return; }
  if ! cmake --build "$dir" -j "$jobs" >"$dir.build.log" 2>&1; then
    grep -E "error|Error" "$dir.build.log" | head -50 || true
    tail -20 "$dir.build.log"
    failures+=("$name: build")
    return
  fi
  step "tests ($name)"
  if ! (cd "$dir" && ctest -j "$jobs" --output-on-failure --timeout 600) 2>&1 | tee "$dir.ctest.log"; then
    failures+=("$name: tests")
  fi
  # "100% tests passed, 0 tests failed out of 151" -> running totals.
  local line total failed
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$dir.ctest.log" | tail -1 || true)
  if [[ -n $line ]]; then
    failed=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
    total_passed=$((total_passed + total - failed))
    total_failed=$((total_failed + failed))
  else
    total_failed=$((total_failed + 1))
  fi
}
total_passed=0
total_failed=0

run_suite normal -DSHMBUS_SANITIZER=none
if [[ "$mode" != quick ]]; then
  run_suite tsan -DSHMBUS_SANITIZER=thread -DSHMBUS_BUILD_BENCHMARKS=OFF
  run_suite asan -DSHMBUS_SANITIZER=address -DSHMBUS_BUILD_BENCHMARKS=OFF

  step "install + out-of-tree consumer (README example)"
  prefix="$out/prefix"
  consumer="$out/consumer"
  rm -rf "$prefix" "$consumer"
  if cmake --install "$out/normal" --prefix "$prefix" >"$out/install.log" 2>&1 &&
     "$root/tests/consumer/extract-example.sh" "$root/README.md" "$consumer/src" &&
     cmake -S "$consumer/src" -B "$consumer/build" -DCMAKE_PREFIX_PATH="$prefix" >"$out/consumer.log" 2>&1 &&
     cmake --build "$consumer/build" -j "$jobs" >>"$out/consumer.log" 2>&1 &&
     "$consumer/build/readme-example"; then
    echo "out-of-tree consumer: find_package(shmbus) + README example: OK"
    total_passed=$((total_passed + 1))
  else
    total_failed=$((total_failed + 1))
    tail -40 "$out/install.log" "$out/consumer.log" 2>/dev/null || true
    failures+=("out-of-tree consumer")
  fi
fi

# The C++ sources in the repository's format (clang-format 14, .clang-format).
step "format"
if "$root/tools/scripts/check-format.sh"; then
  total_passed=$((total_passed + 1))
else
  total_failed=$((total_failed + 1))
  failures+=("format (tools/scripts/check-format.sh --fix)")
fi

# The library's layering: no file includes a higher layer, no include cycle.
step "layers"
if "$root/tools/scripts/check-layers.sh"; then
  total_passed=$((total_passed + 1))
else
  total_failed=$((total_failed + 1))
  failures+=("layers")
fi

# Fuzzers (clang, ASan+UBSan), a bounded run each on the committed corpora.
if [[ "$mode" != quick ]]; then
  step "fuzz (${FUZZ_SECONDS:-30} s per target)"
  if FUZZ_BUILD_DIR="$out/fuzz" JOBS=$jobs "$root/tools/scripts/fuzz.sh" "${FUZZ_SECONDS:-30}"; then
    total_passed=$((total_passed + 1))
  else
    total_failed=$((total_failed + 1))
    failures+=("fuzz")
  fi
fi

step "summary"
((${#failures[@]} == 0)) || printf 'FAILED: %s\n' "${failures[@]}"
# Every test of every stage (the out-of-tree build counts as one).
echo "${total_passed} passed, ${total_failed} failed"
((${#failures[@]} == 0 && total_failed == 0))
