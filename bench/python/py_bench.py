#!/usr/bin/env python3
"""Python <-> Python latency and throughput: shmbus next to the tools Python
strategies use today (redis-py pub/sub, pika through RabbitMQ, python-socketio),
in one run, on the same two CPUs.

    PYTHONPATH=build/python /usr/bin/python3 bench/python/py_bench.py [--n 20000] [--cpus 0,1]
        [--skip rabbitmq,redis,socketio] [--json out.json]

Round trip: process A stamps perf_counter_ns, sends a message, B echoes it,
A stamps on receipt. A is pinned to the first CPU, B to the second. Each
peer runs in its own interpreter (subprocess of this script). Servers
(redis-server, rabbitmq-server, the Socket.IO aiohttp server) are started on
free loopback ports of their own and stopped at the end.

shmbus cases: raw 32 B (publish_bytes / recv_bytes); typed Quote through
dicts (publish(dict) -> msg.data on both sides); typed Quote through the
flatc-generated class (flatbuffers.Builder -> msg.as_(Quote) on both sides), and through
flatc's object API (QuoteT -> pub.publish(obj), built in C++ by reflection -> msg.as_(Quote)).
Throughput: one Python publisher, one Python subscriber, raw 32 B on a
reliable topic (nothing lost), messages / second at the subscriber: batched
(publish_many) and one publish_bytes call per message.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)
PAYLOAD = b"x" * 32


def pin(cpu):
    os.sched_setaffinity(0, {cpu})


def pct(v, p):
    return v[min(len(v) - 1, int(p * len(v)))]


def summary(name, samples, warm):
    s = sorted(samples[warm:])
    return {"case": name, "n": len(s), "p50_us": s and pct(s, 0.5) / 1e3, "p99_us": pct(s, 0.99) / 1e3,
            "p999_us": pct(s, 0.999) / 1e3}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- shmbus

def quote_dict(i):
    return {"symbol": "AAPL", "venue": "XNAS", "instrument_id": 7, "exchange_ts": i, "receive_ts": i + 5,
            "seq": i, "bid_px": 189.51, "bid_qty": 300.0, "ask_px": 189.53, "ask_qty": 200.0,
            "bid_orders": 3, "ask_orders": 2}


def build_quote(builder_cls, md, i):
    b = builder_cls(160)
    sym = b.CreateString("AAPL")
    ven = b.CreateString("XNAS")
    md.QuoteStart(b)
    md.QuoteAddSymbol(b, sym)
    md.QuoteAddVenue(b, ven)
    md.QuoteAddInstrumentId(b, 7)
    md.QuoteAddExchangeTs(b, i)
    md.QuoteAddReceiveTs(b, i + 5)
    md.QuoteAddSeq(b, i)
    md.QuoteAddBidPx(b, 189.51)
    md.QuoteAddBidQty(b, 300.0)
    md.QuoteAddAskPx(b, 189.53)
    md.QuoteAddAskQty(b, 200.0)
    md.QuoteAddBidOrders(b, 3)
    md.QuoteAddAskOrders(b, 2)
    b.Finish(md.QuoteEnd(b), b"MDQT")
    return b.Output()


def quote_t(md, i):
    """The same Quote through flatc's object API (QuoteT): published by pub.publish(obj),
    built on the C++ side from the schema's reflection data."""
    q = md.QuoteT()
    q.symbol, q.venue, q.instrumentId, q.exchangeTs, q.receiveTs, q.seq = "AAPL", "XNAS", 7, i, i + 5, i
    q.bidPx, q.bidQty, q.askPx, q.askQty, q.bidOrders, q.askOrders = 189.51, 300.0, 189.53, 200.0, 3, 2
    return q


