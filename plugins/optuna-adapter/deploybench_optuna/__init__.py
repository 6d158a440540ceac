"""deploybench-optuna: Optuna's samplers as deploybench optimizers (``optuna``, ``optuna_gp``,
``optuna_cmaes``)."""

from __future__ import annotations

from typing import Any

__all__ = ["OptunaSampler", "OptunaGP", "OptunaCmaEs"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import the optimizers (and Optuna) on first use, not when the entry point is loaded."""
    if name in __all__:
        from . import optimizer

        return getattr(optimizer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
