"""Peak memory of a deployment, defined per device and never silently zero.

CPU: the resident-set high-water mark above the idle worker's baseline taken after imports. On Linux
the kernel's high-water mark (``VmHWM``) is reset at the baseline (``/proc/self/clear_refs``), so the
peak covers model load, preparation, warm-up and timed iterations only. Elsewhere ``ru_maxrss`` is used.

GPU: device memory above the baseline taken after the CUDA context exists, counting every allocator
(PyTorch, ONNX Runtime, cuDNN workspaces): NVML's per-process usage when ``pynvml`` is importable,
else the device-wide ``torch.cuda.mem_get_info`` used bytes; sampled at stage boundaries and during
timed iterations, and never below PyTorch's own reserved peak.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any

__all__ = ["CpuMemory", "GpuMemory"]

_MB = 1024.0 * 1024.0


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _ru_maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / _MB if sys.platform == "darwin" else rss / 1024.0  # bytes on macOS, KiB on Linux


class CpuMemory:
    """Resident-set high-water mark above a baseline."""

    def __init__(self) -> None:
        self.baseline_mb: float | None = None
        self.source = "unavailable"
        self._reset_ok = False

    def set_baseline(self) -> None:
        current = _status_kb("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self._reset_ok = _status_kb("VmHWM") is not None
        except OSError:
            self._reset_ok = False
        if current is not None:
            self.baseline_mb = current / 1024.0
        else:
            try:
                import psutil

                self.baseline_mb = psutil.Process().memory_info().rss / _MB
            except Exception:  # noqa: BLE001 - reported as unavailable below
                self.baseline_mb = None
        self.source = "VmHWM (reset at baseline)" if self._reset_ok else "ru_maxrss"

    def restart_peak(self) -> None:
        """Restart the high-water mark at the current resident set, keeping the baseline (after a
        compilation: what stays resident counts, the compiler's transient peak does not)."""
        if self._reset_ok:
            try:
                with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                    fh.write("5")
            except OSError:
                pass

    def peak_mb(self) -> tuple[float | None, str]:
        """(peak above baseline in MB, how it was measured); None when it cannot be measured."""
        if self.baseline_mb is None:
            return None, "unavailable: no RSS reading on this platform"
        if self._reset_ok:
            hwm = _status_kb("VmHWM")
            if hwm is not None:
                return max(0.0, hwm / 1024.0 - self.baseline_mb), self.source
        try:
            return max(0.0, _ru_maxrss_mb() - self.baseline_mb), "ru_maxrss (process-lifetime peak)"
        except (OSError, ValueError):
            return None, "unavailable: getrusage failed"


class GpuMemory:
    """Device memory above a baseline, sampled; all allocators included."""

    def __init__(self, device_index: int = 0) -> None:
        self.index = device_index
        self.baseline_mb: float | None = None
        self.peak_seen_mb = 0.0
        self.source = "torch.cuda.mem_get_info (device-wide)"
        self._nvml: Any = None
        self._handle: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            self.source = "NVML per-process used memory"
        except Exception:  # noqa: BLE001 - fall back to torch
            self._nvml = None

    def used_mb(self) -> float:
        if self._nvml is not None:
            try:
                pid = os.getpid()
                procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
                for p in procs:
                    if p.pid == pid and p.usedGpuMemory is not None:
                        return p.usedGpuMemory / _MB
            except Exception:  # noqa: BLE001
                pass
        import torch

        free, total = torch.cuda.mem_get_info(self.index)
        return (total - free) / _MB

    def set_baseline(self) -> None:
        import torch

        torch.cuda.synchronize(self.index)
        self.baseline_mb = self.used_mb()
        self.peak_seen_mb = self.baseline_mb
        torch.cuda.reset_peak_memory_stats(self.index)

    def sample(self) -> None:
        try:
            self.peak_seen_mb = max(self.peak_seen_mb, self.used_mb())
        except Exception:  # noqa: BLE001 - sampling is best effort; the final read reports problems
            pass

    def peak_mb(self) -> tuple[float | None, str]:
        import torch

        if self.baseline_mb is None:
            return None, "unavailable: no baseline"
        self.sample()
        sampled = self.peak_seen_mb - self.baseline_mb
        torch_peak = torch.cuda.max_memory_reserved(self.index) / _MB
        return max(0.0, sampled, torch_peak), f"{self.source}, max with torch reserved peak"
