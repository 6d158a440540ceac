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

__all__ = ["reference_workload", "REFERENCE_VERSION", "speed_level", "reference_median", "pass_levels",
           "drift_configs", "drift_check"]

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


def speed_level(ref: Any, base: Mapping[str, float] | None, part: str | None = None) -> float | None:
    """How slow the machine was at ``ref`` relative to ``base`` (1.0: same speed; 1.2: 20 % slower): the
    geometric mean of the two timings' ratios, or one timing's ratio (``part``: ``gemm`` or ``python``).
    None when either is unusable."""
    if base is None or not _usable(ref):
        return None
    if part is not None:
        return round(ref[f"{part}_ms"] / base[f"{part}_ms"], 4)
    return round(((ref["gemm_ms"] / base["gemm_ms"]) * (ref["python_ms"] / base["python_ms"])) ** 0.5, 4)


# -- how far today's machine is from a table's ------------------------------------------------------------------
def _line_levels(table: Any, part: str | None = None) -> tuple[dict[str, float] | None, dict[str, list[float | None]]]:
    """The table's median reference and, per configuration key, each repeat's speed level (None where the
    repeat has no usable reference: tables recorded before v3)."""
    refs = [e.get("speed_reference") for extras in table.extras.values() for e in extras]
    base = reference_median(refs)
    levels = {key: [speed_level(e.get("speed_reference"), base, part) for e in extras]
              for key, extras in table.extras.items()}
    return base, levels


def pass_levels(table: Any) -> list[dict]:
    """The speed level of every recording segment (one reference per pass of each run, so a resumed chunk
    has its own): ``[{"pass", "date", "level", "measurements"}]`` in recording order; empty for tables
    without references."""
    base, _ = _line_levels(table)
    groups: dict[tuple, dict] = {}
    for extras in table.extras.values():
        for e in extras:
            ref = e.get("speed_reference")
            level = speed_level(ref, base)
            if level is None:
                continue
            ident = (e.get("pass"), ref.get("at"))
            g = groups.setdefault(ident, {"pass": e.get("pass"), "at": ref.get("at"), "level": level,
                                          "measurements": 0})
            g["measurements"] += 1
    out = sorted(groups.values(), key=lambda g: (g["at"] or 0))
    for g in out:
        g["date"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime(g.pop("at"))) if g.get("at") else None
    return out


def drift_configs(table: Any, count: int) -> list[tuple[dict, str, float]]:
    """Up to ``count`` configurations nearest a scenario's latency cap with ok repeats: ``(config, metric,
    cap)`` (the configurations whose feasibility a drift changes)."""
    import statistics

    from ..tasks.deployment import scenarios

    ranked = []
    for s in scenarios().values():
        for key in table.grid_keys():
            values = [(m.get("metrics") or {}).get(s.latency_metric) for m in table.measurements.get(key) or []
                      if m.get("status") == "ok"]
            values = [v for v in values if v is not None]
            if values:
                ranked.append((abs(statistics.median(values) / s.latency_cap_ms - 1.0), key, s.latency_metric,
                               s.latency_cap_ms))
    chosen, seen = [], set()
    for _, key, metric, cap in sorted(ranked):
        if key not in seen:
            seen.add(key)
            chosen.append((dict(table.configs[key]), metric, cap))
        if len(chosen) >= count:
            break
    return chosen


def _values_and_levels(reps: list, metric: str, levels: list | None) -> list[tuple[Any, float | None]]:
    """(recorded ``metric``, the repeat's speed level) of each ok repeat."""
    return [((m.get("metrics") or {}).get(metric), lvl) for m, lvl in zip(reps, levels or [None] * len(reps))
            if m.get("status") == "ok"]


def drift_check(table: Any, count: int = 5, profile_fn: Any = None, reference_fn: Any = None,
                artefact_cache: str | None = None) -> dict:
    """Re-measure ``count`` configurations near the caps live and compare them with the table.

    For each: the ratio of today's latency to the recorded median (raw), and, where the table stores speed
    references, the same after dividing each recorded repeat by its pass's level and today's measurement
    by today's level (corrected), and by the matrix-product timing's level alone (``ratio_corrected_gemm``:
    the pure-Python loop of the reference is the noisier part and moves unlike inference kernels).
    ``profile_fn``/``reference_fn`` replace the live profiler and the reference workload (tests)."""
    import statistics

    from .devices import device_profiles
    from .profiler import ProfileRequest, profile

    measure = profile_fn or profile
    reference = reference_fn or reference_workload
    prov = table.provenance
    profile_json = prov.get("device_profile") or {}
    name = profile_json.get("name") if isinstance(profile_json, Mapping) else None
    known = device_profiles().get(name or "")
    memory = profile_json.get("memory_mb") if isinstance(profile_json, Mapping) else None
    base, levels = _line_levels(table)
    _, gemm_levels = _line_levels(table, "gemm")
    today_ref = reference()
    today = speed_level(today_ref, base)
    today_gemm = speed_level(today_ref, base, "gemm")
    rows = []
    for config, metric, cap in drift_configs(table, count):
        key = table.space.key(config)
        reps = table.measurements.get(key) or []
        recorded = [v for v, _ in _values_and_levels(reps, metric, None) if v is not None]
        request = ProfileRequest(config=config, device="cpu", device_profile=known.name if known else None,
                                 memory_limit_mb=memory, artefact_cache=artefact_cache)
        m = measure(request)
        data = m.to_dict() if hasattr(m, "to_dict") else dict(m)
        live = (data.get("metrics") or {}).get(metric) if data.get("status") == "ok" else None
        row = {"config": config, "metric": metric, "cap": cap, "recorded_median": statistics.median(recorded),
               "repeats": len(recorded), "live": live, "live_status": data.get("status"),
               "live_contaminated": bool(data.get("contaminated")), "ratio": None, "ratio_corrected": None,
               "ratio_corrected_gemm": None}
        if live is not None:
            row["ratio"] = round(live / row["recorded_median"], 4)
            for field_name, lvls, now in (("ratio_corrected", levels, today),
                                          ("ratio_corrected_gemm", gemm_levels, today_gemm)):
                normed = [v / lvl for v, lvl in _values_and_levels(reps, metric, lvls.get(key)) if v is not None and lvl]
                if now and len(normed) == len(recorded):
                    row[field_name] = round((live / now) / statistics.median(normed), 4)
        rows.append(row)
    return {"table": table.name, "reference_today": today_ref, "table_reference": base, "level_today": today,
            "gemm_level_today": today_gemm, "configurations": rows}
