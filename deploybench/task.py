"""The task contract: a space, an objective, hard constraints, a budget and ``evaluate``.

Tasks turn raw measurements into :class:`~deploybench.outcome.Outcome` objects through
:meth:`Task.judge`, so every task shares one definition of feasibility and violation.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from . import direction as direction_
from .fidelity import FULL, Fidelity, check_fidelities, find_fidelity
from .outcome import Outcome, Status
from .space import SearchSpace

__all__ = ["Objective", "Constraint", "TaskMetadata", "EvalContext", "Task", "TaskSpec", "TaskParam", "TASK_KINDS"]

TASK_KINDS = ("analytic", "replay", "live")


@dataclass(frozen=True)
class Objective:
    """The metric to optimise and its direction (``maximize`` or ``minimize``)."""

    metric: str
    direction: str = "maximize"

    def __post_init__(self) -> None:
        direction_.check(self.direction)

    @property
    def sign(self) -> float:
        """+1 when larger is better, -1 otherwise (multiply to get a maximised value)."""
        return direction_.sign(self.direction)

    def better(self, a: float, b: float | None) -> bool:
        """Whether ``a`` is strictly better than ``b`` (anything beats ``None``)."""
        return direction_.better(a, b, self.direction)


@dataclass(frozen=True)
class Constraint:
    """``measured <= cap``. The violation is ``max(0, measured - cap) / scale``; the scale is the cap
    itself when it is positive, else the declared ``scale`` (for synthetic ``g <= 0`` constraints)."""

    metric: str
    cap: float
    scale: float | None = None

    def __post_init__(self) -> None:
        if self.cap <= 0 and (self.scale is None or self.scale <= 0):
            raise ValueError(f"constraint on {self.metric!r}: a cap <= 0 needs a positive scale")

    @property
    def effective_scale(self) -> float:
        if self.scale is not None:
            return float(self.scale)
        return float(self.cap)

    def violation(self, measured: float) -> float:
        return max(0.0, float(measured) - self.cap) / self.effective_scale

    def to_json(self) -> dict:
        return {"metric": self.metric, "cap": self.cap, "scale": self.effective_scale}


@dataclass(frozen=True)
class TaskMetadata:
    """Facts about a task that scoring and optimizers may use.

    ``known_optimum`` is the best feasible objective where it is known; ``family_param`` names the
    parameter whose values are model "families" (for the discovery metric and diversity gates);
    ``target`` names the device or table the task measures.

    ``penalty`` is the objective a seed that found no feasible configuration is scored with on the
    leaderboard: the task's worst feasible objective (declared, or derived from its ground truth),
    so no seed that found nothing scores better than one that found something, and the score never
    depends on which other optimizers ran. ``None``: the task declares none (scoring then falls back
    to the worst feasible objective observed in the table, and says so).
    """

    kind: str = "analytic"
    known_optimum: float | None = None
    penalty: float | None = None
    family_param: str | None = None
    best_family: Any = None
    target: str = "analytic"
    description: str = ""
    reference: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind must be one of {TASK_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class EvalContext:
    """What the harness tells a task about the evaluation in flight.

    ``seed`` and ``trial`` make stochastic tasks (noise, replayed repeats) deterministic per case;
    ``feasible_found`` lets live tasks tighten their early-stop rule once a feasible configuration is known.
    ``fidelity`` names the level to evaluate at (``full`` unless the task declares cheaper levels and
    the optimizer asked for one; see :meth:`Task.evaluate_at`).
    """

    seed: int = 0
    trial: int = 0
    feasible_found: bool = False
    time_limit_s: float | None = None
    fidelity: str = "full"


class Task(ABC):
    """Base class of every task. Subclasses set the attributes in ``__init__`` and implement
    :meth:`evaluate`.

    Multi-fidelity tasks (see :mod:`deploybench.fidelity`) set ``fidelities`` (ordered, the last is
    ``full``), read ``context.fidelity`` in :meth:`evaluate` and may declare ``default_budget_seconds``
    (the budget in seconds of charged cost; ``default_budget`` then caps the trial count). Tasks that
    set neither behave exactly as before: one ``full`` level, a budget in trials.
    """

    name: str
    version: str
    space: SearchSpace
    objective: Objective
    constraints: tuple[Constraint, ...]
    default_budget: int
    metadata: TaskMetadata
    fidelities: tuple[Fidelity, ...] = (FULL,)
    default_budget_seconds: float | None = None

    def __init__(
        self,
        *,
        name: str,
        version: str,
        space: SearchSpace,
        objective: Objective,
        constraints: Sequence[Constraint],
        default_budget: int,
        metadata: TaskMetadata,
    ) -> None:
        self.name = name
        self.version = version
        self.space = space
        self.objective = objective
        self.constraints = tuple(constraints)
        self.default_budget = int(default_budget)
        self.metadata = metadata

    @abstractmethod
    def evaluate(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Outcome:
        """Evaluate a configuration the harness has already validated, at ``context.fidelity``."""

    def declare_fidelities(self, fidelities: Sequence[Fidelity], budget_seconds: float | None = None) -> None:
        """Set the task's levels (checked: unique names, cheapest first, ``full`` last) and its budget in
        seconds of charged cost. Call from ``__init__``."""
        self.fidelities = check_fidelities(fidelities)
        if budget_seconds is not None and not budget_seconds > 0:
            raise ValueError(f"budget_seconds must be positive, got {budget_seconds!r}")
        self.default_budget_seconds = None if budget_seconds is None else float(budget_seconds)

    @property
    def multi_fidelity(self) -> bool:
        """True when the task offers a level cheaper than ``full``."""
        return len(self.fidelities) > 1

    def fidelity(self, name: str) -> Fidelity:
        """The declared level called ``name`` (an unknown name raises a ``ValueError`` naming the levels)."""
        return find_fidelity(self.fidelities, name)

    def evaluate_at(self, config: Mapping[str, Any], fidelity: str = "full",
                    context: EvalContext | None = None) -> Outcome:
        """``evaluate(config)`` at the level ``fidelity``: the harness's one way in. Checks the level
        exists and labels the outcome with it (predicted for simulator levels), so single-fidelity
        tasks need no change: ``evaluate_at(c, "full")`` is ``evaluate(c)``."""
        level = self.fidelity(fidelity)
        context = context or EvalContext()
        if context.fidelity != level.name:
            context = replace(context, fidelity=level.name)
        outcome = self.evaluate(config, context)
        if isinstance(outcome, Outcome) and (outcome.fidelity != level.name or outcome.predicted != level.predicts):
            outcome = outcome.at_fidelity(level.name, level.predicts)
        return outcome

    # -- shared semantics ------------------------------------------------------------------------
    def judge(
        self,
        metrics: Mapping[str, Any],
        cost_s: float,
        *,
        objective: float | None = None,
        early_stopped: bool = False,
    ) -> Outcome:
        """Turn measurements into an outcome: violations per constraint, status ok or infeasible.

        ``objective`` defaults to ``metrics[self.objective.metric]``. Early-stopped trials are
        infeasible whatever their partial measurements say.
        """
        if objective is None and self.objective.metric in metrics:
            objective = metrics[self.objective.metric]
        violation = {}
        for c in self.constraints:
            if c.metric in metrics and metrics[c.metric] is not None:
                violation[c.metric] = c.violation(metrics[c.metric])
        violated = any(v > 0 for v in violation.values())
        status = Status.INFEASIBLE if (violated or early_stopped) else Status.OK
        return Outcome(status, objective=objective, metrics=metrics, violation=violation, cost_s=cost_s,
                       early_stopped=early_stopped)

    def signature(self) -> str:
        """A hash of everything that defines the task's results: name, version, space, objective,
        constraints, budget and target. Results with different signatures do not compare."""
        blob = json.dumps(
            {
                "name": self.name,
                "version": self.version,
                "space": self.space.to_json(),
                "objective": [self.objective.metric, self.objective.direction],
                "constraints": [c.to_json() for c in self.constraints],
                "budget": self.default_budget,
                "target": self.metadata.target,
                "extra": self.signature_extra(),
                **self._fidelity_signature(),
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _fidelity_signature(self) -> dict:
        """Fidelity levels and a seconds budget enter the signature only when declared, so the
        signatures of single-fidelity tasks (and the records keyed by them) do not change."""
        out: dict = {}
        if self.multi_fidelity:
            out["fidelities"] = [f.to_json() for f in self.fidelities]
        if self.default_budget_seconds is not None:
            out["budget_seconds"] = float(self.default_budget_seconds)
        return out

    def signature_extra(self) -> Any:
        """Subclasses add what else defines them (a replay table's hash, for instance)."""
        return None

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.metadata.kind,
            "target": self.metadata.target,
            "objective": {"metric": self.objective.metric, "direction": self.objective.direction},
            "constraints": [c.to_json() for c in self.constraints],
            "default_budget": self.default_budget,
            "default_budget_seconds": self.default_budget_seconds,
            "fidelities": [f.to_json() for f in self.fidelities],
            "known_optimum": self.metadata.known_optimum,
            "family_param": self.metadata.family_param,
            "signature": self.signature(),
            "space": self.space.to_json(),
        }

    def close(self) -> None:
        """Release resources (worker pools, files). Called by the harness when a case ends."""

    def __repr__(self) -> str:
        return f"<Task {self.name}[{self.metadata.target}] v{self.version}>"


