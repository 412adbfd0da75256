"""A real python-socketio client (Debian's python3-socketio, default options: HTTP long-polling
first, then the upgrade to WebSocket) driven by sioapp_test. It subscribes, receives COUNT
messages of TOPIC (confirming each with `consumed`), then emits each publish of the JSON list
in $PUBLISHES with an ack. With BINARY=1 it subscribes in binary mode: "data" arrives as
bytes (a binary attachment) and is reported as hex. Prints one line "RESULT <json>".

usage: /usr/bin/python3 py_client.py URL TOKEN TOPIC COUNT
"""
import json
import time
import os
import sys
import threading

import socketio

url, token, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
out = {"events": []}
sio = socketio.Client()
done = threading.Event()
lock = threading.Lock()  # handlers run in threads of their own


def on_message(envelope):
    if isinstance(envelope.get("data"), bytes):
        envelope["data_hex"] = envelope.pop("data").hex()
    with lock:
        out["events"].append(envelope)
        n = len(out["events"])
    sio.emit("consumed", envelope.get("seq"))
    if n == count:
        done.set()


sio.on(topic, on_message)


@sio.event
def connect_error(data):
    out["connect_error"] = data.get("message") if isinstance(data, dict) else str(data)


def finish():
    # python-socketio's Client runs each event handler in a thread of its own, so handlers
    # may run out of the order the events arrived in (its documented behaviour, not the
    # bridge's: the Node client checks the order on the wire). Reported by sequence; the test
    # still checks every message arrived exactly once.
    with lock:
        out["events"].sort(key=lambda e: e.get("seq", 0))
    print("RESULT " + json.dumps(out), flush=True)
    os._exit(0)  # a refused client keeps reconnecting in the background: leave at once


try:
    sio.connect(url, auth={"token": token, "consumer": "py-test"}, wait_timeout=5)
except socketio.exceptions.ConnectionError as e:
    out.setdefault("connect_error", str(e))
    finish()

binary = os.environ.get("BINARY") == "1"
what = {"topics": [topic], "binary": True} if binary else [topic]
out["subscribe_ack"] = sio.call("subscribe", what, timeout=5) if count >= 0 else None
print("SUBSCRIBED", flush=True)
if count > 0:
    # Give up after 20 s without an event (or 180 s in all): on a loaded machine the client
    # is slow, not stuck, and a fixed total would fail one that is still receiving.
    deadline = time.monotonic() + 180
    seen = -1
    while not done.is_set() and len(out["events"]) != seen and time.monotonic() < deadline:
        seen = len(out["events"])
        done.wait(20)
    out["complete"] = done.is_set()
    # A call with an ack is a barrier: the server handles a connection's packets in order,
    # so once it answers, every `consumed` emitted before it has been counted.
    sio.call("subscribe", [topic], timeout=5)
out["transport"] = sio.transport()
out["publish_acks"] = [sio.call("publish", p, timeout=5)
                       for p in json.loads(os.environ.get("PUBLISHES", "[]"))]
sio.disconnect()
finish()
