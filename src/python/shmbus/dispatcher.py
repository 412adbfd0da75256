"""Handler registration and a run loop (shmbus.Dispatcher)."""
import logging
import threading
import traceback

from . import _shmbus

log = logging.getLogger("shmbus")


class Dispatcher:
    """Runs handlers for messages on several topics, in one loop.

        d = shmbus.Dispatcher(bus, name="strategy")

        @d.on("md.quotes")
        def quote(msg): ...

        d.on_gap(lambda gap: print("lost", gap.count))
        d.start()        # a thread of its own; or d.run() on this one
        ...
        d.stop()         # returns promptly, also from a blocking wait

    The loop polls every subscription in turn and, when nothing is ready,
    waits on the bus's doorbell without the GIL (idle="block", the default)
    or polls again at once (idle="spin": lowest latency, burns a core).

    A handler that raises: the exception is logged on the "shmbus" logger
    with its traceback and counted in `errors`, and the loop goes on with
    the next message (the one it raised on counts as consumed). With
    stop_on_error=True the first exception stops the loop instead and run()
    re-raises it (start(): it is kept in `exception`). KeyboardInterrupt
    and SystemExit always stop the loop.

    A stopped Dispatcher cannot run again: make a new one.
    """

    def __init__(self, bus, name="", *, start="live", stop_on_error=False, idle="block", batch=64):
        self._d = _shmbus._Dispatcher(bus, name=name, start=start, stop_on_error=stop_on_error,
                                      idle=idle, batch=batch)
        self._d.set_error_hook(self._log_error)
        self._thread = None
        self.exception = None

    def on(self, topic, fn=None, *, type=None):
        """Registers fn(msg) for every message on `topic`; a decorator without fn.

        type: a fully qualified type name to check the topic against (TypeMismatch)."""
        if fn is None:
            def register(f):
                self._d.add(topic, f, type)
                return f
            return register
        self._d.add(topic, fn, type)
        return fn

    def on_gap(self, fn):
        """fn(Gap) for every loss on any topic (lossy topics); usable as a decorator."""
        self._d.set_gap_handler(fn)
        return fn

    def poll_once(self):
        """One pass over every subscription; returns messages delivered. For own loops."""
        return self._d.poll_once()

    def run(self):
        """Runs the loop on this thread until stop() (or a handler error with stop_on_error)."""
        self._d.run()

    def start(self):
        """Runs the loop on a new (daemon) thread."""
        if self._thread is not None:
            raise _shmbus.InvalidArgument("the Dispatcher was already started")

        def body():
            try:
                self._d.run()
            except BaseException as e:  # kept for the caller; the thread ends
                self.exception = e
                log.error("shmbus.Dispatcher stopped by an exception:\n%s",
                          "".join(traceback.format_exception(type(e), e, e.__traceback__)))

        self._thread = threading.Thread(target=body, name="shmbus-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout=5.0):
        """Stops the loop and, if start()ed, joins its thread (from a handler: does not join)."""
        self._d.stop()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    @property
    def running(self):
        """Whether the loop is running (on any thread)."""
        return self._d.running

    @property
    def errors(self):
        """Handler exceptions so far."""
        return self._d.errors

    @property
    def delivered(self):
        """Messages handed to handlers so far."""
        return self._d.delivered

    @property
    def drops(self):
        """Messages lost (sum of gap counts) over all topics."""
        return self._d.drops

    def __enter__(self):
        """The Dispatcher itself; leaving the block stops it."""
        return self

    def __exit__(self, *exc):
        """Stops the loop (and joins its thread)."""
        self.stop()

    @staticmethod
    def _log_error(exc, tb, msg):
        log.error("shmbus: handler raised on %r:\n%s", msg,
                  "".join(traceback.format_exception(type(exc), exc, tb)))
