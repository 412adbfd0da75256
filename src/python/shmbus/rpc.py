"""Request/reply: logging of Responder handler errors (the classes are in C++)."""
import logging
import traceback

from . import _shmbus

log = logging.getLogger("shmbus")


def _log_error(exc, tb, msg):
    log.error("shmbus: responder handler raised on %r (no reply sent):\n%s", msg,
              "".join(traceback.format_exception(type(exc), exc, tb)))


_init = _shmbus.Responder.__init__


def _responder_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.set_error_hook(_log_error)


_shmbus.Responder.__init__ = _responder_init
