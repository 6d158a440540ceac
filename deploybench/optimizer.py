"""The optimizer contract: ask/tell, constructed like a scikit-learn estimator.

The constructor only stores its arguments (so a run is reproducible from its record, and
:meth:`Optimizer.get_params` returns them); state is created lazily or in ``__init__`` from them.
The harness never trusts a suggestion: it validates every config an optimizer returns.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np

from .fidelity import FULL, Fidelity
from .outcome import Outcome
from .space import SearchSpace
from .task import Constraint, Objective

if TYPE_CHECKING:
    from .task import Task

__all__ = ["Optimizer", "OptimizerContext", "OptimizerTags", "build_optimizer"]

#: what an optimizer written for the first contract took as keyword arguments (still accepted, see
#: :func:`build_optimizer`); never counted among an optimizer's own parameters
_CONTRACT_ARGS = ("context", "space", "objective", "constraints", "budget", "seed", "family_param")


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


@dataclass(frozen=True)
class OptimizerContext:
    """Everything a case tells its optimizer, given once at construction.

    One object instead of six keyword arguments: an optimizer's constructor takes the context and
    its own parameters, and only its own parameters are part of its identity (``get_params``).

    ``fidelities`` and ``budget_seconds`` are the task's levels (cheapest first, ``full`` last) and
    the case's budget in seconds of charged cost. Only optimizers that declare
    ``tags.multi_fidelity`` are told them; every other optimizer sees ``(FULL,)`` and ``None`` and
    only ever gets full-fidelity evaluations.
    """

    space: SearchSpace
    objective: Objective
    constraints: tuple[Constraint, ...] = ()
    budget: int = 25
    seed: int = 0
    family_param: str | None = None
    fidelities: tuple[Fidelity, ...] = (FULL,)
    budget_seconds: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "constraints", tuple(self.constraints))
        object.__setattr__(self, "fidelities", tuple(self.fidelities))
        object.__setattr__(self, "budget", int(self.budget))
        object.__setattr__(self, "seed", int(self.seed))
        if self.budget_seconds is not None:
            object.__setattr__(self, "budget_seconds", float(self.budget_seconds))

    @classmethod
    def for_task(cls, task: "Task", *, budget: int | None = None, seed: int = 0,
                 budget_seconds: float | None = None, multi_fidelity: bool = True) -> "OptimizerContext":
        """The context of a case on ``task`` (``budget`` defaults to the task's; ``budget_seconds``
        to its declared budget in seconds). ``multi_fidelity=False`` hides the levels and the budget
        in seconds, as the runner does for optimizers without the tag."""
        if budget_seconds is None:
            budget_seconds = getattr(task, "default_budget_seconds", None)
        return cls(
            space=task.space, objective=task.objective, constraints=tuple(task.constraints),
            budget=task.default_budget if budget is None else budget, seed=seed,
            family_param=task.metadata.family_param,
            fidelities=tuple(task.fidelities) if multi_fidelity else (FULL,),
            budget_seconds=budget_seconds if multi_fidelity else None,
        )


class Optimizer:
    """Base class of every optimizer.

    Subclasses take the :class:`OptimizerContext` first and declare their own parameters as keyword
    arguments after it, storing them unchanged::

        class MySampler(Optimizer):
            name = "mine"

            def __init__(self, context, *, n_startup=5):
                super().__init__(context)
                self.n_startup = n_startup

    The context's fields are readable as attributes (``self.space``, ``self.objective``,
    ``self.constraints``, ``self.budget``, ``self.seed``, ``self.family_param``,
    ``self.fidelities``, ``self.budget_seconds``).

    ``ask()`` returns a config (a dict of the active parameters); ``tell(config, outcome)`` is
    called exactly once for it, in order. Multi-fidelity optimizers (``tags.multi_fidelity``) may
    return a :class:`~deploybench.fidelity.Suggestion` (config and level) instead, and may define
    ``recommend() -> config``: the harness evaluates that configuration at full fidelity when the
    budget is spent and records it apart (it counts for best feasible, not for the budget).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    tags: ClassVar[OptimizerTags] = OptimizerTags()
    #: the parameter that ``-o NAME:VALUE`` sets (``-o optuna:GPSampler`` sets ``sampler``); None: no shorthand
    shorthand_param: ClassVar[str | None] = None

    def __init__(self, context: OptimizerContext, **first_contract: Any) -> None:
        if isinstance(context, SearchSpace):  # an optimizer written for the first contract
            context = OptimizerContext(context, **first_contract)
        elif first_contract:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(first_contract)} beside the context")
        if not isinstance(context, OptimizerContext):
            raise TypeError(f"{type(self).__name__} takes an OptimizerContext first, got {type(context).__name__}; "
                            "build optimizers with deploybench.build_optimizer(cls, context, params)")
        self.context = context

    space = property(lambda self: self.context.space, doc="The search space.")
    objective = property(lambda self: self.context.objective, doc="The objective (metric and direction).")
    constraints = property(lambda self: self.context.constraints, doc="The constraints (metric <= cap).")
    budget = property(lambda self: self.context.budget, doc="The budget in trials.")
    seed = property(lambda self: self.context.seed, doc="The case seed.")
    family_param = property(lambda self: self.context.family_param, doc="The parameter whose values are families.")
    fidelities = property(lambda self: self.context.fidelities, doc="Fidelity levels, cheapest first.")
    budget_seconds = property(lambda self: self.context.budget_seconds, doc="Budget in seconds of charged cost.")

    # -- contract --------------------------------------------------------------------------------
    def ask(self) -> dict[str, Any]:
        raise NotImplementedError

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        raise NotImplementedError

    def bind_fidelities(self, fidelities: Sequence[Fidelity], budget_seconds: float | None = None) -> None:
        """Deprecated: the levels and the budget in seconds now arrive in the context. Kept for
        optimizers written for the first contract (see :func:`build_optimizer`)."""
        self.context = replace(self.context, fidelities=tuple(fidelities), budget_seconds=budget_seconds)

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` (with a message naming what is allowed) when ``params`` (the
        optimizer's own parameters, defaults filled in) cannot make a working optimizer. Called when
        cases are collected, so a typo is a usage error before any case runs, not a failed case.
        The default accepts everything the constructor's signature accepts."""

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


def _takes_context(cls: type) -> bool:
    """Whether ``cls`` follows this contract (context first) rather than the first one (``space``
    first, then the contract keywords)."""
    params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
    return not (params and params[0].name == "space")


def build_optimizer(cls: type[Optimizer], context: OptimizerContext, params: Mapping[str, Any] | None = None
                    ) -> Optimizer:
    """Construct ``cls`` for a case: the one construction path of the runner, the conformance
    checks and the identity. Optimizers without ``tags.multi_fidelity`` get a context without
    levels or budget in seconds.

    Optimizers written for the first contract (``__init__(space, *, objective, constraints,
    budget, seed, family_param, ...)``) still run, with a ``DeprecationWarning``.
    """
    params = dict(params or {})
    multi_fidelity = bool(getattr(getattr(cls, "tags", None), "multi_fidelity", False))
    if not multi_fidelity:
        context = replace(context, fidelities=(FULL,), budget_seconds=None)
    if _takes_context(cls):
        return cls(context, **params)
    warnings.warn(f"{cls.__qualname__}.__init__ takes (space, objective=..., ...): the optimizer contract now "
                  "passes one OptimizerContext; see deploybench.Optimizer", DeprecationWarning, stacklevel=2)
    legacy = cls(context.space, objective=context.objective, constraints=context.constraints,  # type: ignore[call-arg]
                 budget=context.budget, seed=context.seed, family_param=context.family_param, **params)
    legacy.context = context  # the levels and the budget in seconds, as bind_fidelities gave them
    return legacy
