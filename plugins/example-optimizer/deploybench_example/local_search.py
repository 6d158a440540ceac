"""A (1+1) local search: keep the best outcome seen, propose a local move around it.

It shows everything a third-party optimizer needs: a subclass of ``deploybench.Optimizer`` whose
constructor only stores its parameters, seeded randomness from ``make_rng``, outcomes ordered with
``outcome_rank_key`` (feasible by objective, then infeasible by violation, crashes last), and a
``deploybench_register_optimizers`` hook.
"""

from __future__ import annotations

from typing import Any, Mapping

from deploybench import Optimizer, OptimizerContext, Outcome, hookimpl, outcome_rank_key


class LocalSearch(Optimizer):
    """(1+1) local search with random restarts.

    Parameters
    ----------
    n_initial: random configurations before the local search starts.
    step: size of a numeric move, in the unit scale of the shared encoding.
    restart_after: restart from a random configuration after this many moves without improvement.
    """

    name = "example_local_search"
    description = "example plugin: (1+1) local search around the best outcome, with restarts"

    def __init__(self, context: OptimizerContext, *,
                 n_initial: int = 4, step: float = 0.15, restart_after: int = 6):
        super().__init__(context)
        self.n_initial = n_initial
        self.step = step
        self.restart_after = restart_after
        self._rng = self.make_rng()
        self._best: tuple[tuple, dict] | None = None
        self._told = 0
        self._stale = 0
        self._seen: set[str] = set()

    def _random_unseen(self) -> dict[str, Any]:
        for _ in range(200):
            config = self.space.sample(self._rng)
            if self.space.key(config) not in self._seen:
                return config
        return config

    def ask(self) -> dict[str, Any]:
        if self._told < self.n_initial or self._best is None or self._stale >= self.restart_after:
            self._stale = 0 if self._stale >= self.restart_after else self._stale
            return self._random_unseen()
        incumbent = self._best[1]
        for _ in range(50):
            names = self.space.active_names(incumbent)
            name = names[int(self._rng.integers(len(names)))]
            candidate = self.space.perturb(incumbent, name, self.step, self._rng)
            if self.space.key(candidate) not in self._seen:
                return candidate
        return self._random_unseen()

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        self._told += 1
        self._seen.add(self.space.key(config))
        rank = outcome_rank_key(outcome, self.objective.direction)
        if self._best is None or rank < self._best[0]:
            self._best = (rank, dict(config))
            self._stale = 0
        else:
            self._stale += 1


@hookimpl
def deploybench_register_optimizers():
    return [LocalSearch]
