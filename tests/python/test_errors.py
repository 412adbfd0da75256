"""Every Errc has its exception class under shmbus.Error, carrying the C++ message."""
import os

import pytest

import shmbus

ERRC = ["invalid_name", "no_such_bus", "no_such_topic", "foreign_segment", "version_mismatch",
        "truncated_segment", "topic_mismatch", "type_mismatch", "schema_mismatch", "producer_exists",
        "consumer_table_full", "directory_full", "unknown_type", "invalid_json", "invalid_message",
        "invalid_argument", "timeout", "system_error", "permission_denied", "no_space"]


def camel(code):
    return "".join(p.capitalize() for p in code.split("_"))


def test_one_class_per_errc():
    for code in ERRC:
        cls = getattr(shmbus, camel(code))
        assert issubclass(cls, shmbus.Error) and cls.code == code
    assert issubclass(shmbus.Timeout, TimeoutError)
    assert issubclass(shmbus.InvalidArgument, ValueError)


def test_errors_raised(bus, bus_name):
    with pytest.raises(shmbus.InvalidName, match="character"):
        shmbus.Bus.open_or_create("bad name")
    with pytest.raises(shmbus.NoSuchBus, match="nosuchbus-xyz"):
        shmbus.Bus.open("nosuchbus-xyz")
    with pytest.raises(shmbus.InvalidName):
        bus.publisher("bad..topic")
    pub = bus.publisher("q", type="shmbus.md.Quote")
    with pytest.raises(shmbus.ProducerExists):
        bus.publisher("q", type="shmbus.md.Quote")
    with pytest.raises(shmbus.TopicMismatch, match="slot_count"):
        bus.publisher("q", type="shmbus.md.Quote", slot_count=8)
    with pytest.raises(shmbus.TypeMismatch):
        bus.subscriber("q", type="shmbus.md.Trade")
    with pytest.raises(shmbus.UnknownType, match="no.Such"):
        bus.publisher("r", type="no.Such")
    with pytest.raises(shmbus.InvalidJson, match='"bogus"'):
        pub.publish({"symbol": "A", "bogus": 1})
    with pytest.raises(shmbus.InvalidJson, match="bid_px"):
        pub.publish({"bid_px": "not a number"})
    assert pub.next_sequence == 1  # nothing was published
    with pytest.raises(shmbus.InvalidMessage):
        shmbus.to_json("shmbus.md.Quote", b"\x01\x02\x03")
    with pytest.raises(shmbus.InvalidArgument, match="policy"):
        bus.publisher("s", policy="sometimes")
    with pytest.raises(shmbus.InvalidArgument, match="slot_size"):
        bus.publisher("s", slot_size=100)
    with pytest.raises(shmbus.InvalidArgument, match="dict"):
        bus.publisher("raw").publish({"a": 1})
    one = bus.publisher("one", max_consumers=1)
    s1 = bus.subscriber("one", name="a")
    with pytest.raises(shmbus.ConsumerTableFull):
        bus.subscriber("one", name="b")
    with pytest.raises(shmbus.Timeout, match="risk.none"):
        shmbus.Requester(bus, "risk.none").call(b"x", timeout=0.01)
    with pytest.raises(shmbus.Timeout):
        bus.wait_for_topic("never", timeout=0.05)
    with pytest.raises(shmbus.Timeout):
        bus.subscriber("never", wait=0.05)
    s1.close()
    one.close()


def test_directory_full(bus_name):
    with shmbus.Bus.open_or_create(bus_name, capacity=1) as b:
        b.publisher("a")
        with pytest.raises(shmbus.DirectoryFull):
            b.publisher("b")


def test_foreign_segment(bus_name):
    path = f"/dev/shm/shmbus.{bus_name}"
    with open(path, "wb") as f:
        f.write(b"not a shmbus segment" * 400)
    try:
        with pytest.raises(shmbus.ForeignSegment, match="magic number"):
            shmbus.Bus.open(bus_name)
    finally:
        os.unlink(path)


def test_closed_handles_raise(bus):
    pub = bus.publisher("c")
    pub.close()
    with pytest.raises(shmbus.InvalidArgument, match="closed"):
        pub.publish(b"x")
