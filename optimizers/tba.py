"""TBA: Thermal Budget Annealing, feasible-first simulated annealing.

Reimplemented from the paper (Lysenstøen 2026, "Feasible-First Exploration for Constrained ML
Deployment Optimization in Crash-Prone Hierarchical Search Spaces", Algorithm 1) and its published
code (github.com/Chrislysen/Constrained-ML-Deployment), "the reference" below.
"""

from __future__ import annotations

from typing import Any, Mapping

from deploybench import Optimizer, OptimizerContext, Outcome

from .annealing import AnnealingDriver, AnnealingState, Temperature, propose_neighbor
from .subspace import SubspaceTracker


class TBA(AnnealingDriver, Optimizer):
    """Feasible-first simulated annealing with the reference's constants as defaults.

    Minimise the total violation until the first feasible result, then maximise the objective over
    feasible states; adaptive temperature (cool 0.95 / 0.92, reheat ×2.5 capped at 0.8·T_init after 4
    non-improving steps, 0.7·T_init on the first feasible); structural moves with probability decaying
    linearly 0.5 → 0.15 over the budget after ``n_initial_random`` random trials; elite restart every
    12 trials within the first 70 % of the budget; decaying snap-back 0.4·(1 − n/B); subspace
    blacklisting (3 failures, cooldown 8) with success reset and safety valve.

    What it knows and uses: the status of each result (crash, timeout, early stop, infeasible, ok), the
    total unitless violation of infeasible ones and the objective of feasible ones; neither the
    individual constraint metrics nor crash kinds nor ``cost_s``.

    Defects of the reference fixed here:

    - violations are unitless (fractions of each cap), so σ_V = 0.1 means the same on every task;
      crashes are never accepted and rank below every infeasible result.
    - no unintended duplicates: proposals already measured are re-drawn (then replaced by a random
      unmeasured config), and the elite restart *moves the state* to the 2nd/3rd best feasible config
      instead of re-measuring it.
    - an early-stopped trial is a non-improving step and never becomes the current state.
    - one domain: moves use the space's own local move (log scale and ordinal grids honoured).
    - blacklisting charges only what the evidence supports (see ``subspace``) and a blacklisted
      proposal is re-drawn, never returned silently.
    """

    name = "tba"

    def __init__(self, context: OptimizerContext, *,
                 T_init: float = 1.0, T_min: float = 1e-3, patience: int = 4, n_initial_random: int = 5,
                 p_structural_start: float = 0.5, p_structural_end: float = 0.15, restart_interval: int = 12,
                 restart_cutoff: float = 0.7, snap_back: bool = True, enable_blacklisting: bool = True,
                 blacklist_threshold: int = 3, cooldown_trials: int = 8):
        super().__init__(context)
        self.T_init = T_init
        self.T_min = T_min
        self.patience = patience
        self.n_initial_random = n_initial_random
        self.p_structural_start = p_structural_start
        self.p_structural_end = p_structural_end
        self.restart_interval = restart_interval
        self.restart_cutoff = restart_cutoff
        self.snap_back = snap_back
        self.enable_blacklisting = enable_blacklisting
        self.blacklist_threshold = blacklist_threshold
        self.cooldown_trials = cooldown_trials
        self._rng = self.make_rng()
        self._sa = AnnealingState(self.space, self.objective.sign, Temperature(T=T_init, T_init=T_init, T_min=T_min,
                                                                     patience=patience),
                                  self._rng, snap_back=snap_back, budget=self.budget)
        self._tracker = (SubspaceTracker(self.space, blacklist_threshold, cooldown_trials) if enable_blacklisting
                         else None)
        self._history: list[tuple[dict, Outcome]] = []
        self._seen: set[str] = set()
        self._initialized = False
        self._steps_since_restart = 0
        self._from_annealer: set[str] = set()
        self.blacklist_overrides: list[dict] = []

    def _p_structural(self) -> float:
        n = len(self._history)
        span = max(1, self.budget - self.n_initial_random)
        frac = max(0.0, (n - self.n_initial_random) / span)
        return self.p_structural_start + (self.p_structural_end - self.p_structural_start) * min(1.0, frac)

    def ask(self) -> dict[str, Any]:
        n = len(self._history)
        if n < self.n_initial_random:
            return self._random_unmeasured()
        self._start_annealing()
        if self._steps_since_restart >= self.restart_interval and n / self.budget < self.restart_cutoff:
            self._steps_since_restart = 0
            ranked = sorted(((self.objective.sign * o.objective, c) for c, o in self._history if o.feasible),
                            key=lambda t: -t[0])
            if len(ranked) >= 2:  # restart from the 2nd or 3rd best feasible state (not a re-measurement)
                pick = ranked[1] if len(ranked) == 2 else ranked[1 + int(self._rng.integers(2))]
                self._sa.current, self._sa.current_value = dict(pick[1]), pick[0]
        if self._sa.current is None:
            return self._random_unmeasured()
        for _ in range(50):
            candidate = propose_neighbor(self.space, self._sa.current, self._sa.temp.T, self._p_structural(),
                                         self._rng, self._tracker, n + 1)
            if self.space.key(candidate) not in self._seen and self._allowed(candidate):
                self._from_annealer.add(self.space.key(candidate))
                return candidate
        return self._random_unmeasured()

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        self._steps_since_restart += 1
        self._anneal_tell(config, outcome)
