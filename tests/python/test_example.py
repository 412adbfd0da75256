"""The Python example strategy (tools/examples/python/strategy.py) against the
demo's C++ feed handler: it receives every quote and publishes signals."""
import json
import os
import re
import sys

import shmbus
from shmbus.msg import strategy
from conftest import Peer, tool


def test_example_strategy_against_feed(bus_name):
    feed = tool("SHMBUS_TOOL_SHMBUS_FEED")
    example = os.path.join(os.environ.get("SHMBUS_EXAMPLES", ""), "strategy.py")
    strat = Peer([sys.executable, example, "--bus", bus_name, "--duration", "4", "--threshold-bps", "0.5",
                  "--halflife-ms", "20"], env=dict(os.environ))
    fh = Peer([feed, "--bus", bus_name, "--rate", "10000", "--duration", "2", "--wait-consumers", "1",
               "--wait", "30", "--slots", "65536"])
    try:
        rc, err = fh.finish(timeout=60)
        assert rc == 0, err
        rc, err = strat.finish(timeout=60)
        assert rc == 0, err
        summary = json.loads(strat.lines[-1])
        done = next(l for l in fh.lines if "published" in l and "quotes" in l)
        nq, nt = map(int, re.search(r"\((\d+) quotes, (\d+) trades\)", done).groups())
        assert summary["quotes"] == nq and summary["trades"] == nt and summary["lost"] == 0, (summary, done)
        assert summary["signals"] > 0 and summary["signals_failed"] == 0 and summary["handler_errors"] == 0
        # The signals are on the bus, well-formed, for whoever reads them.
        with shmbus.Bus.open(bus_name) as bus:
            sub = bus.subscriber("py.signals", name="check", start="oldest", register=False)
            sigs = sub.poll(100000)
            assert len(sigs) == min(summary["signals"], 4096)
            s = sigs[0].as_(strategy.Signal)
            assert s.StrategyId() == b"py-example" and s.Seq() == 1
    finally:
        fh.kill()
        strat.kill()
