"""A real python-socketio client (Debian's python3-socketio, default options: HTTP long-polling
first, then the upgrade to WebSocket) driven by sio_client_test. Prints one line
"RESULT <json>" with what it saw; the C++ test asserts on it.

usage: /usr/bin/python3 py_client.py URL TOKEN TICKS
"""
import json
import os
import sys
import threading

import socketio

url, token, ticks_wanted = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {}
sio = socketio.Client(engineio_logger=bool(os.environ.get("SIO_CLIENT_LOG")))
ticks = []
ticks_done = threading.Event()
answered = threading.Event()
news = []


@sio.on("tick")
def on_tick(i):
    ticks.append(i)
    if len(ticks) == ticks_wanted:
        ticks_done.set()


@sio.on("question")
def on_question(x):
    return x + 1  # the ack reply to the server's emit_with_ack


@sio.on("answer-received")
def on_answer(value):
    out["answer"] = value
    answered.set()


@sio.on("binary-back")
def on_binary_back(data):
    out["binary_event"] = list(data)


@sio.event
def connect_error(data):
    out["connect_error"] = data.get("message") if isinstance(data, dict) else str(data)


def finish():
    print("RESULT " + json.dumps(out), flush=True)
    # A refused client keeps reconnecting in the background (its default): leave at once.
    os._exit(0)


try:
    sio.connect(url, auth={"token": token}, wait_timeout=5)
except socketio.exceptions.ConnectionError as e:
    out.setdefault("connect_error", str(e))
    finish()

out["transport"] = sio.transport()
out["ack"] = sio.call("echo", {"a": 1, "b": [1, 2]}, timeout=10)
out["binary_ack"] = list(sio.call("echo", b"\x00\x01\xfe\xff", timeout=10))
sio.call("emit-binary", b"\x07\x08", timeout=10)
sio.emit("stream", ticks_wanted)
out["ticks_complete"] = ticks_done.wait(20)
out["ticks"] = ticks
sio.emit("server-ack", 41)
out["answered"] = answered.wait(10)
sio.disconnect()
print("RESULT " + json.dumps(out), flush=True)
