"""Round trips Python->Python, C++->Python and Python->C++, lossy and reliable,
typed and raw: every message in order, content equal."""
import json
import os
import re

import flatbuffers
import pytest

import shmbus
from shmbus.msg import md
from conftest import Peer, fill_payload, kv, tool

N = 2000


def quote(i):
    return {"symbol": f"S{i % 7}", "instrument_id": i, "venue": "XNAS", "exchange_ts": 10 * i,
            "receive_ts": 10 * i + 3, "seq": i, "bid_px": 100.0 + i / 64, "bid_qty": 100.0,
            "ask_px": 100.5 + i / 64, "ask_qty": 200.0, "bid_orders": 3, "ask_orders": 4}


def built_quote(i):
    b = flatbuffers.Builder(128)
    sym = b.CreateString(f"S{i % 7}")
    md.QuoteStart(b)
    md.QuoteAddSymbol(b, sym)
    md.QuoteAddSeq(b, i)
    md.QuoteAddBidPx(b, 100.0 + i / 64)
    b.Finish(md.QuoteEnd(b), b"MDQT")
    return b


@pytest.mark.parametrize("policy", ["lossy", "reliable"])
@pytest.mark.parametrize("kind", ["raw", "dict", "builder"])
def test_python_to_python(bus, policy, kind):
    typed = kind != "raw"
    t = "shmbus.md.Quote" if typed else None
    # The ring holds every message: nothing is lapped even on the lossy topic.
    pub = bus.publisher("t", type=t, policy=policy, slot_count=4096)
    sub = bus.subscriber("t", name="rt", type=t)
    sent = []
    for i in range(1, N + 1):
        if kind == "raw":
            m = i.to_bytes(8, "little") * 4
        elif kind == "dict":
            m = quote(i)
        else:
            m = built_quote(i)
        assert pub.publish(m) == shmbus.PublishResult.Ok
        sent.append(m)
    got = []
    while len(got) < N:
        msg = sub.recv(timeout=5)
        assert msg is not None, f"only {len(got)} of {N} messages arrived"
        got.append(msg)
    assert [m.meta.seq for m in got] == list(range(1, N + 1))
    assert sub.drops == 0
    for i, (m, s) in enumerate(zip(got, sent), start=1):
        if kind == "raw":
            assert m.raw == s and m.data == s
        elif kind == "dict":
            d = m.data
            for k, v in s.items():
                assert d[k] == pytest.approx(v) if isinstance(v, float) else d[k] == v, k
            q = m.as_(md.Quote)
            assert q.Seq() == i and q.Symbol() == s["symbol"].encode()
        else:
            assert m.raw == bytes(s.Output())
            assert m.data["seq"] == i and m.as_(md.Quote).BidPx() == 100.0 + i / 64
        assert m.meta.type == (t or "") and m.meta.producer == os.getpid()


@pytest.mark.parametrize("policy", ["lossy", "reliable"])
def test_cpp_to_python(bus, bus_name, policy):
    proc = tool("SHMBUS_TESTPROC")
    # Same config as testproc's producer; the subscriber registers first.
    sub = bus.subscriber("c2p", name="py", policy=policy, slot_size=128, slot_count=4096 if policy == "lossy"
                         else 64, max_consumers=8)
    peer = Peer([proc, "produce", bus_name, "c2p", str(N), policy, "4096" if policy == "lossy" else "64"])
    try:
        received = 0
        while received < N:
            msg = sub.recv(timeout=10)
            assert msg is not None, f"{received} of {N} messages from the C++ producer"
            received += 1
            assert msg.meta.seq == received
            assert msg.raw == fill_payload(64, received)
        rc, err = peer.finish()
        assert rc == 0, err
        assert sub.drops == 0
        assert msg.correlation == 0xE0F  # the producer's end marker
    finally:
        peer.kill()


@pytest.mark.parametrize("policy", ["lossy", "reliable"])
def test_python_to_cpp(bus, bus_name, policy):
    proc = tool("SHMBUS_TESTPROC")
    slots = 4096 if policy == "lossy" else 64
    pub = bus.publisher("p2c", policy=policy, slot_size=128, slot_count=slots, max_consumers=8)
    peer = Peer([proc, "consume", bus_name, "p2c", policy, str(slots)])
    try:
        peer.wait_line("ready")
        for i in range(1, N + 1):
            r = pub.publish_bytes(fill_payload(64, i), timeout=10, correlation=0xE0F if i == N else 0)
            assert r == shmbus.PublishResult.Ok
        rc, err = peer.finish()
        assert rc == 0, err
        res = kv(peer.lines[-1])
        assert res["received"] == str(N) and res["lost"] == "0", peer.lines[-1]
        assert res["corrupt"] == "0" and res["disorder"] == "0", peer.lines[-1]
    finally:
        peer.kill()


