"""The task ``deploybench tune`` searches: your model(s) on this machine, under your caps.

A :class:`TuneTask` is a live deployment task built from a :class:`TuneSpec` instead of a registered
scenario: the deployment grid restricted to the user's models and knobs, the user's caps as
constraints, and each evaluation a fresh-process measurement with the suite's rules (artefact
prepared apart, deployment footprint under the device's memory limit, executed precision checked,
contention guard). It is an ordinary :class:`~deploybench.task.Task`, so the runner drives it and a
run resumes like ``deploybench run``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..device_tables.grid import BATCH_SIZES, MEMORY_FORMATS, PRECISIONS, DeploymentGrid
from ..live.inputs import layout_applies
from ..locking import exclusive_lock
from ..outcome import Outcome
from ..task import Constraint, EvalContext, Objective, Task, TaskMetadata

__all__ = ["TuneSpec", "TuneTask", "OBJECTIVES", "THROUGHPUT_SHORTFALL", "DEFAULT_TUNE_OPTIMIZER", "TuneInputError"]

#: the objectives a user can ask for (``auto``: accuracy when it is documented or measurable, else throughput)
OBJECTIVES = ("auto", "accuracy", "throughput", "latency")
#: derived metric of the minimum-throughput cap: how far a configuration falls short, in samples/s
THROUGHPUT_SHORTFALL = "throughput_shortfall_sps"
#: the fp32 model's accuracy on the user's data minus the deployment's (``--max-accuracy-drop`` caps it)
ACCURACY_DROP = "accuracy_drop"
#: the best optimizer of the published leaderboard (``leaderboard/README.md``, "Across tasks": rank 1 by
#: average rank over every shipped task, significantly better than 9 of the 12 others over seed pairs;
#: ``cbo_plus`` has the best mean on more of the deployment scenarios). A test checks this
#: against the leaderboard, so the default follows the published ranking.
DEFAULT_TUNE_OPTIMIZER = "cbo"


class TuneInputError(ValueError):
    """Bad input to ``tune`` or ``probe`` (a model that does not build, caps that cannot hold...)."""


@dataclass(frozen=True)
class TuneSpec:
    """Everything ``deploybench tune`` is asked (stored as given; :meth:`validate` checks it).

    - ``models``: model texts (:func:`deploybench.live.sources.parse_model_source`); ``input_shape``
      (one float input) or ``inputs`` (``--input NAME:SHAPE[:DTYPE[:LOW..HIGH]]``, repeated: several
      inputs, integer inputs, dynamic axes; :mod:`deploybench.live.inputs`) for factories and ONNX files
      with symbolic sizes;
    - caps: ``p95_ms``, ``p99_ms`` (latency per batch), ``memory_mb`` (deployment footprint),
      ``min_throughput_sps``; at least one is needed;
    - ``objective``: one of :data:`OBJECTIVES`;
    - device: ``device_profile`` (``host``, ``cpu``, ``edge``), optionally overridden by
      ``device_memory_mb`` / ``device_threads`` (an emulated device of your own);
    - the space: ``backends``, ``precisions``, ``batch_sizes``, ``threads`` narrow the grid;
    - search: ``optimizer`` (default :data:`DEFAULT_TUNE_OPTIMIZER`), ``budget`` trials and/or
      ``budget_seconds`` of measured cost, ``seed``;
    - recommendation: ``candidates`` re-measured ``repeats`` times each; a candidate is robust when the
      one-sided Clopper-Pearson lower bound of its feasibility rate at ``confidence`` is at least
      ``min_feasible_rate``;
    - ``data_dir``: your data (an ``.npz`` or ``module:function``, :mod:`deploybench.live.user_data`)
      or a labelled ImageNet-synset folder, for measured accuracy; ``max_accuracy_drop`` caps the loss
      against the fp32 model on that data; ``allow_unmeasured_accuracy`` lets the search (and the
      recommendation) use a lower precision whose accuracy is neither measured nor documented;
    - ``weights``, ``device`` (auto|cpu|cuda), ``time_limit_s`` per worker, ``lock`` (an flock file
      shared with recorders).
    """

    models: tuple[str, ...]
    input_shape: str | None = None
    inputs: tuple[str, ...] | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    memory_mb: float | None = None
    min_throughput_sps: float | None = None
    objective: str = "auto"
    device_profile: str = "host"
    device_memory_mb: float | None = None
    device_threads: int | None = None
    backends: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    batch_sizes: tuple[int, ...] | None = None
    threads: tuple[int, ...] | None = None
    optimizer: str = DEFAULT_TUNE_OPTIMIZER
    budget: int = 25
    budget_seconds: float | None = None
    seed: int = 0
    candidates: int = 3
    repeats: int = 5
    confidence: float = 0.9
    min_feasible_rate: float = 0.5
    data_dir: str | None = None
    max_accuracy_drop: float | None = None
    allow_unmeasured_accuracy: bool = False
    weights: str = "auto"
    device: str = "cpu"
    time_limit_s: float = 120.0
    lock: str | None = None

    def validate(self) -> None:
        """Raise :class:`TuneInputError` on options that cannot work, before anything is measured."""
        from .recommendation import required_repeats

        if not self.models:
            raise TuneInputError("give at least one model (a torchvision name, package.module:function or a .onnx file)")
        caps = {"--p95-ms": self.p95_ms, "--p99-ms": self.p99_ms, "--memory-mb": self.memory_mb,
                "--min-throughput": self.min_throughput_sps}
        if all(v is None for v in caps.values()):
            raise TuneInputError("give at least one cap: --p95-ms, --p99-ms, --memory-mb or --min-throughput")
        for flag, value in caps.items():
            if value is not None and not value > 0:
                raise TuneInputError(f"{flag} must be positive, got {value}")
        if self.objective not in OBJECTIVES:
            from ..errors import did_you_mean

            raise TuneInputError(f"unknown objective {self.objective!r}; allowed: {', '.join(OBJECTIVES)}"
                                 + did_you_mean(self.objective, list(OBJECTIVES)))
        if self.max_accuracy_drop is not None:
            if not self.data_dir:
                raise TuneInputError("--max-accuracy-drop needs --data: the drop against fp32 is measured on your data")
            if not 0 <= self.max_accuracy_drop < 1:
                raise TuneInputError(f"--max-accuracy-drop is a share of samples in [0, 1), got {self.max_accuracy_drop}")
        if self.budget < 1:
            raise TuneInputError(f"--budget must be at least 1 trial, got {self.budget}")
        if self.budget_seconds is not None and not self.budget_seconds > 0:
            raise TuneInputError(f"--budget-seconds must be positive, got {self.budget_seconds}")
        if self.candidates < 1 or self.repeats < 1:
            raise TuneInputError("--candidates and --repeats must be at least 1")
        if not 0 < self.confidence < 1 or not 0 < self.min_feasible_rate < 1:
            raise TuneInputError("--confidence and --min-feasible-rate must lie strictly between 0 and 1")
        need = required_repeats(self.confidence, self.min_feasible_rate)
        if self.repeats < need:
            raise TuneInputError(
                f"with {self.repeats} repeats no candidate can show a feasibility rate of at least "
                f"{self.min_feasible_rate:g} at confidence {self.confidence:g} (even {self.repeats}/{self.repeats} "
                f"feasible repeats are not enough): use --repeats {need} or more, or lower --min-feasible-rate")
        for flag, values, known in (("--precisions", self.precisions, PRECISIONS),):
            for v in values or ():
                if v not in known:
                    from ..errors import did_you_mean

                    raise TuneInputError(f"unknown precision {v!r} in {flag}; allowed: {', '.join(known)}"
                                         + did_you_mean(v, list(known)))

    @property
    def latency_cap(self) -> tuple[str, float] | None:
        """The cap the live early stop watches: p95 when given, else p99."""
        if self.p95_ms is not None:
            return "latency_p95_ms", float(self.p95_ms)
        if self.p99_ms is not None:
            return "latency_p99_ms", float(self.p99_ms)
        return None

    def constraints(self, accuracy_objective: bool) -> tuple[Constraint, ...]:
        from ..tasks.deployment import ACCURACY_KNOWN

        out = []
        if self.p95_ms is not None:
            out.append(Constraint("latency_p95_ms", float(self.p95_ms)))
        if self.p99_ms is not None:
            out.append(Constraint("latency_p99_ms", float(self.p99_ms)))
        if self.memory_mb is not None:
            out.append(Constraint("memory_peak_mb", float(self.memory_mb)))
        if self.min_throughput_sps is not None:
            out.append(Constraint(THROUGHPUT_SHORTFALL, 0.0, scale=float(self.min_throughput_sps)))
        if accuracy_objective:
            out.append(ACCURACY_KNOWN)
        if self.max_accuracy_drop is not None:
            out.append(Constraint(ACCURACY_DROP, float(self.max_accuracy_drop)))
        return tuple(out)

    def to_json(self) -> dict:
        from dataclasses import asdict

        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def resolve_device(spec: TuneSpec) -> Any:
    """The device profile to emulate: a built-in one, with the user's memory/threads overrides."""
    from ..live.devices import DeviceProfile, get_device_profile

    try:
        base = get_device_profile(spec.device_profile)
    except ValueError as exc:
        raise TuneInputError(str(exc)) from None
    if spec.device_memory_mb is None and spec.device_threads is None:
        return base
    if spec.device_memory_mb is not None and not spec.device_memory_mb > 0:
        raise TuneInputError(f"--device-memory-mb must be positive, got {spec.device_memory_mb}")
    if spec.device_threads is not None and spec.device_threads < 1:
        raise TuneInputError(f"--device-threads must be at least 1, got {spec.device_threads}")
    memory = spec.device_memory_mb if spec.device_memory_mb is not None else base.memory_mb
    threads = spec.device_threads if spec.device_threads is not None else base.max_threads
    return DeviceProfile(f"{base.name}-custom", int(threads), memory,
                         f"{base.description}; overridden: {threads} threads, "
                         + (f"{memory:g} MB" if memory else "no memory limit"),
                         trial_time_limit_s=base.trial_time_limit_s, stands_for=base.stands_for,
                         backends=base.backends)


