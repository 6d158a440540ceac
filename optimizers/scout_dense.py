"""The execution-parameter ("dense") side of ``scout``: coordinate search with momentum.

Under a fixed structure (the incumbent's), one dense coordinate moves at a time on the shared [0, 1]
encoding (log scale honoured, integers and ordinals rounded to their grid). A move that improves the
incumbent is kept and adds to that coordinate's velocity (momentum: the next move along it goes
further); a move that does not is undone, the opposite direction is tried next, and after both
directions failed the step halves. A new incumbent structure restarts the search.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from deploybench import Float, SearchSpace

__all__ = ["CoordinateSearch"]


class CoordinateSearch:
    def __init__(self, space: SearchSpace, dense: Sequence[str], *, momentum: float, step: float,
                 min_step: float, rng: np.random.Generator) -> None:
        self.space, self.dense = space, list(dense)
        self.momentum, self.initial_step, self.min_step, self.rng = float(momentum), float(step), float(min_step), rng
        self.base: dict[str, Any] | None = None
        self._structure_key: str | None = None
        self._velocity: dict[str, float] = {}
        self._step: dict[str, float] = {}
        self._direction: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._cursor = 0
        self._pending: tuple[str, float] | None = None  # (coordinate, delta) of the move in flight

    def _structure(self, config: Mapping[str, Any]) -> str:
        return repr(sorted((k, v) for k, v in config.items() if k not in self.dense))

    def active(self, config: Mapping[str, Any]) -> list[str]:
        return [n for n in self.dense if n in config]

    def reset(self, incumbent: Mapping[str, Any]) -> None:
        """Take ``incumbent`` as the base point; a new structure clears velocities and steps."""
        key = self._structure(incumbent)
        if key != self._structure_key:
            self._velocity, self._failures = {}, {}
            self._step = {n: self.initial_step for n in self.dense}
            self._direction = {n: (1.0 if self.rng.random() < 0.5 else -1.0) for n in self.dense}
            self._structure_key = key
        self.base = dict(incumbent)

    @property
    def exhausted(self) -> bool:
        """Every active coordinate's step fell below ``min_step``: the incumbent is locally optimal."""
        if self.base is None:
            return True
        return all(self._step.get(n, self.initial_step) < self.min_step for n in self.active(self.base))

    def propose(self) -> dict[str, Any] | None:
        """The next move from the base point, or None when there is nothing to move."""
        if self.base is None:
            return None
        names = [n for n in self.active(self.base) if self._step.get(n, self.initial_step) >= self.min_step]
        if not names:
            return None
        name = names[self._cursor % len(names)]
        self._cursor += 1
        p = self.space[name]
        u0 = p.to_unit(self.base[name])
        step = self._step[name]
        delta = self._direction[name] * step + self.momentum * self._velocity.get(name, 0.0)
        u = float(np.clip(u0 + delta, 0.0, 1.0))
        value = p.from_unit(u)
        if value == self.base[name] and not isinstance(p, Float):  # rounding undid the move: one grid step
            value = self._grid_neighbour(name, self._direction[name])
        if value == self.base[name]:  # at a bound: turn round
            self._direction[name] *= -1.0
            value = p.from_unit(float(np.clip(u0 + self._direction[name] * step, 0.0, 1.0)))
            if value == self.base[name] and not isinstance(p, Float):
                value = self._grid_neighbour(name, self._direction[name])
        self._pending = (name, p.to_unit(value) - u0)
        candidate = dict(self.base)
        candidate[name] = value
        return self.space.complete(candidate, self.rng)

    def _grid_neighbour(self, name: str, direction: float) -> Any:
        p = self.space[name]
        current = self.base[name]
        values = list(getattr(p, "values", ())) or list(range(p.low, p.high + 1))
        i = values.index(current) + (1 if direction > 0 else -1)
        return values[i] if 0 <= i < len(values) else current

    def result(self, improved: bool) -> None:
        """Report whether the last proposal beat the base point (the caller moves the base)."""
        if self._pending is None:
            return
        name, delta = self._pending
        self._pending = None
        if improved:
            self._velocity[name] = self.momentum * self._velocity.get(name, 0.0) + delta
            self._failures[name] = 0
        else:
            self._velocity[name] = 0.0
            self._direction[name] *= -1.0
            self._failures[name] = self._failures.get(name, 0) + 1
            if self._failures[name] >= 2:
                self._step[name] *= 0.5
                self._failures[name] = 0
