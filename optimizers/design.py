"""The initial-design size shared by the model-based optimizers that are not reference reimplementations.

Fairness: every such optimizer starts its model from the same number of space-filling or random
trials, so a comparison measures the models, not the warm-up. The size is Optuna TPE's reference
baseline, ``max(3, budget // 5)``, at most 10 (Optuna's own default ``n_startup_trials``). The cap
matters only above 50 trials, and there it matters a lot: under a budget in seconds the trial budget
is only a cap (hundreds of trials), and a fifth of it would keep a model-based optimizer sampling at
random for its whole run. The reference reimplementations keep the constants the paper measured
(``tba``: 5 random trials, ``tba_tpe``: 3).
"""

from __future__ import annotations

__all__ = ["MAX_INITIAL_DESIGN", "initial_design_size"]

#: the largest shared initial design (Optuna's default ``n_startup_trials``)
MAX_INITIAL_DESIGN = 10


def initial_design_size(budget: int) -> int:
    """Random or space-filling trials before a model is trusted: ``max(3, budget // 5)``, at most
    :data:`MAX_INITIAL_DESIGN`."""
    return max(3, min(int(budget) // 5, MAX_INITIAL_DESIGN))
