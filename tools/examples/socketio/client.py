"""A bus client over Socket.IO (python-socketio, default options), in the style of the
pub/sub layers traders write today. Run against bus-bridge's socketio endpoint:

    /usr/bin/python3 client.py http://127.0.0.1:9464 md.quotes md.trades
"""
import sys

import socketio


class Client:
    def __init__(self, url, consumer, topics, token=None):
        self.url, self.topics, self.handlers = url, list(topics), {}
        self.auth = {"consumer": consumer, **({"token": token} if token else {})}
        self.sio = socketio.Client()  # default options: polling first, then WebSocket
        self.sio.on("connect", lambda: self.sio.emit("subscribe", self.topics, callback=print))
        self.sio.on("missed", lambda m: print("missed", m["count"], "messages", file=sys.stderr))

    def register_handler(self, topic, fn):
        def on_message(envelope):  # {"topic","seq","ts","producer","id","type","data",...}
            fn(envelope["data"], envelope)
            self.sio.emit("consumed", envelope["id"])  # consumption confirmation
        self.handlers[topic] = fn
        self.sio.on(topic, on_message)

    def publish(self, topic, message, producer, message_id):
        ack = self.sio.call("publish", {"topic": topic, "message": message,
                                        "producer": producer, "message_id": message_id})
        if not ack["ok"]:
            raise RuntimeError(ack["error"])
        return ack["seq"]

    def start(self):
        self.sio.connect(self.url, auth=self.auth)
        self.sio.wait()


if __name__ == "__main__":
    client = Client(sys.argv[1], "example-py", sys.argv[2:] or ["md.quotes"])
    for t in client.topics:
        client.register_handler(t, lambda data, env: print(env["topic"], env["seq"], data))
    client.start()
