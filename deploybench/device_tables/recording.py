"""Record a deployment table: every configuration of a grid measured live on an emulated device.

:class:`Recorder` is the library behind ``deploybench record`` (the command only parses and prints).
It appends one line per measurement to a plain JSONL chunk, flushed as it finishes, so a recording
resumes where it stopped and can be split across sessions (``stop_after``) or filters.

Passes. Pass 0 measures every configuration once (batch sizes first, then cheap backends and small
models, so a recording stopped early still holds whole sub-grids). Later passes come back to the
configurations whose latency lies within ±30 % of a scenario's cap and measure them again, in
separate fresh processes minutes apart, until each has ``repeats_near_cap`` clean repeats: near a cap
between-session noise decides feasibility, and back-to-back repeats would hide it.

Honesty rules: each measurement runs in fresh worker processes under the device profile's memory
limit (:func:`deploybench.live.profiler.profile`); the early stop uses the loosest scenario (5x the
100 ms p99 cap) on the median of timed iterations, and every timed iteration is stored, so a replay
applies each scenario's own threshold to the recorded sequence exactly as a live run would; a
measurement that other work disturbed on every retry is kept in the chunk marked ``contaminated``
(evidence) but never counts as a repeat and is never packed; the time limit stored with each line is
the live trials' limit.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

from ..locking import exclusive_lock
from ..space import InvalidConfigError
from .grid import DeploymentGrid
from .table import TableError, config_id, load_table, open_table_for_append

__all__ = ["Recorder", "RecordingSummary", "MeasurementPool", "LocalPool", "Measured", "NEAR_CAP", "NEAR_MEMORY", "DEFAULT_REPEATS_NEAR_CAP", "LIVE_TIME_LIMIT_S",
           "near_a_cap", "near_memory_boundary", "device_held_mb", "configs_near_device_memory", "needs_repeats", "recording_order", "missing_repeats"]

NEAR_CAP = 0.3
#: a measurement whose worker tree held at least (1 - NEAR_MEMORY) of the device memory is near its boundary
NEAR_MEMORY = 0.1
DEFAULT_REPEATS_NEAR_CAP = 5
#: the live trials' hard limit per worker (``LiveTask``); recordings use the same, so replay equals live
LIVE_TIME_LIMIT_S = 120.0
#: a configuration that other work disturbed this many times in one pass is left for the next run
MAX_CONTAMINATED_PER_PASS = 2


def near_a_cap(measurement: Mapping[str, Any], scenarios: Sequence[Any]) -> bool:
    """Whether an ok measurement's latency lies within ±30 % of some scenario's latency cap."""
    if measurement.get("status") != "ok":
        return False
    metrics = measurement.get("metrics") or {}
    for s in scenarios:
        value = metrics.get(s.latency_metric)
        if value is not None and abs(value - s.latency_cap_ms) <= NEAR_CAP * s.latency_cap_ms:
            return True
    return False


def near_memory_boundary(measurement: Mapping[str, Any], device_mb: float | None) -> bool:
    """Whether a measurement lies near the device's memory boundary, where one repeat cannot classify it:
    an ok run whose worker tree held at least 90 % of the device memory (``memory_device_peak_mb``), or
    an ``oom`` that struck after the artefact had loaded (the runtime and the weights fit; the run's
    activations and buffers crossed the limit). An ``oom`` while importing the runtime or loading the
    weights is far from the boundary and is not repeated."""
    if not device_mb:
        return False
    metrics = measurement.get("metrics") or {}
    if measurement.get("status") == "ok":
        held = metrics.get("memory_device_peak_mb")
        return held is not None and held >= (1.0 - NEAR_MEMORY) * float(device_mb)
    error = measurement.get("error") or {}
    return (measurement.get("status") == "crashed" and error.get("kind") == "oom"
            and "load_s" in (measurement.get("stages") or {}))


def device_held_mb(measurement: Mapping[str, Any]) -> float | None:
    """What the device held during a measurement, its runtime included: ``memory_device_peak_mb`` where
    the measurement stores it (v3), else the worker's resident high-water mark above its idle baseline
    plus that baseline (v2 stored both: ``VmHWM`` counts file-backed pages; only the kill decision
    counted less); ``None`` when neither is known."""
    metrics = measurement.get("metrics") or {}
    if metrics.get("memory_device_peak_mb") is not None:
        return float(metrics["memory_device_peak_mb"])
    base, peak = metrics.get("memory_baseline_mb"), metrics.get("memory_peak_mb")
    return None if base is None or peak is None else float(base) + float(peak)


def configs_near_device_memory(table: Any, fraction: float = 1.0 - NEAR_MEMORY) -> list[dict]:
    """The configurations of a recorded table whose classification a change of memory accounting can
    change: a repeat held at least ``fraction`` of the device memory, or ended ``oom``. Every other
    configuration's resident peak stayed clearly below the device memory, so a stricter accounting of
    the same resident set would not have killed it. In the table's order."""
    device_mb = ((table.provenance.get("device_profile") or {}).get("memory_mb"))
    if not device_mb:
        raise TableError(f"{table.path.name} records no device memory (its device profile has no limit)")
    out = []
    for key, reps in table.measurements.items():
        for m in reps:
            held = device_held_mb(m)
            oom = m.get("status") == "crashed" and (m.get("error") or {}).get("kind") == "oom"
            if oom or (held is not None and held >= fraction * float(device_mb)):
                out.append(dict(table.configs[key]))
                break
    return out


