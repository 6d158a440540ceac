"""A trust region around the incumbent whose size follows success and failure (TuRBO's rule).

Eriksson et al., "Scalable Global Optimization via Local Bayesian Optimization" (NeurIPS 2019):
expected improvement maximised over a whole space spends small budgets on the corners, where a
GP's variance is largest and its mean least informed; restricting the candidates to a box around
the best configuration, doubled after consecutive improvements and halved after consecutive
failures, keeps the search where the model is right. TuRBO's defaults are a start length of 0.8 of
the unit cube, a minimum of 2⁻⁷, 3 successes and max(4, d) failures; budgets here are tens of trials,
so the tolerances are shorter (2 and 3) and the region restarts at its start length once it falls
below ``minimum`` (1/64).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TrustRegion"]


@dataclass
class TrustRegion:
    """Side length (in unit space) of the box searched around the incumbent, updated per result.

    ``update(value)`` takes each new trial's feasible objective, oriented so that larger is better
    (``None`` for a trial that crashed or broke a constraint). A result counts as a success when it
    beats the best so far by more than ``rel_improvement`` of its magnitude, so noise-level gains
    do not grow the region.
    """

    initial: float = 0.8
    minimum: float = 1 / 64
    maximum: float = 1.0
    success_tolerance: int = 2
    failure_tolerance: int = 3
    rel_improvement: float = 1e-3
    length: float = field(init=False)
    best: float | None = field(init=False, default=None)
    successes: int = field(init=False, default=0)
    failures: int = field(init=False, default=0)
    restarts: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if not 0 < self.minimum <= self.initial <= self.maximum:
            raise ValueError(f"trust region lengths must satisfy 0 < minimum <= initial <= maximum, got "
                             f"{self.minimum}, {self.initial}, {self.maximum}")
        self.length = self.initial

    def start(self, best: float | None) -> None:
        """Anchor the region at the best feasible value of the initial design (``None``: none yet)."""
        self.best = best

    def update(self, value: float | None) -> None:
        """Count one result as a success or a failure and resize the region."""
        improved = value is not None and (self.best is None
                                          or value > self.best + self.rel_improvement * abs(self.best))
        if value is not None and (self.best is None or value > self.best):
            self.best = value
        if improved:
            self.successes, self.failures = self.successes + 1, 0
        else:
            self.successes, self.failures = 0, self.failures + 1
        if self.successes >= self.success_tolerance:
            self.length, self.successes = min(2 * self.length, self.maximum), 0
        elif self.failures >= self.failure_tolerance:
            self.length, self.failures = self.length / 2, 0
            if self.length < self.minimum:
                self.length, self.restarts = self.initial, self.restarts + 1
