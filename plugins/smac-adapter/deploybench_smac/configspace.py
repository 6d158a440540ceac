"""Translate a deploybench :class:`~deploybench.SearchSpace` to a ConfigSpace ``ConfigurationSpace``.

Categorical and ordinal values travel through ConfigSpace as string labels (ConfigSpace compares
and serialises its values; deploybench choices may be any JSON value), and :class:`SpaceTranslation`
maps them back, so the config handed to the harness holds the space's own values and types.
"""

from __future__ import annotations

from typing import Any, Mapping

import ConfigSpace as CS
import numpy as np

from deploybench import Categorical, Float, Integer, Ordinal, SearchSpace

__all__ = ["SpaceTranslation"]


def _labels(values: tuple) -> list[str]:
    """String labels for values: ``str(v)`` when those are unique, else the index and repr."""
    labels = [str(v) for v in values]
    if len(set(labels)) == len(labels):
        return labels
    return [f"{i}:{v!r}" for i, v in enumerate(values)]


class SpaceTranslation:
    """A ConfigurationSpace equivalent to ``space`` plus the value maps in both directions.

    - ``Categorical`` → ``CategoricalHyperparameter`` (labels);
    - ``Ordinal`` → ``OrdinalHyperparameter`` (labels, order kept; a log flag has no ConfigSpace
      equivalent and is dropped: SMAC's random forest sees the ordinal's index);
    - ``Integer`` / ``Float`` → ``UniformInteger`` / ``UniformFloat`` (``log`` kept);
    - ``Condition(parent, values)`` → ``EqualsCondition`` (one value) or ``InCondition``.
    """

    def __init__(self, space: SearchSpace, seed: int) -> None:
        self.space = space
        self._to_label: dict[str, dict[Any, str]] = {}
        self._from_label: dict[str, dict[str, Any]] = {}
        cs = CS.ConfigurationSpace(seed=seed)
        hps: dict[str, Any] = {}
        for p in space.params:
            if isinstance(p, (Categorical, Ordinal)):
                values = p.choices if isinstance(p, Categorical) else p.values
                labels = _labels(values)
                self._to_label[p.name] = dict(zip(values, labels))
                self._from_label[p.name] = dict(zip(labels, values))
                if isinstance(p, Categorical):
                    hp = CS.CategoricalHyperparameter(p.name, labels)
                else:
                    hp = CS.OrdinalHyperparameter(p.name, labels)
            elif isinstance(p, Integer):
                hp = CS.UniformIntegerHyperparameter(p.name, lower=p.low, upper=p.high, log=p.log)
            elif isinstance(p, Float):
                hp = CS.UniformFloatHyperparameter(p.name, lower=p.low, upper=p.high, log=p.log)
            else:  # pragma: no cover - the space module defines exactly four kinds
                raise TypeError(f"parameter {p.name!r}: unsupported kind {type(p).__name__}")
            hps[p.name] = hp
            cs.add(hp)
        for p in space.params:
            if p.condition is None:
                continue
            parent = hps[p.condition.parent]
            values = [self._label(p.condition.parent, v) for v in p.condition.values]
            if len(values) == 1:
                cs.add(CS.EqualsCondition(hps[p.name], parent, values[0]))
            else:
                cs.add(CS.InCondition(hps[p.name], parent, values))
        self.configspace = cs

    def _label(self, name: str, value: Any) -> Any:
        if name in self._to_label:
            return self._to_label[name][value]
        return value

    def to_config(self, configuration: CS.Configuration) -> dict[str, Any]:
        """The deploybench config (active parameters only, the space's own types)."""
        values = dict(configuration)
        config: dict[str, Any] = {}
        for p in self.space.params:
            if p.name not in values or values[p.name] is None:
                continue
            v = values[p.name]
            if p.name in self._from_label:
                config[p.name] = self._from_label[p.name][str(v)]
            elif isinstance(p, Integer):
                config[p.name] = int(min(p.high, max(p.low, int(round(float(v))))))
            else:
                config[p.name] = float(min(p.high, max(p.low, float(np.float64(v)))))
        return config

    def to_configuration(self, config: Mapping[str, Any]) -> CS.Configuration:
        """The ConfigSpace configuration of a deploybench config (to tell SMAC a config it did not ask)."""
        values = {name: self._label(name, value) for name, value in config.items()}
        return CS.Configuration(self.configspace, values=values)
