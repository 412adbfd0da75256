#!/usr/bin/env bash
# Interleaved A/B of two builds of bus-bench (and shmbus-microbench): proof
# that a change did not slow the bus, measured in one run on one machine.
#
#   bench/ab.sh BUILD_A BUILD_B [ROUNDS] [OUT]
#
# Each round runs A then B (then the next round B then A, so neither always
# goes first): the 32 B and Quote round trips on a lossy and a reliable topic
# against the floor measured in the same run, and 1 -> 1 throughput at 32 B
# on both policies. The summary gives, per row, the median over rounds of
# p50, p99 and the bus/floor ratio, and B relative to A. Microbenchmarks run
# once per build with repetitions, medians reported.
set -euo pipefail
a=${1:?build directory A}
b=${2:?build directory B}
rounds=${3:-6}
out=${4:-bench-results/ab}
mkdir -p "$out"
cpus=${CPUS:-$(python3 -c 'import os; c=sorted(os.sched_getaffinity(0)); print(f"{c[0]},{c[1]}")')}

latency() {  # build, tag
  "$1/bench/bus-bench" --cpus "$cpus" --systems floor,bus,bus-reliable --payloads 32,quote \
    --round-trips 200000 --warmup 50000 --no-throughput --no-plot --out "$out/$2" >"$out/$2.log" 2>&1
}
throughput() {  # build, tag
  "$1/bench/bus-bench" --cpus "$cpus" --no-latency --no-plot --throughput-payloads 32 \
    --throughput-consumers 1 --throughput-messages 10000000 --throughput-repeats 1 \
    --out "$out/$2" >"$out/$2.log" 2>&1
}

for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order=(A B); else order=(B A); fi
  for side in "${order[@]}"; do
    dir=$a
    [[ $side == B ]] && dir=$b
    echo "round $r: $side latency" >&2
    latency "$dir" "lat-$side-$r"
    echo "round $r: $side throughput" >&2
    throughput "$dir" "thr-$side-$r"
  done
done

for side in A B; do
  dir=$a
  [[ $side == B ]] && dir=$b
  "$dir/bench/shmbus-microbench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_format=json >"$out/micro-$side.json" 2>/dev/null
done

python3 - "$out" "$rounds" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def med(xs): return statistics.median(xs) if xs else float("nan")
lat = {"A": {}, "B": {}}
thr = {"A": {}, "B": {}}
for side in "AB":
    for r in range(1, rounds + 1):
        d = json.load(open(os.path.join(out, f"lat-{side}-{r}", "bus-bench.json")))
        for x in d["latency"]:
            if x["system"] == "floor" or not x.get("ok", True):
                continue
            key = (x["system"], x["payload"])
            lat[side].setdefault(key, []).append((x["rtt_ns"]["p50"], x["rtt_ns"]["p99"],
                                                  x["rtt_ns"]["p50"] / x["floor_ns"]["p50"]))
        d = json.load(open(os.path.join(out, f"thr-{side}-{r}", "bus-bench.json")))
        for x in d["throughput"]:
            key = (x["policy"], x["payload_bytes"], x["consumers"], x.get("batch", 1))
            thr[side].setdefault(key, []).append(x["delivered_per_s_slowest"])
print(f"{'round trip':24} {'A p50':>7} {'B p50':>7} {'A p99':>7} {'B p99':>7} {'A /floor':>9} {'B /floor':>9} {'B/A p50':>8}")
for key in sorted(lat["A"]):
    a, b = lat["A"][key], lat["B"].get(key, [])
    ap50, bp50 = med([x[0] for x in a]), med([x[0] for x in b])
    print(f"{key[0] + ' ' + key[1]:24} {ap50:7.0f} {bp50:7.0f} {med([x[1] for x in a]):7.0f} "
          f"{med([x[1] for x in b]):7.0f} {med([x[2] for x in a]):9.2f} {med([x[2] for x in b]):9.2f} "
          f"{bp50 / ap50:8.3f}")
print()
print(f"{'throughput 1->1':24} {'A M/s':>7} {'B M/s':>7} {'B/A':>8}")
for key in sorted(thr["A"]):
    a, b = med(thr["A"][key]), med(thr["B"].get(key, []))
    label = f"{key[0]} {key[1]} B 1->{key[2]} x{key[3]}"
    print(f"{label:24} {a / 1e6:7.1f} {b / 1e6:7.1f} {b / a:8.3f}")
print()
ma = {x["run_name"]: x for x in json.load(open(os.path.join(out, "micro-A.json")))["benchmarks"] if x.get("aggregate_name") == "median"}
mb = {x["run_name"]: x for x in json.load(open(os.path.join(out, "micro-B.json")))["benchmarks"] if x.get("aggregate_name") == "median"}
print(f"{'microbenchmark (median ns)':48} {'A':>9} {'B':>9} {'B/A':>7}")
for name in sorted(ma):
    if name in mb:
        print(f"{name[:48]:48} {ma[name]['real_time']:9.1f} {mb[name]['real_time']:9.1f} "
              f"{mb[name]['real_time'] / ma[name]['real_time']:7.3f}")
PY
