"""The one crash policy shared by every Optuna-based optimizer (``tpe``, ``tba_tpe``).

How outcomes reach Optuna (Optuna 5 constraint API: ``create_trial(constraints=...)`` for injected
history, ``Trial.set_constraint`` for asked trials; ``constraints_func`` is deprecated and unused):

============== ============ ===================== ==========================================================
outcome        trial state  value                 constraint ``deploybench`` (feasible iff ≤ 0)
============== ============ ===================== ==========================================================
ok             COMPLETE     the objective         ``0``
infeasible     COMPLETE     the objective         ``v / (1 + v)`` with ``v`` the total unitless violation
early-stopped  COMPLETE     objective or worst    ``max(v / (1 + v), 0.5)`` (clearly infeasible)
crashed        COMPLETE     worst value seen      ``1.0``
timeout        COMPLETE     worst value seen      ``1.0``
============== ============ ===================== ==========================================================

Why: Optuna's TPE ignores FAIL trials, so a crash told as FAIL would leave the crashing region
as attractive as before (optuna#332). As COMPLETE trials with a positive constraint, crashes land in
TPE's "bad" group. The violation is squashed into [0, 1) so every crash (1.0) ranks below every
infeasible outcome whatever its size (the reference's raw-unit violations let a 600 ms early stop
look worse than a crash). The value of an infeasible or crashed trial never decides its rank
(TPE orders infeasible trials by constraint only); crashes carry the worst finite value seen so
no -inf reaches Optuna.

Parameters map one to one onto the space: categoricals → ``CategoricalDistribution``, integers and
floats → ``IntDistribution`` / ``FloatDistribution`` with the space's log flag, ordinals → an
``IntDistribution`` over the value *index* (so TPE keeps their order, and a log-spaced ordinal such
as batch sizes 1…32 is searched on its log grid). Every optimizer therefore sees the same domain.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from deploybench import Categorical, Float, Integer, Ordinal, Outcome, SearchSpace, Status

__all__ = ["CONSTRAINT_KEY", "CRASH_CONSTRAINT", "constraint_value", "distribution", "suggest_config",
           "to_optuna_params", "frozen_trial", "quiet_optuna"]

CONSTRAINT_KEY = "deploybench"
CRASH_CONSTRAINT = 1.0
EARLY_STOP_FLOOR = 0.5


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; a benchmark run prints its own progress."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def constraint_value(outcome: Outcome) -> float:
    """The single constraint Optuna sees (see the module table)."""
    if outcome.failed:
        return CRASH_CONSTRAINT
    v = outcome.total_violation
    squashed = v / (1.0 + v)
    if outcome.early_stopped:
        return max(squashed, EARLY_STOP_FLOOR)
    return squashed if outcome.status is Status.INFEASIBLE else 0.0


def distribution(param: Any) -> BaseDistribution:
    if isinstance(param, Categorical):
        return CategoricalDistribution(list(param.choices))
    if isinstance(param, Ordinal):
        return IntDistribution(0, len(param.values) - 1)
    if isinstance(param, Integer):
        return IntDistribution(param.low, param.high, log=param.log)
    if isinstance(param, Float):
        return FloatDistribution(param.low, param.high, log=param.log)
    raise TypeError(f"no Optuna distribution for {type(param).__name__}")


def suggest_config(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Define-by-run: suggest the active parameters in declared order (conditions respected)."""
    config: dict[str, Any] = {}
    for p in space:
        if p.condition is not None and not p.condition.holds(config):
            continue
        dist = distribution(p)
        if isinstance(p, Categorical):
            config[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif isinstance(p, Ordinal):
            config[p.name] = p.values[trial.suggest_int(p.name, dist.low, dist.high)]
        elif isinstance(p, Integer):
            config[p.name] = trial.suggest_int(p.name, p.low, p.high, log=p.log)
        else:
            config[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
    return config


def to_optuna_params(space: SearchSpace, config: Mapping[str, Any]) -> tuple[dict, dict]:
    params, dists = {}, {}
    for p in space:
        if p.name not in config:
            continue
        value = config[p.name]
        params[p.name] = p.index(value) if isinstance(p, Ordinal) else value
        dists[p.name] = distribution(p)
    return params, dists


def trial_value(outcome: Outcome, worst: float, sign: float) -> float:
    """The value told to Optuna: the objective when there is one, else the worst value seen."""
    if outcome.objective is not None and math.isfinite(outcome.objective):
        return outcome.objective
    return worst if math.isfinite(worst) else 0.0


def frozen_trial(space: SearchSpace, config: Mapping[str, Any], outcome: Outcome, worst: float,
                 sign: float) -> optuna.trial.FrozenTrial:
    """An already measured evaluation as a COMPLETE trial with its constraint (for warm starts)."""
    params, dists = to_optuna_params(space, config)
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        value=trial_value(outcome, worst, sign),
        params=params,
        distributions=dists,
        constraints={CONSTRAINT_KEY: constraint_value(outcome)},
        user_attrs={"status": outcome.status.value, "early_stopped": outcome.early_stopped},
    )
