"""Dispatcher, asyncio, request/reply, context managers, reference leaks."""
import asyncio
import gc
import logging
import threading
import time
import tracemalloc

import pytest

import shmbus
from conftest import poll_until


def test_dispatcher_decorator_and_gap(bus):
    pub = bus.publisher("d.q", type="shmbus.md.Quote")
    raw = bus.publisher("d.raw", slot_size=64, slot_count=4)
    d = shmbus.Dispatcher(bus, name="disp")
    got, gaps = [], []

    @d.on("d.q", type="shmbus.md.Quote")
    def on_quote(msg):
        got.append(("q", msg.data["seq"]))

    d.on("d.raw", lambda msg: got.append(("r", bytes(msg.raw))))
    d.on_gap(gaps.append)
    for i in range(10):  # lapped before the loop starts: one gap
        _ = raw.publish_bytes(b"%d" % i)
    d.start()
    for i in range(1, 6):
        assert pub.publish({"seq": i}) == shmbus.PublishResult.Ok
    assert poll_until(lambda: len([g for g in got if g[0] == "q"]) == 5)
    d.stop()
    assert [g[1] for g in got if g[0] == "q"] == [1, 2, 3, 4, 5]
    raws = [g[1] for g in got if g[0] == "r"]
    # A lapped lossy reader skips ahead: the gap and what follows it cover all 10, in order.
    assert len(gaps) == 1 and gaps[0].first == 1 and gaps[0].count + len(raws) == 10
    assert raws == [b"%d" % i for i in range(gaps[0].count, 10)] and d.drops == gaps[0].count
    assert not d.running


def test_dispatcher_stop_returns_promptly_from_blocking_wait(bus):
    bus.publisher("quiet")
    d = shmbus.Dispatcher(bus, name="idle")
    d.on("quiet", lambda m: None)
    d.start()
    assert poll_until(lambda: d.running)
    time.sleep(0.2)  # the loop is asleep on the doorbell by now
    t = time.monotonic()
    d.stop()
    assert time.monotonic() - t < 0.05 and not d.running


def test_dispatcher_wait_releases_gil(bus):
    bus.publisher("quiet2")
    d = shmbus.Dispatcher(bus, name="idle")
    d.on("quiet2", lambda m: None)
    d.start()
    n = 0
    t = time.monotonic()
    while time.monotonic() - t < 0.2:  # this thread keeps running while the loop waits
        n += 1
    d.stop()
    assert n > 10000


def test_handler_error_is_logged_counted_and_loop_goes_on(bus, caplog):
    pub = bus.publisher("e")
    d = shmbus.Dispatcher(bus, name="err")
    seen = []

    @d.on("e")
    def h(msg):
        seen.append(bytes(msg.raw))
        if msg.raw == b"boom":
            raise ValueError("handler failed on purpose")

    d.start()
    with caplog.at_level(logging.ERROR, logger="shmbus"):
        for m in (b"a", b"boom", b"b"):
            _ = pub.publish(m)
        assert poll_until(lambda: len(seen) == 3)
        d.stop()
    assert d.errors == 1 and seen == [b"a", b"boom", b"b"]
    assert "handler failed on purpose" in caplog.text and "Traceback" in caplog.text


def test_handler_error_stops_loop_with_stop_on_error(bus):
    pub = bus.publisher("e2")
    d = shmbus.Dispatcher(bus, name="err", stop_on_error=True)
    seen = []

    @d.on("e2")
    def h(msg):
        seen.append(msg.raw_bytes)
        raise KeyError("stop here")

    for m in (b"a", b"b"):
        _ = pub.publish(m)
    with pytest.raises(KeyError, match="stop here"):
        d.run()
    assert seen == [b"a"] and d.errors == 1


def test_stop_from_handler(bus):
    pub = bus.publisher("s")
    d = shmbus.Dispatcher(bus, name="st")
    d.on("s", lambda m: d.stop())
    _ = pub.publish(b"x")
    t = threading.Timer(5, d.stop)
    t.start()
    d.run()  # returns because the handler stopped it
    t.cancel()
    assert d.delivered >= 1 or d.errors == 0


def test_asyncio_aiter_and_apublish(bus):
    pub = bus.publisher("a", policy="reliable", slot_count=4, slot_size=64)
    sub = bus.subscriber("a", name="async")

    async def main():
        async def consume():
            out = []
            async for m in sub.aiter():
                out.append(m.raw)
                if len(out) == 20:
                    return out
        task = asyncio.create_task(consume())
        for i in range(20):  # more than the ring: apublish waits for the consumer
            assert await pub.apublish(b"%d" % i, timeout=5) == shmbus.PublishResult.Ok
        return await asyncio.wait_for(task, 10)

    assert asyncio.run(main()) == [b"%d" % i for i in range(20)]


