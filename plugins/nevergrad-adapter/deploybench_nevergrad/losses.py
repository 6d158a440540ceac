"""Turn deploybench outcomes into what nevergrad's ``tell`` takes: a loss and a constraint violation.

Nevergrad cannot revise a loss once told, so each trial is scored when it is told, from the
trials told before it:

- ``c = -sign * objective`` (nevergrad minimises; ``sign`` is +1 for maximised objectives);
- every loss passes through the increasing map ``g(c) = c + sqrt(c² + 1)``, which is positive. Why:
  nevergrad's ``constraint_violation`` penalty is
  ``(a·[n_tell > budget/2] + max(loss, 0)) · (1 + n_tell)^0.5 · Σ sqrt(violation)``
  (default ``penalty_style``), which is *zero* in the first half of the budget for a loss ≤ 0,
  i.e. for any maximised positive objective (accuracy, throughput). Comparison-based optimizers
  (the (1+1) family, DE, CMA that NGOpt picks for small budgets) are unaffected by an increasing map.
- over the trials that ran (ok or infeasible with an objective): worst ``W`` and best ``B`` of ``c``,
  scale ``s = W - B`` (``max(|W|, 1)`` while they are equal, 1 before any ran);
- **ok**: ``g(c)``;
- **infeasible** (early stops included), ``constraint_handling="violation"`` (default):
  ``tell(candidate, g(c), constraint_violation=[v_1, ..., v_k])`` with the per-constraint unitless
  violations (an early stop that recorded none gives ``[1.0]``; a missing objective counts as
  ``c = W_ok``, the worst feasible cost so far, ``W`` before any feasible one) — nevergrad adds its
  penalty and keeps the candidate out of its recommendation;
  ``constraint_handling="penalty"``: ``tell(candidate, g(max(c, W_ok) + s * V))``, ``V`` the total
  violation, so an infeasible trial always scores worse than every feasible one;
- **crashed / timeout**: ``g(W + s)``: the worst cost seen so far plus a margin (``CRASH_LOSS_BEFORE_ANY_RUN``
  while no trial has run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from deploybench import Outcome, Status

__all__ = ["positive", "LossBook", "CRASH_LOSS_BEFORE_ANY_RUN", "EARLY_STOP_VIOLATION"]

#: the loss of a crash told before any trial produced an objective
CRASH_LOSS_BEFORE_ANY_RUN = 1.0e6
#: the violation an early-stopped trial counts when it recorded none
EARLY_STOP_VIOLATION = 1.0


def positive(c: float) -> float:
    """``c + sqrt(c² + 1)``: increasing, positive, computed without cancellation for c < 0."""
    c = float(c)
    if c >= 0:
        return c + math.hypot(c, 1.0)
    return 1.0 / (math.hypot(c, 1.0) - c)


@dataclass
class LossBook:
    """The costs told so far, and the loss and violation of the next outcome."""

    sign: float
    penalty: bool = False
    ran: list[float] = field(default_factory=list)
    feasible: list[float] = field(default_factory=list)

    def _scale(self) -> float:
        if not self.ran:
            return 1.0
        worst, best = max(self.ran), min(self.ran)
        return worst - best if worst > best else max(abs(worst), 1.0)

    def score(self, outcome: Outcome) -> tuple[float, list[float] | None]:
        """``(loss, constraint_violation or None)`` for ``outcome``; then remember it."""
        if outcome.failed:
            if not self.ran:
                return CRASH_LOSS_BEFORE_ANY_RUN, None
            return positive(max(self.ran) + self._scale()), None
        c = None if outcome.objective is None else -self.sign * float(outcome.objective)
        if outcome.status is Status.OK:
            if c is None:  # an ok outcome without objective: nothing to learn but "no better than worst"
                c = max(self.feasible or self.ran or [0.0])
            self.ran.append(c)
            self.feasible.append(c)
            return positive(c), None
        worst_ok = max(self.feasible or self.ran or [c if c is not None else 0.0])
        if c is not None:
            self.ran.append(c)
        violation = [float(v) for v in outcome.violation.values() if v > 0]
        if not violation:
            violation = [EARLY_STOP_VIOLATION]
        if self.penalty:
            base = worst_ok if c is None else max(c, worst_ok)
            return positive(base + self._scale() * sum(violation)), None
        return positive(worst_ok if c is None else c), violation
