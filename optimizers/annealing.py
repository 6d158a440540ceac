"""Feasible-first simulated annealing, the engine shared by ``tba`` and the SA phase of ``tba_tpe``.

Two-stage energy (as in TBA, the annealing of the TBA paper): until the first feasible result the state minimises the total
*unitless* violation; afterwards it maximises the objective over feasible states only. Crashes are
never accepted; early stops are non-improving steps that never become the current state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from deploybench import Categorical, Outcome, SearchSpace, Status

from .subspace import SubspaceTracker

__all__ = ["Temperature", "AnnealingState", "AnnealingDriver", "propose_neighbor", "unseen_sample"]


@dataclass
class Temperature:
    """Adaptive temperature: cool on improvement, reheat after ``patience`` non-improving steps."""

    T: float = 1.0
    T_init: float = 1.0
    T_min: float = 1e-3
    patience: int = 4
    cool_feasibility: float = 0.95
    cool_optimization: float = 0.92
    reheat: float = 2.5
    reheat_cap: float = 0.8
    no_improve: int = 0

    def update(self, improved: bool, phase: str) -> None:
        if improved:
            self.no_improve = 0
            self.T *= self.cool_feasibility if phase == "feasibility" else self.cool_optimization
        else:
            self.no_improve += 1
            if self.no_improve >= self.patience:
                self.T = min(self.T * self.reheat, self.reheat_cap * self.T_init)
                self.no_improve = 0
        self.T = max(self.T, self.T_min)

    def first_feasible(self) -> None:
        self.T = 0.7 * self.T_init
        self.no_improve = 0


def unseen_sample(space: SearchSpace, rng: np.random.Generator, seen: set[str],
                  allowed: Callable[[Mapping[str, Any]], bool] = lambda c: True, tries: int = 500) -> dict:
    """A random config not measured yet (and allowed, when possible)."""
    fallback = None
    for _ in range(tries):
        config = space.sample(rng)
        if space.key(config) in seen:
            continue
        if allowed(config):
            return config
        fallback = fallback or config
    return fallback or space.sample(rng)


def propose_neighbor(space: SearchSpace, current: Mapping[str, Any], T: float, p_structural: float,
                     rng: np.random.Generator, tracker: SubspaceTracker | None, trial: int) -> dict:
    """One local move: with probability ``p_structural`` change one categorical (among the values
    the tracker allows), else perturb one numeric parameter by a step of ``0.3·T`` in unit scale."""
    active = [space[n] for n in space.active_names(current)]
    structural = [p for p in active if isinstance(p, Categorical) and len(p.choices) > 1]
    numeric = [p for p in active if not isinstance(p, Categorical)]
    if structural and (not numeric or rng.random() < p_structural):
        p = structural[int(rng.integers(len(structural)))]
        options = tracker.allowed_values(p.name, trial) if tracker else list(p.choices)
        options = [c for c in options if c != current[p.name]]
        if not options:
            options = [c for c in p.choices if c != current[p.name]]
        new = dict(current)
        new[p.name] = options[int(rng.integers(len(options)))]
        return space.complete(new, rng)
    if not numeric:
        return space.sample(rng)
    p = numeric[int(rng.integers(len(numeric)))]
    return space.perturb(current, p.name, max(0.3 * T, 0.02), rng)


class AnnealingState:
    """The SA state machine. ``tell`` implements acceptance; the owner decides what to ask."""

    def __init__(self, space: SearchSpace, sign: float, temperature: Temperature, rng: np.random.Generator,
                 snap_back: bool, budget: int) -> None:
        self.space = space
        self.sign = sign
        self.temp = temperature
        self.rng = rng
        self.snap_back = snap_back
        self.budget = budget
        self.phase = "feasibility"
        self.current: dict | None = None
        self.current_violation = math.inf
        self.current_value = -math.inf  # sign-adjusted objective (maximised)
        self.feasible_values: list[float] = []
        self.best: tuple[float, dict] | None = None  # best feasible (sign-adjusted value, config)

    # σ_V: violations are unitless (fractions of the cap), so the reference's "10 % of the mean cap"
    # becomes 0.1 for every task
    SIGMA_V = 0.1

    def sigma_f(self) -> float:
        if len(self.feasible_values) < 2:
            return 1.0
        return max(max(self.feasible_values) - min(self.feasible_values), 1e-6)

    def initialize(self, history: list[tuple[dict, Outcome]]) -> None:
        """Start from the best feasible result, else the least-violating one that ran, else nothing."""
        feasible = [(self.sign * o.objective, c) for c, o in history if o.status is Status.OK]
        if feasible:
            value, config = max(feasible, key=lambda t: t[0])
            self.phase, self.current, self.current_value, self.current_violation = "optimization", dict(config), value, 0.0
            self.temp.first_feasible()
            return
        ran = [(o.total_violation, c) for c, o in history if o.status is Status.INFEASIBLE and not o.early_stopped]
        if ran:
            v, config = min(ran, key=lambda t: t[0])
            self.current, self.current_violation = dict(config), v

    def observe(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        """Bookkeeping for every result, including the random initial ones."""
        if outcome.status is Status.OK and outcome.objective is not None:
            value = self.sign * outcome.objective
            self.feasible_values.append(value)
            if self.best is None or value > self.best[0]:
                self.best = (value, dict(config))

    def step(self, config: Mapping[str, Any], outcome: Outcome, n_told: int) -> None:
        """Acceptance for a proposal made by the annealer."""
        if outcome.failed or outcome.early_stopped:  # crash-aware: never accepted, non-improving
            self.temp.update(False, self.phase)
            return
        if self.phase == "feasibility":
            if outcome.status is Status.OK:
                self.phase, self.current = "optimization", dict(config)
                self.current_violation, self.current_value = 0.0, self.sign * outcome.objective
                self.temp.first_feasible()
                return
            v = outcome.total_violation
            improved = v < self.current_violation
            if improved or self.rng.random() < math.exp(-(v - self.current_violation) / (self.temp.T * self.SIGMA_V)):
                self.current, self.current_violation = dict(config), v
            self.temp.update(improved, "feasibility")
            return
        if outcome.status is not Status.OK:  # hard feasibility filter in the optimization phase
            self.temp.update(False, "optimization")
            return
        value = self.sign * outcome.objective
        improved = value > self.current_value
        if improved or self.rng.random() < math.exp(-(self.current_value - value) / (self.temp.T * self.sigma_f())):
            self.current, self.current_value = dict(config), value
        self.temp.update(improved, "optimization")
        if self.snap_back and self.best is not None and self.current_value < self.best[0]:
            if self.rng.random() < 0.4 * (1.0 - n_told / self.budget):
                self.current_value, self.current = self.best[0], dict(self.best[1])


class AnnealingDriver:
    """What ``tba`` and the annealing phase of ``tba_tpe`` share: the blacklist check, the random
    unmeasured fallback and the bookkeeping half of ``tell`` (history, blacklist counts, acceptance).

    The owner sets ``space``, ``n_initial_random``, ``_rng``, ``_sa`` (an :class:`AnnealingState`),
    ``_tracker`` (a :class:`SubspaceTracker` or None), ``_history``, ``_seen``, ``_initialized``,
    ``_from_annealer`` and ``blacklist_overrides``; it decides what to ask.
    """

    def _allowed(self, config: Mapping[str, Any]) -> bool:
        return not self._tracker or not self._tracker.blocked(config, len(self._history) + 1)

    def _random_unmeasured(self) -> dict[str, Any]:
        """A random unmeasured config outside the blacklist; when none can be found (every unmeasured
        sample drawn was blacklisted) the blacklisted one is returned and the override is recorded in
        ``blacklist_overrides`` (never silently)."""
        config = unseen_sample(self.space, self._rng, self._seen, self._allowed)
        if self._tracker and not self._allowed(config):
            hits = self._tracker.blocked(config, len(self._history) + 1)
            self.blacklist_overrides.append({"trial": len(self._history), "blacklisted": [repr(h) for h in hits],
                                             "why": "no unmeasured config outside the blacklist was found"})
        return config

    def _start_annealing(self) -> None:
        """Place the annealer on the history once the random trials are done (idempotent)."""
        if not self._initialized:
            self._sa.initialize(self._history)
            self._initialized = True

    def _anneal_tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        """Record a result and, for a proposal of the annealer, apply the acceptance rule; a random
        fallback counts only when it gives the annealer its first state or first feasible result."""
        key = self.space.key(config)
        self._seen.add(key)
        self._history.append((dict(config), outcome))
        n = len(self._history)
        if self._tracker:
            self._tracker.record(config, outcome, n)
        self._sa.observe(config, outcome)
        if n <= self.n_initial_random:
            return
        if not self._initialized:
            self._start_annealing()
            return
        if key in self._from_annealer:
            self._from_annealer.discard(key)
            self._sa.step(config, outcome, n)
        elif self._sa.current is None or (outcome.feasible and self._sa.phase == "feasibility"):
            self._sa.step(config, outcome, n)
