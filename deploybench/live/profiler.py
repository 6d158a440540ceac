"""Profile one deployment configuration in a fresh worker process, under a hard wall-clock limit.

:func:`profile` is the only entry point the tasks and the recorder need. Each call starts
``python -m deploybench.live.worker`` in its own process group, sends the :class:`ProfileRequest` as
JSON on stdin and reads the result JSON from a temporary file (so prints from libraries can never
corrupt it). Nothing leaks between trials: thread pools, compile caches and CUDA state die with the
worker (seed-code §16 B4). A worker that hangs is killed with its whole process group and reported
as ``timeout``; one that segfaults, aborts or exits non-zero without a result is ``crashed``, with the
signal or exit code and the tail of its stderr.

:class:`Measurement` is the stable, JSON-safe record of one profile (``to_dict``/``from_dict``); the
recorder stores ``Measurement.to_dict()`` lines and replay tasks read them back.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from .errors import classify_error

__all__ = ["ProfileRequest", "Measurement", "profile", "MEASUREMENT_FORMAT", "STATUSES", "TESTING_ENV"]

#: bump when the meaning of a Measurement field changes (readers check it)
MEASUREMENT_FORMAT = 1
STATUSES = ("ok", "early_stopped", "crashed", "timeout")
#: test-only hooks (``_debug_action``, the ``tiny_cnn`` model) are honoured only when this is "1"
TESTING_ENV = "DEPLOYBENCH_TESTING"
_STDERR_TAIL = 2000


@dataclass(frozen=True)
class ProfileRequest:
    """What to measure and how.

    - ``config``: a deployment config (model, backend, precision, batch_size, threads when active);
    - ``latency_cap_ms`` / ``latency_metric``: the scenario's latency cap; with a cap, the worker stops
      early once its timed post-warm-up iterations show the metric above ``early_stop_factor`` × cap
      (no cap: no early stop);
    - ``time_limit_s``: hard wall-clock limit of the whole worker, process start included;
    - ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``; int8_dynamic always runs on CPU;
    - ``data_dir``: an ImageFolder whose class folders are ImageNet synset ids (e.g. ImageNette's
      ``val``) for measured accuracy; ``None`` uses the weights' documented ImageNet-1K top-1;
    - ``weights``: ``auto`` (pretrained when the file is in the local torch hub cache, else random),
      ``pretrained`` (fail with an environment error when absent; nothing is ever downloaded), ``random``;
    - warm-up: at least ``warmup_min_iters`` (≥ 1) and at most ``warmup_max_iters`` iterations, stopping
      once ``warmup_time_s`` has passed after the minimum, and after ``warmup_max_time_s`` whatever the
      count (slow configurations: at least one iteration);
    - timed: at least ``min_iters`` and at most ``max_iters`` iterations, stopping once
      ``measure_time_s`` has passed after the minimum, or after ``measure_max_time_s`` once
      ``early_stop_min_iters`` are done; early stop is checked after each timed iteration from
      ``early_stop_min_iters`` on;
    - ``accuracy_per_class``: images per class of the fixed stratified accuracy subset;
    - ``cache_dir``: where measured accuracies are cached per (model, precision, backend, weights, data);
    - ``probe``: a pre-flight probe (``deploybench doctor``): allows the tiny probe model ``tiny_cnn``;
    - ``_debug_action``: test-only (``hang``, ``abort``, ``exit``, ``raise``, ``oom``), honoured only
      when ``DEPLOYBENCH_TESTING=1`` in the worker's environment.
    """

    config: Mapping[str, Any]
    latency_cap_ms: float | None = None
    latency_metric: str = "latency_p95_ms"
    early_stop_factor: float = 5.0
    time_limit_s: float = 120.0
    device: str = "auto"
    data_dir: str | None = None
    weights: str = "auto"
    warmup_min_iters: int = 3
    warmup_max_iters: int = 20
    warmup_time_s: float = 2.0
    warmup_max_time_s: float = 10.0
    min_iters: int = 10
    max_iters: int = 200
    measure_time_s: float = 3.0
    measure_max_time_s: float = 15.0
    early_stop_min_iters: int = 3
    accuracy_per_class: int = 50
    cache_dir: str | None = None
    probe: bool = False
    _debug_action: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", dict(self.config))
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.weights not in ("auto", "pretrained", "random"):
            raise ValueError(f"weights must be auto, pretrained or random, got {self.weights!r}")
        if self.time_limit_s <= 0:
            raise ValueError("time_limit_s must be positive")
        if self.warmup_min_iters < 1 or self.min_iters < 1 or self.early_stop_min_iters < 1:
            raise ValueError("warm-up, timed and early-stop iteration minimums must be >= 1")

    @property
    def early_stop_threshold_ms(self) -> float | None:
        if self.latency_cap_ms is None or self.early_stop_factor is None or self.early_stop_factor <= 0:
            return None
        return float(self.latency_cap_ms) * float(self.early_stop_factor)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProfileRequest":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def _safe(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class Measurement:
    """One profile of one configuration (stable, JSON-safe; stored by the recorder).

    - ``status``: ``ok`` (measured), ``early_stopped`` (aborted on timed iterations above the
      early-stop threshold; metrics hold the partial estimate), ``crashed``, ``timeout``;
    - ``metrics``: ``latency_p50_ms``/``latency_p95_ms``/``latency_p99_ms``/``latency_mean_ms`` per batch,
      the same with ``_per_sample``, ``throughput_sps``, ``memory_peak_mb`` (+ ``memory_kind``:
      ``cpu_rss_hwm_delta`` or ``gpu_device_delta``, ``memory_baseline_mb``, ``memory_source``),
      ``accuracy`` (+ ``accuracy_source``: ``measured`` or ``documented``), ``device_executed``
      (``cpu``/``cuda``), ``providers`` (ONNX Runtime), ``threads_used``, ``weights_source``,
      ``n_warmup_iters``, ``n_timed_iters``, ``early_stop_threshold_ms``;
    - ``error``: ``{"kind", "message"}`` for crashes and timeouts, else None;
    - ``cost_s``: wall seconds of the whole evaluation, process start and teardown included;
    - ``stages``: seconds per stage: ``import_s``, ``load_s``, ``prepare_s`` (export/compile/quantize),
      ``warmup_s``, ``measure_s``, ``accuracy_s`` (those reached);
    - ``info``: provenance (library versions, exporter used, exit code, stderr tail on crashes);
    - ``format``: :data:`MEASUREMENT_FORMAT`.
    """

    status: str
    metrics: Mapping[str, Any] = field(default_factory=dict)
    error: Mapping[str, str] | None = None
    cost_s: float = 0.0
    stages: Mapping[str, float] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    format: int = MEASUREMENT_FORMAT

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status in ("crashed", "timeout") and not self.error:
            raise ValueError(f"a {self.status} measurement needs an error")
        object.__setattr__(self, "metrics", _safe(dict(self.metrics)))
        object.__setattr__(self, "stages", _safe(dict(self.stages)))
        object.__setattr__(self, "info", _safe(dict(self.info)))
        if self.error is not None:
            object.__setattr__(self, "error", {"kind": str(self.error.get("kind", "runtime")),
                                               "message": str(self.error.get("message", ""))[:4000]})

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "status": self.status,
            "metrics": dict(self.metrics),
            "error": dict(self.error) if self.error else None,
            "cost_s": self.cost_s,
            "stages": dict(self.stages),
            "info": dict(self.info),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Measurement":
        return cls(
            status=data["status"],
            metrics=data.get("metrics") or {},
            error=data.get("error"),
            cost_s=float(data.get("cost_s") or 0.0),
            stages=data.get("stages") or {},
            info=data.get("info") or {},
            format=int(data.get("format", MEASUREMENT_FORMAT)),
        )


def worker_env(request: ProfileRequest, workdir: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: offline hubs, UTF-8 output (the reference's ORT trials all died of
    a cp1252 console, seed-code §13.2), thread counts fixed before torch is imported, and compile
    caches private to the trial (a warm on-disk Inductor/Triton cache would make a trial's cost depend
    on the trials before it)."""
    env = dict(os.environ if base is None else base)
    env.update({"PYTHONIOENCODING": "utf-8", "PYTHONUTF8": "1", "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                "TORCHINDUCTOR_CACHE_DIR": os.path.join(workdir, "inductor"),
                "TRITON_CACHE_DIR": os.path.join(workdir, "triton")})
    threads = request.config.get("threads")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if threads is not None:
            env[name] = str(int(threads))
        else:
            env.pop(name, None)  # the backend's own default, not whatever the caller had set
    if request.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        try:
            proc.kill()
        except OSError:
            pass


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _STDERR_TAIL))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def profile(request: ProfileRequest) -> Measurement:
    """Measure ``request.config`` in a fresh worker process; never raises for a failing configuration."""
    payload = json.dumps(request.to_dict())
    with tempfile.TemporaryDirectory(prefix="deploybench-live-") as tmp:
        result_path = os.path.join(tmp, "result.json")
        stderr_path = os.path.join(tmp, "stderr.txt")
        cmd = [sys.executable, "-m", "deploybench.live.worker", "--result", result_path, "--workdir", tmp]
        t0 = time.perf_counter()
        with open(stderr_path, "wb") as err, open(os.devnull, "wb") as out:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=tmp,
                                        env=worker_env(request, tmp), start_new_session=True)
            except OSError as exc:
                return Measurement("crashed", error={"kind": "environment", "message": f"cannot start worker: {exc}"},
                                   cost_s=time.perf_counter() - t0)
            timed_out = False
            try:
                proc.communicate(payload.encode(), timeout=request.time_limit_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
                proc.wait()
            finally:
                if proc.poll() is None:  # interrupted (KeyboardInterrupt): leave no orphan behind
                    _kill_group(proc)
                    proc.wait()
            # a worker's own children (compile workers) must not outlive it
            if not timed_out:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError, OSError):
                    pass
        cost = time.perf_counter() - t0
        stderr = _tail(stderr_path)
        partial = _read_result(result_path)
        if timed_out:
            stages = (partial or {}).get("stages") or {}
            reached = ", ".join(stages) or "none"
            return Measurement(
                "timeout", metrics=(partial or {}).get("metrics") or {}, stages=stages, cost_s=cost,
                error={"kind": "timeout", "message": f"worker exceeded the {request.time_limit_s:g} s limit "
                                                     f"and was killed (stages finished: {reached})"},
                info={"stderr_tail": stderr[-800:]},
            )
        if partial is not None and partial.get("status") in STATUSES and partial.get("final"):
            partial["cost_s"] = cost
            info = dict(partial.get("info") or {})
            if partial["status"] == "crashed":
                info["stderr_tail"] = stderr[-800:]
            partial["info"] = info
            return Measurement.from_dict(partial)
        code = proc.returncode
        how = _describe_exit(code)
        kind = classify_error(None, stderr)
        if code == -signal.SIGKILL and kind == "runtime":
            kind = "oom"
            how += " (not by the profiler: most likely the kernel's out-of-memory killer)"
        stages = (partial or {}).get("stages") or {}
        return Measurement(
            "crashed", metrics=(partial or {}).get("metrics") or {}, stages=stages, cost_s=cost,
            error={"kind": kind, "message": f"worker {how} without a result; stderr tail:\n{stderr[-1200:]}"},
            info={"exit_code": code, "stderr_tail": stderr[-800:]},
        )


def _read_result(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
