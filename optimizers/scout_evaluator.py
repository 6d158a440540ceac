"""The fidelity-adaptive evaluator of ``scout``: an R²-weighted ensemble of cheap regressors, and
the switch from "simulate" to "profile" when their error against real measurements grows.

Members are ridge regressions of the objective on different views of the shared encoding (the
structure only; structure and execution parameters; plus squares of the execution parameters),
the DeployBench analogue of AutoScout's regressions on different sets of configuration features,
and, when the task offers a simulator level, that level's prediction itself. Each member's weight
is its leave-one-out R² on the full-fidelity measurements so far, clipped at 0.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Sequence

import numpy as np

__all__ = ["RegressorEnsemble", "FidelitySwitch"]

RIDGE = 1e-3
MIN_POINTS = 4


def _loo_ridge(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge coefficients (with intercept) and the leave-one-out R² (from the hat matrix)."""
    A = np.hstack([np.ones((len(X), 1)), X])
    G = A.T @ A + RIDGE * np.eye(A.shape[1])
    G[0, 0] -= RIDGE  # the intercept is not shrunk
    inv = np.linalg.pinv(G)
    coef = inv @ A.T @ y
    hat = np.einsum("ij,jk,ik->i", A, inv, A)
    resid = (y - A @ coef) / np.clip(1.0 - hat, 1e-6, None)
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss if ss > 0 else 0.0
    return coef, r2


class RegressorEnsemble:
    """``views``: name → column selector over the encoded rows. ``fit`` on full-fidelity
    measurements; ``predict`` the R²-weighted mean (None while no member has a positive R²).
    ``external`` members are predictions supplied per row (a task's simulator level): weighted by
    the R² of their predictions against the measurements where both exist."""

    def __init__(self, views: dict[str, Callable[[np.ndarray], np.ndarray]]) -> None:
        self.views = views
        self.coefs: dict[str, np.ndarray] = {}
        self.weights: dict[str, float] = {}
        self.external_fit: tuple[float, float] | None = None  # (a, b) of y ≈ a + b·simulated

    def fit(self, X: np.ndarray, y: np.ndarray, simulated: Sequence[float | None] = ()) -> None:
        self.coefs, self.weights = {}, {}
        if len(y) < MIN_POINTS:
            return
        for name, view in self.views.items():
            coef, r2 = _loo_ridge(view(X), y)
            self.coefs[name] = coef
            self.weights[name] = max(0.0, r2)
        pairs = [(s, t) for s, t in zip(simulated, y) if s is not None]
        self.external_fit = None
        if len(pairs) >= MIN_POINTS:
            s = np.array([[p[0]] for p in pairs])
            t = np.array([p[1] for p in pairs])
            coef, r2 = _loo_ridge(s, t)
            self.external_fit = (float(coef[0]), float(coef[1]))
            self.weights["simulator"] = max(0.0, r2)

    @property
    def trusted(self) -> bool:
        return sum(self.weights.values()) > 0

    def predict(self, X: np.ndarray, simulated: Sequence[float | None] | None = None) -> np.ndarray | None:
        if not self.trusted:
            return None
        total = np.zeros(len(X))
        weight = np.zeros(len(X))
        for name, coef in self.coefs.items():
            w = self.weights[name]
            if w <= 0:
                continue
            V = self.views[name](X)
            total += w * (coef[0] + V @ coef[1:])
            weight += w
        if self.external_fit is not None and simulated is not None and self.weights.get("simulator", 0) > 0:
            a, b = self.external_fit
            w = self.weights["simulator"]
            for i, s in enumerate(simulated):
                if s is not None:
                    total[i] += w * (a + b * s)
                    weight[i] += w
        return np.where(weight > 0, total / np.maximum(weight, 1e-12), np.nan)


class FidelitySwitch:
    """Simulate while the mean absolute percentage error of the last ``window`` checks is at most
    ``threshold``; switch to profiling (for good) once it is above."""

    def __init__(self, threshold: float, window: int = 3) -> None:
        self.threshold = float(threshold)
        self.errors: deque[float] = deque(maxlen=max(1, int(window)))
        self.mode = "simulate"

    def check(self, pairs: list[tuple[float, float]], verdict_wrong: bool = False) -> None:
        """One profiled check: (predicted, measured) pairs of the objective and of each capped metric
        predicted for the same configuration; the check's error is the worst of their percentage errors
        (a simulator that gets the objective right but the latency wrong still misleads the search),
        and 100 % when the simulator's feasibility verdict was wrong."""
        errors = [abs(p - m) / max(abs(m), 1e-9) for p, m in pairs] + ([1.0] if verdict_wrong else [])
        if not errors:
            return
        self.errors.append(max(errors))
        if len(self.errors) == self.errors.maxlen and self.mape > self.threshold:
            self.mode = "profile"

    @property
    def mape(self) -> float:
        return float(np.mean(self.errors)) if self.errors else 0.0
