"""Locks that keep two runs from writing the same results.

- :class:`ResultsFolderLock`: one session at a time per results folder. A second ``deploybench run``
  on the same ``--out`` exits at once with a message naming the session that holds it. The lock is an
  ``flock`` on ``<out>/.deploybench.lock``, so the kernel releases it when the holder dies, even by
  SIGKILL: a stale lock never needs deleting by hand.
- :func:`hold_case_file` / :func:`wait_for_case_file`: a case file is locked while it is written. A
  worker that outlived a killed runner (it stops within about a second, see
  :mod:`deploybench.lifeline`) still holds its file, so a ``--resume`` started meanwhile waits for it
  instead of reading a file that is still growing.

On systems without ``fcntl`` (Windows) the locks are no-ops.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "ResultsFolderBusy", "ResultsFolderLock", "hold_case_file", "wait_for_case_file"]

LOCK_NAME = ".deploybench.lock"


class ResultsFolderBusy(Exception):
    """Another session holds the results folder (or a case file in it) right now."""


class ResultsFolderLock:
    """Exclusive use of a results folder for one session; see the module docstring."""

    def __init__(self, out_dir: Path | str) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self._fh: IO[str] | None = None

    def acquire(self, argv: Sequence[str] = ()) -> None:
        """Take the lock or raise :class:`ResultsFolderBusy`; ``OSError`` if the folder cannot be
        created or written (the caller turns that into a usage error before any work starts)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = _describe_holder(fh.read())
                fh.close()
                raise ResultsFolderBusy(
                    f"results folder {self.out_dir} is in use by another deploybench session{holder}; "
                    "wait for it to finish, or choose another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             "command_line": list(argv)}) + "\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor releases the flock
            self._fh = None

    def __enter__(self) -> "ResultsFolderLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _describe_holder(text: str) -> str:
    try:
        info = json.loads(text)
        command = " ".join(info.get("command_line") or [])
        return f" (pid {info['pid']}, started {info['started_at']}{': ' + command if command else ''})"
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


def hold_case_file(fh: IO[str]) -> None:
    """Lock an open case file for as long as it stays open (released on close or process death)."""
    if fcntl is not None:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass  # another holder: the caller already waited in wait_for_case_file


def wait_for_case_file(path: Path | str, timeout_s: float = 60.0, poll_s: float = 0.1) -> None:
    """Wait until no process is writing ``path`` (a worker of a killed session finishing its trial).
    Raises :class:`ResultsFolderBusy` after ``timeout_s``."""
    if fcntl is None:
        return
    try:
        fh = open(path, "r", encoding="utf-8")
    except OSError:
        return  # nothing to wait for; reading it reports any real problem
    with fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ResultsFolderBusy(
                        f"{path} is still being written by another process after {timeout_s:g} s "
                        "(a worker of an earlier session?); stop it, then rerun with --resume") from None
                time.sleep(poll_s)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its folder, if needed) for the block;
    ``None`` holds nothing. Other holders wait: a job started as ``flock FILE command`` waits for the
    block in flight (a measurement, an artefact being prepared) and holds back the next one."""
    if path is None:
        yield
        return
    import fcntl

    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)

