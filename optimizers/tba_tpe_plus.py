"""TBA → TPE+: the hybrid with a feasibility screen on TPE's proposals (an improved variant).

Not part of the reference; registered separately so ``tba_tpe`` keeps the reference's behaviour.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna

from .optuna_policy import suggest_config
from .gp import single_blas_thread
from .surrogates import FeasibilityModel
from .tba_tpe import TBATPE


class TBATPEPlus(TBATPE):
    """``tba_tpe`` whose TPE phase only spends trials where a model expects them to count.

    Why: on crash-prone, constrained spaces about a third of plain TPE's trials crash or violate
    a constraint, because univariate TPE cannot represent a constraint that couples parameters
    (x1 + x2 ≤ 16) and learns crash zones only from its "bad" density. Here, after the handoff,
    TPE (multivariate by default) draws ``n_proposals`` candidates per trial; a
    :class:`~deploybench_optimizers.surrogates.FeasibilityModel` (GP crash classifier +
    one GP per constraint, on the shared encoding) estimates P(runs and meets every constraint) for
    each, and the first candidate in TPE's own order with P ≥ ``feasibility_threshold`` is
    evaluated (else the most probably feasible one). The unused proposals are closed as FAIL, which
    TPE ignores, so its densities are built from measured trials only. Phase 1 is ``tba_tpe``'s
    unchanged; every fix listed there applies.

    What it knows and uses: what ``tba_tpe`` uses, plus (for the screen) each measured constraint
    metric and which trials crashed, timed out or were stopped early; not crash kinds, not ``cost_s``.
    """

    name = "tba_tpe_plus"

    def __init__(self, context: OptimizerContext, *,
                 T_init: float = 1.0, T_min: float = 1e-3, patience: int = 4, n_initial_random: int = 3,
                 p_structural_start: float = 0.5, p_structural_end: float = 0.25, min_tba_trials: int = 5,
                 max_tba_trials: int = 15, min_feasible_for_handoff: int = 5, min_bad_for_handoff: int = 3,
                 min_family_diversity: int = 1, enable_blacklisting: bool = True, blacklist_threshold: int = 3,
                 cooldown_trials: int = 8, multivariate: bool = True, group: bool = False,
                 n_proposals: int = 8, feasibility_threshold: float = 0.5):
        super().__init__(context, T_init=T_init, T_min=T_min, patience=patience,
                         n_initial_random=n_initial_random, p_structural_start=p_structural_start,
                         p_structural_end=p_structural_end, min_tba_trials=min_tba_trials,
                         max_tba_trials=max_tba_trials, min_feasible_for_handoff=min_feasible_for_handoff,
                         min_bad_for_handoff=min_bad_for_handoff, min_family_diversity=min_family_diversity,
                         enable_blacklisting=enable_blacklisting, blacklist_threshold=blacklist_threshold,
                         cooldown_trials=cooldown_trials, multivariate=multivariate, group=group)
        self.n_proposals = n_proposals
        self.feasibility_threshold = feasibility_threshold
        self._feasibility = FeasibilityModel(self.space, self.constraints)

    @single_blas_thread
    def ask(self) -> dict[str, Any]:
        return super().ask()

    def _screen(self, configs: list[dict]) -> int:
        """Index of the first config with P(feasible) ≥ threshold, else of the most probably feasible."""
        log_p = self._feasibility.log_p_feasible(self._history, self.space.encode_many(configs))
        passing = np.flatnonzero(log_p >= np.log(self.feasibility_threshold))
        return int(passing[0]) if passing.size else int(np.argmax(log_p))

    def _sa_proposal(self, exclude: frozenset = frozenset(), tries: int = 50) -> dict | None:
        """Annealing phase: ``n_proposals`` neighbours, screened like TPE's proposals."""
        first = super()._sa_proposal(exclude, tries)
        if first is None or len(self._history) < 3 or self.n_proposals <= 1:
            return first
        candidates, keys = [first], {self.space.key(first)}
        for _ in range(self.n_proposals - 1):
            c = super()._sa_proposal(frozenset(keys | set(exclude)), 5)
            if c is None:
                break
            candidates.append(c)
            keys.add(self.space.key(c))
        return candidates[self._screen(candidates)]

    def _ask_study(self, max_retries: int = 20) -> dict[str, Any]:
        # more retries than tpe's DUPLICATE_RETRIES: this loop collects n_proposals distinct suggestions
        proposals: list[tuple[optuna.Trial, dict, str]] = []
        last = None
        for _ in range(max_retries + self.n_proposals):
            trial = self._study.ask()
            config = suggest_config(trial, self.space)
            key = self.space.key(config)
            if key in self._measured or key in self._pending or any(key == k for _, _, k in proposals):
                self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
                last = config
                continue
            proposals.append((trial, config, key))
            if len(proposals) >= self.n_proposals:
                break
        if not proposals:
            return self._escape_duplicate(last)
        pick = self._screen([c for _, c, _ in proposals])
        for i, (trial, _, _) in enumerate(proposals):
            if i != pick:
                self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        trial, config, key = proposals[pick]
        self._pending[key] = trial
        return config
