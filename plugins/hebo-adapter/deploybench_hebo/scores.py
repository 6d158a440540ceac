"""What HEBO is told for each outcome: finite numbers only, recomputed for the whole history after
every tell (HEBO has no notion of a failed evaluation: its ``observe`` silently drops non-finite
values, so a crash told as ``nan`` would leave the crashing region as attractive as before and
HEBO could propose the same crashing configuration again).

**penalty** (:func:`penalised_scores`, for the ``HEBO`` class, which takes no constraints): one
minimised score per trial, the rule of the SMAC adapter so that both peers rank outcomes alike
(feasible < infeasible < crashed, :func:`deploybench.outcome_rank_key`):

- ``c = -sign * objective`` (HEBO minimises; ``sign`` is +1 for a maximised objective);
- over the trials that ran (ok or infeasible with an objective): best ``B`` and worst ``W`` score,
  spread ``s = W - B`` (``max(|W|, 1)`` while they are equal, ``1`` before any ran);
- ``W_ok`` = the worst *feasible* score so far (``W`` until a feasible trial exists, 0 before any ran);
- **ok**: ``c``;
- **infeasible** (early stops included): ``max(c, W_ok) + s * V``, ``V`` the total unitless violation
  (an early stop that recorded none counts ``V = 1``; a missing objective counts ``c = W_ok``), so
  an infeasible trial scores worse than every feasible one, more the more it violates;
- **crashed / timeout**: ``max(every other score) + s``: worse than every infeasible trial.

**outputs** (:func:`general_outputs`, for ``GeneralBO``, HEBO's constrained optimiser): one row
``[c, g_1, …, g_k]`` per trial with ``g_j = (measured_j - cap_j) / scale_j`` (feasible iff ``<= 0``,
HEBO's convention; ``scale_j`` the constraint's unitless scale, so every ``g_j`` is a fraction of
its cap). A value the trial did not produce (every value of a crash or timeout; the objective or
an unmeasured constraint metric of an early stop) is imputed pessimistically and re-imputed as
the history grows: the objective as ``W + s`` (worst observed plus spread), a constraint as
``max(worst g_j, 0) + s_j`` (always violated); an ok trial missing a constraint metric counts
``g_j = 0`` (on the cap). The imputation is the adapter's: HEBO documents none.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from deploybench import Constraint, Outcome, Status

__all__ = ["penalised_scores", "general_outputs", "EARLY_STOP_VIOLATION"]

#: the violation an early-stopped trial counts when it recorded none
EARLY_STOP_VIOLATION = 1.0


def _raw(outcome: Outcome, sign: float) -> float | None:
    if outcome.failed or outcome.objective is None:
        return None
    return -sign * float(outcome.objective)


def _spread(values: Sequence[float]) -> tuple[float, float]:
    """(worst, spread) of minimised values; (0, 1) when there are none."""
    if not values:
        return 0.0, 1.0
    best, worst = min(values), max(values)
    return worst, (worst - best if worst > best else max(abs(worst), 1.0))


def penalised_scores(outcomes: Sequence[Outcome], sign: float) -> list[float]:
    """The minimised score of each outcome under the **penalty** rule (all finite)."""
    raw = [_raw(o, sign) for o in outcomes]
    ran = [c for c in raw if c is not None]
    worst_ran, scale = _spread(ran)
    ok = [c for c, o in zip(raw, outcomes) if c is not None and o.status is Status.OK]
    worst_ok = max(ok) if ok else worst_ran

    scores: list[float | None] = []
    for c, o in zip(raw, outcomes):
        if o.failed:
            scores.append(None)
        elif o.status is Status.OK:
            scores.append(c if c is not None else worst_ok)
        else:
            violation = o.total_violation
            if violation <= 0.0 and o.early_stopped:
                violation = EARLY_STOP_VIOLATION
            scores.append((worst_ok if c is None else max(c, worst_ok)) + scale * violation)
    known = [s for s in scores if s is not None]
    crash = (max(known) if known else 0.0) + scale
    return [crash if s is None else float(s) for s in scores]


def _measured(outcome: Outcome, constraint: Constraint) -> float | None:
    """``(measured - cap) / scale`` of one constraint, or None when the trial did not measure it."""
    if outcome.failed:
        return None
    value = outcome.metrics.get(constraint.metric)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return (float(value) - constraint.cap) / constraint.effective_scale
    if outcome.violation.get(constraint.metric, 0.0) > 0.0:
        return float(outcome.violation[constraint.metric])
    if outcome.status is Status.OK:
        return 0.0
    return None


def general_outputs(outcomes: Sequence[Outcome], sign: float, constraints: Sequence[Constraint]) -> np.ndarray:
    """The ``(n, 1 + k)`` array of the **outputs** rule: the minimised objective, then one signed,
    scaled value per constraint (all finite)."""
    columns: list[list[float | None]] = [[_raw(o, sign) for o in outcomes]]
    columns += [[_measured(o, c) for o in outcomes] for c in constraints]
    out = np.empty((len(outcomes), len(columns)))
    for j, column in enumerate(columns):
        known = [v for v in column if v is not None]
        worst, scale = _spread(known)
        fill = worst + scale if j == 0 else max(worst, 0.0) + scale
        out[:, j] = [fill if v is None else v for v in column]
    return out
