"""The result of one evaluation, with one semantics for every task.

Statuses: ``ok`` (ran, every constraint met), ``infeasible`` (ran, some constraint violated),
``crashed`` (no valid result), ``timeout`` (stopped by a time limit). ``early_stopped`` marks a
trial cut short because it was clearly infeasible; its status is ``infeasible``.

Violations are unitless, ``max(0, measured - cap) / scale``, so milliseconds and megabytes can be
summed; wherever outcomes are ordered a crash ranks below every infeasible outcome.
An :class:`Outcome` is immutable and JSON-safe: no NaN or infinity ever reaches a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping

from . import direction as direction_

__all__ = ["Status", "ErrorKind", "TrialError", "Outcome", "outcome_rank_key", "counts_as_found"]


class Status(str, Enum):
    OK = "ok"
    INFEASIBLE = "infeasible"
    CRASHED = "crashed"
    TIMEOUT = "timeout"

    def __str__(self) -> str:
        return self.value


class ErrorKind(str, Enum):
    """Why an evaluation produced no valid result.

    ``environment`` is a property of the machine (missing toolchain, Triton, compiler, provider,
    driver), not of the configuration: it is reported apart and never presented as the search
    space's crash structure.
    """

    OOM = "oom"
    UNSUPPORTED = "unsupported"
    ENVIRONMENT = "environment"
    TIMEOUT = "timeout"
    RUNTIME = "runtime"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TrialError:
    kind: ErrorKind
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ErrorKind(self.kind))
        object.__setattr__(self, "message", str(self.message)[:2000])

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "message": self.message}


def _finite(name: str, value: Any) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _json_safe(value: Any) -> Any:
    """Recursively replace non-finite floats by None (numbers stay numbers, containers are copied)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) or hasattr(value, "__float__") and not isinstance(value, (list, tuple, dict)):
        try:
            f = float(value)
        except (TypeError, ValueError):
            return str(value)
        return f if math.isfinite(f) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class Outcome:
    """What one evaluation produced. Build it with :meth:`Task.judge` or the crash helpers."""

    status: Status
    objective: float | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    violation: Mapping[str, float] = field(default_factory=dict)
    cost_s: float = 0.0
    error: TrialError | None = None
    early_stopped: bool = False
    fidelity: str = "full"
    predicted: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "fidelity", str(self.fidelity))
        object.__setattr__(self, "predicted", bool(self.predicted))
        if self.predicted and self.fidelity == "full":
            raise ValueError("a full-fidelity outcome is measured, never predicted")
        status = Status(self.status)
        object.__setattr__(self, "status", status)
        if self.objective is not None:
            object.__setattr__(self, "objective", _finite("objective", self.objective))
        object.__setattr__(self, "metrics", MappingProxyType(_json_safe(dict(self.metrics))))
        violation = {str(k): _finite(f"violation[{k}]", v) for k, v in self.violation.items()}
        if any(v < 0 for v in violation.values()):
            raise ValueError(f"violations are excesses over caps and cannot be negative: {violation}")
        object.__setattr__(self, "violation", MappingProxyType(violation))
        cost = _finite("cost_s", self.cost_s)
        if cost < 0:
            raise ValueError(f"cost_s cannot be negative, got {cost}")
        object.__setattr__(self, "cost_s", cost)
        if isinstance(self.error, Mapping):
            object.__setattr__(self, "error", TrialError(**self.error))
        if status in (Status.CRASHED, Status.TIMEOUT):
            if self.error is None:
                raise ValueError(f"a {status.value} outcome needs an error (kind and message)")
            if self.objective is not None:
                raise ValueError(f"a {status.value} outcome has no objective")
        if status is Status.OK and any(v > 0 for v in violation.values()):
            raise ValueError("an ok outcome cannot violate a constraint")
        if status is Status.INFEASIBLE and not self.early_stopped and not any(v > 0 for v in violation.values()):
            raise ValueError("an infeasible outcome must violate some constraint (or be early-stopped)")
        if self.early_stopped and status is not Status.INFEASIBLE:
            raise ValueError("an early-stopped outcome counts as infeasible")

    # -- constructors -----------------------------------------------------------------------------
    @classmethod
    def crashed(cls, kind: ErrorKind | str, message: str, cost_s: float = 0.0, metrics: Mapping[str, Any] | None = None) -> "Outcome":
        return cls(Status.CRASHED, error=TrialError(ErrorKind(kind), message), cost_s=cost_s, metrics=metrics or {})

    @classmethod
    def timed_out(cls, message: str, cost_s: float, metrics: Mapping[str, Any] | None = None) -> "Outcome":
        return cls(Status.TIMEOUT, error=TrialError(ErrorKind.TIMEOUT, message), cost_s=cost_s, metrics=metrics or {})

    # -- properties -------------------------------------------------------------------------------
    @property
    def feasible(self) -> bool:
        return self.status is Status.OK

    @property
    def ran(self) -> bool:
        """True when the evaluation produced measurements (ok or infeasible)."""
        return self.status in (Status.OK, Status.INFEASIBLE)

    @property
    def counts_as_found(self) -> bool:
        """Feasible, measured at full fidelity: the only outcomes that count for best feasible,
        regret and success."""
        return self.status is Status.OK and self.fidelity == "full" and not self.predicted

    @property
    def failed(self) -> bool:
        """True for crashes and timeouts."""
        return self.status in (Status.CRASHED, Status.TIMEOUT)

    @property
    def total_violation(self) -> float:
        return float(sum(self.violation.values()))

    @property
    def wasted(self) -> bool:
        """Crashed, timed out or infeasible (early stops included)."""
        return self.status is not Status.OK

    # -- serialization ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-safe dict. ``fidelity`` and ``predicted`` appear only for lower-fidelity outcomes,
        so full-fidelity records read exactly as they did before fidelities existed."""
        data = {
            "status": self.status.value,
            "objective": self.objective,
            "metrics": dict(self.metrics),
            "violation": dict(self.violation),
            "cost_s": self.cost_s,
            "error": self.error.to_dict() if self.error else None,
            "early_stopped": self.early_stopped,
        }
        if self.fidelity != "full" or self.predicted:
            data["fidelity"] = self.fidelity
            data["predicted"] = self.predicted
        return data

    def at_fidelity(self, fidelity: str, predicted: bool = False) -> "Outcome":
        """The same outcome labelled with the level that produced it."""
        return replace(self, fidelity=fidelity, predicted=predicted)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Outcome":
        error = data.get("error")
        return cls(
            status=Status(data["status"]),
            objective=data.get("objective"),
            metrics=data.get("metrics") or {},
            violation=data.get("violation") or {},
            cost_s=data.get("cost_s", 0.0),
            error=TrialError(ErrorKind(error["kind"]), error["message"]) if error else None,
            early_stopped=bool(data.get("early_stopped", False)),
            fidelity=str(data.get("fidelity") or "full"),
            predicted=bool(data.get("predicted", False)),
        )


def counts_as_found(outcome: Mapping[str, Any]) -> bool:
    """:attr:`Outcome.counts_as_found` of an outcome record (a dict read from a case file)."""
    return (outcome.get("status") == "ok" and (outcome.get("fidelity") or "full") == "full"
            and not outcome.get("predicted"))


def outcome_rank_key(outcome: Outcome, direction: str = "maximize") -> tuple:
    """A sort key where smaller is better: feasible by objective, then infeasible by total
    violation, then every crash and timeout (which rank below every infeasible outcome)."""
    if outcome.status is Status.OK:
        value = outcome.objective if outcome.objective is not None else 0.0
        return (0, direction_.loss(value, direction))
    if outcome.status is Status.INFEASIBLE:
        return (1, outcome.total_violation if not outcome.early_stopped else math.inf)
    return (2, 0.0)
