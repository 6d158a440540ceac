"""A fair constrained Bayesian optimization baseline (the reference's CBO was a straw man, O12)."""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np
from scipy.stats import norm
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from deploybench import Optimizer, Outcome, Status, hookimpl

from .annealing import unseen_sample


def _gp(seed: int, dim: int) -> GaussianProcessRegressor:
    kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(length_scale=np.full(dim, 0.5), length_scale_bounds=(1e-2, 1e2),
                                                       nu=2.5) + WhiteKernel(1e-4, (1e-6, 1e-1))
    return GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=1, random_state=seed)


class ConstrainedBO(Optimizer):
    """Constrained Bayesian optimization over the mixed space, with a crash model.

    - Inputs: the space's shared encoding (one-hot categoricals, numerics in [0, 1] with log scale
      honoured, inactive flags), identical for every model-based optimizer.
    - Models: a GP (Matern 5/2, ARD, standardised targets) on the objective of configurations that
      ran; one GP per constraint on its measured metric; a random-forest classifier of crashed
      (or timed out) versus ran.
    - Acquisition: expected improvement over the best feasible value × P(every constraint met) ×
      P(no crash). Before any feasible result: P(feasible) × P(no crash).
    - Acquisition optimisation: ``n_candidates`` random configurations plus local moves
      (``space.perturb``) around the best configurations seen: real configurations only, never
      gradient steps on rounded category codes. Measured configurations are never proposed again.
    """

    name = "cbo"
    description = "constrained BO: GP objective and constraint models, crash classifier, EI x P(feasible) x P(no crash)"

    def __init__(self, space, *, objective, constraints=(), budget=25, seed=0, family_param=None,
                 n_initial: int = 5, n_candidates: int = 1000, n_local: int = 300, xi: float = 0.01):
        super().__init__(space, objective=objective, constraints=constraints, budget=budget, seed=seed,
                         family_param=family_param)
        self.n_initial = n_initial
        self.n_candidates = n_candidates
        self.n_local = n_local
        self.xi = xi
        self._rng = self.make_rng()
        self._history: list[tuple[dict, Outcome]] = []
        self._seen: set[str] = set()

    # -- models ---------------------------------------------------------------------------------------
    def _fit_predict(self, X: np.ndarray, y: np.ndarray, Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            gp = _gp(int(self._rng.integers(2**31)), X.shape[1]).fit(X, y)
            mu, sd = gp.predict(Xc, return_std=True)
        return mu, np.maximum(sd, 1e-9)

    def _candidates(self) -> list[dict]:
        cands = [self.space.sample(self._rng) for _ in range(self.n_candidates)]
        ranked = sorted(self._history, key=lambda h: self._score_for_local(h[1]), reverse=True)[:5]
        for config, _ in ranked:
            for i in range(self.n_local // max(1, len(ranked))):
                names = self.space.active_names(config)
                name = names[int(self._rng.integers(len(names)))]
                scale = (0.02, 0.05, 0.1, 0.2)[i % 4]
                c = self.space.perturb(config, name, scale, self._rng)
                if self._rng.random() < 0.5:  # two-parameter moves too
                    names = self.space.active_names(c)
                    c = self.space.perturb(c, names[int(self._rng.integers(len(names)))], scale, self._rng)
                cands.append(c)
        unique: dict[str, dict] = {}
        for c in cands:
            k = self.space.key(c)
            if k not in self._seen:
                unique.setdefault(k, c)
        return list(unique.values())

    def _score_for_local(self, outcome: Outcome) -> float:
        if outcome.status is Status.OK:
            return 1e6 + self.objective.sign * outcome.objective
        if outcome.status is Status.INFEASIBLE:
            return -outcome.total_violation
        return -1e9

    def ask(self) -> dict[str, Any]:
        if len(self._history) < self.n_initial:
            return unseen_sample(self.space, self._rng, self._seen)
        cands = self._candidates()
        if not cands:
            return unseen_sample(self.space, self._rng, self._seen)
        Xc = self.space.encode_many(cands)
        configs = [c for c, _ in self._history]
        X = self.space.encode_many(configs)
        crashed = np.array([o.failed for _, o in self._history])
        ran = ~crashed
        log_acq = np.zeros(len(cands))
        # P(no crash)
        if crashed.any() and ran.any():
            clf = RandomForestClassifier(n_estimators=100, min_samples_leaf=1, random_state=int(self._rng.integers(2**31)))
            clf.fit(X, crashed.astype(int))
            p_ok = clf.predict_proba(Xc)[:, list(clf.classes_).index(0)]
            log_acq += np.log(np.clip(p_ok, 1e-3, 1.0))
        elif crashed.all():
            return unseen_sample(self.space, self._rng, self._seen)
        # P(each constraint met), on configurations that ran (early stops carry partial metrics)
        ran_hist = [(c, o) for c, o in self._history if o.ran]
        Xr = self.space.encode_many([c for c, _ in ran_hist])
        for con in self.constraints:
            pairs = [(i, o.metrics.get(con.metric)) for i, (_, o) in enumerate(ran_hist)]
            pairs = [(i, v) for i, v in pairs if v is not None]
            if len(pairs) < 3:
                continue
            idx = [i for i, _ in pairs]
            y = np.array([v for _, v in pairs], dtype=float)
            mu, sd = self._fit_predict(Xr[idx], y, Xc)
            log_acq += norm.logcdf((con.cap - mu) / sd)
        # expected improvement over the best feasible value
        ok = [(c, o) for c, o in ran_hist if o.objective is not None and not o.early_stopped]
        feasible = [self.objective.sign * o.objective for _, o in ran_hist if o.feasible]
        if feasible and len(ok) >= 3:
            Xo = self.space.encode_many([c for c, _ in ok])
            y = np.array([self.objective.sign * o.objective for _, o in ok])
            mu, sd = self._fit_predict(Xo, y, Xc)
            best = max(feasible)
            scale = max(np.std(y), 1e-9)
            z = (mu - best - self.xi * scale) / sd
            ei = (mu - best - self.xi * scale) * norm.cdf(z) + sd * norm.pdf(z)
            log_acq += np.log(np.maximum(ei, 1e-300))
        i = int(np.argmax(log_acq + 1e-12 * self._rng.random(len(cands))))
        return cands[i]

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        self._seen.add(self.space.key(config))
        self._history.append((dict(config), outcome))


@hookimpl
def deploybench_register_optimizers():
    return [ConstrainedBO]
