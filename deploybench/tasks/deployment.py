"""The deployment space, the three scenarios, and the live task that measures on this machine.

The space follows the reference (seed-code §3) with its defects fixed: the vision transformer is
named for what it is (``vit_b_16``, ViT-B/16, 86M parameters; the reference called it ``vit_tiny``),
batch sizes form one ordinal domain (1..32, powers of two), and ``threads`` is active only for the
backends that run CPU thread pools.

Scenarios are immutable :class:`Scenario` records returned by :func:`scenarios` (no module-level
registry). Replay tasks (recorded tables) share the scenarios and the space through
:func:`deployment_space` so a table can declare its own grid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..outcome import ErrorKind, Outcome
from ..space import Categorical, Condition, Integer, Ordinal, SearchSpace
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
    "live_models_from_env",
]

MODELS: tuple[str, ...] = ("resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "vit_b_16")
BACKENDS: tuple[str, ...] = ("pytorch_eager", "torch_compile", "onnxruntime")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8_dynamic")
BATCH_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
#: backends whose CPU thread pool size is a real knob (torch_compile inherits the process default)
THREADED_BACKENDS: tuple[str, ...] = ("pytorch_eager", "onnxruntime")

#: environment variable: comma-separated model names that restrict the live space on this machine
LIVE_MODELS_ENV = "DEPLOYBENCH_LIVE_MODELS"
#: environment variables read by the live task (so they reach worker processes of any executor)
LIVE_DEVICE_ENV = "DEPLOYBENCH_LIVE_DEVICE"
LIVE_DATA_ENV = "DEPLOYBENCH_LIVE_DATA"
LIVE_WEIGHTS_ENV = "DEPLOYBENCH_LIVE_WEIGHTS"


def deployment_space(
    models: Sequence[str] | None = None,
    threads: tuple[int, int] = (1, 8),
    batch_sizes: Sequence[int] = BATCH_SIZES,
    backends: Sequence[str] = BACKENDS,
    precisions: Sequence[str] = PRECISIONS,
) -> SearchSpace:
    """The deployment search space. Arguments narrow the grid (a recorded table declares its own)."""
    models = tuple(models) if models else MODELS
    threaded = tuple(b for b in THREADED_BACKENDS if b in backends)
    params = [
        Categorical("model", choices=models),
        Categorical("backend", choices=tuple(backends)),
        Categorical("precision", choices=tuple(precisions)),
        Ordinal("batch_size", values=tuple(sorted(int(b) for b in batch_sizes)), log=True),
    ]
    if threaded:
        lo, hi = int(threads[0]), int(threads[1])
        params.append(Integer("threads", low=lo, high=hi, condition=Condition("backend", threaded)))
    return SearchSpace(params)


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
        return (Constraint(self.latency_metric, self.latency_cap_ms), Constraint("memory_peak_mb", self.memory_cap_mb))


def scenarios() -> dict[str, Scenario]:
    """The three scenarios of the reference (seed-code §3), keyed by name. A fresh dict per call."""
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


def live_models_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...] | None:
    """Models named in ``DEPLOYBENCH_LIVE_MODELS`` (to restrict live runs to what a machine can afford)."""
    env = os.environ if environ is None else environ
    raw = env.get(LIVE_MODELS_ENV, "").strip()
    if not raw:
        return None
    return tuple(m.strip() for m in raw.split(",") if m.strip())


_ERROR_KINDS = {k.value for k in ErrorKind}


class LiveTask(Task):
    """A scenario measured on this machine: each evaluation profiles the configuration in a fresh
    worker process (:func:`deploybench.live.profiler.profile`) under a hard wall-clock limit.

    Early stop: the worker aborts once its timed, post-warm-up iterations exceed 5× the latency cap
    (3× once a feasible configuration is known), and the trial counts as infeasible. ``cost_s`` is
    the wall time of the whole evaluation, process start included.

    Settings not in the space come from arguments or, when absent, from environment variables (so
    they reach case workers of any executor): ``DEPLOYBENCH_LIVE_MODELS`` (comma list restricting the
    model choices), ``DEPLOYBENCH_LIVE_DEVICE`` (auto|cpu|cuda), ``DEPLOYBENCH_LIVE_DATA`` (ImageFolder
    of ImageNet synset folders for measured accuracy), ``DEPLOYBENCH_LIVE_WEIGHTS`` (auto|pretrained|random).
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
    ) -> None:
        scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
        self.scenario = scenario
        self.models = tuple(models) if models else live_models_from_env()
        self.device = device or os.environ.get(LIVE_DEVICE_ENV, "auto")
        self.data_dir = data_dir if data_dir is not None else (os.environ.get(LIVE_DATA_ENV) or None)
        self.weights = weights or os.environ.get(LIVE_WEIGHTS_ENV, "auto")
        self.time_limit_s = float(time_limit_s)
        self._profile_fn = profile_fn
        if self.data_dir:
            from ..live.accuracy import resolve_data_dir

            resolve_data_dir(self.data_dir)  # a clear error now, not one crash per trial
        super().__init__(
            name=scenario.name,
            version=self.VERSION,
            space=deployment_space(models=self.models),
            objective=scenario.objective,
            constraints=scenario.constraints,
            default_budget=scenario.budget,
            metadata=TaskMetadata(
                kind="live",
                family_param="model",
                target="live",
                description=scenario.description + " (measured live on this machine)",
                reference="seed-code.md §3, §7, §11",
                extra={"device": self.device, "weights": self.weights, "data_dir": self.data_dir,
                       "header": self._header()},
            ),
        )

    def _header(self) -> str:
        models = ", ".join(self.models) if self.models else "all models"
        data = f"accuracy measured on {self.data_dir}" if self.data_dir else "documented accuracy (no --data)"
        return (f"live on this machine: device {self.device}, weights {self.weights}, {models}, {data}; "
                f"one fresh worker per trial, limit {self.time_limit_s:g} s")

    def signature_extra(self) -> Any:
        return {"device": self.device, "weights": self.weights, "data": bool(self.data_dir)}

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
    if objective is None and not early:
        return Outcome.crashed(ErrorKind.RUNTIME, f"the profiler reported no {task.objective.metric!r}",
                               cost_s=cost, metrics=metrics)
    return task.judge(metrics, cost, objective=objective, early_stopped=early)

