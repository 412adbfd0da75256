#!/usr/bin/env bash
# Installs the Debian 12 packages shmbus needs to build, test and run its
# demo. Idempotent and quiet when everything is present; needs root (or sudo)
# only when something is missing.
#
#   tools/scripts/install-deps.sh            build + tests + demo
#   tools/scripts/install-deps.sh --bench    also the benchmark peers
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libboost-dev libboost-system-dev
  libflatbuffers-dev flatbuffers-compiler
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libyaml-cpp-dev
  libhiredis-dev librabbitmq-dev
  pybind11-dev python3-dev python3-flatbuffers python3-pytest
  procps tmux
)
# Tests: real servers and the real clients remote users run against them,
# promtool for the metrics format, clang for the fuzzers.
if [[ "${1:-}" == "--bench" || "${1:-}" == "--test" ]]; then
  packages+=(redis-server redis-tools rabbitmq-server amqp-tools
             python3-redis python3-pika python3-socketio python3-engineio python3-websocket python3-aiohttp
             prometheus clang libclang-rt-14-dev)
fi
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(libzmq3-dev cppzmq-dev libhiredis-dev redis-server redis-tools gnuplot-nox)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
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
