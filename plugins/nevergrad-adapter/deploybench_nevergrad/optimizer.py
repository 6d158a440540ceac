"""Nevergrad (any optimizer of its registry, NGOpt by default) behind deploybench's ask/tell contract."""

from __future__ import annotations

from typing import Any, Mapping

import nevergrad as ng

from deploybench import Optimizer, OptimizerContext, OptimizerTags, Outcome
from deploybench.errors import did_you_mean

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
    avoid_duplicates:
        Nevergrad often proposes a configuration it has already had evaluated (rounded integers,
        unchanged categorical samples, mutations of inactive parameters, re-evaluations of the
        best point for noise handling): on the toy conformance task NGOpt repeated 11 of 15.
        With this set, such a candidate is told the score its configuration got before, without
        spending a trial, and nevergrad is asked again (up to ``max_retries`` times; then the
        repeat is returned). These extra tells count in nevergrad's own ``num_tell``.
    max_retries:
        How many repeats to answer from the record before accepting one.
    """

    name = "nevergrad"
    tags = OptimizerTags(conditional_spaces=True, batch_asks=False, uses_constraints=True, deterministic=True)

    def __init__(self, context: OptimizerContext, *,
                 algorithm: str = "NGOpt", constraint_handling: str = "violation", avoid_duplicates: bool = True,
                 max_retries: int = 100):
        super().__init__(context)
        self.algorithm = algorithm
        self.constraint_handling = constraint_handling
        self.avoid_duplicates = avoid_duplicates
        self.max_retries = max_retries
        registry = ng.optimizers.registry
        if algorithm not in registry:
            raise ValueError(f"unknown nevergrad algorithm {algorithm!r}"
                             + did_you_mean(algorithm, sorted(registry))
                             + " (see nevergrad.optimizers.registry)")
        if constraint_handling not in _HANDLING:
            raise ValueError(f"constraint_handling must be one of {_HANDLING}, got {constraint_handling!r}")
        self._parametrization = to_parametrization(self.space, self.seed)
        self._ng = registry[algorithm](parametrization=self._parametrization, budget=max(1, self.budget),
                                       num_workers=1)
        self._book = LossBook(sign=self.objective.sign, penalty=constraint_handling == "penalty")
        self._pending: dict[str, list[Any]] = {}
        self._scores: dict[str, tuple[float, list[float] | None]] = {}  # config key -> what nevergrad was told

    def ask(self) -> dict[str, Any]:
        for _ in range(self.max_retries if self.avoid_duplicates else 0):
            candidate = self._ng.ask()
            config = to_config(self.space, candidate.value)
            key = self.space.key(config)
            if key not in self._scores:
                break
            self._tell_ng(candidate, *self._scores[key])  # a repeat: answered from the record
        else:
            candidate = self._ng.ask()
            config = to_config(self.space, candidate.value)
            key = self.space.key(config)
        self._pending.setdefault(key, []).append(candidate)
        return config

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        waiting = self._pending.get(self.space.key(config))
        if waiting:
            candidate = waiting.pop(0)
            if not waiting:
                del self._pending[self.space.key(config)]
        else:  # a configuration nevergrad did not propose: tell it as a not-asked candidate
            candidate = self._parametrization.spawn_child(new_value=to_value(self._parametrization, config))
        score = self._book.score(outcome)
        self._scores.setdefault(self.space.key(config), score)
        self._tell_ng(candidate, *score)

    def _tell_ng(self, candidate: Any, loss: float, violation: list[float] | None) -> None:
        if violation is None:
            self._ng.tell(candidate, loss)
        else:
            self._ng.tell(candidate, loss, constraint_violation=violation)
