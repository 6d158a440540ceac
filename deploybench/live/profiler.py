"""Profile one deployment configuration: prepare its artefact, then measure it in a fresh worker
under the device's memory limit, with a contention guard and a hard wall-clock limit.

:func:`profile` is the only entry point the tasks and the recorder need:

1. **Prepare** (``python -m deploybench.live.worker prepare``): the artefact of (model, artefact family,
   precision) is built in its own process (:mod:`deploybench.live.artefacts`) and cached in
   ``artefact_cache`` when given (a recorder or a live session prepares each artefact once; every trial
   that uses it is still charged its preparation seconds, as a user without the cache would pay them).
   A precision that does not execute as asked ends here as ``unsupported``.
2. **Measure** (``... worker measure``): a fresh process loads only the artefact, under the device
   profile's memory limit (:class:`deploybench.live.limits.MemoryGuard`: exceeding it is a real ``oom``
   kill), and times it. Nothing leaks between trials: thread pools, compile caches and CUDA state die
   with the worker. A hung worker is killed with its process group and reported as ``timeout``; one
   that dies without a result is ``crashed`` with the signal and its stderr tail.
3. **Contention guard**: the worker measures the CPU time other processes used during its window
   (:mod:`deploybench.live.contention`). A disturbed measurement is redone after waiting for a quiet
   machine (at most ``max_retries`` times); an early stop is never decided on a disturbed window; when
   every retry is disturbed, the last one runs without early stop and is marked ``contaminated``.

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
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from ..locking import exclusive_lock
from .errors import classify_error

__all__ = ["ProfileRequest", "Measurement", "profile", "prepare", "artefact_slot", "MEASUREMENT_FORMAT", "STATUSES", "TESTING_ENV",
           "EARLY_STOP_VIEW", "early_stop_view"]

#: bump when the meaning of a Measurement field changes (readers check it). 2: deployment footprint
#: from an artefact-only worker, executed precision, per-iteration latencies, contention, memory limit
MEASUREMENT_FORMAT = 2
#: what an early-stopped measurement reveals (live and replay alike): no percentiles, no memory, no objective
EARLY_STOP_VIEW = ("early_stop_estimate_ms", "early_stop_threshold_ms", "n_timed_iters", "n_warmup_iters",
                   "device_executed", "threads_used", "providers", "graph_optimization", "memory_format",
                   "artefact_format", "quant_engine", "precision_executed", "memory_limit_mb",
                   "memory_limit_mechanism", "memory_accounting", "device_profile", "contention",
                   "trial_time_limit_s", "memory_prepare_peak_mb", "artefact_mb", "param_mb", "weights_source",
                   "compile_mode")
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
    - ``time_limit_s``: hard wall-clock limit of each worker, process start included;
    - ``trial_time_limit_s``: the device's limit on the whole trial (preparation, whose recorded seconds
      count even when the artefact comes from the cache, plus compilation and measurement); past it the
      trial is stopped and ``timeout`` at the time it was stopped. ``None``: the device profile's
      (``device_profile``), else only ``time_limit_s`` per worker;
    - ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``; int8_dynamic always runs on CPU;
    - ``data_dir``: your data (an ``.npz`` or ``module:function``, :mod:`deploybench.live.user_data`), or
      an ImageFolder whose class folders are ImageNet synset ids (e.g. ImageNette's
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
    - ``device_profile`` / ``memory_limit_mb``: the emulated device (name, for the record) and its memory;
      the measuring worker and its children are killed (``oom``) beyond ``memory_limit_mb``;
    - ``max_other_cores``: contention threshold (cores other work may keep busy; None: the default);
      ``max_retries``: redos of a disturbed measurement; ``quiet_wait_s``: longest wait for a quiet
      machine before a redo;
    - ``artefact_cache``: directory where prepared artefacts are kept between calls (None: per call);
    - ``source``: a user's model (:class:`deploybench.live.sources.ModelSource` as JSON) whose label is
      ``config["model"]``; None: the suite's zoo;
    - ``_debug_action``: test-only (``hang``, ``abort``, ``exit``, ``raise``, ``oom``), honoured only
      when ``DEPLOYBENCH_TESTING=1`` in the worker's environment; ``_debug_prepare`` the same for the
      prepare worker.
    """

    config: Mapping[str, Any]
    latency_cap_ms: float | None = None
    latency_metric: str = "latency_p95_ms"
    early_stop_factor: float = 5.0
    time_limit_s: float = 120.0
    trial_time_limit_s: float | None = None
    device: str = "auto"
    data_dir: str | None = None
    weights: str = "auto"
    warmup_min_iters: int = 3
    warmup_max_iters: int = 20
    warmup_time_s: float = 1.0
    warmup_max_time_s: float = 10.0
    min_iters: int = 100
    max_iters: int = 300
    measure_time_s: float = 2.0
    measure_max_time_s: float = 15.0
    early_stop_min_iters: int = 3
    accuracy_per_class: int = 50
    cache_dir: str | None = None
    probe: bool = False
    device_profile: str | None = None
    memory_limit_mb: float | None = None
    max_other_cores: float | None = None
    max_retries: int = 3
    quiet_wait_s: float = 120.0
    artefact_cache: str | None = None
    source: Mapping[str, Any] | None = None
    _debug_action: str | None = None
    _debug_prepare: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", dict(self.config))
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.weights not in ("auto", "pretrained", "random"):
            raise ValueError(f"weights must be auto, pretrained or random, got {self.weights!r}")
        if self.time_limit_s <= 0:
            raise ValueError("time_limit_s must be positive")
        if self.trial_time_limit_s is not None and self.trial_time_limit_s <= 0:
            raise ValueError(f"trial_time_limit_s must be positive or None, got {self.trial_time_limit_s!r}")
        if self.warmup_min_iters < 1 or self.min_iters < 1 or self.early_stop_min_iters < 1:
            raise ValueError("warm-up, timed and early-stop iteration minimums must be >= 1")

    def trial_limit_s(self) -> float | None:
        """The per-trial limit in effect: the request's, else its device profile's (None: no trial limit)."""
        if self.trial_time_limit_s is not None:
            return float(self.trial_time_limit_s)
        if self.device_profile:
            from .devices import device_profiles

            known = device_profiles().get(self.device_profile)
            if known is not None and known.trial_time_limit_s is not None:
                return float(known.trial_time_limit_s)
        return None

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
    - ``latencies_ms``: every timed iteration, in order (replay applies the live early-stop rule to them);
    - ``contaminated``: other work disturbed the measurement beyond the threshold on every attempt
      (never packed into a table); ``attempts``: measuring workers started (redos included);
    - ``format``: :data:`MEASUREMENT_FORMAT`.

    Metrics of format 2 add: ``memory_peak_mb`` = the deployment footprint (the measuring worker loads
    only the artefact; for ``torch_compile``, what stays resident after compiling plus the run's peak),
    ``memory_prepare_peak_mb`` (building the artefact), ``memory_compile_peak_mb``, ``param_mb``,
    ``artefact_mb``, ``precision_executed`` and ``precision_shares``, ``memory_limit_mb`` and
    ``memory_limit_mechanism``, ``device_profile``, ``contention`` (the guard's reading),
    ``accuracy_source`` and ``accuracy_weights`` (see :mod:`deploybench.live.models`).
    """

    status: str
    metrics: Mapping[str, Any] = field(default_factory=dict)
    error: Mapping[str, str] | None = None
    cost_s: float = 0.0
    stages: Mapping[str, float] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    latencies_ms: tuple[float, ...] = ()
    contaminated: bool = False
    attempts: int = 1
    format: int = MEASUREMENT_FORMAT

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status in ("crashed", "timeout") and not self.error:
            raise ValueError(f"a {self.status} measurement needs an error")
        object.__setattr__(self, "metrics", _safe(dict(self.metrics)))
        object.__setattr__(self, "stages", _safe(dict(self.stages)))
        object.__setattr__(self, "info", _safe(dict(self.info)))
        object.__setattr__(self, "latencies_ms", tuple(float(v) for v in self.latencies_ms))
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
            "latencies_ms": list(self.latencies_ms),
            "contaminated": self.contaminated,
            "attempts": self.attempts,
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
            latencies_ms=tuple(data.get("latencies_ms") or ()),
            contaminated=bool(data.get("contaminated", False)),
            attempts=int(data.get("attempts", 1) or 1),
            format=int(data.get("format", 1)),
        )


def worker_env(request: ProfileRequest, workdir: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: offline hubs, UTF-8 output (a Windows console codec must never crash
    a trial), thread counts fixed before torch is imported (the configuration's, else the device
    profile's thread budget), and compile caches private to the trial (a warm on-disk Inductor/Triton
    cache would make a trial's cost depend on the trials before it)."""
    env = dict(os.environ if base is None else base)
    env.update({"PYTHONIOENCODING": "utf-8", "PYTHONUTF8": "1", "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                "TORCHINDUCTOR_CACHE_DIR": os.path.join(workdir, "inductor"),
                # one compile worker: a device with 1-2 threads, and forked pool workers would each be
                # charged the pages they share under a memory watchdog
                "TORCHINDUCTOR_COMPILE_THREADS": "1",
                "TRITON_CACHE_DIR": os.path.join(workdir, "triton")})
    threads = request.config.get("threads")
    if threads is None and request.device_profile:
        from .devices import device_profiles

        profile_ = device_profiles().get(request.device_profile)
        threads = profile_.max_threads if profile_ is not None else None
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


def early_stop_view(metrics: Mapping[str, Any]) -> dict:
    """The metrics an early-stopped measurement reveals (see :data:`EARLY_STOP_VIEW`)."""
    return {k: metrics[k] for k in EARLY_STOP_VIEW if k in metrics}


def _run_worker(phase: str, payload: dict, request: ProfileRequest, tmp: str, time_limit_s: float,
                memory_limit_mb: float | None = None) -> dict:
    """Run one worker; returns {"result": dict|None, "timed_out", "code", "stderr", "wall_s", "oom", "guard"}."""
    from .limits import MemoryGuard

    result_path = os.path.join(tmp, f"{phase}-result.json")
    stderr_path = os.path.join(tmp, f"{phase}-stderr.txt")
    for stale in (result_path, result_path + ".tmp"):
        if os.path.exists(stale):
            os.remove(stale)
    cmd = [sys.executable, "-m", "deploybench.live.worker", phase, "--result", result_path, "--workdir", tmp]
    out: dict[str, Any] = {"result": None, "timed_out": False, "code": None, "stderr": "", "oom": False,
                           "guard": None, "start_error": None}
    t0 = time.perf_counter()
    with MemoryGuard(limit_mb=memory_limit_mb) as guard, open(stderr_path, "wb") as err, \
            open(os.devnull, "wb") as devnull:
        out["guard"] = (guard.mechanism, guard.describe())
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=devnull, stderr=err, cwd=tmp,
                                    env=worker_env(request, tmp), start_new_session=True, preexec_fn=guard.preexec)
        except (OSError, subprocess.SubprocessError) as exc:  # a failed cgroup join surfaces as SubprocessError
            out["start_error"] = str(exc)
            out["wall_s"] = time.perf_counter() - t0
            return out
        guard.attach(proc)
        try:
            proc.communicate(json.dumps(payload).encode(), timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            out["timed_out"] = True
            _kill_group(proc)
            proc.wait()
        finally:
            if proc.poll() is None:  # interrupted (KeyboardInterrupt): leave no orphan behind
                _kill_group(proc)
                proc.wait()
            try:  # a worker's own children (compile workers) must not outlive it
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass
        out["code"] = proc.returncode
        out["stderr"] = _tail(stderr_path)
        out["oom"] = bool(guard.oom_killed(out["stderr"]))
        out["guard_peak_mb"] = guard.peak_mb
        if memory_limit_mb is not None:
            device_peak = guard.resident_peak_mb
            out["memory"] = {"memory_limit_mechanism": guard.mechanism, "memory_accounting": guard.accounting,
                             "memory_limit_decided_by": guard.decided_by(out["stderr"]),
                             "memory_device_peak_mb": None if device_peak is None else round(device_peak, 1)}
            if guard.killed_at_mb is not None:
                out["memory"]["memory_killed_at_mb"] = round(guard.killed_at_mb, 1)
    out["wall_s"] = time.perf_counter() - t0
    out["result"] = _read_result(result_path)
    return out


def _failure(run: dict, what: str, limit_s: float, memory_limit_mb: float | None) -> dict:
    """A crashed/timeout record for a worker that ended without a final result."""
    partial = run["result"] or {}
    stages = partial.get("stages") or {}
    if run.get("start_error"):
        return {"status": "crashed", "error": {"kind": "environment", "message": f"cannot start worker: {run['start_error']}"}}
    if run["oom"]:
        mech = run["guard"][1] if run["guard"] else "?"
        memory = run.get("memory") or {}
        if memory.get("memory_limit_decided_by") == "watchdog":
            at = memory.get("memory_killed_at_mb")
            mech = (f"the resident watchdog (the worker tree held {at:g} MB, file-backed pages included; "
                    f"limit: {mech})" if at is not None else f"the resident watchdog ({mech})")
        return {"status": "crashed", "stages": stages, "metrics": partial.get("metrics") or {},
                "error": {"kind": "oom", "message": f"the {what} worker exceeded the device memory "
                                                    f"({memory_limit_mb:g} MB) and was killed by {mech}"}}
    if run["timed_out"]:
        reached = ", ".join(stages) or "none"
        return {"status": "timeout", "stages": stages, "metrics": partial.get("metrics") or {},
                "error": {"kind": "timeout", "message": f"the {what} worker exceeded the {limit_s:g} s limit and "
                                                        f"was killed (stages finished: {reached})"}}
    code = run["code"]
    how = _describe_exit(code)
    kind = classify_error(None, run["stderr"])
    if code == -signal.SIGKILL and kind == "runtime":
        kind = "oom"
        how += " (not by the profiler: most likely the kernel's out-of-memory killer)"
    return {"status": "crashed", "stages": stages, "metrics": partial.get("metrics") or {},
            "error": {"kind": kind, "message": f"the {what} worker {how} without a result; stderr tail:\n"
                                               f"{run['stderr'][-1200:]}"},
            "info": {"exit_code": code}}


def artefact_slot(request: ProfileRequest) -> str | None:
    """The folder of ``request``'s artefact in ``request.artefact_cache`` (None without a cache); its
    ``artefact.json`` describes the artefact (``artefact.path`` is the file a deployment loads)."""
    from ..device_tables.grid import artefact_key

    if not request.artefact_cache:
        return None
    model, family, precision = artefact_key(request.config)
    name = model
    if request.source:  # a label may hold ':' or '/'; the file's fingerprint keeps versions apart
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
        name = f"{safe}-{request.source.get('fingerprint') or request.source.get('kind')}"
    from .user_data import data_fingerprint, is_user_data

    if is_user_data(request.data_dir) and precision == "int8_static":  # calibrated on the user's data
        name += "-cal" + data_fingerprint(str(request.data_dir))
    return os.path.join(request.artefact_cache, f"{name}-{family}-{precision}-{request.weights}")


def _artefact(request: ProfileRequest, workdir: str, limit_s: float | None = None) -> dict:
    """The prepared artefact of the request's configuration: from the cache, or prepared now.

    Returns {"status": "ok", "artefact": info, "cost_s"} or a failure record (crashed/timeout)."""
    from ..device_tables.grid import artefact_key

    model, family, precision = artefact_key(request.config)
    from .user_data import is_user_data

    payload = {"model": model, "family": family, "precision": precision, "weights": request.weights,
               "allow_test_models": request.probe, "_debug_prepare": request._debug_prepare,
               "source": dict(request.source) if request.source else None,
               "calibration_data": request.data_dir if is_user_data(request.data_dir) else None}
    cache = request.artefact_cache
    slot = artefact_slot(request)
    if cache and slot:
        record_path = os.path.join(slot, "artefact.json")
        with exclusive_lock(slot + ".lock"):
            try:
                with open(record_path, encoding="utf-8") as fh:
                    record = json.load(fh)
                art = record.get("artefact") or {}
                if record.get("status") != "ok" or not art.get("path") or os.path.exists(art["path"]):
                    return record
            except (OSError, ValueError):
                pass
            os.makedirs(slot, exist_ok=True)
            record = _prepare_now(payload, request, slot, limit_s)
            if record.get("status") in ("ok", "crashed") and (record.get("error") or {}).get("kind") != "environment":
                tmp = record_path + ".tmp"
                with open(tmp, "w", encoding="utf-8") as fh:
                    json.dump(record, fh)
                os.replace(tmp, record_path)
            return record
    return _prepare_now(payload, request, workdir, limit_s)


def _prepare_now(payload: dict, request: ProfileRequest, workdir: str, limit_s: float | None = None) -> dict:
    limit_s = request.time_limit_s if limit_s is None else min(request.time_limit_s, limit_s)
    run = _run_worker("prepare", payload, request, workdir, limit_s)
    result = run["result"] or {}
    if result.get("final") and result.get("status") == "ok":
        return {"status": "ok", "artefact": result.get("artefact") or {}, "cost_s": round(run["wall_s"], 4),
                "stages": result.get("stages") or {}}
    if result.get("final") and result.get("status") == "crashed":
        return {"status": "crashed", "error": result.get("error"), "cost_s": round(run["wall_s"], 4),
                "stages": result.get("stages") or {}, "info": {"stderr_tail": run["stderr"][-800:]}}
    fail = _failure(run, "prepare", limit_s, None)
    fail["cost_s"] = round(run["wall_s"], 4)
    return fail


def _judged_on_device(request: ProfileRequest) -> bool:
    """True when the measuring worker judges the executed precision itself: ONNX Runtime on a request
    that may run on CUDA, where the artefact's check (made on the CPU provider) does not apply."""
    return request.config.get("backend") == "onnxruntime" and request.device != "cpu"


def _check_key(config: Mapping[str, Any]) -> str:
    if config["backend"] == "onnxruntime":
        return f"onnxruntime/{config.get('graph_optimization', 'all')}"
    return str(config["backend"])  # pytorch_eager, torch_compile, openvino


def _artefact_metrics(art: Mapping[str, Any], request: ProfileRequest, check: Mapping[str, Any] | None) -> dict:
    out = {"memory_prepare_peak_mb": art.get("memory_prepare_peak_mb"), "param_mb": art.get("param_mb"),
           "artefact_mb": art.get("artefact_mb"), "weights_source": art.get("weights_source"),
           "device_profile": request.device_profile, "memory_limit_mb": request.memory_limit_mb}
    if art.get("int8_flop_share") is not None:
        out["int8_compute_share"] = art["int8_flop_share"]
    if check:
        out["precision_executed"] = check.get("executed")
        out["precision_shares"] = check.get("shares")
    return {k: v for k, v in out.items() if v is not None}


def prepare(request: ProfileRequest) -> dict:
    """Only prepare (or reuse) the artefact of ``request.config``, in its own worker: a pre-flight check
    that a user's model builds, exports and loads. Returns ``{"status": "ok", "artefact": {...},
    "cost_s"}`` or a failure record with ``error``. The artefact outlives the call only in
    ``request.artefact_cache``."""
    with tempfile.TemporaryDirectory(prefix="deploybench-prepare-") as tmp:
        return _artefact(request, tmp)


def profile(request: ProfileRequest) -> Measurement:
    """Measure ``request.config``: prepare (or reuse) its artefact, check the precision executes, then
    measure in a fresh, memory-limited worker, redoing disturbed measurements. Never raises for a
    failing configuration."""
    from .contention import wait_for_quiet

    trial_limit = request.trial_limit_s()
    with tempfile.TemporaryDirectory(prefix="deploybench-live-") as tmp:
        prep = _artefact(request, tmp, trial_limit)
        prep_cost = float(prep.get("cost_s") or 0.0)
        prep_stages = {"prepare_s": prep_cost}
        trial_metrics = {} if trial_limit is None else {"trial_time_limit_s": trial_limit}
        if prep.get("status") == "timeout" and trial_limit is not None and prep_cost >= trial_limit:
            return _trial_timeout(request, trial_limit, prep_cost, None, "preparing the artefact",
                                  {"device_profile": request.device_profile, "memory_limit_mb": request.memory_limit_mb})
        if prep.get("status") != "ok":
            return Measurement.from_dict({**prep, "cost_s": prep_cost, "stages": prep_stages,
                                          "metrics": {"device_profile": request.device_profile,
                                                      "memory_limit_mb": request.memory_limit_mb, **trial_metrics},
                                          "format": MEASUREMENT_FORMAT})
        art = prep["artefact"]
        check = (art.get("checks") or {}).get(_check_key(request.config))
        base_metrics = {**_artefact_metrics(art, request, check), **trial_metrics}
        if trial_limit is not None and prep_cost >= trial_limit:  # a cached artefact that took too long to build
            return _trial_timeout(request, trial_limit, prep_cost, None, "preparing the artefact", base_metrics)
        measure_limit = request.time_limit_s if trial_limit is None else min(request.time_limit_s,
                                                                              trial_limit - prep_cost)
        if check is not None and not check.get("ok") and not _judged_on_device(request):
            return Measurement("crashed", metrics=base_metrics, cost_s=prep_cost, stages=prep_stages,
                               error={"kind": "unsupported", "message": check.get("reason") or "precision not executed"})
        attempts, redo_s = 0, 0.0
        redone_for: list[str] = []  # why each redone attempt was disturbed (average load or bursts)
        payload_request = request
        while True:
            attempts += 1
            final = attempts > 1 and attempts >= request.max_retries + 1
            if final and request.early_stop_threshold_ms is not None:
                # the last permitted redo runs without early stop: a verdict is never decided on a disturbed
                # window; if the disturbance persists the result is marked contaminated
                payload_request = replace(request, early_stop_factor=0.0)
            run = _run_worker("measure", {**payload_request.to_dict(), "artefact": art}, payload_request, tmp,
                              measure_limit, request.memory_limit_mb)
            result = run["result"] or {}
            if run["oom"]:
                result = {}  # the limit killed something in the worker's group: that is the verdict
            contention = (result.get("metrics") or {}).get("contention") or {}
            status = result.get("status") if result.get("final") else None
            disturbed = status == "disturbed" or (status is not None and bool(contention.get("contaminated")))
            if not disturbed or final or (status != "disturbed" and attempts > request.max_retries):
                break
            redo_s += run["wall_s"]
            redone_for.append(str(contention.get("reason") or "other work during the measurement")
                              + (" (an early stop was vetoed)" if status == "disturbed" else ""))
            if attempts <= request.max_retries:
                wait_for_quiet(request.max_other_cores, request.quiet_wait_s)
        cost = prep_cost + run["wall_s"]
        mech = dict(run.get("memory") or {}) if request.memory_limit_mb else {}
        mech = {k: v for k, v in mech.items() if v is not None}
        if result.get("final") and result.get("status") in ("ok", "early_stopped", "crashed", "disturbed"):
            stages = dict(result.get("stages") or {})
            worker_s = sum(float(v) for v in stages.values())
            stages.update(prep_stages, spawn_teardown_s=round(max(0.0, run["wall_s"] - worker_s), 4))
            if redo_s:
                stages["redone_s"] = round(redo_s, 3)
            metrics = {**base_metrics, **(result.get("metrics") or {}), **mech}
            if redone_for and isinstance(metrics.get("contention"), dict):
                metrics["contention"] = {**metrics["contention"], "redone_for": redone_for}
            status = result["status"]
            if status == "ok" and "accuracy_source" not in metrics:
                metrics.update(_documented_accuracy(request.config))
            if status == "early_stopped":
                metrics = early_stop_view(metrics)
            info = dict(result.get("info") or {})
            if status == "crashed":
                info["stderr_tail"] = run["stderr"][-800:]
            if status == "disturbed":  # cannot happen on the last attempt, kept for safety
                status = "crashed"
                result["error"] = {"kind": "runtime", "message": "measurement disturbed by other work"}
            return Measurement(status, metrics=metrics, error=result.get("error"), cost_s=cost, stages=stages,
                               info=info, latencies_ms=tuple(result.get("latencies_ms") or ()),
                               contaminated=bool(contention.get("contaminated")), attempts=attempts)
        if run["timed_out"] and not run["oom"] and trial_limit is not None and measure_limit < request.time_limit_s:
            partial = run["result"] or {}
            return _trial_timeout(request, trial_limit, prep_cost, run, "measuring",
                                  {**base_metrics, **mech}, stages=partial.get("stages") or {}, attempts=attempts)
        fail = _failure(run, "measuring", measure_limit, request.memory_limit_mb)
        stages = {**(fail.get("stages") or {}), **prep_stages}
        return Measurement(fail["status"], metrics={**base_metrics, **mech}, error=fail["error"], cost_s=cost,
                           stages=stages, info={**(fail.get("info") or {}), "stderr_tail": run["stderr"][-800:]},
                           attempts=attempts)


def _documented_accuracy(config: Mapping[str, Any]) -> dict:
    """The documented accuracy of a measured deployment, looked up here rather than in the measuring
    worker (the lookup imports torchvision, which would count against the device's memory)."""
    from .models import accuracy_for

    accuracy, source, weights = accuracy_for(config["model"], config["precision"], config["backend"])
    return {"accuracy": accuracy, "accuracy_source": source, "accuracy_weights": weights,
            "accuracy_unknown": 1.0 if accuracy is None else 0.0}


def _trial_timeout(request: ProfileRequest, limit_s: float, prep_cost: float, run: dict | None, what: str,
                   metrics: Mapping[str, Any], stages: Mapping[str, float] | None = None,
                   attempts: int = 1) -> Measurement:
    """A trial stopped at the device's per-trial limit: ``timeout``, charged the time it was stopped at.

    Preparation counts with its recorded seconds even when the artefact came from the cache (a user
    without the cache pays them), so a trial stopped while preparing is charged exactly the limit."""
    worker_s = float(run["wall_s"]) if run else 0.0
    stopped_at = min(limit_s, prep_cost) if run is None else prep_cost + worker_s
    reached = ", ".join(stages or {}) or "none"
    detail = (f"preparation took {prep_cost:.1f} s" if run is None else
              f"preparation {prep_cost:.1f} s, then the measuring worker was stopped after {worker_s:.1f} s "
              f"(stages finished: {reached})")
    message = (f"the trial exceeded the device's per-trial limit of {limit_s:g} s while {what} "
               f"(profile {request.device_profile or 'none'}): {detail}")
    all_stages = {**(stages or {}), "prepare_s": round(min(prep_cost, limit_s), 4)}
    if run is not None:
        all_stages["stopped_worker_s"] = round(worker_s, 4)
    return Measurement("timeout", metrics={**metrics, "trial_time_limit_s": limit_s,
                                           "timeout_at_s": round(stopped_at, 4)},
                       error={"kind": "timeout", "message": message}, cost_s=round(stopped_at, 4),
                       stages=all_stages, info={"stderr_tail": run["stderr"][-800:]} if run else {},
                       attempts=attempts)


def _read_result(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