def needs_repeats(reps: Sequence[Mapping[str, Any]], scenarios: Sequence[Any], device_mb: float | None) -> bool:
    """A configuration gets repeats in later passes: near a latency cap, near the memory boundary, or
    its repeats so far disagree between running and ``oom``."""
    if any(near_a_cap(m, scenarios) or near_memory_boundary(m, device_mb) for m in reps):
        return True
    ooms = [((m.get("error") or {}).get("kind") == "oom") for m in reps]
    return any(ooms) and not all(ooms)


def recording_order(config: Mapping[str, Any]) -> tuple:
    """Batch size first, then the cheap backends and the small models, so a recording stopped at any
    point holds complete sub-grids at the smaller batch sizes."""
    from .grid import BACKENDS, MODELS

    backend_cost = {"onnxruntime": 0, "pytorch_eager": 1, "torch_compile": 2}
    return (config["batch_size"], backend_cost.get(config["backend"], len(BACKENDS)),
            MODELS.index(config["model"]) if config["model"] in MODELS else len(MODELS),
            config["precision"], json.dumps(config, sort_keys=True))


@dataclass
class RecordingSummary:
    """What one :meth:`Recorder.run` did."""

    new: list[tuple[str, dict]] = field(default_factory=list)
    contaminated: int = 0
    redone: int = 0
    stopped: str | None = None
    wall_s: float = 0.0
    covered: int = 0
    grid: int = 0
    clean_repeats_missing: int = 0
    #: (pass, reference workload result) measured by this run, one per pass that measured something
    speed_references: list[tuple[int, dict]] = field(default_factory=list)

    def lines(self) -> list[str]:
        import statistics
        from collections import Counter

        out = [f"recorded {len(self.new)} new measurements in {self.wall_s:.0f} s; grid {self.covered}/{self.grid} "
               f"configurations measured; {self.clean_repeats_missing} configurations near a latency cap or the memory "
               "boundary still need repeats",
               f"measurements redone by the contention guard: {self.redone}; still disturbed after every retry "
               f"(kept as contaminated, not counted): {self.contaminated}"]
        for pass_no, ref in self.speed_references:
            out.append(f"pass {pass_no} speed reference: {_reference_text(ref)}")
        if self.new:
            statuses = Counter(m["status"] for _, m in self.new)
            costs = [float(m.get("cost_s") or 0.0) for _, m in self.new]
            out.append("statuses: " + ", ".join(f"{s} {n}" for s, n in statuses.most_common()))
            out.append(f"seconds per measurement: mean {statistics.mean(costs):.1f}, median "
                       f"{statistics.median(costs):.1f}, max {max(costs):.1f}")
        if self.stopped:
            out.append(f"stopped {self.stopped}; run the same command again to continue")
        return out


