"""Run a measured worker under an emulated device's memory limit, so that exceeding it is a real OOM kill.

An emulated device (say an edge board with 1 GB) is only honest if a configuration that needs more
memory than the device has actually dies, the way it would on the device, instead of being measured
on a host with plenty of RAM. :class:`MemoryGuard` enforces a limit on one worker process *and all its
descendants* (compile workers, data loaders) with the strongest mechanism this machine offers, and
says afterwards whether the limit is what killed it and which mechanism enforced it:

``cgroup-v2`` / ``cgroup-v1``
    A memory cgroup created as a uniquely named child of the profiler's *own* cgroup (nothing is
    ever moved anywhere else); the worker joins it between fork and exec, so every byte it and its
    descendants charge (anonymous memory, page cache, kernel memory where accounted) counts, swap
    included, and the kernel's OOM killer ends it at the limit. Exact, no sampling.
``watchdog``
    A daemon thread samples the resident set (RSS) of the worker and all its descendants every
    ~10 ms (new descendants are found within ~50 ms) and kills the worker's process group on
    excess. Works wherever ``/proc`` (or psutil) does; it can overshoot by what the worker touches
    within one interval, and pages shared between processes of the tree count once per process
    (conservative).
``rlimit-as``
    ``RLIMIT_AS`` on the worker (and, inherited, on each descendant separately). The last resort: it
    limits *address space*, not memory, so libraries that reserve large virtual ranges (CUDA builds of
    torch, glibc's per-thread malloc arenas, thread stacks) fail far below the limit (a CUDA build of
    torch 2.x cannot even be imported under 2 GB: "libtorch_cpu.so: failed to map segment"). Nothing
    is killed: an allocation fails and the worker reports ``MemoryError`` / ``std::bad_alloc`` (which
    :func:`deploybench.live.errors.classify_error` classifies ``oom``) or a failed library mapping;
    ``MemoryGuard.oom_killed(stderr)`` recognises both.

``auto`` (the default) uses a cgroup (v2, then v1) where a child can be created and written, else the
watchdog. :data:`MECHANISM_ENV` overrides ``auto`` (tests and users force one mechanism with it), and
:func:`memory_limit_support` says which mechanisms work on this machine and why not (for
``deploybench doctor``).

**Accounting: what counts as the device's memory.** A memory cgroup charges a page to the group that
first brought it into memory: the runtime's shared libraries (libtorch, ONNX Runtime), usually already
in the page cache when a worker maps them, are charged to whoever read them first, not to the worker.
On the recording machine that left ~300 MB of PyTorch's ~690 MB resident set uncounted. A device has to
hold its runtime's code too, so by default (:data:`ACCOUNTING_ENV` unset or ``rss+file``) a *resident
watchdog* runs alongside every kernel mechanism: it samples the worker tree's resident set (anonymous,
file-backed and shared-memory pages; each process of the tree in full) and kills the tree when it crosses
the limit. Whichever sees the excess first decides (:attr:`MemoryGuard.decided_by`); the accounting
is stored with every measurement (``memory_accounting``: ``rss+file``, or ``cgroup-charge`` /
``address-space`` with ``DEPLOYBENCH_MEMORY_ACCOUNTING=charged``, the v2 tables' accounting). Resident
sets are used rather than PSS: PSS divides a shared page among every process mapping it, so a worker's
charge would depend on what else runs on the host, which a device does not share.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

try:  # Unix only; the rlimit mechanism is simply unavailable elsewhere
    import resource
except ImportError:  # pragma: no cover - non-Unix
    resource = None  # type: ignore[assignment]

__all__ = [
    "ACCOUNTING_ENV",
    "ACCOUNTINGS",
    "MECHANISMS",
    "MECHANISM_ENV",
    "MECHANISM_CHOICES",
    "MemoryGuard",
    "MemoryLimitUnavailable",
    "memory_limit_support",
]

#: the mechanisms, strongest first (what :attr:`MemoryGuard.mechanism` reports; "none" when unlimited)
MECHANISMS = ("cgroup-v2", "cgroup-v1", "watchdog", "rlimit-as")
#: overrides ``mechanism="auto"``: auto (default) | cgroup | watchdog | rlimit | off
MECHANISM_ENV = "DEPLOYBENCH_MEMORY_LIMIT"
#: every accepted spelling of a mechanism request, mapped to the mechanisms tried in order
MECHANISM_CHOICES: dict[str, tuple[str, ...]] = {
    "auto": MECHANISMS,
    "cgroup": ("cgroup-v2", "cgroup-v1"),
    "cgroup-v2": ("cgroup-v2",),
    "cgroup-v1": ("cgroup-v1",),
    "watchdog": ("watchdog",),
    "rlimit": ("rlimit-as",),
    "rlimit-as": ("rlimit-as",),
    "off": (),
    "none": (),
}

#: what counts against the limit: ``rss+file`` (default: the worker tree's resident set, file-backed pages
#: of the runtime included, enforced by a resident watchdog beside the kernel mechanism) or ``charged``
#: (only what the kernel mechanism charges: the v2 tables' accounting)
ACCOUNTING_ENV = "DEPLOYBENCH_MEMORY_ACCOUNTING"
ACCOUNTINGS = ("rss+file", "charged")

_MB = 1024 * 1024
_CHILD_PREFIX = "deploybench-"
_CHILD_NAME = re.compile(r"^deploybench-(\d+)-[0-9a-f]+$")
_WATCHDOG_INTERVAL_S = 0.01
_EMPTY_DEADLINE_S = 10.0
_RESCAN_EVERY = 5  # watchdog: full /proc scan for new descendants every 5 samples (50 ms)


#: how a failed allocation or mapping under RLIMIT_AS shows in a worker's stderr
_ALLOCATION_FAILED = re.compile(
    r"MemoryError|bad_alloc|Cannot allocate memory|failed to map segment|out of memory|mmap failed|ENOMEM",
    re.IGNORECASE,
)


def _resolve_accounting(accounting: str | None) -> str:
    """The effective accounting: an explicit value wins, else :data:`ACCOUNTING_ENV`, else ``rss+file``."""
    source = "accounting"
    if accounting is None:
        accounting, source = os.environ.get(ACCOUNTING_ENV, "").strip() or "rss+file", ACCOUNTING_ENV
    accounting = accounting.lower()
    if accounting not in ACCOUNTINGS:
        raise ValueError(f"{source}={accounting!r} is not a memory accounting; allowed: {', '.join(ACCOUNTINGS)}")
    return accounting


class MemoryLimitUnavailable(RuntimeError):
    """The requested mechanism cannot enforce a limit on this machine (the message says why)."""


def _resolve_request(mechanism: str | None) -> str:
    """The effective request: an explicit mechanism wins; ``None``/``auto`` defer to :data:`MECHANISM_ENV`."""
    if mechanism is not None and mechanism != "auto":
        request, source = mechanism, "mechanism"
    else:
        env = os.environ.get(MECHANISM_ENV, "").strip()
        request, source = (env, MECHANISM_ENV) if env else ("auto", "mechanism")
    request = request.lower()
    if request not in MECHANISM_CHOICES:
        from ..errors import did_you_mean

        raise ValueError(
            f"{source}={request!r} is not a memory-limit mechanism; allowed: "
            f"{', '.join(MECHANISM_CHOICES)}{did_you_mean(request, MECHANISM_CHOICES)}"
        )
    return request


# --------------------------------------------------------------------------------------------- cgroups


@dataclass(frozen=True)
class _CgroupHome:
    """The profiler's own cgroup directory on one hierarchy (where children are created)."""

    version: int  # 1 or 2
    path: str


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _mounts() -> list[tuple[str, str, str, str]]:
    """``(fstype, root, mountpoint, super_options)`` of every cgroup mount, from /proc/self/mountinfo."""
    mounts = []
    try:
        lines = _read("/proc/self/mountinfo").splitlines()
    except OSError:
        return mounts
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append((tail[0], fields[3], fields[4].replace("\\040", " "), tail[2]))
    return mounts


