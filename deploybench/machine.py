"""Machine and library facts for the run header and manifest (extended by plugins' hook)."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import sys
from typing import Any

__all__ = ["machine_info", "library_versions"]

_LIBRARIES = ("deploybench", "numpy", "scipy", "optuna", "pluggy", "scikit-learn", "torch", "torchvision",
              "onnxruntime", "onnxruntime-gpu", "ray")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries results depend on (absent ones omitted)."""
    out = {}
    for name in _LIBRARIES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(hook: Any | None = None) -> dict[str, Any]:
    """Platform, Python, CPU, cores and memory; plugins add GPU facts through
    ``deploybench_machine_info``."""
    try:
        import psutil

        memory_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:  # pragma: no cover - psutil is a dependency
        memory_gb = None
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gb": memory_gb,
        "hostname": platform.node(),
    }
    if hook is not None:
        hook.deploybench_machine_info(info=info)
    return info
