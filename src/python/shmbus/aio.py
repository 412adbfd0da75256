"""asyncio helpers: Subscriber.aiter() and Publisher.apublish().

Neither spins: aiter() polls, and when nothing is ready hands one bounded
wait (futex sleep, no GIL) to the loop's default executor, so an idle
subscriber costs a sleeping worker thread, not a busy one. apublish() tries
once and, only when a reliable topic is full, waits in the executor.
"""
import asyncio

from . import _shmbus


async def _aiter(self, batch=64, slice_s=0.05):
    """Async iteration over the subscriber's messages:

        async for msg in sub.aiter(): ...
    """
    loop = asyncio.get_running_loop()
    while True:
        msgs = self.poll(batch)
        if msgs:
            for m in msgs:
                yield m
            continue
        await loop.run_in_executor(None, self.wait, slice_s)


async def _arecv(self, timeout=None):
    """The next message, awaiting it up to `timeout` seconds; None on timeout."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        msgs = self.poll(1)
        if msgs:
            return msgs[0]
        left = 0.05 if deadline is None else min(0.05, deadline - loop.time())
        if left <= 0:
            return None
        await loop.run_in_executor(None, self.wait, left)


async def _apublish(self, msg, timeout=1.0, correlation=0):
    """Publishes without blocking the event loop; on a full reliable topic waits
    up to `timeout` seconds in the executor. Returns a PublishResult."""
    r = self.try_publish(msg, correlation)
    if r != _shmbus.PublishResult.WouldBlock or not timeout:
        return r
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, self.publish, msg, timeout, correlation)


_shmbus.Subscriber.aiter = _aiter
_shmbus.Subscriber.arecv = _arecv
_shmbus.Publisher.apublish = _apublish