class Recorder:
    """Record ``grid`` on the device profile ``device_profile`` into the chunk ``out`` (``.jsonl``).

    ``only`` narrows what this run measures (chunking) while the chunk keeps the whole grid;
    ``only_configs`` narrows it to a list of configurations (re-measuring chosen ones, e.g. those near
    the device memory after the memory accounting changed; :func:`configs_near_device_memory`);
    ``pool`` is where the measurements run (default: a :class:`LocalPool` on this machine; an executor
    plugin's pool spreads them over a fleet); ``profile_fn`` replaces the live profiler (tests); ``reference_fn`` the speed reference workload
    (:func:`deploybench.live.drift.reference_workload`), measured before the first measurement of every
    pass of every run (so a resumed chunk measures its own) and stored with each line as
    ``speed_reference``. Constructor arguments are stored as given.
    """

    def __init__(self, grid: DeploymentGrid, out: str | Path, *, name: str | None = None,
                 device_profile: str = "cpu", device: str = "cpu", repeats_near_cap: int = DEFAULT_REPEATS_NEAR_CAP,
                 time_limit_s: float = LIVE_TIME_LIMIT_S, artefact_cache: str | None = None,
                 only: Mapping[str, Sequence[Any]] | None = None,
                 only_configs: Sequence[Mapping[str, Any]] | None = None, stop_after_s: float | None = None,
                 max_new: int | None = None, lock: str | None = None, note: str | None = None,
                 weights: str = "auto", data_dir: str | None = None, max_other_cores: float | None = None,
                 profile_fn: Callable[[Any], Any] | None = None,
                 reference_fn: Callable[[], dict] | None = None, pool: "MeasurementPool | None" = None) -> None:
        self.grid = grid
        self.out = Path(out)
        self.name = name or self.out.name.split(".")[0]
        self.device_profile = device_profile
        self.device = device
        self.repeats_near_cap = int(repeats_near_cap)
        self.time_limit_s = float(time_limit_s)
        self.artefact_cache = artefact_cache
        self.only = {k: set(v) for k, v in (only or {}).items() if v}
        self.only_configs = only_configs
        self.stop_after_s = stop_after_s
        self.max_new = max_new
        self.lock = lock
        self.note = note
        self.weights = weights
        self.data_dir = data_dir
        self.max_other_cores = max_other_cores
        self.profile_fn = profile_fn
        self.reference_fn = reference_fn
        self.pool = pool
        if self.repeats_near_cap < 1:
            raise ValueError("repeats near a cap must be at least 1")
        if only_configs is not None:
            space = grid.space()
            for config in only_configs:
                try:
                    space.validate(dict(config))
                except InvalidConfigError as exc:
                    raise ValueError(f"configuration {dict(config)} is not in the grid being recorded: {exc}") from exc

    # -- header -------------------------------------------------------------------------------------------
    def header(self) -> dict:
        from ..live.contention import max_other_cores
        from ..live.devices import get_device_profile
        from ..live.limits import memory_limit_support
        from ..live.profiler import MEASUREMENT_FORMAT
        from ..machine import library_versions, machine_info

        space = self.grid.space()
        profile = get_device_profile(self.device_profile)
        info = machine_info()
        support = memory_limit_support()
        provenance = {
            "device": self.device,
            "device_name": f"{profile.name}: {profile.description}, emulated on {info['cpu']}",
            "device_profile": profile.to_json(),
            "cpu": info["cpu"], "cpu_count": info["cpu_count"], "memory_gb": info["memory_gb"],
            "platform": info["platform"], "python": info["python"], "versions": library_versions(),
            "date": datetime.now(timezone.utc).date().isoformat(),
            "profiler_version": str(MEASUREMENT_FORMAT),
            "memory_limit_support": support,
            "repeats_policy": f"1 repeat; {self.repeats_near_cap} clean repeats, in separate passes, where a scenario "
                              f"latency metric lies within ±{int(NEAR_CAP * 100)} % of its cap"
                              + (f" or near the device memory (worker tree >= {int((1 - NEAR_MEMORY) * 100)} % of "
                                 f"{profile.memory_mb:g} MB, or oom after the artefact loaded)" if profile.memory_mb else ""),
            "memory_accounting": _accounting(),
            "precision_check": "once per artefact and ONNX Runtime optimisation level (exact: kernels are assigned per "
                               "node by type, not by batch or thread count; quantised layers' FLOP share does not "
                               "depend on the batch)",
            "trial_time_limit_s": profile.trial_time_limit_s,
            "threads_recorded": list(self.grid.threads),
            "time_limit_s": self.time_limit_s,
            "weights": self.weights,
            "accuracy": "measured" if self.data_dir else "per precision: documented or unknown (accuracy_source)",
            "early_stop": "median of timed iterations > 5x the loosest latency cap (500 ms); every timed "
                          "iteration stored, so replay applies each scenario's own threshold",
            "contention_threshold_cores": self.max_other_cores if self.max_other_cores is not None else max_other_cores(),
            "speed_reference": "a reference workload (float32 matrix products and a Python loop, one thread, fresh "
                               "process) measured before the first measurement of every pass of every run; stored "
                               "with each measurement line as speed_reference (deploybench.live.drift)",
            **({"note": self.note} if self.note else {}),
        }
        return {"name": self.name, "space": space.to_json(), "space_signature": space.signature(),
                "provenance": provenance}

    # -- recording --------------------------------------------------------------------------------------
    def _todo(self) -> list[dict]:
        space = self.grid.space()
        configs = [c for c in space.grid()
                   if all(c.get(k) in allowed for k, allowed in self.only.items() if k in c)]
        if self.only_configs is not None:
            wanted = {space.key(dict(c)) for c in self.only_configs}
            configs = [c for c in configs if space.key(c) in wanted]
        configs.sort(key=recording_order)
        return configs

    def _request(self, config: dict) -> Any:
        from ..live.devices import get_device_profile
        from ..live.profiler import ProfileRequest
        from ..tasks.deployment import scenarios

        profile = get_device_profile(self.device_profile)
        loosest = max(scenarios().values(), key=lambda s: s.latency_cap_ms)
        return ProfileRequest(config=config, latency_cap_ms=loosest.latency_cap_ms, latency_metric=loosest.latency_metric,
                              early_stop_factor=5.0, time_limit_s=self.time_limit_s, device=self.device,
                              trial_time_limit_s=profile.trial_time_limit_s,
                              data_dir=self.data_dir, weights=self.weights, device_profile=profile.name,
                              memory_limit_mb=profile.memory_mb, max_other_cores=self.max_other_cores,
                              artefact_cache=self.artefact_cache)

    def _pool(self) -> "MeasurementPool":
        if self.pool is not None:
            return self.pool
        from ..live.profiler import profile

        if self.reference_fn is None:
            from ..live.drift import reference_workload as reference
        else:
            reference = self.reference_fn
        return LocalPool(self.profile_fn or profile, reference, lock=self.lock)

    def run(self, on_line: Callable[[str], None] = print) -> RecordingSummary:
        from ..live.devices import get_device_profile
        from ..tasks.deployment import scenarios

        scen = list(scenarios().values())
        device_mb = get_device_profile(self.device_profile).memory_mb
        header = self.header()
        fh = open_table_for_append(self.out, header)  # raises TableError on another grid
        summary = RecordingSummary()
        started = time.time()
        pool = self._pool()
        try:
            existing = load_table(self.out)
            space = self.grid.space()
            clean: dict[str, list[dict]] = {}
            for key, reps in existing.measurements.items():
                clean[key] = [m for m in reps if not m.get("contaminated")]
            todo = self._todo()
            submitted = 0
            copies = max(1, int(getattr(pool, "copies", 1)))  # measurements one job makes (one per node)

            def jobs(pass_no: int, disturbed: dict[str, int]) -> Iterator[tuple[dict, Any]]:
                """This round's configurations, one measurement each, checked against the time box and the
                measurement cap before each is handed out (a pool asks for the next when it has a free slot)."""
                nonlocal submitted
                for config in todo:
                    key = space.key(config)
                    reps = clean.setdefault(key, [])
                    wanted = copies * (1 if pass_no == 0 else (
                        pass_no + 1 if reps and needs_repeats(reps, scen, device_mb) else 0))
                    if len(reps) >= wanted or disturbed.get(key, 0) >= MAX_CONTAMINATED_PER_PASS:
                        continue
                    if self.max_new is not None and submitted >= self.max_new:
                        summary.stopped = f"after {self.max_new} new measurements"
                        return
                    if self.stop_after_s is not None and time.time() - started + self.time_limit_s > self.stop_after_s:
                        summary.stopped = (f"at the time box of {self.stop_after_s:g} s: the next measurement "
                                           "could run past it")
                        return
                    submitted += 1
                    yield config, self._request(config)

            for pass_no in range(self.repeats_near_cap):
                disturbed: dict[str, int] = {}
                while True:  # a round measures each configuration still short of clean repeats once
                    measured = 0
                    for result in pool.measure(pass_no, jobs(pass_no, disturbed)):
                        measured += 1
                        key = space.key(result.config)
                        reps = clean.setdefault(key, [])
                        data = result.data
                        fh.write(json.dumps({"type": "measurement", "key": key, "config": result.config,
                                             "repeat": len(reps), "pass": pass_no,
                                             "load_avg_1m": result.load_avg_1m,
                                             "recorded_at": round(time.time()), "time_limit_s": self.time_limit_s,
                                             "speed_reference": result.speed_reference,
                                             **({"node": result.node} if result.node else {}),
                                             "measurement": data}, allow_nan=False) + "\n")
                        fh.flush()
                        summary.new.append((key, data))
                        summary.redone += max(0, int(data.get("attempts", 1)) - 1)
                        if result.speed_reference is not None and \
                                (pass_no, result.speed_reference) not in summary.speed_references:
                            summary.speed_references.append((pass_no, result.speed_reference))
                        if data.get("contaminated"):
                            summary.contaminated += 1
                            disturbed[key] = disturbed.get(key, 0) + 1
                        else:
                            reps.append(data)
                        on_line(_line(key, len(reps), pass_no, data, result.node))
                    if summary.stopped:
                        return summary
                    if measured == 0:
                        break
            return summary
        finally:
            fh.close()
            close = getattr(pool, "close", None)
            if callable(close):
                close()
            summary.wall_s = time.time() - started
            try:
                table = load_table(self.out)
            except TableError:
                pass  # the chunk is gone or replaced: the error being raised says where its lines are
            else:
                summary.covered, summary.grid = table.coverage()
                summary.clean_repeats_missing = missing_repeats(table, self.repeats_near_cap)