def shm_peer(bus_name, case, role, n, cpu):
    """Runs one side: role 'ping' (measures) or 'pong' (echoes); 'tx'/'rx' for throughput."""
    import flatbuffers
    import shmbus
    from shmbus.msg import md
    pin(cpu)
    bus = shmbus.Bus.open_or_create(bus_name)
    typed = case != "raw" and case != "tput"
    t = "shmbus.md.Quote" if typed else None
    mine, theirs = ("ping", "pong") if role in ("ping",) else ("pong", "ping")
    if case == "tput":
        if role == "rx":
            sub = bus.subscriber("tput", name="rx", policy="reliable", slot_size=64, slot_count=1 << 16)
            print("ready", flush=True)
            got = 0
            first = None
            while got < n:
                b = sub.poll_bytes(4096)
                if b:
                    if first is None:
                        first = time.perf_counter_ns()
                    got += len(b)
                else:
                    sub.wait(1.0)
            dt = time.perf_counter_ns() - first
            print(json.dumps({"received": got, "drops": sub.drops, "msgs_per_s": got / dt * 1e9}), flush=True)
        else:
            bus.wait_for_topic("tput", timeout=30)
            pub = bus.publisher("tput", policy="reliable", slot_size=64, slot_count=1 << 16)
            print("ready", flush=True)
            input()  # go
            publish = pub.publish_bytes
            wb = shmbus.PublishResult.WouldBlock
            i = 0
            if os.environ.get("PYBENCH_BATCH", "64") != "1":
                batch = [PAYLOAD] * int(os.environ.get("PYBENCH_BATCH", "64"))
                many = pub.publish_many
                while i < n:
                    i += many(batch if n - i >= len(batch) else batch[: n - i])
            publish = pub.try_publish_bytes  # returns the PublishResult members: compare with `is`
            while i < n:
                if publish(PAYLOAD) is not wb:
                    i += 1
            print("done", flush=True)
        return
    pub = bus.publisher(f"{case}.{mine}", type=t, policy="lossy", slot_size=256, slot_count=1024)
    bus.wait_for_topic(f"{case}.{theirs}", timeout=30)
    sub = bus.subscriber(f"{case}.{theirs}", name=role, type=t)
    print("ready", flush=True)
    qt = quote_t(md, 0)
    if role == "pong":
        for _ in range(n):
            if case == "raw":
                b = sub.recv_bytes(30)
                _ = pub.publish_bytes(b)
            elif case == "dict":
                q = sub.recv(30).data
                q["seq"] += 1
                _ = pub.publish(q)
            elif case == "objapi":
                q = sub.recv(30).as_(md.Quote)
                qt.seq = q.Seq() + 1
                _ = pub.publish(qt)
            else:
                q = sub.recv(30).as_(md.Quote)
                _ = pub.publish_bytes(build_quote(flatbuffers.Builder, md, q.Seq() + 1))
        return
    input()  # go
    samples = []
    clock = time.perf_counter_ns
    for i in range(n):
        if case == "raw":
            t0 = clock()
            _ = pub.publish_bytes(PAYLOAD)
            b = sub.recv_bytes(30)
            t1 = clock()
        elif case == "dict":
            t0 = clock()
            _ = pub.publish(quote_dict(i))
            q = sub.recv(30).data
            t1 = clock()
            assert q["seq"] == i + 1
        elif case == "objapi":
            t0 = clock()
            qt.seq = i
            _ = pub.publish(qt)
            q = sub.recv(30).as_(md.Quote)
            seq = q.Seq()
            t1 = clock()
            assert seq == i + 1
        else:
            t0 = clock()
            _ = pub.publish_bytes(build_quote(flatbuffers.Builder, md, i))
            q = sub.recv(30).as_(md.Quote)
            seq = q.Seq()
            t1 = clock()
            assert seq == i + 1
        samples.append(t1 - t0)
    print(json.dumps(samples), flush=True)


