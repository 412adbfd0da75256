"""Delivery guarantees from Python: exact gaps on lossy overrun, reliable
back-pressure (Python consumer holds a producer as a C++ one does), and a
SIGKILLed Python consumer is reaped."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import shmbus
from conftest import Peer, fill_payload, kv, tool


def test_lossy_overrun_reports_exact_gap(bus):
    pub = bus.publisher("lossy", policy="lossy", slot_size=64, slot_count=8)
    sub = bus.subscriber("lossy", name="slow")
    gaps = []
    sub.on_gap(gaps.append)
    for i in range(1, 101):
        assert pub.publish_bytes(i.to_bytes(8, "little")) == shmbus.PublishResult.Ok
    got = sub.poll(1000)
    seqs = [m.meta.seq for m in got]
    assert len(gaps) == 1 and gaps[0].first == 1 and gaps[0].topic == "lossy"
    # Everything is either delivered or in the gap, exactly once, in order.
    assert seqs == list(range(gaps[0].count + 1, 101))
    assert gaps[0].count + len(got) == 100 and sub.drops == gaps[0].count
    assert all(int.from_bytes(m.raw, "little") == m.meta.seq for m in got)


def test_gaps_without_handler_are_kept(bus):
    pub = bus.publisher("lossy2", policy="lossy", slot_size=64, slot_count=4)
    sub = bus.subscriber("lossy2", name="slow")
    for i in range(20):
        _ = pub.publish_bytes(b"x")
    got = sub.poll(100)
    gaps = sub.take_gaps()
    assert sum(g.count for g in gaps) + len(got) == 20 and sub.take_gaps() == []


def test_reliable_python_consumer_holds_producer(bus):
    pub = bus.publisher("rel", policy="reliable", slot_size=64, slot_count=8)
    sub = bus.subscriber("rel", name="holder")
    for i in range(8):
        assert pub.try_publish(b"m%d" % i) == shmbus.PublishResult.Ok
    assert pub.try_publish(b"blocked") == shmbus.PublishResult.WouldBlock
    t = time.monotonic()
    assert pub.publish(b"blocked", timeout=0.05) == shmbus.PublishResult.Timeout
    assert time.monotonic() - t >= 0.04
    assert [m.raw for m in sub.poll(3)] == [b"m0", b"m1", b"m2"]
    assert pub.try_publish(b"m8") == shmbus.PublishResult.Ok
    assert len(sub.poll(100)) == 6 and sub.drops == 0


def test_reliable_python_consumer_holds_cpp_producer(bus, bus_name):
    proc = tool("SHMBUS_TESTPROC")
    sub = bus.subscriber("relc", name="slowpy", policy="reliable", slot_size=128, slot_count=8, max_consumers=8)
    peer = Peer([proc, "produce", bus_name, "relc", "500", "reliable", "8"])
    try:
        n = 0
        while n < 500:
            m = sub.recv(timeout=10)
            assert m is not None
            n += 1
            assert m.meta.seq == n and m.raw == fill_payload(64, n)
            if n % 50 == 0:
                time.sleep(0.01)  # a slow consumer: the producer must wait, not overwrite
        rc, err = peer.finish()
        assert rc == 0, err
        assert sub.drops == 0
    finally:
        peer.kill()


CHILD = textwrap.dedent("""
    import sys, time, shmbus
    bus = shmbus.Bus.open(sys.argv[1])
    sub = bus.subscriber("reap", name="doomed")
    print("ready", flush=True)
    time.sleep(60)
""")


def test_sigkilled_python_consumer_is_reaped(bus, bus_name):
    pub = bus.publisher("reap", policy="reliable", slot_size=64, slot_count=4)
    child = Peer([sys.executable, "-c", CHILD, bus_name], env=dict(os.environ))
    try:
        child.wait_line("ready")
        for i in range(4):
            assert pub.try_publish(b"x") == shmbus.PublishResult.Ok
        assert pub.try_publish(b"x") == shmbus.PublishResult.WouldBlock  # the child holds us
        os.kill(child.p.pid, signal.SIGKILL)
        child.p.wait(5)
        t = time.monotonic()
        assert pub.publish(b"after", timeout=5) == shmbus.PublishResult.Ok
        assert time.monotonic() - t < 5
    finally:
        child.kill()


def test_try_publish_bytes_fast_path(bus):
    pub = bus.publisher("tpb", policy="reliable", slot_size=64, slot_count=2)
    sub = bus.subscriber("tpb", name="tpb")
    assert pub.try_publish_bytes(b"a") is shmbus.PublishResult.Ok
    assert pub.try_publish_bytes(bytearray(b"b")) is shmbus.PublishResult.Ok
    assert pub.try_publish_bytes(b"c") is shmbus.PublishResult.WouldBlock   # ring full
    assert pub.try_publish_bytes(b"x" * 1000) is shmbus.PublishResult.TooLarge
    assert sub.poll_bytes(10) == [b"a", b"b"]
    with pytest.raises(TypeError):
        pub.try_publish_bytes(3)
    pub.close()
    with pytest.raises(shmbus.InvalidArgument, match="closed"):
        pub.try_publish_bytes(b"a")


def test_evicted_python_consumer_is_told_exactly_what_it_lost(bus):
    # A consumer that stops reading holds a reliable topic; with evict_after the
    # producer evicts it after the bound and it learns of the loss on its next poll.
    pub = bus.publisher("ev", policy="reliable", slot_size=64, slot_count=8, evict_after=0.05)
    sub = bus.subscriber("ev", name="stuck")
    gaps = []
    sub.on_gap(gaps.append)
    for i in range(8):
        assert pub.try_publish_bytes(b"m%d" % i) is shmbus.PublishResult.Ok
    assert pub.try_publish(b"held") == shmbus.PublishResult.WouldBlock
    assert pub.publish(b"past", timeout=5.0) == shmbus.PublishResult.Ok
    got = sub.poll(100)
    assert len(gaps) == 1 and gaps[0].reason == "evicted" and gaps[0].first == 1
    assert "reason='evicted'" in repr(gaps[0])
    # Lost or delivered, each of the 9 published messages exactly once.
    assert gaps[0].count + len(got) == 9
    assert [m.meta.seq for m in got] == list(range(gaps[0].count + 1, 10))
    assert pub.try_publish(b"live") == shmbus.PublishResult.Ok
    assert [m.raw for m in sub.poll(10)] == [b"live"] and len(gaps) == 1


def test_evict_after_is_checked(bus):
    with pytest.raises(shmbus.Error):
        bus.publisher("evl", policy="lossy", evict_after=0.05)  # reliable topics only
    with pytest.raises(shmbus.InvalidArgument):
        bus.publisher("evn", policy="reliable", evict_after=-1.0)