@dataclass
class Measured:
    """One measurement back from a pool: the configuration, the profiler's result (``to_dict`` form), the
    speed reference of the machine that measured it in this pass, that machine (None: this one) and its
    load average then."""

    config: dict
    data: dict
    speed_reference: dict | None = None
    node: dict | None = None
    load_avg_1m: float | None = None


@runtime_checkable
class MeasurementPool(Protocol):
    """Where a recording's measurements run: this machine (:class:`LocalPool`) or a fleet of machines
    (an executor plugin's ``measurement_pool``, e.g. ``deploybench-ray``).

    ``measure(pass_no, jobs)`` takes ``(config, ProfileRequest)`` pairs from ``jobs`` only when it has a
    free slot (the recorder checks its time box and measurement cap as each is taken) and yields a
    :class:`Measured` for each as it finishes, in any order. It never runs two measurements on one
    machine at once, measures each machine's speed reference once per pass (before its first
    measurement of that pass), and gives each result the identity of the machine that measured it. An
    optional ``copies`` says how many measurements one job makes (one per node in a study that measures
    every configuration on every node; 1 when absent), so passes count repeats per copy. A
    measurement lost with its machine is measured again elsewhere or left out (the recorder asks for it
    again in its next round); the recorder is the only writer of the table.
    """

    def measure(self, pass_no: int, jobs: Iterable[tuple[dict, Any]]) -> Iterator[Measured]:
        ...  # pragma: no cover - a protocol