@dataclass(frozen=True)
class TaskParam:
    """A setting a task takes besides its target (``--task-param edge_tight.device_profile=edge``).

    ``choices`` lists the allowed values when there are few; ``kind`` reads a command-line value
    (``str``, ``int``, ``float``, or ``"csv"`` for a comma list, which becomes a tuple). A parameter
    that changes what the task measures must show in its :meth:`Task.signature_extra`, so a case
    recorded under another value refuses ``--resume``.
    """

    name: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    kind: Any = str

    def read(self, value: Any) -> Any:
        """``value`` (a command-line string, or an already typed value) in this parameter's type;
        ``ValueError`` saying what is allowed when it does not fit."""
        if self.kind == "csv":
            items = value if isinstance(value, (list, tuple)) else str(value).split(",")
            out = tuple(str(v).strip() for v in items if str(v).strip())
            bad = [v for v in out if self.choices is not None and v not in self.choices]
            allowed = ", ".join(map(str, self.choices)) if self.choices else "names"
            if not out:
                raise ValueError(f"{self.name}={value!r}: expected a comma list of {allowed}")
            if bad:
                from .errors import did_you_mean

                raise ValueError(f"{self.name}={value!r}: {bad[0]!r} is not allowed{did_you_mean(bad[0], self.choices)}; "
                                 f"allowed: a comma list of {allowed}")
            return out
        try:
            typed = value if isinstance(value, self.kind) and not isinstance(value, bool) else self.kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}={value!r}: expected {getattr(self.kind, '__name__', self.kind)}") from None
        if self.choices is not None and typed not in self.choices:
            from .errors import did_you_mean

            raise ValueError(f"{self.name}={value!r} is not allowed{did_you_mean(str(typed), self.choices)}; "
                             f"allowed: {', '.join(map(str, self.choices))}")
        return typed


