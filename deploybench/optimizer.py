"""The optimizer contract: ask/tell, constructed like a scikit-learn estimator.

The constructor only stores its arguments (so a run is reproducible from its record, and
:meth:`Optimizer.get_params` returns them); state is created lazily or in ``__init__`` from them.
The harness never trusts a suggestion: it validates every config an optimizer returns.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from .fidelity import FULL, Fidelity
from .outcome import Outcome
from .space import SearchSpace
from .task import Constraint, Objective

__all__ = ["Optimizer", "OptimizerTags"]

_CONTRACT_ARGS = ("space", "objective", "constraints", "budget", "seed", "family_param")


@dataclass(frozen=True)
class OptimizerTags:
    """Declared capabilities, like scikit-learn's estimator tags."""

    conditional_spaces: bool = True
    batch_asks: bool = False
    uses_constraints: bool = True
    deterministic: bool = True
    #: asks for fidelity levels (returns :class:`~deploybench.fidelity.Suggestion` objects) and may
    #: offer a final ``recommend()``; see :meth:`Optimizer.bind_fidelities`
    multi_fidelity: bool = False


class Optimizer:
    """Base class of every optimizer.

    Subclasses declare their own parameters as keyword arguments after the contract arguments
    and store them unchanged, e.g.::

        class MySampler(Optimizer):
            name = "mine"

            def __init__(self, space, *, objective, constraints=(), budget=25, seed=0,
                         family_param=None, n_startup=5):
                super().__init__(space, objective=objective, constraints=constraints,
                                 budget=budget, seed=seed, family_param=family_param)
                self.n_startup = n_startup

    ``ask()`` returns a config (a dict of the active parameters); ``tell(config, outcome)`` is
    called exactly once for it, in order. Multi-fidelity optimizers (``tags.multi_fidelity``) may
    return a :class:`~deploybench.fidelity.Suggestion` (config and level) instead, and may define
    ``recommend() -> config``: the harness evaluates that configuration at full fidelity when the
    budget is spent and records it apart (it counts for best feasible, not for the budget).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    tags: ClassVar[OptimizerTags] = OptimizerTags()

    def __init__(
        self,
        space: SearchSpace,
        *,
        objective: Objective,
        constraints: Sequence[Constraint] = (),
        budget: int = 25,
        seed: int = 0,
        family_param: str | None = None,
    ) -> None:
        self.space = space
        self.objective = objective
        self.constraints = tuple(constraints)
        self.budget = int(budget)
        self.seed = int(seed)
        self.family_param = family_param
        self.fidelities: tuple[Fidelity, ...] = (FULL,)
        self.budget_seconds: float | None = None

    # -- contract --------------------------------------------------------------------------------
    def ask(self) -> dict[str, Any]:
        raise NotImplementedError

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        raise NotImplementedError

    def bind_fidelities(self, fidelities: Sequence[Fidelity], budget_seconds: float | None = None) -> None:
        """Called by the harness before the first ``ask()`` on optimizers that declare
        ``tags.multi_fidelity``: the task's levels (cheapest first, ``full`` last) and the case's
        budget in seconds of charged cost (None: a budget in trials only). Optimizers that do not
        declare the tag are never told and only ever get full-fidelity evaluations."""
        self.fidelities = tuple(fidelities)
        self.budget_seconds = None if budget_seconds is None else float(budget_seconds)

    # -- estimator conventions --------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        names = []
        for klass in cls.__mro__:
            if klass is Optimizer or klass is object:
                continue
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.name == "self" or p.name in _CONTRACT_ARGS or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    continue
                if p.name not in names:
                    names.append(p.name)
        return sorted(names)

    def get_params(self) -> dict[str, Any]:
        """The optimizer's own parameters (not the contract arguments), as stored by ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # -- helpers for subclasses ---------------------------------------------------------------------
    def make_rng(self, stream: int = 0) -> np.random.Generator:
        """A numpy generator derived from the seed; different ``stream`` values are independent."""
        return np.random.default_rng([self.seed, stream])

    def maximised(self, value: float) -> float:
        """The objective value turned into a quantity to maximise."""
        return self.objective.sign * value
