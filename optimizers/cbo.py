"""A fair constrained Bayesian optimization baseline (the CBO of the TBA paper's code was a weak straw man)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy.stats import norm

from deploybench import Optimizer, Outcome, Status

from .annealing import unseen_sample
from .surrogates import FeasibilityModel, WarmGP

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

    Defects of the reference CBO (the TBA paper's code) fixed here, besides the fixes shared with the
    other optimizers (unitless violations, no duplicates, one domain): crashes are not
    regression targets (no -1e4 values: they train only the crash classifier); targets are
    standardised (``normalize_y``); categoricals are one-hot, not ordinal codes; log scales and
    ordinal grids come from the space (one domain); no duplicate evaluations. Kept fast: GP
    hyper-parameters are warm-started and re-optimised every few fits (``surrogates.WarmGP``).
    """

    name = "cbo"

    def __init__(self, space, *, objective, constraints=(), budget=25, seed=0, family_param=None,
                 n_initial: int = 5, n_candidates: int = 500, n_local: int = 200, xi: float = 0.01):
        super().__init__(space, objective=objective, constraints=constraints, budget=budget, seed=seed,
                         family_param=family_param)
        self.n_initial = n_initial
        self.n_candidates = n_candidates
        self.n_local = n_local
        self.xi = xi
        self._rng = self.make_rng()
        self._history: list[tuple[dict, Outcome]] = []
        self._seen: set[str] = set()
        self._feasibility = FeasibilityModel(space, self.constraints, seed=seed)
        self._objective_gp = WarmGP()

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
        if all(o.failed for _, o in self._history):
            return unseen_sample(self.space, self._rng, self._seen)
        # P(no crash) × P(every constraint met), both on the shared encoding
        log_acq = self._feasibility.log_p_feasible(self._history, Xc)
        # expected improvement over the best feasible value (objective GP on configurations that ran)
        ran = [(c, o) for c, o in self._history if o.ran and o.objective is not None and not o.early_stopped]
        feasible = [self.objective.sign * o.objective for _, o in ran if o.feasible]
        if feasible and len(ran) >= 3:
            Xo = self.space.encode_many([c for c, _ in ran])
            y = np.array([self.objective.sign * o.objective for _, o in ran])
            mu, sd = self._objective_gp.fit(Xo, y).predict(Xc)
            best = max(feasible)
            shift = self.xi * max(float(np.std(y)), 1e-9)
            z = (mu - best - shift) / sd
            ei = (mu - best - shift) * norm.cdf(z) + sd * norm.pdf(z)
            log_acq = log_acq + np.log(np.maximum(ei, 1e-300))
        i = int(np.argmax(log_acq + 1e-12 * self._rng.random(len(cands))))
        return cands[i]

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        self._seen.add(self.space.key(config))
        self._history.append((dict(config), outcome))
