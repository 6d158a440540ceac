"""Warm-up, then timed iterations, with an early stop decided only on timed iterations.

The reference decided its early stop on the third *warm-up* iteration, so cold-start overheads
(lazy kernel loading, allocator growth, kernel selection) aborted configurations that were feasible
(seed-code §7, §16 B7). Here warm-up iterations are never judged: the early stop compares the median
of the timed post-warm-up iterations so far (from ``early_stop_min_iters`` on) with the threshold, and
a median above it implies that every upper percentile (p95, p99) is above it too.

Both phases are bounded in iterations and in time, so a slow configuration (ViT-B/16 at batch 32 on
a CPU) costs a few iterations rather than minutes.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

__all__ = ["TimingPlan", "TimingResult", "run_timed", "latency_metrics"]


@dataclass(frozen=True)
class TimingPlan:
    warmup_min_iters: int = 3
    warmup_max_iters: int = 20
    warmup_time_s: float = 2.0
    #: stop warm-up after this many seconds even below ``warmup_min_iters`` (at least one iteration)
    warmup_max_time_s: float = 10.0
    min_iters: int = 10
    max_iters: int = 200
    measure_time_s: float = 3.0
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


def run_timed(step: Callable[[], None], timed_call: Callable[[Callable[[], None]], float], plan: TimingPlan,
              on_timed: Callable[[int], None] | None = None) -> TimingResult:
    """Run ``step`` for warm-up, then time it with ``timed_call(step) -> milliseconds``.

    ``on_timed(i)`` is called after each timed iteration (GPU memory sampling).
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
        if on_timed is not None:
            on_timed(n)
        if plan.early_stop_ms is not None and n >= floor:
            median = statistics.median(lat)
            if median > plan.early_stop_ms:
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
