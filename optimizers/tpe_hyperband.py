"""TPE with Optuna's Hyperband pruner over fidelity levels: the standard multi-fidelity baseline.

Each configuration TPE suggests is first evaluated at the task's probe level (rung 1); its result is
reported to the trial (``Trial.report``) and Optuna's ``HyperbandPruner`` decides
(``Trial.should_prune``) whether it is worth a full evaluation (rung 2). A pruned trial is told to
the study as ``PRUNED``; a crashed or infeasible probe ends its trial with the shared crash policy
(:mod:`.optuna_policy`) and is never promoted. On a task without a probe level this is plain TPE.
"""

from __future__ import annotations

from typing import Any, Mapping

import optuna
from optuna.trial import TrialState

from deploybench import Optimizer, OptimizerContext, OptimizerTags, Outcome
from deploybench.fidelity import Suggestion

from .design import initial_design_size
from .optuna_policy import CONSTRAINT_KEY, constraint_value, quiet_optuna, suggest_config, to_optuna_params, trial_value

__all__ = ["TPEHyperband"]


class TPEHyperband(Optimizer):
    """Optuna TPE + ``HyperbandPruner`` with rungs probe → full (see the module docstring).

    Parameters
    ----------
    n_startup_trials: random trials before TPE starts (None: ``design.initial_design_size(budget)``).
    reduction_factor: Hyperband's η (the share of trials promoted per rung is about 1/η).
    """

    name = "tpe_hyperband"
    tags = OptimizerTags(multi_fidelity=True)

    def __init__(self, context: OptimizerContext, *,
                 n_startup_trials: int | None = None, reduction_factor: int = 3):
        super().__init__(context)
        self.n_startup_trials = n_startup_trials
        self.reduction_factor = reduction_factor
        quiet_optuna()
        startup = n_startup_trials if n_startup_trials is not None else initial_design_size(self.budget)
        sampler = optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=startup)
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=2, reduction_factor=reduction_factor)
        self._study = optuna.create_study(direction=self.objective.direction, sampler=sampler, pruner=pruner)
        self._worst = float("nan")
        self._promote: list[tuple[dict, optuna.Trial]] = []
        self._open: dict[str, optuna.Trial] = {}
        self._seen: set[str] = set()
        self._rng = self.make_rng(7)

    @property
    def _probe(self) -> str | None:
        return next((f.name for f in self.fidelities if f.kind == "probe"), None)

    def ask(self) -> dict[str, Any] | Suggestion:
        if self._promote:
            config, trial = self._promote.pop(0)
            self._open[self.space.key(config)] = trial
            return Suggestion(config, "full")
        for _ in range(20):
            trial = self._study.ask()
            config = suggest_config(trial, self.space)
            key = self.space.key(config)
            if key not in self._seen:
                break
            self._study.tell(trial, state=TrialState.FAIL)  # TPE ignores FAIL: no double counting
        else:  # TPE keeps repeating itself: an unmeasured random configuration, enqueued so it is a trial too
            for _ in range(100):
                config = self.space.sample(self._rng)
                if self.space.key(config) not in self._seen:
                    break
            self._study.enqueue_trial(to_optuna_params(self.space, config)[0])
            trial = self._study.ask()
            config = suggest_config(trial, self.space)
            key = self.space.key(config)
        self._seen.add(key)
        self._open[key] = trial
        probe = self._probe
        if probe is None:
            return config if len(self.fidelities) == 1 else Suggestion(config, "full")
        return Suggestion(config, probe)

    def _finish(self, trial: optuna.Trial, outcome: Outcome) -> None:
        if outcome.objective is not None and outcome.ran:
            if self._worst != self._worst or not self.objective.better(outcome.objective, self._worst):
                self._worst = outcome.objective
        trial.set_constraint(CONSTRAINT_KEY, constraint_value(outcome))
        self._study.tell(trial, trial_value(outcome, self._worst, self.objective.sign))

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        key = self.space.key(config)
        trial = self._open.pop(key, None)
        if trial is None:
            return
        if outcome.fidelity == "full" or self._probe is None:
            self._finish(trial, outcome)
            return
        if not outcome.feasible or outcome.objective is None:
            self._finish(trial, outcome)  # a crashed or infeasible probe is never promoted
            return
        trial.report(float(outcome.objective), step=1)
        if trial.should_prune():
            self._study.tell(trial, state=TrialState.PRUNED)
        else:
            self._promote.append((dict(config), trial))
