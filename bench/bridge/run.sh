#!/usr/bin/env bash
# Runs bridge-bench against a private redis-server and rabbitmq-server (started the way the
# tests start them, on loopback ports of their own, stopped on exit).
#
#   bench/bridge/run.sh [BUILD_DIR] [bridge-bench options...]
#
# Example: bench/bridge/run.sh build --rounds 3
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$root/build}
shift || true
# shellcheck source=../../tools/scripts/services.sh
source "$root/tools/scripts/services.sh"
trap services_stop EXIT
services_start
"$build/bench/bridge-bench" "$@"