def accuracy_measurable(spec: TuneSpec, sources: Sequence[Any]) -> bool:
    """Whether trials measure accuracy: your data (``.npz`` or ``module:function``) for any model, or an
    ImageNet-synset folder for the zoo's and torchvision's classifiers."""
    from ..live.user_data import is_user_data

    return bool(spec.data_dir) and (is_user_data(spec.data_dir) or all(s.kind in ("zoo", "torchvision")
                                                                        for s in sources))


def resolve_objective(spec: TuneSpec, sources: Sequence[Any]) -> Objective:
    """The objective asked for; ``auto`` is accuracy when every model's accuracy is documented or can be
    measured, else throughput. Accuracy for a model whose accuracy is known nowhere is refused."""
    from ..live.models import accuracy_for

    documented = all(accuracy_for(s.label, "fp32", "onnxruntime")[0] is not None for s in sources)
    measurable = accuracy_measurable(spec, sources)
    kind = spec.objective
    if kind == "auto":
        kind = "accuracy" if (documented or measurable) else "throughput"
    if kind == "accuracy" and not (documented or measurable):
        unknown = [s.label for s in sources if accuracy_for(s.label, "fp32", "onnxruntime")[0] is None]
        raise TuneInputError(f"objective accuracy: the accuracy of {', '.join(unknown)} is documented nowhere and "
                             "cannot be measured here (give --data: an .npz or module:function of your samples); "
                             "use --objective throughput or latency")
    if kind == "accuracy":
        return Objective("accuracy", "maximize")
    if kind == "throughput":
        return Objective("throughput_sps", "maximize")
    metric = spec.latency_cap[0] if spec.latency_cap else "latency_p95_ms"
    return Objective(metric, "minimize")