@dataclass(frozen=True)
class TaskSpec:
    """How a plugin offers a task: a name, the targets it can run on, and a factory.

    ``factory(target)`` builds the task for one target; ``default_target`` is used when the user
    does not choose one. A task with settings besides its target declares them in ``params``
    (:class:`TaskParam`); its factory is then called as ``factory(target, **values)`` with the
    values the user set (the others keep their defaults).
    """

    name: str
    factory: Callable[..., Task]
    targets: tuple[str, ...] = ("analytic",)
    default_target: str | None = None
    description: str = ""
    kind: str = "analytic"
    params: tuple[TaskParam, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "params", tuple(self.params))
        if self.default_target is None:
            object.__setattr__(self, "default_target", self.targets[0])
        if self.default_target not in self.targets and not self.accepts_paths:
            raise ValueError(f"default target {self.default_target!r} of task {self.name!r} is not one of {self.targets}")

    @property
    def accepts_paths(self) -> bool:
        """Replay tasks also accept a path to a recorded table as a target."""
        return self.kind in ("replay", "live")

    def check_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` typed and checked; those equal to their default are left out (they make the
        plain task, not a variant). ``ValueError`` names an unknown parameter and what is allowed."""
        declared = {p.name: p for p in self.params}
        out: dict[str, Any] = {}
        for key, value in values.items():
            if key not in declared:
                from .errors import unknown_name_message

                if not declared:
                    raise ValueError(f"task {self.name!r} takes no parameters")
                raise ValueError(unknown_name_message("parameter", key, declared, where=f" of task {self.name!r}"))
            typed = declared[key].read(value)
            if typed != declared[key].default:
                out[key] = typed
        return out

    def build(self, target: str | None = None, params: Mapping[str, Any] | None = None) -> Task:
        """The task on ``target`` (default: :attr:`default_target`) with ``params`` (checked)."""
        values = self.check_params(params or {})
        target = target or self.default_target
        return self.factory(target, **values) if values else self.factory(target)
