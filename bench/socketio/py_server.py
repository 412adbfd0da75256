"""The reference fan-out for bench/socketio/run.sh: a python-socketio server (Debian's
python3-socketio 5.7 on aiohttp, under /usr/bin/python3) that emits RATE events per second to
every connected client, each a ~200-byte JSON envelope shaped like bus-bridge's md.quotes
events, stamped with CLOCK_REALTIME ns ("ts") when emitted.

usage: /usr/bin/python3 py_server.py PORT RATE
"""
import asyncio
import os
import sys
import time

import socketio
from aiohttp import web

port, rate = int(sys.argv[1]), float(sys.argv[2])
sio = socketio.AsyncServer(async_mode="aiohttp")
app = web.Application()
sio.attach(app)


async def generate():
    seq = 0
    start = time.monotonic()
    while True:
        due = int((time.monotonic() - start) * rate)
        while seq < due:
            seq += 1
            await sio.emit("md.quotes", {
                "topic": "md.quotes", "seq": seq, "ts": time.time_ns(), "producer": os.getpid(),
                "id": f"bench/md.quotes/{seq}", "type": "shmbus.md.Quote",
                "data": {"symbol": "AAPL", "seq": seq, "bid_px": 189.91, "bid_qty": 300,
                         "ask_px": 189.93, "ask_qty": 200}})
        await asyncio.sleep(0.001)


async def on_startup(_app):
    asyncio.get_running_loop().create_task(generate())
    print("READY", flush=True)

app.on_startup.append(on_startup)
web.run_app(app, host="127.0.0.1", port=port, print=None)