def tune_grid(spec: TuneSpec, sources: Sequence[Any], device: Any) -> tuple[DeploymentGrid, list[str]]:
    """The deployment grid of the user's models, narrowed by the options; returns notes on what was
    restricted and why."""
    from ..device_tables.grid import BACKENDS, KNOWN_BACKENDS

    notes = []
    openvino = importlib.util.find_spec("openvino") is not None
    backends = tuple(spec.backends) if spec.backends else BACKENDS + (("openvino",) if openvino else ())
    unknown = [b for b in backends if b not in KNOWN_BACKENDS]
    if unknown:
        from ..errors import did_you_mean

        raise TuneInputError(f"unknown backend {unknown[0]!r}; allowed: {', '.join(KNOWN_BACKENDS)}"
                             + did_you_mean(unknown[0], list(KNOWN_BACKENDS)))
    if "openvino" in backends and not openvino:
        raise TuneInputError('--backends openvino: OpenVINO is not installed here; install the live extra '
                             '(`pip install ".[live]"` in the checkout), which brings openvino and nncf')
    if not spec.backends and not openvino:
        notes.append("OpenVINO is not installed: the search leaves the openvino backend out")
    unavailable = [b for b in backends if not device.allows(b)]
    if unavailable and spec.backends:
        raise TuneInputError(f"--backends {','.join(unavailable)}: the {device.name} device profile cannot run it "
                             f"({device.description}); its backends: {', '.join(device.backends)}")
    if unavailable:
        backends = tuple(b for b in backends if device.allows(b))
        notes.append(f"the {device.name} device profile has no {', '.join(unavailable)} ({device.description}): "
                     "the search leaves it out")
    if any(s.kind == "onnx" for s in sources):
        runs = tuple(b for b in backends if b in ("onnxruntime", "openvino"))
        if not runs:
            raise TuneInputError("an ONNX file runs on onnxruntime or openvino; --backends excludes both")
        if runs != backends:
            notes.append(f"an ONNX file has no PyTorch module: the search uses {' and '.join(runs)} only")
        backends = runs
    batch_sizes = tuple(spec.batch_sizes) if spec.batch_sizes else BATCH_SIZES
    if any(b < 1 for b in batch_sizes):
        raise TuneInputError(f"--batch-sizes must be positive integers, got {list(batch_sizes)}")
    fixed = {s.fixed_batch for s in sources if s.fixed_batch}
    if fixed:
        if len(fixed) > 1:
            raise TuneInputError(f"the ONNX files have different fixed batch sizes {sorted(fixed)}; tune them apart")
        batch_sizes = (fixed.pop(),)
        notes.append(f"the ONNX file's batch dimension is fixed: batch size {batch_sizes[0]} only")
    threads = tuple(spec.threads) if spec.threads else tuple(range(1, device.max_threads + 1))
    over = [t for t in threads if t < 1 or t > device.max_threads]
    if over:
        raise TuneInputError(f"--threads {over} outside the device's 1..{device.max_threads} threads")
    precisions = tuple(spec.precisions) if spec.precisions else PRECISIONS
    memory_formats = MEMORY_FORMATS
    if not all(layout_applies(s.input_specs) for s in sources):
        memory_formats = ("contiguous",)
        if "pytorch_eager" in backends:
            notes.append("the channels_last layout applies to one image input (C,H,W) only: the search keeps "
                         "the contiguous layout")
    grid = DeploymentGrid(models=tuple(s.label for s in sources), backends=backends, precisions=precisions,
                          batch_sizes=batch_sizes, threads=threads, memory_formats=memory_formats)
    return grid, notes


