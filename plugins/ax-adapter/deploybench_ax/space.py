"""Translate a deploybench :class:`~deploybench.SearchSpace` into the parameter configs of Ax's ``Client``.

- ``Categorical`` → ``ChoiceParameterConfig(is_ordered=False)`` over string labels (Ax wants one value type
  per parameter; deploybench choices may be any JSON value, so they travel as labels and come back as the
  space's own values and types);
- ``Ordinal`` → ``ChoiceParameterConfig(is_ordered=True)`` over its values (``int`` or ``float`` when they
  are all numbers, labels otherwise). Ax models an ordered choice by its index; the ordinal's ``log`` flag
  has no counterpart in ``ChoiceParameterConfig`` and is dropped (the deployment ordinals are geometric
  grids already, so their index is their log);
- ``Integer`` / ``Float`` → ``RangeParameterConfig`` with ``scaling="log"`` when the parameter is log-scaled;
- ``Condition(parent, values)``: the union of all parameters goes to Ax and the inactive ones are dropped
  from the config Ax suggests. Ax 1.3's ``ChoiceParameterConfig.dependent_parameters`` builds a
  hierarchical space, but only a tree in which each child hangs under exactly one value of its parent (a
  child reachable from two values is rejected as a cycle), so a deploybench condition with several values
  (``threads`` under both backends, ``x3`` under two modes) cannot be expressed; the union works for every
  space, and Ax's hierarchical spaces are flattened for modelling anyway.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from deploybench import Categorical, Float, Integer, Ordinal, SearchSpace

from ._quiet import quiet_import

with quiet_import():
    from ax.api import ChoiceParameterConfig, RangeParameterConfig

__all__ = ["SpaceTranslation"]

ParameterConfig = ChoiceParameterConfig | RangeParameterConfig


def _labels(values: tuple) -> list[str]:
    """String labels for values: ``str(v)`` when those are unique, else the index and repr."""
    labels = [str(v) for v in values]
    if len(set(labels)) == len(labels):
        return labels
    return [f"{i}:{v!r}" for i, v in enumerate(values)]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _key(v: Any) -> tuple:
    """A dict key that keeps ``True``, ``1`` and ``"1"`` apart (they hash alike or compare equal) but
    lets ``1`` and ``1.0`` match, as deploybench's own validation does."""
    if isinstance(v, bool):
        return ("bool", v)
    if _is_number(v):
        return ("number", float(v))
    return (type(v).__name__, v)


class SpaceTranslation:
    """The Ax parameter configs of ``space`` and the value maps in both directions."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._to_ax: dict[str, dict[Any, Any]] = {}
        self._from_ax: dict[str, dict[Any, Any]] = {}
        self.parameters: list[ParameterConfig] = [self._parameter(p) for p in space.params]

    def _parameter(self, p: Any) -> ParameterConfig:
        if isinstance(p, Categorical):
            return self._choice(p.name, p.choices, _labels(p.choices), "str", ordered=False)
        if isinstance(p, Ordinal):
            values = p.values
            if all(_is_int(v) for v in values):
                return self._choice(p.name, values, [int(v) for v in values], "int", ordered=True)
            if all(_is_number(v) for v in values):
                return self._choice(p.name, values, [float(v) for v in values], "float", ordered=True)
            return self._choice(p.name, values, _labels(values), "str", ordered=True)
        if isinstance(p, Integer):
            return RangeParameterConfig(name=p.name, bounds=(int(p.low), int(p.high)), parameter_type="int",
                                        scaling="log" if p.log else "linear")
        if isinstance(p, Float):
            return RangeParameterConfig(name=p.name, bounds=(float(p.low), float(p.high)), parameter_type="float",
                                        scaling="log" if p.log else "linear")
        raise TypeError(f"parameter {p.name!r}: unsupported kind {type(p).__name__}; "  # pragma: no cover
                        "allowed: Categorical, Ordinal, Integer, Float")

    def _choice(self, name: str, values: tuple, ax_values: list, parameter_type: str, *, ordered: bool
                ) -> ChoiceParameterConfig:
        self._to_ax[name] = {_key(v): a for v, a in zip(values, ax_values)}
        self._from_ax[name] = {_key(a): v for v, a in zip(values, ax_values)}
        # a single value becomes an Ax FixedParameter (Ax does that itself); is_ordered only for several
        return ChoiceParameterConfig(name=name, values=list(ax_values), parameter_type=parameter_type,
                                     is_ordered=ordered if len(values) > 1 else None)

    # -- values ------------------------------------------------------------------------------------
    def to_config(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The deploybench config of an Ax parameterization: active parameters only, in declared order,
        with the space's own values and types (numbers clipped to their bounds)."""
        config: dict[str, Any] = {}
        for p in self.space.params:
            if p.condition is not None and not p.condition.holds(config):
                continue
            value = parameters[p.name]
            if p.name in self._from_ax:
                config[p.name] = self._from_ax[p.name][_key(value)]
            elif isinstance(p, Integer):
                config[p.name] = int(min(p.high, max(p.low, int(round(float(value))))))
            else:
                config[p.name] = float(min(p.high, max(p.low, float(value))))
        return config

    def to_parameters(self, config: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """A full Ax parameterization (every parameter of the union) for a deploybench config: its
        active values, and a value drawn from ``rng`` for each inactive parameter (Ax needs them all)."""
        parameters: dict[str, Any] = {}
        for p in self.space.params:
            value = config[p.name] if p.name in config else p.sample(rng)
            if p.name in self._to_ax:
                parameters[p.name] = self._to_ax[p.name][_key(value)]
            elif isinstance(p, Integer):
                parameters[p.name] = int(value)
            else:
                parameters[p.name] = float(value)
        return parameters
