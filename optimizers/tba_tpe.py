"""TBA → TPE: feasible-first annealing, then Optuna TPE warm-started with the whole history.

The hybrid of the TBA paper (Lysenstøen 2026, "Feasible-First Exploration for Constrained ML
Deployment Optimization in Crash-Prone Hierarchical Search Spaces"); "the reference" below is its
published code (github.com/Chrislysen/Constrained-ML-Deployment).
"""

from __future__ import annotations

from typing import Any, Mapping

from deploybench import Optimizer, OptimizerContext, Outcome

from .annealing import AnnealingDriver, AnnealingState, Temperature, propose_neighbor
from .subspace import SubspaceTracker
from .tpe import OptunaStudyMixin


class TBATPE(AnnealingDriver, OptunaStudyMixin, Optimizer):
    """The hybrid: an SA phase that maps the feasible region, then constrained TPE.

    SA phase (reference constants): 3 random trials, then annealing with cooling 0.92, reheat ×2.5
    (cap 0.8) after 4 non-improving steps, structural-move probability 0.5 → 0.25 over the 15-trial
    window, blacklisting (3 failures, cooldown 8); no elite restart or snap-back (as in the code the
    paper measured). Handoff when at least ``min_tba_trials`` (5) trials ran with ≥ 5 feasible and ≥ 3
    bad (crashed, timed out or infeasible) results and, when the task names a family parameter, at
    least ``min_family_diversity`` distinct families were tried; forced at ``max_tba_trials`` (15).
    Phase 2 injects every result (crashes included) into an Optuna study with the shared crash policy
    (``optuna_policy``) and asks TPE with ``n_startup_trials=0``.

    What it knows and uses: in the SA phase what ``tba`` uses; in the TPE phase the shared crash policy
    (status, total unitless violation, objective; see ``optuna_policy``); neither individual constraint
    metrics nor crash kinds nor ``cost_s``.

    Defects of the reference fixed here:

    - the handoff gate works on spaces without a family parameter (the diversity term is skipped
      when ``family_param`` is None; the reference required a ``model_name`` key and so never handed
      off before the forced trial on synthetic tasks).
    - unitless violations; a crash reaches Optuna ranked below every infeasible trial.
    - no unintended duplicates in either phase: an SA proposal already measured is re-drawn;
      a TPE suggestion already measured is closed as FAIL (ignored by TPE) and TPE is asked again,
      then an unmeasured random config avoiding crashed categorical values is used.
    - early stops are non-improving steps in SA and clearly-infeasible trials for TPE.
    - one domain (ordinals are searched over their listed values in both phases).
    - evidence-based blacklisting; blacklisted proposals are re-drawn, never returned.
    """

    name = "tba_tpe"

    def __init__(self, context: OptimizerContext, *,
                 T_init: float = 1.0, T_min: float = 1e-3, patience: int = 4, n_initial_random: int = 3,
                 p_structural_start: float = 0.5, p_structural_end: float = 0.25, min_tba_trials: int = 5,
                 max_tba_trials: int = 15, min_feasible_for_handoff: int = 5, min_bad_for_handoff: int = 3,
                 min_family_diversity: int = 1, enable_blacklisting: bool = True, blacklist_threshold: int = 3,
                 cooldown_trials: int = 8, multivariate: bool = False, group: bool = False):
        super().__init__(context)
        self.T_init = T_init
        self.T_min = T_min
        self.patience = patience
        self.n_initial_random = n_initial_random
        self.p_structural_start = p_structural_start
        self.p_structural_end = p_structural_end
        self.min_tba_trials = min_tba_trials
        self.max_tba_trials = max_tba_trials
        self.min_feasible_for_handoff = min_feasible_for_handoff
        self.min_bad_for_handoff = min_bad_for_handoff
        self.min_family_diversity = min_family_diversity
        self.enable_blacklisting = enable_blacklisting
        self.blacklist_threshold = blacklist_threshold
        self.cooldown_trials = cooldown_trials
        self.multivariate = multivariate
        self.group = group
        self._rng = self.make_rng()
        temperature = Temperature(T=T_init, T_init=T_init, T_min=T_min, patience=patience,
                                  cool_feasibility=0.92, cool_optimization=0.92)
        self._sa = AnnealingState(self.space, self.objective.sign, temperature, self._rng, snap_back=False,
                                  budget=self.budget)
        self._tracker = SubspaceTracker(self.space, blacklist_threshold, cooldown_trials) if enable_blacklisting else None
        self._history: list[tuple[dict, Outcome]] = []
        self._seen: set[str] = set()
        self._initialized = False
        self._from_annealer: set[str] = set()
        self.blacklist_overrides: list[dict] = []
        self.handoff_trial: int | None = None
        self._init_study(n_startup_trials=0, multivariate=multivariate, group=group, seed=self.seed)

    # -- handoff ----------------------------------------------------------------------------------------
    def should_handoff(self) -> bool:
        n = len(self._history)
        if n < self.min_tba_trials:
            return False
        if n >= self.max_tba_trials:
            return True
        n_feasible = sum(o.feasible for _, o in self._history)
        n_bad = n - n_feasible
        if n_feasible < self.min_feasible_for_handoff or n_bad < self.min_bad_for_handoff:
            return False
        if self.family_param is not None and self.family_param in self.space:
            families = {c.get(self.family_param) for c, _ in self._history if self.family_param in c}
            return len(families) >= self.min_family_diversity
        return True

    def _handoff(self) -> None:
        self.handoff_trial = len(self._history)
        for config, outcome in self._history:
            self._tell_study(config, outcome)

    # -- ask/tell ---------------------------------------------------------------------------------------------
    def _p_structural(self) -> float:
        frac = min(len(self._history) / self.max_tba_trials, 1.0)
        return self.p_structural_start + (self.p_structural_end - self.p_structural_start) * frac

    def ask(self) -> dict[str, Any]:
        if self.handoff_trial is None and self.should_handoff():
            self._handoff()
        if self.handoff_trial is not None:
            return self._ask_study()
        n = len(self._history)
        if n < self.n_initial_random:
            return self._random_unmeasured()
        self._start_annealing()
        if self._sa.current is None:
            return self._random_unmeasured()
        candidate = self._sa_proposal()
        if candidate is None:
            return self._random_unmeasured()
        self._from_annealer.add(self.space.key(candidate))
        return candidate

    def _sa_proposal(self, exclude: frozenset = frozenset(), tries: int = 50) -> dict | None:
        """An annealing neighbour of the current state that is unmeasured and not blacklisted."""
        for _ in range(tries):
            candidate = propose_neighbor(self.space, self._sa.current, self._sa.temp.T, self._p_structural(),
                                         self._rng, self._tracker, len(self._history) + 1)
            key = self.space.key(candidate)
            if key not in self._seen and key not in exclude and self._allowed(candidate):
                return candidate
        return None

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        if self.handoff_trial is not None:
            self._history.append((dict(config), outcome))
            self._tell_study(config, outcome)
            return
        self._anneal_tell(config, outcome)
