"""Candidate sets as NumPy matrices, so model-based optimizers score thousands of configurations at once.

A *raw* matrix holds one column per parameter, for every parameter (active or not): a categorical's
choice index, a numeric's or ordinal's position in [0, 1] (log scale honoured, snapped to the
integer or ordinal grid). Which parameters are active follows from the conditions, row by row.
:meth:`MixedCodec.encode` turns a raw matrix into exactly the space's shared encoding
(``SearchSpace.encode``: one-hot categoricals, unit numerics, inactive flags), so every model sees
the same inputs whether a configuration came from a dict or from a matrix; :meth:`MixedCodec.decode`
turns one row back into a config dict. Sampling and local moves work on whole matrices, not on
one dict at a time (a Python loop per candidate costs tens of microseconds; a column operation
costs that for a thousand candidates).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from deploybench import Categorical, Float, Integer, Ordinal, SearchSpace

__all__ = ["MixedCodec"]


class MixedCodec:
    """Vectorised sampling, local moves, encoding and dedup keys over a :class:`SearchSpace`."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.params = list(space)
        self.index = {p.name: i for i, p in enumerate(self.params)}
        self._ordinal_units = {p.name: np.array([p.to_unit(v) for v in p.values]) for p in self.params
                               if isinstance(p, Ordinal)}

    # -- grid snapping -----------------------------------------------------------------------------
    def _snap_integer(self, p: Integer, u: np.ndarray) -> np.ndarray:
        u = np.clip(u, 0.0, 1.0)
        if p.log:
            lo, hi = math.log(p.low), math.log(p.high)
            values = np.clip(np.round(np.exp(lo + u * (hi - lo))), p.low, p.high)
            return (np.log(values) - lo) / (hi - lo)
        values = np.clip(np.round(p.low + u * (p.high - p.low)), p.low, p.high)
        return (values - p.low) / (p.high - p.low)

    def _snap_ordinal(self, p: Ordinal, u: np.ndarray) -> np.ndarray:
        units = self._ordinal_units[p.name]
        return units[np.argmin(np.abs(u[:, None] - units[None, :]), axis=1)]

    def snap(self, raw: np.ndarray) -> np.ndarray:
        """Integers and ordinals moved onto their grid, categorical indices made whole, in place."""
        for j, p in enumerate(self.params):
            if isinstance(p, Categorical):
                raw[:, j] = np.clip(np.round(raw[:, j]), 0, len(p.choices) - 1)
            elif isinstance(p, Integer):
                raw[:, j] = self._snap_integer(p, raw[:, j])
            elif isinstance(p, Ordinal):
                raw[:, j] = self._snap_ordinal(p, raw[:, j])
            else:
                raw[:, j] = np.clip(raw[:, j], 0.0, 1.0)
        return raw

    # -- activity ----------------------------------------------------------------------------------
    def _values(self, p: Any, column: np.ndarray) -> np.ndarray:
        """The parameter's actual values for a raw column (for evaluating conditions)."""
        if isinstance(p, Categorical):
            return np.asarray(p.choices, dtype=object)[column.astype(int)]
        if isinstance(p, Ordinal):
            units = self._ordinal_units[p.name]
            return np.asarray(p.values, dtype=object)[np.argmin(np.abs(column[:, None] - units[None, :]), axis=1)]
        return np.array([p.from_unit(u) for u in column], dtype=object)

    def active(self, raw: np.ndarray) -> np.ndarray:
        """Boolean matrix: which parameters each row activates (conditions resolved in declared order)."""
        mask = np.ones(raw.shape, dtype=bool)
        for j, p in enumerate(self.params):
            if p.condition is None:
                continue
            parent = self.index[p.condition.parent]
            parent_param = self.params[parent]
            if isinstance(parent_param, Categorical):
                allowed = [i for i, c in enumerate(parent_param.choices) if c in p.condition.values]
                holds = np.isin(raw[:, parent].astype(int), allowed)
            else:
                values = self._values(parent_param, raw[:, parent])
                holds = np.array([v in p.condition.values for v in values], dtype=bool)
            mask[:, j] = mask[:, parent] & holds
        return mask

    # -- sampling and moves ------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows drawn as ``SearchSpace.sample`` draws (uniform choices, uniform or log-uniform numerics)."""
        raw = np.empty((n, len(self.params)))
        for j, p in enumerate(self.params):
            if isinstance(p, Categorical):
                raw[:, j] = rng.integers(len(p.choices), size=n)
            elif isinstance(p, Ordinal):
                raw[:, j] = self._ordinal_units[p.name][rng.integers(len(p.values), size=n)]
            elif isinstance(p, Integer):
                if p.log:
                    lo, hi = math.log(p.low - 0.4999), math.log(p.high + 0.4999)
                    values = np.clip(np.round(np.exp(rng.uniform(lo, hi, size=n))), p.low, p.high)
                    raw[:, j] = (np.log(values) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
                else:
                    values = rng.integers(p.low, p.high + 1, size=n)
                    raw[:, j] = (values - p.low) / (p.high - p.low)
            else:
                raw[:, j] = rng.uniform(size=n)
        return raw

    def from_unit_design(self, unit: np.ndarray) -> np.ndarray:
        """A design in [0, 1)^P (e.g. a Latin hypercube) mapped onto the raw columns: categoricals
        and integers are stratified over their values, floats keep their position."""
        raw = np.array(unit, dtype=float)
        for j, p in enumerate(self.params):
            if isinstance(p, Categorical):
                raw[:, j] = np.minimum(np.floor(unit[:, j] * len(p.choices)), len(p.choices) - 1)
            elif isinstance(p, Ordinal):
                k = len(p.values)
                raw[:, j] = self._ordinal_units[p.name][np.minimum(np.floor(unit[:, j] * k), k - 1).astype(int)]
            elif isinstance(p, Integer) and not p.log:
                k = p.high - p.low + 1
                raw[:, j] = np.minimum(np.floor(unit[:, j] * k), k - 1) / (p.high - p.low)
        return self.snap(raw)

    def neighbours(self, centres: np.ndarray, n: int, scales: Sequence[float], rng: np.random.Generator,
                   p_second: float = 0.5) -> np.ndarray:
        """``n`` local moves spread over the ``centres``: each changes one active parameter (and a second
        one with probability ``p_second``): a categorical to another choice, a numeric or ordinal by a
        Gaussian step of one of ``scales`` in unit space (reflected at the bounds, at least one grid
        step for integers and ordinals)."""
        rows = centres[np.arange(n) % len(centres)].copy()
        scale = np.asarray(scales, dtype=float)[rng.integers(len(scales), size=n)]
        first = np.full(n, -1)
        for move in range(2):
            act = self.active(rows)
            if move:
                act[np.arange(n), first] = False  # the second move changes another parameter
            pick = np.where(act, rng.random(rows.shape), -1.0).argmax(axis=1)
            chosen = np.ones(n, dtype=bool) if move == 0 else (rng.random(n) < p_second) & act.any(axis=1)
            first = pick
            for j, p in enumerate(self.params):
                idx = np.flatnonzero(chosen & (pick == j))
                if idx.size == 0:
                    continue
                if isinstance(p, Categorical):
                    k = len(p.choices)
                    if k > 1:
                        rows[idx, j] = (rows[idx, j] + rng.integers(1, k, size=idx.size)) % k
                    continue
                old = rows[idx, j].copy()
                u = np.abs(old + rng.normal(0.0, 1.0, size=idx.size) * scale[idx]) % 2.0
                u = np.where(u > 1.0, 2.0 - u, u)
                if isinstance(p, Float):
                    rows[idx, j] = u
                    continue
                snapped = self._snap_integer(p, u) if isinstance(p, Integer) else self._snap_ordinal(p, u)
                grid = (np.unique(self._snap_integer(p, np.linspace(0, 1, p.high - p.low + 1)))
                        if isinstance(p, Integer) else self._ordinal_units[p.name])
                stuck = snapped == old
                if stuck.any() and len(grid) > 1:  # at least one grid step, towards the move, away from a bound
                    pos = np.searchsorted(grid, old[stuck])
                    up = (u[stuck] >= old[stuck]) | (pos == 0)
                    up &= pos < len(grid) - 1
                    snapped[stuck] = grid[np.clip(np.where(up, pos + 1, pos - 1), 0, len(grid) - 1)]
                rows[idx, j] = snapped
        return rows

    def box(self, centre: np.ndarray, n: int, length: float, rng: np.random.Generator,
            p_categorical: float = 0.2) -> np.ndarray:
        """``n`` rows drawn uniformly from a trust region around one raw ``centre`` row: every numeric
        or ordinal column within ``length / 2`` of the centre in unit space, and at least one grid step
        for integers and ordinals so a small region still moves them (clipped to [0, 1], snapped to its
        grid); every categorical kept or, with probability ``p_categorical``, changed to another choice
        (a region in Hamming distance, as mixed-space trust regions do)."""
        rows = np.repeat(np.asarray(centre, dtype=float)[None, :], n, axis=0)
        for j, p in enumerate(self.params):
            if isinstance(p, Categorical):
                k = len(p.choices)
                if k > 1:
                    flip = rng.random(n) < p_categorical
                    rows[flip, j] = (rows[flip, j] + rng.integers(1, k, size=int(flip.sum()))) % k
                continue
            half = max(length / 2, self.grid_step(p))
            rows[:, j] = np.clip(rows[:, j] + rng.uniform(-half, half, size=n), 0.0, 1.0)
        return self.snap(rows)

    def grid_step(self, p: Any) -> float:
        """The largest gap between neighbouring grid points of an integer or ordinal in unit space
        (0 for a float)."""
        if isinstance(p, Ordinal):
            units = np.sort(self._ordinal_units[p.name])
        elif isinstance(p, Integer) and p.high > p.low:
            units = np.unique(self._snap_integer(p, np.linspace(0, 1, min(p.high - p.low + 1, 4096))))
        else:
            return 0.0
        return float(np.diff(units).max()) if len(units) > 1 else 0.0

    # -- conversions -----------------------------------------------------------------------------
    def from_configs(self, configs: Sequence[Mapping[str, Any]], rng: np.random.Generator | None = None) -> np.ndarray:
        """Raw rows of measured configs; inactive parameters get a value (random, or the middle) so
        that a move which activates them has something to start from."""
        raw = np.full((len(configs), len(self.params)), 0.5)
        for j, p in enumerate(self.params):
            if isinstance(p, Categorical):
                raw[:, j] = 0.0
        filler = self.sample(len(configs), rng) if rng is not None and len(configs) else raw.copy()
        for i, config in enumerate(configs):
            for j, p in enumerate(self.params):
                if p.name not in config:
                    raw[i, j] = filler[i, j]
                elif isinstance(p, Categorical):
                    raw[i, j] = p.choices.index(config[p.name])
                else:
                    raw[i, j] = p.to_unit(config[p.name])
        return raw

    def decode(self, row: np.ndarray) -> dict[str, Any]:
        """The config dict of one raw row (active parameters only, exact domain values)."""
        config: dict[str, Any] = {}
        for j, p in enumerate(self.params):
            if p.condition is not None and not p.condition.holds(config):
                continue
            if isinstance(p, Categorical):
                config[p.name] = p.choices[int(round(row[j]))]
            else:
                config[p.name] = p.from_unit(float(row[j]))
        return config

    def encode(self, raw: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """The space's shared encoding of every row (equal to ``space.encode_many`` of the decoded configs)."""
        active = self.active(raw) if active is None else active
        blocks = []
        for j, p in enumerate(self.params):
            on = active[:, j]
            if isinstance(p, Categorical):
                block = (raw[:, j].astype(int)[:, None] == np.arange(len(p.choices))[None, :]) & on[:, None]
                blocks.append(block.astype(float))
            else:
                blocks.append(np.where(on, raw[:, j], 0.0)[:, None])
            if p.condition is not None:
                blocks.append((~on).astype(float)[:, None])
        return np.hstack(blocks) if blocks else np.zeros((len(raw), 0))

    def keys(self, raw: np.ndarray, active: np.ndarray | None = None) -> list[bytes]:
        """Hashable keys for dedup between candidates (inactive columns ignored, values rounded)."""
        active = self.active(raw) if active is None else active
        canon = np.round(np.where(active, raw, -1.0), 12)
        return [row.tobytes() for row in canon]
