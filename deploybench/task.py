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

__all__ = ["Objective", "Constraint", "TaskMetadata", "EvalContext", "Task", "TaskSpec", "TASK_KINDS"]

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
class TaskSpec:
    """How a plugin offers a task: a name, the targets it can run on, and a factory.

    ``factory(target)`` builds the task for one target; ``default_target`` is used when the user
    does not choose one.
    """

    name: str
    factory: Callable[[str], Task]
    targets: tuple[str, ...] = ("analytic",)
    default_target: str | None = None
    description: str = ""
    kind: str = "analytic"

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        if self.default_target is None:
            object.__setattr__(self, "default_target", self.targets[0])
        if self.default_target not in self.targets and not self.accepts_paths:
            raise ValueError(f"default target {self.default_target!r} of task {self.name!r} is not one of {self.targets}")

    @property
    def accepts_paths(self) -> bool:
        """Replay tasks also accept a path to a recorded table as a target."""
        return self.kind in ("replay", "live")

    def build(self, target: str | None = None) -> Task:
        return self.factory(target or self.default_target)
