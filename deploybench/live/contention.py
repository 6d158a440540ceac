"""How much CPU other work used while we measured: the contention guard's reading.

Latency measured beside another busy process measures that process too: on a 2-core machine a
compile job or a test suite next to the worker inflated p95 by 2-77x. A quiet check before the
measurement does not help when the other work starts during it, so the guard accounts for the
measurement window itself: the machine's busy CPU time (``/proc/stat``: user, nice, system, irq,
softirq, steal) minus the CPU time of the measuring process (all its threads). The difference, divided
by the window, is how many cores other work kept busy on average (``other_cores``).

A window whose ``other_cores`` exceeds the threshold (default :data:`DEFAULT_MAX_OTHER_CORES`) is
*contaminated*: the profiler never decides an early stop on it, redoes the measurement (bounded
retries) and, when every retry is disturbed, marks the result ``contaminated`` instead of presenting it
as clean. Where ``/proc/stat`` does not exist the reading is ``None`` (unknown, reported as such).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

__all__ = ["CpuWindow", "ContentionReading", "DEFAULT_MAX_OTHER_CORES", "MAX_OTHER_CORES_ENV",
           "max_other_cores", "system_busy_seconds", "wait_for_quiet"]

#: other work may keep at most this many cores busy on average during a clean measurement (0.15 of
#: a core: an idle Linux machine shows 0.00-0.05; a single busy process shows ~1.0)
DEFAULT_MAX_OTHER_CORES = 0.15
MAX_OTHER_CORES_ENV = "DEPLOYBENCH_MAX_OTHER_CORES"
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def max_other_cores() -> float:
    """The contention threshold in effect (``$DEPLOYBENCH_MAX_OTHER_CORES`` or the default)."""
    raw = os.environ.get(MAX_OTHER_CORES_ENV)
    try:
        return float(raw) if raw else DEFAULT_MAX_OTHER_CORES
    except ValueError:
        return DEFAULT_MAX_OTHER_CORES


def system_busy_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot (all CPUs), or None without ``/proc/stat``."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice: guest time is already in user
    busy = sum(values[i] for i in (0, 1, 2, 5, 6, 7) if i < len(values))
    return busy / _TICKS


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


@dataclass(frozen=True)
class ContentionReading:
    """CPU use during one window: the machine's busy seconds, ours, and the rest (other work)."""

    window_s: float
    system_busy_s: float
    own_cpu_s: float
    other_cores: float
    threshold: float

    @property
    def contaminated(self) -> bool:
        return self.other_cores > self.threshold

    def to_dict(self) -> dict:
        d = asdict(self)
        d["contaminated"] = self.contaminated
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


class CpuWindow:
    """Start a window with ``CpuWindow()``; ``reading()`` gives the contention so far (call it as often
    as needed: the early-stop check reads it before every decision)."""

    def __init__(self, threshold: float | None = None) -> None:
        self.threshold = max_other_cores() if threshold is None else float(threshold)
        self._t0 = time.perf_counter()
        self._busy0 = system_busy_seconds()
        self._own0 = _own_cpu_seconds()

    def reading(self) -> ContentionReading | None:
        busy = system_busy_seconds()
        if busy is None or self._busy0 is None:
            return None
        window = max(time.perf_counter() - self._t0, 1e-6)
        busy_s = max(0.0, busy - self._busy0)
        own_s = max(0.0, _own_cpu_seconds() - self._own0)
        # /proc/stat ticks at 1/CLK_TCK: allow one tick per CPU of rounding before calling it other work
        slack = (os.cpu_count() or 1) / _TICKS
        other = max(0.0, busy_s - own_s - slack)
        return ContentionReading(window_s=window, system_busy_s=busy_s, own_cpu_s=own_s,
                                 other_cores=other / window, threshold=self.threshold)


def wait_for_quiet(max_cores: float | None = None, max_wait_s: float = 600.0, sample_s: float = 1.0) -> float | None:
    """Wait until the machine's busy cores (sampled over ``sample_s``) drop to ``max_cores`` or below,
    at most ``max_wait_s``; returns the last sample (None where it cannot be read)."""
    limit = max_other_cores() if max_cores is None else max_cores
    deadline = time.monotonic() + max_wait_s
    while True:
        b0, t0 = system_busy_seconds(), time.perf_counter()
        time.sleep(sample_s)
        b1 = system_busy_seconds()
        if b0 is None or b1 is None:
            return None
        cores = (b1 - b0) / max(time.perf_counter() - t0, 1e-6)
        if cores <= limit or time.monotonic() >= deadline:
            return round(cores, 3)
