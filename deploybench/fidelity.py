"""Fidelity levels: cheaper, less faithful ways to evaluate a configuration.

A task may offer more than one way to evaluate a configuration, ordered from cheapest to the real
thing: a *simulator* (a model that predicts the metrics, costs almost nothing, never measures), a
*probe* (the real run cut short: fewer timed iterations, noisier, sees only the crashes that happen
early) and *full* (the measurement every other task returns). The last level is always ``full``.

Why it matters for scoring: only full-fidelity feasible outcomes count as found (best feasible,
regret, success), because a simulator's "feasible" or a probe's lucky median is not a deployment
decision. Cheaper levels are charged what they cost, so a budget in seconds of charged cost is where
multi-fidelity optimizers can show their worth (Hyperband, BOHB and AutoScout all rest on this).

An optimizer asks for a level by returning a :class:`Suggestion` from ``ask()``; a plain config
still means ``full``. Optimizers that want to plan with levels declare ``tags.multi_fidelity`` and
receive the task's levels through :meth:`deploybench.Optimizer.bind_fidelities`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import did_you_mean

__all__ = ["Fidelity", "FULL", "FIDELITY_KINDS", "Suggestion", "split_suggestion", "check_fidelities",
           "UnknownFidelityError"]

#: the kinds of level, in the order of faithfulness
FIDELITY_KINDS = ("simulator", "probe", "full")


class UnknownFidelityError(ValueError):
    """A fidelity name the task does not offer."""


@dataclass(frozen=True)
class Fidelity:
    """One way a task can evaluate a configuration.

    ``kind``: ``simulator`` (metrics are predictions: ``Outcome.predicted`` is true), ``probe`` (a real,
    shortened run) or ``full``. ``relative_cost`` is the typical cost as a share of a full evaluation
    (for planning; the charged cost of each evaluation is its outcome's ``cost_s``). ``cost_model``
    says in words how the cost is charged; ``crashes`` which crashes the level can see.
    """

    name: str
    kind: str
    relative_cost: float = 1.0
    cost_model: str = ""
    crashes: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FIDELITY_KINDS:
            raise ValueError(f"fidelity {self.name!r}: kind must be one of {', '.join(FIDELITY_KINDS)}, got {self.kind!r}")
        if not (self.relative_cost > 0):
            raise ValueError(f"fidelity {self.name!r}: relative_cost must be positive, got {self.relative_cost!r}")

    @property
    def predicts(self) -> bool:
        """True when the level's metrics are predictions, not measurements."""
        return self.kind == "simulator"

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "relative_cost": self.relative_cost,
                "cost_model": self.cost_model, "crashes": self.crashes}


#: the one level of a task that declares none
FULL = Fidelity("full", "full", 1.0, cost_model="the task's own cost", crashes="all")


def check_fidelities(fidelities: Sequence[Fidelity]) -> tuple[Fidelity, ...]:
    """Validate a task's declared levels: at least one, unique names, ordered by relative cost, exactly
    one ``full`` level and it is the last. Returns them as a tuple."""
    levels = tuple(fidelities)
    if not levels:
        raise ValueError("a task needs at least one fidelity (the last must be 'full')")
    names = [f.name for f in levels]
    if len(set(names)) != len(names):
        raise ValueError(f"fidelity names must be unique, got {names}")
    if levels[-1].kind != "full" or levels[-1].name != "full" or any(f.kind == "full" for f in levels[:-1]):
        raise ValueError(f"exactly one fidelity of kind 'full', named 'full', and it must be the last; got {names}")
    costs = [f.relative_cost for f in levels]
    if costs != sorted(costs):
        raise ValueError(f"fidelities must be ordered from cheapest to full; relative costs {costs}")
    return levels


def find_fidelity(fidelities: Sequence[Fidelity], name: str) -> Fidelity:
    """The level called ``name``; an unknown name raises :class:`UnknownFidelityError` naming the
    levels offered and the closest one."""
    for f in fidelities:
        if f.name == name:
            return f
    names = [f.name for f in fidelities]
    raise UnknownFidelityError(f"unknown fidelity {name!r}; this task offers {', '.join(names)}"
                               + did_you_mean(str(name), names))


@dataclass(frozen=True)
class Suggestion:
    """What ``ask()`` may return instead of a plain config: the config and the level to evaluate it at."""

    config: Mapping[str, Any]
    fidelity: str = "full"


def split_suggestion(suggestion: Any) -> tuple[Any, str]:
    """``(config, fidelity name)`` of what ``ask()`` returned (a plain config means ``full``)."""
    if isinstance(suggestion, Suggestion):
        return suggestion.config, str(suggestion.fidelity)
    return suggestion, "full"
