"""What "better" means for an objective: the one place that reads a direction string.

Records store the direction as text (``"maximize"`` or ``"minimize"``, as Optuna names it); every
comparison, sign, regret and worst value in the package goes through these functions, so no module
compares the strings itself.
"""

from __future__ import annotations

import math
from typing import Iterable

__all__ = ["DIRECTIONS", "check", "is_max", "sign", "better", "loss", "regret", "worst", "worst_value",
           "at_least_as_good", "in_words"]

#: the two directions, as records and Optuna spell them
DIRECTIONS = ("maximize", "minimize")


def check(direction: str) -> str:
    """``direction`` itself, or ValueError naming the two allowed values."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    return direction


def is_max(direction: str) -> bool:
    """Whether larger values are better."""
    return direction == "maximize"


def sign(direction: str) -> float:
    """+1 when larger is better, -1 otherwise: ``sign * value`` is a value to maximise."""
    return 1.0 if is_max(direction) else -1.0


def better(a: float, b: float | None, direction: str) -> bool:
    """Whether ``a`` is strictly better than ``b`` (anything beats ``None``)."""
    return b is None or (a > b if is_max(direction) else a < b)


def at_least_as_good(a: float, b: float, direction: str) -> bool:
    """Whether ``a`` is as good as ``b`` or better."""
    return a >= b if is_max(direction) else a <= b


def loss(value: float, direction: str) -> float:
    """Lower is better, whatever the direction."""
    return -value if is_max(direction) else value


def regret(optimum: float, value: float, direction: str) -> float:
    """Signed distance from ``value`` to the ``optimum`` (negative: ``value`` beat it)."""
    return optimum - value if is_max(direction) else value - optimum


def worst(values: Iterable[float], direction: str) -> float:
    """The worst of ``values``."""
    return min(values) if is_max(direction) else max(values)


def worst_value(direction: str) -> float:
    """An objective worse than any real one (-inf when maximising, +inf when minimising)."""
    return -math.inf if is_max(direction) else math.inf


def in_words(direction: str) -> str:
    """``higher is better`` or ``lower is better``."""
    return "higher is better" if is_max(direction) else "lower is better"