def test_feed_handler_to_python(bus, bus_name):
    feed = tool("SHMBUS_TOOL_SHMBUS_FEED")
    peer = Peer([feed, "--bus", bus_name, "--rate", "20000", "--duration", "1", "--wait-consumers", "1",
                 "--wait", "20", "--slots", "65536"])
    try:
        quotes = bus.subscriber("md.quotes", name="pyq", type="shmbus.md.Quote", wait=20)
        trades = bus.subscriber("md.trades", name="pyt", type="shmbus.md.Trade", wait=20)
        got_q, got_t = [], []
        while peer.p.poll() is None or quotes.ready or trades.ready:
            got_q += quotes.poll(256)
            got_t += trades.poll(256)
            if not got_q and not got_t:
                quotes.wait(0.05)
        rc, err = peer.finish()
        assert rc == 0, err
        got_q += quotes.poll(1 << 20)
        got_t += trades.poll(1 << 20)
        done = next(l for l in peer.lines if "published" in l and "quotes" in l)
        nq, nt = map(int, re.search(r"\((\d+) quotes, (\d+) trades\)", done).groups())
        assert len(got_q) == nq and len(got_t) == nt, done
        assert [m.meta.seq for m in got_q] == list(range(1, nq + 1))
        assert quotes.drops == 0 and trades.drops == 0
        for m in got_q[:: max(1, nq // 200)]:
            d, q = m.data, m.as_(md.Quote)
            assert d["symbol"].encode() == q.Symbol() and d["bid_px"] == pytest.approx(q.BidPx())
            assert 0 < q.BidPx() < q.AskPx()
    finally:
        peer.kill()


def test_object_api_and_dict_fast_path_equal_the_json_path(bus):
    """pub.publish(QuoteT) and pub.publish(dict) build in C++ from the schema's reflection data;
    the bytes decode to what the JSON path (shmbus.from_json) gives for the same fields."""
    pub = bus.publisher("oa", type="shmbus.md.Quote")
    sub = bus.subscriber("oa", name="oa", start="oldest")
    q = md.QuoteT()
    q.symbol, q.venue, q.seq, q.bidPx, q.askOrders, q.instrumentId = "AAPL", "XNAS", 5, 189.5, 2, 2**64 - 1
    d = {"symbol": "MSFT", "seq": 6, "ask_px": 1.25, "bid_orders": 4}
    assert pub.publish(q) == shmbus.PublishResult.Ok
    assert pub.publish(d) == shmbus.PublishResult.Ok
    a, b = sub.poll(2)
    qa = a.as_(md.Quote)
    assert (qa.Symbol(), qa.Venue(), qa.Seq(), qa.BidPx(), qa.AskOrders(), qa.InstrumentId()) == \
        (b"AAPL", b"XNAS", 5, 189.5, 2, 2**64 - 1)
    assert b.data["symbol"] == "MSFT" and b.data["ask_px"] == 1.25 and b.data["bid_orders"] == 4
    ref = shmbus.from_json("shmbus.md.Quote", '{"symbol": "MSFT", "seq": 6, "ask_px": 1.25, "bid_orders": 4}')
    assert b.data == json.loads(shmbus.to_json("shmbus.md.Quote", ref))


def test_fast_path_misfits_fall_back_or_fail_clearly(bus):
    pub = bus.publisher("oa2", type="shmbus.md.Quote")
    sub = bus.subscriber("oa2", name="oa2", start="oldest")
    with pytest.raises(shmbus.InvalidJson, match="nope"):
        pub.publish({"symbol": "A", "nope": 1})      # unknown key: the JSON path's error
    with pytest.raises(shmbus.InvalidJson):
        pub.publish({"symbol": "A", "seq": -1})      # out of range for uint64
    q = md.QuoteT()
    q.seq = "not a number"
    with pytest.raises(shmbus.InvalidArgument, match="object API"):
        pub.publish(q)
    with pytest.raises(shmbus.InvalidArgument, match="object API"):
        pub.publish(object())
    assert sub.poll(10) == []                        # nothing published by any of them
