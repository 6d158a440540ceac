"""Stop signals, handled one way everywhere: SIGTERM and SIGHUP stop a run as Ctrl-C does.

What a scheduler, ``timeout``, a closed terminal or a container stop sends is turned into
``KeyboardInterrupt`` in the main thread, so the case in flight leaves its file resumable and the
summary is printed. The runner's process needs this for SIGTERM and SIGHUP (Python already turns
SIGINT into ``KeyboardInterrupt``); a pool worker running a case needs it for SIGINT too, since an
executor's workers may have been told to ignore SIGINT while idle.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator, Sequence

__all__ = ["STOP_SIGNALS", "WORKER_STOP_SIGNALS", "raise_keyboard_interrupt", "signals_interrupt"]

#: signals that stop a run like Ctrl-C (those this platform has)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
#: the same in a worker process, with SIGINT
WORKER_STOP_SIGNALS = (signal.SIGINT, *STOP_SIGNALS)


def raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    """A signal handler: ``KeyboardInterrupt`` carrying the signal's name (``SIGTERM``)."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def signals_interrupt(signals: Sequence[int] = STOP_SIGNALS) -> Iterator[None]:
    """While inside, ``signals`` raise ``KeyboardInterrupt`` (in the main thread; elsewhere signal
    handlers cannot be set, and nothing changes); the previous handlers are restored on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.signal(signum, raise_keyboard_interrupt) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
