"""The initial-design size shared by the model-based optimizers that are not reference reimplementations.

Fairness: every such optimizer starts its model from the same number of space-filling or random
trials, so a comparison measures the models, not the warm-up. The size is Optuna TPE's reference
baseline, ``max(3, budget // 5)`` (``tpe`` uses it unchanged). The reference reimplementations keep
the constants the paper measured (``tba``: 5 random trials, ``tba_tpe``: 3).
"""

from __future__ import annotations

__all__ = ["initial_design_size"]


def initial_design_size(budget: int) -> int:
    """Random or space-filling trials before a model is trusted: ``max(3, budget // 5)``."""
    return max(3, int(budget) // 5)
