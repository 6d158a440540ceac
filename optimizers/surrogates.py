"""Small, fast models over the space's shared encoding, shared by ``cbo`` and ``tba_tpe_plus``.

- :class:`WarmGP`: a Gaussian process (Matern 5/2 with ARD, standardised targets) whose kernel
  hyper-parameters are refitted by a capped L-BFGS-B run started from the previous fit, so a refit
  after one new point costs a few milliseconds instead of a full multi-start search.
- :class:`FeasibilityModel`: P(no crash) from a random-forest classifier of failed (crashed or timed
  out) versus ran, and P(every constraint met) from one :class:`WarmGP` per constraint metric fitted
  on the configurations that ran. Both are computed on the same encoding every model-based
  optimizer uses (``space.encode_many``).
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from deploybench import Constraint, Outcome, SearchSpace

__all__ = ["WarmGP", "FeasibilityModel"]


def _capped_lbfgs(maxiter: int):
    def optimizer(obj_func, initial_theta, bounds):
        res = minimize(obj_func, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds,
                       options={"maxiter": maxiter})
        return res.x, res.fun

    return optimizer


class WarmGP:
    """A GP regressor refitted cheaply: hyper-parameters start from the previous fit."""

    def __init__(self, maxiter: int = 40, refit_every: int = 3) -> None:
        self.maxiter = maxiter
        self.refit_every = refit_every
        self._kernel = None
        self._n_fits = 0
        self._gp: GaussianProcessRegressor | None = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> "WarmGP":
        dim = X.shape[1]
        kernel = self._kernel
        if kernel is None:
            kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(np.full(dim, 0.5), (1e-2, 1e2), nu=2.5) \
                + WhiteKernel(1e-4, (1e-6, 1e-1))
        # hyper-parameters are re-optimised on the first fits and then every ``refit_every`` fits;
        # in between the previous kernel is kept (a new point rarely moves them much)
        optimize = self._n_fits < 3 or self._n_fits % self.refit_every == 0
        self._n_fits += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            self._gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True,
                                                optimizer=_capped_lbfgs(self.maxiter) if optimize else None,
                                                n_restarts_optimizer=0).fit(X, y)
        self._kernel = self._gp.kernel_
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self._gp is not None, "fit first"
        mu, sd = self._gp.predict(X, return_std=True)
        return mu, np.maximum(sd, 1e-9)


class FeasibilityModel:
    """log P(no crash) + log P(every constraint met) for candidate configurations."""

    def __init__(self, space: SearchSpace, constraints: Sequence[Constraint], seed: int = 0, n_trees: int = 25) -> None:
        self.space = space
        self.constraints = tuple(constraints)
        self.seed = seed
        self.n_trees = n_trees
        self._gps = {c.metric: WarmGP() for c in self.constraints}

    def log_p_no_crash(self, history: Sequence[tuple[Mapping[str, Any], Outcome]], Xc: np.ndarray) -> np.ndarray:
        failed = np.array([o.failed for _, o in history], dtype=int)
        if not failed.any():
            return np.zeros(len(Xc))
        if failed.all():
            return np.full(len(Xc), np.log(0.5))
        X = self.space.encode_many([c for c, _ in history])
        # every feature is considered at each split: with a few dozen points a crash is often tied to
        # a single one-hot column, which random feature subsets would miss in most trees
        clf = RandomForestClassifier(n_estimators=self.n_trees, max_features=None, random_state=self.seed).fit(X, failed)
        p_ok = clf.predict_proba(Xc)[:, list(clf.classes_).index(0)]
        # smoothed: a forest says 0 or 1 far from data; never rule a candidate out completely
        return np.log(0.02 + 0.96 * p_ok)

    def log_p_constraints(self, history: Sequence[tuple[Mapping[str, Any], Outcome]], Xc: np.ndarray) -> np.ndarray:
        ran = [(c, o) for c, o in history if o.ran]
        out = np.zeros(len(Xc))
        for con in self.constraints:
            pairs = [(c, o.metrics.get(con.metric)) for c, o in ran]
            pairs = [(c, float(v)) for c, v in pairs if v is not None]
            if len(pairs) < 3:
                continue
            X = self.space.encode_many([c for c, _ in pairs])
            y = np.array([v for _, v in pairs]) / con.effective_scale
            mu, sd = self._gps[con.metric].fit(X, y).predict(Xc)
            out += norm.logcdf((con.cap / con.effective_scale - mu) / sd)
        return out

    def log_p_feasible(self, history: Sequence[tuple[Mapping[str, Any], Outcome]], Xc: np.ndarray) -> np.ndarray:
        """log P(no crash) + log P(constraints met), each floored (0.02 + 0.96·p) so that a GP that is
        overconfident about a violation never makes a probable crash look better than it."""
        p_constraints = np.exp(self.log_p_constraints(history, Xc))
        return self.log_p_no_crash(history, Xc) + np.log(0.02 + 0.96 * p_constraints)
