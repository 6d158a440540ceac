"""Translate a deploybench :class:`~deploybench.SearchSpace` to a nevergrad ``ng.p.Dict``.

Nevergrad has no conditional parameters, so the Dict holds *every* parameter; a candidate's value
is turned into a deploybench config by walking the space in declared order and keeping only the
parameters whose condition holds (:meth:`SearchSpace.complete` semantics, nothing resampled). The
inactive values are still part of the candidate nevergrad mutates: they are carried along and
ignored, so two candidates differing only in inactive values give the same config (the harness
counts such repeats as duplicates).
"""

from __future__ import annotations

from typing import Any, Mapping

import nevergrad as ng
import numpy as np

from deploybench import Categorical, Float, Integer, Ordinal, SearchSpace

__all__ = ["to_parametrization", "to_config", "to_value"]


def _param(p) -> ng.p.Parameter:
    if isinstance(p, Categorical):
        return ng.p.Choice(list(p.choices))
    if isinstance(p, Ordinal):
        # ordered: mutations move to neighbouring values (a log flag changes nothing here)
        return ng.p.TransitionChoice(list(p.values))
    if isinstance(p, Integer):
        scalar = ng.p.Log(lower=p.low, upper=p.high) if p.log else ng.p.Scalar(lower=p.low, upper=p.high)
        return scalar.set_integer_casting()
    if isinstance(p, Float):
        return ng.p.Log(lower=p.low, upper=p.high) if p.log else ng.p.Scalar(lower=p.low, upper=p.high)
    raise TypeError(f"parameter {p.name!r}: unsupported kind {type(p).__name__}")  # pragma: no cover


def to_parametrization(space: SearchSpace, seed: int) -> ng.p.Dict:
    """An ``ng.p.Dict`` over all parameters, its random state seeded (nevergrad draws from it)."""
    parametrization = ng.p.Dict(**{p.name: _param(p) for p in space.params})
    parametrization.random_state = np.random.RandomState(seed)
    return parametrization


def to_config(space: SearchSpace, value: Mapping[str, Any]) -> dict[str, Any]:
    """The deploybench config of a candidate value: active parameters only, the space's own types."""
    config: dict[str, Any] = {}
    for p in space.params:
        if p.condition is not None and not p.condition.holds(config):
            continue
        v = value[p.name]
        if isinstance(p, Integer):
            v = int(min(p.high, max(p.low, int(round(float(v))))))
        elif isinstance(p, Float):
            v = float(min(p.high, max(p.low, float(v))))
        elif isinstance(v, np.generic):
            v = v.item()
        config[p.name] = v
    return config


def to_value(parametrization: ng.p.Dict, config: Mapping[str, Any]) -> dict[str, Any]:
    """A full candidate value for a config (inactive parameters keep the parametrization's value)."""
    value = dict(parametrization.value)
    value.update(config)
    return value
