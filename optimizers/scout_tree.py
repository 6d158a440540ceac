"""The structural ("sparse") side of ``scout``: the space split, MCTS trees over orderings of the
structural features, and the successive-halving tournament that picks an ordering.

A tree fixes one structural feature per level, in the tree's ordering; a node's children are the
values the feature may take under the values fixed above it (a feature whose condition does not
hold has the single child "inactive"), so the space's declarative conditions shape the tree. A leaf
is a full structural assignment.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from deploybench import Categorical, Integer, Ordinal, SearchSpace

__all__ = ["split_space", "orderings", "StructureTree", "Tournament", "INACTIVE"]

#: the child of a level whose feature is inactive under the values above it
INACTIVE = "<inactive>"
#: a numeric condition parent with at most this many values is enumerated as a structural feature
MAX_STRUCTURAL_VALUES = 32


def _values(p: Any) -> list[Any] | None:
    if isinstance(p, Categorical):
        return list(p.choices)
    if isinstance(p, Ordinal):
        return list(p.values)
    if isinstance(p, Integer) and p.high - p.low + 1 <= MAX_STRUCTURAL_VALUES:
        return list(range(p.low, p.high + 1))
    return None


def split_space(space: SearchSpace) -> tuple[list[str], list[str]]:
    """(sparse, dense) parameter names: categoricals and condition parents with a finite, small domain
    are structural; every other numeric parameter is an execution ("dense") parameter."""
    parents = {p.condition.parent for p in space if p.condition is not None}
    sparse, dense = [], []
    for p in space:
        structural = isinstance(p, Categorical) or (p.name in parents and _values(p) is not None)
        (sparse if structural else dense).append(p.name)
    return sparse, dense


def orderings(space: SearchSpace, sparse: Sequence[str], k: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    """Up to ``k`` orderings of the sparse features that decide every condition parent before its
    children; the space's declared order first, the others drawn without repetition."""
    parent_of = {p.name: p.condition.parent for p in space if p.condition is not None}

    def respects(order: Sequence[str]) -> bool:
        seen: set[str] = set()
        for name in order:
            parent = parent_of.get(name)
            if parent is not None and parent in sparse and parent not in seen:
                return False
            seen.add(name)
        return True

    declared = tuple(sparse)
    if len(sparse) <= 7:
        pool = [o for o in itertools.permutations(sparse) if o != declared and respects(o)]
        picks = rng.permutation(len(pool))[: max(0, k - 1)]
        return [declared] + [pool[int(i)] for i in picks]
    out = [declared]
    for _ in range(50 * k):
        if len(out) >= k:
            break
        o = tuple(sparse[int(i)] for i in rng.permutation(len(sparse)))
        if respects(o) and o not in out:
            out.append(o)
    return out


@dataclass
class _Node:
    visits: int = 0
    total: float = 0.0
    children: dict[Any, "_Node"] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return self.total / self.visits if self.visits else 0.0


class StructureTree:
    """MCTS (UCT) over one ordering of the structural features.

    ``select`` walks from the root, taking an untried child when a node has one (in a seeded random
    order) and the child with the highest upper confidence bound otherwise, and returns the leaf's
    structural assignment. ``update`` adds a reward along the path of any assignment, so every tree
    learns from every evaluation whichever tree proposed it.
    """

    def __init__(self, space: SearchSpace, order: Sequence[str], c: float, rng: np.random.Generator) -> None:
        self.space, self.order, self.c, self.rng = space, tuple(order), float(c), rng
        self.root = _Node()
        self.own_rewards: list[float] = []  # rewards of the evaluations this tree proposed

    def _choices(self, name: str, partial: Mapping[str, Any]) -> list[Any]:
        p = self.space[name]
        if p.condition is not None and not p.condition.holds(partial):
            return [INACTIVE]
        values = _values(p)
        assert values is not None
        return values

    def select(self) -> dict[str, Any]:
        node, partial = self.root, {}
        for name in self.order:
            choices = self._choices(name, partial)
            untried = [v for v in choices if v not in node.children]
            if untried:
                value = untried[int(self.rng.integers(len(untried)))]
            else:
                log_n = math.log(max(1, node.visits))
                value = max(choices, key=lambda v: (node.children[v].mean
                                                    + self.c * math.sqrt(log_n / max(1, node.children[v].visits))))
            if value != INACTIVE:
                partial[name] = value
            node = node.children.setdefault(value, _Node())
        return partial

    def update(self, config: Mapping[str, Any], reward: float) -> None:
        node = self.root
        node.visits += 1
        node.total += reward
        for name in self.order:
            value = config.get(name, INACTIVE)
            node = node.children.setdefault(value, _Node())
            node.visits += 1
            node.total += reward


class Tournament:
    """Successive halving over orderings: entrants propose in turn; every ``halve_every`` proposals per
    entrant the half whose own proposals earned the lower mean reward is dropped, until one is left."""

    def __init__(self, trees: list[StructureTree], halve_every: int) -> None:
        self.trees = list(trees)
        self.alive = list(range(len(trees)))
        self.halve_every = max(1, int(halve_every))
        self._turn = 0
        self._since = 0

    def next_tree(self) -> tuple[int, StructureTree]:
        i = self.alive[self._turn % len(self.alive)]
        self._turn += 1
        self._since += 1
        if len(self.alive) > 1 and self._since >= self.halve_every * len(self.alive):
            self._halve()
        return i, self.trees[i]

    def _halve(self) -> None:
        def score(i: int) -> tuple[float, int]:
            own = self.trees[i].own_rewards
            return (sum(own) / len(own) if own else 0.0, -i)

        ranked = sorted(self.alive, key=score, reverse=True)
        self.alive = sorted(ranked[: max(1, len(ranked) // 2)])
        self._turn = 0
        self._since = 0

    @property
    def winner(self) -> tuple[str, ...] | None:
        return self.trees[self.alive[0]].order if len(self.alive) == 1 else None

    def update(self, config: Mapping[str, Any], reward: float) -> None:
        for tree in self.trees:
            tree.update(config, reward)
