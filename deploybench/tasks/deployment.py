"""The deployment space, the three scenarios, and the live task that measures on this machine.

The grid is defined once in :mod:`deploybench.device_tables.grid` (models, backends, precisions, batch
sizes 1, 4 and 16, threads and runtime knobs, each active only where it applies). Scenarios are immutable
:class:`Scenario` records returned by :func:`scenarios` (no module-level registry); replay tasks share
them. The memory constraint judges the deployment footprint (``memory_peak_mb``: the artefact loaded
alone in a fresh worker), below the device's memory (a device profile: exceeding it is an ``oom``
crash). Accuracy-maximising scenarios also require the accuracy to be known (``accuracy_unknown <= 0``):
a precision whose accuracy is neither documented nor measured is never ranked as if it were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..device_tables.grid import (BACKENDS, BATCH_SIZES, MODELS, PRECISIONS, THREADED_BACKENDS, THREADS,
                               DeploymentGrid)
from ..outcome import ErrorKind, Outcome
from ..space import SearchSpace
from ..task import Constraint, EvalContext, Objective, Task, TaskMetadata

__all__ = [
    "MODELS",
    "BACKENDS",
    "PRECISIONS",
    "BATCH_SIZES",
    "THREADED_BACKENDS",
    "Scenario",
    "scenarios",
    "get_scenario",
    "deployment_space",
    "LiveTask",
]


def deployment_space(models: Sequence[str] | None = None, threads: Sequence[int] | None = None,
                     batch_sizes: Sequence[int] = BATCH_SIZES, backends: Sequence[str] = BACKENDS,
                     precisions: Sequence[str] = PRECISIONS) -> SearchSpace:
    """The deployment search space (:class:`~deploybench.device_tables.grid.DeploymentGrid`); arguments narrow it."""
    return DeploymentGrid(models=tuple(models) if models else MODELS, backends=tuple(backends),
                          precisions=tuple(precisions), batch_sizes=tuple(batch_sizes),
                          threads=tuple(threads) if threads else THREADS).space()


#: accuracy-maximising scenarios require a known accuracy: the metric is 1 when it is unknown
ACCURACY_KNOWN = Constraint("accuracy_unknown", 0.0, scale=1.0)


@dataclass(frozen=True)
class Scenario:
    """A deployment scenario: hard caps on latency and memory, an objective and a trial budget."""

    name: str
    latency_metric: str
    latency_cap_ms: float
    memory_cap_mb: float
    objective: Objective
    budget: int
    description: str

    @property
    def constraints(self) -> tuple[Constraint, ...]:
        caps = (Constraint(self.latency_metric, self.latency_cap_ms), Constraint("memory_peak_mb", self.memory_cap_mb))
        return caps + ((ACCURACY_KNOWN,) if self.objective.metric == "accuracy" else ())


def scenarios() -> dict[str, Scenario]:
    """The three deployment scenarios, keyed by name. A fresh dict per call."""
    items = (
        Scenario("edge_tight", "latency_p95_ms", 20.0, 512.0, Objective("accuracy", "maximize"), 25,
                 "edge device: p95 <= 20 ms, memory <= 512 MB, maximise accuracy"),
        Scenario("server_throughput", "latency_p99_ms", 100.0, 4096.0, Objective("throughput_sps", "maximize"), 25,
                 "server: p99 <= 100 ms, memory <= 4096 MB, maximise throughput (samples/s)"),
        Scenario("ultra_low_budget", "latency_p95_ms", 30.0, 1024.0, Objective("accuracy", "maximize"), 15,
                 "few trials: p95 <= 30 ms, memory <= 1024 MB, maximise accuracy, budget 15"),
    )
    return {s.name: s for s in items}


def get_scenario(name: str) -> Scenario:
    known = scenarios()
    if name not in known:
        raise KeyError(f"unknown deployment scenario {name!r}; known: {', '.join(known)}")
    return known[name]


_ERROR_KINDS = {k.value for k in ErrorKind}


class LiveTask(Task):
    """A scenario measured on this machine: each evaluation profiles the configuration in a fresh
    worker process (:func:`deploybench.live.profiler.profile`) under a hard wall-clock limit.

    Early stop: the worker aborts once the median of its timed, post-warm-up iterations exceeds 5× the
    latency cap (3× once a feasible configuration is known), never on a window other work disturbed,
    and the trial counts as infeasible; it reveals only what was measured up to the stop. ``cost_s`` is
    the wall time of the artefact's preparation plus the measuring worker, process start included.
    Every worker runs under the device profile's memory limit (``device_profile``, default ``host``);
    artefacts are prepared once per task and reused.

    Settings not in the space are arguments, which ``deploybench run --task-param`` sets (the case
    carries them to workers of any executor): ``models`` (restricting the model choices), ``device``
    (auto|cpu|cuda), ``data_dir`` (ImageFolder of ImageNet synset folders for measured accuracy),
    ``weights`` (auto|pretrained|random), ``device_profile`` (a name of :func:`device_profiles`).
    """

    VERSION = "1"

    def __init__(
        self,
        scenario: Scenario | str,
        *,
        models: Sequence[str] | None = None,
        device: str | None = None,
        data_dir: str | None = None,
        weights: str | None = None,
        time_limit_s: float = 120.0,
        profile_fn: Callable[[Any], Any] | None = None,
        device_profile: str | None = None,
    ) -> None:
        from ..live.devices import get_device_profile

        scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
        self.device_profile = get_device_profile(device_profile)
        self._artefact_dir: Any = None
        self.scenario = scenario
        self.models = tuple(models) if models else None
        self.device = device or "auto"
        self.data_dir = data_dir or None
        self.weights = weights or "auto"
        self.time_limit_s = float(time_limit_s)
        self._profile_fn = profile_fn
        if self.data_dir:
            from ..live.accuracy import resolve_data_dir

            resolve_data_dir(self.data_dir)  # a clear error now, not one crash per trial
        super().__init__(
            name=scenario.name,
            version=self.VERSION,
            space=deployment_space(models=self.models,
                                   threads=tuple(range(1, self.device_profile.max_threads + 1))),
            objective=scenario.objective,
            constraints=scenario.constraints,
            default_budget=scenario.budget,
            metadata=TaskMetadata(
                kind="live",
                family_param="model",
                target="live",
                description=scenario.description + " (measured live on this machine)",
                reference="docs/device-tables.md",
                extra={"device": self.device, "weights": self.weights, "data_dir": self.data_dir,
                       "header": self._header()},
            ),
        )

    def _header(self) -> str:
        models = ", ".join(self.models) if self.models else "all models"
        data = f"accuracy measured on {self.data_dir}" if self.data_dir else "documented accuracy per precision"
        p = self.device_profile
        mem = f"{p.memory_mb:g} MB" if p.memory_mb else "no emulated memory limit"
        return (f"live on this machine: device {self.device}, profile {p.name} ({p.max_threads} threads, {mem}), "
                f"weights {self.weights}, {models}, {data}; fresh workers per trial, limit {self.time_limit_s:g} s")

    def signature_extra(self) -> Any:
        return {"device": self.device, "weights": self.weights, "data": bool(self.data_dir),
                "profile": self.device_profile.to_json()}

    def _artefact_cache(self) -> str:
        import tempfile

        if self._artefact_dir is None:
            self._artefact_dir = tempfile.TemporaryDirectory(prefix="deploybench-artefacts-")
        return self._artefact_dir.name

    def close(self) -> None:
        if self._artefact_dir is not None:
            self._artefact_dir.cleanup()
            self._artefact_dir = None

    def request_for(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Any:
        """The profiler request for ``config`` (early stop 5×, 3× once a feasible config is known)."""
        from ..live.profiler import ProfileRequest

        context = context or EvalContext()
        factor = 3.0 if context.feasible_found else 5.0
        limit = self.time_limit_s if context.time_limit_s is None else min(self.time_limit_s, context.time_limit_s)
        return ProfileRequest(
            config=dict(config),
            latency_cap_ms=self.scenario.latency_cap_ms,
            latency_metric=self.scenario.latency_metric,
            early_stop_factor=factor,
            time_limit_s=limit,
            device=self.device,
            data_dir=self.data_dir,
            weights=self.weights,
            device_profile=self.device_profile.name,
            memory_limit_mb=self.device_profile.memory_mb,
            artefact_cache=self._artefact_cache(),
        )

    def evaluate(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Outcome:
        request = self.request_for(config, context)
        if self._profile_fn is not None:
            measurement = self._profile_fn(request)
        else:
            from ..live.profiler import profile

            measurement = profile(request)
        return self.outcome_from(measurement)

    def outcome_from(self, measurement: Any) -> Outcome:
        """Judge a :class:`~deploybench.live.profiler.Measurement` against this scenario."""
        return measurement_to_outcome(self, measurement)


def measurement_to_outcome(task: Task, measurement: Any) -> Outcome:
    """Shared by live and replay tasks: a profiler measurement (object or dict) becomes an outcome."""
    data = measurement.to_dict() if hasattr(measurement, "to_dict") else dict(measurement)
    metrics = dict(data.get("metrics") or {})
    stages = data.get("stages") or {}
    if stages:
        metrics.setdefault("stages", stages)
    if int(data.get("attempts") or 1) > 1:
        metrics["measurement_attempts"] = int(data["attempts"])  # redone by the contention guard
    if data.get("contaminated"):
        metrics["contaminated"] = True  # disturbed by other work on every retry: not a clean figure
    cost = max(0.0, float(data.get("cost_s") or 0.0))
    status = data.get("status")
    error = data.get("error") or {}
    if status == "timeout":
        return Outcome.timed_out(error.get("message", "timed out"), cost_s=cost, metrics=metrics)
    if status == "crashed":
        kind = error.get("kind", "runtime")
        kind = kind if kind in _ERROR_KINDS else "runtime"
        return Outcome.crashed(kind, error.get("message", "crashed"), cost_s=cost, metrics=metrics)
    early = status == "early_stopped"
    objective = metrics.get(task.objective.metric)
    known_constraint = any(c.metric == "accuracy_unknown" for c in task.constraints)
    if task.objective.metric == "accuracy" and not early and objective is None and known_constraint:
        metrics.setdefault("accuracy_unknown", 1.0)  # ran; its accuracy is documented nowhere: infeasible here
        return task.judge(metrics, cost, objective=None)
    if objective is None and not early:
        return Outcome.crashed(ErrorKind.RUNTIME, f"the profiler reported no {task.objective.metric!r}",
                               cost_s=cost, metrics=metrics)
    return task.judge(metrics, cost, objective=objective, early_stopped=early)

