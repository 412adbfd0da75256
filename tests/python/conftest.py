"""Fixtures shared by the Python suites: a bus of each test's own, the C++ peers."""
import itertools
import os
import shutil
import subprocess
import time

import pytest

import shmbus

_counter = itertools.count()


@pytest.fixture
def bus_name():
    name = f"pyt-{os.getpid()}-{next(_counter)}"
    shmbus.Bus.remove(name)
    yield name
    shmbus.Bus.remove(name)


@pytest.fixture
def bus(bus_name):
    with shmbus.Bus.open_or_create(bus_name) as b:
        yield b


def tool(var):
    path = os.environ.get(var)
    if not path or not os.path.exists(path):
        pytest.skip(f"{var} is not set (run through ctest)")
    return path


class Peer:
    """A child process whose stdout is read line by line with a deadline."""

    def __init__(self, args, **kw):
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
        self.lines = []

    def wait_line(self, prefix, timeout=10.0):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.p.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                line = self.p.stdout.readline()
                if not line:
                    break
                self.lines.append(line.rstrip("\n"))
                if line.startswith(prefix):
                    return line.rstrip("\n")
        raise AssertionError(f"no line starting with {prefix!r} within {timeout} s; got {self.lines}; "
                             f"stderr: {self.p.stderr.read() if self.p.poll() is not None else ''}")

    def finish(self, timeout=30.0):
        out, err = self.p.communicate(timeout=timeout)
        self.lines += out.splitlines()
        return self.p.returncode, err

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)


def kv(line):
    return dict(item.split("=", 1) for item in line.split())


MASK = (1 << 64) - 1


def fill_payload(n, value):
    """The self-checking payload of tests/payload.hpp."""
    x = (value * 0x9E3779B97F4A7C15 + 1) & MASK
    head = value.to_bytes(8, "little") + x.to_bytes(8, "little")
    return head + bytes(((x >> ((i % 8) * 8)) ^ i) & 0xFF for i in range(16, n))


def poll_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.001)
    return pred()
