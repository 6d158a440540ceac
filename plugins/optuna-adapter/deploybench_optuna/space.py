"""The search space as Optuna distributions, suggested define-by-run.

One parameter, one distribution, so every sampler searches the domain every other optimizer sees:

=========== ============================================================================
deploybench Optuna
=========== ============================================================================
Categorical ``CategoricalDistribution`` over the choices themselves (over their indices
            when a choice is not a type Optuna stores: ``None``, bool, int, float, str)
Integer     ``IntDistribution(low, high, log=log)``
Float       ``FloatDistribution(low, high, log=log)``
Ordinal     ``IntDistribution(0, len(values) - 1)`` over the value's *index*, so the order
            is kept (an ordinal's log flag needs nothing more: batch sizes 1, 2, 4, ... are
            already evenly spaced by index)
=========== ============================================================================

Conditions: parameters are suggested in the space's order and an inactive one (its condition
does not hold for the values suggested so far) is never suggested, so a trial holds exactly
the active parameters of its config. Samplers that model a fixed set of parameters (GP,
CMA-ES: Optuna's intersection search space) draw the conditional ones with their independent
sampler; that is Optuna's documented behaviour, not the adapter's.
"""

from __future__ import annotations

from typing import Any, Mapping

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from deploybench import Categorical, Float, Integer, Ordinal, SearchSpace

__all__ = ["distribution", "suggest_config", "to_optuna"]

_STORABLE = (type(None), bool, int, float, str)


def _native_choices(param: Categorical) -> bool:
    """Whether the choices can be Optuna's categories as they are (types Optuna stores; the space
    already refuses choices that compare equal)."""
    return all(type(c) in _STORABLE for c in param.choices)


def distribution(param: Any) -> BaseDistribution:
    """The Optuna distribution of one deploybench parameter (see the module table)."""
    if isinstance(param, Categorical):
        choices = list(param.choices) if _native_choices(param) else list(range(len(param.choices)))
        return CategoricalDistribution(choices)
    if isinstance(param, Ordinal):
        return IntDistribution(0, len(param.values) - 1)
    if isinstance(param, Integer):
        return IntDistribution(int(param.low), int(param.high), log=bool(param.log))
    if isinstance(param, Float):
        return FloatDistribution(float(param.low), float(param.high), log=bool(param.log))
    raise TypeError(f"no Optuna distribution for a {type(param).__name__} parameter "
                    "(allowed: Categorical, Integer, Float, Ordinal)")


def _from_optuna(param: Any, value: Any) -> Any:
    if isinstance(param, Ordinal):
        return param.values[int(value)]
    if isinstance(param, Categorical):
        return value if _native_choices(param) else param.choices[int(value)]
    if isinstance(param, Integer):
        return int(value)
    return float(value)


def suggest_config(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Define-by-run: suggest the active parameters in the space's order (conditions respected)."""
    config: dict[str, Any] = {}
    for param in space:
        if param.condition is not None and not param.condition.holds(config):
            continue
        dist = distribution(param)
        if isinstance(dist, CategoricalDistribution):
            value = trial.suggest_categorical(param.name, dist.choices)
        elif isinstance(dist, IntDistribution):
            value = trial.suggest_int(param.name, dist.low, dist.high, log=dist.log)
        else:
            value = trial.suggest_float(param.name, dist.low, dist.high, log=dist.log)
        config[param.name] = _from_optuna(param, value)
    return config


def to_optuna(space: SearchSpace, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    """A config as Optuna parameter values and their distributions (for ``create_trial``)."""
    params: dict[str, Any] = {}
    dists: dict[str, BaseDistribution] = {}
    for param in space:
        if param.name not in config:
            continue
        value = config[param.name]
        if isinstance(param, Ordinal):
            value = param.index(value)
        elif isinstance(param, Categorical) and not _native_choices(param):
            value = list(param.choices).index(value)
        params[param.name] = value
        dists[param.name] = distribution(param)
    return params, dists
