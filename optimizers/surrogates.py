"""Feasibility models over the space's shared encoding, shared by ``cbo``, ``cbo_plus`` and ``tba_tpe_plus``.

:class:`FeasibilityModel` estimates, for candidate configurations, P(no crash) and P(every constraint
met), both from :class:`~deploybench_optimizers.gp.GaussianProcess` models on the same encoding every
model-based optimizer uses (``space.encode_many``):

- crashes: a GP fitted to the hard-failure indicator (1 crashed, timed out or stopped early as clearly
  infeasible; 0 otherwise; an early stop carries no constraint metric, so this is the only model that
  learns from it), read as a probability
  (least-squares GP classification, Rasmussen and Williams 2006, section 6.5):
  P(no crash) = Φ((½ − μ) / √(σ² + 0.1²)). It is smooth, costs a
  Cholesky factor extension per new point and, with one length scale per column, ties a crash to a
  single one-hot column (a backend) or to a region of a numeric one (``x1 > 8``) alike;
- constraints: one GP per constraint metric on the configurations that ran, with a linear term (far
  from the data a metric follows its measured trend) and at least one cap of prior uncertainty,
  P(metric ≤ cap) = Φ((cap − μ) / σ). With ``log_metrics`` a metric that is positive everywhere it was
  measured (latency, memory) is modelled on a log scale, where its effects are additive.

Both log-probabilities are clipped (``LOG_P_MIN``), not floored: while nothing feasible is known the
candidates still rank by how close to feasible they are (a floor made every candidate of an
infeasible region tie, and the search stalled in it), and once the optimum is found a region that
always crashed never wins on the objective model's uncertainty about it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.special import log_ndtr

from deploybench import Constraint, Outcome, SearchSpace

from .gp import GaussianProcess

__all__ = ["FeasibilityModel", "LOG_P_MIN", "CRASH_LABEL_SD"]

#: log P(constraint met) is clipped here (about 2e-22): low enough to keep ranking candidates by how
#: unlikely they are to meet a cap when nothing feasible is known yet, high enough to stay finite
LOG_P_MIN = -50.0
#: the spread of the crash indicator around the GP's mean when P(no crash) is read from it
CRASH_LABEL_SD = 0.1

History = Sequence[tuple[Mapping[str, Any], Outcome]]


class FeasibilityModel:
    """log P(no crash) + log P(every constraint met) for candidate configurations (encoded rows)."""

    def __init__(self, space: SearchSpace, constraints: Sequence[Constraint], *, log_metrics: bool = False,
                 lengthscale_prior: tuple[float, float] | None = None) -> None:
        self.space = space
        self.constraints = tuple(constraints)
        self.log_metrics = log_metrics
        self._crash_gp = GaussianProcess(lengthscale_prior=lengthscale_prior)
        # targets in units of the cap (or its log): far from the data a constraint stays uncertain by at
        # least one cap, however alike the few measured values are (else a handful of near-identical
        # infeasible results would make every unexplored region look certainly infeasible too)
        self._gps = {c.metric: GaussianProcess(lengthscale_prior=lengthscale_prior, min_y_std=1.0, min_signal_var=0.5,
                                               linear=True) for c in self.constraints}
        self._cache: tuple[int, np.ndarray] | None = None

    def _encoded(self, history: History) -> np.ndarray:
        """The encoding of the history's configs, extended row by row as the history grows."""
        n = len(history)
        if self._cache is None or self._cache[0] > n:
            self._cache = (0, np.zeros((0, self.space.encoding_width)))
        done, X = self._cache
        if done < n:
            X = np.vstack([X, self.space.encode_many([c for c, _ in history[done:]])])
            self._cache = (n, X)
        return X[:n]

    def log_p_no_crash(self, history: History, Xc: np.ndarray) -> np.ndarray:
        failed = np.array([o.failed or o.early_stopped for _, o in history], dtype=float)
        if not failed.any():
            return np.zeros(len(Xc))
        if failed.all():
            return np.full(len(Xc), math.log(0.5))
        mean, sd = self._crash_gp.fit(self._encoded(history), failed).predict(Xc)
        # P(the latent crash indicator is below one half), with a label noise of 0.1 so that a
        # prediction close to the data is not taken as certainty
        return np.maximum(log_ndtr((0.5 - mean) / np.sqrt(sd * sd + CRASH_LABEL_SD**2)), LOG_P_MIN)

    def log_p_constraints(self, history: History, Xc: np.ndarray) -> np.ndarray:
        out = np.zeros(len(Xc))
        if not self.constraints:
            return out
        X = self._encoded(history)
        for con in self.constraints:
            rows, values = [], []
            for i, (_, o) in enumerate(history):
                v = o.metrics.get(con.metric) if o.ran else None
                if v is not None and math.isfinite(float(v)):
                    rows.append(i)
                    values.append(float(v))
            if len(values) < 2:
                continue
            y, cap = np.asarray(values), float(con.cap)
            if self.log_metrics and cap > 0 and y.min() > 0:
                y, cap = np.log(y), math.log(cap)
            else:
                y, cap = y / con.effective_scale, cap / con.effective_scale
            mu, sd = self._gps[con.metric].fit(X[rows], y).predict(Xc)
            out += np.maximum(log_ndtr((cap - mu) / sd), LOG_P_MIN)
        return out

    def log_p_feasible(self, history: History, Xc: np.ndarray) -> np.ndarray:
        """log P(no crash) + log P(every constraint met), each floored."""
        return self.log_p_no_crash(history, Xc) + self.log_p_constraints(history, Xc)
