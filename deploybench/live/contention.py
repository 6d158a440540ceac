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

**Bursts.** An average over the window misses short bursts: two processes each busy 0.15 s every 2.5 s
average 0.12 cores, under the threshold, yet lifted an EfficientNet-B0 p95 from 15 to 22.9 ms.
:class:`BurstGuard` decides on finer windows: after each timed iteration (at most every 10 ms) it
snapshots the machine's busy and steal time (``/proc/stat``), the process's CPU time and the time its
threads spent runnable but waiting for a CPU (``/proc/self/task/*/schedstat``: run delay, nanoseconds).
An iteration is a *latency outlier* against the run's own distribution (above the larger of 1.15x the
median and the median plus 4 MADs); an outlier is *disturbed* when, over its span (±50 ms), the
process's run delay *above its own rate over the whole run*, while other work was measurable (0.05
cores or more), explains at least a quarter of its excess over the median, other work kept at least half
a core busy, or the hypervisor stole at least a tenth of a core. (A configuration that uses every core
waits for a CPU all the time, its threads for each other and for the operating system's own brief
work: a sub-millisecond model on 2 threads of 2 cores waited more than a quarter of every outlier's
excess on a quiet machine, and judged on the raw run delay every one of its measurements read as
disturbed; preemptions too brief for the busy-time accounting are noise from below it, kept in the
measurement like the rest of that noise.) A measurement is disturbed
by bursts when an iteration that decides its tail (at or above the 95th percentile) is a disturbed
outlier; the profiler then redoes it like an averaged disturbance.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

__all__ = ["BurstGuard", "CpuWindow", "ContentionReading", "DEFAULT_MAX_OTHER_CORES", "MAX_OTHER_CORES_ENV",
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


# -- bursts ---------------------------------------------------------------------------------------------------
#: an outlier's excess over the median is explained by waiting for a CPU when the run delay is this share of it
_WAIT_SHARE = 0.25
#: other work (cores) or steal (cores) over an outlier's span that marks it disturbed
_BURST_OTHER_CORES = 0.5
_BURST_STEAL_CORES = 0.1
_SPAN_PAD_S = 0.05
_SNAPSHOT_EVERY_S = 0.01
#: waiting for a CPU (around an outlier, or sustained over the window) counts as a disturbance only while
#: other work was measurable: without any, the threads waited for each other (a configuration using every
#: core), which is the configuration's own behaviour and would be the same on every retry
_WAIT_NEEDS_OTHER_CORES = 0.05


def _proc_stat_busy_steal() -> tuple[float, float] | None:
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    busy = sum(values[i] for i in (0, 1, 2, 5, 6, 7) if i < len(values))
    steal = values[7] if len(values) > 7 else 0
    return busy / _TICKS, steal / _TICKS


def _own_run_delay_s() -> float | None:
    """Seconds the process's threads spent runnable but waiting for a CPU (sum over threads), or None."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    total, seen = 0, False
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/schedstat", encoding="ascii") as fh:
                total += int(fh.read().split()[1])
                seen = True
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended between the listing and the read
    return total / 1e9 if seen else None


class BurstGuard:
    """Per-iteration disturbance detection (see the module docstring). Call :meth:`iteration` right after
    each timed iteration with its latency; :meth:`verdict` judges the run, :meth:`to_dict` reports it."""

    def __init__(self, threshold_cores: float = _BURST_OTHER_CORES, enabled: bool = True) -> None:
        self.threshold_cores = float(threshold_cores)
        #: off when the averaged guard's threshold is at or above the machine's cores (the guard turned off)
        self.enabled = bool(enabled)
        self.available = _proc_stat_busy_steal() is not None
        self._snaps: list[tuple[float, float, float, float, float | None]] = []  # t, busy, steal, own cpu, wait
        self._iters: list[tuple[float, float]] = []  # (start, end) perf_counter of each timed iteration
        self.latencies_ms: list[float] = []
        self._snapshot()

    def _snapshot(self) -> None:
        stat = _proc_stat_busy_steal()
        if stat is None:
            return
        self._snaps.append((time.perf_counter(), stat[0], stat[1], _own_cpu_seconds(), _own_run_delay_s()))

    def iteration(self, latency_ms: float) -> None:
        end = time.perf_counter()
        self._iters.append((end - latency_ms / 1e3, end))
        self.latencies_ms.append(float(latency_ms))
        if self._snaps and end - self._snaps[-1][0] >= _SNAPSHOT_EVERY_S:
            self._snapshot()

    def _span(self, start: float, end: float) -> dict | None:
        """Other work, steal and own run delay over [start - pad, end + pad] from the nearest snapshots."""
        if len(self._snaps) < 2:
            return None
        lo = max((s for s in self._snaps if s[0] <= start - _SPAN_PAD_S), default=self._snaps[0], key=lambda s: s[0])
        hi = min((s for s in self._snaps if s[0] >= end + _SPAN_PAD_S), default=self._snaps[-1], key=lambda s: s[0])
        dt = hi[0] - lo[0]
        if dt <= 0:
            return None
        slack = (os.cpu_count() or 1) / _TICKS
        other = max(0.0, (hi[1] - lo[1]) - (hi[3] - lo[3]) - slack) / dt
        wait = None if hi[4] is None or lo[4] is None else max(0.0, hi[4] - lo[4])
        return {"other_cores": other, "steal_cores": max(0.0, hi[2] - lo[2]) / dt, "wait_s": wait, "dt": dt}

    def verdict(self) -> dict:
        """``{"disturbed": bool, "outliers", "disturbed_outliers", "tail_disturbed", "wait_share", "reason"}``
        for the timed iterations recorded so far. Also disturbed: the process's threads waited for a CPU
        for at least a quarter of the timed window (sustained contention, where every iteration is slow
        alike and none stands out)."""
        self._snapshot()
        latencies_ms, iters = self.latencies_ms, self._iters
        n = len(latencies_ms)
        out: dict = {"disturbed": False, "outliers": 0, "disturbed_outliers": 0, "tail_disturbed": 0,
                     "wait_share": None, "reason": None, "snapshots": len(self._snaps)}
        if n < 3 or not self.available or not self.enabled:
            return out
        whole = self._span(iters[0][0] + _SPAN_PAD_S, iters[-1][1] - _SPAN_PAD_S)
        window_s = max(iters[-1][1] - iters[0][0], 1e-6)
        # the run's own waiting rate: threads of a configuration that uses every core wait for each other
        # (and for the interpreter's own thread) all the time; only waiting *above* that rate is a burst
        baseline_wait_rate = 0.0
        if whole is not None and whole["wait_s"] is not None:
            out["wait_share"] = round(min(1.0, whole["wait_s"] / window_s), 4)
            baseline_wait_rate = whole["wait_s"] / max(whole["dt"], 1e-6)
        arr = sorted(latencies_ms)
        median = arr[n // 2] if n % 2 else (arr[n // 2 - 1] + arr[n // 2]) / 2
        mad = sorted(abs(v - median) for v in latencies_ms)[n // 2]
        limit = max(1.15 * median, median + 4.0 * mad)
        tail = arr[min(n - 1, int(0.95 * (n - 1)))]  # iterations at or above this decide p95 and p99
        why: dict[str, int] = {}
        for lat, (start, end) in zip(latencies_ms, iters):
            if lat <= limit:
                continue
            out["outliers"] += 1
            span = self._span(start, end)
            if span is None:
                continue
            excess_s = (lat - median) / 1e3
            reasons = []
            extra_wait_s = None if span["wait_s"] is None else span["wait_s"] - baseline_wait_rate * span["dt"]
            if (extra_wait_s is not None and extra_wait_s >= _WAIT_SHARE * excess_s
                    and span["other_cores"] >= _WAIT_NEEDS_OTHER_CORES):
                reasons.append("waited for a CPU")
            if span["other_cores"] >= self.threshold_cores:
                reasons.append("other work")
            if span["steal_cores"] >= _BURST_STEAL_CORES:
                reasons.append("steal")
            if reasons:
                out["disturbed_outliers"] += 1
                out["tail_disturbed"] += lat >= tail
                for r in reasons:
                    why[r] = why.get(r, 0) + 1
        if out["tail_disturbed"]:
            out["disturbed"] = True
            out["reason"] = (f"burst: {out['tail_disturbed']} of the slowest iterations (>= p95) coincided with "
                             + ", ".join(f"{k} ({v})" for k, v in sorted(why.items())))
        elif (out["wait_share"] is not None and out["wait_share"] >= _WAIT_SHARE and whole is not None
              and whole["other_cores"] >= _WAIT_NEEDS_OTHER_CORES):
            out["disturbed"] = True
            out["reason"] = f"waited for a CPU {100 * out['wait_share']:.0f} % of the timed window"
        return out
