"""Device profiles: the machine a live measurement emulates (thread budget and device memory).

Every measured worker runs under its profile's memory limit (:mod:`deploybench.live.limits`), so a
configuration that needs more memory than the device has is killed by the limit and recorded as a real
``oom`` crash. A scenario's memory cap is a constraint *below* the device memory: between the cap and
the device size a configuration runs but is infeasible; above the device size it crashes.

Built-in profiles (emulated on whatever CPU runs the measurement; the table's provenance names that CPU):

- ``host``: this machine as it is (no emulated limit; threads up to the machine's cores);
- ``cpu``: a small cloud CPU instance, 2 threads and 4 GiB (the shipped ``cpu`` table);
- ``edge``: an edge board, 2 threads and 1 GiB (the shipped ``edge`` table).
- ``small``: a 1 GB board once its OS runs: 768 MB for the application *and its runtime* (resident
  set, file-backed pages included), 2 threads, 60 s per trial, no compiler (:data:`SMALL_STANDS_FOR`).

``--task-param TASK.device_profile=NAME`` selects the profile of ``--target live`` (default ``host``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Mapping

__all__ = ["DeviceProfile", "device_profiles", "get_device_profile"]

#: the ``small`` profile: memory left to one application on a 1 GB board once its OS runs
SMALL_MEMORY_MB = 768.0
SMALL_TRIAL_LIMIT_S = 60.0
#: the backends of a board without a compiler toolchain: exported (ONNX Runtime, OpenVINO) or eager PyTorch
#: artefacts
NO_COMPILER = ("pytorch_eager", "onnxruntime", "openvino")
SMALL_STANDS_FOR = ("1 GB single-board computers running a headless OS (about 768 MB left to the application): "
                    "Raspberry Pi 3 Model B/B+, Raspberry Pi 4 Model B 1 GB, NXP i.MX 8M Mini boards with 1 GB")


@dataclass(frozen=True)
class DeviceProfile:
    """A device to emulate: ``max_threads`` CPU threads, ``memory_mb`` of memory (``None``: no limit; the
    runtime counts against it), and ``trial_time_limit_s``, the wall time one trial may take on it
    (preparation, compilation and measurement together; ``None``: only the per-worker limit)."""

    name: str
    max_threads: int
    memory_mb: float | None
    description: str
    trial_time_limit_s: float | None = None
    #: the real boards the profile stands for (documentation, stored with a table's provenance)
    stands_for: str = ""
    #: the runtime backends the device can run (empty: every backend); a board without a compiler
    #: toolchain runs an exported or eager artefact, never ``torch_compile``
    backends: tuple[str, ...] = ()

    def to_json(self) -> dict:
        data = asdict(self)
        if self.backends:
            data["backends"] = list(self.backends)
        else:  # profiles that run every backend keep the identity they had before the field existed
            data.pop("backends")
        return data

    def allows(self, backend: str) -> bool:
        """Whether the device can run ``backend``."""
        return not self.backends or backend in self.backends

    @classmethod
    def from_json(cls, data: Mapping) -> "DeviceProfile":
        limit = data.get("trial_time_limit_s")
        return cls(name=str(data["name"]), max_threads=int(data["max_threads"]),
                   memory_mb=None if data.get("memory_mb") is None else float(data["memory_mb"]),
                   description=str(data.get("description", "")),
                   trial_time_limit_s=None if limit is None else float(limit),
                   stands_for=str(data.get("stands_for", "")),
                   backends=tuple(str(b) for b in data.get("backends") or ()))


def device_profiles() -> dict[str, DeviceProfile]:
    """The built-in profiles by name (a fresh dict per call)."""
    cores = os.cpu_count() or 1
    items = (
        DeviceProfile("host", cores, None, f"this machine as it is ({cores} threads, no emulated memory limit)"),
        DeviceProfile("cpu", 2, 4096.0, "small cloud CPU instance: 2 threads, 4 GiB"),
        DeviceProfile("edge", 2, 1024.0, "edge board: 2 threads, 1 GiB, no compiler", backends=NO_COMPILER),
        DeviceProfile("small", 2, SMALL_MEMORY_MB,
                      f"small-memory board: 2 threads, {SMALL_MEMORY_MB:g} MB for the application and its runtime "
                      f"(resident, file-backed pages included), {SMALL_TRIAL_LIMIT_S:g} s per trial, no compiler",
                      trial_time_limit_s=SMALL_TRIAL_LIMIT_S, stands_for=SMALL_STANDS_FOR, backends=NO_COMPILER),
    )
    return {p.name: p for p in items}


def get_device_profile(name: str | None = None) -> DeviceProfile:
    """A built-in profile by name (default ``host``: this machine, no emulated limit)."""
    name = name or "host"
    known = device_profiles()
    if name not in known:
        from ..errors import did_you_mean

        raise ValueError(f"unknown device profile {name!r}; known: {', '.join(known)}"
                         + did_you_mean(name, list(known)))
    return known[name]