def _own_cgroups() -> tuple[str | None, str | None]:
    """This process's cgroup path on the unified (v2) hierarchy and on the v1 memory hierarchy."""
    unified = memory_v1 = None
    try:
        lines = _read("/proc/self/cgroup").splitlines()
    except OSError:
        return None, None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            unified = path
        elif "memory" in controllers.split(","):
            memory_v1 = path
    return unified, memory_v1


def _join_mount(mount_root: str, mountpoint: str, cgroup_path: str) -> str:
    """The directory of ``cgroup_path`` under a mount whose root is ``mount_root`` (containers mount a subtree)."""
    if mount_root != "/" and (cgroup_path == mount_root or cgroup_path.startswith(mount_root.rstrip("/") + "/")):
        cgroup_path = cgroup_path[len(mount_root):]
    return os.path.join(mountpoint, cgroup_path.lstrip("/")).rstrip("/") or "/"


def _find_home(version: int) -> tuple[_CgroupHome | None, str]:
    """The own cgroup on the v2 or v1 memory hierarchy, or ``None`` and the reason there is none."""
    unified, memory_v1 = _own_cgroups()
    mounts = _mounts()
    if version == 2:
        if unified is None:
            return None, "this process is not in a cgroup v2 hierarchy (/proc/self/cgroup has no 0:: line)"
        candidates = [m for m in mounts if m[0] == "cgroup2"]
        if not candidates:
            return None, "no cgroup2 filesystem is mounted"
        for _, root, mountpoint, _ in candidates:
            path = _join_mount(root, mountpoint, unified)
            if os.path.isdir(path):
                controllers = ""
                try:
                    controllers = _read(os.path.join(path, "cgroup.controllers"))
                except OSError:
                    pass
                if "memory" not in controllers.split():
                    return None, (
                        f"the memory controller is not available in {path} "
                        "(bound to cgroup v1, or not delegated to this cgroup)"
                    )
                return _CgroupHome(2, path), ""
        return None, f"own cgroup {unified!r} not found under the cgroup2 mount"
    if memory_v1 is None:
        return None, "no cgroup v1 memory hierarchy (/proc/self/cgroup has no memory line)"
    candidates = [m for m in mounts if m[0] == "cgroup" and "memory" in m[3].split(",")]
    if not candidates:
        return None, "the cgroup v1 memory controller is not mounted"
    for _, root, mountpoint, _ in candidates:
        path = _join_mount(root, mountpoint, memory_v1)
        if os.path.isdir(path):
            return _CgroupHome(1, path), ""
    return None, f"own memory cgroup {memory_v1!r} not found under the v1 memory mount"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cgroup_pids(path: str) -> list[int]:
    try:
        return [int(p) for p in _read(os.path.join(path, "cgroup.procs")).split()]
    except (OSError, ValueError):
        return []


