"""Nevergrad (any optimizer of its registry, NGOpt by default) behind deploybench's ask/tell contract."""

from __future__ import annotations

from typing import Any, Mapping

import nevergrad as ng

from deploybench import Optimizer, OptimizerTags, Outcome
from deploybench.space import closest_name

from .losses import LossBook
from .parametrization import to_config, to_parametrization, to_value

__all__ = ["NevergradOptimizer"]

_HANDLING = ("violation", "penalty")


class NevergradOptimizer(Optimizer):
    """A nevergrad optimizer over an ``ng.p.Dict`` of the space's parameters.

    Categoricals become ``ng.p.Choice``, ordinals ``ng.p.TransitionChoice``, integers and floats
    ``ng.p.Scalar`` (``ng.p.Log`` when log-scaled; integers with integer casting). Conditional
    parameters are always sampled and dropped from the config when inactive
    (:mod:`deploybench_nevergrad.parametrization`). Crash policy: a crash or timeout is told the
    worst loss seen plus a margin; an infeasible trial its loss with nevergrad's
    ``constraint_violation`` (or a penalised loss); see :mod:`deploybench_nevergrad.losses`.

    Parameters
    ----------
    algorithm:
        A name of ``nevergrad.optimizers.registry`` (``NGOpt`` lets nevergrad pick by budget,
        dimension and parameter types; ``TwoPointsDE``, ``CMA``, ``DiscreteOnePlusOne``, ...).
    constraint_handling:
        ``"violation"`` passes the per-constraint violations to ``tell(..., constraint_violation=...)``;
        ``"penalty"`` tells a loss penalised by the total violation instead.
    """

    name = "nevergrad"
    description = "nevergrad ask/tell (NGOpt by default); crashes get worst loss + margin, infeasible uses constraint_violation"
    tags = OptimizerTags(conditional_spaces=True, batch_asks=False, uses_constraints=True, deterministic=True)

    def __init__(self, space, *, objective, constraints=(), budget=25, seed=0, family_param=None,
                 algorithm: str = "NGOpt", constraint_handling: str = "violation"):
        super().__init__(space, objective=objective, constraints=constraints, budget=budget, seed=seed,
                         family_param=family_param)
        self.algorithm = algorithm
        self.constraint_handling = constraint_handling
        registry = ng.optimizers.registry
        if algorithm not in registry:
            hint = closest_name(algorithm, sorted(registry))
            raise ValueError(f"unknown nevergrad algorithm {algorithm!r}"
                             + (f"; did you mean {hint!r}?" if hint else "")
                             + " (see nevergrad.optimizers.registry)")
        if constraint_handling not in _HANDLING:
            raise ValueError(f"constraint_handling must be one of {_HANDLING}, got {constraint_handling!r}")
        self._parametrization = to_parametrization(space, self.seed)
        self._ng = registry[algorithm](parametrization=self._parametrization, budget=max(1, self.budget),
                                       num_workers=1)
        self._book = LossBook(sign=self.objective.sign, penalty=constraint_handling == "penalty")
        self._pending: dict[str, list[Any]] = {}

    def ask(self) -> dict[str, Any]:
        candidate = self._ng.ask()
        config = to_config(self.space, candidate.value)
        self._pending.setdefault(self.space.key(config), []).append(candidate)
        return config

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        waiting = self._pending.get(self.space.key(config))
        if waiting:
            candidate = waiting.pop(0)
            if not waiting:
                del self._pending[self.space.key(config)]
        else:  # a configuration nevergrad did not propose: tell it as a not-asked candidate
            candidate = self._parametrization.spawn_child(new_value=to_value(self._parametrization, config))
        loss, violation = self._book.score(outcome)
        if violation is None:
            self._ng.tell(candidate, loss)
        else:
            self._ng.tell(candidate, loss, constraint_violation=violation)
