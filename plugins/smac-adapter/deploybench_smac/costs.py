"""Turn deploybench outcomes into the single cost SMAC minimises.

SMAC has no output-constraint support (SMAC3 issue #1260 is open) and its crash cost is a constant
fixed before the run (default ``inf``, which its random forest cannot train on). So the adapter
scores every trial itself, with one rule that keeps deploybench's ordering
(feasible < infeasible < crashed, see :func:`deploybench.outcome_rank_key`):

- ``c = -sign * objective`` (SMAC minimises; ``sign`` is +1 for maximised objectives);
- over the trials that ran (ok or infeasible with an objective): best ``B`` and worst ``W_ran`` cost,
  scale ``s = W_ran - B`` (or ``max(|W_ran|, 1)`` while they are equal, ``1`` before any ran);
- ``W_ok`` = the worst *feasible* cost so far (``W_ran`` until a feasible trial exists, 0 before any ran);
- **ok**: ``c``;
- **infeasible** (early stops included): ``max(c, W_ok) + s * V``, with ``V`` the total unitless
  violation (sum of ``max(0, measured - cap) / scale`` over constraints; an early stop with no
  recorded violation counts ``V = 1``; a missing objective counts as ``c = W_ok``). So an
  infeasible trial always costs more than every feasible one (the "worst known feasible value"
  rule of BoTorch PR #3016), more the more it violates;
- **crashed / timeout**: the crash cost: the given ``crash_cost`` when set, else
  ``max(every other cost above) + s``, so a crash costs more than every infeasible trial.

``W_ok``, ``s`` and the adaptive crash cost move as trials arrive, so the adapter re-scores the
whole history after each tell (SMAC's runhistory takes an updated cost for an existing trial).
"""

from __future__ import annotations

from typing import Sequence

from deploybench import Outcome, Status

__all__ = ["trial_costs", "EARLY_STOP_VIOLATION"]

#: the violation an early-stopped trial counts when it recorded none
EARLY_STOP_VIOLATION = 1.0


def _violation(outcome: Outcome) -> float:
    v = outcome.total_violation
    if v <= 0.0 and outcome.early_stopped:
        return EARLY_STOP_VIOLATION
    return v


def trial_costs(outcomes: Sequence[Outcome], sign: float, crash_cost: float | None = None) -> list[float]:
    """The cost of each outcome under the rule in the module docstring (all finite)."""
    raw = [None if o.failed or o.objective is None else -sign * float(o.objective) for o in outcomes]
    ran = [c for c in raw if c is not None]
    ok = [c for c, o in zip(raw, outcomes) if c is not None and o.status is Status.OK]
    if ran:
        best, worst_ran = min(ran), max(ran)
        scale = worst_ran - best if worst_ran > best else max(abs(worst_ran), 1.0)
    else:
        worst_ran, scale = 0.0, 1.0
    worst_ok = max(ok) if ok else worst_ran

    costs: list[float | None] = []
    for c, o in zip(raw, outcomes):
        if o.failed:
            costs.append(None)
        elif o.status is Status.OK:
            costs.append(c if c is not None else worst_ok)
        else:
            base = worst_ok if c is None else max(c, worst_ok)
            costs.append(base + scale * _violation(o))
    if crash_cost is None:
        known = [c for c in costs if c is not None]
        crash_cost = (max(known) if known else 0.0) + scale
    return [float(crash_cost) if c is None else float(c) for c in costs]