class LocalPool:
    """Measures on this machine, one configuration at a time, each under the lock ``lock`` (see
    ``deploybench record --lock``). Constructor arguments are stored as given."""

    def __init__(self, profile_fn: Callable[[Any], Any], reference_fn: Callable[[], dict], *,
                 lock: str | None = None) -> None:
        self.profile_fn = profile_fn
        self.reference_fn = reference_fn
        self.lock = lock
        self._references: dict[int, dict] = {}

    def measure(self, pass_no: int, jobs: Iterable[tuple[dict, Any]]) -> Iterator[Measured]:
        for config, request in jobs:
            with exclusive_lock(self.lock):
                if pass_no not in self._references:  # this pass measures here: the machine's level first
                    self._references[pass_no] = self.reference_fn()
                m = self.profile_fn(request)
            data = m.to_dict() if hasattr(m, "to_dict") else dict(m)
            yield Measured(config, data, self._references[pass_no], None, round(os.getloadavg()[0], 2))


def _reference_text(ref: Mapping[str, Any]) -> str:
    if ref.get("error"):
        return f"failed ({ref['error']})"
    return f"gemm {ref.get('gemm_ms')} ms, python {ref.get('python_ms')} ms, other work {ref.get('other_cores')} cores"


def _accounting() -> str:
    """The memory accounting recordings on this machine use (see :mod:`deploybench.live.limits`)."""
    from ..live.limits import _resolve_accounting

    try:
        return _resolve_accounting(None)
    except ValueError as exc:
        return f"invalid: {exc}"


