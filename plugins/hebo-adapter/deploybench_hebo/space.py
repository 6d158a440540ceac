"""Translate a deploybench :class:`~deploybench.SearchSpace` to a HEBO ``DesignSpace`` and back.

HEBO's design space is flat (no conditions), so the adapter gives HEBO the *union* of every
parameter and drops the inactive ones when it turns a HEBO row back into a config:

============================ =========================================================================
deploybench                  HEBO parameter
============================ =========================================================================
``Categorical``              ``cat`` over string labels (``str(value)``, or ``"i:repr"`` if those collide)
``Ordinal``                  ``int`` over the value *index* ``0 … n-1`` (order kept; a ``log`` ordinal
                             such as batch sizes 1…32 is already evenly spaced in its index)
``Integer``                  ``int``; with ``log=True`` ``pow_int`` (HEBO searches its log10)
``Float``                    ``num``; with ``log=True`` ``pow`` (HEBO searches its log10)
a parameter with one value   not given to HEBO (nothing to search); always that value
``Condition(parent, values)`` not given to HEBO: every row carries every parameter, the inactive ones
                             are dropped from the config (HEBO's GP sees them as free dimensions)
============================ =========================================================================

A row the adapter builds itself (for a config HEBO did not propose) fills an inactive parameter
with its lower bound (first label, index 0, ``low``), so such rows are deterministic.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from deploybench import Categorical, Float, Integer, Ordinal, Param, SearchSpace

__all__ = ["DesignTranslation"]


def _labels(values: tuple) -> list[str]:
    """Unique string labels for categorical choices (HEBO keeps them in a pandas column)."""
    labels = [str(v) for v in values]
    if len(set(labels)) == len(labels):
        return labels
    return [f"{i}:{v!r}" for i, v in enumerate(values)]


def _single_value(p: Param) -> tuple[bool, Any]:
    """Whether ``p`` has exactly one possible value, and that value."""
    if isinstance(p, Categorical) and len(p.choices) == 1:
        return True, p.choices[0]
    if isinstance(p, Ordinal) and len(p.values) == 1:
        return True, p.values[0]
    return False, None


class DesignTranslation:
    """The HEBO design-space spec for ``space`` (``spec``, a list of HEBO parameter dicts) and the
    maps between HEBO rows (dicts over ``names``) and deploybench configs."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.spec: list[dict[str, Any]] = []
        self._fixed: dict[str, Any] = {}
        self._to_label: dict[str, dict[Any, str]] = {}
        self._from_label: dict[str, dict[str, Any]] = {}
        for p in space.params:
            single, value = _single_value(p)
            if single:
                self._fixed[p.name] = value
                continue
            if isinstance(p, Categorical):
                labels = _labels(p.choices)
                self._to_label[p.name] = dict(zip(p.choices, labels))
                self._from_label[p.name] = dict(zip(labels, p.choices))
                self.spec.append({"name": p.name, "type": "cat", "categories": labels})
            elif isinstance(p, Ordinal):
                self.spec.append({"name": p.name, "type": "int", "lb": 0, "ub": len(p.values) - 1})
            elif isinstance(p, Integer):
                self.spec.append({"name": p.name, "type": "pow_int" if p.log else "int", "lb": p.low, "ub": p.high})
            elif isinstance(p, Float):
                self.spec.append({"name": p.name, "type": "pow" if p.log else "num", "lb": p.low, "ub": p.high})
            else:
                raise TypeError(f"parameter {p.name!r}: unsupported kind {type(p).__name__}; "
                                "allowed: Categorical, Ordinal, Integer, Float")

    @property
    def names(self) -> list[str]:
        """The parameters HEBO searches, in declared order."""
        return [item["name"] for item in self.spec]

    # -- HEBO row -> deploybench config ---------------------------------------------------------------
    def _value(self, p: Param, raw: Any) -> Any:
        if p.name in self._from_label:
            return self._from_label[p.name][str(raw)]
        if isinstance(p, Ordinal):
            index = int(round(float(raw)))
            return p.values[min(len(p.values) - 1, max(0, index))]
        if isinstance(p, Integer):
            return int(min(p.high, max(p.low, int(round(float(raw))))))
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(f"HEBO proposed {raw!r} for {p.name!r}")
        return float(min(p.high, max(p.low, value)))

    def to_config(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The config of a HEBO row: active parameters only, the space's own values and types."""
        config: dict[str, Any] = {}
        for p in self.space.params:
            if p.condition is not None and not p.condition.holds(config):
                continue
            config[p.name] = self._fixed[p.name] if p.name in self._fixed else self._value(p, row[p.name])
        return config

    # -- deploybench config -> HEBO row ---------------------------------------------------------------
    def _encode(self, p: Param, value: Any) -> Any:
        if p.name in self._to_label:
            return self._to_label[p.name][value]
        if isinstance(p, Ordinal):
            return p.index(value)
        if isinstance(p, Integer):
            return int(value)
        return float(value)

    def _filler(self, p: Param) -> Any:
        if isinstance(p, Categorical):
            return self._to_label[p.name][p.choices[0]]
        if isinstance(p, Ordinal):
            return 0
        return p.low

    def to_row(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A HEBO row for ``config`` (inactive parameters get their filler, see the module docstring)."""
        row: dict[str, Any] = {}
        for p in self.space.params:
            if p.name in self._fixed:
                continue
            row[p.name] = self._encode(p, config[p.name]) if p.name in config else self._filler(p)
        return row