def _unknown_accuracy_notes(grid: DeploymentGrid) -> list[str]:
    """Which (model, backend, precision) combinations of the grid have no documented accuracy: under an
    accuracy objective they run but can never be feasible, and the user should know before the search."""
    from ..live.models import accuracy_for

    unknown = sorted({f"{b} {p}" for m in grid.models for b in grid.backends for p in grid.precisions
                      if accuracy_for(m, p, b)[0] is None})
    if not unknown:
        return []
    which = grid.models[0] if len(grid.models) == 1 else "some of the models"
    return [f"objective accuracy: {', '.join(unknown)} have no documented accuracy for {which}, so those "
            "configurations count as infeasible; --objective throughput ranks "
            "them by speed, --data measures their accuracy, --precisions leaves them out"]


class TuneTask(Task):
    """Live measurements of the user's models under the user's caps (see the module docstring).

    ``profile_fn`` replaces the live profiler (tests); ``artefact_dir`` keeps prepared artefacts (the
    recommended one is copied from there into the report).
    """

    VERSION = "1"

    def __init__(self, spec: TuneSpec, sources: Sequence[Any], *, artefact_dir: str,
                 profile_fn: Callable[[Any], Any] | None = None, exclusions: Sequence[Any] = ()) -> None:
        from dataclasses import replace

        self.spec = spec
        self.sources = {s.label: s for s in sources}
        self.device_profile = resolve_device(spec)
        objective = resolve_objective(spec, sources)
        grid, self.notes = tune_grid(spec, sources, self.device_profile)
        self.exclusions = list(exclusions)
        if self.exclusions:
            grid = replace(grid, excluded=tuple(e.match for e in self.exclusions))
            try:
                grid.runtimes()
            except ValueError:
                raise TuneInputError("nothing left to search: every backend and precision asked for is known not to "
                                     "run here (" + "; ".join(e.describe() for e in self.exclusions) + "); widen "
                                     "--backends or --precisions") from None
            self.notes += [f"left out of the search: {e.describe()}" for e in self.exclusions]
        self.grid = grid
        if objective.metric == "accuracy" and not spec.data_dir:
            self.notes += _unknown_accuracy_notes(grid)
        self.artefact_dir = artefact_dir
        self._profile_fn = profile_fn
        self.redone = 0
        self.reference: dict[str, dict] = {}
        #: the data trials measure accuracy on: ``--data`` itself, or the prepared sample of your data
        self.data_path = spec.data_dir
        super().__init__(
            name="tune", version=self.VERSION, space=grid.space(), objective=objective,
            # the budget is the run's, not the task's: a resumed run may extend it with the same task identity
            constraints=spec.constraints(objective.metric == "accuracy"), default_budget=25,
            metadata=TaskMetadata(kind="live", family_param="model", target=self.device_profile.name,
                                  description=self.describe_line(objective)),
        )

    def with_reference(self, reference: Mapping[str, Mapping[str, Any]]) -> None:
        """The fp32 model's top-1 classes (and accuracy, with labels) on the user's data, per model: what
        every trial's accuracy drop is measured against."""
        self.reference = {k: dict(v) for k, v in reference.items()}

    def _judge_accuracy(self, data: dict, config: Mapping[str, Any] | None) -> dict:
        import numpy as np

        metrics = dict(data.get("metrics") or {})
        preds = metrics.pop("predictions", None)
        if preds is None:
            return data
        ref = self.reference.get(str((config or {}).get("model")))
        if ref is not None and len(ref.get("predictions") or ()) == len(preds):
            agreement = float(np.mean(np.asarray(preds) == np.asarray(ref["predictions"])))
            metrics["agreement_with_fp32"] = round(agreement, 6)
            if metrics.get("accuracy") is None:
                metrics.update(accuracy=round(agreement, 6),
                               accuracy_source="measured on your data (agreement with the fp32 model's top-1)")
            baseline = ref.get("accuracy") if ref.get("accuracy") is not None else 1.0
            metrics[ACCURACY_DROP] = round(float(baseline) - float(metrics["accuracy"]), 6)
            metrics["accuracy_unknown"] = 0.0
        return {**data, "metrics": metrics}

    def describe_line(self, objective: Objective) -> str:
        caps = ", ".join(f"{c.metric} <= {c.cap:g}" for c in self.spec.constraints(False)
                         if c.metric != THROUGHPUT_SHORTFALL)
        if self.spec.min_throughput_sps is not None:
            caps += (", " if caps else "") + f"throughput >= {self.spec.min_throughput_sps:g}/s"
        p = self.device_profile
        mem = f"{p.memory_mb:g} MB" if p.memory_mb else "no memory limit"
        return (f"{', '.join(self.sources)} on {p.name} ({p.max_threads} threads, {mem}): {caps}; "
                f"{objective.direction} {objective.metric}")

    def signature_extra(self) -> Any:
        return {"sources": [s.to_json() for s in self.sources.values()], "device": self.device_profile.to_json(),
                "weights": self.spec.weights, "data": bool(self.spec.data_dir), "runtime_device": self.spec.device}

    def request_for(self, config: Mapping[str, Any], context: EvalContext | None = None,
                    early_stop: bool = True) -> Any:
        """The profiler request of ``config`` (early stop at 5x the latency cap, 3x once a feasible
        configuration is known, as in the live scenarios)."""
        from ..live.profiler import ProfileRequest

        context = context or EvalContext()
        config = self.grid.expand(config)  # a joint runtime value back to backend and precision
        cap = self.spec.latency_cap
        limit = self.spec.time_limit_s if context.time_limit_s is None else min(self.spec.time_limit_s,
                                                                               context.time_limit_s)
        source = self.sources.get(str(config["model"]))
        return ProfileRequest(
            config=dict(config), latency_cap_ms=cap[1] if cap else None,
            latency_metric=cap[0] if cap else "latency_p95_ms",
            early_stop_factor=(3.0 if context.feasible_found else 5.0) if early_stop else 0.0,
            time_limit_s=limit, device=self.spec.device, data_dir=self.data_path, weights=self.spec.weights,
            device_profile=self.device_profile.name, memory_limit_mb=self.device_profile.memory_mb,
            artefact_cache=self.artefact_dir,
            source=source.to_json() if source is not None and source.custom else None,
        )

    def measure(self, request: Any) -> Any:
        """One live measurement (under the shared lock when one is set)."""
        with exclusive_lock(self.spec.lock):
            if self._profile_fn is not None:
                return self._profile_fn(request)
            from ..live.profiler import profile

            return profile(request)

    def evaluate(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Outcome:
        return self.outcome_from(self.measure(self.request_for(config, context)), config)

    def outcome_from(self, measurement: Any, config: Mapping[str, Any] | None = None) -> Outcome:
        """Judge a measurement against the user's caps (the minimum throughput as a shortfall); with
        your data, its accuracy and drop against the fp32 reference (:meth:`with_reference`)."""
        from ..tasks.deployment import measurement_to_outcome

        data = measurement.to_dict() if hasattr(measurement, "to_dict") else dict(measurement)
        data = self._judge_accuracy(data, config)
        self.redone += max(0, int(data.get("attempts") or 1) - 1)
        if self.spec.min_throughput_sps is not None:
            metrics = dict(data.get("metrics") or {})
            tput = metrics.get("throughput_sps")
            if tput is not None:
                metrics[THROUGHPUT_SHORTFALL] = max(0.0, float(self.spec.min_throughput_sps) - float(tput))
            data = {**data, "metrics": metrics}
        return measurement_to_outcome(self, data)
