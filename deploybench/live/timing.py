"""Warm-up, then timed iterations, with an early stop decided only on timed iterations.

Deciding an early stop on warm-up iterations (as the TBA paper's published profiler did, on the third
one) lets cold-start overheads (lazy kernel loading, allocator growth, kernel selection) abort
configurations that are feasible. Here warm-up iterations are never judged: the early stop compares the median
of the timed post-warm-up iterations so far (from ``early_stop_min_iters`` on) with the threshold, and
a median above it implies that every upper percentile (p95, p99) is above it too.

Both phases are bounded in iterations and in time, so a slow configuration (ViT-B/16 at batch 32 on
a CPU) costs a few iterations rather than minutes. At least 100 timed iterations are taken whenever the
configuration is fast enough for a p99 cap to matter (a p99 from a few dozen iterations is close to the
sample's maximum), and every iteration's latency is kept, so a replay can apply the same early-stop
rule (:func:`early_stop_index`) to the recorded sequence and stop exactly where a live run would have.

The early stop is never decided on a window disturbed by other work (:mod:`deploybench.live.contention`):
when the rule fires while the contention reading is above its threshold, the run ends as *disturbed*
and the profiler measures again.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

__all__ = ["TimingPlan", "TimingResult", "run_timed", "latency_metrics", "early_stop_index"]


def early_stop_index(latencies_ms: Sequence[float], threshold_ms: float | None, min_iters: int) -> int | None:
    """The number of timed iterations after which the early-stop rule fires, or None if it never does.

    The rule, shared by live runs and replays: from ``min_iters`` timed iterations on, stop as soon as
    the median of the timed iterations so far exceeds ``threshold_ms``."""
    if threshold_ms is None:
        return None
    floor = max(1, int(min_iters))
    for n in range(floor, len(latencies_ms) + 1):
        if statistics.median(latencies_ms[:n]) > threshold_ms:
            return n
    return None


@dataclass(frozen=True)
class TimingPlan:
    warmup_min_iters: int = 3
    warmup_max_iters: int = 20
    warmup_time_s: float = 1.0
    #: stop warm-up after this many seconds even below ``warmup_min_iters`` (at least one iteration)
    warmup_max_time_s: float = 10.0
    min_iters: int = 100
    max_iters: int = 300
    measure_time_s: float = 2.0
    #: stop timed iterations after this many seconds once ``early_stop_min_iters`` are done (slow configs)
    measure_max_time_s: float = 15.0
    early_stop_ms: float | None = None
    early_stop_min_iters: int = 3


@dataclass
class TimingResult:
    latencies_ms: list[float] = field(default_factory=list)
    n_warmup: int = 0
    warmup_s: float = 0.0
    measure_s: float = 0.0
    early_stopped: bool = False
    early_stop_estimate_ms: float | None = None
    #: the rule fired on a window disturbed by other work: not a verdict, measure again
    disturbed: bool = False


def run_timed(step: Callable[[], None], timed_call: Callable[[Callable[[], None]], float], plan: TimingPlan,
              on_timed: Callable[[int], None] | None = None,
              disturbed: Callable[[], bool] | None = None,
              on_latency: Callable[[float], None] | None = None) -> TimingResult:
    """Run ``step`` for warm-up, then time it with ``timed_call(step) -> milliseconds``.

    ``on_timed(i)`` is called after each timed iteration (GPU memory sampling), ``on_latency(ms)`` with
    its latency (the burst guard); ``disturbed()`` is asked before an early stop is decided (the
    contention guard) and vetoes it.
    """
    res = TimingResult()
    t0 = time.perf_counter()
    while True:
        timed_call(step)  # same synchronisation as the timed loop, result ignored
        res.n_warmup += 1
        elapsed = time.perf_counter() - t0
        if res.n_warmup >= plan.warmup_max_iters:
            break
        if res.n_warmup >= plan.warmup_min_iters and elapsed >= plan.warmup_time_s:
            break
        if elapsed >= plan.warmup_max_time_s:
            break
    res.warmup_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    lat = res.latencies_ms
    floor = max(1, plan.early_stop_min_iters)
    while True:
        lat.append(float(timed_call(step)))
        n = len(lat)
        if on_latency is not None:
            on_latency(lat[-1])
        if on_timed is not None:
            on_timed(n)
        if plan.early_stop_ms is not None and n >= floor:
            median = statistics.median(lat)
            if median > plan.early_stop_ms:
                if disturbed is not None and disturbed():
                    res.disturbed = True
                    break
                res.early_stopped = True
                res.early_stop_estimate_ms = median
                break
        elapsed = time.perf_counter() - t1
        if n >= plan.max_iters:
            break
        if n >= plan.min_iters and elapsed >= plan.measure_time_s:
            break
        if n >= floor and elapsed >= plan.measure_max_time_s:
            break
    res.measure_s = time.perf_counter() - t1
    return res


def latency_metrics(latencies_ms: Sequence[float], batch_size: int) -> dict[str, float]:
    """p50/p95/p99/mean per batch and per sample, and throughput in samples per second."""
    arr = np.asarray(latencies_ms, dtype=float)
    p50, p95, p99 = (float(v) for v in np.percentile(arr, [50, 95, 99]))
    mean = float(arr.mean())
    out = {"latency_p50_ms": p50, "latency_p95_ms": p95, "latency_p99_ms": p99, "latency_mean_ms": mean}
    for k in list(out):
        out[k.replace("_ms", "_ms_per_sample")] = out[k] / batch_size
    out["latency_min_ms"] = float(arr.min())
    out["throughput_sps"] = batch_size * 1000.0 / mean if mean > 0 else 0.0
    return out