def _empty_and_remove(path: str, deadline_s: float = _EMPTY_DEADLINE_S) -> bool:
    """SIGKILL every process left in cgroup ``path``, wait until it is empty, rmdir it. True when removed."""
    if not os.path.isdir(path):
        return True
    kill_file = os.path.join(path, "cgroup.kill")  # cgroup v2, Linux >= 5.14: kills the whole group
    deadline = time.monotonic() + deadline_s
    while True:
        pids = _cgroup_pids(path)
        if pids:
            try:
                _write(kill_file, "1")
            except OSError:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
        else:
            try:
                os.rmdir(path)
                return True
            except FileNotFoundError:
                return True
            except OSError as exc:  # EBUSY: the kernel has not finished detaching exiting tasks
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.EAGAIN):
                    return False
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def _clean_stale_children(home: _CgroupHome) -> None:
    """Remove deploybench children whose creating process is gone (a profiler killed mid-run).

    Their processes are orphaned workers nobody will time out, so they are killed first.
    """
    try:
        names = os.listdir(home.path)
    except OSError:
        return
    for name in names:
        match = _CHILD_NAME.match(name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            _empty_and_remove(os.path.join(home.path, name), deadline_s=1.0)


def _create_child(home: _CgroupHome, limit_bytes: int) -> tuple[str, dict[str, str]]:
    """Create a uniquely named limited child of ``home``; its path and the settings written. Raises OSError."""
    path = os.path.join(home.path, f"{_CHILD_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}")
    os.mkdir(path)
    settings: dict[str, str] = {}
    try:
        if home.version == 1:
            _write(os.path.join(path, "memory.limit_in_bytes"), str(limit_bytes))
            settings["memory.limit_in_bytes"] = str(limit_bytes)
            memsw = os.path.join(path, "memory.memsw.limit_in_bytes")
            if os.path.exists(memsw):  # absent when swap accounting is off (swapaccount=0)
                _write(memsw, str(limit_bytes))
                settings["memory.memsw.limit_in_bytes"] = str(limit_bytes)
            if int(_read(os.path.join(path, "memory.limit_in_bytes"))) > limit_bytes:
                raise OSError(errno.EINVAL, "memory.limit_in_bytes did not take the limit")
        else:
            _write(os.path.join(path, "memory.max"), str(limit_bytes))
            settings["memory.max"] = str(limit_bytes)
            for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                if os.path.exists(os.path.join(path, name)):
                    _write(os.path.join(path, name), value)
                    settings[name] = value
        # the group must accept a process: checked by the worker joining it; here, that the file is writable
        if not os.access(os.path.join(path, "cgroup.procs"), os.W_OK):
            raise OSError(errno.EACCES, "cgroup.procs is not writable")
    except OSError:
        try:
            os.rmdir(path)
        except OSError:
            pass
        raise
    return path, settings


def _prepare_v2_home(home: _CgroupHome) -> None:
    """Enable the memory controller for children of the own cgroup (``+memory`` in cgroup.subtree_control).

    The kernel refuses (EBUSY) while the own cgroup holds processes and is not the root ("no internal
    processes" rule), which is the usual case; the caller then falls back to another mechanism.
    """
    control = os.path.join(home.path, "cgroup.subtree_control")
    if "memory" in _read(control).split():
        return
    _write(control, "+memory")


def _probe_cgroup(version: int, limit_bytes: int) -> tuple[_CgroupHome | None, str, str | None, dict[str, str]]:
    """Try to create a limited child: ``(home, reason_if_not, child_path, settings)``."""
    home, reason = _find_home(version)
    if home is None:
        return None, reason, None, {}
    if version == 2:
        try:
            _prepare_v2_home(home)
        except OSError as exc:
            busy = " (the kernel refuses while this cgroup holds processes)" if exc.errno == errno.EBUSY else ""
            return None, (
                f"cannot enable the memory controller for children of {home.path} "
                f"(+memory in cgroup.subtree_control): {exc.strerror or exc}{busy}"
            ), None, {}
    try:
        _clean_stale_children(home)
        path, settings = _create_child(home, limit_bytes)
    except OSError as exc:
        what = exc.strerror or str(exc)
        return None, f"cannot create a limited child of {home.path}: {what}", None, {}
    return home, "", path, settings


# ------------------------------------------------------------------------------------------- watchdog


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _proc_stat(pid: int | str) -> tuple[int, int, int, int, int] | None:
    """``(ppid, pgrp, session, starttime, rss_bytes)`` of a process from /proc/<pid>/stat, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()  # the command name may contain spaces and parentheses
    try:
        return int(rest[1]), int(rest[2]), int(rest[3]), int(rest[19]), int(rest[21]) * _PAGE
    except (IndexError, ValueError):
        return None


def _tree_rss_proc(root: int) -> tuple[int, dict[int, int]]:
    """Sum of RSS over ``root`` and all its descendants, and their pids (-> start times), from one scan of /proc.

    Descendants are found by parent links and, for a session leader (``start_new_session=True``), by
    session id too, so grandchildren re-parented after their parent died still count.
    """
    stats: dict[int, tuple[int, int, int, int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(entry)
            if stat is not None:
                stats[int(entry)] = stat
    if root not in stats:
        return 0, {}
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat[0], []).append(pid)
    tree, frontier = {root}, [root]
    while frontier:
        for child in children.get(frontier.pop(), ()):
            if child not in tree:
                tree.add(child)
                frontier.append(child)
    if stats[root][2] == root:  # session leader: its whole session belongs to the worker
        tree.update(pid for pid, stat in stats.items() if stat[2] == root)
    return sum(stats[pid][4] for pid in tree), {pid: stats[pid][3] for pid in sorted(tree)}


def _tree_rss_psutil(root: int) -> tuple[int, list[int]]:
    """The same as :func:`_tree_rss_proc` through psutil (systems without /proc)."""
    import psutil

    try:
        top = psutil.Process(root)
        procs = [top, *top.children(recursive=True)]
    except psutil.Error:
        return 0, []
    total, pids = 0, []
    for proc in procs:
        try:
            total += proc.memory_info().rss
            pids.append(proc.pid)
        except psutil.Error:
            pass
    return total, pids


def _watchdog_support() -> tuple[bool, str]:
    if _proc_stat(os.getpid()) is not None:
        return True, "samples /proc/<pid>/stat"
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False, "neither /proc nor psutil is available to sample resident sets"
    return True, "samples resident sets through psutil"


class _Watchdog(threading.Thread):
    """Samples the worker tree's RSS every ``interval_s`` and kills the tree on excess."""

    def __init__(self, pid: int, limit_bytes: int, interval_s: float) -> None:
        super().__init__(name=f"deploybench-memory-watchdog-{pid}", daemon=True)
        self.pid = pid
        self.limit_bytes = limit_bytes
        self.interval_s = interval_s
        self.stop_event = threading.Event()
        self.peak_bytes = 0
        #: seconds after the watchdog started when it sampled ``peak_bytes``
        self.peak_at_s: float | None = None
        self.killed_at_bytes: int | None = None
        self._use_proc = _proc_stat(os.getpid()) is not None
        stat = _proc_stat(pid) if self._use_proc else None
        self._starttime = stat[3] if stat else None
        self._members: dict[int, int] = {}  # pid -> start time, so a reused pid is never counted or killed

    def _same_process(self) -> bool:
        """Guard against pid reuse after the worker was reaped: never sample or kill a stranger."""
        if not self._use_proc:
            return True
        stat = _proc_stat(self.pid)
        return stat is not None and stat[3] == self._starttime

    def _sample(self, rescan: bool) -> tuple[int, list[int]]:
        """RSS of the tree. Finding the tree scans all of /proc (~1 ms per 100 processes), so it is done
        every few samples; in between only the known members' /proc/<pid>/stat are read (microseconds)."""
        if not self._use_proc:
            return _tree_rss_psutil(self.pid)
        if rescan or not self._members:
            total, self._members = _tree_rss_proc(self.pid)
            return total, list(self._members)
        total = 0
        for pid, started in list(self._members.items()):
            stat = _proc_stat(pid)
            if stat is None or stat[3] != started:  # exited (or, rarely, its pid reused by a stranger)
                del self._members[pid]
            else:
                total += stat[4]
        return total, list(self._members)

    def run(self) -> None:
        count = 0
        started = time.monotonic()
        while not self.stop_event.is_set():
            if not self._same_process():
                return
            total, pids = self._sample(rescan=count % _RESCAN_EVERY == 0)
            count += 1
            if total > self.peak_bytes:
                self.peak_bytes, self.peak_at_s = total, time.monotonic() - started
            if total > self.limit_bytes and self._same_process():
                self.killed_at_bytes = total
                self._kill(pids)
                return
            self.stop_event.wait(self.interval_s)

    def _kill(self, pids: list[int]) -> None:
        try:  # the worker's own process group, never the profiler's
            if os.getpgid(self.pid) == self.pid and self.pid != os.getpgrp():
                os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in pids:  # descendants that left the group (setpgid/setsid) die too
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


# ---------------------------------------------------------------------------------------------- guard


class MemoryGuard:
    """Enforce a memory limit (MB) on one worker process and all its descendants.

    Usage::

        with MemoryGuard(limit_mb=1024) as guard:
            proc = subprocess.Popen(cmd, ..., start_new_session=True, preexec_fn=guard.preexec)
            guard.attach(proc)            # starts the watchdog thread if that is the mechanism
            ... wait for proc ...
            killed = guard.oom_killed()   # True when the limit (not something else) killed it

    ``mechanism``: ``auto`` (strongest available; :data:`MECHANISM_ENV` overrides it), ``cgroup``
    (v2 then v1), ``cgroup-v2``, ``cgroup-v1``, ``watchdog``, ``rlimit`` or ``off``; anything but
    ``auto`` raises :class:`MemoryLimitUnavailable` in ``__enter__`` when it cannot enforce the limit,
    so a forced mechanism never silently becomes a weaker one. ``limit_mb=None`` (or ``off``) means no
    limit: :attr:`mechanism` is ``"none"`` and every method is a no-op.

    After ``__enter__``: :attr:`mechanism` (which one enforces the limit), :meth:`describe`,
    :attr:`peak_mb`, :attr:`cgroup_path` (cgroups only; still names the removed directory after exit).
    One guard serves one worker.
    """

    def __init__(self, limit_mb: float | None, mechanism: str | None = "auto",
                 watchdog_interval_s: float = _WATCHDOG_INTERVAL_S, accounting: str | None = None) -> None:
        valid = isinstance(limit_mb, (int, float)) and not isinstance(limit_mb, bool) and limit_mb > 0
        if limit_mb is not None and not valid:
            raise ValueError(f"limit_mb must be a positive number of MB or None, got {limit_mb!r}")
        self.limit_mb = None if limit_mb is None else float(limit_mb)
        self.request = _resolve_request(mechanism)
        self.accounting_request = _resolve_accounting(accounting)
        self.watchdog_interval_s = float(watchdog_interval_s)
        #: a resident watchdog runs beside the kernel mechanism (``rss+file`` accounting)
        self.resident_watchdog = False
        self.mechanism = "none"
        self.cgroup_path: str | None = None
        self.fallbacks: dict[str, str] = {}  # mechanism -> why it was not used (auto/cgroup requests)
        self._settings: dict[str, str] = {}
        self._procs_path: bytes | None = None
        self._pid: int | None = None
        self._proc: subprocess.Popen | None = None
        self._watchdog: _Watchdog | None = None
        self._final: dict[str, int] | None = None
        self._entered = False

    @property
    def limit_bytes(self) -> int | None:
        return None if self.limit_mb is None else int(self.limit_mb * _MB)

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> "MemoryGuard":
        if self._entered:
            raise RuntimeError("a MemoryGuard serves one worker; create a new one")
        self._entered = True
        candidates = MECHANISM_CHOICES[self.request] if self.limit_bytes is not None else ()
        for candidate in candidates:
            reason = self._try(candidate)
            if not reason:
                self.mechanism = candidate
                if (candidate != "watchdog" and self.accounting_request == "rss+file"
                        and _watchdog_support()[0]):
                    self.resident_watchdog = True
                return self
            self.fallbacks[candidate] = reason
        if candidates:  # every candidate failed (auto only gets here when not even rlimit-as exists)
            why = "; ".join(f"{name}: {reason}" for name, reason in self.fallbacks.items())
            raise MemoryLimitUnavailable(f"memory limit mechanism {self.request!r} is unavailable here ({why})")
        return self

    def _try(self, candidate: str) -> str:
        """Set up ``candidate``; an empty string on success, else why it cannot be used."""
        assert self.limit_bytes is not None
        if candidate in ("cgroup-v2", "cgroup-v1"):
            home, reason, path, settings = _probe_cgroup(2 if candidate == "cgroup-v2" else 1, self.limit_bytes)
            if home is None or path is None:
                return reason
            self.cgroup_path, self._settings = path, settings
            self._procs_path = os.path.join(path, "cgroup.procs").encode()
            return ""
        if candidate == "watchdog":
            ok, reason = _watchdog_support()
            return "" if ok else reason
        if candidate == "rlimit-as":
            if resource is None or not hasattr(resource, "RLIMIT_AS"):
                return "RLIMIT_AS is not available on this platform"
            return ""
        return f"unknown mechanism {candidate!r}"

    def __exit__(self, *exc_info: Any) -> None:
        """Stop enforcing and leave nothing behind: a worker still running (the body raised) is killed
        with its process group; a cgroup is emptied (SIGKILL) and removed."""
        if self._watchdog is not None:
            self._watchdog.stop_event.set()
            self._watchdog.join(timeout=5.0)
            if self._watchdog._same_process() and self._proc_running():
                self._watchdog._kill([self._watchdog.pid])
        if self.cgroup_path is not None:
            self._final = self._counters()
            if not _empty_and_remove(self.cgroup_path):
                warnings.warn(
                    f"could not remove memory cgroup {self.cgroup_path} (processes still exiting?); "
                    "the next run removes it once this process has exited",
                    RuntimeWarning, stacklevel=2,
                )

    # -- worker side -----------------------------------------------------------------------------

    def preexec(self) -> None:
        """``preexec_fn`` for Popen: runs in the child between fork and exec.

        cgroup: the child joins the limited group (writing "0" to cgroup.procs moves the writer), so
        it and everything it starts are charged from the first instruction of the new program;
        rlimit: sets RLIMIT_AS. Kept minimal (no allocation beyond the call itself): the child of a
        multi-threaded parent may only do little safely. A failure aborts the Popen (the worker never
        runs unlimited).
        """
        if self._procs_path is not None:
            fd = os.open(self._procs_path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        elif self.mechanism == "rlimit-as" and self.limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (self.limit_bytes, self.limit_bytes))

    def attach(self, proc: subprocess.Popen | int) -> None:
        """Register the worker (a Popen or a pid) started with :meth:`preexec`; starts the watchdog.

        For cgroups it checks that the worker really is in the limited group (when it is still alive).
        """
        self._proc = proc if isinstance(proc, subprocess.Popen) else None
        self._pid = proc.pid if isinstance(proc, subprocess.Popen) else int(proc)
        if self.cgroup_path is not None:
            name = os.path.basename(self.cgroup_path)
            try:
                membership = _read(f"/proc/{self._pid}/cgroup")
            except OSError:
                membership = None  # already gone: nothing to check
            if membership is not None and name not in membership and self._proc_running():
                raise MemoryLimitUnavailable(
                    f"worker {self._pid} is not in the limited cgroup {self.cgroup_path}; "
                    "was it started with preexec_fn=guard.preexec?"
                )
        if (self.mechanism == "watchdog" or self.resident_watchdog) and self.limit_bytes is not None:
            self._watchdog = _Watchdog(self._pid, self.limit_bytes, self.watchdog_interval_s)
            self._watchdog.start()

    def _proc_running(self) -> bool:
        stat = _proc_stat(self._pid) if self._pid else None
        if stat is None:
            return False
        try:
            state = _read(f"/proc/{self._pid}/stat").rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")

    # -- results ---------------------------------------------------------------------------------

    def _counters(self) -> dict[str, int]:
        """The cgroup's OOM kills, limit hits and peak usage (bytes) right now; empty when unknown."""
        if self._final is not None:  # the group is gone: its last counters
            return self._final
        path, counters = self.cgroup_path, {}
        if path is None:
            return counters

        def keyed(name: str) -> dict[str, int]:
            try:
                return {k: int(v) for k, v in (line.split() for line in _read(os.path.join(path, name)).splitlines())}
            except (OSError, ValueError):
                return {}

        def single(name: str) -> int | None:
            try:
                return int(_read(os.path.join(path, name)))
            except (OSError, ValueError):
                return None

        if self.mechanism == "cgroup-v1":
            oom = keyed("memory.oom_control")
            if "oom_kill" in oom:  # Linux >= 4.13
                counters["oom_kill"] = oom["oom_kill"]
            fails = [single(n) for n in ("memory.failcnt", "memory.memsw.failcnt")]
            counters["failcnt"] = sum(f for f in fails if f is not None)
            peak = single("memory.max_usage_in_bytes")
        else:
            events = keyed("memory.events")
            if "oom_kill" in events:
                counters["oom_kill"] = events["oom_kill"]
            counters["failcnt"] = events.get("max", 0) + events.get("oom", 0)
            peak = single("memory.peak")  # Linux >= 5.19
        if peak is not None:
            counters["peak"] = peak
        return counters

    def oom_killed(self, stderr: str = "") -> bool:
        """True when the limit (not a timeout, a crash or another signal) ended the worker or a descendant.

        cgroup: the kernel's OOM kill counter of the group (where the kernel has none: the worker died
        of SIGKILL after the group hit its limit). A descendant (a compile worker) may be the one the
        kernel kills, so this can be True while the worker itself exited with an error of its own:
        classify such a failure ``oom``. watchdog: it killed the tree. rlimit-as: nothing is killed, an
        allocation or a library mapping fails; True when the worker exited non-zero and ``stderr`` (its
        tail) shows such a failure; "libX.so: failed to map segment" would otherwise read as an
        environment error although the address-space limit caused it.
        """
        if self._watchdog is not None and self._watchdog.killed_at_bytes is not None:
            return True  # the resident watchdog (the mechanism, or beside a kernel mechanism) killed the tree
        if self.mechanism == "rlimit-as":
            returncode = self._proc.poll() if self._proc is not None else None
            return returncode not in (None, 0) and bool(_ALLOCATION_FAILED.search(stderr or ""))
        if self.mechanism in ("cgroup-v1", "cgroup-v2"):
            counters = self._counters()
            if "oom_kill" in counters:
                return counters["oom_kill"] > 0
            returncode = self._proc.poll() if self._proc is not None else None
            return returncode == -signal.SIGKILL and counters.get("failcnt", 0) > 0
        if self.mechanism == "watchdog" and self._watchdog is not None:
            return self._watchdog.killed_at_bytes is not None
        return False

    @property
    def peak_mb(self) -> float | None:
        """The group's peak memory where the mechanism knows it (cgroup peak usage, page cache included;
        the watchdog's largest RSS sample), else None."""
        if self.mechanism in ("cgroup-v1", "cgroup-v2"):
            peak = self._counters().get("peak")
            return None if peak is None else peak / _MB
        if self.mechanism == "watchdog" and self._watchdog is not None:
            return self._watchdog.peak_bytes / _MB
        return None

    @property
    def accounting(self) -> str:
        """What counted against the limit: ``rss+file`` (the worker tree's resident set, file-backed pages
        included), ``cgroup-charge`` (pages charged to the group), ``address-space`` or ``none``."""
        if self.mechanism == "none":
            return "none"
        if self.mechanism == "watchdog" or self.resident_watchdog:
            return "rss+file"
        return "address-space" if self.mechanism == "rlimit-as" else "cgroup-charge"

    def decided_by(self, stderr: str = "") -> str | None:
        """Which mechanism ended the worker at the limit (``watchdog`` for the resident watchdog, else the
        kernel mechanism's name), or None when the limit did not end it."""
        if self._watchdog is not None and self._watchdog.killed_at_bytes is not None:
            return "watchdog"
        return self.mechanism if self.oom_killed(stderr) else None

    @property
    def resident_peak_mb(self) -> float | None:
        """The largest resident set of the worker tree the watchdog sampled (file-backed pages included):
        what the device held, runtime included; None without a watchdog."""
        return None if self._watchdog is None else self._watchdog.peak_bytes / _MB

    @property
    def killed_at_mb(self) -> float | None:
        """The watchdog's sample that exceeded the limit (MB), else None."""
        if self._watchdog is not None and self._watchdog.killed_at_bytes is not None:
            return self._watchdog.killed_at_bytes / _MB
        return None

    def describe(self) -> str:
        """One line saying what enforces the limit, e.g. ``cgroup-v1 memory.limit_in_bytes=1024 MB (swap included)``."""
        if self.mechanism == "none":
            if self.limit_mb is not None:
                return f"none (the {self.limit_mb:g} MB limit is turned off: {MECHANISM_ENV}={self.request})"
            return "none (no memory limit)"
        mb = f"{self.limit_mb:g} MB"
        if self.mechanism == "cgroup-v1":
            swap = ("swap included" if "memory.memsw.limit_in_bytes" in self._settings
                    else "swap not limited: no memory.memsw.limit_in_bytes")
            return f"cgroup-v1 memory.limit_in_bytes={mb} ({swap})" + self._beside()
        if self.mechanism == "cgroup-v2":
            extra = [f"{k}={v}" for k, v in self._settings.items() if k != "memory.max"]
            return f"cgroup-v2 memory.max={mb}" + (f" ({', '.join(extra)})" if extra else "") + self._beside()
        every = f"{self.watchdog_interval_s * 1000:g} ms"
        if self.mechanism == "watchdog":
            return (f"watchdog RSS (file-backed pages included) of the worker and its descendants <= {mb}, "
                    f"sampled every {every}")
        return f"rlimit-as RLIMIT_AS={mb} per process (address space, last resort)" + self._beside()

    def _beside(self) -> str:
        if not self.resident_watchdog:
            return ""
        return (f" + resident watchdog: RSS (file-backed pages included) of the worker tree <= {self.limit_mb:g} MB, "
                f"sampled every {self.watchdog_interval_s * 1000:g} ms")

    def info(self) -> dict[str, Any]:
        """JSON-safe provenance to store with a measurement."""
        peak = self.peak_mb
        return {
            "memory_limit_mb": self.limit_mb,
            "memory_limit_mechanism": self.mechanism,
            "memory_limit": self.describe(),
            "memory_limit_oom_killed": self.oom_killed(),
            "memory_limit_decided_by": self.decided_by(),
            "memory_accounting": self.accounting,
            "memory_group_peak_mb": None if peak is None else round(peak, 1),
            "memory_device_peak_mb": None if self.resident_peak_mb is None else round(self.resident_peak_mb, 1),
        }


def memory_limit_support(probe_mb: float = 64.0) -> dict[str, Any]:
    """Which mechanisms work on this machine and why the others do not (for ``deploybench doctor``).

    Cgroups are probed for real (a limited child is created and removed). Returns
    ``{"selected": <what auto picks>, "requested": <effective request>, "mechanisms": {name:
    {"available": bool, "detail": str}}}``.
    """
    limit = int(probe_mb * _MB)
    mechanisms: dict[str, dict[str, Any]] = {}
    for version, name in ((2, "cgroup-v2"), (1, "cgroup-v1")):
        home, reason, path, _ = _probe_cgroup(version, limit)
        if path is not None:
            _empty_and_remove(path)
            mechanisms[name] = {"available": True, "detail": f"limited children of {home.path}"}
        else:
            mechanisms[name] = {"available": False, "detail": reason}
    ok, detail = _watchdog_support()
    mechanisms["watchdog"] = {"available": ok, "detail": detail}
    has_rlimit = resource is not None and hasattr(resource, "RLIMIT_AS")
    mechanisms["rlimit-as"] = {
        "available": has_rlimit,
        "detail": "address-space limit per process (breaks libraries reserving large virtual ranges)"
        if has_rlimit else "RLIMIT_AS is not available on this platform",
    }
    try:
        request = _resolve_request(None)
    except ValueError as exc:
        request = f"invalid: {exc}"
    order = MECHANISM_CHOICES.get(request, MECHANISMS)
    selected = next((m for m in order if mechanisms[m]["available"]), "none")
    return {"selected": selected, "requested": request, "mechanisms": mechanisms}
