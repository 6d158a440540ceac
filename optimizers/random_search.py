"""Uniform random search: the reference point of the normalised score (random = 1)."""

from __future__ import annotations

from typing import Any, Mapping

from deploybench import Optimizer, OptimizerContext, Outcome


class RandomSearch(Optimizer):
    """Samples the space uniformly (log-uniformly on log-scaled numerics) with a seeded generator.

    What it knows and uses: nothing but the space (it ignores every outcome).

    Parameters
    ----------
    avoid_duplicates:
        Resample (up to ``max_retries`` times) a configuration already asked. On finite spaces
        this makes random search sample without replacement, as a fair baseline should.
    max_retries:
        How many redraws to try before accepting a duplicate.
    """

    name = "random"

    def __init__(self, context: OptimizerContext, *,
                 avoid_duplicates: bool = True, max_retries: int = 100):
        super().__init__(context)
        self.avoid_duplicates = avoid_duplicates
        self.max_retries = max_retries
        self._rng = self.make_rng()
        self._asked: set[str] = set()

    def ask(self) -> dict[str, Any]:
        config = self.space.sample(self._rng)
        if self.avoid_duplicates:
            for _ in range(self.max_retries):
                if self.space.key(config) not in self._asked:
                    break
                config = self.space.sample(self._rng)
        self._asked.add(self.space.key(config))
        return config

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        """Random search learns nothing."""
