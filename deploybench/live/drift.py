"""The machine's speed level: a short reference workload measured with every recording pass.

The recording VM's speed drifted by up to 30 % between sessions while the contention guard read a quiet
machine, so a table's repeats mix days. :func:`reference_workload` times a fixed workload in a fresh
process (one thread, like the measurements): float32 matrix products (the arithmetic the deployments
spend their time in) and a pure-Python loop (interpreter overhead). The recorder stores its result with
every measurement of a pass (``speed_reference``); ``deploybench table info`` shows the level per pass
and ``deploybench table drift`` compares today's machine with the table's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Iterable, Mapping

__all__ = ["reference_workload", "REFERENCE_VERSION", "speed_level", "reference_median"]

#: bump when the workload changes (references of different versions are not comparable)
REFERENCE_VERSION = 1

_SCRIPT = r"""
import json, sys, time
import numpy as np
seconds = float(sys.argv[1])
a = np.random.default_rng(0).standard_normal((384, 384)).astype(np.float32)
b = a.T.copy()
for _ in range(5):
    a @ b
gemm, py = [], []
end = time.perf_counter() + seconds / 2
while time.perf_counter() < end or len(gemm) < 20:
    t = time.perf_counter(); a @ b; gemm.append((time.perf_counter() - t) * 1e3)
end = time.perf_counter() + seconds / 2
while time.perf_counter() < end or len(py) < 20:
    t = time.perf_counter(); sum(i * i for i in range(20000)); py.append((time.perf_counter() - t) * 1e3)
gemm.sort(); py.sort()
print(json.dumps({"gemm_ms": gemm[len(gemm) // 2], "python_ms": py[len(py) // 2], "n": [len(gemm), len(py)]}))
"""


def reference_workload(seconds: float = 1.0, timeout_s: float = 60.0) -> dict[str, Any]:
    """Time the reference workload in a fresh one-thread process; returns ``{"version", "gemm_ms",
    "python_ms", "at", "other_cores"}`` (medians per operation; ``other_cores``: the contention guard's
    reading over the run) or ``{"version", "error"}`` when it could not run."""
    from .contention import CpuWindow

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    window = CpuWindow()
    started = time.time()
    try:
        done = subprocess.run([sys.executable, "-c", _SCRIPT, str(float(seconds))], capture_output=True, text=True,
                              timeout=timeout_s, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"version": REFERENCE_VERSION, "error": f"{type(exc).__name__}: {exc}"}
    reading = window.reading()
    if done.returncode != 0:
        return {"version": REFERENCE_VERSION, "error": done.stderr.strip()[-300:] or f"exit {done.returncode}"}
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"version": REFERENCE_VERSION, "error": f"unreadable output: {done.stdout[-200:]!r}"}
    # the reading includes the child's CPU (it is not this process): subtract one busy core for it
    other = None if reading is None else max(0.0, reading.other_cores - 1.0)
    return {"version": REFERENCE_VERSION, "gemm_ms": round(float(data["gemm_ms"]), 4),
            "python_ms": round(float(data["python_ms"]), 4), "at": round(started),
            "other_cores": None if other is None else round(other, 3)}


def _usable(ref: Any) -> bool:
    return (isinstance(ref, Mapping) and ref.get("version") == REFERENCE_VERSION
            and isinstance(ref.get("gemm_ms"), (int, float)) and isinstance(ref.get("python_ms"), (int, float))
            and ref["gemm_ms"] > 0 and ref["python_ms"] > 0)


def reference_median(refs: Iterable[Any]) -> dict[str, float] | None:
    """The median reference timings of ``refs`` (usable ones of the current version), or None."""
    good = [r for r in refs if _usable(r)]
    if not good:
        return None
    return {"gemm_ms": statistics.median(r["gemm_ms"] for r in good),
            "python_ms": statistics.median(r["python_ms"] for r in good)}


def speed_level(ref: Any, base: Mapping[str, float] | None) -> float | None:
    """How slow the machine was at ``ref`` relative to ``base`` (1.0: same speed; 1.2: 20 % slower): the
    geometric mean of the two timings' ratios. None when either is unusable."""
    if base is None or not _usable(ref):
        return None
    return round(((ref["gemm_ms"] / base["gemm_ms"]) * (ref["python_ms"] / base["python_ms"])) ** 0.5, 4)
