"""Worker processes never outlive the runner that started them.

A worker left behind by a killed runner would finish its case and wait forever, racing a later
``--resume`` (for a live target it would keep measuring beside the new run). :func:`bind_to_parent`
ties a worker to its parent in two ways:

- on Linux, ``prctl(PR_SET_PDEATHSIG)`` asks the kernel to send the worker a signal the moment its
  parent dies, even by SIGKILL;
- everywhere, a daemon thread polls the parent's pid once a second (the kernel's signal is tied to
  the parent *thread*, so it is checked against the real parent before it is trusted).

When the parent is gone, the worker's main thread gets ``KeyboardInterrupt`` (a case in flight leaves
its file resumable, exactly as after Ctrl-C) and the process exits shortly after, whatever it was doing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from typing import Any

__all__ = ["bind_to_parent", "parent_is_gone", "ORPHAN_EXIT_CODE"]

#: a worker that stopped because its runner died exits with this code (nobody is left to read it)
ORPHAN_EXIT_CODE = 75
_PR_SET_PDEATHSIG = 1
_SIGNAL = getattr(signal, "SIGUSR2", None)  # None on Windows: only the watchdog's hard exit is left


def _set_pdeathsig(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def parent_is_gone(parent_pid: int) -> bool:
    """True once ``parent_pid`` is no longer this process's parent (it died; we were re-parented)."""
    return os.getppid() != parent_pid


def bind_to_parent(parent_pid: int | None = None, *, poll_s: float = 1.0, grace_s: float = 30.0) -> None:
    """Make this process stop when ``parent_pid`` (default: the current parent) dies.

    The main thread gets ``KeyboardInterrupt``; if the process has not exited ``grace_s`` seconds
    later (an evaluation that ignores interrupts), it is ended with ``os._exit``."""
    parent = os.getppid() if parent_pid is None else parent_pid
    state = {"orphaned": False}
    if _SIGNAL is None:  # pragma: no cover - not POSIX
        threading.Thread(target=_exit_when_gone, args=(parent, poll_s), daemon=True).start()
        return

    def on_signal(signum: int, frame: Any) -> None:
        if not parent_is_gone(parent) or state["orphaned"]:
            return  # the parent thread that started us ended, not the parent process; or already stopping
        state["orphaned"] = True
        threading.Thread(target=_exit_later, args=(grace_s,), daemon=True).start()
        raise KeyboardInterrupt("the runner that started this worker is gone")

    signal.signal(_SIGNAL, on_signal)
    _set_pdeathsig(_SIGNAL)
    if parent_is_gone(parent):  # died before the kernel was asked to tell us
        os._exit(ORPHAN_EXIT_CODE)

    def watch() -> None:
        while not parent_is_gone(parent):
            time.sleep(poll_s)
        os.kill(os.getpid(), _SIGNAL)

    threading.Thread(target=watch, daemon=True, name="deploybench-lifeline").start()


def _exit_later(grace_s: float) -> None:
    time.sleep(grace_s)
    os._exit(ORPHAN_EXIT_CODE)


def _exit_when_gone(parent: int, poll_s: float) -> None:  # pragma: no cover - not POSIX
    while not parent_is_gone(parent):
        time.sleep(poll_s)
    os._exit(ORPHAN_EXIT_CODE)
