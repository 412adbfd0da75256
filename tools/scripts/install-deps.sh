#!/usr/bin/env bash
# Installs the Debian 12 packages shmbus needs to build, test and run its
# demo. Idempotent and quiet when everything is present; needs root (or sudo)
# only when something is missing.
#
#   tools/scripts/install-deps.sh            build + demo
#   tools/scripts/install-deps.sh --test     also what the tests run against (servers, clients)
#   tools/scripts/install-deps.sh --bench    also the benchmark peers (implies --test)
#   tools/scripts/install-deps.sh --check    with any of the above: install nothing, only say
#                                            what is missing and how to install it (exit 1
#                                            if anything is); never needs root
set -euo pipefail

test_pkgs=0
bench_pkgs=0
check_only=0
for arg in "$@"; do
  case $arg in
    --test) test_pkgs=1 ;;
    --bench) test_pkgs=1 bench_pkgs=1 ;;
    --check) check_only=1 ;;
    *) echo "install-deps: unknown option '$arg' (options: --test, --bench, --check)" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential cmake pkg-config
  libboost-dev libboost-system-dev
  libflatbuffers-dev flatbuffers-compiler
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libyaml-cpp-dev
  libhiredis-dev librabbitmq-dev
  pybind11-dev python3-dev python3-flatbuffers python3-pytest python3-mypy
  procps tmux
)
# Tests: real servers and the real clients remote users run against them,
# promtool for the metrics format, clang for the fuzzers, clang-format for
# tools/scripts/check-format.sh.
if ((test_pkgs)); then
  packages+=(redis-server redis-tools rabbitmq-server amqp-tools
             python3-redis python3-pika python3-requests python3-socketio python3-engineio python3-websocket python3-aiohttp
             prometheus clang libclang-rt-14-dev clang-format)
fi
if ((bench_pkgs)); then
  packages+=(libzmq3-dev cppzmq-dev libhiredis-dev redis-server redis-tools gnuplot-nox)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if ((check_only)); then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: install them as root with: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