def run_pair(a_args, b_args, go="a"):
    """Starts B then A (subprocesses of this script), says go to one, returns both outputs."""
    b = subprocess.Popen([sys.executable, HERE] + b_args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    a = subprocess.Popen([sys.executable, HERE] + a_args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for p in (a, b):
            line = p.stdout.readline()
            assert line.strip() == "ready", f"peer not ready: {line!r}"
        g = a if go == "a" else b
        g.stdin.write("go\n")
        g.stdin.flush()
        out_a = a.stdout.read().strip().splitlines()
        out_b = b.stdout.read().strip().splitlines()
        a.wait(120)
        b.wait(120)
        return out_a, out_b
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()


# ---------------------------------------------------------------- redis

def redis_peer(port, role, n, cpu):
    import redis
    pin(cpu)
    r = redis.Redis(host="127.0.0.1", port=port)
    ps = r.pubsub(ignore_subscribe_messages=True)
    mine, theirs = ("ping", "pong") if role == "ping" else ("pong", "ping")
    ps.subscribe(theirs)
    while ps.get_message(timeout=1.0) is None and not ps.subscribed:
        pass
    print("ready", flush=True)
    if role == "pong":
        got = 0
        while got < n:
            m = ps.get_message(timeout=30)
            if m is not None:
                r.publish(mine, m["data"])
                got += 1
        return
    # wait until the other side listens
    while r.pubsub_numsub(mine)[0][1] < 1:
        time.sleep(0.01)
    input()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        r.publish(mine, PAYLOAD)
        while ps.get_message(timeout=30) is None:
            pass
        samples.append(time.perf_counter_ns() - t0)
    print(json.dumps(samples), flush=True)


# ---------------------------------------------------------------- RabbitMQ

def pika_peer(port, role, n, cpu):
    import pika
    pin(cpu)
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    for q in ("ping", "pong"):
        ch.queue_declare(q, auto_delete=False)
    mine, theirs = ("ping", "pong") if role == "ping" else ("pong", "ping")
    print("ready", flush=True)
    if role == "pong":
        got = 0
        for method, props, body in ch.consume(theirs, auto_ack=True, inactivity_timeout=30):
            if method is None:
                break
            ch.basic_publish("", mine, body)
            got += 1
            if got == n:
                break
        conn.close()
        return
    input()
    samples = []
    it = ch.consume(theirs, auto_ack=True, inactivity_timeout=30)
    for _ in range(n):
        t0 = time.perf_counter_ns()
        ch.basic_publish("", mine, PAYLOAD)
        method, _, _ = next(it)
        assert method is not None
        samples.append(time.perf_counter_ns() - t0)
    print(json.dumps(samples), flush=True)
    conn.close()


class Rabbit:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pybench-rmq-")
        self.port, dist = free_port(), free_port()
        self.node = f"pybench{os.getpid()}@localhost"
        with open(os.path.join(self.dir, "plugins"), "w") as f:
            f.write("[].")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n")
        self.env = dict(os.environ, RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                        RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(dist),
                        ERL_EPMD_ADDRESS="127.0.0.1", RABBITMQ_MNESIA_BASE=self.dir + "/mnesia",
                        RABBITMQ_LOG_BASE=self.dir + "/log", RABBITMQ_PID_FILE=self.dir + "/pid",
                        RABBITMQ_ENABLED_PLUGINS_FILE=self.dir + "/plugins",
                        RABBITMQ_CONFIG_FILE=self.dir + "/rabbitmq.conf", HOME=self.dir,
                        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
        ctl = "/usr/lib/rabbitmq/bin/rabbitmqctl"
        subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmq-server", "-detached"], env=self.env, check=True,
                       timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([ctl, "-n", self.node, "wait", self.dir + "/pid", "--timeout", "120"], env=self.env,
                       check=True, timeout=150, stdout=subprocess.DEVNULL)
        subprocess.run([ctl, "-n", self.node, "await_startup", "--timeout", "120"], env=self.env, check=True,
                       timeout=150, stdout=subprocess.DEVNULL)

    def stop(self):
        subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", self.node, "stop"], env=self.env, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["epmd", "-kill"], timeout=10, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- Socket.IO

def sio_server(port, cpu):
    import asyncio
    import socketio
    from aiohttp import web
    pin(cpu)
    sio = socketio.AsyncServer(async_mode="aiohttp")

    @sio.on("ping_")
    async def ping_(sid, data):
        return data  # the ack carries the echo

    app = web.Application()
    sio.attach(app)

    async def main():
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # until told to stop
        await runner.cleanup()

    asyncio.run(main())


def sio_client(port, n, cpu):
    import socketio
    pin(cpu)
    c = socketio.Client()
    c.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
    print("ready", flush=True)
    input()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        _ = c.call("ping_", PAYLOAD, timeout=30)
        samples.append(time.perf_counter_ns() - t0)
    print(json.dumps(samples), flush=True)
    c.disconnect()


# ---------------------------------------------------------------- driver

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="round trips per shmbus case")
    ap.add_argument("--n-others", type=int, default=3000, help="round trips per redis/pika/socketio case")
    ap.add_argument("--tput-n", type=int, default=3_000_000, help="messages for the throughput case")
    ap.add_argument("--cpus", default="0,1")
    ap.add_argument("--skip", default="", help="comma list of: rabbitmq,redis,socketio")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--peer", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        kind, *rest = args.peer
        if kind == "shm":
            shm_peer(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]))
        elif kind == "redis":
            redis_peer(int(rest[0]), rest[1], int(rest[2]), int(rest[3]))
        elif kind == "pika":
            pika_peer(int(rest[0]), rest[1], int(rest[2]), int(rest[3]))
        elif kind == "sio-server":
            sio_server(int(rest[0]), int(rest[1]))
        elif kind == "sio-client":
            sio_client(int(rest[0]), int(rest[1]), int(rest[2]))
        return
    ca, cb = (int(c) for c in args.cpus.split(","))
    skip = set(filter(None, args.skip.split(",")))
    import shmbus
    results = []
    bus = f"pybench-{os.getpid()}"
    shmbus.Bus.remove(bus)
    try:
        names = {"raw": "raw 32 B", "dict": "dict Quote", "class": "class Quote (flatbuffers.Builder)",
                 "objapi": "class Quote (QuoteT, publish(obj))"}
        for case in ("raw", "dict", "class", "objapi"):
            out_a, _ = run_pair(["--peer", "shm", bus, case, "ping", str(args.n), str(ca)],
                                ["--peer", "shm", bus, case, "pong", str(args.n), str(cb)])
            results.append(summary(f"shmbus {names[case]}",
                                   json.loads(out_a[-1]), args.n // 10))
            print(results[-1], flush=True)
        for batch, label in (("64", "publish_many(64)"), ("1", "try_publish_bytes per call")):
            os.environ["PYBENCH_BATCH"] = batch  # inherited by the peers
            out_rx, _ = run_pair(["--peer", "shm", bus, "tput", "rx", str(args.tput_n), str(ca)],
                                 ["--peer", "shm", bus, "tput", "tx", str(args.tput_n), str(cb)], go="b")
            tp = json.loads(out_rx[-1])
            results.append({"case": f"shmbus tput raw 32 B reliable 1->1, {label}", **tp})
            print(results[-1], flush=True)
            shmbus.Bus.remove(bus)  # a fresh topic (and consumer table) for the next run
    finally:
        shmbus.Bus.remove(bus)

    if "redis" not in skip:
        d = tempfile.mkdtemp(prefix="pybench-redis-")
        port = free_port()
        subprocess.run(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
                        "--save", "", "--appendonly", "no", "--dir", d, "--pidfile", d + "/redis.pid",
                        "--logfile", d + "/redis.log"], check=True, timeout=30)
        try:
            deadline = time.time() + 10
            while subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True).stdout.strip() != b"PONG":
                assert time.time() < deadline, "redis-server did not start"
                time.sleep(0.05)
            out_a, _ = run_pair(["--peer", "redis", str(port), "ping", str(args.n_others), str(ca)],
                                ["--peer", "redis", str(port), "pong", str(args.n_others), str(cb)])
            results.append(summary("redis-py pub/sub 32 B", json.loads(out_a[-1]), args.n_others // 10))
            print(results[-1], flush=True)
        finally:
            with open(d + "/redis.pid") as f:
                os.kill(int(f.read()), 15)
            shutil.rmtree(d, ignore_errors=True)

    if "socketio" not in skip:
        port = free_port()
        srv = subprocess.Popen([sys.executable, HERE, "--peer", "sio-server", str(port), str(cb)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert srv.stdout.readline().strip() == "ready"
            cli = subprocess.Popen([sys.executable, HERE, "--peer", "sio-client", str(port), str(args.n_others),
                                    str(ca)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert cli.stdout.readline().strip() == "ready"
            cli.stdin.write("go\n")
            cli.stdin.flush()
            out = cli.stdout.read().strip().splitlines()
            cli.wait(120)
            results.append(summary("python-socketio (aiohttp server) call 32 B", json.loads(out[-1]),
                                   args.n_others // 10))
            print(results[-1], flush=True)
        finally:
            srv.stdin.write("\n")
            srv.stdin.flush()
            try:
                srv.wait(10)
            except subprocess.TimeoutExpired:
                srv.kill()

    if "rabbitmq" not in skip:
        rmq = Rabbit()
        try:
            out_a, _ = run_pair(["--peer", "pika", str(rmq.port), "ping", str(args.n_others), str(ca)],
                                ["--peer", "pika", str(rmq.port), "pong", str(args.n_others), str(cb)])
            results.append(summary("pika via RabbitMQ 32 B", json.loads(out_a[-1]), args.n_others // 10))
            print(results[-1], flush=True)
        finally:
            rmq.stop()

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"\nCPU: {cpu}; pinned to CPUs {ca},{cb}; python {sys.version.split()[0]}")
    print(f"{'case':52s} {'p50 us':>9s} {'p99 us':>9s} {'p99.9 us':>9s}")
    for r in results:
        if "p50_us" in r:
            print(f"{r['case']:52s} {r['p50_us']:9.2f} {r['p99_us']:9.2f} {r['p999_us']:9.2f}")
        else:
            print(f"{r['case']:52s} {r['msgs_per_s'] / 1e6:.2f} M msg/s (received {r['received']}, drops {r['drops']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
