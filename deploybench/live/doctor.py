"""Pre-flight check: which backend × precision paths work on this machine, and why the others fail.

Each path is probed with a tiny CNN in its own fresh worker (the same code path as a real trial), so
a missing compiler, Triton, execution provider or driver shows up here, labelled ``environment``,
before any trial is charged for it. The probe model is tiny and not quantizable, so its PyTorch int8
rows say ``unsupported`` with the reason (real models: see the recorded tables). The memory-limit
mechanisms available for device profiles are reported too (:func:`memory_limit_report`). Reports are cached for a day per machine and
library versions, so a live session header can include the table without paying for it each time.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from importlib import metadata
from typing import Any, Callable, Sequence

from tabulate import tabulate

from .profiler import ProfileRequest, profile

__all__ = ["doctor_report", "format_report", "probe_devices", "weights_report", "memory_limit_report", "probe_path"]


def memory_limit_report() -> str:
    """One line per memory-limit mechanism: available here or why not, and which one device profiles use."""
    from .limits import memory_limit_support

    from .limits import _resolve_accounting

    support = memory_limit_support()
    try:
        accounting = _resolve_accounting(None)
    except ValueError as exc:
        accounting = f"invalid ({exc})"
    beside = (" + a resident watchdog counting file-backed pages" if accounting == "rss+file"
              and support.get("selected") not in ("watchdog", "none") else "")
    lines = [f"device memory limit: {support.get('selected')}{beside} (used for device profiles such as cpu, edge "
             f"and small); accounting {accounting}"]
    for name, item in (support.get("mechanisms") or {}).items():
        lines.append(f"  {name}: {'available' if item.get('available') else 'unavailable'} - {item.get('detail', '')}")
    return "\n".join(lines)

from ..device_tables.grid import KNOWN_BACKENDS as _BACKENDS
from ..device_tables.grid import PRECISIONS as _PRECISIONS
_CACHE_TTL_S = 24 * 3600


def probe_devices() -> list[str]:
    """``cpu``, plus ``cuda`` when torch sees a GPU (checked in a subprocess-free, import-only way)."""
    devices = ["cpu"]
    try:
        import torch

        if torch.cuda.is_available():
            devices.append("cuda")
    except Exception:  # noqa: BLE001 - no torch: every probe will say so
        pass
    return devices


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "machine": platform.node()}
    for dist in ("torch", "torchvision", "onnxruntime-gpu", "onnxruntime", "onnx", "triton", "openvino", "nncf"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "-"
    return out


def _probe(device: str, backend: str, precision: str, time_limit_s: float) -> dict[str, Any]:
    config: dict[str, Any] = {"model": "tiny_cnn", "backend": backend, "precision": precision, "batch_size": 1}
    if backend != "torch_compile":
        config["threads"] = 1
    req = ProfileRequest(config=config, device=device, time_limit_s=time_limit_s, weights="random",
                         warmup_min_iters=1, warmup_max_iters=1, min_iters=2, max_iters=2, measure_time_s=0.0,
                         probe=True)
    m = profile(req)
    works = m.status in ("ok", "early_stopped")
    reason = ""
    if m.error:
        first = [ln for ln in m.error["message"].splitlines() if ln.strip()]
        reason = first[0][:160] if first else ""
    executed = m.metrics.get("device_executed", "")
    if works and device == "cuda" and executed != "cuda":
        reason = f"runs on {executed} (providers: {m.metrics.get('providers')})"
    return {"device": device, "backend": backend, "precision": precision, "works": works,
            "kind": "" if works else (m.error or {}).get("kind", "runtime"), "reason": reason,
            "device_executed": executed, "seconds": round(m.cost_s, 1)}


def probe_path(device: str, backend: str, precision: str, cache_dir: str | None = None,
               time_limit_s: float = 90.0) -> dict[str, Any]:
    """One doctor row (does ``backend`` at ``precision`` run on ``device`` here?), probed once and cached
    for a day per machine and library versions, like the full report."""
    key = hashlib.sha256(json.dumps({"v": _versions(), "path": [device, backend, precision]},
                                    sort_keys=True).encode()).hexdigest()[:16]
    path = _cache_path(cache_dir, "path-" + key)
    cached = _read_cache(path)
    if cached is not None and "row" in cached:
        return dict(cached["row"], cached=True)
    row = _probe(device, backend, precision, time_limit_s)
    _write_cache(path, {"row": row})
    return row


def _read_cache(path: str) -> dict | None:
    """A cached report younger than a day, or None."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if time.time() - float(data["time"]) < _CACHE_TTL_S else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: str, data: dict) -> None:
    """Write ``data`` with the time, atomically; a cache that cannot be written is no cache."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"time": time.time(), **data}, fh)
        os.replace(tmp, path)
    except OSError:
        pass


def _cache_path(cache_dir: str | None, key: str) -> str:
    from .accuracy import default_cache_dir

    return os.path.join(cache_dir or default_cache_dir(), "doctor", key + ".json")


def doctor_report(quick: bool = False, devices: Sequence[str] | None = None, time_limit_s: float = 90.0,
                  cache_dir: str | None = None, use_cache: bool | None = None,
                  on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """One row per device × backend × precision: works, error kind, reason, seconds.

    ``quick=True`` reuses a cached report of the same machine and library versions younger than a day.
    ``on_row`` is called with each row as its probe finishes (probing takes minutes).
    """
    devices = list(devices or probe_devices())
    use_cache = quick if use_cache is None else use_cache
    key = hashlib.sha256(json.dumps({"v": _versions(), "d": devices}, sort_keys=True).encode()).hexdigest()[:16]
    path = _cache_path(cache_dir, key)
    cached = _read_cache(path) if use_cache else None
    if cached is not None and "rows" in cached:
        return [dict(r, cached=True) for r in cached["rows"]]
    rows = []
    for d in devices:
        for b in _BACKENDS:
            if b == "openvino" and d != "cpu":
                continue  # the openvino backend measures on its CPU plugin
            for p in _PRECISIONS:
                rows.append(_probe(d, b, p, time_limit_s))
                if on_row is not None:
                    on_row(rows[-1])
    _write_cache(path, {"rows": rows})
    return rows


def weights_report() -> list[dict[str, Any]]:
    """Which models have pretrained weights in the local torch hub cache (nothing is downloaded)."""
    from .models import WEIGHTS, cached_weights_path, documented_accuracy

    rows = []
    for model in WEIGHTS:
        try:
            path = cached_weights_path(model)
        except Exception as exc:  # noqa: BLE001 - torchvision missing
            path, err = None, str(exc)
        else:
            err = ""
        rows.append({"model": model, "pretrained_weights": path or "absent (random init)",
                     "documented_top1": documented_accuracy(model) if not err else None, "error": err})
    return rows


def format_report(rows: Sequence[dict[str, Any]]) -> str:
    table = [[r["device"], r["backend"], r["precision"], "works" if r["works"] else "FAILS", r["kind"],
              r["reason"], r["seconds"]] for r in rows]
    text = tabulate(table, headers=["device", "backend", "precision", "status", "kind", "reason", "s"])
    if rows and all(r.get("cached") for r in rows):
        text += "\n(cached report; `deploybench doctor` re-probes)"
    env = [r for r in rows if not r["works"] and r["kind"] == "environment"]
    if env:
        text += (f"\n{len(env)} path(s) fail for environment reasons (a property of this machine, not of the "
                 "configuration): trials on them will crash with kind 'environment'.")
    return text
