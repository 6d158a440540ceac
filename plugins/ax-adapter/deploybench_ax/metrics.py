"""What Ax is told about the goal and about each trial's measurements.

Ax parses the objective and the outcome constraints from strings with SymPy, so a metric name must be a
plain identifier that is neither a SymPy name (``E``, ``N``, ``beta``, ``gamma``, ...) nor a Python
keyword, and must not contain ``__`` (Ax turns ``a__dot__b`` back into ``a.b``). :class:`MetricNames`
keeps a name that passes and otherwise uses ``m_`` plus the name with every run of other characters
replaced by ``_`` (``latency.p95-ms`` → ``m_latency_p95_ms``), made unique. Ax also refuses an outcome
constraint on the objective metric of a single-objective problem, so a constraint on the objective's own
metric is reported under a second name (``<name>_constraint``) with the same value.
"""

from __future__ import annotations

import keyword
import math
import re
from typing import Any, Mapping, Sequence

import numpy as np
import sympy

from deploybench import Constraint, Objective, Outcome

__all__ = ["MetricNames", "ax_metric_name"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYMPY_NAMES = frozenset(dir(sympy))


def ax_metric_name(name: str, taken: Sequence[str] = ()) -> str:
    """A name Ax's expression parser accepts for the deploybench metric ``name``, not in ``taken``."""
    if _IDENTIFIER.fullmatch(name) and "__" not in name and not keyword.iskeyword(name) \
            and name not in _SYMPY_NAMES:
        candidate = name
    else:
        candidate = "m_" + (re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "metric")
    unique, n = candidate, 2
    while unique in taken:
        unique, n = f"{candidate}_{n}", n + 1
    return unique


def _finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (numpy scalars included, booleans not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class MetricNames:
    """The Ax names of the objective and constraint metrics, the strings for
    ``Client.configure_optimization``, and the ``raw_data`` of an outcome."""

    def __init__(self, objective: Objective, constraints: Sequence[Constraint]) -> None:
        self.objective = objective
        self.constraints = tuple(constraints)
        self.objective_name = ax_metric_name(objective.metric)
        taken = [self.objective_name]
        self.constraint_names: list[str] = []
        for c in self.constraints:
            name = ax_metric_name(c.metric, taken)
            if name == self.objective_name or c.metric == objective.metric:
                name = ax_metric_name(f"{c.metric}_constraint", taken)
            taken.append(name)
            self.constraint_names.append(name)

    @property
    def objective_str(self) -> str:
        """``"name"`` (Ax maximises it) or ``"-name"`` (a minimised objective)."""
        return self.objective_name if self.objective.sign > 0 else f"-{self.objective_name}"

    @property
    def constraint_strs(self) -> list[str]:
        """One absolute outcome constraint ``"name <= cap"`` per deploybench constraint."""
        return [f"{name} <= {float(c.cap)!r}" for name, c in zip(self.constraint_names, self.constraints)]

    def raw_data(self, outcome: Outcome) -> dict[str, float]:
        """The measured values of the objective and constraint metrics (finite ones only).

        A constraint metric missing from ``outcome.metrics`` but violated is recovered from the
        outcome's own unitless violation (``cap + violation * scale``, the exact inverse of
        :meth:`deploybench.Constraint.violation`); a missing metric that was met has no known value and
        is left out (Ax accepts partial data and keeps modelling the other metrics)."""
        data: dict[str, float] = {}
        objective = _finite(outcome.objective)
        if objective is None:
            objective = _finite(outcome.metrics.get(self.objective.metric))
        if objective is not None:
            data[self.objective_name] = objective
        for name, c in zip(self.constraint_names, self.constraints):
            value = _finite(outcome.metrics.get(c.metric))
            if value is None:
                excess = _finite(outcome.violation.get(c.metric))
                if excess is not None and excess > 0.0:
                    value = float(c.cap) + excess * c.effective_scale
            if value is not None:
                data[name] = value
        return data
