#!/usr/bin/env python3
"""A Python strategy on the demo's bus: EWMA mean reversion on md.quotes,
signals on "py.signals".

    tools/scripts/demo.sh starts the C++ feed (shmbus-feed) on a bus; then
    PYTHONPATH=build/python python3 tools/examples/python/strategy.py --bus <bus>

For each symbol the mid price's exponentially weighted mean is tracked; when
the mid is more than --threshold-bps away from it, the strategy expects a
reversion and publishes a shmbus.strategy.Signal (Entry Short above, Entry
Long below); it publishes Exit once the deviation is back within half the
threshold. Only changes of view are published. Trades (md.trades) feed a
session VWAP per symbol, shown in the summary.

At the end it prints one JSON line: quotes, trades, gaps, signals published,
and the p50/p99 one-way latency (publish to handler) in microseconds.
"""
import argparse
import json
import math
import os
import sys
import threading
import time

import shmbus


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bus", required=True, help="the demo's bus name")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds to run (0: until Ctrl-C)")
    ap.add_argument("--halflife-ms", type=float, default=50.0, help="EWMA half-life")
    ap.add_argument("--threshold-bps", type=float, default=1.0, help="deviation that triggers a signal")
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the feed's topics")
    ap.add_argument("--name", default="py-example", help="strategy id and consumer name")
    args = ap.parse_args()

    bus = shmbus.Bus.open_or_create(args.bus)
    # The feed creates md.quotes and md.trades: wait for them, then subscribe.
    for topic in ("md.quotes", "md.trades"):
        bus.wait_for_topic(topic, timeout=args.wait)
    signals = bus.publisher("py.signals", type="shmbus.strategy.Signal", policy="reliable",
                            slot_size=512, slot_count=4096, name=args.name)
    d = shmbus.Dispatcher(bus, name=args.name)
    halflife_ns = args.halflife_ms * 1e6
    state = {}  # symbol -> [ewma, last_ts, position, first_ts]
    vwap = {}   # symbol -> [sum px*qty, sum qty]
    ages = []
    stats = {"quotes": 0, "trades": 0, "gaps": 0, "lost": 0, "signals": 0, "signals_failed": 0}

    @d.on("md.quotes", type="shmbus.md.Quote")
    def on_quote(msg):
        ages.append(msg.meta.age_ns)
        q = msg.data
        stats["quotes"] += 1
        if q["bid_qty"] <= 0 or q["ask_qty"] <= 0:
            return
        mid = (q["bid_px"] + q["ask_px"]) / 2
        ts = msg.ts_ns
        s = state.setdefault(q["symbol"], [mid, ts, 0, ts])
        alpha = 1 - math.pow(2, -(ts - s[1]) / halflife_ns)
        s[0] += alpha * (mid - s[0])
        s[1] = ts
        if ts - s[3] < halflife_ns:
            return  # warming up
        dev_bps = (mid - s[0]) / s[0] * 1e4
        view = s[2]
        if dev_bps > args.threshold_bps:
            view = -1
        elif dev_bps < -args.threshold_bps:
            view = 1
        elif abs(dev_bps) < args.threshold_bps / 2:
            view = 0
        if view == s[2]:
            return
        s[2] = view
        r = signals.publish({
            "strategy_id": args.name, "symbol": q["symbol"], "venue": q.get("venue", ""),
            "kind": "Exit" if view == 0 else "Entry",
            "direction": {1: "Long", -1: "Short", 0: "Flat"}[view],
            "strength": min(1.0, abs(dev_bps) / (4 * args.threshold_bps)), "value": dev_bps,
            "generated_ts": time.time_ns(), "source_ts": q["exchange_ts"], "seq": stats["signals"] + 1,
            "model": "ewma-mean-reversion/py",
        }, timeout=0.01)
        if r == shmbus.PublishResult.Ok:
            stats["signals"] += 1
        else:
            stats["signals_failed"] += 1

    @d.on("md.trades", type="shmbus.md.Trade")
    def on_trade(msg):
        t = msg.as_(shmbus.msg.md.Trade)  # the generated class: no dict conversion
        stats["trades"] += 1
        v = vwap.setdefault(t.Symbol().decode(), [0.0, 0.0])
        v[0] += t.Price() * t.Qty()
        v[1] += t.Qty()

    @d.on_gap
    def on_gap(gap):
        stats["gaps"] += 1
        stats["lost"] += gap.count

    if args.duration > 0:
        threading.Timer(args.duration, d.stop).start()
    try:
        d.run()
    except KeyboardInterrupt:
        pass
    ages.sort()
    pct = (lambda p: round(ages[min(len(ages) - 1, int(p * len(ages)))] / 1e3, 2)) if ages else (lambda p: None)
    stats.update(handler_errors=d.errors, age_p50_us=pct(0.5), age_p99_us=pct(0.99),
                 vwap={k: round(v[0] / v[1], 4) for k, v in vwap.items() if v[1] > 0})
    print(json.dumps(stats), flush=True)
    return 0 if stats["quotes"] > 0 and d.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