def test_request_reply(bus):
    srv = shmbus.Responder(bus, "risk.check", request_type="shmbus.md.Quote", reply_type="shmbus.md.Quote")

    def handle(req):
        q = req.data
        if q["symbol"] == "BAD":
            raise RuntimeError("refused")
        return {"symbol": q["symbol"], "seq": q["seq"] * 2}

    th = threading.Thread(target=srv.serve, args=(handle,), kwargs={"duration": 10})
    th.start()
    try:
        cli = shmbus.Requester(bus, "risk.check", request_type="shmbus.md.Quote", reply_type="shmbus.md.Quote")
        for i in range(1, 50):
            r = cli.call({"symbol": "AAPL", "seq": i}, timeout=2)
            assert r.data["seq"] == 2 * i and r.data["symbol"] == "AAPL"
        with pytest.raises(shmbus.Timeout):
            cli.call({"symbol": "BAD", "seq": 1}, timeout=0.05)
        assert srv.errors == 1
    finally:
        srv.stop()
        th.join(5)
    assert not th.is_alive()


def test_context_managers_release(bus_name):
    with shmbus.Bus.open_or_create(bus_name) as bus:
        with bus.publisher("cm") as p:
            pass
        p2 = bus.publisher("cm")  # the role was released by the with block
        p2.close()
        with bus.subscriber("cm1", name="x", max_consumers=1, policy="lossy"):
            pass
        with bus.subscriber("cm1", name="y"):  # the only consumer entry was freed
            pass


def test_no_reference_leaks_over_100k_messages(bus):
    pub = bus.publisher("leak", type="shmbus.md.Quote", slot_count=1 << 16)
    sub = bus.subscriber("leak", name="leak", type="shmbus.md.Quote")
    q = {"symbol": "AAPL", "bid_px": 1.0}
    payload = shmbus.from_json("shmbus.md.Quote", '{"symbol": "AAPL"}')

    def round_(n):
        for i in range(n):
            if i % 10 == 0:
                _ = pub.publish(q)
            else:
                _ = pub.publish_bytes(payload)
            if i % 1000 == 999:
                for m in sub.poll(1000):
                    _ = m.meta, m.raw, m.seq
                    if m.seq % 97 == 0:
                        _ = m.data
        assert len(sub.poll(100000)) == 0 and sub.drops == 0

    round_(10_000)  # warm up caches and allocators
    gc.collect()
    objects = len(gc.get_objects())
    rc_q, rc_p = _refs(q), _refs(payload)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    round_(100_000)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert grown < 64 * 1024, f"{grown} bytes more after 100k messages"
    assert len(gc.get_objects()) - objects < 100
    assert _refs(q) == rc_q and _refs(payload) == rc_p


def _refs(o):
    import sys
    return sys.getrefcount(o)


@pytest.mark.parametrize("policy", ["lossy", "reliable"])
def test_handler_raw_is_zero_copy_view_released_after_handler(bus, policy):
    topic = "zc." + policy
    pub = bus.publisher(topic, type="shmbus.md.Quote", policy=policy, slot_count=8)
    d = shmbus.Dispatcher(bus, name="zc")
    kept, inside = [], []

    @d.on(topic)
    def h(msg):
        assert isinstance(msg.raw, memoryview) and msg.raw.readonly
        inside.append((bytes(msg.raw), msg.raw_bytes, len(msg),
                       msg.as_(shmbus.msg.md.Quote).Seq()))
        kept.append(msg)
        if len(kept) == 3:
            d.stop()

    for i in range(1, 4):
        assert pub.publish({"symbol": "Z", "seq": i}) == shmbus.PublishResult.Ok
    t = threading.Timer(10, d.stop)
    t.start()
    d.run()
    t.cancel()
    assert [x[3] for x in inside] == [1, 2, 3]
    assert all(b == rb and len(b) == n for b, rb, n, _ in inside)
    m = kept[0]
    with pytest.raises(ValueError, match="released"):
        _ = m.raw[0]
    with pytest.raises(ValueError, match="after its handler returned"):
        _ = m.raw_bytes
    with pytest.raises(ValueError, match="after its handler returned"):
        _ = m.data
    with pytest.raises(ValueError, match="after its handler returned"):
        _ = m.as_(shmbus.msg.md.Quote)
    assert m.meta.seq == 1 and len(m) == 0


def test_handler_data_taken_inside_stays_valid(bus):
    pub = bus.publisher("zc.d", type="shmbus.md.Quote")
    d = shmbus.Dispatcher(bus, name="zcd")
    kept = []

    @d.on("zc.d")
    def h(msg):
        _ = msg.data
        kept.append(msg)
        d.stop()

    assert pub.publish({"symbol": "K", "seq": 7}) == shmbus.PublishResult.Ok
    t = threading.Timer(10, d.stop)
    t.start()
    d.run()
    t.cancel()
    assert kept[0].data["seq"] == 7 and kept[0].data["symbol"] == "K"


def test_poll_raw_stays_bytes(bus):
    pub = bus.publisher("zc.p")
    sub = bus.subscriber("zc.p", name="p")
    assert pub.publish(b"abc") == shmbus.PublishResult.Ok
    (m,) = sub.poll(1)
    assert isinstance(m.raw, bytes) and m.raw == m.raw_bytes == b"abc"