def table_device_mb(table: Any) -> float | None:
    """The device memory a table was recorded under (its provenance's device profile), or None."""
    profile = (getattr(table, "provenance", None) or {}).get("device_profile") or {}
    value = profile.get("memory_mb") if isinstance(profile, Mapping) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def repeats_to_record(table: Any, wanted: int, skip: Iterable[Mapping[str, Any]] = ()) -> tuple[int, int]:
    """(configurations, measurements) still to record: configurations near a scenario cap (±30 %) or
    near the device's memory boundary with fewer than ``wanted`` clean repeats, and how many repeats they
    lack together. Configurations not measured yet are not counted (whether they lie near a cap is not
    known before their first pass), nor those in ``skip`` (re-measured elsewhere: ``table pack --supersede``)."""
    from ..tasks.deployment import scenarios

    scen = list(scenarios().values())
    device_mb = table_device_mb(table)
    skipped = {config_id(c) for c in skip}
    configs = measurements = 0
    for key in table.grid_keys():
        if skipped and config_id(table.configs.get(key) or {}) in skipped:
            continue
        reps = [m for m in table.measurements.get(key, []) if not m.get("contaminated")]
        if reps and needs_repeats(reps, scen, device_mb) and len(reps) < wanted:
            configs += 1
            measurements += wanted - len(reps)
    return configs, measurements


def missing_repeats(table: Any, wanted: int, skip: Iterable[Mapping[str, Any]] = ()) -> int:
    """Configurations near a scenario cap (±30 %) with fewer than ``wanted`` clean repeats."""
    return repeats_to_record(table, wanted, skip)[0]


def _line(key: str, n: int, pass_no: int, m: Mapping[str, Any], node: Mapping[str, Any] | None = None) -> str:
    metrics = m.get("metrics") or {}
    p95 = metrics.get("latency_p95_ms")
    mem = metrics.get("memory_peak_mb")
    text = (f"pass {pass_no} {key}: {m['status']}"
            + (f" p95={p95:.1f} ms" if p95 is not None else "")
            + (f" mem={mem:.0f} MB" if mem is not None else "")
            + f" cost={float(m.get('cost_s') or 0):.1f}s")
    if m.get("error"):
        text += f" ({m['error'].get('kind')}: {str(m['error'].get('message', '')).splitlines()[0][:100]})"
    if m.get("contaminated"):
        text += " [contaminated: other work disturbed every attempt; not counted]"
    elif int(m.get("attempts", 1)) > 1:
        why = ((metrics.get("contention") or {}).get("redone_for") or ["disturbed by other work"])[0]
        text += f" [redone {int(m['attempts']) - 1}x: {why}]"
    where = f" [on {node.get('label') or node.get('host') or node.get('id')}]" if node else ""
    return text + f" [clean repeats {n}]" + where
